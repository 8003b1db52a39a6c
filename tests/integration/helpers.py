"""paho-mqtt wrappers and waiting helpers. Every wait is bounded and awaits an event."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

DEFAULT_TIMEOUT = 5.0

_live_clients: list["PahoClient"] = []
_live_lock = threading.Lock()


def wait_until(predicate, timeout: float = DEFAULT_TIMEOUT, message: str = "condition",
               interval: float = 0.01):
    """Polls predicate until it returns a truthy value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def latest_values(client: "PahoClient", topics, predicate=lambda values: True,
                  timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
    """The latest payload of each topic (as text) that `client` receives, once every one of
    `topics` was seen and predicate(values) holds; fails after timeout seconds ($SYS)."""
    values: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        if all(t in values for t in topics) and predicate(values):
            return values
        left = deadline - time.monotonic()
        if left <= 0:
            missing = [t for t in topics if t not in values]
            raise AssertionError(f"$SYS incomplete after {timeout} s; missing {missing}, "
                                 f"values {values}")
        try:
            msg = client.messages.get(timeout=left)
        except queue.Empty:
            continue
        values[msg.topic] = msg.payload.decode("utf-8", "replace")


def props(packet_type, **values) -> Properties:
    """paho Properties from keyword arguments, e.g. props(PacketTypes.PUBLISH,
    ContentType="text/plain", UserProperty=[("a", "b")])."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def publish_props(**values) -> Properties:
    return props(PacketTypes.PUBLISH, **values)


def close_all_clients() -> None:
    with _live_lock:
        clients = list(_live_clients)
        _live_clients.clear()
    for client in clients:
        client.close()


class PahoClient:
    """A paho client with its network loop on a thread, exposing events to wait on.

    It never reconnects by itself, so a test sees every disconnection."""

    def __init__(self, host: str, port: int, client_id: str = "", version: int = 5,
                 clean: bool = True, session_expiry: int | None = None, keepalive: int = 30,
                 will: dict | None = None, connect_props: Properties | None = None,
                 connect: bool = True, timeout: float = DEFAULT_TIMEOUT):
        self.host, self.port = host, port
        self.version = version
        self.timeout = timeout
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.connect_props = connect_props
        if version == 5:
            self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5,
                                      reconnect_on_failure=False)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=clean,
                                      protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        self.client_id = client_id
        self.messages: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_rc = None
        self.connack_flags = None
        self.connack_props = None
        self.disconnect_rc = None
        self.disconnect_props = None
        self._lock = threading.Condition()
        self._subacks: dict[int, object] = {}
        self._unsubacks: dict[int, object] = {}
        self._looping = False
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        if will is not None:
            self.client.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                                 will.get("retain", False), will.get("props"))
        with _live_lock:
            _live_clients.append(self)
        if connect:
            self.connect()

    # -- callbacks (network thread)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack_flags = flags
        self.connack_rc = rc
        self.connack_props = properties
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_rc = rc
        self.disconnect_props = properties
        self.disconnected.set()

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._lock:
            self._subacks[mid] = granted
            self._lock.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reason_codes=None):
        with self._lock:
            self._unsubacks[mid] = reason_codes
            self._lock.notify_all()

    # -- operations

    def connect(self, expect_success: bool = True):
        self.connected.clear()
        self.disconnected.clear()
        if self.version == 5:
            connect_props = self.connect_props
            if self.session_expiry is not None:
                if connect_props is None:
                    connect_props = Properties(PacketTypes.CONNECT)
                connect_props.SessionExpiryInterval = self.session_expiry
            self.client.connect(self.host, self.port, self.keepalive, clean_start=self.clean,
                                properties=connect_props)
        else:
            self.client.connect(self.host, self.port, self.keepalive)
        if not self._looping:
            self.client.loop_start()
            self._looping = True
        assert self.connected.wait(self.timeout), "no CONNACK"
        if expect_success:
            assert self.connack_rc == 0, f"connection refused: {self.connack_rc}"
        return self.connack_rc

    @property
    def session_present(self) -> bool:
        return bool(self.connack_flags.get("session present"))

    def subscribe(self, topic, qos: int = 0, no_local: bool = False,
                  retain_as_published: bool = False, retain_handling: int = 0,
                  subscription_id: int | None = None):
        """Subscribes and waits for the SUBACK; returns the granted QoS / reason codes."""
        if self.version == 5:
            options = SubscribeOptions(qos=qos, noLocal=no_local,
                                       retainAsPublished=retain_as_published,
                                       retainHandling=retain_handling)
            sub_props = None
            if subscription_id is not None:
                sub_props = Properties(PacketTypes.SUBSCRIBE)
                sub_props.SubscriptionIdentifier = subscription_id
            if isinstance(topic, list):
                result, mid = self.client.subscribe(
                    [(t, SubscribeOptions(qos=q)) for t, q in topic], properties=sub_props)
            else:
                result, mid = self.client.subscribe(topic, options=options,
                                                    properties=sub_props)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed: {result}"
        with self._lock:
            assert self._lock.wait_for(lambda: mid in self._subacks, self.timeout), "no SUBACK"
            granted = self._subacks.pop(mid)
        if self.version == 5:
            return [int(code.value) for code in granted]
        return list(granted)

    def unsubscribe(self, topic):
        result, mid = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS
        with self._lock:
            assert self._lock.wait_for(lambda: mid in self._unsubacks, self.timeout), \
                "no UNSUBACK"
            codes = self._unsubacks.pop(mid)
        if self.version == 5 and codes is not None:
            if not isinstance(codes, list):
                codes = [codes]
            return [int(code.value) for code in codes]
        return codes

    def publish(self, topic, payload=b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None, wait: bool = True):
        """Publishes; with wait, returns once the flow is complete (QoS 0: written)."""
        info = self.client.publish(topic, payload, qos, retain,
                                   properties if self.version == 5 else None)
        if wait:
            info.wait_for_publish(self.timeout)
            assert info.is_published(), f"publish to {topic} (QoS {qos}) not completed"
        return info

    def get_message(self, timeout: float | None = None):
        try:
            return self.messages.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError("no message arrived") from None

    def get_messages(self, count: int, timeout: float | None = None) -> list:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = []
        while len(out) < count:
            left = deadline - time.monotonic()
            try:
                out.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"only {len(out)} of {count} messages arrived: "
                    f"{[(m.topic, m.payload) for m in out]}") from None
        return out

    def expect_no_message(self, duration: float = 0.5) -> None:
        try:
            message = self.messages.get(timeout=duration)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")

    def wait_disconnected(self, timeout: float | None = None) -> None:
        assert self.disconnected.wait(self.timeout if timeout is None else timeout), \
            "still connected"

    def disconnect(self, reasoncode=None, properties=None) -> None:
        """A normal DISCONNECT; waits until the connection is closed."""
        if self.version == 5 and reasoncode is not None:
            rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reasoncode)
            self.client.disconnect(reasoncode=rc, properties=properties)
        else:
            self.client.disconnect()
        self.disconnected.wait(self.timeout)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._looping:
            self._looping = False
            self.client.loop_stop()

    def close(self) -> None:
        """Ends the client: a normal disconnect if still connected."""
        try:
            if self.connected.is_set() and not self.disconnected.is_set():
                self.client.disconnect()
                self.disconnected.wait(2)
        except Exception:
            pass
        self._stop_loop()
        with _live_lock:
            if self in _live_clients:
                _live_clients.remove(self)

    def abort(self) -> None:
        """Drops the TCP connection without DISCONNECT (abnormal loss, triggers the will)."""
        self._stop_loop()
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            sock.close()
        with _live_lock:
            if self in _live_clients:
                _live_clients.remove(self)


def user_properties(message) -> list[tuple[str, str]]:
    p = getattr(message, "properties", None)
    return [tuple(x) for x in getattr(p, "UserProperty", [])] if p is not None else []


def message_prop(message, name: str, default=None):
    p = getattr(message, "properties", None)
    if p is None:
        return default
    return getattr(p, name, default)


class MessageStream:
    """A third-party flow that must keep working while a test abuses the broker.

    A publisher sends numbered QoS 1 messages on a background thread; a separate subscriber
    receives them. progress() awaits new messages; finish() checks all arrived once, in order.
    """

    def __init__(self, broker, topic: str = "stream/health", interval: float = 0.005):
        self.topic = topic
        self.interval = interval
        self.subscriber = PahoClient(broker.host, broker.port, "stream-sub", 5)
        self.subscriber.subscribe(topic, qos=1)
        self.publisher = PahoClient(broker.host, broker.port, "stream-pub", 5)
        self.sent = 0
        self.received: list[int] = []
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._publish_loop, daemon=True)
        self._thread.start()
        self.progress()

    def _publish_loop(self):
        try:
            while not self._stop.is_set():
                self.publisher.publish(self.topic, str(self.sent).encode(), qos=1)
                self.sent += 1
                self._stop.wait(self.interval)
        except BaseException as error:  # reported by finish()
            self._error = error

    def _drain(self):
        while True:
            try:
                message = self.subscriber.messages.get_nowait()
            except queue.Empty:
                return
            self.received.append(int(message.payload))

    def progress(self, count: int = 5, timeout: float = 10.0) -> None:
        """Awaits count more messages than have arrived so far."""
        self._drain()
        target = len(self.received) + count
        deadline = time.monotonic() + timeout
        while len(self.received) < target:
            assert self._error is None, f"stream publisher failed: {self._error!r}"
            assert not self.subscriber.disconnected.is_set(), "stream subscriber disconnected"
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"stream stalled: {len(self.received)} received, {self.sent} sent")
            try:
                message = self.subscriber.messages.get(timeout=min(left, 0.2))
                self.received.append(int(message.payload))
            except queue.Empty:
                pass

    def finish(self, timeout: float = 10.0) -> None:
        self.progress(5, timeout)
        self._stop.set()
        self._thread.join(timeout)
        assert self._error is None, f"stream publisher failed: {self._error!r}"
        wait_until(lambda: (self._drain(), len(self.received) >= self.sent)[1], timeout,
                   f"all {self.sent} stream messages")
        assert self.received == list(range(self.sent)), "stream messages lost or reordered"
        self.subscriber.close()
        self.publisher.close()

    def stop(self) -> None:
        """Stops publishing without checking (teardown after a failure)."""
        self._stop.set()
        self._thread.join(2)


def expect_broker_disconnect(broker, client, codes, timeout: float = 5.0,
                             connected: bool = True) -> int | None:
    """The broker must close client's connection for bad input.

    For a connected MQTT 5.0 client it must first send DISCONNECT with one of codes; before
    CONNECT succeeded it may only send an error CONNACK. Either way a warning line must name
    the reason and the client (its id or its address). Returns the reason code seen, if any."""
    from mqtt_raw import CONNACK, DISCONNECT, REASON_NAMES, V5
    codes = [codes] if isinstance(codes, int) else list(codes)
    packets = client.expect_close(timeout)
    reason = None
    if client.version == V5 and connected:
        disconnects = [p for p in packets if p.type == DISCONNECT]
        assert disconnects, f"closed without DISCONNECT; received {packets!r}"
        reason = disconnects[-1].reason
        assert reason in codes, (
            f"DISCONNECT reason 0x{reason:02x}, expected one of "
            f"{[hex(c) for c in codes]}")
        assert packets[-1].type == DISCONNECT, "packets after DISCONNECT"
        names = [REASON_NAMES[reason]]
    else:
        if not connected:
            assert all(p.type == CONNACK and p.reason != 0 for p in packets), packets
        names = [REASON_NAMES[c] for c in codes]
    who = [str(client.local_port)] + ([client.client_id] if client.client_id else [])
    _wait_reason_line(broker, names, who)
    return reason


def _wait_reason_line(broker, names, who, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for line in broker.log_text().splitlines():
            low = line.lower()
            if ('"warning"' in low or '"error"' in low or '"warn"' in low) and any(
                    n in low for n in names) and any(w.lower() in low for w in who):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no warning line naming one of {names} and the client ({who}) within "
                f"{timeout} s; log tail:\n" + broker.log_tail())
        time.sleep(0.02)


def collect_until_barrier(client: PahoClient, barrier_topic: str,
                          timeout: float | None = None) -> list:
    """Messages received before the one on barrier_topic (which is consumed)."""
    deadline = time.monotonic() + (client.timeout if timeout is None else timeout)
    out = []
    while True:
        left = deadline - time.monotonic()
        try:
            message = client.messages.get(timeout=max(left, 0.001))
        except queue.Empty:
            raise AssertionError(
                f"barrier {barrier_topic} never arrived; got "
                f"{[(m.topic, m.payload) for m in out]}") from None
        if message.topic == barrier_topic:
            return out
        out.append(message)


def raw_collect_until_barrier(client, barrier_topic: str, timeout: float = 5.0) -> list:
    """PUBLISH packets a raw client receives before the one on barrier_topic; acks all."""
    from mqtt_raw import PUBLISH
    deadline = time.monotonic() + timeout
    out = []
    while True:
        pkt = client.recv_packet(max(deadline - time.monotonic(), 0.001))
        if pkt.type != PUBLISH:
            continue
        client.ack(pkt)
        if pkt.topic == barrier_topic:
            return out
        out.append(pkt)
