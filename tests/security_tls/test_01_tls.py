"""TLS listener: pub/sub with paho and the mosquitto clients, certificates from `tern ca`."""

import subprocess

from clients import Paho, mosquitto_pub, mosquitto_sub, tls_socket, wait_subscribed
from conftest import listener_toml


def tls_listener(pki, **keys) -> str:
    cert, key = pki.cert("broker")
    return listener_toml("tls", cert=cert, key=key, **keys)


def test_paho_publishes_and_receives_over_tls(start_ternd, pki):
    broker = start_ternd(tls_listener(pki))
    sub = Paho(broker.ports["tls"], "tls-sub", ca=pki.ca)
    pub = Paho(broker.ports["tls"], "tls-pub", ca=pki.ca)
    sub.subscribe("tls/#")
    payload = bytes(range(256)) * 200  # several TLS records
    pub.publish("tls/big", payload)
    assert sub.receive() == ("tls/big", payload)
    for i in range(50):
        pub.publish("tls/n", str(i).encode(), qos=0 if i % 2 else 1)
    assert [sub.receive()[1] for _ in range(50)] == [str(i).encode() for i in range(50)]
    sub.close()
    pub.close()


def test_mosquitto_clients_over_tls(start_ternd, pki):
    broker = start_ternd(tls_listener(pki))
    port = broker.ports["tls"]
    sub = mosquitto_sub(port, "m/tls", "--cafile", pki.ca)
    wait_subscribed(sub)
    result = mosquitto_pub(port, "m/tls", "hello over tls", "--cafile", pki.ca)
    assert result.returncode == 0, result.stderr
    out, _ = sub.communicate(timeout=10)
    assert sub.returncode == 0
    assert "hello over tls" in out


def test_both_tls_versions_are_served(start_ternd, pki):
    broker = start_ternd(tls_listener(pki))
    for version in ("-tls1_2", "-tls1_3"):
        result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{broker.ports['tls']}",
                                 "-CAfile", pki.ca, version, "-verify_return_error", "-brief"],
                                input="", capture_output=True, text=True, timeout=10)
        assert "Verification: OK" in result.stderr, result.stderr
        assert ("TLSv1.2" if version == "-tls1_2" else "TLSv1.3") in result.stderr


def test_tls_1_1_is_refused(start_ternd, pki):
    broker = start_ternd(tls_listener(pki))
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{broker.ports['tls']}",
                             "-tls1_1", "-brief"], input="", capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    broker.wait_warning("tls handshake", "failed")


def test_tern_ca_certificates_have_the_right_extensions(pki):
    def text(path):
        return subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text"], capture_output=True,
                              text=True, check=True).stdout

    ca = text(pki.ca)
    assert "CA:TRUE" in ca and "Certificate Sign" in ca and "prime256v1" in ca
    server = text(pki.cert("broker")[0])
    assert "CA:FALSE" in server
    assert "TLS Web Server Authentication" in server
    assert "DNS:localhost" in server and "IP Address:127.0.0.1" in server
    device = text(pki.cert("device-1")[0])
    assert "TLS Web Client Authentication" in device
    assert "TLS Web Server Authentication" not in device
    assert "Subject: CN = device-1" in device
    verify = subprocess.run(["openssl", "verify", "-CAfile", pki.ca, pki.cert("device-1")[0]],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    key_mode = (pki.dir / "device-1.key").stat().st_mode & 0o777
    assert key_mode == 0o600


def test_tls_socket_is_usable_after_handshake(start_ternd, pki):
    broker = start_ternd(tls_listener(pki))
    with tls_socket(broker.ports["tls"], pki.ca) as s:
        # CONNECT (3.1.1, clean session, client id "raw")
        s.sendall(bytes([0x10, 15, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 3]) + b"raw")
        assert s.recv(4) == bytes([0x20, 2, 0, 0])
