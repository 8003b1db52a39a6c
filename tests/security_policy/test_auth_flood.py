"""A flood of CONNECTs with wrong passwords against a password file with a realistic
iteration count: the hashes run off the broker's thread, so an already connected client's
QoS 1 round trips and pings keep flowing, and the flood's refusals are counted."""

from __future__ import annotations

import queue
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from conftest import ALICE_PASSWORD, Broker, tern
from mqtt_raw import CONNACK, PINGRESP, V311, V5, RawClient, connect_packet, pingreq_packet

HOST = "127.0.0.1"
BURST = 40            # CONNECTs sent at once: more than the 16 verifications that may be pending
FLOOD_THREADS = 4
BACKOFF_AFTER = 5     # failures in a row before an address backs off (the default)
ROUND_TRIPS = 30


@pytest.fixture(scope="module")
def slow_hash_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-flood")
    passwd = root / "passwd"
    # No --iterations: the default count, about 100 ms a hash.
    r = tern("passwd", str(passwd), "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "$210000$" in passwd.read_text()
    config = root / "flood.toml"
    config.write_text(f'[security]\npassword_file = "{passwd}"\n')
    b = Broker(config, root / "flood.log")
    yield b
    b.stop()


def auth_metrics(broker) -> dict[str, float]:
    return {result: broker.metric("tern_security_authentications_total", f'result="{result}"')
            for result in ("ok", "bad_password", "busy", "backoff")}


def wrong_connect(broker, n: int) -> tuple[int, int]:
    """One CONNECT with a password never tried before; returns (version, CONNACK code)."""
    version = V5 if n % 2 == 0 else V311
    c = RawClient(HOST, broker.port, version=version, timeout=20.0)
    try:
        return version, c.connect(f"flood-{n}", username="alice", password=f"guess-{n}".encode(),
                                  expect_success=False).reason
    finally:
        c.close()


class Prober:
    """A paho client connected before the flood: publishes QoS 1 to a topic it subscribes to
    and times each round trip (PUBLISH out, PUBACK and the delivery back)."""

    def __init__(self, broker):
        self.received: queue.Queue[bytes] = queue.Queue()
        self.connected = threading.Event()
        self.client = paho.Client(client_id="prober", protocol=paho.MQTTv311)
        self.client.username_pw_set("alice", ALICE_PASSWORD)
        self.client.on_connect = lambda c, u, f, rc: (rc == 0 and self.connected.set())
        self.client.on_message = lambda c, u, m: self.received.put(m.payload)
        self.client.connect(HOST, broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "prober did not connect"
        result, _ = self.client.subscribe("probe/rt", qos=1)
        assert result == paho.MQTT_ERR_SUCCESS
        # The subscription is in place once a message comes back.
        self.round_trip("warm-up")

    def round_trip(self, payload: str, timeout: float = 10.0) -> float:
        start = time.monotonic()
        info = self.client.publish("probe/rt", payload, qos=1)
        info.wait_for_publish(timeout)
        assert info.is_published(), f"no PUBACK for {payload}"
        got = self.received.get(timeout=timeout)
        assert got == payload.encode(), (got, payload)
        return time.monotonic() - start

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_a_wrong_password_flood_does_not_stall_connected_clients(slow_hash_broker):
    broker = slow_hash_broker
    prober = Prober(broker)
    pinger = RawClient(HOST, broker.port, version=V5)
    pinger.connect("pinger", username="alice", password=ALICE_PASSWORD.encode())
    before = auth_metrics(broker)

    # A burst: all CONNECTs are in before the first hash is done, so the pending
    # verifications hit their bound.
    sockets = []
    for n in range(BURST):
        version = V5 if n % 2 == 0 else V311
        c = RawClient(HOST, broker.port, version=version, timeout=30.0)
        c.send(connect_packet(f"burst-{n}", version, username="alice", password=f"burst-{n}".encode()))
        sockets.append(c)

    # Then a steady flood while the prober works.
    codes: list[tuple[int, int]] = []
    codes_lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def flood(worker: int):
        n = worker
        try:
            while not stop.is_set():
                result = wrong_connect(broker, 1000 + n)
                with codes_lock:
                    codes.append(result)
                n += FLOOD_THREADS
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    flooders = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(FLOOD_THREADS)]
    flood_started = time.monotonic()
    for t in flooders:
        t.start()

    # Round trips go on until enough hashes have finished for the back-off to start, so
    # that they overlap both the queue's bound and the back-off.
    latencies = []
    pongs = 0
    i = 0
    deadline = time.monotonic() + 90
    while i < ROUND_TRIPS or broker.metric("tern_security_authentications_total",
                                           'result="bad_password"') - before["bad_password"] < BACKOFF_AFTER + 1:
        assert time.monotonic() < deadline, "the hashes did not finish"
        latencies.append(prober.round_trip(f"m{i}"))
        pinger.send(pingreq_packet())
        pinger.expect(PINGRESP)
        pongs += 1
        i += 1
    # The round trips happened while the flood was on, not after it.
    assert not errors, errors
    with codes_lock:
        during = len(codes)
    assert all(t.is_alive() for t in flooders)

    # A client whose password was verified before is answered at once, even now.
    again = RawClient(HOST, broker.port, version=V5)
    assert again.connect("again", username="alice", password=ALICE_PASSWORD.encode()).reason == 0
    again.close()

    # Something real clients see: mosquitto_pub with a wrong password is refused.
    r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-V", "mqttv311", "-u", "alice",
                        "-P", "not-the-password", "-t", "x", "-m", "y"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    mosquitto_text = (r.stdout + r.stderr).lower()
    assert "bad user name or password" in mosquitto_text or "unavailable" in mosquitto_text, mosquitto_text
    mosquitto_rate_limited = "unavailable" in mosquitto_text

    stop.set()
    for t in flooders:
        t.join(timeout=30)
    flood_seconds = time.monotonic() - flood_started
    for c in sockets:
        codes.append((c.version, c.expect(CONNACK, timeout=30).reason))
        c.close()
    prober.round_trip("after")
    prober.close()
    pinger.close()

    assert not errors, errors
    assert pongs == len(latencies) >= ROUND_TRIPS
    assert during > 0, "the flood made no attempt while the prober ran"
    v5_codes = {code for v, code in codes if v == V5}
    v311_codes = {code for v, code in codes if v == V311}
    assert v5_codes <= {0x86, 0x9F}, v5_codes
    assert v311_codes <= {4, 3}, v311_codes
    refused_busy_or_backoff = sum(1 for v, code in codes if (v, code) in ((V5, 0x9F), (V311, 3)))
    refused_bad_password = sum(1 for v, code in codes if (v, code) in ((V5, 0x86), (V311, 4)))
    assert refused_busy_or_backoff > 0
    assert refused_bad_password > 0

    after = auth_metrics(broker)
    # Every refusal the flood saw is counted, as what it was.
    assert after["busy"] > before["busy"], "the burst did not reach the bound on pending verifications"
    assert after["backoff"] > before["backoff"], "the flood never met the back-off"
    assert (after["busy"] - before["busy"]) + (after["backoff"] - before["backoff"]) == \
        refused_busy_or_backoff + (1 if mosquitto_rate_limited else 0)
    # mosquitto_pub's attempt was refused either way; it is the one extra.
    rate_or_bad = (after["bad_password"] - before["bad_password"]) + (after["busy"] - before["busy"]) + \
        (after["backoff"] - before["backoff"])
    assert rate_or_bad == len(codes) + 1
    assert after["ok"] - before["ok"] == 1  # "again"
    assert broker.metric("tern_security_password_verifications_pending") == 0
    print(f"flood: {len(codes)} refused CONNECTs in {flood_seconds:.1f} s "
          f"({refused_busy_or_backoff} with 0x9F / server unavailable); {len(latencies)} prober round trips: "
          f"max {max(latencies) * 1000:.1f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms")
