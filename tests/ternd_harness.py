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
