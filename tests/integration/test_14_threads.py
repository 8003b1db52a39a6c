"""threads = N: connections spread over several event loops, one broker.

Connections are dealt to the loops in turn as they are accepted, so two clients that
connect one after the other sit on different threads: every exchange below crosses from
one loop to the other, in both directions.
"""

import threading

import pytest

import mqtt_raw as m
from helpers import expect_broker_disconnect

THREADS = ["--threads", "2"]


def start_threaded(start_broker, config_toml=None):
    broker = start_broker(config_toml, extra_args=THREADS, env_threads=False)
    broker.wait_log(r"connections shared among 2 threads")
    return broker


def connected(broker, client_id, subscribe_to=None, qos=0):
    """A raw MQTT 5.0 client, connected, and subscribed when a filter is given."""
    client = broker.raw()
    client.connect(client_id)
    if subscribe_to is not None:
        client.subscribe([(subscribe_to, qos)])
    return client


def test_the_configuration_key_starts_the_loops(start_broker):
    broker = start_broker("threads = 3\n", env_threads=False)
    broker.wait_log(r"connections shared among 3 threads")
    subscriber = connected(broker, "cfg-sub", "cfg/t", qos=1)
    publishers = [connected(broker, f"cfg-pub-{n}") for n in range(3)]
    for n, publisher in enumerate(publishers):
        publisher.publish("cfg/t", f"from {n}".encode(), qos=1)
    got = sorted(subscriber.recv_publish().payload for _ in publishers)
    assert got == [b"from 0", b"from 1", b"from 2"]


@pytest.mark.parametrize("qos", [1, 2])
def test_fan_in_across_loops_keeps_every_publishers_order(start_broker, qos):
    broker = start_threaded(start_broker)
    subscriber = broker.paho("fanin-sub")
    assert subscriber.subscribe("fanin/#", qos=qos) == [qos]
    per_publisher = 150
    publishers = [broker.paho(f"fanin-pub-{n}") for n in range(5)]

    def publish_all(n, client):
        for seq in range(per_publisher):
            client.publish(f"fanin/{n}", f"{n}:{seq}".encode(), qos=qos)

    workers = [threading.Thread(target=publish_all, args=(n, c)) for n, c in enumerate(publishers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    received = subscriber.get_messages(len(publishers) * per_publisher, timeout=30)
    sequences: dict[int, list[int]] = {}
    for message in received:
        n, seq = message.payload.decode().split(":")
        sequences.setdefault(int(n), []).append(int(seq))
    # Every message once (QoS 2: exactly once; QoS 1: nothing was lost or resent here),
    # in the order its publisher sent it.
    assert sequences == {n: list(range(per_publisher)) for n in range(len(publishers))}
    subscriber.expect_no_message(0.3)


def test_small_and_large_packets_reach_subscribers_on_both_loops(start_broker):
    broker = start_threaded(start_broker)
    subscribers = [connected(broker, f"size-sub-{n}", "size/t", qos=1) for n in range(4)]
    publisher = connected(broker, "size-pub")
    # Small packets are copied between loops; large ones are shared among the receivers.
    payloads = [b"s", bytes(range(256)) * 3, b"L" * 200_000, b"t" * 900, b"M" * 70_000]
    for payload in payloads:
        publisher.publish("size/t", payload, qos=1)
    for subscriber in subscribers:
        assert [subscriber.recv_publish(timeout=10).payload for _ in payloads] == payloads


def test_takeover_from_the_other_loop_keeps_the_session(start_broker):
    broker = start_threaded(start_broker)
    first = broker.raw()
    first.connect("roamer", clean=False, props={m.SESSION_EXPIRY_INTERVAL: 600})
    first.subscribe([("roam/t", 1)])
    second = broker.raw()  # the next accept: the other loop
    connack = second.connect("roamer", clean=False, props={m.SESSION_EXPIRY_INTERVAL: 600})
    assert connack.session_present
    packets = first.expect_close()
    assert [p.reason for p in packets if p.type == m.DISCONNECT] == [m.RC_SESSION_TAKEN_OVER], packets
    connected(broker, "roam-pub").publish("roam/t", b"still subscribed", qos=1)
    assert second.recv_publish().payload == b"still subscribed"


def test_malformed_input_on_one_loop_closes_only_that_connection(start_broker):
    broker = start_threaded(start_broker)
    subscriber = connected(broker, "steady-sub", "steady/t")
    attacker = connected(broker, "attacker")  # the other loop
    attacker.send(b"\x30\xff\xff\xff\xff\x01")  # a remaining length of five bytes
    expect_broker_disconnect(broker, attacker, [m.RC_MALFORMED_PACKET])
    connected(broker, "steady-pub").publish("steady/t", b"unharmed")
    assert subscriber.recv_publish().payload == b"unharmed"


def test_a_packet_split_across_reads_is_put_together(start_broker):
    broker = start_threaded(start_broker)
    subscriber = connected(broker, "split-sub", "split/t", qos=1)
    # The other loop: its partial packets wait on the broker's thread.
    publisher = connected(broker, "split-pub")
    data = m.publish_packet("split/t", b"p" * 5000, 1, False, False, 7, None, m.V5)
    for start in range(0, len(data), 1000):
        publisher.send(data[start:start + 1000])
        if start == 0:
            subscriber.expect_no_packet(0.1)
    assert publisher.expect(m.PUBACK).packet_id == 7
    assert subscriber.recv_publish().payload == b"p" * 5000


def test_sigterm_closes_the_connections_of_every_loop(start_broker):
    broker = start_threaded(start_broker)
    clients = [connected(broker, f"bye-{n}") for n in range(4)]
    broker.stop(expect_exit_code=0)
    for client in clients:
        packets = client.expect_close()
        # Server shutting down (0x8B).
        assert [p.reason for p in packets if p.type == m.DISCONNECT] == [0x8B], packets
