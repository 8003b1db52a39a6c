"""$SYS statistics topics."""

import functools
import re
import time

import mqtt_raw as m
from helpers import latest_values

SYS_CONFIG = "[sys]\ninterval_s = 1\n"

REQUIRED = [
    "$SYS/broker/clients/connected",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/uptime",
] + [f"$SYS/broker/messages/dropped/{reason}"
     for reason in ("queue_full", "expired", "backpressure", "too_large", "not_authorized")]


# $SYS comes every interval_s = 1 s: a few cycles.
_latest = functools.partial(latest_values, timeout=6.0)


def test_sys_topics_are_published_as_decimal_text(start_broker, version):
    broker = start_broker(SYS_CONFIG)
    watcher = broker.paho("sys-watch", version)
    watcher.subscribe("$SYS/#", qos=0)
    values = _latest(watcher, REQUIRED)
    for topic in REQUIRED:
        assert re.fullmatch(r"\d+", values[topic]), f"{topic} = {values[topic]!r}"
    assert int(values["$SYS/broker/clients/connected"]) >= 1
    assert int(values["$SYS/broker/subscriptions/count"]) >= 1


def test_sys_counters_follow_traffic(start_broker):
    broker = start_broker(SYS_CONFIG)
    watcher = broker.paho("sys-watch")
    watcher.subscribe("$SYS/broker/#", qos=0)
    first = _latest(watcher, REQUIRED)

    extra = [broker.paho(f"sys-client-{n}") for n in range(3)]
    for n, client in enumerate(extra):
        client.subscribe(f"sys/t/{n}", qos=1)
    publisher = broker.paho("sys-pub")
    for n in range(3):
        publisher.publish(f"sys/t/{n}", b"x" * 100, qos=1)
    publisher.publish("sys/retained/a", b"r", qos=1, retain=True)
    publisher.publish("sys/retained/b", b"r", qos=1, retain=True)
    for client in extra:
        client.get_message()

    def grown(values):
        n = {k: int(v) for k, v in values.items() if v.isdigit()}
        return (n.get("$SYS/broker/clients/connected", 0) >= 5
                and n.get("$SYS/broker/messages/received", 0)
                >= int(first["$SYS/broker/messages/received"]) + 5
                and n.get("$SYS/broker/messages/sent", 0)
                >= int(first["$SYS/broker/messages/sent"]) + 3
                and n.get("$SYS/broker/bytes/received", 0)
                >= int(first["$SYS/broker/bytes/received"]) + 300
                and n.get("$SYS/broker/subscriptions/count", 0)
                >= int(first["$SYS/broker/subscriptions/count"]) + 3
                and n.get("$SYS/broker/retained messages/count", 0) >= 2)
    _latest(watcher, REQUIRED, grown)

    for client in extra:
        client.disconnect()
    _latest(watcher, ["$SYS/broker/clients/connected"],
            lambda v: int(v["$SYS/broker/clients/connected"]) <= 2)


def test_uptime_advances(start_broker):
    broker = start_broker(SYS_CONFIG)
    watcher = broker.paho("sys-uptime")
    watcher.subscribe("$SYS/broker/uptime", qos=0)
    first = int(watcher.get_message(timeout=4).payload)
    _latest(watcher, ["$SYS/broker/uptime"],
            lambda v: int(v["$SYS/broker/uptime"]) > first, timeout=5)


def test_expired_and_too_large_drops_are_counted(start_broker):
    broker = start_broker(SYS_CONFIG)
    # too_large: a subscriber that only accepts small packets.
    small = broker.raw()
    small.connect("sys-small", props={m.MAXIMUM_PACKET_SIZE: 128})
    small.subscribe("drop/big")
    # expired: a persistent session that is away while a short-lived message waits.
    away = broker.raw()
    away.connect("sys-away", props={m.SESSION_EXPIRY_INTERVAL: 300})
    away.subscribe([("drop/exp", 1)])
    away.disconnect()

    publisher = broker.raw()
    publisher.connect("sys-drop-pub")
    publisher.publish("drop/big", b"x" * 1000, qos=1)
    published_at = time.monotonic()
    publisher.publish("drop/exp", b"short", qos=1, props={m.MESSAGE_EXPIRY_INTERVAL: 1})
    time.sleep(max(0.0, published_at + 2.2 - time.monotonic()))  # the expiry itself
    away = broker.raw()
    assert away.connect("sys-away", clean=False,
                        props={m.SESSION_EXPIRY_INTERVAL: 300}).session_present
    away.expect_no_packet(0.3)

    watcher = broker.paho("sys-drops")
    watcher.subscribe("$SYS/broker/messages/dropped/#", qos=0)
    _latest(watcher, ["$SYS/broker/messages/dropped/too_large",
                      "$SYS/broker/messages/dropped/expired"],
            lambda v: int(v["$SYS/broker/messages/dropped/too_large"]) >= 1
            and int(v["$SYS/broker/messages/dropped/expired"]) >= 1)
