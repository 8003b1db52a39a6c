"""A service rebuilds its state from a stream after it restarts, across a kill -9 of ternd.

The door-lock service keeps, per door, whether it is locked, how many events it saw and the
last event's sequence number, from events on doors/{id}/events. The test keeps the same
state in a reference model from what it published (and had acknowledged), and checks that
the service's state equals it: live, after the service restarted, and after ternd itself
was killed with SIGKILL and started again on its data directory.
"""

from __future__ import annotations

import json
import random

from conftest import run_tern
from streamkit import DoorLockService, DoorModel, Publisher, StreamReader, door_event

DOORS = [f"d{i}" for i in range(7)]


class Traffic:
    """Random door events, published at QoS 1 (each acknowledged), and the model of them."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seq = 0
        self.model = DoorModel()
        self.published: list[tuple[str, bytes]] = []

    def send(self, broker, count: int) -> None:
        batch = []
        for _ in range(count):
            event = door_event(self.rng.choice(DOORS), self.rng.choice(["lock", "unlock"]), self.seq)
            self.seq += 1
            batch.append(event)
        publisher = Publisher(broker.host, broker.port)
        try:
            publisher.publish_all(batch)
        finally:
            publisher.close()
        for topic, payload in batch:
            self.model.apply(topic, payload)
        self.published += batch


def test_door_lock_state_is_rebuilt_from_the_stream_after_restarts(launcher):
    traffic = Traffic(seed=20261128)
    broker = launcher.start()

    # A first instance, live from an empty stream.
    first = DoorLockService(broker.host, broker.port)
    first.go_live()
    traffic.send(broker, 150)
    assert first.wait_for(traffic.model.snapshot()) == traffic.model.snapshot()
    first.stop()

    # Events keep flowing while the service is down; then ternd is killed and restarted on
    # the same data directory, and more events arrive.
    traffic.send(broker, 200)
    broker.kill()
    broker = launcher.start()
    traffic.send(broker, 50)

    second = DoorLockService(broker.host, broker.port)
    replayed = second.rebuild()
    assert replayed == len(traffic.published)
    assert second.model.snapshot() == traffic.model.snapshot()

    # Nothing lost, nothing doubled, in publication order, offsets from 0 without gaps.
    reader = StreamReader(broker.host, broker.port)
    events = reader.read_all("doors")
    reader.close()
    assert [e.offset for e in events] == list(range(len(traffic.published)))
    assert [(e.topic, e.payload) for e in events] == traffic.published

    # The rebuilt instance follows live events from where the stream ended.
    second.go_live()
    traffic.send(broker, 40)
    assert second.wait_for(traffic.model.snapshot()) == traffic.model.snapshot()
    second.stop()


def test_state_rebuilt_through_the_command_line_matches_the_model(launcher):
    traffic = Traffic(seed=7)
    broker = launcher.start()
    # More than the broker answers in one request (max_stream_read = 1000): tern pages.
    traffic.send(broker, 1100)
    broker.kill()
    broker = launcher.start()

    result = run_tern(broker, "stream", "read", "doors", "--from", "0", "--format", "json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(traffic.published)
    rebuilt = DoorModel()
    for expected_offset, line in enumerate(lines):
        event = json.loads(line)
        assert event["stream"] == "doors"
        assert event["offset"] == expected_offset
        rebuilt.apply(event["topic"], event["payload"].encode())
    assert rebuilt.snapshot() == traffic.model.snapshot()
