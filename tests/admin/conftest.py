"""Harness for the admin endpoint tests: starts the real ternd with `--admin 127.0.0.1:0`
and finds both its MQTT port and its admin port in the log.

TERND names the binary (ctest sets it); otherwise the release build next to the tree.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.append(str(HERE.parent))  # ternd_harness

from helpers import PahoClient, close_all_clients  # noqa: E402
from mqtt_raw import V5, RawClient  # noqa: E402
from ternd_harness import (ADMIN_LISTENING, DEFAULT_TERND, MQTT_LISTENING,  # noqa: E402,F401
                           spawn_ternd, ternd_path, wait_for_log_lines)

STOP_TIMEOUT_S = 10.0
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class HttpResponse:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


class Ternd:
    """A running ternd with its admin endpoint."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, log_file):
        self.proc = proc
        self.log_path = log_path
        self._log_file = log_file
        self.host, self.port = "", 0
        self.admin_host, self.admin_port = "", 0
        self.admin_scheme = "http"
        # For HTTPS: an ssl.SSLContext that trusts the endpoint's CA.
        self.admin_ssl_context = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def http(self, path: str, token: str | None = None, timeout: float = 5.0) -> HttpResponse:
        request = urllib.request.Request(f"{self.admin_scheme}://{self.admin_host}:{self.admin_port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout,
                                        context=self.admin_ssl_context) as response:
                return HttpResponse(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.headers, error.read())

    def metric(self, name_and_labels: str, token: str | None = None) -> float | None:
        """The value of one series in /metrics, e.g. 'tern_messages_received_total'."""
        for line in self.http("/metrics", token).text.splitlines():
            if line.startswith(name_and_labels + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def paho(self, client_id: str = "", version: int = V5, **kwargs) -> PahoClient:
        return PahoClient(self.host, self.port, client_id, version, **kwargs)

    def raw(self, version: int = V5, timeout: float = 5.0, **kwargs) -> RawClient:
        return RawClient(self.host, self.port, version, timeout, **kwargs)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("ternd did not stop within 10 s of SIGTERM:\n" + self.log_tail())
        self._log_file.close()
        return self.proc.returncode


@pytest.fixture
def start_ternd(tmp_path):
    """Factory: start_ternd(config_toml=None, extra_args=()) -> Ternd."""
    started: list[Ternd] = []

    def start(config_toml: str | None = None, extra_args=()) -> Ternd:
        index = len(started)
        args = [ternd_path(), "--listen", "127.0.0.1:0",
                "--admin", "127.0.0.1:0", "--log-level", "debug"]
        if config_toml is not None:
            path = tmp_path / f"ternd-{index}.toml"
            path.write_text(config_toml)
            args += ["--config", str(path)]
        args += list(extra_args)
        log_path = tmp_path / f"ternd-{index}.log"
        proc, log_file = spawn_ternd(args, tmp_path, log_path)
        ternd = Ternd(proc, log_path, log_file)
        started.append(ternd)
        mqtt, admin = wait_for_log_lines(proc, log_path, [MQTT_LISTENING, ADMIN_LISTENING],
                                         "both its MQTT listener and its admin endpoint", args)
        ternd.host, ternd.port = mqtt.group(1), int(mqtt.group(2))
        ternd.admin_scheme = admin.group(1)
        ternd.admin_host, ternd.admin_port = admin.group(2), int(admin.group(3))
        return ternd

    yield start
    close_all_clients()
    problems = []
    for ternd in started:
        code = ternd.stop()
        if code != 0:
            problems.append(f"ternd exited with {code}:\n" + ternd.log_tail())
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def ternd(start_ternd) -> Ternd:
    return start_ternd()


def check_with_promtool(metrics_body: bytes) -> None:
    """promtool accepts the exposition without a word of complaint; skips the test when
    promtool is not installed."""
    if not shutil.which(PROMTOOL):
        pytest.skip("promtool is not installed (Debian package: prometheus)")
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics_body, capture_output=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert check.stdout.decode() + check.stderr.decode() == ""
