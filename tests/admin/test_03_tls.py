"""The admin endpoint over HTTPS ([admin] cert and key, or --admin-cert/--admin-key): the
CA verified by the client, plain HTTP on the HTTPS port closed without harm to ternd, the
bearer token still enforced, promtool still satisfied, and the certificate reloaded on
SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import DEFAULT_TERND, check_with_promtool
from helpers import wait_until

TOKEN = "s3cret-admin-token"


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()


class Pki:
    """A throw-away CA in `folder` that issues server certificates for 127.0.0.1."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = folder / "ca.crt"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=tern admin test CA",
                cwd=folder)

    def issue(self, name: str, common_name: str) -> tuple[Path, Path]:
        (self.folder / f"{name}.ext").write_text(
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
            "extendedKeyUsage = serverAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}",
                cwd=self.folder)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
                cwd=self.folder)
        return self.folder / f"{name}.crt", self.folder / f"{name}.key"

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
        return context


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path / "pki")


def admin_toml(cert: Path, key: Path, token: str | None = None) -> str:
    text = f'[admin]\ncert = "{cert}"\nkey = "{key}"\n'
    if token is not None:
        text += f'token = "{token}"\n'
    return text


def start_https(start_ternd, pki: Pki, token: str | None = None, name: str = "server"):
    cert, key = pki.issue(name, "ternd admin")
    ternd = start_ternd(admin_toml(cert, key, token))
    assert ternd.admin_scheme == "https"
    ternd.admin_ssl_context = pki.client_context()
    return ternd


def served_common_name(ternd, context: ssl.SSLContext) -> str:
    with socket.create_connection((ternd.admin_host, ternd.admin_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=ternd.admin_host) as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
            return subject["commonName"]


def test_https_healthz_and_metrics_with_the_ca_verified(start_ternd, pki):
    ternd = start_https(start_ternd, pki)
    r = ternd.http("/healthz")
    assert r.status == 200 and r.text == "ok\n"
    r = ternd.http("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "tern_admin_tls_handshakes_failed_total 0" in r.text
    assert "admin endpoint at https://" in ternd.log_text()


def test_metrics_over_https_pass_promtool(start_ternd, pki):
    ternd = start_https(start_ternd, pki)
    r = ternd.http("/metrics")
    assert r.status == 200
    check_with_promtool(r.body)


def test_a_client_without_the_ca_refuses_the_certificate(start_ternd, pki):
    ternd = start_https(start_ternd, pki)
    untrusting = ssl.create_default_context()  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        served_common_name(ternd, untrusting)
    assert ternd.http("/healthz").status == 200


def test_plain_http_on_the_https_port_is_closed_and_ternd_keeps_serving(start_ternd, pki):
    ternd = start_https(start_ternd, pki)
    with socket.create_connection((ternd.admin_host, ternd.admin_port), timeout=5) as plain:
        plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = plain.recv(4096)
            while answer and b"HTTP/1." not in answer:
                more = plain.recv(4096)
                if not more:
                    break
                answer += more
        except ConnectionResetError:
            answer = b""
    # Whatever came back (at most a TLS alert) is not an HTTP response with metrics.
    assert b"HTTP/1." not in answer and b"tern_" not in answer

    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://{ternd.admin_host}:{ternd.admin_port}/healthz", timeout=5)

    assert ternd.http("/healthz").status == 200
    wait_until(lambda: (ternd.metric("tern_admin_tls_handshakes_failed_total") or 0) >= 2,
               timeout=5)
    sub = ternd.paho("tls-admin-sub")
    sub.subscribe("after/plain", qos=1)
    ternd.paho("tls-admin-pub").publish("after/plain", b"still here", qos=1)
    assert sub.get_message().payload == b"still here"


def test_bearer_token_is_still_required_over_https(start_ternd, pki):
    ternd = start_https(start_ternd, pki, token=TOKEN)
    assert ternd.http("/healthz").status == 200
    missing = ternd.http("/metrics")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert ternd.http("/metrics", token="wrong").status == 401
    assert ternd.http("/api/v1/status", token="wrong").status == 401
    good = ternd.http("/metrics", token=TOKEN)
    assert good.status == 200
    assert "tern_admin_unauthorized_total 3" in good.text


def test_command_line_flags_turn_https_on(start_ternd, pki):
    cert, key = pki.issue("flags", "ternd flags")
    ternd = start_ternd(extra_args=["--admin-cert", str(cert), "--admin-key", str(key)])
    assert ternd.admin_scheme == "https"
    ternd.admin_ssl_context = pki.client_context()
    assert ternd.http("/healthz").status == 200
    assert served_common_name(ternd, ternd.admin_ssl_context) == "ternd flags"


def run_ternd_expecting_failure(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    binary = os.environ.get("TERND") or str(DEFAULT_TERND)
    return subprocess.run([binary, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", *args],
                          cwd=tmp_path, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)


def test_cert_without_key_is_a_configuration_error_naming_file_and_line(tmp_path, pki):
    cert, _ = pki.issue("lonely", "ternd")
    config = tmp_path / "half.toml"
    config.write_text(f'log_level = "info"\n\n[admin]\ncert = "{cert}"\n')
    result = run_ternd_expecting_failure(tmp_path, ["--config", str(config)])
    assert result.returncode == 2
    assert f"{config}:3: admin needs both cert and key" in result.stderr.decode()

    result = run_ternd_expecting_failure(tmp_path, ["--admin-cert", str(cert)])
    assert result.returncode == 2
    assert "--admin-key" in result.stderr.decode()


def test_unreadable_or_mismatched_certificate_stops_ternd(tmp_path, pki):
    missing = tmp_path / "missing.crt"
    _, key = pki.issue("real", "ternd")
    result = run_ternd_expecting_failure(tmp_path, ["--admin-cert", str(missing), "--admin-key", str(key)])
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert f"cannot read {missing}" in stderr, stderr

    other_cert, _ = pki.issue("other", "ternd other")
    result = run_ternd_expecting_failure(tmp_path, ["--admin-cert", str(other_cert), "--admin-key", str(key)])
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "does not belong to the certificate" in stderr, stderr
    assert "admin endpoint at" not in stderr


def test_sighup_reloads_the_certificate(start_ternd, pki):
    cert, key = pki.issue("server", "first certificate")
    ternd = start_ternd(admin_toml(cert, key))
    context = pki.client_context()
    ternd.admin_ssl_context = context
    assert served_common_name(ternd, context) == "first certificate"

    new_cert, new_key = pki.issue("next", "second certificate")
    shutil.copyfile(new_cert, cert)
    shutil.copyfile(new_key, key)
    ternd.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "admin endpoint: certificate reloaded" in ternd.log_text(), timeout=5)
    assert served_common_name(ternd, context) == "second certificate"

    # A broken file on the next SIGHUP keeps the certificate that works.
    cert.write_text("not a certificate\n")
    ternd.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "certificate not reloaded" in ternd.log_text(), timeout=5)
    assert served_common_name(ternd, context) == "second certificate"
    assert ternd.metric("tern_admin_certificate_reloads_failed_total") == 1
