"""Passwords, ACLs, quotas, schemas and signatures at the broker, with real clients."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time

import paho.mqtt.client as paho

from conftest import ALICE_PASSWORD, BOB_PASSWORD, SIGNING_KEY_HEX, tern
from mqtt_raw import CONNACK, PUBACK, PUBLISH, USER_PROPERTY, V311, V5, RawClient, publish_packet

HOST = "127.0.0.1"


def client(broker, client_id, user=None, password=None, version=V5, **kwargs):
    c = RawClient(HOST, broker.port, version=version)
    c.connect(client_id, username=user, password=password.encode() if password is not None else None, **kwargs)
    return c


def connack(broker, client_id, user=None, password=None, version=V5, **kwargs):
    c = RawClient(HOST, broker.port, version=version)
    try:
        return c.connect(client_id, username=user, password=password.encode() if password is not None else None,
                         expect_success=False, **kwargs).reason
    finally:
        c.close()


def publish_ack(c, topic, payload, props=None) -> int:
    packet_id = c.next_packet_id()
    c.send(publish_packet(topic, payload, 1, packet_id=packet_id, props=props, version=c.version))
    ack = c.expect(PUBACK)
    assert ack.packet_id == packet_id
    return ack.reason or 0


def user_props(pkt) -> dict:
    return dict(pkt.props.all(USER_PROPERTY))


def next_publish(c, timeout=5.0):
    if c.stashed:
        return c.stashed.pop(0)
    return c.expect(PUBLISH, timeout=timeout)


# ---- authentication

def test_wrong_password_and_unknown_user_are_refused_with_0x86(broker):
    assert connack(broker, "a1", "alice", ALICE_PASSWORD) == 0
    assert connack(broker, "a2", "alice", "wrong") == 0x86
    assert connack(broker, "a3", "mallory", ALICE_PASSWORD) == 0x86
    assert connack(broker, "a4", "alice", None) == 0x86
    # 3.1.1: return code 4, bad user name or password.
    assert connack(broker, "a5", "alice", "wrong", version=V311) == 4
    assert connack(broker, "a6", "alice", ALICE_PASSWORD, version=V311) == 0
    broker.wait_for_line(r"a2 \(127\.0\.0\.1:\d+\): wrong password for user alice")
    broker.wait_for_line(r"a3 \(127\.0\.0\.1:\d+\): unknown user")
    assert broker.metric("tern_connections_refused_total") >= 4


def test_anonymous_access_is_off_with_a_password_file(broker):
    assert connack(broker, "anon") == 0x87
    broker.wait_for_line(r"anon \(127\.0\.0\.1:\d+\): anonymous clients are not allowed")


def test_real_clients_see_the_refusal(broker):
    r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-V", "mqttv5", "-u", "alice",
                        "-P", "not-it", "-t", "sensors/x", "-m", "1", "-i", "mosq-wrong"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "bad user name or password" in (r.stdout + r.stderr).lower()
    r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-V", "mqttv5", "-u", "alice",
                        "-P", ALICE_PASSWORD, "-t", "sensors/x", "-m", "1", "-q", "1", "-i", "mosq-right"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr

    results = []
    c = paho.Client("paho-wrong", protocol=paho.MQTTv311)
    c.username_pw_set("bob", "wrong")
    c.on_connect = lambda cl, ud, flags, rc: results.append(rc)
    c.connect(HOST, broker.port)
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        c.loop(timeout=0.1)
    c.disconnect()
    assert results == [4]


# ---- ACLs

def test_acl_denies_publish_with_0x87_and_other_clients_lose_nothing(broker):
    bob = client(broker, "bob-1", "bob", BOB_PASSWORD)
    assert bob.subscribe([("sensors/#", 1)]).reasons == [1]
    alice = client(broker, "alice-1", "alice", ALICE_PASSWORD)
    assert publish_ack(alice, "sensors/forbidden/x", b"no") == 0x87
    assert publish_ack(alice, "elsewhere", b"no") == 0x87
    assert publish_ack(alice, "sensors/open", b"yes") == 0
    got = next_publish(bob)
    assert (got.topic, got.payload) == ("sensors/open", b"yes")
    bob.expect_no_packet(0.3)
    # 3.1.1: dropped without an error, the connection stays up.
    old = client(broker, "alice-311", "alice", ALICE_PASSWORD, version=V311)
    old.send(publish_packet("sensors/forbidden/y", b"no", 1, packet_id=7, version=V311))
    assert old.expect(PUBACK).packet_id == 7
    old.send(publish_packet("sensors/after", b"ok", 1, packet_id=8, version=V311))
    assert old.expect(PUBACK).packet_id == 8
    assert next_publish(bob).topic == "sensors/after"
    broker.wait_for_line(r"alice-1.* may not publish to sensors/forbidden/x")
    for c in (bob, alice, old):
        c.close()


def test_acl_denies_subscribe_and_filters_deliveries_and_retained(broker):
    alice = client(broker, "alice-2", "alice", ALICE_PASSWORD)
    alice.publish("sensors/secret/r", b"hidden", qos=1, retain=True)
    alice.publish("sensors/open/r", b"shown", qos=1, retain=True)
    bob = client(broker, "bob-2", "bob", BOB_PASSWORD)
    # Not covered by an allow rule: refused, per filter.
    assert bob.subscribe([("#", 0), ("sensors/open/#", 0)]).reasons == [0x87, 0]
    got = next_publish(bob)
    assert (got.topic, got.payload) == ("sensors/open/r", b"shown")
    assert bob.subscribe([("sensors/#", 0)]).reasons == [0]
    # The retained secret is not delivered, the open one is.
    topics = {next_publish(bob).topic}
    bob.expect_no_packet(0.3)
    assert topics == {"sensors/open/r"}
    alice.publish("sensors/secret/live", b"x", qos=1)
    alice.publish("sensors/open/live", b"y", qos=1)
    seen = set()
    while True:
        try:
            seen.add(next_publish(bob, timeout=0.5).topic)
        except TimeoutError:
            break
    assert seen == {"sensors/open/live"}
    bob311 = client(broker, "bob-311", "bob", BOB_PASSWORD, version=V311)
    assert bob311.subscribe([("#", 0)]).reasons == [0x80]
    # %c: a per-client area.
    anyone = client(broker, "dev-9", "bob", BOB_PASSWORD)
    assert publish_ack(anyone, "public/dev-9/status", b"up") == 0
    assert publish_ack(anyone, "public/dev-8/status", b"up") == 0x87
    for c in (alice, bob, bob311, anyone):
        c.close()


def test_will_on_a_forbidden_topic_refuses_the_connect(broker):
    assert connack(broker, "will-1", "alice", ALICE_PASSWORD,
                   will={"topic": "sensors/forbidden/will", "payload": b"bye"}) == 0x87
    assert connack(broker, "will-2", "alice", ALICE_PASSWORD, will={"topic": "sensors/will", "payload": b"bye"}) == 0


def test_sighup_reloads_the_acl(broker):
    alice = client(broker, "alice-reload", "alice", ALICE_PASSWORD)
    assert publish_ack(alice, "granted/later", b"x") == 0x87
    acl = broker.root / "acl"
    acl.write_text(acl.read_text() + "user alice\nallow write granted/#\n")
    mark = broker.line_count()
    broker.reload()
    broker.wait_for_line(r"reloaded: 2 users", start=mark)
    assert publish_ack(alice, "granted/later", b"x") == 0
    alice.close()


# ---- quotas

def test_oversize_payload_is_refused_with_0x95(broker):
    alice = client(broker, "alice-big", "alice", ALICE_PASSWORD)
    assert publish_ack(alice, "sensors/big", b"x" * 1025) == 0x95
    assert publish_ack(alice, "sensors/big", b"x" * 1024) == 0
    broker.wait_for_line(r"PUBLISH to sensors/big refused: packet_too_large")
    alice.close()


def test_subscription_quota(broker):
    bob = client(broker, "bob-subs", "bob", BOB_PASSWORD)
    filters = [(f"sensors/s{i}", 0) for i in range(6)]
    assert bob.subscribe(filters).reasons == [0] * 5 + [0x97]
    bob.close()


def test_message_rate_flood_is_refused_with_0x96_and_others_are_unaffected(quota_broker):
    bob = client(quota_broker, "bob-q", "bob", BOB_PASSWORD)
    bob.subscribe([("sensors/#", 1)])
    flooder = client(quota_broker, "alice-flood", "alice", ALICE_PASSWORD)
    reasons = [publish_ack(flooder, "sensors/flood", b"x") for _ in range(20)]
    assert reasons[:5] == [0] * 5
    assert reasons.count(0x96) >= 10
    # Another client of the same user has its own buckets.
    calm = client(quota_broker, "alice-calm", "alice", ALICE_PASSWORD)
    assert publish_ack(calm, "sensors/calm", b"fine") == 0
    received = []
    while True:
        try:
            received.append(next_publish(bob, timeout=0.5).topic)
        except TimeoutError:
            break
    assert received.count("sensors/flood") == reasons.count(0)
    assert "sensors/calm" in received
    quota_broker.wait_for_line(r"PUBLISH to sensors/flood refused: message_rate_too_high")
    for c in (bob, flooder, calm):
        c.close()


def test_byte_rate_flood_is_refused_with_0x97(quota_broker):
    alice = client(quota_broker, "alice-bytes", "alice", ALICE_PASSWORD)
    assert publish_ack(alice, "sensors/bytes", b"x" * 1500) == 0
    assert publish_ack(alice, "sensors/bytes", b"x" * 1500) == 0  # into debt
    assert publish_ack(alice, "sensors/bytes", b"x" * 10) == 0x97
    quota_broker.wait_for_line(r"PUBLISH to sensors/bytes refused: quota_exceeded")
    alice.close()


def test_connections_per_user(quota_broker):
    a = client(quota_broker, "bob-c1", "bob", BOB_PASSWORD)
    b = client(quota_broker, "bob-c2", "bob", BOB_PASSWORD)
    assert connack(quota_broker, "bob-c3", "bob", BOB_PASSWORD) == 0x97
    mark = quota_broker.line_count()
    a.close()
    quota_broker.wait_for_line(r"bob-c1 \(127\.0\.0\.1:\d+\) (lost|disconnected)", start=mark)
    assert connack(quota_broker, "bob-c3", "bob", BOB_PASSWORD) == 0
    b.close()


def test_throttle_slows_the_publisher_and_accepts_everything(throttle_broker):
    bob = client(throttle_broker, "bob-t", "bob", BOB_PASSWORD)
    bob.subscribe([("sensors/#", 1)])
    alice = client(throttle_broker, "alice-t", "alice", ALICE_PASSWORD)
    start = time.monotonic()
    reasons = [publish_ack(alice, "sensors/throttled", str(i).encode()) for i in range(25)]
    elapsed = time.monotonic() - start
    assert reasons == [0] * 25
    # 5 at once, then 20 a second: at least ~1 s for the other 20.
    assert elapsed >= 0.8, elapsed
    payloads = [next_publish(bob).payload for _ in range(25)]
    assert payloads == [str(i).encode() for i in range(25)]
    bob.close()
    alice.close()


# ---- schemas

def test_schema_valid_events_are_tagged_invalid_ones_refused_and_dead_lettered(broker):
    bob = client(broker, "bob-schema", "bob", BOB_PASSWORD)
    bob.subscribe([("sensors/+/temperature", 1), ("$dlq/schema/#", 1)])
    alice = client(broker, "alice-schema", "alice", ALICE_PASSWORD)
    assert publish_ack(alice, "sensors/kitchen/temperature", b'{"celsius": 21.5}') == 0
    assert publish_ack(alice, "sensors/kitchen/temperature", b'{"celsius": "warm"}') == 0x99
    assert publish_ack(alice, "sensors/kitchen/temperature", b"not json") == 0x99
    good = next_publish(bob)
    assert good.topic == "sensors/kitchen/temperature"
    assert user_props(good)["tern-schema"] == "temperature@1"
    dead = [next_publish(bob) for _ in range(2)]
    assert [d.topic for d in dead] == ["$dlq/schema/sensors/kitchen/temperature"] * 2
    assert dead[0].payload == b'{"celsius": "warm"}'
    assert "celsius" in user_props(dead[0])["tern-error"]
    assert user_props(dead[1])["tern-error"].startswith("schema temperature@1: payload is not JSON")
    assert user_props(dead[0])["tern-topic"] == "sensors/kitchen/temperature"
    bob.expect_no_packet(0.3)
    bob.close()
    alice.close()


def test_tern_schema_refuses_an_incompatible_version(broker, tmp_path):
    registry = broker.root / "schemas"
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"type": "object", "required": ["celsius", "room"],
                              "properties": {"celsius": {"type": "number"}, "room": {"type": "string"}}}))
    r = tern("schema", "check", str(registry), "temperature", str(v2))
    assert r.returncode == 4
    assert "'room' is required by the new schema but not by the old" in r.stdout
    assert tern("schema", "check", str(registry), "temperature", str(v2), "--compatibility", "forward").returncode == 0
    listing = tern("schema", "list", str(registry))
    assert "temperature: 1" in listing.stdout and "sensors/+/temperature -> temperature" in listing.stdout
    payload = tmp_path / "p.json"
    payload.write_text('{"celsius": "hot"}')
    r = tern("schema", "validate", str(registry), "temperature@1", str(payload))
    assert r.returncode == 4 and r.stdout.startswith("invalid: ")


# ---- signatures

def sign(topic: str, payload: bytes, event_id: str) -> str:
    data = topic.encode() + b"\0" + payload + b"\0" + event_id.encode()
    return hmac.new(bytes.fromhex(SIGNING_KEY_HEX), data, hashlib.sha256).hexdigest()


def test_signatures_are_required_on_configured_topics(broker):
    bob = client(broker, "bob-sig", "bob", BOB_PASSWORD)
    bob.subscribe([("signed/#", 1)])
    alice = client(broker, "alice-signer", "alice", ALICE_PASSWORD)
    payload = b'{"amount": 10}'
    good = [(USER_PROPERTY, ("tern-id", "e-1")), (USER_PROPERTY, ("tern-sig", sign("signed/pay", payload, "e-1")))]
    assert publish_ack(alice, "signed/pay", payload, props=good) == 0
    assert publish_ack(alice, "signed/pay", b'{"amount": 1000}', props=good) == 0x87  # tampered
    assert publish_ack(alice, "signed/pay", payload, props=[(USER_PROPERTY, ("tern-id", "e-2"))]) == 0x87
    assert publish_ack(alice, "signed/pay", payload) == 0x87
    got = next_publish(bob)
    assert got.payload == payload and user_props(got)["tern-sig"] == sign("signed/pay", payload, "e-1")
    bob.expect_no_packet(0.3)
    broker.wait_for_line(r"PUBLISH to signed/pay refused: not_authorized \(invalid tern-sig for producer 'alice-signer'\)")
    broker.wait_for_line(r"PUBLISH to signed/pay refused: not_authorized \(missing tern-sig\)")
    bob.close()
    alice.close()


# ---- what the log must not hold (runs last in this module)

def test_zz_log_holds_no_password_and_no_key(broker):
    log = broker.log_path.read_text()
    assert "wrong password for user alice" in log  # the log is the one the tests wrote to
    for secret in (ALICE_PASSWORD, BOB_PASSWORD, SIGNING_KEY_HEX, "not-it"):
        assert secret not in log
