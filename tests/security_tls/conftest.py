"""Harness: a CA made with `tern ca` and ternd processes with TLS/WebSocket listeners.

TERND and TERN name the binaries (ctest sets them); otherwise the release build.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LISTENING = re.compile(r"listening on (\S+):(\d+)(?: \((\w+))?")
START_TIMEOUT_S = 10.0


def binary(env: str, default: str) -> str:
    return os.environ.get(env) or str(ROOT / "build/release" / default)


TERND = binary("TERND", "apps/ternd/ternd")
TERN = binary("TERN", "apps/tern/tern")


def tern_ca(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([TERN, "ca", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"tern ca {' '.join(args)} failed: {result.stderr}"
    return result


class Pki:
    """A CA directory made by `tern ca`, plus a second, untrusted CA."""

    def __init__(self, root: Path):
        self.dir = root / "ca"
        self.other = root / "other-ca"
        tern_ca("init", "--dir", str(self.dir))
        tern_ca("issue", "--dir", str(self.dir), "--name", "broker", "--server",
                "--dns", "localhost", "--ip", "127.0.0.1")
        tern_ca("issue", "--dir", str(self.dir), "--name", "broker-2", "--server",
                "--dns", "localhost", "--ip", "127.0.0.1")
        tern_ca("issue", "--dir", str(self.dir), "--name", "device-1")
        tern_ca("issue", "--dir", str(self.dir), "--name", "expired-device", "--days", "-1")
        tern_ca("issue", "--dir", str(self.dir), "--name", "revoked-device")
        tern_ca("revoke", "--dir", str(self.dir), "--name", "revoked-device")
        tern_ca("init", "--dir", str(self.other), "--cn", "Somebody else's CA")
        tern_ca("issue", "--dir", str(self.other), "--name", "device-1")

    def path(self, name: str) -> str:
        return str(self.dir / name)

    @property
    def ca(self) -> str:
        return self.path("ca.crt")

    def cert(self, name: str) -> tuple[str, str]:
        return self.path(f"{name}.crt"), self.path(f"{name}.key")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


class Broker:
    def __init__(self, proc, log_path: Path, log_file):
        self.proc = proc
        self.log_path = log_path
        self._log_file = log_file
        self.ports: dict[str, int] = {}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_log(self, pattern: str, timeout: float = 5.0) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n"
                                     + self.log_tail())
            time.sleep(0.02)

    def wait_warning(self, *words: str, timeout: float = 5.0) -> str:
        """A warning or error line containing every word (case-insensitive)."""
        lowered = [w.lower() for w in words]
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines():
                low = line.lower()
                if ('"warning"' in low or '"error"' in low) and all(w in low for w in lowered):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no warning with {words!r} within {timeout} s:\n" + self.log_tail())
            time.sleep(0.02)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_text()))

    def sighup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("ternd did not stop within 10 s of SIGTERM:\n" + self.log_tail())
        self._log_file.close()
        return self.proc.returncode


def listener_toml(transport: str, **keys) -> str:
    lines = ["[[listener]]", 'address = "127.0.0.1:0"', f'transport = "{transport}"']
    for key, value in keys.items():
        lines.append(f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


@pytest.fixture
def start_ternd(tmp_path, request):
    """start_ternd(listeners_toml) -> Broker with .ports {transport: port} (first of each)."""
    brokers: list[Broker] = []

    def start(listeners: str, expect_failure: bool = False):
        index = len(brokers)
        config = tmp_path / f"ternd-{index}.toml"
        # TERND_THREADS: connections spread over that many event loops (security_tls_threads).
        threads = f'threads = {os.environ["TERND_THREADS"]}\n' if os.environ.get("TERND_THREADS") else ""
        config.write_text('durability = "memory"\nlog_level = "debug"\n' + threads + '\n[admin]\nlisten = ""\n\n'
                          + listeners)
        log_path = tmp_path / f"ternd-{index}.log"
        log_file = open(log_path, "wb")
        proc = subprocess.Popen([TERND, "--config", str(config)], stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=log_file, cwd=tmp_path)
        broker = Broker(proc, log_path, log_file)
        brokers.append(broker)
        if expect_failure:
            proc.wait(10)
            log_file.close()
            return broker
        wanted = listeners.count("[[listener]]")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            found = LISTENING.findall(broker.log_text())
            if len(found) >= wanted:
                for _host, port, kind in found:
                    broker.ports.setdefault(kind or "tcp", int(port))
                return broker
            if proc.poll() is not None:
                raise AssertionError(f"ternd exited with {proc.returncode}:\n" + broker.log_tail())
            if time.monotonic() > deadline:
                raise AssertionError("ternd did not listen in time:\n" + broker.log_tail())
            time.sleep(0.02)

    yield start
    for broker in brokers:
        if broker.proc.poll() is None:
            code = broker.stop()
            assert code == 0, f"ternd exited with {code}:\n" + broker.log_tail()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            sys.stderr.write("\n----- ternd log tail -----\n" + broker.log_tail(80) + "\n")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
