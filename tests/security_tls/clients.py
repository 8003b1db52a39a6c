"""Small helpers around paho-mqtt 1.6 and the mosquitto command-line clients."""

from __future__ import annotations

import queue
import socket
import ssl
import subprocess
import threading

import paho.mqtt.client as mqtt

TIMEOUT_S = 5.0


class Paho:
    """A connected paho client; messages land in a queue."""

    def __init__(self, port: int, client_id: str, transport: str = "tcp", ca: str | None = None,
                 cert: tuple[str, str] | None = None, ws_path: str = "/mqtt"):
        self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, transport=transport)
        if transport == "websockets":
            self.client.ws_set_options(path=ws_path)
        if ca is not None:
            certfile, keyfile = cert if cert else (None, None)
            self.client.tls_set(ca_certs=ca, certfile=certfile, keyfile=keyfile,
                                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.messages: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc: self.connected.set() if rc == 0 else None
        self.client.on_subscribe = lambda c, u, mid, granted: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(TIMEOUT_S):
            self.close()
            raise ConnectionError("no CONNACK")

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(TIMEOUT_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published(), "publish not acknowledged"

    def receive(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_fails(port: int, ca: str, cert: tuple[str, str] | None = None) -> str:
    """Tries a TLS MQTT connection that must fail; returns what went wrong."""
    try:
        client = Paho(port, "should-fail", ca=ca, cert=cert)
    except (ssl.SSLError, ConnectionError, OSError) as error:
        return str(error) or type(error).__name__
    client.close()
    raise AssertionError("the connection was accepted")


def tls_socket(port: int, ca: str, cert: tuple[str, str] | None = None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    return context.wrap_socket(raw, server_hostname="localhost")


def mosquitto_sub(port: int, topic: str, *tls_args: str) -> subprocess.Popen:
    """Starts mosquitto_sub for one message; it prints it and exits."""
    return subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", "1",
                             "-W", "10", "-q", "1", "-d", *tls_args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def mosquitto_pub(port: int, topic: str, message: str, *tls_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", message,
                           "-q", "1", *tls_args],
                          capture_output=True, text=True, timeout=15)


def wait_subscribed(proc: subprocess.Popen) -> None:
    """Reads mosquitto_sub's debug output until its SUBACK."""
    for line in proc.stdout:
        if "SUBACK" in line:
            return
    raise AssertionError("mosquitto_sub ended before its SUBACK")
