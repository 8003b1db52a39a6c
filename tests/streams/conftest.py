"""Harness for the stream tests: ternd with configured [[stream]]s and a durable store in a
data directory, started (and killed, and started again) as often as a test needs.

Reuses the integration harness (tests/integration): its Broker class and log helpers.
TERND names the broker binary and TERN the command line (ctest sets both); otherwise the
release build next to the source tree.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = (HERE / "../integration").resolve()
for path in (str(HERE), str(INTEGRATION)):
    if path not in sys.path:
        sys.path.insert(0, path)
if str(HERE.parent) not in sys.path:
    sys.path.append(str(HERE.parent))  # ternd_harness

# Loaded under another name: importing it as "conftest" would resolve to this module.
_spec = importlib.util.spec_from_file_location("tern_integration_harness",
                                               INTEGRATION / "conftest.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = harness
_spec.loader.exec_module(harness)

from ternd_harness import MQTT_LISTENING, spawn_ternd, ternd_path, wait_for_log_lines  # noqa: E402

Broker = harness.Broker
DEFAULT_TERN = (HERE / "../../build/release/apps/tern/tern").resolve()

CONFIG = """\
[[stream]]
name = "doors"
filter = "doors/+/events"

[[stream]]
name = "log"
filter = "log/#"

[[stream]]
name = "small"
filter = "small/#"
max_bytes = 2000

[[stream]]
name = "aging"
filter = "aging/#"
max_age_s = 1
"""


def tern_path() -> str:
    return os.environ.get("TERN") or str(DEFAULT_TERN)


class Launcher:
    """Starts ternd on one data directory; each start listens on a new port."""

    def __init__(self, workdir: Path, durability: str = "fsync"):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.durability = durability
        self.brokers: list[Broker] = []
        self.config_path = workdir / "ternd.toml"
        self.config_path.write_text(CONFIG)

    def start(self) -> Broker:
        index = len(self.brokers)
        args = [ternd_path(), "--config", str(self.config_path),
                "--listen", "127.0.0.1:0", "--admin", "", "--data-dir", str(self.data_dir),
                "--durability", self.durability, "--log-level", "info"]
        log_path = self.workdir / f"ternd-{index}.log"
        proc, log_file = spawn_ternd(args, self.workdir, log_path)
        broker = Broker(proc, log_path, log_file)
        self.brokers.append(broker)
        (match,) = wait_for_log_lines(proc, log_path, [MQTT_LISTENING], "listening", args)
        broker.host, broker.port = match.group(1), int(match.group(2))
        return broker

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"----- ternd[{i}] ({b.log_path}) -----\n{b.log_tail(lines)}"
                         for i, b in enumerate(self.brokers))

    def shutdown(self) -> list[str]:
        problems = []
        for broker in self.brokers:
            if broker.expected_exit_code is None:
                continue
            try:
                broker.stop(broker.expected_exit_code)
            except AssertionError as error:
                problems.append(str(error))
        return problems


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def launcher(request, tmp_path):
    launcher = Launcher(tmp_path)
    yield launcher
    failed = any(getattr(request.node, "rep_" + when, None) is not None
                 and getattr(request.node, "rep_" + when).failed
                 for when in ("setup", "call"))
    problems = launcher.shutdown()
    if failed:
        sys.stderr.write("\n" + launcher.logs(80) + "\n")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def broker(launcher) -> Broker:
    return launcher.start()


def run_tern(broker: Broker, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs `tern ARGS -h HOST -p PORT` and returns the finished process."""
    command = [tern_path(), *args, "-h", broker.host, "-p", str(broker.port)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
