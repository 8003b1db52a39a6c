"""Configured bounds: connections, packet size, connect timeout, in-flight windows."""

import time

import mqtt_raw as m
from helpers import expect_broker_disconnect, wait_until


def _try_connect(broker, client_id):
    """Returns (connack or None, packets): None when the broker closed without CONNACK."""
    client = broker.raw()
    try:
        client.send(m.connect_packet(client_id))
    except OSError:
        return None, []
    try:
        packets = [client.recv_packet(5)]
    except (m.ConnectionClosed, ConnectionError):
        return None, []
    connack = packets[0]
    assert connack.type == m.CONNACK, connack
    if connack.reason != 0:
        packets += client.expect_close(5)
        return connack, packets
    client.disconnect()
    return connack, packets


def test_max_connections_refuses_the_next_one(start_broker):
    broker = start_broker("[limits]\nmax_connections = 3\n")
    clients = [broker.raw() for _ in range(3)]
    for n, client in enumerate(clients):
        client.connect(f"conn-{n}")

    extra = broker.raw()
    try:
        extra.send(m.connect_packet("conn-extra"))
        packets = extra.expect_close(5)
    except OSError:
        packets = []
    assert all(p.type == m.CONNACK for p in packets), packets
    assert all(p.reason in (m.RC_QUOTA_EXCEEDED, m.RC_SERVER_BUSY) for p in packets), packets

    # The existing connections are unaffected.
    for client in clients:
        client.send(m.pingreq_packet())
        client.expect(m.PINGRESP)
    # Once one leaves, a new connection is accepted.
    clients[0].disconnect()
    def accepted():
        connack, _ = _try_connect(broker, "conn-again")
        return connack is not None and connack.reason == 0
    wait_until(accepted, 5, "a free connection slot", interval=0.1)


def test_max_packet_size_closes_an_oversized_publish(start_broker, version):
    broker = start_broker("[limits]\nmax_packet_size = 1024\n")
    client = broker.raw(version)
    connack = client.connect("big-talker")
    if version == m.V5:
        assert connack.props.get(m.MAXIMUM_PACKET_SIZE) == 1024
    subscriber = broker.raw(version)
    subscriber.connect("big-listener")
    subscriber.subscribe([("size/#", 1)])
    client.publish("size/ok", b"y" * 900, qos=1)
    assert subscriber.recv_publish().payload == b"y" * 900
    client.try_send(m.publish_packet("size/big", b"x" * 2000, qos=1, packet_id=2,
                                     version=version))
    expect_broker_disconnect(broker, client, m.RC_PACKET_TOO_LARGE)
    subscriber.expect_no_packet(0.3)


def test_connect_timeout_closes_a_silent_connection(start_broker):
    broker = start_broker("[limits]\nconnect_timeout_ms = 500\n")
    silent = broker.raw()
    opened = time.monotonic()
    assert silent.expect_close(4) == []
    elapsed = time.monotonic() - opened
    assert 0.3 <= elapsed <= 2.5, f"closed after {elapsed:.2f} s"


def test_connect_timeout_closes_a_half_sent_connect(start_broker):
    broker = start_broker("[limits]\nconnect_timeout_ms = 500\n")
    slowloris = broker.raw()
    slowloris.send(m.connect_packet("slow")[:5])
    opened = time.monotonic()
    assert slowloris.expect_close(4) == []
    assert time.monotonic() - opened <= 2.5


def test_connected_client_is_not_subject_to_connect_timeout(start_broker):
    broker = start_broker("[limits]\nconnect_timeout_ms = 500\n")
    client = broker.raw()
    client.connect("prompt", keep_alive=0)
    client.expect_no_packet(1.0)
    client.send(m.pingreq_packet())
    client.expect(m.PINGRESP)
    client.disconnect()


def test_outgoing_inflight_window_is_bounded_by_config(start_broker):
    broker = start_broker("[limits]\nmax_inflight_out = 2\n")
    _check_inflight_window(broker, None, 2)


def test_outgoing_inflight_window_is_bounded_by_client_receive_maximum(broker):
    _check_inflight_window(broker, {m.RECEIVE_MAXIMUM: 1}, 1)


def _check_inflight_window(broker, connect_props, window):
    subscriber = broker.raw()
    subscriber.connect("windowed", props=connect_props)
    subscriber.subscribe([("win/t", 1)])
    publisher = broker.raw()
    publisher.connect("win-pub")
    for n in range(6):
        publisher.publish("win/t", str(n).encode(), qos=1)
    got = [subscriber.expect(m.PUBLISH) for _ in range(window)]
    subscriber.expect_no_packet(0.5)  # the window is full until something is acknowledged
    received = list(got)
    while len(received) < 6:
        subscriber.ack(got.pop(0))
        got.append(subscriber.expect(m.PUBLISH))
        received.append(got[-1])
        if len(received) < 6:
            subscriber.expect_no_packet(0.1)
    assert [int(p.payload) for p in received] == list(range(6))


def test_many_connections_and_subscriptions(broker):
    clients = []
    for n in range(40):
        client = broker.raw()
        client.connect(f"crowd-{n}")
        client.subscribe([(f"crowd/{n}", 1), ("crowd/all", 0)])
        clients.append(client)
    publisher = broker.raw()
    publisher.connect("crowd-pub")
    publisher.publish("crowd/all", b"everyone", qos=1)
    for n, client in enumerate(clients):
        publisher.publish(f"crowd/{n}", f"only-{n}".encode(), qos=1)
    for n, client in enumerate(clients):
        assert client.recv_publish().payload == b"everyone"
        assert client.recv_publish().payload == f"only-{n}".encode()
        client.disconnect()
