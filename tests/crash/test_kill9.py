"""Acknowledged means kept: ternd (durability fsync) killed with SIGKILL at a random moment
of QoS 1 / QoS 2 traffic, then started again on the same data directory.

Every message whose PUBACK, PUBREC or PUBCOMP a publisher received must reach the
persistent-session subscriber; per publisher in order (a repeat of an earlier message is a
duplicate, allowed at QoS 1 only); no QoS 2 message twice. A message that was published but
not acknowledged may or may not arrive.
"""

from __future__ import annotations

import os
import random
import time

import pytest

import mqtt_raw as m
from crashkit import (PahoPublisher, RawPublisher, Subscriber, check_deliveries, iterations,
                      payload)
from helpers import wait_until

MAX_PER_PUBLISHER = 20000
DRAIN_TIMEOUT_S = 30.0
KILL_DELAY_S = (0.2, 1.5)

# Each publisher's topic and the QoS its messages arrive at: the subscriber holds crash/q1/#
# at QoS 1 and crash/q2/# at QoS 2.
PUBLISHERS = [
    # name, client kind, publish QoS, topic, delivery QoS
    ("p1", PahoPublisher, 1, "crash/q1/p1", 1),
    ("p2", PahoPublisher, 2, "crash/q2/p2", 2),
    ("r1", RawPublisher, 2, "crash/q2/r1", 2),
    ("r2", RawPublisher, 2, "crash/q1/r2", 1),
]


def _barrier(port: int, subscriber: Subscriber) -> bool:
    """Publishes a last message on each subscription and awaits both at the subscriber: the
    session's queue and its redeliveries come before them."""
    client = m.RawClient("127.0.0.1", port, m.V5)
    client.connect("crash-barrier")
    client.publish("crash/q1/barrier", payload("barrier", 0, 0), qos=1)
    client.publish("crash/q2/barrier", payload("barrier", 1, 0), qos=2)
    client.disconnect()
    return subscriber.wait_for(
        lambda got: {("barrier", 0), ("barrier", 1)} <= subscriber.seen,
        DRAIN_TIMEOUT_S)


def run_iteration(launcher, iteration_seed: int, online: bool, resume: bool) -> str:
    rng = random.Random(iteration_seed)
    version = rng.choice([m.V5, m.V311])
    filler = rng.choice([0, 20, 100, 1000])
    delay = rng.uniform(*KILL_DELAY_S)
    context = (f"iteration seed {iteration_seed} (replay: TERN_CRASH_ITERATION_SEED="
               f"{iteration_seed}), subscriber MQTT {'5.0' if version == m.V5 else '3.1.1'}"
               f", {'online' if online else 'offline'} subscriber, publishers "
               f"{'resuming' if resume else 'not resuming'}, payload filler {filler}, "
               f"kill after {delay:.3f} s")
    print(context)

    broker = launcher.start()
    subscriber = Subscriber(launcher.port, "crash-sub", version)
    assert not subscriber.connect(first=True)
    subscriber.subscribe()
    if online:
        subscriber.start()
    else:
        subscriber.disconnect()

    publishers = [kind(name, launcher.port, qos, topic, MAX_PER_PUBLISHER, filler, resume)
                  for name, kind, qos, topic, _ in PUBLISHERS]
    delivery_qos = {name: dq for name, _, _, _, dq in PUBLISHERS}
    delivery_qos["barrier"] = 0
    for publisher in publishers:
        publisher.start()
    time.sleep(delay)  # the crash's random moment within the traffic
    broker.kill()

    for publisher in publishers:
        assert publisher.join(10), f"{publisher.name} still running after the kill; {context}"
    if online:
        assert subscriber.wait_closed(10), f"subscriber still connected; {context}"
    acked_before = {p.name: len(p.completed) for p in publishers}
    sent = {p.name: p.sent for p in publishers}
    assert sum(acked_before.values()) > 0, (
        f"nothing was acknowledged before the kill, the test proves nothing; {context}\n"
        + launcher.logs())

    launcher.start()
    assert subscriber.connect(), f"the subscriber's session did not survive; {context}\n" + (
        launcher.logs())
    subscriber.start()
    if resume:
        for publisher in publishers:
            publisher.reconnect_and_finish()
        for publisher in publishers:
            if isinstance(publisher, RawPublisher):
                publisher.join(DRAIN_TIMEOUT_S)
                assert not publisher.pending, (
                    f"{publisher.name}: flows unfinished after resuming: "
                    f"{len(publisher.pending)} flows, first (seq, stage) "
                    f"{list(publisher.pending.values())[:5]}; {publisher.rejected[:3]}; "
                    f"{context}\n" + launcher.logs())
            else:
                wait_until(lambda: not publisher.pending, DRAIN_TIMEOUT_S,
                           f"{publisher.name} to finish its flows after resuming "
                           f"(unfinished seqs {publisher.pending[:10]}; {context})")

    drained = _barrier(launcher.port, subscriber)
    subscriber.stop()
    counts = ", ".join(
        f"{p.name}: sent {sent[p.name]}, acked {acked_before[p.name]} before the kill"
        f"{f' and {len(p.completed)} in all' if resume else ''}, delivered "
        f"{sum(1 for d in subscriber.delivered if d[0] == p.name)}" for p in publishers)
    assert drained, (f"the barrier messages never arrived: the queue did not drain; {context}; "
                     f"{counts}\n" + launcher.logs())
    failures = check_deliveries(subscriber, publishers, delivery_qos,
                                require_all_sent=resume)
    assert not failures, (f"{context}; {counts}\n  " + "\n  ".join(failures) + "\n"
                          + launcher.logs())
    for publisher in publishers:
        if isinstance(publisher, PahoPublisher):
            publisher.paho.close()
    subscriber.client.close()
    launcher.brokers[-1].stop()
    return f"{context}: {counts}"


def _run(new_launcher, seed: int, label: str, count: int, online: bool, resume: bool):
    """Runs the iterations; TERN_CRASH_ITERATION_SEED=N replays the one iteration seeded N."""
    rng = random.Random(seed)
    replay = os.environ.get("TERN_CRASH_ITERATION_SEED")
    seeds = [int(replay)] if replay else [rng.randrange(1, 2**31)
                                          for _ in range(iterations(count))]
    for index, iteration_seed in enumerate(seeds):
        launcher = new_launcher(f"{label}-{index}")
        print(f"iteration {index}: " + run_iteration(launcher, iteration_seed, online, resume))


def test_messages_queued_for_an_offline_subscriber_survive_kill(new_launcher, seed):
    _run(new_launcher, seed, "offline", 5, online=False, resume=False)


def test_messages_in_flight_to_an_online_subscriber_survive_kill(new_launcher, seed):
    _run(new_launcher, seed, "online", 5, online=True, resume=False)


@pytest.mark.parametrize("online", [False, True], ids=["offline", "online"])
def test_resuming_publishers_get_exactly_once_across_kill(new_launcher, seed, online):
    """Publishers keep their sessions and finish their flows after the restart, as paho
    does: every message is then acknowledged, so every one must arrive, and a QoS 2 PUBLISH
    retransmitted with DUP must not be delivered again if the broker had taken it."""
    _run(new_launcher, seed, f"resume-{'online' if online else 'offline'}", 3,
         online=online, resume=True)
