"""Harness for the tracing, `tern top` and error-file tests: the real ternd with its admin
endpoint, and a small OTLP/HTTP receiver that collects the spans ternd exports.

TERND and TERN name the binaries (ctest sets them); otherwise the release build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.append(str(HERE.parent))  # ternd_harness

from helpers import PahoClient  # noqa: E402
from ternd_harness import (ADMIN_LISTENING, MQTT_LISTENING, spawn_ternd,  # noqa: E402,F401
                           ternd_path, wait_for_log_lines)

DEFAULT_TERN = (HERE / "../../build/release/apps/tern/tern").resolve()
STOP_TIMEOUT_S = 15.0


def tern_path() -> str:
    return os.environ.get("TERN") or str(DEFAULT_TERN)


class SpanReceiver:
    """An OTLP/HTTP (JSON) trace receiver on 127.0.0.1: keeps every span of every POST to
    /v1/traces with the resource it came under, and lets a test wait for one."""

    def __init__(self, status: int = 200):
        self.spans: list[dict] = []      # each span dict gets "_resource": {key: value}
        self.requests: list[dict] = []   # path, content type, parsed body
        self._cv = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                receiver._record(self.path, self.headers.get("Content-Type", ""), doc)
                reply = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, path: str, content_type: str, doc) -> None:
        with self._cv:
            self.requests.append({"path": path, "content_type": content_type, "body": doc})
            for rs in (doc or {}).get("resourceSpans", []):
                resource = {a["key"]: _value(a["value"])
                            for a in rs.get("resource", {}).get("attributes", [])}
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        span = dict(span)
                        span["_resource"] = resource
                        span["_scope"] = ss.get("scope", {})
                        self.spans.append(span)
            self._cv.notify_all()

    def wait_for_span(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for span in self.spans:
                    if predicate(span):
                        return span
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching span within {timeout} s; got {self.spans}")
                self._cv.wait(left)

    def all_spans(self) -> list[dict]:
        with self._cv:
            return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: dict):
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def attributes(span: dict) -> dict:
    return {a["key"]: _value(a["value"]) for a in span.get("attributes", [])}


class Ternd:
    def __init__(self, proc: subprocess.Popen, log_path: Path, log_file):
        self.proc = proc
        self.log_path = log_path
        self._log_file = log_file
        self.host, self.port = "", 0
        self.admin_host, self.admin_port = "", 0
        self.admin_scheme = "http"

    @property
    def admin_url(self) -> str:
        return f"{self.admin_scheme}://{self.admin_host}:{self.admin_port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def paho(self, client_id: str = "", **kwargs) -> PahoClient:
        return PahoClient(self.host, self.port, client_id, 5, **kwargs)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("ternd did not stop within 15 s of SIGTERM:\n" + self.log_tail())
        if not self._log_file.closed:
            self._log_file.close()
        return self.proc.returncode


def start_ternd(workdir: Path, config_toml: str | None, index: int = 0, wait: bool = True) -> Ternd:
    args = [ternd_path(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "debug"]
    if config_toml is not None:
        path = workdir / f"ternd-{index}.toml"
        path.write_text(config_toml)
        args += ["--config", str(path)]
    log_path = workdir / f"ternd-{index}.log"
    proc, log_file = spawn_ternd(args, workdir, log_path)
    ternd = Ternd(proc, log_path, log_file)
    if not wait:
        return ternd
    try:
        mqtt, admin = wait_for_log_lines(proc, log_path, [MQTT_LISTENING, ADMIN_LISTENING],
                                         "its MQTT listener and admin endpoint", args)
    except AssertionError:
        ternd.stop()  # the caller never gets this ternd, so it cannot stop it
        raise
    ternd.host, ternd.port = mqtt.group(1), int(mqtt.group(2))
    ternd.admin_scheme = admin.group(1)
    ternd.admin_host, ternd.admin_port = admin.group(2), int(admin.group(3))
    return ternd
