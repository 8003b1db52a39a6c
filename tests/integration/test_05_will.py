"""Will messages: abnormal loss, normal disconnect, 0x04, delay, properties, retain."""

import time

import mqtt_raw as m
from helpers import message_prop, user_properties


def _will_watcher(broker, version=m.V5, topic="will/#"):
    watcher = broker.paho("will-watcher", version)
    watcher.subscribe(topic, qos=1)
    return watcher


def test_will_is_sent_on_abnormal_loss(broker, version):
    watcher = _will_watcher(broker, version)
    client = broker.raw(version)
    client.connect("mortal", will={"topic": "will/mortal", "payload": b"gone", "qos": 1})
    client.abort()
    msg = watcher.get_message()
    assert (msg.topic, msg.payload, msg.qos) == ("will/mortal", b"gone", 1)


def test_will_is_sent_when_the_socket_closes_cleanly_without_disconnect(broker, version):
    watcher = _will_watcher(broker, version)
    client = broker.raw(version)
    client.connect("quiet", will={"topic": "will/quiet", "payload": b"bye"})
    client.close()  # FIN, but no DISCONNECT packet
    assert watcher.get_message().payload == b"bye"


def test_will_is_not_sent_after_normal_disconnect(broker, version):
    watcher = _will_watcher(broker, version)
    client = broker.raw(version)
    client.connect("polite", will={"topic": "will/polite", "payload": b"never"})
    client.disconnect()
    watcher.expect_no_message(0.7)


def test_will_is_sent_after_disconnect_with_will_message_v5(broker):
    watcher = _will_watcher(broker)
    client = broker.raw()
    client.connect("with-will", will={"topic": "will/ww", "payload": b"asked-for"})
    client.disconnect(reason=m.RC_DISCONNECT_WITH_WILL)
    assert watcher.get_message().payload == b"asked-for"


def test_will_is_sent_when_the_broker_closes_for_bad_input(broker, version):
    watcher = _will_watcher(broker, version)
    client = broker.raw(version)
    client.connect("bad", will={"topic": "will/bad", "payload": b"bad-input"})
    client.send(b"\x30\xff\xff\xff\xff\x01")  # malformed remaining length
    client.expect_close()
    assert watcher.get_message().payload == b"bad-input"


def test_will_delay_postpones_the_will_v5(broker):
    watcher = _will_watcher(broker)
    client = broker.raw()
    client.connect("delayed", props={m.SESSION_EXPIRY_INTERVAL: 60},
                   will={"topic": "will/delayed", "payload": b"late",
                         "props": {m.WILL_DELAY_INTERVAL: 1}})
    lost_at = time.monotonic()
    client.abort()
    msg = watcher.get_message(timeout=6)
    elapsed = time.monotonic() - lost_at
    assert msg.payload == b"late"
    assert elapsed >= 0.9, f"will arrived after {elapsed:.2f} s"


def test_will_delay_is_cut_short_by_session_expiry_v5(broker):
    watcher = _will_watcher(broker)
    client = broker.raw()
    client.connect("brief", props={m.SESSION_EXPIRY_INTERVAL: 0},
                   will={"topic": "will/brief", "payload": b"now",
                         "props": {m.WILL_DELAY_INTERVAL: 30}})
    client.abort()
    # The session ends at once, and with it the delay.
    assert watcher.get_message(timeout=4).payload == b"now"


def test_reconnect_within_will_delay_cancels_the_will_v5(broker):
    watcher = _will_watcher(broker)
    client = broker.raw()
    connect_args = dict(props={m.SESSION_EXPIRY_INTERVAL: 60},
                        will={"topic": "will/back", "payload": b"should-not-appear",
                              "props": {m.WILL_DELAY_INTERVAL: 2}})
    client.connect("comeback", **connect_args)
    client.abort()
    again = broker.raw()
    assert again.connect("comeback", clean=False, **connect_args).session_present
    watcher.expect_no_message(2.5)
    again.disconnect()


def test_will_properties_are_passed_through_v5(broker):
    watcher = _will_watcher(broker)
    client = broker.raw()
    client.connect("propwill", will={
        "topic": "will/props", "payload": b'{"status":"offline"}', "qos": 1,
        "props": [(m.CONTENT_TYPE, "application/json"), (m.PAYLOAD_FORMAT_INDICATOR, 1),
                  (m.RESPONSE_TOPIC, "will/reply"), (m.CORRELATION_DATA, b"c1"),
                  (m.USER_PROPERTY, ("device", "pump-3")),
                  (m.MESSAGE_EXPIRY_INTERVAL, 120)]})
    client.abort()
    msg = watcher.get_message()
    assert msg.payload == b'{"status":"offline"}'
    assert message_prop(msg, "ContentType") == "application/json"
    assert message_prop(msg, "PayloadFormatIndicator") == 1
    assert message_prop(msg, "ResponseTopic") == "will/reply"
    assert message_prop(msg, "CorrelationData") == b"c1"
    assert user_properties(msg) == [("device", "pump-3")]
    assert 0 < message_prop(msg, "MessageExpiryInterval") <= 120


def test_retained_will_is_stored(broker, version):
    watcher = _will_watcher(broker, version)
    client = broker.raw(version)
    client.connect("retwill", will={"topic": "will/status/retwill", "payload": b"offline",
                                    "qos": 1, "retain": True})
    client.abort()
    assert watcher.get_message().payload == b"offline"
    # A subscriber arriving later still learns the status, as a retained message.
    late = broker.paho("late-watcher", version)
    late.subscribe("will/status/#", qos=1)
    msg = late.get_message()
    assert (msg.payload, msg.retain) == (b"offline", True)


def test_will_is_sent_on_keep_alive_timeout(broker, version):
    watcher = _will_watcher(broker, version)
    client = broker.raw(version)
    client.connect("silent", keep_alive=1, will={"topic": "will/silent", "payload": b"timeout"})
    assert watcher.get_message(timeout=6).payload == b"timeout"
    client.close()
