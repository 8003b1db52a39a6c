"""SUBSCRIBE / UNSUBSCRIBE: wildcards, $-topics, options, identifiers, overlaps, acks."""

import pytest

import mqtt_raw as m
from helpers import collect_until_barrier, expect_broker_disconnect, raw_collect_until_barrier


def test_single_and_multi_level_wildcards(broker, version):
    subscriber = broker.paho("wild-sub", version)
    assert subscriber.subscribe("a/+/c", qos=1) == [1]
    assert subscriber.subscribe("x/#", qos=1) == [1]
    assert subscriber.subscribe("+", qos=1) == [1]
    subscriber.subscribe("end", qos=1)
    publisher = broker.paho("wild-pub", version)
    topics = ["a/b/c", "a/b/d", "a/c", "a/b/c/d", "x", "x/y/z", "xy", "a//c", "top", "/x",
              "b/x"]
    for topic in topics:
        publisher.publish(topic, topic.encode(), qos=1)
    publisher.publish("end", b"", qos=1)
    received = [msg.topic for msg in collect_until_barrier(subscriber, "end")]
    # "+" matches every one-level topic including "xy" and "top"; "x/#" matches its parent "x".
    # Overlaps ("x" matches two filters) are the subject of another test: compare as sets.
    assert set(received) == {"a/b/c", "x", "x/y/z", "xy", "a//c", "top"}


def test_dollar_topics_are_not_matched_by_leading_wildcards(start_broker, version):
    broker = start_broker("[sys]\ninterval_s = 1\n")
    wildcard = broker.paho("dollar-wild", version)
    wildcard.subscribe("#", qos=0)
    wildcard.subscribe("+/broker/#", qos=0)
    wildcard.subscribe("+/bar", qos=0)
    explicit = broker.paho("dollar-sys", version)
    explicit.subscribe("$SYS/broker/uptime", qos=0)
    dollar_foo = broker.paho("dollar-foo", version)
    dollar_foo.subscribe("$foo/#", qos=0)

    # $SYS is being published: the explicit subscriber sees it...
    assert explicit.get_message(timeout=5).topic == "$SYS/broker/uptime"
    # ...and a client may or may not be allowed to publish into $foo; either way "#" and
    # "+/bar" must not match it.
    intruder = broker.raw(version)
    intruder.connect("dollar-intruder")
    intruder.send(m.publish_packet("$foo/bar", b"hidden", qos=0, version=version))
    intruder.send(m.pingreq_packet())
    intruder.recv_packet()  # PINGRESP, or DISCONNECT if publishing there is refused
    publisher = broker.raw(version)
    publisher.connect("dollar-pub")
    publisher.publish("plain/bar", b"visible", qos=1)
    publisher.publish("end", b"", qos=1)
    received = [msg.topic for msg in collect_until_barrier(wildcard, "end")]
    assert set(received) == {"plain/bar"}


def test_no_local_suppresses_own_messages_v5(broker):
    talker = broker.paho("talker")
    talker.subscribe("nl/t", qos=1, no_local=True)
    talker.subscribe("nl/echo", qos=1)
    talker.subscribe("end", qos=1)
    listener = broker.paho("listener")
    listener.subscribe("nl/t", qos=1)

    talker.publish("nl/t", b"mine", qos=1)
    talker.publish("nl/echo", b"echoed", qos=1)
    talker.publish("end", b"", qos=1)
    assert [msg.topic for msg in collect_until_barrier(talker, "end")] == ["nl/echo"]
    assert listener.get_message().payload == b"mine"


def test_retain_as_published_keeps_or_clears_the_flag_v5(broker):
    keeps = broker.raw()
    keeps.connect("rap-keep")
    keeps.subscribe([("rap/t", m.sub_options(qos=1, retain_as_published=True))])
    clears = broker.raw()
    clears.connect("rap-clear")
    clears.subscribe([("rap/t", m.sub_options(qos=1))])

    publisher = broker.raw()
    publisher.connect("rap-pub")
    publisher.publish("rap/t", b"live-retained", qos=1, retain=True)
    publisher.publish("rap/t", b"live-plain", qos=1, retain=False)
    assert [(p.payload, p.retain) for p in (keeps.recv_publish(), keeps.recv_publish())] == [
        (b"live-retained", True), (b"live-plain", False)]
    assert [(p.payload, p.retain) for p in (clears.recv_publish(), clears.recv_publish())] == [
        (b"live-retained", False), (b"live-plain", False)]
    publisher.publish("rap/t", b"", qos=1, retain=True)  # clean up the retained message


def test_live_messages_are_forwarded_without_retain_flag_v311(broker):
    subscriber = broker.raw(m.V311)
    subscriber.connect("live311")
    subscriber.subscribe([("live/t", 1)])
    publisher = broker.raw(m.V311)
    publisher.connect("live311-pub")
    publisher.publish("live/t", b"r", qos=1, retain=True)
    got = subscriber.recv_publish()
    assert (got.payload, got.retain) == (b"r", False)


def _subscribe_and_collect(client, topic_filter, options, barrier_pub):
    client.subscribe([(topic_filter, options)])
    barrier_pub.publish("rh/end", b"", qos=1)
    return [p.payload for p in raw_collect_until_barrier(client, "rh/end")]


@pytest.mark.parametrize("handling,first,again", [
    (0, [b"kept"], [b"kept"]),
    (1, [b"kept"], []),
    (2, [], []),
])
def test_retain_handling(broker, handling, first, again):
    publisher = broker.raw()
    publisher.connect("rh-pub")
    publisher.publish("rh/t", b"kept", qos=1, retain=True)

    subscriber = broker.raw()
    subscriber.connect("rh-sub")
    subscriber.subscribe([("rh/end", 1)])
    options = m.sub_options(qos=1, retain_handling=handling)
    assert _subscribe_and_collect(subscriber, "rh/t", options, publisher) == first
    # Subscribing again to an existing subscription.
    assert _subscribe_and_collect(subscriber, "rh/t", options, publisher) == again


def test_subscription_identifier_is_carried_v5(broker):
    subscriber = broker.raw()
    subscriber.connect("sid")
    subscriber.subscribe([("si/+", 1)], props={m.SUBSCRIPTION_IDENTIFIER: 7})
    subscriber.subscribe([("si/#", 1)], props={m.SUBSCRIPTION_IDENTIFIER: 300000})
    subscriber.subscribe([("si/plain/#", 1)])
    subscriber.subscribe([("end", 1)])
    publisher = broker.raw()
    publisher.connect("sid-pub")
    publisher.publish("si/x", b"both", qos=1)
    publisher.publish("si/x/y", b"deep", qos=1)
    publisher.publish("si/plain/z", b"plain", qos=1)
    publisher.publish("end", b"", qos=1)
    got = raw_collect_until_barrier(subscriber, "end")
    # Overlapping subscriptions: one delivery carrying both identifiers.
    assert [p.payload for p in got] == [b"both", b"deep", b"plain"]
    assert sorted(got[0].props.all(m.SUBSCRIPTION_IDENTIFIER)) == [7, 300000]
    assert got[1].props.all(m.SUBSCRIPTION_IDENTIFIER) == [300000]
    assert got[2].props.all(m.SUBSCRIPTION_IDENTIFIER) == [300000]


def test_subscription_identifier_zero_is_a_protocol_error_v5(broker):
    client = broker.raw()
    client.connect("sid0")
    client.send(m.subscribe_packet(1, [("x", 0)], props={m.SUBSCRIPTION_IDENTIFIER: 0}))
    expect_broker_disconnect(broker, client, [m.RC_PROTOCOL_ERROR, m.RC_MALFORMED_PACKET])


def test_overlapping_subscriptions_deliver_once_at_highest_qos(broker, version):
    subscriber = broker.raw(version)
    subscriber.connect("overlap")
    subscriber.subscribe([("ov/#", 0)])
    subscriber.subscribe([("ov/+", 2)])
    subscriber.subscribe([("ov/a", 1)])
    subscriber.subscribe([("end", 0)])
    publisher = broker.raw(version)
    publisher.connect("overlap-pub")
    publisher.publish("ov/a", b"once", qos=2)
    publisher.publish("end", b"", qos=0)
    got = raw_collect_until_barrier(subscriber, "end")
    assert [(p.payload, p.qos) for p in got] == [(b"once", 2)]


def test_suback_grants_requested_qos(broker, version):
    client = broker.raw(version)
    client.connect("granted")
    suback = client.subscribe([("g/0", 0), ("g/1", 1), ("g/2", 2)])
    assert suback.reasons == [0, 1, 2]


def test_resubscribe_replaces_the_subscription_qos(broker, version):
    client = broker.raw(version)
    client.connect("resub")
    client.subscribe([("rs/t", 2)])
    client.subscribe([("rs/t", 0)])
    publisher = broker.raw(version)
    publisher.connect("resub-pub")
    publisher.publish("rs/t", b"x", qos=2)
    got = client.expect(m.PUBLISH)
    assert got.qos == 0
    client.expect_no_packet(0.3)


def test_unsubscribe_stops_delivery_and_acks(broker, version):
    client = broker.raw(version)
    client.connect("unsub")
    client.subscribe([("un/t", 1), ("end", 1)])
    unsuback = client.unsubscribe(["un/t", "never/subscribed"])
    if version == m.V5:
        assert unsuback.reasons == [m.RC_SUCCESS, m.RC_NO_SUBSCRIPTION_EXISTED]
    else:
        assert unsuback.body == m.encode_u16(unsuback.packet_id)
    publisher = broker.raw(version)
    publisher.connect("unsub-pub")
    publisher.publish("un/t", b"gone", qos=1)
    publisher.publish("end", b"", qos=1)
    assert raw_collect_until_barrier(client, "end") == []


@pytest.mark.parametrize("bad_filter", ["a/#/b", "a/b#", "a+/b", "#/", ""])
def test_invalid_topic_filter_closes_the_connection(broker, version, bad_filter):
    client = broker.raw(version)
    client.connect("badfilter")
    client.send(m.subscribe_packet(1, [(bad_filter, 0)], version=version))
    expect_broker_disconnect(broker, client, m.RC_MALFORMED_PACKET)


def test_many_filters_in_one_subscribe(broker, version):
    client = broker.raw(version)
    client.connect("many")
    filters = [(f"many/{n}", n % 3) for n in range(50)]
    suback = client.subscribe(filters)
    assert suback.reasons == [n % 3 for n in range(50)]
    publisher = broker.raw(version)
    publisher.connect("many-pub")
    publisher.publish("many/49", b"last", qos=1)
    got = client.recv_publish()
    assert (got.topic, got.qos) == ("many/49", 1)


def test_wildcard_subscriptions_can_be_turned_off(start_broker):
    broker = start_broker("[features]\nwildcard_subscriptions = false\n")
    client = broker.raw()
    client.connect("wild-off")
    client.send(m.subscribe_packet(1, [("w/+", 1)]))
    pkt = client.recv_packet()
    if pkt.type == m.SUBACK:
        assert pkt.reasons == [0xA2]
        assert client.subscribe([("w/plain", 1)]).reasons == [1]
    else:
        assert (pkt.type, pkt.reason) == (m.DISCONNECT, 0xA2), pkt


def test_subscription_identifiers_can_be_turned_off(start_broker):
    broker = start_broker("[features]\nsubscription_identifiers = false\n")
    client = broker.raw()
    client.connect("sid-off")
    client.send(m.subscribe_packet(1, [("s/t", 1)], props={m.SUBSCRIPTION_IDENTIFIER: 3}))
    pkt = client.recv_packet()
    if pkt.type == m.SUBACK:
        assert pkt.reasons == [0xA1]
    else:
        assert (pkt.type, pkt.reason) == (m.DISCONNECT, 0xA1), pkt
