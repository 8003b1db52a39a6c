"""Harness: starts the real ternd binary for each test and stops it afterwards.

TERND names the binary (ctest sets it); otherwise the release build next to the source tree.
TERND_THREADS, when set, starts every ternd with --threads N: the whole suite then runs
with connections spread over N event loops (ctest's integration_threads).
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
sys.path.insert(0, str(HERE))

from helpers import PahoClient, close_all_clients  # noqa: E402
from mqtt_raw import V5, RawClient  # noqa: E402

DEFAULT_TERND = (HERE / "../../build/release/apps/ternd/ternd").resolve()
LISTENING = re.compile(r"listening on (\S+):(\d+)")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def ternd_path() -> str:
    return os.environ.get("TERND") or str(DEFAULT_TERND)


class Broker:
    """A running ternd process."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, log_file):
        self.proc = proc
        self.log_path = log_path
        self._log_file = log_file
        self.host = ""
        self.port = 0
        self.expected_exit_code: int | None = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_log(self, pattern: str, timeout: float = 5.0, flags: int = 0) -> re.Match:
        """Awaits a log line matching pattern (a regular expression)."""
        regex = re.compile(pattern, flags)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no log line matching {pattern!r} within {timeout} s; log tail:\n"
                    + self.log_tail())
            time.sleep(0.02)

    def wait_warning(self, *words: str, timeout: float = 5.0) -> str:
        """Awaits a warning (or error) line whose message contains every word
        (case-insensitive); returns the line."""
        lowered = [w.lower() for w in words]
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines():
                low = line.lower()
                if ('"warning"' in low or '"error"' in low or '"warn"' in low) and all(
                        w in low for w in lowered):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no warning line containing {words!r} within {timeout} s; log tail:\n"
                    + self.log_tail())
            time.sleep(0.02)

    def wait_warning_any(self, names, timeout: float = 5.0) -> str:
        """Awaits a warning (or error) line that names one of the given reasons."""
        names = [n.lower() for n in names]
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines():
                low = line.lower()
                if ('"warning"' in low or '"error"' in low or '"warn"' in low) and any(
                        n in low for n in names):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no warning line naming any of {names!r} within {timeout} s; log tail:\n"
                    + self.log_tail())
            time.sleep(0.02)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, expect_exit_code: int | None = 0) -> int:
        """SIGTERM and wait; checks the exit code unless expect_exit_code is None."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(
                    f"ternd did not stop within {STOP_TIMEOUT_S} s of SIGTERM; log tail:\n"
                    + self.log_tail())
        self._log_file.close()
        code = self.proc.returncode
        self.expected_exit_code = None
        if expect_exit_code is not None:
            assert code == expect_exit_code, (
                f"ternd exited with {code}, expected {expect_exit_code}; log tail:\n"
                + self.log_tail())
        return code

    def kill(self) -> None:
        """SIGKILL, as a power cut would."""
        self.expected_exit_code = None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log_file.close()

    # Client factories, so tests read as what they do.

    def raw(self, version: int = V5, timeout: float = 5.0, **kwargs) -> RawClient:
        return RawClient(self.host, self.port, version, timeout, **kwargs)

    def paho(self, client_id: str = "", version: int = V5, **kwargs) -> PahoClient:
        return PahoClient(self.host, self.port, client_id, version, **kwargs)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def start_broker(request, tmp_path):
    """Factory: start_broker(config_toml=None, extra_args=(), env_threads=True) -> Broker.

    env_threads=False ignores TERND_THREADS (for a test of the threads setting itself)."""
    brokers: list[Broker] = []

    def start(config_toml: str | None = None, extra_args=(), env_threads: bool = True) -> Broker:
        index = len(brokers)
        args = [ternd_path(), "--listen", "127.0.0.1:0", "--log-level", "debug"]
        if env_threads and os.environ.get("TERND_THREADS"):
            args += ["--threads", os.environ["TERND_THREADS"]]
        if config_toml is not None:
            config_path = tmp_path / f"ternd-{index}.toml"
            config_path.write_text(config_toml)
            args += ["--config", str(config_path)]
        args += list(extra_args)
        log_path = tmp_path / f"ternd-{index}.log"
        log_file = open(log_path, "wb")
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=log_file, cwd=tmp_path)
        broker = Broker(proc, log_path, log_file)
        brokers.append(broker)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            match = LISTENING.search(broker.log_text())
            if match:
                broker.host, broker.port = match.group(1), int(match.group(2))
                return broker
            if proc.poll() is not None:
                raise AssertionError(
                    f"ternd exited with {proc.returncode} before listening: {args}\n"
                    + broker.log_tail())
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"ternd did not log 'listening on' within {START_TIMEOUT_S} s\n"
                    + broker.log_tail())
            time.sleep(0.02)

    yield start
    close_all_clients()

    failed = any(getattr(request.node, "rep_" + when, None) is not None
                 and getattr(request.node, "rep_" + when).failed
                 for when in ("setup", "call"))
    problems = []
    for broker in brokers:
        if broker.expected_exit_code is None:
            continue
        try:
            broker.stop(broker.expected_exit_code)
        except AssertionError as error:
            problems.append(str(error))
    if failed:
        for index, broker in enumerate(brokers):
            sys.stderr.write(f"\n----- ternd[{index}] log tail ({broker.log_path}) -----\n")
            sys.stderr.write(broker.log_tail(80) + "\n")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def broker(start_broker) -> Broker:
    return start_broker()


@pytest.fixture(params=[V5, 4], ids=["v5", "v311"])
def version(request) -> int:
    """Runs a test once per protocol version (5 = MQTT 5.0, 4 = MQTT 3.1.1)."""
    return request.param
