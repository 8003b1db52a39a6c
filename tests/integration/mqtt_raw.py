"""A minimal MQTT 3.1.1 / 5.0 packet builder and reader over a plain socket.

Written from the specifications (MQTT 3.1.1 OASIS standard, MQTT 5.0 OASIS standard) so that
tests can send exactly the bytes they mean, including invalid ones, and check reason codes
and properties that high-level clients hide.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

V311 = 4
V5 = 5

# Control packet types (spec 2.1.2).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PACKET_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}

# Property identifiers (MQTT 5.0 section 2.2.2.2).
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_BYTE, _TWO, _FOUR, _VARINT, _STRING, _BINARY, _PAIR = range(7)

PROPERTY_TYPES = {
    PAYLOAD_FORMAT_INDICATOR: _BYTE,
    MESSAGE_EXPIRY_INTERVAL: _FOUR,
    CONTENT_TYPE: _STRING,
    RESPONSE_TOPIC: _STRING,
    CORRELATION_DATA: _BINARY,
    SUBSCRIPTION_IDENTIFIER: _VARINT,
    SESSION_EXPIRY_INTERVAL: _FOUR,
    ASSIGNED_CLIENT_IDENTIFIER: _STRING,
    SERVER_KEEP_ALIVE: _TWO,
    AUTHENTICATION_METHOD: _STRING,
    AUTHENTICATION_DATA: _BINARY,
    REQUEST_PROBLEM_INFORMATION: _BYTE,
    WILL_DELAY_INTERVAL: _FOUR,
    REQUEST_RESPONSE_INFORMATION: _BYTE,
    RESPONSE_INFORMATION: _STRING,
    SERVER_REFERENCE: _STRING,
    REASON_STRING: _STRING,
    RECEIVE_MAXIMUM: _TWO,
    TOPIC_ALIAS_MAXIMUM: _TWO,
    TOPIC_ALIAS: _TWO,
    MAXIMUM_QOS: _BYTE,
    RETAIN_AVAILABLE: _BYTE,
    USER_PROPERTY: _PAIR,
    MAXIMUM_PACKET_SIZE: _FOUR,
    WILDCARD_SUBSCRIPTION_AVAILABLE: _BYTE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: _BYTE,
    SHARED_SUBSCRIPTION_AVAILABLE: _BYTE,
}

# Reason codes used by the tests (MQTT 5.0 section 2.4).
RC_SUCCESS = 0x00
RC_GRANTED_QOS_1 = 0x01
RC_GRANTED_QOS_2 = 0x02
RC_DISCONNECT_WITH_WILL = 0x04
RC_NO_MATCHING_SUBSCRIBERS = 0x10
RC_NO_SUBSCRIPTION_EXISTED = 0x11
RC_UNSPECIFIED_ERROR = 0x80
RC_MALFORMED_PACKET = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84
RC_CLIENT_IDENTIFIER_NOT_VALID = 0x85
RC_SERVER_BUSY = 0x89
RC_KEEP_ALIVE_TIMEOUT = 0x8D
RC_SESSION_TAKEN_OVER = 0x8E
RC_TOPIC_FILTER_INVALID = 0x8F
RC_TOPIC_NAME_INVALID = 0x90
RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93
RC_TOPIC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
RC_QUOTA_EXCEEDED = 0x97

RC_RETAIN_NOT_SUPPORTED = 0x9A

REASON_NAMES = {
    RC_UNSPECIFIED_ERROR: "unspecified_error",
    RC_MALFORMED_PACKET: "malformed_packet",
    RC_PROTOCOL_ERROR: "protocol_error",
    RC_UNSUPPORTED_PROTOCOL_VERSION: "unsupported_protocol_version",
    RC_CLIENT_IDENTIFIER_NOT_VALID: "client_identifier_not_valid",
    RC_SERVER_BUSY: "server_busy",
    RC_KEEP_ALIVE_TIMEOUT: "keep_alive_timeout",
    RC_SESSION_TAKEN_OVER: "session_taken_over",
    RC_TOPIC_FILTER_INVALID: "topic_filter_invalid",
    RC_TOPIC_NAME_INVALID: "topic_name_invalid",
    RC_RECEIVE_MAXIMUM_EXCEEDED: "receive_maximum_exceeded",
    RC_TOPIC_ALIAS_INVALID: "topic_alias_invalid",
    RC_PACKET_TOO_LARGE: "packet_too_large",
    RC_QUOTA_EXCEEDED: "quota_exceeded",
    RC_RETAIN_NOT_SUPPORTED: "retain_not_supported",
}

# MQTT 3.1.1 CONNACK return codes (section 3.2.2.3).
V3_ACCEPTED = 0
V3_UNACCEPTABLE_PROTOCOL_VERSION = 1
V3_IDENTIFIER_REJECTED = 2
V3_SERVER_UNAVAILABLE = 3


# ---------------------------------------------------------------------------------------------
# Encoding primitives


def encode_varint(value: int) -> bytes:
    if value < 0 or value > 268_435_455:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def encode_u16(value: int) -> bytes:
    return struct.pack("!H", value)


def encode_u32(value: int) -> bytes:
    return struct.pack("!I", value)


def encode_binary(data: bytes) -> bytes:
    return encode_u16(len(data)) + data


def encode_string(text: str | bytes) -> bytes:
    """UTF-8 string with a two-byte length; bytes are sent as given (for invalid UTF-8 tests)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return encode_binary(data)


def encode_properties(props) -> bytes:
    """props: a list of (identifier, value) pairs, or a dict (identifier -> value or list)."""
    if props is None:
        props = []
    if isinstance(props, dict):
        items = []
        for ident, value in props.items():
            if isinstance(value, list) and PROPERTY_TYPES[ident] != _BINARY:
                items.extend((ident, v) for v in value)
            else:
                items.append((ident, value))
    else:
        items = list(props)
    body = bytearray()
    for ident, value in items:
        kind = PROPERTY_TYPES[ident]
        body += encode_varint(ident)
        if kind == _BYTE:
            body.append(value)
        elif kind == _TWO:
            body += encode_u16(value)
        elif kind == _FOUR:
            body += encode_u32(value)
        elif kind == _VARINT:
            body += encode_varint(value)
        elif kind == _STRING:
            body += encode_string(value)
        elif kind == _BINARY:
            body += encode_binary(value)
        elif kind == _PAIR:
            body += encode_string(value[0]) + encode_string(value[1])
    return encode_varint(len(body)) + bytes(body)


def fixed_header(packet_type: int, flags: int, remaining_length: int) -> bytes:
    return bytes([(packet_type << 4) | (flags & 0x0F)]) + encode_varint(remaining_length)


def packet(packet_type: int, flags: int, body: bytes) -> bytes:
    return fixed_header(packet_type, flags, len(body)) + body


# ---------------------------------------------------------------------------------------------
# Packet builders


def connect_packet(client_id: str | bytes = "", version: int = V5, clean: bool = True,
                   keep_alive: int = 60, props=None, will: dict | None = None,
                   username: str | None = None, password: bytes | None = None,
                   protocol_name: str = "MQTT", reserved_flag: bool = False) -> bytes:
    """will: {"topic", "payload", "qos", "retain", "props"}."""
    flags = 0
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | ((will.get("qos", 0) & 3) << 3)
        if will.get("retain"):
            flags |= 0x20
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    if reserved_flag:
        flags |= 0x01
    body = bytearray()
    body += encode_string(protocol_name)
    body.append(version)
    body.append(flags)
    body += encode_u16(keep_alive)
    if version == V5:
        body += encode_properties(props)
    body += encode_string(client_id)
    if will is not None:
        if version == V5:
            body += encode_properties(will.get("props"))
        body += encode_string(will["topic"])
        payload = will.get("payload", b"")
        body += encode_binary(payload.encode() if isinstance(payload, str) else payload)
    if username is not None:
        body += encode_string(username)
    if password is not None:
        body += encode_binary(password)
    return packet(CONNECT, 0, bytes(body))


def publish_packet(topic: str | bytes, payload: bytes | str = b"", qos: int = 0,
                   retain: bool = False, dup: bool = False, packet_id: int | None = None,
                   props=None, version: int = V5) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | ((qos & 3) << 1) | (0x01 if retain else 0)
    body = bytearray(encode_string(topic))
    if qos > 0:
        body += encode_u16(packet_id if packet_id is not None else 1)
    if version == V5:
        body += encode_properties(props)
    body += payload
    return packet(PUBLISH, flags, bytes(body))


def ack_packet(packet_type: int, packet_id: int, reason: int | None = None, props=None,
               version: int = V5) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""
    flags = 0x02 if packet_type == PUBREL else 0
    body = bytearray(encode_u16(packet_id))
    if version == V5 and (reason not in (None, 0) or props):
        body.append(reason or 0)
        if props:
            body += encode_properties(props)
    return packet(packet_type, flags, bytes(body))


def subscribe_packet(packet_id: int, filters, props=None, version: int = V5,
                     flags: int = 0x02) -> bytes:
    """filters: list of (topic_filter, options_byte) or plain strings (QoS 0)."""
    body = bytearray(encode_u16(packet_id))
    if version == V5:
        body += encode_properties(props)
    for item in filters:
        if isinstance(item, (str, bytes)):
            item = (item, 0)
        topic_filter, options = item
        body += encode_string(topic_filter)
        body.append(options)
    return packet(SUBSCRIBE, flags, bytes(body))


def sub_options(qos: int = 0, no_local: bool = False, retain_as_published: bool = False,
                retain_handling: int = 0) -> int:
    return (qos & 3) | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | (
        (retain_handling & 3) << 4)


def unsubscribe_packet(packet_id: int, filters, props=None, version: int = V5) -> bytes:
    body = bytearray(encode_u16(packet_id))
    if version == V5:
        body += encode_properties(props)
    for topic_filter in filters:
        body += encode_string(topic_filter)
    return packet(UNSUBSCRIBE, 0x02, bytes(body))


def pingreq_packet() -> bytes:
    return bytes([PINGREQ << 4, 0])


def disconnect_packet(reason: int = 0, props=None, version: int = V5) -> bytes:
    if version == V5 and (reason or props):
        body = bytes([reason]) + (encode_properties(props) if props else b"")
        return packet(DISCONNECT, 0, body)
    return bytes([DISCONNECT << 4, 0])


# ---------------------------------------------------------------------------------------------
# Decoding


class MalformedResponse(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedResponse("truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("!I", self.take(4))[0]

    def varint(self) -> int:
        value, mult = 0, 1
        for _ in range(4):
            byte = self.u8()
            value += (byte & 0x7F) * mult
            if not byte & 0x80:
                return value
            mult *= 128
        raise MalformedResponse("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        return self.binary().decode("utf-8")

    def properties(self) -> "Properties":
        length = self.varint()
        sub = _Reader(self.take(length))
        props = Properties()
        while sub.remaining():
            ident = sub.varint()
            kind = PROPERTY_TYPES.get(ident)
            if kind is None:
                raise MalformedResponse(f"unknown property 0x{ident:02x}")
            if kind == _BYTE:
                value = sub.u8()
            elif kind == _TWO:
                value = sub.u16()
            elif kind == _FOUR:
                value = sub.u32()
            elif kind == _VARINT:
                value = sub.varint()
            elif kind == _STRING:
                value = sub.string()
            elif kind == _BINARY:
                value = sub.binary()
            else:
                value = (sub.string(), sub.string())
            props.add(ident, value)
        return props


class Properties:
    """Decoded properties: identifier -> list of values (user properties and subscription
    identifiers may repeat)."""

    def __init__(self):
        self.values: dict[int, list] = {}

    def add(self, ident: int, value) -> None:
        self.values.setdefault(ident, []).append(value)

    def get(self, ident: int, default=None):
        found = self.values.get(ident)
        return found[0] if found else default

    def all(self, ident: int) -> list:
        return list(self.values.get(ident, []))

    def __contains__(self, ident: int) -> bool:
        return ident in self.values

    def __repr__(self) -> str:
        return "Properties({" + ", ".join(
            f"0x{k:02x}: {v!r}" for k, v in self.values.items()) + "})"


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    # Decoded fields; which are set depends on the type.
    packet_id: int | None = None
    reason: int | None = None
    reasons: list[int] = field(default_factory=list)
    session_present: bool | None = None
    topic: str | None = None
    topic_raw: bytes | None = None
    payload: bytes | None = None
    qos: int = 0
    retain: bool = False
    dup: bool = False
    props: Properties = field(default_factory=Properties)

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type{self.type}")

    def __repr__(self) -> str:
        parts = [self.name]
        for key in ("packet_id", "reason", "session_present", "topic", "qos"):
            value = getattr(self, key)
            if value not in (None, 0) or key == "reason" and value == 0:
                parts.append(f"{key}={value!r}")
        if self.type == PUBLISH:
            parts.append(f"payload={self.payload[:40]!r}")
            if self.retain:
                parts.append("retain")
            if self.dup:
                parts.append("dup")
        if self.reasons:
            parts.append(f"reasons={[hex(r) for r in self.reasons]}")
        if self.props.values:
            parts.append(repr(self.props))
        return "<" + " ".join(parts) + ">"


def decode_packet(first: int, body: bytes, version: int) -> Packet:
    ptype, flags = first >> 4, first & 0x0F
    pkt = Packet(ptype, flags, body)
    r = _Reader(body)
    if ptype == CONNACK:
        pkt.session_present = bool(r.u8() & 0x01)
        pkt.reason = r.u8()
        if version == V5 and r.remaining():
            pkt.props = r.properties()
    elif ptype == PUBLISH:
        pkt.qos = (flags >> 1) & 3
        pkt.retain = bool(flags & 1)
        pkt.dup = bool(flags & 8)
        pkt.topic_raw = r.binary()
        pkt.topic = pkt.topic_raw.decode("utf-8")
        if pkt.qos:
            pkt.packet_id = r.u16()
        if version == V5:
            pkt.props = r.properties()
        pkt.payload = r.take(r.remaining())
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        pkt.packet_id = r.u16()
        pkt.reason = r.u8() if r.remaining() else 0
        if r.remaining():
            pkt.props = r.properties()
    elif ptype == SUBACK:
        pkt.packet_id = r.u16()
        if version == V5:
            pkt.props = r.properties()
        pkt.reasons = list(r.take(r.remaining()))
    elif ptype == UNSUBACK:
        pkt.packet_id = r.u16()
        if version == V5:
            pkt.props = r.properties()
            pkt.reasons = list(r.take(r.remaining()))
    elif ptype in (DISCONNECT, AUTH):
        pkt.reason = r.u8() if r.remaining() else 0
        if r.remaining():
            pkt.props = r.properties()
    return pkt


# ---------------------------------------------------------------------------------------------
# A client over a socket


class ConnectionClosed(Exception):
    pass


class RawClient:
    """Blocking socket client. recv_packet() returns decoded packets; every wait has a timeout."""

    def __init__(self, host: str, port: int, version: int = V5, timeout: float = 5.0,
                 receive_buffer: int | None = None):
        self.version = version
        self.timeout = timeout
        self.client_id = ""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Before connect, so the advertised window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_port = self.sock.getsockname()[1]
        self.buffer = bytearray()
        self.closed = False
        self.received: list[Packet] = []  # every packet read, in order
        self.stashed: list[Packet] = []  # PUBLISH packets that arrived while awaiting an ack
        self._next_id = 0

    # -- low level

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send; False if the broker has already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def abort(self) -> None:
        """Close with a TCP reset, without DISCONNECT (an abnormal loss)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def next_packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no packet before the deadline")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet before the deadline") from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            raise ConnectionClosed("connection closed by the broker")
        self.buffer += chunk

    def _try_parse(self) -> Packet | None:
        if len(self.buffer) < 2:
            return None
        length, mult, pos = 0, 1, 1
        while True:
            if pos >= len(self.buffer):
                return None
            byte = self.buffer[pos]
            length += (byte & 0x7F) * mult
            pos += 1
            if not byte & 0x80:
                break
            mult *= 128
            if pos > 4:
                raise MalformedResponse("remaining length too long")
        if len(self.buffer) < pos + length:
            return None
        first = self.buffer[0]
        body = bytes(self.buffer[pos:pos + length])
        del self.buffer[:pos + length]
        pkt = decode_packet(first, body, self.version)
        self.received.append(pkt)
        return pkt

    def recv_packet(self, timeout: float | None = None) -> Packet:
        """Next packet; raises TimeoutError, or ConnectionClosed when the broker closed."""
        if self.stashed:
            return self.stashed.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            pkt = self._try_parse()
            if pkt is not None:
                return pkt
            if self.closed:
                raise ConnectionClosed("connection closed by the broker")
            self._fill(deadline)

    def expect(self, ptype: int, timeout: float | None = None, skip=()) -> Packet:
        """Next packet, which must be of type ptype (packets of a type in skip are ignored).
        While awaiting anything but a PUBLISH, arriving PUBLISH packets are kept for later."""
        stash = []
        try:
            while True:
                pkt = self.recv_packet(timeout)
                if pkt.type in skip:
                    continue
                if pkt.type == PUBLISH and ptype != PUBLISH:
                    stash.append(pkt)
                    continue
                break
        finally:
            self.stashed[:0] = stash
        assert pkt.type == ptype, f"expected {PACKET_NAMES[ptype]}, got {pkt!r}"
        return pkt

    def expect_close(self, timeout: float = 5.0) -> list[Packet]:
        """Read until the broker closes the connection; returns the packets read meanwhile.
        Fails if the connection is still open at the deadline."""
        deadline = time.monotonic() + timeout
        packets = []
        while True:
            try:
                packets.append(self.recv_packet(max(0.0, deadline - time.monotonic())))
            except ConnectionClosed:
                return packets
            except TimeoutError:
                raise AssertionError(
                    f"connection still open after {timeout} s; received {packets!r}") from None

    def expect_no_packet(self, duration: float) -> None:
        """Nothing arrives during duration seconds (the connection may stay open)."""
        try:
            pkt = self.recv_packet(duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {pkt!r}")

    # -- high level

    def connect(self, client_id: str = "", clean: bool = True, keep_alive: int = 60,
                props=None, will=None, expect_success: bool = True, **kwargs) -> Packet:
        self.client_id = client_id
        self.send(connect_packet(client_id, self.version, clean, keep_alive, props, will,
                                 **kwargs))
        connack = self.expect(CONNACK)
        if expect_success:
            assert connack.reason == 0, f"CONNACK refused: {connack!r}"
        return connack

    def publish(self, topic, payload=b"", qos: int = 0, retain: bool = False,
                props=None, packet_id: int | None = None, dup: bool = False,
                wait_ack: bool = True) -> int | None:
        """Publishes; for QoS 1/2 with wait_ack, completes the flow (PUBACK or
        PUBREC/PUBREL/PUBCOMP) and returns the packet id."""
        if qos and packet_id is None:
            packet_id = self.next_packet_id()
        self.send(publish_packet(topic, payload, qos, retain, dup, packet_id, props,
                                 self.version))
        if qos and wait_ack:
            if qos == 1:
                ack = self.expect(PUBACK)
                assert ack.packet_id == packet_id
                assert ack.reason < 0x80, f"PUBACK error {ack!r}"
            else:
                rec = self.expect(PUBREC)
                assert rec.packet_id == packet_id
                assert rec.reason < 0x80, f"PUBREC error {rec!r}"
                self.send(ack_packet(PUBREL, packet_id, version=self.version))
                comp = self.expect(PUBCOMP)
                assert comp.packet_id == packet_id
        return packet_id

    def subscribe(self, filters, props=None, packet_id: int | None = None) -> Packet:
        """filters: a filter string, or a list of (filter, options) / strings."""
        if isinstance(filters, (str, bytes)):
            filters = [(filters, 0)]
        packet_id = packet_id or self.next_packet_id()
        self.send(subscribe_packet(packet_id, filters, props, self.version))
        suback = self.expect(SUBACK)
        assert suback.packet_id == packet_id
        return suback

    def unsubscribe(self, filters, props=None) -> Packet:
        if isinstance(filters, (str, bytes)):
            filters = [filters]
        packet_id = self.next_packet_id()
        self.send(unsubscribe_packet(packet_id, filters, props, self.version))
        unsuback = self.expect(UNSUBACK)
        assert unsuback.packet_id == packet_id
        return unsuback

    def ack(self, pkt: Packet) -> None:
        """Acknowledge a received PUBLISH (QoS 1: PUBACK; QoS 2: PUBREC, PUBREL, PUBCOMP)."""
        if pkt.qos == 1:
            self.send(ack_packet(PUBACK, pkt.packet_id, version=self.version))
        elif pkt.qos == 2:
            self.send(ack_packet(PUBREC, pkt.packet_id, version=self.version))
            rel = self.expect(PUBREL)
            assert rel.packet_id == pkt.packet_id
            self.send(ack_packet(PUBCOMP, pkt.packet_id, version=self.version))

    def recv_publish(self, timeout: float | None = None, ack: bool = True) -> Packet:
        pkt = self.expect(PUBLISH, timeout)
        if ack:
            self.ack(pkt)
        return pkt

    def disconnect(self, reason: int = 0, props=None, timeout: float = 5.0) -> None:
        """Sends DISCONNECT and waits until the broker has closed the connection, so that
        what the test does next (another connection, possibly on another of the broker's
        threads) comes after the broker handled the DISCONNECT."""
        if self.try_send(disconnect_packet(reason, props, self.version)):
            try:
                self.sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                    if not self.sock.recv(65536):
                        break
            except OSError:
                pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
