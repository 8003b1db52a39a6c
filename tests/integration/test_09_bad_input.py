"""Bad input closes only the offending connection, with the right reason and a log line,
while an unrelated stream of messages keeps flowing through the broker."""

import random
import threading
import time

import pytest

import mqtt_raw as m
from helpers import MessageStream, expect_broker_disconnect

MALFORMED = m.RC_MALFORMED_PACKET
PROTOCOL = m.RC_PROTOCOL_ERROR
MALFORMED_OR_PROTOCOL = [m.RC_MALFORMED_PACKET, m.RC_PROTOCOL_ERROR]


@pytest.fixture
def stream(broker):
    s = MessageStream(broker)
    yield s
    s.stop()


def _attack_connected(broker, version, data: bytes, codes, client_id="attacker"):
    client = broker.raw(version)
    client.connect(client_id)
    client.try_send(data)
    return expect_broker_disconnect(broker, client, codes)


def _attack_unconnected(broker, version, data: bytes, codes):
    client = broker.raw(version)
    client.try_send(data)
    expect_broker_disconnect(broker, client, codes, connected=False)
    return client


def test_random_bytes_before_connect(broker, stream, version):
    rng = random.Random(20240611)
    # Reserved packet type 0 with a short, complete body: nothing left to wait for.
    data = bytes([0x00, 0x20]) + bytes(rng.randrange(256) for _ in range(4094))
    _attack_unconnected(broker, version, data, MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_random_bytes_after_connect(broker, stream, version):
    rng = random.Random(7)
    # AUTH with reserved flags set and a short, complete body.
    data = bytes([0xF3, 0x20]) + bytes(rng.randrange(256) for _ in range(4094))
    _attack_connected(broker, version, data, MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_many_random_inputs_never_harm_other_clients(broker, stream):
    rng = random.Random(99)
    for n in range(30):
        client = broker.raw(m.V5)
        if n % 2:
            client.connect(f"fuzz-{n}")
        client.try_send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        client.abort()
    stream.progress()
    assert broker.running()
    stream.finish()


def test_truncated_packet_then_close(broker, stream, version):
    watcher = broker.paho("trunc-watch", version)
    watcher.subscribe("trunc/will", qos=1)
    client = broker.raw(version)
    client.connect("truncated", will={"topic": "trunc/will", "payload": b"lost"})
    whole = m.publish_packet("trunc/t", b"p" * 100, qos=1, packet_id=1, version=version)
    client.send(whole[:len(whole) // 2])
    client.close()
    # An abnormal end: the will is published, and nothing else breaks.
    assert watcher.get_message().payload == b"lost"
    stream.finish()


def test_remaining_length_with_five_bytes(broker, stream, version):
    _attack_connected(broker, version, b"\x30\xff\xff\xff\xff\x01", MALFORMED)
    _attack_unconnected(broker, version, b"\x10\xff\xff\xff\xff\x01", MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_remaining_length_over_max_packet_size_is_refused_without_reading_it(broker, stream,
                                                                              version):
    # The default maximum is 1 MiB: announce 200 MiB and send nothing more.
    header = bytes([0x32]) + m.encode_varint(200 * 1024 * 1024)
    started = time.monotonic()
    _attack_connected(broker, version, header, [m.RC_PACKET_TOO_LARGE])
    assert time.monotonic() - started < 4
    stream.finish()


def test_oversized_connect_is_refused(start_broker):
    broker = start_broker("[limits]\nmax_packet_size = 1024\n")
    stream = MessageStream(broker)
    client = broker.raw()
    client.try_send(m.connect_packet("big", props=[(m.USER_PROPERTY, ("k", "v" * 3000))]))
    packets = client.expect_close()
    assert all(p.type == m.CONNACK and p.reason == m.RC_PACKET_TOO_LARGE for p in packets), \
        packets
    broker.wait_warning_any(["packet_too_large"])
    stream.finish()


@pytest.mark.parametrize("topic", [
    b"bad/\xff",                # never valid in UTF-8
    b"bad/\xc3",                # truncated sequence
    b"bad/\xc0\xaf",            # overlong encoding of '/'
    b"bad/\xed\xa0\x80",        # UTF-16 surrogate half
], ids=["ff", "truncated", "overlong", "surrogate"])
def test_invalid_utf8_in_topic(broker, stream, version, topic):
    _attack_connected(broker, version, m.publish_packet(topic, b"x", version=version),
                      MALFORMED)
    stream.finish()


def test_null_character_in_topic(broker, stream, version):
    _attack_connected(broker, version, m.publish_packet(b"bad/\x00/t", b"x", version=version),
                      MALFORMED)
    stream.finish()


@pytest.mark.parametrize("topic", ["a/+/b", "a/#", "#", "+"])
def test_wildcards_in_publish_topic(broker, stream, version, topic):
    _attack_connected(broker, version,
                      m.publish_packet(topic, b"x", qos=1, packet_id=1, version=version),
                      [m.RC_MALFORMED_PACKET, m.RC_TOPIC_NAME_INVALID])
    stream.finish()


def test_empty_topic_without_alias(broker, stream, version):
    _attack_connected(broker, version, m.publish_packet("", b"x", version=version),
                      [m.RC_PROTOCOL_ERROR, m.RC_MALFORMED_PACKET, m.RC_TOPIC_NAME_INVALID])
    stream.finish()


def test_second_connect(broker, stream, version):
    _attack_connected(broker, version, m.connect_packet("again", version=version), PROTOCOL)
    stream.finish()


def test_publish_before_connect(broker, stream, version):
    watcher = broker.paho("early-watch", version)
    watcher.subscribe("early/t", qos=0)
    client = broker.raw(version)
    client.send(m.publish_packet("early/t", b"sneaky", version=version))
    assert client.expect_close() == []  # no CONNACK, nothing at all
    broker.wait_warning_any(["protocol_error", "malformed_packet"])
    watcher.expect_no_message(0.3)
    stream.finish()


def test_qos_3(broker, stream, version):
    data = bytearray(m.publish_packet("q3/t", b"x", qos=1, packet_id=1, version=version))
    data[0] |= 0x06
    _attack_connected(broker, version, bytes(data), MALFORMED)
    stream.finish()


def test_dup_on_qos_0(broker, stream, version):
    _attack_connected(broker, version,
                      m.publish_packet("dup/t", b"x", qos=0, dup=True, version=version),
                      MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_packet_identifier_zero(broker, stream, version):
    _attack_connected(broker, version,
                      m.publish_packet("pid/t", b"x", qos=1, packet_id=0, version=version),
                      MALFORMED_OR_PROTOCOL)
    stream.finish()


@pytest.mark.parametrize("data", [
    m.subscribe_packet(1, [("ok/t", 0)], flags=0x00),
    m.packet(m.UNSUBSCRIBE, 0x00, m.encode_u16(1) + b"\x00" + m.encode_string("ok/t")),
    m.packet(m.PUBREL, 0x00, m.encode_u16(1)),
    bytes([m.PINGREQ << 4 | 0x01, 0]),
    bytes([m.DISCONNECT << 4 | 0x02, 0]),
], ids=["subscribe", "unsubscribe", "pubrel", "pingreq", "disconnect"])
def test_reserved_fixed_header_flags(broker, stream, data):
    _attack_connected(broker, m.V5, data, MALFORMED)
    stream.finish()


def test_reserved_flags_v311(broker, stream):
    data = m.subscribe_packet(1, [("ok/t", 0)], version=m.V311, flags=0x00)
    _attack_connected(broker, m.V311, data, MALFORMED)
    stream.finish()


def test_reserved_packet_type(broker, stream, version):
    _attack_connected(broker, version, b"\x00\x00", MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_server_only_packet_from_client(broker, stream, version):
    _attack_connected(broker, version, bytes([m.CONNACK << 4, 2, 0, 0]),
                      MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_subscribe_without_filters(broker, stream, version):
    _attack_connected(broker, version, m.subscribe_packet(1, [], version=version),
                      MALFORMED_OR_PROTOCOL)
    stream.finish()


@pytest.mark.parametrize("options", [0x03, 0x30, 0x40, 0x80],
                         ids=["qos3", "retain-handling-3", "reserved-bit6", "reserved-bit7"])
def test_invalid_subscription_options_v5(broker, stream, options):
    _attack_connected(broker, m.V5, m.subscribe_packet(1, [("opt/t", options)]),
                      MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_subscription_identifier_in_client_publish_v5(broker, stream):
    _attack_connected(broker, m.V5, m.publish_packet(
        "sid/t", b"x", props={m.SUBSCRIPTION_IDENTIFIER: 5}), PROTOCOL)
    stream.finish()


def test_duplicate_property_v5(broker, stream):
    _attack_connected(broker, m.V5, m.publish_packet(
        "dupprop/t", b"x", props=[(m.CONTENT_TYPE, "a"), (m.CONTENT_TYPE, "b")]), PROTOCOL)
    stream.finish()


def test_unknown_property_v5(broker, stream):
    body = m.encode_string("unk/t") + b"\x02\x7f\x00" + b"x"
    _attack_connected(broker, m.V5, m.packet(m.PUBLISH, 0, body), MALFORMED_OR_PROTOCOL)
    stream.finish()


def test_property_length_beyond_packet_v5(broker, stream):
    body = m.encode_string("plen/t") + b"\x40" + b"\x03\x00\x01a"
    _attack_connected(broker, m.V5, m.packet(m.PUBLISH, 0, body), MALFORMED)
    stream.finish()


def test_string_length_beyond_packet(broker, stream, version):
    body = m.encode_u16(500) + b"short"
    _attack_connected(broker, version, m.packet(m.PUBLISH, 0, body), MALFORMED)
    stream.finish()


@pytest.mark.parametrize("variant", ["reserved-flag", "will-qos-3", "will-retain-no-will",
                                     "bad-protocol-name", "client-id-utf8"])
def test_invalid_connect(broker, stream, version, variant):
    if variant == "reserved-flag":
        data = m.connect_packet("x", version=version, reserved_flag=True)
    elif variant == "will-qos-3":
        data = m.connect_packet("x", version=version,
                                will={"topic": "w", "payload": b"", "qos": 3})
    elif variant == "will-retain-no-will":
        data = bytearray(m.connect_packet("x", version=version))
        data[9] |= 0x20  # connect flags byte: will retain without will flag
        data = bytes(data)
    elif variant == "bad-protocol-name":
        data = m.connect_packet("x", version=version, protocol_name="MQTX")
    else:
        data = m.connect_packet(b"id\xff", version=version)
    client = broker.raw(version)
    client.send(data)
    packets = client.expect_close()
    # At most a refusing CONNACK before the close.
    assert all(p.type == m.CONNACK and p.reason != 0 for p in packets), packets
    broker.wait_warning_any(["malformed_packet", "protocol_error",
                             "unsupported_protocol_version", "client_identifier_not_valid"])
    stream.finish()


def test_password_without_user_name_v311(broker, stream):
    client = broker.raw(m.V311)
    client.send(m.connect_packet("nouser", version=m.V311, password=b"secret"))
    packets = client.expect_close()
    assert all(p.type == m.CONNACK and p.reason != 0 for p in packets), packets
    stream.finish()


def test_client_that_never_sends_connect(start_broker):
    broker = start_broker("[limits]\nconnect_timeout_ms = 500\n")
    stream = MessageStream(broker)
    idle = broker.raw()
    started = time.monotonic()
    assert idle.expect_close(4) == []
    assert time.monotonic() - started <= 2.5
    stream.finish()


def test_topic_alias_zero_v5(broker, stream):
    _attack_connected(broker, m.V5, m.publish_packet("al/t", b"x", props={m.TOPIC_ALIAS: 0}),
                      [m.RC_TOPIC_ALIAS_INVALID, m.RC_PROTOCOL_ERROR])
    stream.finish()


def test_pubrel_for_unknown_packet_id_is_not_fatal(broker, stream, version):
    client = broker.raw(version)
    client.connect("stray-pubrel")
    client.send(m.ack_packet(m.PUBREL, 4242, version=version))
    comp = client.expect(m.PUBCOMP)
    assert comp.packet_id == 4242
    if version == m.V5:
        assert comp.reason in (0, 0x92)  # success or packet identifier not found
    client.disconnect()
    stream.finish()


# -------------------------------------------------------------------------------------------
# A subscriber that stops reading must not stall the publisher or other subscribers.

FLOOD_COUNT = 20000
FLOOD_PAYLOAD = 1024


def _flood_payload(n: int) -> bytes:
    return f"{n:08d}".encode() + b"x" * (FLOOD_PAYLOAD - 8)


class _Reader(threading.Thread):
    """Reads PUBLISH packets from a raw QoS 0 subscriber until count arrived or timeout."""

    def __init__(self, client, count, timeout):
        super().__init__(daemon=True)
        self.client, self.count, self.timeout = client, count, timeout
        self.sequence: list[int] = []
        self.error = None

    def run(self):
        deadline = time.monotonic() + self.timeout
        try:
            while len(self.sequence) < self.count:
                pkt = self.client.recv_packet(max(deadline - time.monotonic(), 0.001))
                if pkt.type == m.PUBLISH:
                    self.sequence.append(int(pkt.payload[:8]))
        except BaseException as error:  # reported by the test
            self.error = error


def test_stalled_subscriber_does_not_stall_the_publisher(broker, stream):
    stalled = broker.raw(receive_buffer=4096)
    stalled.connect("stalled")
    stalled.subscribe([("flood/t", 0)])

    healthy = broker.raw()
    healthy.connect("healthy")
    healthy.subscribe([("flood/t", 0)])
    reader = _Reader(healthy, FLOOD_COUNT, 90)
    reader.start()

    publisher = broker.raw()
    publisher.connect("flooder")
    started = time.monotonic()
    batch = 50
    for first in range(0, FLOOD_COUNT, batch):
        ids = list(range(first + 1, first + batch + 1))
        publisher.send(b"".join(
            m.publish_packet("flood/t", _flood_payload(first + i), qos=1, packet_id=pid)
            for i, pid in enumerate(ids)))
        for pid in ids:
            ack = publisher.expect(m.PUBACK, timeout=15)
            assert ack.packet_id == pid and ack.reason < 0x80, ack
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"publisher needed {elapsed:.1f} s"

    reader.join(60)
    assert reader.error is None, f"healthy subscriber: {reader.error!r}"
    assert reader.sequence == list(range(FLOOD_COUNT)), (
        f"healthy subscriber got {len(reader.sequence)} messages, not all in order")

    # What the stalled subscriber finally reads is a bounded, ordered subset.
    seen = []
    while True:
        try:
            pkt = stalled.recv_packet(1.0)
        except (TimeoutError, m.ConnectionClosed):
            break
        if pkt.type == m.PUBLISH:
            seen.append(int(pkt.payload[:8]))
    assert len(seen) < FLOOD_COUNT, "nothing was held back for the stalled subscriber"
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    stream.finish()
