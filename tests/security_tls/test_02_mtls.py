"""Client certificates (mTLS): required and optional, untrusted, expired and revoked."""

import pytest

from clients import Paho, connect_fails, mosquitto_pub, tls_socket
from conftest import listener_toml


def mtls_listener(pki, mode="required", crl=True) -> str:
    cert, key = pki.cert("broker")
    keys = dict(cert=cert, key=key, ca=pki.ca, client_certificates=mode)
    if crl:
        keys["crl"] = pki.path("crl.pem")
    return listener_toml("tls", **keys)


def test_good_certificate_is_accepted_and_its_cn_is_the_identity(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki))
    client = Paho(broker.ports["tls"], "dev1", ca=pki.ca, cert=pki.cert("device-1"))
    client.subscribe("a/b")
    client.publish("a/b", b"x")
    assert client.receive() == ("a/b", b"x")
    broker.wait_log(r"TLSv1\.3 established, identity 'device-1'")
    client.close()


def test_mosquitto_pub_with_client_certificate(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki))
    cert, key = pki.cert("device-1")
    result = mosquitto_pub(broker.ports["tls"], "m/mtls", "hi", "--cafile", pki.ca, "--cert", cert, "--key", key)
    assert result.returncode == 0, result.stderr
    broker.wait_log(r"identity 'device-1'")


def test_no_certificate_is_refused(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki))
    connect_fails(broker.ports["tls"], pki.ca)
    broker.wait_warning("tls handshake", "failed", "certificate")
    assert broker.count("identity 'device-1'") == 0


def test_certificate_from_another_ca_is_refused(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki))
    connect_fails(broker.ports["tls"], pki.ca, (str(pki.other / "device-1.crt"), str(pki.other / "device-1.key")))
    broker.wait_warning("tls handshake", "failed", "unable to get local issuer certificate")


def test_expired_certificate_is_refused(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki))
    connect_fails(broker.ports["tls"], pki.ca, pki.cert("expired-device"))
    broker.wait_warning("tls handshake", "failed", "certificate has expired")


def test_revoked_certificate_is_refused(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki))
    connect_fails(broker.ports["tls"], pki.ca, pki.cert("revoked-device"))
    broker.wait_warning("tls handshake", "failed", "certificate revoked")
    # The same CRL does not stop a good certificate.
    Paho(broker.ports["tls"], "still-good", ca=pki.ca, cert=pki.cert("device-1")).close()


def test_without_the_crl_the_revoked_certificate_would_pass(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki, crl=False))
    Paho(broker.ports["tls"], "revoked-but-no-crl", ca=pki.ca, cert=pki.cert("revoked-device")).close()


@pytest.mark.parametrize("with_cert", [False, True])
def test_optional_client_certificates(start_ternd, pki, with_cert):
    broker = start_ternd(mtls_listener(pki, mode="optional", crl=False))
    # Only the transport is checked here: whether an anonymous MQTT client may then connect is
    # the security policy's decision (docs/security.md).
    with tls_socket(broker.ports["tls"], pki.ca, pki.cert("device-1") if with_cert else None) as s:
        s.sendall(bytes([0xC0, 0]))  # PINGREQ: makes the server finish the TLS 1.3 handshake
        broker.wait_log(r"established, identity " + ("'device-1'" if with_cert else "none"))


def test_optional_still_refuses_an_untrusted_certificate(start_ternd, pki):
    broker = start_ternd(mtls_listener(pki, mode="optional", crl=False))
    connect_fails(broker.ports["tls"], pki.ca, (str(pki.other / "device-1.crt"), str(pki.other / "device-1.key")))
    broker.wait_warning("tls handshake", "failed")
