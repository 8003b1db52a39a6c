"""TLS-PSK with the mosquitto clients (TLS 1.2 and 1.3)."""

import pytest

from clients import mosquitto_pub, mosquitto_sub, wait_subscribed
from conftest import listener_toml

KEY = "8a3f0c1d9e2b4f6a11223344556677889900aabbccddeeff0011223344556677"


@pytest.fixture
def psk_broker(start_ternd, tmp_path):
    psk = tmp_path / "psk.txt"
    psk.write_text(f"# devices\nsensor-17:{KEY}\n\nother : 00112233\n")
    return start_ternd(listener_toml("tls", psk_file=str(psk)))


@pytest.mark.parametrize("version", ["tlsv1.2", "tlsv1.3"])
def test_psk_pub_sub_with_mosquitto_clients(psk_broker, version):
    port = psk_broker.ports["tls"]
    psk_args = ("--psk", KEY, "--psk-identity", "sensor-17", "--tls-version", version)
    sub = mosquitto_sub(port, "psk/t", *psk_args)
    wait_subscribed(sub)
    result = mosquitto_pub(port, "psk/t", "over psk", *psk_args)
    assert result.returncode == 0, result.stderr
    out, _ = sub.communicate(timeout=10)
    assert "over psk" in out
    psk_broker.wait_log(r"established, identity 'sensor-17'")


def test_wrong_psk_is_refused_and_the_key_is_not_logged(psk_broker):
    wrong = "00" * 32
    result = mosquitto_pub(psk_broker.ports["tls"], "psk/t", "x", "--psk", wrong, "--psk-identity", "sensor-17")
    assert result.returncode != 0
    line = psk_broker.wait_warning("tls handshake", "failed", "sensor-17")
    log = psk_broker.log_text()
    assert KEY not in log and wrong not in log and KEY.upper() not in log
    assert "established, identity 'sensor-17'" not in log
    assert line


def test_unknown_psk_identity_is_refused(psk_broker):
    result = mosquitto_pub(psk_broker.ports["tls"], "psk/t", "x", "--psk", KEY, "--psk-identity", "nobody")
    assert result.returncode != 0
    psk_broker.wait_warning("tls handshake", "failed", "nobody")


def test_bad_psk_file_stops_ternd_with_the_line_and_no_key(start_ternd, tmp_path):
    psk = tmp_path / "bad.txt"
    psk.write_text("ok:0011\nbroken:abcdefXY\n")
    broker = start_ternd(listener_toml("tls", psk_file=str(psk)), expect_failure=True)
    assert broker.proc.returncode != 0
    log = broker.log_text()
    assert "line 2" in log and "hexadecimal" in log
    assert "abcdefXY" not in log and "0011" not in log
