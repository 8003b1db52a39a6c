"""Clients for the crash tests: numbered publishers that record what the broker acknowledged,
and a persistent-session subscriber that records what it delivered.

Payloads are b"NAME:SEQ:" followed by filler, so every delivery names its publisher and
sequence number.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, OrderedDict

import paho.mqtt.client as mqtt

import mqtt_raw as m
from helpers import PahoClient

HOST = "127.0.0.1"
SESSION_EXPIRY = 3600
Q1_FILTER = "crash/q1/#"   # subscribed at QoS 1
Q2_FILTER = "crash/q2/#"   # subscribed at QoS 2


def iterations(default: int) -> int:
    """How many iterations a crash test runs (TERN_CRASH_ITERATIONS overrides)."""
    value = os.environ.get("TERN_CRASH_ITERATIONS")
    return int(value) if value else default


def payload(name: str, seq: int, filler: int) -> bytes:
    return f"{name}:{seq}:".encode() + b"x" * filler


def parse_payload(data: bytes) -> tuple[str, int]:
    name, seq, _ = data.split(b":", 2)
    return name.decode(), int(seq)


def _persistent_connect(client: m.RawClient, client_id: str, first: bool) -> m.Packet:
    """CONNECT for a session that outlives its connection; first starts a fresh one."""
    if client.version == m.V5:
        return client.connect(client_id, clean=first,
                              props={m.SESSION_EXPIRY_INTERVAL: SESSION_EXPIRY})
    return client.connect(client_id, clean=False)


class Subscriber:
    """A raw-client subscriber to Q1_FILTER (QoS 1) and Q2_FILTER (QoS 2) with a persistent
    session, acknowledging on its own thread.

    It is the receiver side of QoS 2 as the specification has it, with its state kept across
    connections: a QoS 2 PUBLISH is kept by packet id and answered with PUBREC (a later PUBLISH
    with the same id replaces it, which is a retransmission or a new message after the old
    flow was abandoned), and it is delivered once, when its PUBREL arrives. A PUBREL for an
    unknown id was already delivered and is only completed. So a QoS 2 message delivered twice
    means the broker sent it twice in two complete flows."""

    def __init__(self, port: int, client_id: str, version: int):
        self.port = port
        self.client_id = client_id
        self.version = version
        self.client: m.RawClient | None = None
        self.awaiting_pubrel: dict[int, tuple[str, int, bool]] = {}
        # (publisher, seq, delivery QoS, connection number, DUP flag of the PUBLISH)
        self.delivered: list[tuple[str, int, int, int, bool]] = []
        self.seen: set[tuple[str, int]] = set()
        self.protocol_errors: list[str] = []
        self.connections = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def connect(self, first: bool = False) -> bool:
        """Connects (a fresh session if first); returns session present."""
        self.client = m.RawClient(HOST, self.port, self.version, timeout=5.0)
        connack = _persistent_connect(self.client, self.client_id, first)
        self.connections += 1
        return bool(connack.session_present)

    def subscribe(self) -> None:
        suback = self.client.subscribe([(Q1_FILTER, m.sub_options(qos=1)),
                                        (Q2_FILTER, m.sub_options(qos=2))])
        assert suback.reasons == [1, 2], f"SUBACK {suback!r}"

    def disconnect(self) -> None:
        self.client.disconnect()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(self.client, self.connections),
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Waits for the broker's side of the connection to go away."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _record(self, name: str, seq: int, qos: int, connection: int, dup: bool) -> None:
        with self._cond:
            self.delivered.append((name, seq, qos, connection, dup))
            self.seen.add((name, seq))  # lets waits test membership without rescanning
            self._cond.notify_all()

    def _run(self, client: m.RawClient, connection: int) -> None:
        try:
            while not self._stop.is_set():
                try:
                    pkt = client.recv_packet(0.2)
                except TimeoutError:
                    continue
                if pkt.type == m.PUBLISH:
                    name, seq = parse_payload(pkt.payload)
                    if pkt.qos == 1:
                        self._record(name, seq, 1, connection, pkt.dup)
                        client.send(m.ack_packet(m.PUBACK, pkt.packet_id, version=self.version))
                    elif pkt.qos == 2:
                        self.awaiting_pubrel[pkt.packet_id] = (name, seq, pkt.dup)
                        client.send(m.ack_packet(m.PUBREC, pkt.packet_id, version=self.version))
                    else:
                        self.protocol_errors.append(f"QoS 0 delivery of {name}:{seq}")
                elif pkt.type == m.PUBREL:
                    held = self.awaiting_pubrel.pop(pkt.packet_id, None)
                    if held is not None:
                        self._record(held[0], held[1], 2, connection, held[2])
                    client.send(m.ack_packet(m.PUBCOMP, pkt.packet_id, version=self.version))
                elif pkt.type == m.DISCONNECT:
                    continue
                else:
                    self.protocol_errors.append(f"unexpected {pkt!r}")
        except (m.ConnectionClosed, OSError):
            pass
        finally:
            client.close()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Awaits predicate(delivered) becoming true, woken by each delivery."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.delivered):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True


class RawPublisher:
    """A raw-client MQTT 5.0 publisher of numbered messages with up to `window` in flight.

    It checks reason codes, which paho 1.6 hides. accepted: seqs whose PUBACK, or PUBREC (QoS
    2), reported success; completed: seqs whose PUBACK or PUBCOMP arrived. With a persistent
    session (resume) it completes its unfinished flows after reconnecting, as the
    specification requires: PUBLISH again with DUP for those without PUBACK/PUBREC, PUBREL
    for those without PUBCOMP."""

    def __init__(self, name: str, port: int, qos: int, topic: str, limit: int, filler: int,
                 resume: bool, window: int = 50):
        self.name, self.port, self.qos, self.topic = name, port, qos, topic
        self.limit, self.filler, self.resume, self.window = limit, filler, resume, window
        self.client_id = f"crash-{name}"
        self.sent = 0
        self.pending: OrderedDict[int, list] = OrderedDict()  # packet id -> [seq, stage]
        self.accepted: set[int] = set()
        self.completed: set[int] = set()
        self.rejected: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = self._connect(first=True)

    def _connect(self, first: bool) -> m.RawClient:
        client = m.RawClient(HOST, self.port, m.V5, timeout=5.0)
        if self.resume:
            connack = _persistent_connect(client, self.client_id, first)
            if not first:
                assert connack.session_present, f"{self.name}: publisher session lost"
        else:
            connack = client.connect(self.client_id)
        self.window = min(self.window, connack.props.get(m.RECEIVE_MAXIMUM, 65535))
        return client

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, args=(self.client, True), daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def reconnect_and_finish(self) -> None:
        """After the restart: completes the unfinished flows on a new connection."""
        self._stop.set()
        self.client = self._connect(first=False)
        for packet_id, (seq, stage) in self.pending.items():
            if stage == "publish":
                self.client.send(m.publish_packet(self.topic, payload(self.name, seq, self.filler),
                                                  self.qos, dup=True, packet_id=packet_id))
            else:
                self.client.send(m.ack_packet(m.PUBREL, packet_id))
        self._thread = threading.Thread(target=self._run, args=(self.client, False),
                                        daemon=True)
        self._thread.start()

    def _run(self, client: m.RawClient, fresh: bool) -> None:
        next_id = 0
        try:
            while True:
                while (fresh and not self._stop.is_set() and self.sent < self.limit
                       and len(self.pending) < self.window):
                    next_id = next_id % 65535 + 1
                    while next_id in self.pending:
                        next_id = next_id % 65535 + 1
                    seq = self.sent
                    self.pending[next_id] = [seq, "publish"]
                    self.sent += 1
                    client.send(m.publish_packet(self.topic, payload(self.name, seq, self.filler),
                                                 self.qos, packet_id=next_id))
                if not self.pending and (self._stop.is_set() or self.sent >= self.limit
                                         or not fresh):
                    return
                try:
                    pkt = client.recv_packet(0.2)
                except TimeoutError:
                    continue
                entry = self.pending.get(pkt.packet_id) if pkt.packet_id else None
                if pkt.type == m.DISCONNECT:
                    self.rejected.append(f"{self.name}: broker sent {pkt!r} with "
                                         f"{len(self.pending)} flows unfinished")
                    continue
                if entry is None:
                    self.rejected.append(f"{self.name}: unexpected {pkt!r}")
                    continue
                seq = entry[0]
                if pkt.type == m.PUBACK and self.qos == 1:
                    del self.pending[pkt.packet_id]
                    if pkt.reason < 0x80:
                        self.accepted.add(seq)
                        self.completed.add(seq)
                    else:
                        self.rejected.append(f"{self.name}:{seq} PUBACK 0x{pkt.reason:02x}")
                elif pkt.type == m.PUBREC and self.qos == 2:
                    if pkt.reason < 0x80:
                        self.accepted.add(seq)
                        entry[1] = "pubrel"
                        client.send(m.ack_packet(m.PUBREL, pkt.packet_id))
                    else:
                        del self.pending[pkt.packet_id]
                        self.rejected.append(f"{self.name}:{seq} PUBREC 0x{pkt.reason:02x}")
                elif pkt.type == m.PUBCOMP and self.qos == 2 and entry[1] == "pubrel":
                    del self.pending[pkt.packet_id]
                    # 0x92 answers a resent PUBREL whose first copy the broker had already
                    # completed before the crash: the flow is complete either way.
                    if pkt.reason < 0x80 or (not fresh and pkt.reason == 0x92):
                        self.completed.add(seq)
                    else:
                        self.rejected.append(f"{self.name}:{seq} PUBCOMP 0x{pkt.reason:02x}")
                else:
                    self.rejected.append(f"{self.name}: unexpected {pkt!r} for stage {entry[1]}")
        except (m.ConnectionClosed, OSError):
            pass
        finally:
            client.close()


class PahoPublisher:
    """A paho 1.6 MQTT 3.1.1 publisher of numbered messages, with up to `window` in flight.

    MQTT 3.1.1 because paho 1.6 reports an MQTT 5.0 PUBACK as a success whatever its reason
    code; a 3.1.1 PUBACK or PUBCOMP can only mean success. With resume it keeps its session
    (clean session 0) and paho itself completes the unfinished flows after reconnecting."""

    def __init__(self, name: str, port: int, qos: int, topic: str, limit: int, filler: int,
                 resume: bool, window: int = 20):
        self.name, self.qos, self.topic = name, qos, topic
        self.limit, self.filler, self.resume = limit, filler, resume
        self.sent = 0
        self.infos: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        self.rejected: list[str] = []
        self._window = threading.Semaphore(window)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paho = PahoClient(HOST, port, f"crash-{name}", 4, clean=not resume,
                               connect=False)
        self.paho.client.max_inflight_messages_set(window)
        # MQTTMessageInfo.is_published() raises for a message published while disconnected,
        # though paho keeps it and sends it after reconnecting: completions are counted here.
        self._completed_mids: set[int] = set()
        self._mids_lock = threading.Lock()
        self.paho.client.on_publish = self._on_publish
        self.paho.connect()

    def _on_publish(self, client, userdata, mid) -> None:
        with self._mids_lock:
            self._completed_mids.add(mid)
        self._window.release()

    @property
    def completed(self) -> set[int]:
        with self._mids_lock:
            done = set(self._completed_mids)
        return {seq for seq, info in list(self.infos) if info.mid in done}

    accepted = completed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while self.sent < self.limit and not self._stop.is_set():
            if not self._window.acquire(timeout=0.1):
                if self.paho.disconnected.is_set():
                    return
                continue
            if self.paho.disconnected.is_set():
                return
            info = self.paho.client.publish(self.topic,
                                            payload(self.name, self.sent, self.filler),
                                            self.qos)
            self.infos.append((self.sent, info))
            self.sent += 1

    def reconnect_and_finish(self) -> None:
        """After the restart: paho resends its unfinished flows on reconnecting."""
        self._stop.set()
        self.paho._stop_loop()  # the network thread ended with the connection
        self.paho.connect()
        assert self.paho.session_present, f"{self.name}: publisher session lost"

    @property
    def pending(self) -> list[int]:
        done = self.completed
        return [seq for seq, _ in list(self.infos) if seq not in done]


def check_deliveries(subscriber: Subscriber, publishers, delivery_qos: dict[str, int],
                     require_all_sent: bool) -> list[str]:
    """What went wrong, as sentences: acknowledged messages not delivered, deliveries out of
    order per publisher (a repeat of an earlier seq is a duplicate, not a reordering),
    QoS 2 deliveries repeated, deliveries of messages never published, wrong QoS."""
    failures = list(subscriber.protocol_errors)
    for publisher in publishers:
        name = publisher.name
        got = [(seq, qos, conn, dup) for p, seq, qos, conn, dup in subscriber.delivered
               if p == name]
        seqs = [seq for seq, _, _, _ in got]
        seen: set[int] = set()
        firsts: list[int] = []
        for seq in seqs:
            if seq not in seen:
                seen.add(seq)
                firsts.append(seq)
        must = set(publisher.completed)
        if require_all_sent:
            must |= set(range(publisher.sent))
        missing = sorted(must - seen)
        if missing:
            failures.append(
                f"{name}: {len(missing)} of {len(must)} acknowledged (PUBACK/PUBCOMP) messages "
                f"never delivered, seqs {_ranges(missing)}")
        # PUBREC too is sent only after the commit holding the message (docs/storage.md), and
        # hands the message over: the publisher may forget it even before PUBCOMP.
        received = set(publisher.accepted) - set(publisher.completed)
        missing = sorted(received - seen)
        if missing:
            failures.append(
                f"{name}: {len(missing)} of {len(received)} messages acknowledged by PUBREC "
                f"(PUBCOMP not received) never delivered, seqs {_ranges(missing)}")
        backwards = [(a, b) for a, b in zip(firsts, firsts[1:]) if b < a]
        if backwards:
            failures.append(f"{name}: delivered out of order, first at {backwards[0]} "
                            f"({len(backwards)} places)")
        unknown = sorted(seen - set(range(publisher.sent)))
        if unknown:
            failures.append(f"{name}: delivered seqs never published {_ranges(unknown)}")
        wrong_qos = sorted({seq for seq, qos, _, _ in got if qos != delivery_qos[name]})
        if wrong_qos:
            failures.append(f"{name}: delivered at a QoS other than {delivery_qos[name]}: "
                            f"{_ranges(wrong_qos)}")
        if delivery_qos[name] == 2:
            twice = sorted(seq for seq, count in Counter(seqs).items() if count > 1)
            if twice:
                detail = [(seq, [(c, d) for s, _, c, d in got if s == seq]) for seq in twice[:5]]
                failures.append(
                    f"{name}: {len(twice)} QoS 2 messages delivered more than once, seqs "
                    f"{_ranges(twice)}; (connection, DUP) of each delivery: {detail}")
        rejected = getattr(publisher, "rejected", [])
        if rejected:
            failures.append(f"{name}: broker refused or answered oddly: {rejected[:5]}")
    return failures


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7' (at most 12 ranges)."""
    out: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = v
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ", ".join(out[:12]) + (" ..." if len(out) > 12 else "")
