"""Persistent sessions: subscriptions and queued messages survive reconnects, within bounds."""

import time

import pytest

import mqtt_raw as m

def _persistent(version):
    """CONNECT arguments for a session that outlives the connection."""
    if version == m.V5:
        return dict(clean=False, props={m.SESSION_EXPIRY_INTERVAL: 300})
    return dict(clean=False)


def _fresh_persistent(broker, version, client_id, filters):
    """Starts a new persistent session subscribed to filters, then goes away."""
    client = broker.raw(version)
    first = dict(_persistent(version))
    if version == m.V5:
        first["clean"] = True  # new session, kept after disconnect by its expiry
    else:
        client.connect(client_id, clean=True)  # discard leftovers, then start persistent
        client.disconnect()
        client = broker.raw(version)
    client.connect(client_id, **first)
    client.subscribe(filters)
    client.disconnect()


def test_subscription_survives_reconnect(broker, version):
    _fresh_persistent(broker, version, "keeper", [("keep/t", 1)])
    client = broker.raw(version)
    assert client.connect("keeper", **_persistent(version)).session_present
    publisher = broker.raw(version)
    publisher.connect("keeper-pub")
    publisher.publish("keep/t", b"still-subscribed", qos=1)
    assert client.recv_publish().payload == b"still-subscribed"
    client.disconnect()


def test_messages_queued_while_away_arrive_in_order(broker, version):
    _fresh_persistent(broker, version, "traveller", [("q/t", 2)])
    publisher = broker.raw(version)
    publisher.connect("q-pub")
    for n in range(20):
        publisher.publish("q/t", str(n).encode(), qos=1 + n % 2)
    client = broker.raw(version)
    assert client.connect("traveller", **_persistent(version)).session_present
    got = [client.recv_publish() for _ in range(20)]
    assert [int(p.payload) for p in got] == list(range(20))
    assert [p.qos for p in got] == [1 + n % 2 for n in range(20)]
    client.expect_no_packet(0.3)
    client.disconnect()


def test_paho_persistent_session_receives_queued_messages(broker, version):
    kwargs = dict(clean=False, session_expiry=300) if version == m.V5 else dict(clean=False)
    client = broker.paho("paho-persist", version, **kwargs)
    client.subscribe("pq/t", qos=1)
    client.disconnect()
    publisher = broker.paho("paho-persist-pub", version)
    for n in range(5):
        publisher.publish("pq/t", str(n).encode(), qos=1)
    client = broker.paho("paho-persist", version, **kwargs)
    assert client.session_present
    assert [int(msg.payload) for msg in client.get_messages(5)] == list(range(5))


def test_clean_start_discards_the_session(broker, version):
    _fresh_persistent(broker, version, "forgetful", [("cs/t", 1)])
    publisher = broker.raw(version)
    publisher.connect("cs-pub")
    publisher.publish("cs/t", b"queued", qos=1)
    client = broker.raw(version)
    assert client.connect("forgetful", clean=True).session_present is False
    # Neither the queued message nor the subscription remain.
    publisher.publish("cs/t", b"live", qos=1)
    client.expect_no_packet(0.5)
    client.disconnect()


def test_session_expires_after_its_interval_v5(broker):
    client = broker.raw()
    client.connect("ephemeral", props={m.SESSION_EXPIRY_INTERVAL: 1})
    client.subscribe("eph/t")
    client.disconnect()
    time.sleep(1.6)  # the expiry itself
    client = broker.raw()
    assert client.connect("ephemeral", clean=False,
                          props={m.SESSION_EXPIRY_INTERVAL: 1}).session_present is False
    client.disconnect()


def test_disconnect_can_shorten_session_expiry_v5(broker):
    client = broker.raw()
    client.connect("shorten", props={m.SESSION_EXPIRY_INTERVAL: 300})
    client.send(m.disconnect_packet(props={m.SESSION_EXPIRY_INTERVAL: 0}))
    # The broker closes once it has handled the DISCONNECT; a reconnect sent before that
    # could take the still-open session over (connections are not ordered among themselves).
    assert client.expect_close() == []
    client = broker.raw()
    assert client.connect("shorten", clean=False).session_present is False
    client.disconnect()


def test_disconnect_cannot_set_expiry_when_connect_had_zero_v5(broker):
    client = broker.raw()
    client.connect("zero-then-some")
    client.send(m.disconnect_packet(0, {m.SESSION_EXPIRY_INTERVAL: 60}))
    packets = client.expect_close()
    # The broker may answer with DISCONNECT 0x82; the session must not have been kept.
    assert all(p.reason == m.RC_PROTOCOL_ERROR for p in packets if p.type == m.DISCONNECT)
    client = broker.raw()
    assert client.connect("zero-then-some", clean=False).session_present is False
    client.disconnect()


def _sys_counter(broker, name: str, minimum: int, timeout: float = 6.0) -> int:
    """Awaits $SYS/broker/<name> reaching at least minimum; returns the value."""
    watcher = broker.paho(f"sys-{name.replace('/', '-')}")
    watcher.subscribe(f"$SYS/broker/{name}", qos=0)
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            msg = watcher.get_message(timeout=max(0.05, deadline - time.monotonic()))
        except AssertionError:
            break
        value = int(msg.payload)
        if value >= minimum:
            watcher.close()
            return value
    raise AssertionError(f"$SYS/broker/{name} = {value}, expected >= {minimum}")


@pytest.mark.parametrize("policy,expected", [
    ("drop_oldest", list(range(5, 10))),
    ("drop_new", list(range(0, 5))),
])
def test_queue_bound_drops_by_policy(start_broker, version, policy, expected):
    broker = start_broker(
        f'[limits]\nmax_queued_messages = 5\nqueue_full_policy = "{policy}"\n'
        "[sys]\ninterval_s = 1\n")
    _fresh_persistent(broker, version, "bounded", [("bq/t", 1)])
    publisher = broker.raw(version)
    publisher.connect("bq-pub")
    for n in range(10):
        publisher.publish("bq/t", str(n).encode(), qos=1)
    client = broker.raw(version)
    assert client.connect("bounded", **_persistent(version)).session_present
    got = [int(client.recv_publish().payload) for _ in range(5)]
    assert got == expected
    client.expect_no_packet(0.5)
    client.disconnect()
    assert _sys_counter(broker, "messages/dropped/queue_full", 5) >= 5


def test_queued_bytes_bound_drops(start_broker):
    broker = start_broker('[limits]\nmax_queued_bytes = 4096\nqueue_full_policy = "drop_new"\n')
    _fresh_persistent(broker, m.V5, "byte-bounded", [("bb/t", 1)])
    publisher = broker.raw()
    publisher.connect("bb-pub")
    for n in range(10):
        publisher.publish("bb/t", bytes([n]) * 1000, qos=1)
    client = broker.raw()
    assert client.connect("byte-bounded", **_persistent(m.V5)).session_present
    got = []
    while True:
        try:
            got.append(client.recv_publish(timeout=0.7).payload[0])
        except TimeoutError:
            break
    assert 1 <= len(got) <= 4 and got == list(range(len(got))), got


def test_queue_full_disconnect_policy_v5(start_broker):
    broker = start_broker(
        '[limits]\nmax_queued_messages = 3\nmax_inflight_out = 1\n'
        'queue_full_policy = "disconnect"\n')
    slow = broker.raw()
    slow.connect("slow-reader")
    slow.subscribe([("qd/t", 1)])
    publisher = broker.raw()
    publisher.connect("qd-pub")
    # One message in flight (unacknowledged), three queued, the fifth overflows.
    for n in range(5):
        publisher.publish("qd/t", str(n).encode(), qos=1)
    packets = slow.expect_close()
    disconnects = [p for p in packets if p.type == m.DISCONNECT]
    assert disconnects and disconnects[-1].reason == m.RC_QUOTA_EXCEEDED, packets
    broker.wait_warning_any(["quota_exceeded"])


def test_many_sessions_keep_their_own_queues(broker):
    for n in range(5):
        _fresh_persistent(broker, m.V5, f"many-{n}", [(f"ms/{n}", 1), ("ms/all", 1)])
    publisher = broker.raw()
    publisher.connect("ms-pub")
    for n in range(5):
        publisher.publish(f"ms/{n}", f"own-{n}".encode(), qos=1)
    publisher.publish("ms/all", b"shared", qos=1)
    for n in range(5):
        client = broker.raw()
        assert client.connect(f"many-{n}", **_persistent(m.V5)).session_present
        assert [client.recv_publish().payload for _ in range(2)] == [f"own-{n}".encode(),
                                                                      b"shared"]
        client.disconnect()
