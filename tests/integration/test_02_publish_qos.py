"""PUBLISH at QoS 0, 1 and 2: flows in both directions, windows, redelivery, expiry, properties."""

import time

import pytest

import mqtt_raw as m
from helpers import (expect_broker_disconnect, message_prop, publish_props,
                     raw_collect_until_barrier, user_properties)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_raw_flows_in_both_directions(broker, version, qos):
    subscriber = broker.raw(version)
    subscriber.connect("flow-sub")
    suback = subscriber.subscribe([("flow/t", 2)])
    assert suback.reasons == [2]

    publisher = broker.raw(version)
    publisher.connect("flow-pub")
    for n in range(3):
        # publish() checks PUBACK, or PUBREC -> PUBREL -> PUBCOMP, with the right packet id.
        publisher.publish("flow/t", f"msg{n}".encode(), qos=qos)
        received = subscriber.expect(m.PUBLISH)
        assert (received.topic, received.payload, received.qos) == ("flow/t", f"msg{n}".encode(),
                                                                   qos)
        assert received.dup is False and received.retain is False
        if qos:
            assert received.packet_id, "QoS > 0 PUBLISH needs a non-zero packet id"
        # ack() answers PUBACK, or PUBREC and awaits PUBREL (same id) then sends PUBCOMP.
        subscriber.ack(received)
    subscriber.disconnect()
    publisher.disconnect()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip(broker, version, qos):
    subscriber = broker.paho("paho-sub", version)
    assert subscriber.subscribe("paho/t", qos=2) == [2]
    publisher = broker.paho("paho-pub", version)
    payloads = [b"", b"\x00\x01\xff" * 100, "h\u00e9llo".encode()]
    for payload in payloads:
        publisher.publish("paho/t", payload, qos=qos)
    received = subscriber.get_messages(len(payloads))
    assert [(msg.topic, msg.payload, msg.qos) for msg in received] == [
        ("paho/t", p, qos) for p in payloads]


@pytest.mark.parametrize("pub_qos,sub_qos", [(2, 0), (2, 1), (1, 0), (0, 2)])
def test_delivery_qos_is_the_minimum_of_publish_and_subscription(broker, version, pub_qos,
                                                                 sub_qos):
    subscriber = broker.raw(version)
    subscriber.connect("min-sub")
    assert subscriber.subscribe([("min/t", sub_qos)]).reasons == [sub_qos]
    publisher = broker.raw(version)
    publisher.connect("min-pub")
    publisher.publish("min/t", b"x", qos=pub_qos)
    received = subscriber.recv_publish()
    assert received.qos == min(pub_qos, sub_qos)


def test_qos2_receive_maximum_exceeded_disconnects(start_broker):
    broker = start_broker("[limits]\nreceive_maximum = 2\n")
    client = broker.raw()
    connack = client.connect("greedy")
    assert connack.props.get(m.RECEIVE_MAXIMUM) == 2
    # QoS 2 messages stay in flight until PUBREL, so the third exceeds the window.
    for packet_id in (1, 2, 3):
        client.send(m.publish_packet("rm/t", b"x", qos=2, packet_id=packet_id))
    expect_broker_disconnect(broker, client, m.RC_RECEIVE_MAXIMUM_EXCEEDED)


def test_qos2_window_reopens_after_pubrel(start_broker):
    broker = start_broker("[limits]\nreceive_maximum = 2\n")
    client = broker.raw()
    client.connect("polite")
    for round_ in range(3):
        ids = (2 * round_ + 1, 2 * round_ + 2)
        for packet_id in ids:
            client.send(m.publish_packet("rm/t", b"x", qos=2, packet_id=packet_id))
        for packet_id in ids:
            assert client.expect(m.PUBREC).packet_id == packet_id
        for packet_id in ids:
            client.send(m.ack_packet(m.PUBREL, packet_id))
            assert client.expect(m.PUBCOMP).packet_id == packet_id
    client.disconnect()


def test_qos2_duplicate_publish_is_delivered_once(broker, version):
    subscriber = broker.raw(version)
    subscriber.connect("once-sub")
    subscriber.subscribe([("once/t", 2), ("once/end", 1)])
    publisher = broker.raw(version)
    publisher.connect("once-pub")
    publisher.send(m.publish_packet("once/t", b"one", qos=2, packet_id=9, version=version))
    assert publisher.expect(m.PUBREC).packet_id == 9
    # The sender did not see PUBREC and retransmits with DUP: still one delivery.
    publisher.send(m.publish_packet("once/t", b"one", qos=2, packet_id=9, dup=True,
                                    version=version))
    assert publisher.expect(m.PUBREC).packet_id == 9
    publisher.send(m.ack_packet(m.PUBREL, 9, version=version))
    assert publisher.expect(m.PUBCOMP).packet_id == 9
    publisher.publish("once/end", b"", qos=1)
    got = raw_collect_until_barrier(subscriber, "once/end")
    assert [p.payload for p in got] == [b"one"]


@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_message_is_resent_with_dup_after_reconnect(broker, version, qos):
    expiry = {m.SESSION_EXPIRY_INTERVAL: 300} if version == m.V5 else None
    subscriber = broker.raw(version)
    # 3.1.1 keeps a session only with clean session 0; 5.0 starts clean and keeps it by expiry.
    subscriber.connect("redeliver", clean=version == m.V5, props=expiry)
    subscriber.subscribe([("redeliver/t", qos)])
    subscriber.disconnect()

    subscriber = broker.raw(version)
    assert subscriber.connect("redeliver", clean=False, props=expiry).session_present
    publisher = broker.raw(version)
    publisher.connect("redeliver-pub")
    publisher.publish("redeliver/t", b"important", qos=qos)
    first = subscriber.expect(m.PUBLISH)
    assert (first.payload, first.qos, first.dup) == (b"important", qos, False)
    subscriber.abort()  # no acknowledgement

    subscriber = broker.raw(version)
    assert subscriber.connect("redeliver", clean=False, props=expiry).session_present
    again = subscriber.expect(m.PUBLISH)
    assert (again.payload, again.qos, again.dup) == (b"important", qos, True)
    assert again.packet_id == first.packet_id
    subscriber.ack(again)
    subscriber.expect_no_packet(0.5)
    subscriber.disconnect()


def test_pubrel_is_resent_after_reconnect(broker, version):
    expiry = {m.SESSION_EXPIRY_INTERVAL: 300} if version == m.V5 else None
    subscriber = broker.raw(version)
    subscriber.connect("rel", clean=version == m.V5, props=expiry)
    subscriber.subscribe([("rel/t", 2)])
    publisher = broker.raw(version)
    publisher.connect("rel-pub")
    publisher.publish("rel/t", b"exactly-once", qos=2)
    delivered = subscriber.expect(m.PUBLISH)
    subscriber.send(m.ack_packet(m.PUBREC, delivered.packet_id, version=version))
    assert subscriber.expect(m.PUBREL).packet_id == delivered.packet_id
    subscriber.abort()  # no PUBCOMP

    subscriber = broker.raw(version)
    assert subscriber.connect("rel", clean=False, props=expiry).session_present
    # The message itself is not sent again: only the PUBREL.
    rel = subscriber.recv_packet()
    assert (rel.type, rel.packet_id) == (m.PUBREL, delivered.packet_id), rel
    subscriber.send(m.ack_packet(m.PUBCOMP, delivered.packet_id, version=version))
    subscriber.expect_no_packet(0.5)
    subscriber.disconnect()


def test_message_expiry_while_subscriber_is_away(broker):
    expiry = {m.SESSION_EXPIRY_INTERVAL: 300}
    subscriber = broker.raw()
    subscriber.connect("away", clean=True, props=expiry)
    subscriber.subscribe([("exp/#", 1)])
    subscriber.disconnect()

    publisher = broker.raw()
    publisher.connect("exp-pub")
    published_at = time.monotonic()
    publisher.publish("exp/short", b"stale", qos=1, props={m.MESSAGE_EXPIRY_INTERVAL: 1})
    publisher.publish("exp/long", b"fresh", qos=1, props={m.MESSAGE_EXPIRY_INTERVAL: 60})
    # The short one must expire while queued; this wait is the expiry itself.
    time.sleep(max(0.0, published_at + 2.2 - time.monotonic()))

    subscriber = broker.raw()
    assert subscriber.connect("away", clean=False, props=expiry).session_present
    delivered = subscriber.recv_publish()
    assert (delivered.topic, delivered.payload) == ("exp/long", b"fresh")
    remaining = delivered.props.get(m.MESSAGE_EXPIRY_INTERVAL)
    assert remaining is not None and 0 < remaining <= 58, delivered
    subscriber.expect_no_packet(0.5)
    subscriber.disconnect()


def test_message_expiry_is_forwarded_to_live_subscribers(broker):
    subscriber = broker.raw()
    subscriber.connect("live-exp")
    subscriber.subscribe("lexp/t")
    publisher = broker.raw()
    publisher.connect("lexp-pub")
    publisher.publish("lexp/t", b"x", props={m.MESSAGE_EXPIRY_INTERVAL: 30})
    publisher.publish("lexp/t", b"y")
    with_expiry = subscriber.expect(m.PUBLISH)
    assert 0 < with_expiry.props.get(m.MESSAGE_EXPIRY_INTERVAL) <= 30
    without = subscriber.expect(m.PUBLISH)
    assert m.MESSAGE_EXPIRY_INTERVAL not in without.props


def test_v5_properties_pass_through_unchanged(broker):
    subscriber = broker.paho("prop-sub")
    subscriber.subscribe("props/t", qos=1)
    publisher = broker.paho("prop-pub")
    user = [("a", "1"), ("b", "2"), ("a", "3")]
    publisher.publish("props/t", b'{"v": 1}', qos=1, properties=publish_props(
        PayloadFormatIndicator=1, ContentType="application/json",
        ResponseTopic="props/reply", CorrelationData=b"\x00\x01corr",
        UserProperty=user))
    msg = subscriber.get_message()
    assert msg.payload == b'{"v": 1}'
    assert message_prop(msg, "PayloadFormatIndicator") == 1
    assert message_prop(msg, "ContentType") == "application/json"
    assert message_prop(msg, "ResponseTopic") == "props/reply"
    assert message_prop(msg, "CorrelationData") == b"\x00\x01corr"
    # The order of user properties is preserved, duplicates included.
    assert user_properties(msg) == user


def test_v5_properties_reach_a_raw_subscriber_byte_exact(broker):
    subscriber = broker.raw()
    subscriber.connect("raw-prop-sub")
    subscriber.subscribe([("rprops/t", 1)])
    publisher = broker.raw()
    publisher.connect("raw-prop-pub")
    sent = [(m.PAYLOAD_FORMAT_INDICATOR, 0), (m.CONTENT_TYPE, "text/plain; charset=utf-8"),
            (m.RESPONSE_TOPIC, "rprops/reply"), (m.CORRELATION_DATA, b"\xff" * 16),
            (m.USER_PROPERTY, ("k", "v1")), (m.USER_PROPERTY, ("k", "v2")),
            (m.USER_PROPERTY, ("\u00fc", ""))]
    publisher.publish("rprops/t", b"body", qos=1, props=sent)
    got = subscriber.recv_publish()
    assert got.props.get(m.CONTENT_TYPE) == "text/plain; charset=utf-8"
    assert got.props.get(m.PAYLOAD_FORMAT_INDICATOR, 0) == 0
    assert got.props.get(m.RESPONSE_TOPIC) == "rprops/reply"
    assert got.props.get(m.CORRELATION_DATA) == b"\xff" * 16
    assert got.props.all(m.USER_PROPERTY) == [("k", "v1"), ("k", "v2"), ("\u00fc", "")]
    assert m.TOPIC_ALIAS not in got.props


def test_request_reply_with_response_topic_and_correlation_data(broker):
    responder = broker.paho("responder")
    responder.subscribe("svc/echo", qos=1)
    requester = broker.paho("requester")
    requester.subscribe("svc/replies/requester", qos=1)

    for n in range(3):
        correlation = f"req-{n}".encode()
        requester.publish("svc/echo", f"ping {n}".encode(), qos=1, properties=publish_props(
            ResponseTopic="svc/replies/requester", CorrelationData=correlation))
        request = responder.get_message()
        reply_to = message_prop(request, "ResponseTopic")
        assert reply_to == "svc/replies/requester"
        responder.publish(reply_to, request.payload.replace(b"ping", b"pong"), qos=1,
                          properties=publish_props(
                              CorrelationData=message_prop(request, "CorrelationData")))
        reply = requester.get_message()
        assert reply.payload == f"pong {n}".encode()
        assert message_prop(reply, "CorrelationData") == correlation


def test_many_qos1_messages_arrive_in_order(broker, version):
    subscriber = broker.paho("order-sub", version)
    subscriber.subscribe("order/t", qos=1)
    publisher = broker.paho("order-pub", version)
    infos = [publisher.publish("order/t", str(n).encode(), qos=1, wait=False)
             for n in range(300)]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()
    received = subscriber.get_messages(300, timeout=15)
    assert [int(msg.payload) for msg in received] == list(range(300))
