"""Clients for the stream tests: a reader of `$tern/streams/{name}/read` (request/reply over
MQTT 5 with paho), and the door-lock service that rebuilds its state from the `doors`
stream.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 10.0


@dataclass
class Event:
    offset: int
    time_ms: int
    topic: str
    payload: bytes
    user_properties: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class End:
    next_offset: int | None
    count: int | None
    error: str | None


def _user_properties(message) -> list[tuple[str, str]]:
    props = getattr(message, "properties", None)
    return list(getattr(props, "UserProperty", []) or [])


class _Client:
    """A paho 5.0 client on its own network thread with waits that are bounded."""

    def __init__(self, host: str, port: int, client_id: str = "", clean: bool = True,
                 session_expiry: int | None = None):
        self.client = mqtt.Client(client_id=client_id or f"streams-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        self.messages: queue.Queue = queue.Queue()
        self._connected = threading.Event()
        self._subacked = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: self._connected.set()
        self.client.on_subscribe = lambda c, u, mid, granted, p=None: self._subacked.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        props = Properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            props.SessionExpiryInterval = session_expiry
        self.client.connect(host, port, 30, clean_start=clean, properties=props)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT):
            self.close()
            raise AssertionError(f"no CONNACK from {host}:{port}")

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subacked.clear()
        result, _ = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self._subacked.wait(TIMEOUT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, qos: int = 1,
                properties: Properties | None = None):
        return self.client.publish(topic, payload, qos, properties=properties)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher(_Client):
    """Publishes at QoS 1 and waits for every PUBACK."""

    def publish_all(self, messages: list[tuple[str, bytes]], user_properties=()) -> None:
        infos = []
        for topic, payload in messages:
            props = None
            if user_properties:
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = list(user_properties)
            infos.append(self.publish(topic, payload, 1, props))
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), "a QoS 1 publish was not acknowledged"


class StreamReader(_Client):
    """Reads streams by request/reply: one reply topic a reader, correlation data a
    request."""

    def __init__(self, host: str, port: int):
        super().__init__(host, port)
        self.reply_topic = f"streams-test/reply/{uuid.uuid4().hex}"
        self.subscribe(self.reply_topic, 1)

    def request(self, name: str, body: dict | bytes | None = None,
                topic: str | None = None) -> tuple[list[Event], End]:
        """Sends one read request; returns the events answered and the end marker."""
        correlation = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = correlation
        payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        info = self.publish(topic or f"$tern/streams/{name}/read", payload, 1, props)
        info.wait_for_publish(TIMEOUT)
        events: list[Event] = []
        while True:
            try:
                message = self.messages.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(
                    f"no end marker for a read of {name} after {len(events)} events") from None
            if getattr(message.properties, "CorrelationData", None) != correlation:
                continue
            props = dict(_user_properties(message))
            if props.get("tern-end") == "true":
                return events, End(
                    int(props["tern-next-offset"]) if "tern-next-offset" in props else None,
                    int(props["tern-count"]) if "tern-count" in props else None,
                    props.get("tern-error"))
            pairs = _user_properties(message)
            # The broker appends its four annotations after the event's own properties.
            own, annotations = pairs[:-4], dict(pairs[-4:])
            assert annotations["tern-stream"] == name, annotations
            events.append(Event(int(annotations["tern-offset"]), int(annotations["tern-time"]),
                                annotations["tern-topic"], message.payload, own))

    def read_all(self, name: str, start: int = 0) -> list[Event]:
        """Every event from `start` to the end, page by page."""
        out: list[Event] = []
        offset = start
        while True:
            events, end = self.request(name, {"from": offset})
            assert end.error is None, end.error
            out += events
            if end.count == 0:
                return out
            offset = end.next_offset


# The door-lock service: the state of every door, rebuilt from events on doors/{id}/events.

DOOR_TOPIC = "doors/{}/events"
DOOR_FILTER = "doors/+/events"


def door_event(door: str, action: str, seq: int) -> tuple[str, bytes]:
    return DOOR_TOPIC.format(door), json.dumps({"action": action, "seq": seq}).encode()


class DoorModel:
    """Per door: locked or not, how many events it saw, the last event's sequence number.
    Counting the events makes a lost or doubled event visible even when the final
    locked/unlocked state happens to agree."""

    def __init__(self):
        self.doors: dict[str, dict] = {}

    def apply(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "doors" or parts[2] != "events":
            return
        event = json.loads(payload)
        door = self.doors.setdefault(parts[1], {"locked": False, "events": 0, "last_seq": -1})
        if event["action"] == "lock":
            door["locked"] = True
        elif event["action"] == "unlock":
            door["locked"] = False
        door["events"] += 1
        door["last_seq"] = event["seq"]

    def snapshot(self) -> dict[str, dict]:
        return {k: dict(v) for k, v in sorted(self.doors.items())}


class DoorLockService:
    """Rebuilds its state from the `doors` stream, then follows doors/+/events live.

    The stream is the source of truth: a live event is applied only once the stream has
    been read up to it, so nothing is applied twice or out of order across the switch."""

    def __init__(self, host: str, port: int, stream: str = "doors"):
        self.host, self.port, self.stream = host, port, stream
        self.model = DoorModel()
        self.next_offset = 0
        self._reader: StreamReader | None = None
        self._live: _Client | None = None
        self._lock = threading.Lock()
        self.applied = threading.Condition(self._lock)
        self.replayed = 0
        self.error: AssertionError | None = None

    def rebuild(self) -> int:
        """Reads the stream from the next unread offset (0 for a new instance); returns the
        number of events applied."""
        if self._reader is None:
            self._reader = StreamReader(self.host, self.port)
        events = self._reader.read_all(self.stream, self.next_offset)
        with self._lock:
            for e in events:
                assert e.offset >= self.next_offset, (e.offset, self.next_offset)
                self.model.apply(e.topic, e.payload)
                self.next_offset = e.offset + 1
            self.replayed += len(events)
            self.applied.notify_all()
        return len(events)

    def go_live(self) -> None:
        """Subscribes; every live event triggers a catch-up read of the stream (which holds
        the event: the broker appends before it routes). One thread does all reading, so
        requests never interleave on the reader."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._live = _Client(self.host, self.port)
        self._live.client.on_message = lambda c, u, m: self._wake.set()
        self._live.subscribe(DOOR_FILTER, 1)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        # Events published between the last read and the subscription are in the stream.
        self._wake.set()

    def _follow(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.rebuild()
            except AssertionError as error:
                self.error = error
                return

    def wait_for(self, expected: dict, timeout: float = TIMEOUT) -> dict:
        with self._lock:
            self.applied.wait_for(lambda: self.model.snapshot() == expected, timeout)
            if self.error is not None:
                raise self.error
            return self.model.snapshot()

    def stop(self) -> None:
        if self._live is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(TIMEOUT)
            self._live.close()
            self._live = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
