"""`tern top --once` against the real ternd's admin endpoint."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

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


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()


def make_ca(folder: Path, name: str) -> Path:
    """A throw-away CA: folder/NAME.crt and NAME.key."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=tern top {name}",
            cwd=folder)
    return folder / f"{name}.crt"


def issue_server_certificate(folder: Path, ca: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by the CA `ca` of make_ca."""
    (folder / "server.ext").write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=ternd admin", cwd=folder)
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=folder)
    return folder / "server.crt", folder / "server.key"


@pytest.fixture
def https_ternd(ternd_factory, tmp_path):
    """ternd with its admin endpoint on HTTPS (token required); yields (ternd, its CA, another CA)."""
    pki = tmp_path / "pki"
    ca = make_ca(pki, "ca")
    other_ca = make_ca(pki, "other")
    cert, key = issue_server_certificate(pki, "ca")
    ternd = ternd_factory(f'[admin]\ncert = "{cert}"\nkey = "{key}"\ntoken = "s3cret"\n')
    assert ternd.admin_url.startswith("https://127.0.0.1:"), ternd.admin_url
    return ternd, ca, other_ca


def test_once_over_https_with_the_ca_and_the_token(https_ternd):
    ternd, ca, _ = https_ternd
    sub = ternd.paho("tls-top-sub")
    sub.subscribe("tls/t", qos=1)
    result = top("--admin", ternd.admin_url, "--cafile", str(ca), "--token", "s3cret", "--once",
                 "--interval", "100")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ternd "), result.stdout
    assert int(figure(result.stdout, "connections", r"(\d+) current")) == 1
    assert int(figure(result.stdout, "queued", r"subscriptions (\d+)")) == 1
    assert result.stderr == ""

    # Over HTTPS the token is still what decides.
    refused = top("--admin", ternd.admin_url, "--cafile", str(ca), "--once", "--interval", "100")
    assert refused.returncode == 4, refused.stderr
    assert "refused the token" in refused.stderr


def test_a_certificate_from_another_ca_is_refused_with_exit_code_2(https_ternd):
    ternd, _, other_ca = https_ternd
    result = top("--admin", ternd.admin_url, "--cafile", str(other_ca), "--token", "s3cret", "--once",
                 "--interval", "100", "--timeout", "3000")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"cannot read {ternd.admin_url}/metrics" in result.stderr
    assert "certificate verification failed: " in result.stderr, result.stderr


def test_https_without_a_cafile_uses_the_system_cas_and_refuses_a_private_ca(https_ternd):
    ternd, _, _ = https_ternd
    result = top("--admin", ternd.admin_url, "--token", "s3cret", "--once", "--interval", "100")
    assert result.returncode == 2
    assert "certificate verification failed: " in result.stderr, result.stderr


def test_cafile_problems_are_usage_errors(https_ternd, tmp_path):
    ternd, _, _ = https_ternd
    missing = tmp_path / "missing.crt"
    result = top("--admin", ternd.admin_url, "--cafile", str(missing), "--once")
    assert result.returncode == 1
    assert f"cannot load the CA file '{missing}'" in result.stderr, result.stderr

    plain = ternd.admin_url.replace("https://", "http://")
    result = top("--admin", plain, "--cafile", str(missing), "--once")
    assert result.returncode == 1
    assert "--cafile needs an https:// admin endpoint" in result.stderr
