"""CONNECT / CONNACK: versions, sessions, keep-alive, identifiers, takeover, announced limits."""

import time

import mqtt_raw as m
from helpers import raw_collect_until_barrier


def test_connect_is_accepted_in_both_versions(broker, version):
    client = broker.raw(version)
    connack = client.connect("c1")
    assert connack.reason == 0
    assert connack.session_present is False
    client.send(m.pingreq_packet())
    client.expect(m.PINGRESP)
    client.disconnect()


def test_paho_connects_in_both_versions(broker, version):
    client = broker.paho("paho-c1", version)
    assert client.connack_rc == 0
    client.disconnect()


def test_mqtt31_is_refused(broker):
    client = broker.raw(m.V311)
    client.send(m.connect_packet("old", version=3, protocol_name="MQIsdp"))
    packets = client.expect_close(5)
    connacks = [p for p in packets if p.type == m.CONNACK]
    assert len(packets) == len(connacks) <= 1, packets
    if connacks:
        assert connacks[0].reason == m.V3_UNACCEPTABLE_PROTOCOL_VERSION


def test_unknown_protocol_level_is_refused(broker):
    client = broker.raw(m.V5)
    client.send(m.connect_packet("future", version=7))
    packets = client.expect_close(5)
    assert len(packets) == 1 and packets[0].type == m.CONNACK, packets
    assert packets[0].reason in (m.RC_UNSUPPORTED_PROTOCOL_VERSION,
                                 m.V3_UNACCEPTABLE_PROTOCOL_VERSION)


def test_session_present_follows_clean_start_and_expiry_v5(broker):
    expiry = {m.SESSION_EXPIRY_INTERVAL: 300}
    first = broker.raw()
    assert first.connect("sess", clean=True, props=expiry).session_present is False
    first.disconnect()

    second = broker.raw()
    assert second.connect("sess", clean=False, props=expiry).session_present is True
    second.disconnect()

    third = broker.raw()
    assert third.connect("sess", clean=True, props=expiry).session_present is False
    third.disconnect()


def test_session_with_zero_expiry_ends_at_disconnect_v5(broker):
    first = broker.raw()
    assert first.connect("short", clean=False).session_present is False
    first.subscribe("short/t")
    first.disconnect()

    second = broker.raw()
    assert second.connect("short", clean=False).session_present is False
    second.disconnect()


def test_session_present_follows_clean_session_v311(broker):
    first = broker.raw(m.V311)
    assert first.connect("sess311", clean=False).session_present is False
    first.disconnect()

    second = broker.raw(m.V311)
    assert second.connect("sess311", clean=False).session_present is True
    second.disconnect()

    third = broker.raw(m.V311)
    assert third.connect("sess311", clean=True).session_present is False
    third.disconnect()

    fourth = broker.raw(m.V311)
    assert fourth.connect("sess311", clean=False).session_present is False
    fourth.disconnect()


def test_silent_client_is_disconnected_after_one_and_a_half_keep_alive(broker, version):
    client = broker.raw(version)
    client.connect("sleepy", keep_alive=1)
    start = time.monotonic()
    packets = client.expect_close(8)
    elapsed = time.monotonic() - start
    assert 1.2 <= elapsed <= 4.0, f"closed after {elapsed:.2f} s"
    if version == m.V5:
        assert [p.reason for p in packets if p.type == m.DISCONNECT] == [
            m.RC_KEEP_ALIVE_TIMEOUT], packets
    broker.wait_warning_any(["keep_alive_timeout"])


def test_pinging_client_stays_connected(broker, version):
    client = broker.raw(version)
    client.connect("pinger", keep_alive=1)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        client.send(m.pingreq_packet())
        client.expect(m.PINGRESP, timeout=2)
        time.sleep(0.4)  # pacing the pings, well inside the keep-alive
    client.send(m.pingreq_packet())
    client.expect(m.PINGRESP, timeout=2)
    client.disconnect()


def test_server_keep_alive_caps_the_request(start_broker):
    broker = start_broker("[limits]\nmax_keep_alive = 5\n")
    for requested in (60, 0):
        client = broker.raw()
        connack = client.connect(f"ka{requested}", keep_alive=requested)
        assert connack.props.get(m.SERVER_KEEP_ALIVE) == 5, connack
        client.disconnect()
    within = broker.raw()
    connack = within.connect("ka3", keep_alive=3)
    assert connack.props.get(m.SERVER_KEEP_ALIVE) in (None, 3), connack
    within.disconnect()


def test_empty_client_id_gets_an_assigned_identifier_v5(broker):
    client = broker.raw()
    connack = client.connect("")
    assigned = connack.props.get(m.ASSIGNED_CLIENT_IDENTIFIER)
    assert isinstance(assigned, str) and assigned, connack
    other = broker.raw()
    other_id = other.connect("").props.get(m.ASSIGNED_CLIENT_IDENTIFIER)
    assert other_id and other_id != assigned
    client.disconnect()
    other.disconnect()


def test_empty_client_id_with_clean_session_is_accepted_v311(broker):
    client = broker.raw(m.V311)
    assert client.connect("", clean=True).reason == m.V3_ACCEPTED
    client.disconnect()


def test_empty_client_id_without_clean_session_is_rejected_v311(broker):
    client = broker.raw(m.V311)
    client.send(m.connect_packet("", version=m.V311, clean=False))
    packets = client.expect_close(5)
    assert [(p.type, p.reason) for p in packets] == [(m.CONNACK, m.V3_IDENTIFIER_REJECTED)]


def test_second_connection_with_same_id_takes_over(broker, version):
    first = broker.raw(version)
    first.connect("twin")
    second = broker.raw(version)
    assert second.connect("twin").reason == 0
    packets = first.expect_close(5)
    if version == m.V5:
        assert [p.reason for p in packets if p.type == m.DISCONNECT] == [
            m.RC_SESSION_TAKEN_OVER], packets
    broker.wait_warning_any(["session_taken_over"])
    # The new connection is fully usable.
    second.subscribe("twin/t")
    second.publish("twin/t", b"hello", qos=1)
    assert second.expect(m.PUBLISH).payload == b"hello"
    second.disconnect()


def test_connack_announces_default_limits(broker):
    client = broker.raw()
    connack = client.connect("limits")
    assert connack.props.get(m.RECEIVE_MAXIMUM) == 100, connack
    assert connack.props.get(m.MAXIMUM_PACKET_SIZE) == 1048576, connack
    assert connack.props.get(m.TOPIC_ALIAS_MAXIMUM) == 64, connack
    client.disconnect()


def test_connack_announces_configured_limits(start_broker):
    broker = start_broker(
        "[limits]\nreceive_maximum = 7\nmax_packet_size = 5000\ntopic_alias_maximum = 3\n")
    client = broker.raw()
    connack = client.connect("limits")
    assert connack.props.get(m.RECEIVE_MAXIMUM) == 7, connack
    assert connack.props.get(m.MAXIMUM_PACKET_SIZE) == 5000, connack
    assert connack.props.get(m.TOPIC_ALIAS_MAXIMUM) == 3, connack
    client.disconnect()


def test_features_turned_off_are_announced(start_broker):
    broker = start_broker(
        "[features]\nretain_available = false\nwildcard_subscriptions = false\n"
        "shared_subscriptions = false\nsubscription_identifiers = false\n")
    client = broker.raw()
    connack = client.connect("features")
    assert connack.props.get(m.RETAIN_AVAILABLE) == 0, connack
    assert connack.props.get(m.WILDCARD_SUBSCRIPTION_AVAILABLE) == 0, connack
    assert connack.props.get(m.SHARED_SUBSCRIPTION_AVAILABLE) == 0, connack
    assert connack.props.get(m.SUBSCRIPTION_IDENTIFIER_AVAILABLE) == 0, connack
    client.disconnect()


def test_broker_respects_the_client_maximum_packet_size(broker):
    small = broker.raw()
    small.connect("small", props={m.MAXIMUM_PACKET_SIZE: 200})
    small.subscribe("size/#")
    big = broker.raw()
    big.connect("big-sub")
    big.subscribe("size/#")

    publisher = broker.raw()
    publisher.connect("size-pub")
    publisher.publish("size/large", b"x" * 500, qos=1)
    publisher.publish("size/small", b"tiny", qos=1)
    publisher.publish("size/end", b"", qos=1)

    assert [(p.topic, len(p.payload)) for p in raw_collect_until_barrier(big, "size/end")] == [
        ("size/large", 500), ("size/small", 4)]
    # The too-large message is dropped for the small client only; the connection stays up.
    assert [p.topic for p in raw_collect_until_barrier(small, "size/end")] == ["size/small"]
    small.send(m.pingreq_packet())
    small.expect(m.PINGRESP)
    for client in (small, big, publisher):
        client.disconnect()


def test_request_response_and_problem_information_are_accepted(broker):
    client = broker.raw()
    connack = client.connect("info", props={m.REQUEST_RESPONSE_INFORMATION: 1,
                                            m.REQUEST_PROBLEM_INFORMATION: 0})
    if m.RESPONSE_INFORMATION in connack.props:
        assert isinstance(connack.props.get(m.RESPONSE_INFORMATION), str)
    client.disconnect()


def test_user_properties_on_connect_are_accepted(broker):
    client = broker.raw()
    connack = client.connect("props", props=[(m.USER_PROPERTY, ("site", "north")),
                                             (m.USER_PROPERTY, ("site", "south")),
                                             (m.USER_PROPERTY, ("rack", "7"))])
    assert connack.reason == 0
    client.subscribe("props/t")
    client.publish("props/t", b"ok")
    assert client.expect(m.PUBLISH).payload == b"ok"
    client.disconnect()


def test_session_expiry_above_maximum_is_lowered_in_connack(start_broker):
    broker = start_broker("[limits]\nmax_session_expiry = 10\n")
    client = broker.raw()
    connack = client.connect("long-lived", props={m.SESSION_EXPIRY_INTERVAL: 3600})
    assert connack.props.get(m.SESSION_EXPIRY_INTERVAL) == 10, connack
    client.disconnect()
