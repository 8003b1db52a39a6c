"""Topic aliases in both directions, and property rules."""

import mqtt_raw as m
from helpers import expect_broker_disconnect


def test_client_topic_alias_is_resolved_for_subscribers(broker):
    subscriber = broker.paho("alias-sub")
    subscriber.subscribe("alias/#", qos=1)
    publisher = broker.raw()
    assert publisher.connect("alias-pub").props.get(m.TOPIC_ALIAS_MAXIMUM) == 64
    publisher.publish("alias/t", b"one", qos=1, props={m.TOPIC_ALIAS: 1})
    publisher.publish("", b"two", qos=1, props={m.TOPIC_ALIAS: 1})
    # Rebinding the alias to another topic.
    publisher.publish("alias/u", b"three", qos=1, props={m.TOPIC_ALIAS: 1})
    publisher.publish("", b"four", qos=1, props={m.TOPIC_ALIAS: 1})
    # The highest announced alias is usable.
    publisher.publish("alias/max", b"five", qos=0, props={m.TOPIC_ALIAS: 64})
    publisher.publish("", b"six", qos=1, props={m.TOPIC_ALIAS: 64})
    received = [(msg.topic, msg.payload) for msg in subscriber.get_messages(6)]
    assert received == [("alias/t", b"one"), ("alias/t", b"two"), ("alias/u", b"three"),
                        ("alias/u", b"four"), ("alias/max", b"five"), ("alias/max", b"six")]


def test_alias_above_the_maximum_is_refused(start_broker):
    broker = start_broker("[limits]\ntopic_alias_maximum = 2\n")
    client = broker.raw()
    assert client.connect("alias-over").props.get(m.TOPIC_ALIAS_MAXIMUM) == 2
    client.publish("ao/t", b"ok", qos=1, props={m.TOPIC_ALIAS: 2})
    client.send(m.publish_packet("ao/t", b"x", qos=1, packet_id=7, props={m.TOPIC_ALIAS: 3}))
    expect_broker_disconnect(broker, client, m.RC_TOPIC_ALIAS_INVALID)


def test_alias_when_none_are_allowed_is_refused(start_broker):
    broker = start_broker("[limits]\ntopic_alias_maximum = 0\n")
    client = broker.raw()
    assert client.connect("alias-none").props.get(m.TOPIC_ALIAS_MAXIMUM, 0) == 0
    client.send(m.publish_packet("an/t", b"x", props={m.TOPIC_ALIAS: 1}))
    expect_broker_disconnect(broker, client, m.RC_TOPIC_ALIAS_INVALID)


def test_unknown_alias_with_empty_topic_is_refused(broker):
    client = broker.raw()
    client.connect("alias-unknown")
    client.send(m.publish_packet("", b"x", props={m.TOPIC_ALIAS: 5}))
    expect_broker_disconnect(broker, client, [m.RC_PROTOCOL_ERROR, m.RC_TOPIC_ALIAS_INVALID])


def test_aliases_do_not_survive_a_reconnect(broker):
    client = broker.raw()
    client.connect("alias-conn", props={m.SESSION_EXPIRY_INTERVAL: 60})
    client.publish("ac/t", b"x", qos=1, props={m.TOPIC_ALIAS: 1})
    client.disconnect()
    client = broker.raw()
    client.connect("alias-conn", clean=False, props={m.SESSION_EXPIRY_INTERVAL: 60})
    client.send(m.publish_packet("", b"y", props={m.TOPIC_ALIAS: 1}))
    expect_broker_disconnect(broker, client, [m.RC_PROTOCOL_ERROR, m.RC_TOPIC_ALIAS_INVALID])


def _resolve(packets, maximum):
    """Topics of PUBLISH packets as a receiver resolves them, checking alias rules."""
    aliases = {}
    topics = []
    for pkt in packets:
        alias = pkt.props.get(m.TOPIC_ALIAS)
        if alias is not None:
            assert 1 <= alias <= maximum, pkt
            if pkt.topic:
                aliases[alias] = pkt.topic
            else:
                assert alias in aliases, f"alias {alias} used before it was set: {pkt}"
        else:
            assert pkt.topic, f"empty topic without alias: {pkt}"
        topics.append(pkt.topic or aliases[alias])
    return topics


def test_broker_uses_aliases_towards_a_client_that_allows_them(broker):
    subscriber = broker.raw()
    subscriber.connect("alias-in", props={m.TOPIC_ALIAS_MAXIMUM: 5})
    subscriber.subscribe([("ba/#", 1)])
    publisher = broker.raw()
    publisher.connect("alias-in-pub")
    for n in range(3):
        publisher.publish("ba/some/long/topic/name", str(n).encode(), qos=1)
    got = [subscriber.recv_publish() for _ in range(3)]
    assert _resolve(got, 5) == ["ba/some/long/topic/name"] * 3
    assert [p.payload for p in got] == [b"0", b"1", b"2"]
    # The repeated topic travels as an alias with an empty topic name.
    alias = got[0].props.get(m.TOPIC_ALIAS)
    assert alias is not None and got[0].topic == "ba/some/long/topic/name", got[0]
    assert (got[1].topic, got[1].props.get(m.TOPIC_ALIAS)) == ("", alias), got[1]
    assert (got[2].topic, got[2].props.get(m.TOPIC_ALIAS)) == ("", alias), got[2]


def test_broker_aliases_stay_within_the_client_maximum(broker):
    subscriber = broker.raw()
    subscriber.connect("alias-small", props={m.TOPIC_ALIAS_MAXIMUM: 2})
    subscriber.subscribe([("bs/#", 0)])
    publisher = broker.raw()
    publisher.connect("alias-small-pub")
    topics = [f"bs/{name}" for name in "abcde" * 3]
    for n, topic in enumerate(topics):
        publisher.publish(topic, str(n).encode(), qos=1)
    got = [subscriber.recv_publish() for _ in topics]
    assert _resolve(got, 2) == topics
    assert [int(p.payload) for p in got] == list(range(len(topics)))


def test_no_aliases_towards_a_client_that_did_not_allow_them(broker, version):
    subscriber = broker.raw(version)
    subscriber.connect("alias-off")
    subscriber.subscribe([("bn/t", 1)])
    publisher = broker.raw()
    publisher.connect("alias-off-pub")
    for n in range(3):
        publisher.publish("bn/t", str(n).encode(), qos=1, props={m.TOPIC_ALIAS: 1})
    for _ in range(3):
        pkt = subscriber.recv_publish()
        assert pkt.topic == "bn/t" and m.TOPIC_ALIAS not in pkt.props, pkt


def test_puback_for_topic_without_subscribers(broker):
    client = broker.raw()
    client.connect("lonely")
    client.send(m.publish_packet("nobody/listens", b"x", qos=1, packet_id=3))
    ack = client.expect(m.PUBACK)
    assert ack.packet_id == 3 and ack.reason in (m.RC_SUCCESS, m.RC_NO_MATCHING_SUBSCRIBERS)


def test_no_reason_string_when_problem_information_is_declined(broker):
    client = broker.raw()
    client.connect("no-problems", props={m.REQUEST_PROBLEM_INFORMATION: 0})
    unsuback = client.unsubscribe("never/subscribed")
    assert unsuback.reasons == [m.RC_NO_SUBSCRIPTION_EXISTED]
    assert m.REASON_STRING not in unsuback.props and m.USER_PROPERTY not in unsuback.props
    suback = client.subscribe([("ok/t", 1)])
    assert m.REASON_STRING not in suback.props


def test_payload_format_indicator_and_expiry_reach_a_v311_subscriber_as_plain_message(broker):
    subscriber = broker.raw(m.V311)
    subscriber.connect("old-client")
    subscriber.subscribe([("mixed/t", 1)])
    publisher = broker.raw()
    publisher.connect("new-client")
    publisher.publish("mixed/t", b"text", qos=1,
                      props=[(m.PAYLOAD_FORMAT_INDICATOR, 1), (m.MESSAGE_EXPIRY_INTERVAL, 30),
                             (m.USER_PROPERTY, ("x", "y")), (m.TOPIC_ALIAS, 3)])
    pkt = subscriber.recv_publish()
    # decode_packet parsed it as 3.1.1: any property bytes would have ended up in the payload.
    assert (pkt.topic, pkt.payload) == ("mixed/t", b"text")
