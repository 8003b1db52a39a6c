"""Interoperability with the mosquitto command-line clients."""

import queue
import subprocess
import threading

import pytest

from helpers import publish_props, user_properties

TIMEOUT = 15
VERSIONS = {5: "mqttv5", 4: "mqttv311"}
READY = "__ready__"


def _common(broker, version):
    return ["-h", broker.host, "-p", str(broker.port), "-V", VERSIONS[version]]


def _pub(broker, version, topic, message, *extra):
    result = subprocess.run(
        ["mosquitto_pub", *_common(broker, version), "-t", topic, "-m", message, *extra],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"mosquitto_pub failed: {result.stderr}"


class _Sub:
    """mosquitto_sub in the background. Readiness is an event: it also subscribes to a marker
    topic holding a retained message, which it prints as soon as its subscriptions exist."""

    def __init__(self, broker, version, topic, count, *extra, client_id):
        marker = f"mq/ready/{client_id}"
        setter = broker.raw(version)
        setter.connect(client_id + "-marker")
        setter.publish(marker, READY, qos=1, retain=True)
        setter.disconnect()
        self.proc = subprocess.Popen(
            ["mosquitto_sub", *_common(broker, version), "-t", topic, "-t", marker,
             "-C", str(count + 1), "-W", str(TIMEOUT), "-i", client_id, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            first = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("mosquitto_sub never became ready") from None
        assert first is not None and READY in first, f"expected the marker, got {first!r}"

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def output(self) -> list[str]:
        try:
            self.proc.wait(timeout=TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        err = self.proc.stderr.read()
        assert self.proc.returncode == 0, f"mosquitto_sub exited {self.proc.returncode}: {err}"
        out = []
        while True:
            line = self.lines.get_nowait()
            if line is None:
                return out
            out.append(line)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_and_sub_at_each_qos(broker, version, qos):
    sub = _Sub(broker, version, "mq/t", 3, "-q", str(qos), client_id="mq-sub")
    for n in range(3):
        _pub(broker, version, "mq/t", f"message {n}", "-q", str(qos))
    assert sub.output() == ["message 0", "message 1", "message 2"]


def test_retained_with_r_flag(broker, version):
    _pub(broker, version, "mq/retained", "kept", "-r", "-q", "1")
    result = subprocess.run(
        ["mosquitto_sub", *_common(broker, version), "-t", "mq/retained", "-C", "1",
         "-W", str(TIMEOUT), "-v"],
        capture_output=True, text=True, timeout=TIMEOUT + 5)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["mq/retained kept"]
    # Delete it; a later subscriber gets nothing within its short wait.
    _pub(broker, version, "mq/retained", "", "-r", "-q", "1")
    result = subprocess.run(
        ["mosquitto_sub", *_common(broker, version), "-t", "mq/retained", "-C", "1",
         "-W", "1"],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert result.stdout == ""


def test_user_property_from_mosquitto_pub_reaches_paho(broker):
    subscriber = broker.paho("mq-prop-sub")
    subscriber.subscribe("mq/props", qos=1)
    _pub(broker, 5, "mq/props", "with-props", "-q", "1",
         "-D", "publish", "user-property", "origin", "cli",
         "-D", "publish", "content-type", "text/plain")
    msg = subscriber.get_message()
    assert msg.payload == b"with-props"
    assert user_properties(msg) == [("origin", "cli")]
    assert msg.properties.ContentType == "text/plain"


def test_mosquitto_sub_formats_topic_and_payload(broker, version):
    sub = _Sub(broker, version, "mq/fmt/#", 2, "-F", "%t %p", client_id="mq-fmt")
    _pub(broker, version, "mq/fmt/a", "alpha")
    _pub(broker, version, "mq/fmt/b/c", "beta gamma")
    assert sub.output() == ["mq/fmt/a alpha", "mq/fmt/b/c beta gamma"]


def test_mosquitto_sub_shows_v5_properties(broker):
    sub = _Sub(broker, 5, "mq/v5props", 1, "-F", "%t|%P|%p", client_id="mq-v5fmt")
    publisher = broker.paho("mq-v5-pub")
    publisher.publish("mq/v5props", b"payload", qos=1,
                      properties=publish_props(UserProperty=[("k", "v")]))
    (line,) = sub.output()
    topic, props, payload = line.split("|")
    assert (topic, payload) == ("mq/v5props", "payload")
    assert "k:v" in props


def test_paho_publishes_to_mosquitto_sub_across_versions(broker):
    # A 3.1.1 subscriber receives what a 5.0 client publishes, properties aside.
    sub = _Sub(broker, 4, "mq/cross", 2, "-q", "2", client_id="mq-cross")
    publisher = broker.paho("mq-cross-pub", 5)
    publisher.publish("mq/cross", b"from v5", qos=2,
                      properties=publish_props(UserProperty=[("dropped", "in 3.1.1")]))
    publisher.publish("mq/cross", b"second", qos=2)
    assert sub.output() == ["from v5", "second"]


def test_many_messages_with_mosquitto_pub_stdin(broker, version):
    sub = _Sub(broker, version, "mq/lines", 200, "-q", "1", client_id="mq-lines")
    lines = "\n".join(f"line {n}" for n in range(200)) + "\n"
    result = subprocess.run(
        ["mosquitto_pub", *_common(broker, version), "-t", "mq/lines", "-q", "1", "-l"],
        input=lines, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert sub.output() == [f"line {n}" for n in range(200)]
