"""Starting the real ternd for the Python suites (crash, streams, admin, tracing): the
process with its log in a file, and the wait for the lines that say where it listens.

ternd writes one JSON object a line; the addresses it bound (port 0 picks a free one) are
only known from those lines, so every suite waits for them before a test touches the
broker. A ternd that exits first, or is silent too long, fails the start with its log tail.

TERND names the binary (ctest sets it); otherwise the release build next to the tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TERND = (HERE / "../build/release/apps/ternd/ternd").resolve()

# `listening on HOST:PORT`: one line per MQTT listener.
MQTT_LISTENING = re.compile(r'"msg":"listening on (\S+):(\d+)"')
# `admin endpoint at http://HOST:PORT` (or https:// with [admin] cert and key).
ADMIN_LISTENING = re.compile(r'"msg":"admin endpoint at (https?)://(\S+):(\d+)"')
START_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.02


def ternd_path() -> str:
    return os.environ.get("TERND") or str(DEFAULT_TERND)


def log_tail(log_path: Path, lines: int = 60) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn_ternd(args: list[str], workdir: Path, log_path: Path):
    """Starts `args` (ternd first) in workdir, stdout and stderr into log_path.
    Returns (process, the open log file): the caller closes the file once ternd ended."""
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                            cwd=workdir)
    return proc, log_file


def wait_for_log_lines(proc: subprocess.Popen, log_path: Path, patterns: list[re.Pattern],
                       what: str, args: list[str],
                       timeout: float = START_TIMEOUT_S) -> list[re.Match]:
    """Polls ternd's log until each pattern matched; returns the matches in pattern order.
    Raises AssertionError with the log tail when ternd exits first or `timeout` passes;
    `what` names the awaited lines in that message."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(errors="replace")
        matches = [pattern.search(text) for pattern in patterns]
        if all(matches):
            return matches
        if proc.poll() is not None:
            raise AssertionError(f"ternd exited with {proc.returncode} before {what}: {args}\n"
                                 + log_tail(log_path))
        if time.monotonic() > deadline:
            raise AssertionError(f"ternd did not report {what} within {timeout:g} s\n"
                                 + log_tail(log_path))
        time.sleep(POLL_INTERVAL_S)


class Launcher:
    """Starts ternd on one data directory as often as a test needs (each start is kept, so
    restarts after kill -9 find the same store), and stops what still runs at the end.

    `broker_class(proc, log_path, log_file)` wraps each process (the integration suite's
    Broker); `listen` is the --listen address: port 0 gives each start a new port."""

    def __init__(self, workdir: Path, data_dir: Path, config_text: str, broker_class,
                 listen: str = "127.0.0.1:0", durability: str = "fsync", log_level: str = "info",
                 extra_args: tuple[str, ...] = ()):
        self.workdir = workdir
        self.data_dir = data_dir
        self.listen = listen
        self.port = int(listen.rsplit(":", 1)[1])  # 0: a new port at each start
        self.durability = durability
        self.log_level = log_level
        self.broker_class = broker_class
        self.extra_args = extra_args
        self.brokers: list = []
        self.config_path = workdir / "ternd.toml"
        self.config_path.write_text(config_text)

    def start(self):
        index = len(self.brokers)
        args = [ternd_path(), "--config", str(self.config_path), "--listen", self.listen,
                "--data-dir", str(self.data_dir), "--durability", self.durability,
                "--log-level", self.log_level, *self.extra_args]
        log_path = self.workdir / f"ternd-{index}.log"
        proc, log_file = spawn_ternd(args, self.workdir, log_path)
        broker = self.broker_class(proc, log_path, log_file)
        self.brokers.append(broker)
        (match,) = wait_for_log_lines(proc, log_path, [MQTT_LISTENING], "listening", args)
        broker.host, broker.port = match.group(1), int(match.group(2))
        assert self.port in (0, broker.port), f"listening on {broker.port}, not {self.port}"
        return broker

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"----- ternd[{i}] ({b.log_path}) -----\n{b.log_tail(lines)}"
                         for i, b in enumerate(self.brokers))

    def shutdown(self) -> list[str]:
        """Stops what still runs; returns problems (a broker that did not stop cleanly)."""
        problems = []
        for broker in self.brokers:
            if broker.expected_exit_code is None:
                continue
            try:
                broker.stop(broker.expected_exit_code)
            except AssertionError as error:
                problems.append(str(error))
        return problems


def test_failed(request) -> bool:
    """Whether the running test failed in setup or call (needs the makereport hook below
    imported into the suite's conftest)."""
    return any(getattr(request.node, "rep_" + when, None) is not None
               and getattr(request.node, "rep_" + when).failed for when in ("setup", "call"))


def record_reports(item, call):
    """Body of a pytest_runtest_makereport hookwrapper: keeps each phase's report on the item."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
