"""MQTT over WebSocket, plain (ws) and TLS (wss), with paho's websockets transport."""

import socket

import pytest

from clients import Paho
from conftest import listener_toml


@pytest.fixture
def ws_broker(start_ternd, pki):
    cert, key = pki.cert("broker")
    return start_ternd(listener_toml("tcp") + listener_toml("ws") +
                       listener_toml("wss", cert=cert, key=key))


@pytest.mark.parametrize("kind", ["ws", "wss"])
def test_websocket_client_talks_to_a_tcp_client(ws_broker, pki, kind):
    ca = pki.ca if kind == "wss" else None
    web = Paho(ws_broker.ports[kind], f"browser-{kind}", transport="websockets", ca=ca)
    tcp = Paho(ws_broker.ports["tcp"], f"device-{kind}")
    web.subscribe("ws/#")
    tcp.subscribe("to-device")
    payload = b"\x00\x01" * 5000  # spans WebSocket frames
    tcp.publish("ws/x", payload)
    assert web.receive() == ("ws/x", payload)
    web.publish("to-device", b"from the browser")
    assert tcp.receive() == ("to-device", b"from the browser")
    web.close()
    tcp.close()


def test_wrong_path_is_refused(ws_broker):
    with pytest.raises((ConnectionError, OSError, ValueError)):
        Paho(ws_broker.ports["ws"], "lost", transport="websockets", ws_path="/elsewhere")
    ws_broker.wait_warning("websocket", "path '/elsewhere'")


def test_plain_http_request_is_refused(ws_broker):
    with socket.create_connection(("127.0.0.1", ws_broker.ports["ws"]), timeout=5) as s:
        s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        while s.recv(4096):
            pass
    ws_broker.wait_warning("websocket upgrade", "not a websocket upgrade")
