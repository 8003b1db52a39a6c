"""Log forwarding to $tern/logs/{node}/{level} and threshold alerts on $tern/alerts, seen by
a real MQTT subscriber."""

from __future__ import annotations

import json

from helpers import wait_until
from mqtt_raw import publish_packet


def test_warnings_are_forwarded_to_mqtt(start_ternd):
    ternd = start_ternd('node_name = "gw7"\n[log]\nforward_level = "warning"\n')
    watcher = ternd.paho("log-watch")
    watcher.subscribe("$tern/logs/gw7/#", qos=0)
    raw = ternd.raw()
    raw.send(publish_packet("early/t", b"x"))  # PUBLISH before CONNECT: a warning
    raw.expect_close()
    message = watcher.get_message(timeout=5)
    assert message.topic == "$tern/logs/gw7/warning"
    line = json.loads(message.payload)
    assert line["level"] == "warning"
    assert {"time", "component", "msg"} <= line.keys()
    # Only warnings and errors: the info and debug lines ternd writes all the time stay home.
    watcher.expect_no_message(0.5)


def test_alert_fires_and_clears(start_ternd):
    ternd = start_ternd('node_name = "gw8"\n[alerts]\ninterval_ms = 100\nqueue_depth = 5\n')
    alerts = ternd.paho("alert-watch")
    alerts.subscribe("$tern/alerts", qos=1)
    slow = ternd.paho("alert-slow", clean=False, session_expiry=600)
    slow.subscribe("backlog/#", qos=1)
    slow.disconnect()
    pub = ternd.paho("alert-pub")
    for i in range(10):
        pub.publish("backlog/x", f"{i}", qos=1)

    firing = json.loads(alerts.get_message(timeout=5).payload)
    assert firing["alert"] == "queue_depth"
    assert firing["state"] == "firing"
    assert firing["node"] == "gw8"
    assert firing["value"] > firing["threshold"] == 5
    assert ternd.metric('tern_alert_firing{alert="queue_depth"}') == 1

    slow = ternd.paho("alert-slow", clean=False, session_expiry=600)
    slow.get_messages(10)
    cleared = json.loads(alerts.get_message(timeout=5).payload)
    assert cleared["alert"] == "queue_depth"
    assert cleared["state"] == "cleared"
    wait_until(lambda: ternd.metric('tern_alert_firing{alert="queue_depth"}') == 0,
               message="the alert gauge to return to 0")
