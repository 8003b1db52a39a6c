"""`tern top --once` against the real ternd's admin endpoint."""

from __future__ import annotations

import re
import socket
import subprocess

from tracekit import tern_path


def top(*args, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([tern_path(), "top", *args], capture_output=True, text=True, timeout=timeout)


def figure(frame: str, label: str, pattern: str) -> str:
    line = next((l for l in frame.splitlines() if l.startswith(label)), None)
    assert line is not None, f"no '{label}' line in:\n{frame}"
    match = re.search(pattern, line)
    assert match, f"'{pattern}' not in '{line}'"
    return match.group(1)


def test_once_prints_one_frame_of_the_live_figures(ternd_factory):
    ternd = ternd_factory()
    sub = ternd.paho("top-sub")
    sub.subscribe("top/t", qos=1)
    pub = ternd.paho("top-pub")
    for i in range(25):
        pub.publish("top/t", f"{i}".encode(), qos=1)
    sub.get_messages(25)

    result = top("--admin", ternd.admin_url, "--once", "--interval", "200")
    assert result.returncode == 0, result.stderr
    frame = result.stdout
    assert frame.startswith("ternd "), frame
    assert "(node " in frame
    assert int(figure(frame, "connections", r"(\d+) current")) == 2
    assert int(figure(frame, "messages", r"total (\d+) in")) >= 25
    assert int(figure(frame, "messages", r"in, (\d+) out")) >= 25
    assert figure(frame, "messages", r"(\d+\.\d)/s in") is not None  # a rate over the interval
    assert int(figure(frame, "queued", r"(\d+) messages")) == 0
    assert int(figure(frame, "queued", r"subscriptions (\d+)")) == 1
    assert figure(frame, "dropped", r"total (\d+)") == "0"
    assert "none firing" in figure(frame, "alerts", r"(.*)")
    assert "\x1b[" not in frame  # --once writes no terminal control sequences


def test_rates_follow_traffic_during_the_interval(ternd_factory):
    import threading

    ternd = ternd_factory()
    sub = ternd.paho("rate-sub")
    sub.subscribe("rate/t", qos=0)
    pub = ternd.paho("rate-pub")
    stop = threading.Event()
    started = threading.Event()

    def publish_until_stopped():
        while not stop.is_set():
            pub.publish("rate/t", b"x", qos=1)
            started.set()

    worker = threading.Thread(target=publish_until_stopped)
    worker.start()
    try:
        assert started.wait(10)
        result = top("--admin", ternd.admin_url, "--once", "--interval", "500")
    finally:
        stop.set()
        worker.join(10)
    assert result.returncode == 0, result.stderr
    assert float(figure(result.stdout, "messages", r"(\d+\.\d)/s in")) > 0


def test_the_token_is_sent_and_a_refusal_is_reported(ternd_factory):
    ternd = ternd_factory('[admin]\ntoken = "s3cret"\n')
    refused = top("--admin", ternd.admin_url, "--once", "--interval", "100")
    assert refused.returncode == 4
    assert "refused the token" in refused.stderr
    accepted = top("--admin", ternd.admin_url, "--token", "s3cret", "--once", "--interval", "100")
    assert accepted.returncode == 0, accepted.stderr
    assert "connections" in accepted.stdout


def test_an_unreachable_admin_endpoint_is_exit_code_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = top("--admin", f"http://127.0.0.1:{port}", "--once", "--timeout", "2000")
    assert result.returncode == 2
    assert "cannot read" in result.stderr
