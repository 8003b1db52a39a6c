"""$SYS carries the store's figures ($SYS/broker/store/...) and the security policy's
counters ($SYS/broker/security/...) beside the broker's own, on the same cycle."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import time

import mqtt_raw as m
from helpers import latest_values

ALICE_PASSWORD = "alice-Pa55"
ITERATIONS = 1000  # the minimum: keeps the ~100 ms per first verification out of the test

ACL = """\
user alice
allow readwrite data/#
deny write data/forbidden/#
allow read $SYS/#
"""

STORE_TOPICS = [f"$SYS/broker/store/{name}" for name in (
    "commits", "fsyncs", "write_errors", "writes", "commit_latency_us/last",
    "commit_latency_us/average", "commit_latency_us/max", "group_size/average", "group_size/max",
    "database_bytes")]

SECURITY_TOPICS = [f"$SYS/broker/security/{name}" for name in (
    "auth/succeeded", "auth/bad_password", "auth/unknown_user", "auth/anonymous_refused",
    "acl/publish_denied", "acl/subscribe_denied", "acl/receive_denied", "quota/connections",
    "quota/payload_too_large", "quota/message_rate", "quota/byte_rate", "quota/throttled",
    "schema/valid", "schema/invalid", "signature/missing", "signature/invalid")]

QUEUE_TOPICS = ["$SYS/broker/messages/queued", "$SYS/broker/messages/inflight"]


def password_line(user: str, password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return (f"{user}:$pbkdf2-sha512${ITERATIONS}$"
            f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")


def secured_config(tmp_path, with_store: bool) -> str:
    passwd = tmp_path / "passwd"
    passwd.write_text(password_line("alice", ALICE_PASSWORD))
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    store = f'data_dir = "{tmp_path / "data"}"\ndurability = "fsync"\n' if with_store else ""
    return f"""{store}
[sys]
interval_s = 1

[security]
password_file = "{passwd}"
acl_file = "{acl}"

[security.quotas]
max_payload_size = 64
"""


def alice_watcher(broker, client_id: str):
    watcher = broker.paho(client_id, connect=False)
    watcher.client.username_pw_set("alice", ALICE_PASSWORD)
    watcher.connect()
    return watcher


# $SYS values by topic, the latest of each: a few cycles of interval_s = 1 s.
collect = functools.partial(latest_values, timeout=8.0)


def number(values: dict[str, str], topic: str) -> float:
    return float(values.get(topic, "-1"))


def test_store_and_security_figures_follow_what_happens(start_broker, tmp_path):
    broker = start_broker(secured_config(tmp_path, with_store=True))
    watcher = alice_watcher(broker, "sys-store-watch")
    assert watcher.subscribe("$SYS/broker/#", qos=0) == [0]
    first = collect(watcher, STORE_TOPICS + SECURITY_TOPICS + QUEUE_TOPICS)
    for topic in STORE_TOPICS + SECURITY_TOPICS + QUEUE_TOPICS:
        assert re.fullmatch(r"\d+(\.\d+)?", first[topic]), f"{topic} = {first[topic]!r}"
    assert re.fullmatch(r"\d+\.\d\d", first["$SYS/broker/store/group_size/average"])

    # Store: a retained QoS 1 message and a persistent session are written and fsynced.
    alice = broker.raw()
    alice.connect("sys-alice", username="alice", password=ALICE_PASSWORD.encode(),
                  props={m.SESSION_EXPIRY_INTERVAL: 300})
    alice.subscribe([("data/kept", 1)])
    alice.publish("data/kept", b"v", qos=1, retain=True)
    # Security: each kind of refusal once.
    for user, password in (("alice", b"wrong"), ("mallory", b"x")):
        refused = broker.raw()
        assert refused.connect(f"sys-{user}", username=user, password=password,
                               expect_success=False).reason == 0x86
    anonymous = broker.raw()
    assert anonymous.connect("sys-anon", expect_success=False).reason == 0x87
    alice.publish("data/forbidden/x", b"no", qos=1, wait_ack=False)
    assert alice.expect(m.PUBACK).reason == 0x87
    assert alice.subscribe([("secret/#", 0)]).reasons == [0x87]
    alice.publish("data/big", b"x" * 200, qos=1, wait_ack=False)
    assert alice.expect(m.PUBACK).reason >= 0x80

    def grown(v):
        s = "$SYS/broker/store/"
        p = "$SYS/broker/security/"
        return (number(v, s + "commits") > number(first, s + "commits")
                and number(v, s + "fsyncs") >= 1
                and number(v, s + "writes") >= 2
                and number(v, s + "database_bytes") > 0
                and number(v, s + "commit_latency_us/max") >= number(v, s + "commit_latency_us/last")
                and number(v, s + "group_size/max") >= 1
                and number(v, p + "auth/succeeded") >= 2
                and number(v, p + "auth/bad_password") >= 1
                and number(v, p + "auth/unknown_user") >= 1
                and number(v, p + "auth/anonymous_refused") >= 1
                and number(v, p + "acl/publish_denied") >= 1
                and number(v, p + "acl/subscribe_denied") >= 1
                and number(v, p + "quota/payload_too_large") >= 1)
    collect(watcher, STORE_TOPICS + SECURITY_TOPICS, grown)


def test_without_a_store_only_security_figures_are_added(start_broker, tmp_path):
    broker = start_broker(secured_config(tmp_path, with_store=False))
    watcher = alice_watcher(broker, "sys-nostore-watch")
    watcher.subscribe("$SYS/broker/#", qos=0)
    seen: set[str] = set()
    uptimes = 0
    deadline = time.monotonic() + 8.0
    # Two whole cycles: every figure of a cycle has arrived once the next one starts.
    while uptimes < 3:
        msg = watcher.messages.get(timeout=max(deadline - time.monotonic(), 0.001))
        seen.add(msg.topic)
        uptimes += msg.topic == "$SYS/broker/uptime"
    assert set(SECURITY_TOPICS + QUEUE_TOPICS) <= seen
    assert not [t for t in seen if t.startswith("$SYS/broker/store/")]

