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

from ternd_harness import Launcher, record_reports, test_failed  # noqa: E402

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


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield from record_reports(item, call)


@pytest.fixture
def launcher(request, tmp_path):
    launcher = Launcher(tmp_path, tmp_path / "data", CONFIG, Broker, extra_args=("--admin", ""))
    yield launcher
    problems = launcher.shutdown()
    if test_failed(request):
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
