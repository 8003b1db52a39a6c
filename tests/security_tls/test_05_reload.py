"""SIGHUP reloads certificates: new connections get the new one, old ones go on."""

import shutil
import subprocess

from clients import Paho
from conftest import listener_toml


def subject(port: int, ca: str) -> str:
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", ca,
                             "-verify_return_error"], input="", capture_output=True, text=True, timeout=10)
    for line in result.stdout.splitlines():
        if line.startswith("subject="):
            return line
    raise AssertionError("no subject in s_client output:\n" + result.stdout + result.stderr)


def test_sighup_swaps_the_certificate_without_dropping_connections(start_ternd, pki, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(pki.cert("broker")[0], cert)
    shutil.copy(pki.cert("broker")[1], key)
    broker = start_ternd(listener_toml("tls", cert=str(cert), key=str(key)))
    port = broker.ports["tls"]
    assert "CN = broker" in subject(port, pki.ca) and "broker-2" not in subject(port, pki.ca)

    old = Paho(port, "old-connection", ca=pki.ca)
    old.subscribe("reload/#")

    shutil.copy(pki.cert("broker-2")[0], cert)
    shutil.copy(pki.cert("broker-2")[1], key)
    broker.sighup()
    broker.wait_log(r"certificates reloaded")

    assert "CN = broker-2" in subject(port, pki.ca)
    new = Paho(port, "new-connection", ca=pki.ca)
    new.publish("reload/x", b"after reload")
    assert old.receive() == ("reload/x", b"after reload")
    old.publish("reload/y", b"old still writes")
    assert old.receive() == ("reload/y", b"old still writes")
    old.close()
    new.close()


def test_broken_files_on_sighup_keep_the_old_certificate(start_ternd, pki, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(pki.cert("broker")[0], cert)
    shutil.copy(pki.cert("broker")[1], key)
    broker = start_ternd(listener_toml("tls", cert=str(cert), key=str(key)))
    shutil.copy(pki.cert("broker-2")[0], cert)  # a certificate without its key
    broker.sighup()
    line = broker.wait_warning("certificates not reloaded", "private key", "mismatch")
    assert "PRIVATE KEY" not in broker.log_text()
    assert line
    assert "CN = broker" in subject(broker.ports["tls"], pki.ca)
    Paho(broker.ports["tls"], "still-serving", ca=pki.ca).close()
