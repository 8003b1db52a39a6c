"""Shared subscriptions ($share/<group>/<filter>)."""

import queue
import time

import mqtt_raw as m
from helpers import expect_broker_disconnect, raw_collect_until_barrier


def _drain(clients, total, timeout=8.0):
    """Collects messages from paho clients until total have arrived; returns per client."""
    got = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < total:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {sum(map(len, got))} of {total} arrived: {got}")
        for index, client in enumerate(clients):
            try:
                got[index].append(int(client.messages.get(timeout=0.02).payload))
            except queue.Empty:
                pass
    return got


def test_messages_are_balanced_across_group_members(broker):
    members = [broker.paho(f"member-{n}") for n in range(2)]
    for member in members:
        assert member.subscribe("$share/g/sh/#", qos=1) == [1]
    plain = broker.paho("plain")
    plain.subscribe("sh/#", qos=1)
    publisher = broker.paho("sh-pub")
    for n in range(20):
        publisher.publish("sh/t", str(n).encode(), qos=1)

    got = _drain(members, 20)
    assert all(got), f"a member received nothing: {got}"
    assert sorted(got[0] + got[1]) == list(range(20)), "lost or duplicated"
    for member_got in got:
        assert member_got == sorted(member_got), "order within a member broken"
    for member in members:
        member.expect_no_message(0.3)
    # A normal subscription is unaffected by the group.
    assert [int(msg.payload) for msg in plain.get_messages(20)] == list(range(20))


def test_each_group_gets_every_message(broker):
    first = [broker.paho(f"g1-{n}") for n in range(2)]
    for member in first:
        member.subscribe("$share/one/gg/t", qos=1)
    second = broker.paho("g2-0")
    second.subscribe("$share/two/gg/t", qos=1)
    publisher = broker.paho("gg-pub")
    for n in range(10):
        publisher.publish("gg/t", str(n).encode(), qos=1)
    assert sorted(sum(_drain(first, 10), [])) == list(range(10))
    assert [int(msg.payload) for msg in second.get_messages(10)] == list(range(10))


def test_unacknowledged_messages_of_a_lost_member_go_to_another(broker):
    hoarder = broker.raw()
    hoarder.connect("hoarder")  # session expiry 0: the session ends with the connection
    hoarder.subscribe([("$share/work/jobs/#", 1)])
    worker = broker.paho("worker")
    worker.subscribe("$share/work/jobs/#", qos=1)

    publisher = broker.raw()
    publisher.connect("jobs-pub")
    for n in range(10):
        publisher.publish("jobs/t", str(n).encode(), qos=1)

    held = []
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline:
        held.append(int(hoarder.expect(m.PUBLISH).payload))
    # Take whatever else already reached the hoarder, without acknowledging any of it.
    while True:
        try:
            held.append(int(hoarder.expect(m.PUBLISH, timeout=0.3).payload))
        except TimeoutError:
            break
    assert held, "the hoarder never got a message"
    hoarder.abort()

    received = set()
    deadline = time.monotonic() + 8
    while received != set(range(10)):
        left = deadline - time.monotonic()
        assert left > 0, f"worker has {sorted(received)}; hoarder held {held}"
        try:
            received.add(int(worker.messages.get(timeout=left).payload))
        except queue.Empty:
            pass
    assert set(held) <= received


def test_retained_messages_are_not_sent_to_new_shared_subscriptions(broker):
    publisher = broker.raw()
    publisher.connect("sr-pub")
    publisher.publish("sr/t", b"retained", qos=1, retain=True)
    member = broker.raw()
    member.connect("sr-member")
    member.subscribe([("$share/g/sr/t", 1), ("sr-end", 1)])
    publisher.publish("sr-end", b"", qos=1)
    assert raw_collect_until_barrier(member, "sr-end") == []


def test_no_local_on_shared_subscription_is_a_protocol_error(broker):
    client = broker.raw()
    client.connect("sh-nolocal")
    client.send(m.subscribe_packet(1, [("$share/g/t", m.sub_options(qos=1, no_local=True))]))
    expect_broker_disconnect(broker, client, m.RC_PROTOCOL_ERROR)


def test_invalid_share_names(broker):
    for n, bad in enumerate(["$share/g", "$share//t", "$share/g+/t", "$share/g#/t"]):
        client = broker.raw()
        client.connect(f"sh-bad-{n}")
        client.send(m.subscribe_packet(1, [(bad, 1)]))
        pkt = client.recv_packet()
        if pkt.type == m.SUBACK:
            assert pkt.reasons[0] in (m.RC_TOPIC_FILTER_INVALID, 0x9E), (bad, pkt)
            client.disconnect()
        else:
            assert pkt.type == m.DISCONNECT, (bad, pkt)
            assert pkt.reason in (m.RC_MALFORMED_PACKET, m.RC_PROTOCOL_ERROR,
                                  m.RC_TOPIC_FILTER_INVALID), (bad, pkt)
            client.expect_close()


def test_shared_subscriptions_can_be_turned_off(start_broker):
    broker = start_broker("[features]\nshared_subscriptions = false\n")
    client = broker.raw()
    assert client.connect("sh-off").props.get(m.SHARED_SUBSCRIPTION_AVAILABLE) == 0
    client.send(m.subscribe_packet(1, [("$share/g/t", 1)]))
    pkt = client.recv_packet()
    if pkt.type == m.SUBACK:
        assert pkt.reasons == [0x9E]
    else:
        assert (pkt.type, pkt.reason) == (m.DISCONNECT, 0x9E), pkt


def test_unsubscribe_from_shared_subscription(broker):
    member = broker.raw()
    member.connect("sh-unsub")
    member.subscribe([("$share/g/su/t", 1), ("su-end", 1)])
    assert member.unsubscribe("$share/g/su/t").reasons == [m.RC_SUCCESS]
    publisher = broker.raw()
    publisher.connect("su-pub")
    publisher.publish("su/t", b"x", qos=1)
    publisher.publish("su-end", b"", qos=1)
    assert raw_collect_until_barrier(member, "su-end") == []
