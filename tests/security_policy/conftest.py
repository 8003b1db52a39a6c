"""Starts ternd with a [security] configuration and hands tests its ports and log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

# The raw MQTT client of the broker's integration suite.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

TERND = os.environ.get("TERND", "ternd")
TERN = os.environ.get("TERN", "tern")

ALICE_PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "bob-Pa55word!"
SIGNING_KEY_HEX = "6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e"


class Broker:
    def __init__(self, config_path: Path, log_path: Path):
        self.log_path = log_path
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [TERND, "--config", str(config_path), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--durability", "memory", "--log-level", "debug"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        port = self.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)")
        self.port = int(port.group(1))
        admin = self.wait_for_line(r"admin endpoint at http://([\d.]+:\d+)")
        self.admin = admin.group(1)

    def _read(self):
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 10.0, start: int = 0):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            index = start
            while True:
                while index < len(self.lines):
                    m = regex.search(self.lines[index])
                    if m:
                        return m
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and index >= len(self.lines)):
                    raise AssertionError(f"no log line matching {pattern!r}; log:\n{''.join(self.lines[-40:])}")
                self.cond.wait(left)

    def line_count(self) -> int:
        with self.cond:
            return len(self.lines)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, labels: str = "") -> float:
        text = self.metrics()
        key = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{key} not in /metrics")

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)


def tern(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TERN, *args], input=stdin, capture_output=True, text=True, timeout=60)


ACL = """\
# alice produces, bob consumes
user alice
allow write sensors/#
deny write sensors/forbidden/#
allow write signed/#
allow read sensors/#
user bob
allow read sensors/#
deny read sensors/secret/#
allow read $dlq/#
allow read signed/#
pattern allow readwrite public/%c/#
"""

TEMPERATURE_V1 = """{"type": "object", "required": ["celsius"],
 "properties": {"celsius": {"type": "number"}, "room": {"type": "string"}}}"""


def write_security_files(root: Path) -> dict:
    passwd = root / "passwd"
    for user, password in (("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)):
        r = tern("passwd", str(passwd), user, "--password-stdin", "--iterations", "1000", stdin=password + "\n")
        assert r.returncode == 0, r.stderr
    acl = root / "acl"
    acl.write_text(ACL)
    keys = root / "signing-keys"
    keys.write_text(f"# producer:key\nalice-signer:{SIGNING_KEY_HEX}\n")
    registry = root / "schemas"
    (root / "temperature.json").write_text(TEMPERATURE_V1)
    r = tern("schema", "add", str(registry), "temperature", str(root / "temperature.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    (registry / "bindings.json").write_text('{"sensors/+/temperature": "temperature"}')
    return {"passwd": passwd, "acl": acl, "keys": keys, "registry": registry}


def start_broker(root: Path, name: str, quotas: str = "") -> Broker:
    files = write_security_files(root)
    config = root / f"{name}.toml"
    config.write_text(f"""
[security]
password_file = "{files['passwd']}"
acl_file = "{files['acl']}"
[security.schemas]
registry = "{files['registry']}"
[security.signatures]
keys_file = "{files['keys']}"
topics = ["signed/#"]
{quotas}
""")
    return Broker(config, root / f"{name}.log")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    b = start_broker(root, "main", """
[security.quotas]
max_payload_size = 1024
max_subscriptions = 5
""")
    b.root = root
    yield b
    b.stop()


@pytest.fixture(scope="module")
def quota_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("quota")
    b = start_broker(root, "quota", """
[security.quotas]
messages_per_second = 5
message_burst = 5
bytes_per_second = 2000
byte_burst = 2000
max_connections_per_user = 2
""")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def throttle_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("throttle")
    b = start_broker(root, "throttle", """
[security.quotas]
messages_per_second = 20
message_burst = 5
throttle = true
""")
    yield b
    b.stop()
