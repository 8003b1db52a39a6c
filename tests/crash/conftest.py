"""Harness for the crash tests: ternd with a durable store on a fixed port, killed with
SIGKILL and started again on the same port and data directory.

Reuses the integration harness (tests/integration): its Broker class, the raw MQTT client
and the paho wrapper. TERND names the binary, as for the integration tests.

Randomness comes from one seed, printed by every test: TERN_CRASH_SEED=N replays a run's
choices (kill moments, protocol versions, payload sizes); TERN_CRASH_ITERATIONS=N
overrides the number of iterations of each crash test; TERN_CRASH_ITERATION_SEED=N runs the
one iteration whose seed a failure printed. TERN_CRASH_LOG_LEVEL sets ternd's log level
(info by default: debug lines for every message would slow the broker down).
"""

from __future__ import annotations

import importlib.util
import os
import random
import socket
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = (HERE / "../integration").resolve()
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))
if str(HERE.parent) not in sys.path:
    sys.path.append(str(HERE.parent))  # ternd_harness

# The integration conftest is loaded under another name: importing it as "conftest" would
# resolve to this module.
_spec = importlib.util.spec_from_file_location("tern_integration_harness",
                                               INTEGRATION / "conftest.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = harness
_spec.loader.exec_module(harness)

from helpers import close_all_clients  # noqa: E402
from ternd_harness import Launcher, record_reports, test_failed  # noqa: E402

Broker = harness.Broker

# Enough room that no acknowledged message is ever dropped for a full queue: the limits
# are not what these tests are about.
CONFIG = """\
[limits]
max_queued_messages = 1000000
max_queued_bytes = 1073741824
"""


def free_port() -> int:
    """A port that was free a moment ago; the broker binds it again after every restart."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield from record_reports(item, call)


@pytest.fixture
def new_launcher(request, tmp_path):
    """Factory: new_launcher(name) -> Launcher with its own port and data directory."""
    launchers: list[Launcher] = []

    def make(name: str, durability: str = "fsync") -> Launcher:
        workdir = tmp_path / name
        workdir.mkdir()
        # One fixed port: the broker binds it again after every restart.
        launcher = Launcher(workdir, workdir / "data", CONFIG, Broker, listen=f"127.0.0.1:{free_port()}",
                            durability=durability, log_level=os.environ.get("TERN_CRASH_LOG_LEVEL", "info"))
        launchers.append(launcher)
        return launcher

    yield make
    close_all_clients()
    problems = []
    for launcher in launchers:
        problems += launcher.shutdown()
    if test_failed(request) and launchers:
        sys.stderr.write("\n" + launchers[-1].logs(80) + "\n")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def seed(request) -> int:
    """The test's random seed (TERN_CRASH_SEED replays one)."""
    value = os.environ.get("TERN_CRASH_SEED")
    chosen = int(value) if value else random.SystemRandom().randrange(1, 2**31)
    print(f"{request.node.nodeid}: seed {chosen} (replay: TERN_CRASH_SEED={chosen})")
    return chosen
