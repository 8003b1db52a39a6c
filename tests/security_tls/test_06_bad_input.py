"""Bad input at the transport: plain MQTT on the TLS port, a handshake that never comes,
configuration mistakes. Each is refused with a clear log line; other clients go on."""

import socket
import time

from clients import Paho
from conftest import listener_toml

CONNECT = bytes([0x10, 16, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 4]) + b"long"


def read_until_closed(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:  # closed with our bytes unread
            return data
        if not chunk:
            return data
        data += chunk


def test_plain_client_on_the_tls_port_is_closed_and_logged(start_ternd, pki):
    cert, key = pki.cert("broker")
    broker = start_ternd(listener_toml("tls", cert=cert, key=key))
    good = Paho(broker.ports["tls"], "good", ca=pki.ca)
    good.subscribe("t")
    with socket.create_connection(("127.0.0.1", broker.ports["tls"]), timeout=5) as s:
        s.sendall(CONNECT)
        assert read_until_closed(s, 5) == b""  # no CONNACK, no TLS alert to a non-TLS peer
    broker.wait_warning("tls handshake", "127.0.0.1", "plain mqtt connect")
    good.publish("t", b"unaffected")
    assert good.receive() == ("t", b"unaffected")
    good.close()


def test_slow_handshake_is_closed_after_the_timeout(start_ternd, pki):
    cert, key = pki.cert("broker")
    broker = start_ternd(listener_toml("tls", cert=cert, key=key, handshake_timeout_ms=400) +
                         listener_toml("ws", handshake_timeout_ms=400))
    for kind in ("tls", "ws"):
        with socket.create_connection(("127.0.0.1", broker.ports[kind]), timeout=5) as s:
            started = time.monotonic()
            assert read_until_closed(s, 5) == b""
            elapsed = time.monotonic() - started
        assert 0.3 < elapsed < 3.0, elapsed
    broker.wait_warning("tls handshake", "timed out after 400 ms")
    broker.wait_warning("websocket upgrade", "timed out after 400 ms")


def test_tls_listener_without_a_certificate_is_a_config_error(start_ternd):
    broker = start_ternd(listener_toml("tls"), expect_failure=True)
    assert broker.proc.returncode != 0
    assert "needs cert and key (or psk_file)" in broker.log_text()


def test_missing_key_file_is_reported_without_starting(start_ternd, pki, tmp_path):
    cert, _ = pki.cert("broker")
    broker = start_ternd(listener_toml("tls", cert=cert, key=str(tmp_path / "absent.key")), expect_failure=True)
    assert broker.proc.returncode != 0
    assert "cannot load the private key" in broker.log_text()
    assert "absent.key" in broker.log_text()


def test_required_client_certificates_need_a_ca(start_ternd, pki):
    cert, key = pki.cert("broker")
    broker = start_ternd(listener_toml("tls", cert=cert, key=key, client_certificates="required"),
                         expect_failure=True)
    assert broker.proc.returncode != 0
    assert "client_certificates needs ca" in broker.log_text()
