"""Retained messages: set, replace, delete, wildcard delivery, QoS, expiry, feature switch."""

import time

import mqtt_raw as m
from helpers import collect_until_barrier, expect_broker_disconnect, raw_collect_until_barrier


def _retained_for(broker, version, topic_filter, client_id="late", qos=1):
    """What a new subscriber to topic_filter receives as retained messages."""
    subscriber = broker.raw(version)
    subscriber.connect(client_id)
    subscriber.subscribe([(topic_filter, qos), ("rt-end", 0)])
    barrier = broker.raw(version)
    barrier.connect(client_id + "-barrier")
    barrier.publish("rt-end", b"", qos=1)
    got = raw_collect_until_barrier(subscriber, "rt-end")
    subscriber.disconnect()
    barrier.disconnect()
    return got


def test_retained_message_is_delivered_on_subscribe(broker, version):
    publisher = broker.raw(version)
    publisher.connect("ret-pub")
    publisher.publish("ret/t", b"state", qos=1, retain=True)
    got = _retained_for(broker, version, "ret/t")
    assert [(p.topic, p.payload, p.retain) for p in got] == [("ret/t", b"state", True)]


def test_retained_message_is_replaced(broker, version):
    publisher = broker.raw(version)
    publisher.connect("ret-pub")
    publisher.publish("ret/t", b"one", qos=1, retain=True)
    publisher.publish("ret/t", b"two", qos=1, retain=True)
    publisher.publish("ret/t", b"not-retained", qos=1, retain=False)
    got = _retained_for(broker, version, "ret/t")
    assert [p.payload for p in got] == [b"two"]


def test_empty_retained_payload_deletes(broker, version):
    publisher = broker.raw(version)
    publisher.connect("ret-pub")
    publisher.publish("ret/t", b"one", qos=1, retain=True)
    publisher.publish("ret/t", b"", qos=1, retain=True)
    assert _retained_for(broker, version, "ret/t") == []


def test_retained_messages_match_wildcards(broker, version):
    publisher = broker.raw(version)
    publisher.connect("ret-pub")
    for topic in ("rw/a", "rw/b/c", "rw/b/d", "other/x"):
        publisher.publish(topic, topic.encode(), qos=1, retain=True)
    got = _retained_for(broker, version, "rw/#", "wild")
    assert sorted(p.topic for p in got) == ["rw/a", "rw/b/c", "rw/b/d"]
    assert all(p.retain for p in got)
    got = _retained_for(broker, version, "rw/+/c", "plus")
    assert [p.topic for p in got] == ["rw/b/c"]


def test_retained_delivery_qos_is_the_minimum(broker, version):
    publisher = broker.raw(version)
    publisher.connect("ret-pub")
    publisher.publish("rq/two", b"2", qos=2, retain=True)
    publisher.publish("rq/zero", b"0", qos=0, retain=True)
    publisher.publish("rq/sync", b"", qos=1)  # the QoS 0 message has been processed before this
    got = {p.topic: p.qos for p in _retained_for(broker, version, "rq/#", "rq-sub", qos=1)}
    assert got == {"rq/two": 1, "rq/zero": 0}


def test_retained_message_survives_publisher_disconnect(broker, version):
    publisher = broker.paho("ret-paho", version)
    publisher.publish("rp/t", b"sticky", qos=1, retain=True)
    publisher.disconnect()
    subscriber = broker.paho("ret-paho-sub", version)
    subscriber.subscribe("rp/t", qos=1)
    msg = subscriber.get_message()
    assert (msg.payload, msg.retain) == (b"sticky", True)


def test_expired_retained_message_is_not_delivered(broker):
    publisher = broker.raw()
    publisher.connect("ret-exp")
    published_at = time.monotonic()
    publisher.publish("rexp/short", b"old", qos=1, retain=True,
                      props={m.MESSAGE_EXPIRY_INTERVAL: 1})
    publisher.publish("rexp/long", b"new", qos=1, retain=True,
                      props={m.MESSAGE_EXPIRY_INTERVAL: 60})
    time.sleep(max(0.0, published_at + 2.2 - time.monotonic()))  # the expiry itself
    got = _retained_for(broker, m.V5, "rexp/#")
    assert [p.topic for p in got] == ["rexp/long"]
    remaining = got[0].props.get(m.MESSAGE_EXPIRY_INTERVAL)
    assert remaining is not None and 0 < remaining <= 58


def test_retained_message_keeps_its_properties(broker):
    publisher = broker.raw()
    publisher.connect("ret-props")
    publisher.publish("rprop/t", b"{}", qos=1, retain=True,
                      props=[(m.CONTENT_TYPE, "application/json"),
                             (m.USER_PROPERTY, ("origin", "sensor-1"))])
    got = _retained_for(broker, m.V5, "rprop/t")
    assert got[0].props.get(m.CONTENT_TYPE) == "application/json"
    assert got[0].props.all(m.USER_PROPERTY) == [("origin", "sensor-1")]


def test_retain_not_available_refuses_retained_publish(start_broker):
    broker = start_broker("[features]\nretain_available = false\n")
    client = broker.raw()
    connack = client.connect("no-retain")
    assert connack.props.get(m.RETAIN_AVAILABLE) == 0
    client.send(m.publish_packet("nr/t", b"x", qos=1, retain=True, packet_id=1))
    expect_broker_disconnect(broker, client, m.RC_RETAIN_NOT_SUPPORTED)


def test_paho_sees_retained_flag_only_on_stored_copies(broker, version):
    live = broker.paho("ret-live", version)
    live.subscribe("rf/t", qos=1)
    live.subscribe("end", qos=1)
    publisher = broker.paho("ret-live-pub", version)
    publisher.publish("rf/t", b"v", qos=1, retain=True)
    publisher.publish("end", b"", qos=1)
    assert [(msg.payload, msg.retain) for msg in collect_until_barrier(live, "end")] == [
        (b"v", False)]
    late = broker.paho("ret-late", version)
    late.subscribe("rf/t", qos=1)
    msg = late.get_message()
    assert (msg.payload, msg.retain) == (b"v", True)
