"""Reading streams: from an offset, from a time, a maximum count, retention by bytes and by
age, unknown streams; by request/reply and with `tern stream read`."""

from __future__ import annotations

import datetime
import json
import socket
import time
from types import SimpleNamespace

from conftest import run_tern
from streamkit import Publisher, StreamReader


def publish(broker, messages, user_properties=()):
    publisher = Publisher(broker.host, broker.port)
    try:
        publisher.publish_all(messages, user_properties)
    finally:
        publisher.close()


def log_events(start: int, count: int):
    return [(f"log/{i % 3}", f"event {i}".encode()) for i in range(start, start + count)]


def iso(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_read_from_an_offset_with_a_maximum_count(broker):
    publish(broker, log_events(0, 10), user_properties=[("unit", "mm/s")])
    reader = StreamReader(broker.host, broker.port)

    events, end = reader.request("log", {"from": 2, "max": 3})
    assert [e.offset for e in events] == [2, 3, 4]
    assert [(e.topic, e.payload) for e in events] == log_events(2, 3)
    assert all(e.user_properties == [("unit", "mm/s")] for e in events)
    assert (end.next_offset, end.count, end.error) == (5, 3, None)

    events, end = reader.request("log", {"from": 7})
    assert [e.offset for e in events] == [7, 8, 9]
    assert (end.next_offset, end.count) == (10, 3)

    events, end = reader.request("log", {"from": 10})
    assert events == [] and (end.next_offset, end.count) == (10, 0)

    # An empty payload reads from the start.
    events, end = reader.request("log", b"")
    assert [e.offset for e in events] == list(range(10))
    reader.close()


def test_read_from_a_time(broker):
    publish(broker, log_events(0, 5))
    reader = StreamReader(broker.host, broker.port)
    first, _ = reader.request("log", {"from": 0})
    last_time = max(e.time_ms for e in first)
    # Events are stamped with the wall clock: the second batch must start in a later ms.
    while int(time.time() * 1000) <= last_time:
        time.sleep(0.001)
    since = int(time.time() * 1000)
    publish(broker, log_events(5, 4))

    events, end = reader.request("log", {"from_time": since})
    assert [e.offset for e in events] == [5, 6, 7, 8]
    assert all(e.time_ms >= since for e in events)
    assert end.next_offset == 9

    events, _ = reader.request("log", {"from_time": iso(since), "max": 2})
    assert [e.offset for e in events] == [5, 6]
    reader.close()

    result = run_tern(broker, "stream", "read", "log", "--from", iso(since))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["5", "6", "7", "8"]
    assert lines[0].split(" ", 3)[2:] == ["log/2", "event 5"]


def test_unknown_stream_and_bad_requests_answer_tern_error(broker):
    reader = StreamReader(broker.host, broker.port)
    events, end = reader.request("nope", {"from": 0})
    assert events == [] and end.error == "unknown stream"
    events, end = reader.request("log", b"{\"from\": -1}")
    assert events == [] and end.error and "from" in end.error
    events, end = reader.request("log", {}, topic="$tern/streams/log/write")
    assert events == [] and end.error and "unknown stream operation" in end.error
    reader.close()

    result = run_tern(broker, "stream", "read", "nope", "--from", "0")
    assert result.returncode == 4
    assert "unknown stream" in result.stderr


def test_command_line_options(broker):
    publish(broker, log_events(0, 6))
    result = run_tern(broker, "stream", "read", "log", "--from", "1", "--max", "2", "--format", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["offset"], e["topic"], e["payload"]) for e in events] == \
        [(1, "log/1", "event 1"), (2, "log/2", "event 2")]
    assert all(e["time"].endswith("Z") and e["time_ms"] > 0 for e in events)

    result = run_tern(broker, "stream", "read", "log", "--from", "yesterday")
    assert result.returncode == 1 and "--from" in result.stderr
    result = run_tern(broker, "stream", "read", "log", "--from", "0", "--max", "0")
    assert result.returncode == 1

    # Nothing listening: a connection failure.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = SimpleNamespace(host="127.0.0.1", port=sock.getsockname()[1])
        result = run_tern(nowhere, "stream", "read", "log", "--connect-timeout", "2000")
    assert result.returncode == 2, result.stderr


def test_retention_by_bytes_removes_the_oldest_events(broker):
    # 1,000 events of 100 bytes into a stream limited to 2,000 payload bytes. The broker
    # trims after every 1,000 appends and at each retention round (every second here, for
    # the "aging" stream), so right after the last append fewer than 1,000 events are
    # over the limit; after the next round at most 20 remain, the newest, with their
    # offsets.
    publish(broker, [(f"small/{i}", bytes([65 + i % 26]) * 100) for i in range(1000)])
    reader = StreamReader(broker.host, broker.port)
    try:
        events = reader.read_all("small")
        assert 0 < len(events) < 1000 + 20
        assert [e.offset for e in events] == list(range(1000 - len(events), 1000))
        deadline = time.monotonic() + 10
        while len(events) > 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # polls for the retention round, which has no event to await
            events = reader.read_all("small")
    finally:
        reader.close()
    assert 0 < len(events) <= 20
    assert sum(len(e.payload) for e in events) <= 2000
    assert [e.offset for e in events] == list(range(1000 - len(events), 1000))
    assert events[-1].topic == "small/999"


def test_retention_by_age_removes_old_events_and_offsets_continue(broker):
    publish(broker, [(f"aging/{i}", b"old") for i in range(5)])
    reader = StreamReader(broker.host, broker.port)
    events, _ = reader.request("aging", {"from": 0})
    assert [e.offset for e in events] == [0, 1, 2, 3, 4]

    # max_age_s = 1: the retention timer runs every second, so within a few seconds the
    # stream is empty.
    deadline = time.monotonic() + 6.0
    while events:
        assert time.monotonic() < deadline, f"{len(events)} events older than 1 s still kept"
        time.sleep(0.1)
        events, _ = reader.request("aging", {"from": 0})

    publish(broker, [("aging/new", b"new")])
    events, _ = reader.request("aging", {"from": 0})
    assert [(e.offset, e.payload) for e in events] == [(5, b"new")]
    reader.close()
