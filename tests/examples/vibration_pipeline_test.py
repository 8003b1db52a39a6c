#!/usr/bin/python3
"""End-to-end test of the vibration example against the real broker.

Starts ternd on 127.0.0.1 (a free port), the analyzer, the alerter and sensor-sim with a
bearing fault on m2 after one second; waits (event-driven, bounded) for the alert on m2
and for enough windows of the healthy machines to know they raised none; acknowledges
the alert by request/reply; injects a fault on m3 at run time by request/reply and waits
for its alert. Every process is stopped by its PID at the end, pass or fail.
"""
import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOTAL_BUDGET_S = 30.0
RAISE_AFTER = 3
# Windows each healthy machine must have had analysed, with no alert, before the test
# believes it stays quiet: several times the raise threshold.
HEALTHY_WINDOWS = 4 * RAISE_AFTER


class Failure(Exception):
    pass


class Processes:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.started = []  # (name, Popen, log path)

    def start_ternd(self, ternd):
        # No admin endpoint: its default port may be taken by another ternd on this host.
        proc = subprocess.Popen([ternd, "--listen", "127.0.0.1:0", "--admin", ""], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True)
        self.started.append(("ternd", proc, None))
        pattern = re.compile(r"listening on (\S+):(\d+)")
        port_found = queue.Queue()

        def read_stderr():
            found = False
            for line in proc.stderr:
                if not found:
                    match = pattern.search(line)
                    if match:
                        found = True
                        port_found.put(int(match.group(2)))
            if not found:
                port_found.put(None)

        threading.Thread(target=read_stderr, daemon=True).start()
        try:
            port = port_found.get(timeout=10)
        except queue.Empty:
            port = None
        if port is None:
            raise Failure("ternd did not report its listening port")
        return port

    def start(self, name, argv):
        path = os.path.join(self.log_dir, name + ".log")
        log = open(path, "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.started.append((name, proc, path))
        return proc

    def check_alive(self):
        for name, proc, _ in self.started:
            if proc.poll() is not None:
                raise Failure(f"{name} exited early with status {proc.returncode}")

    def stop_all(self):
        # Services first, the broker last, each by its own PID.
        for name, proc, _ in reversed(self.started):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()

    def dump_logs(self):
        for name, _, path in self.started:
            if path and os.path.exists(path):
                with open(path) as f:
                    sys.stderr.write(f"---- {name} ----\n{f.read()[-4000:]}\n")


class Observer:
    """An MQTT 5 client that records what the pipeline publishes, in order."""

    def __init__(self, port):
        self.events = queue.Queue()
        self.features = {}  # machine -> windows seen
        self.alerts = []  # (machine, document) in arrival order
        self.replies = {}
        self.reply_topic = f"test/reply/{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(client_id=f"vibration-test-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([("plant/alerts/+/+", 1), ("plant/+/+/features", 1), (self.reply_topic, 1)])
        if not subscribed.wait(5):
            raise Failure("observer could not subscribe")

    def _on_message(self, client, userdata, msg):
        self.events.put(msg)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()

    def _record(self, msg):
        parts = msg.topic.split("/")
        if msg.topic == self.reply_topic:
            correlation = getattr(msg.properties, "CorrelationData", b"")
            self.replies[bytes(correlation)] = json.loads(msg.payload)
        elif parts[1] == "alerts":
            self.alerts.append((parts[3], json.loads(msg.payload)))
        elif parts[3] == "features":
            document = json.loads(msg.payload)
            self.features[parts[2]] = self.features.get(parts[2], 0) + 1
            for key in ("velocity_rms_mm_s", "zone", "kurtosis", "crest_factor", "bands", "anomalous"):
                if key not in document:
                    raise Failure(f"features document without {key}: {document}")

    def wait_for(self, what, predicate, deadline, processes):
        """Consumes events until predicate() holds; fails at the deadline."""
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"timed out waiting for {what}; alerts so far: {self.alerts}; windows: {self.features}")
            processes.check_alive()
            try:
                self._record(self.events.get(timeout=min(remaining, 0.5)))
            except queue.Empty:
                pass

    def request(self, topic, document, deadline, processes):
        correlation = uuid.uuid4().bytes[:8]
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = correlation
        self.client.publish(topic, json.dumps(document), qos=1, properties=props)
        self.wait_for(f"a reply on {topic}", lambda: correlation in self.replies, deadline, processes)
        return self.replies[correlation]


def alerts_for(observer, machine, state=None):
    return [a for m, a in observer.alerts if m == machine and (state is None or a["state"] == state)]


def run(args, log_dir):
    deadline = time.monotonic() + TOTAL_BUDGET_S
    processes = Processes(log_dir)
    observer = None
    try:
        port = processes.start_ternd(args.ternd)
        common = ["--port", str(port)]
        observer = Observer(port)
        processes.start("vibration-analyzer", [args.analyzer] + common)
        processes.start("alerter", [args.alerter] + common + ["--raise-after", str(RAISE_AFTER), "--clear-after", "5"])
        processes.start("sensor-sim", [args.sensor_sim] + common + ["--machines", "3", "--interval", "100ms", "--fault",
                                                                   "m2=bearing-outer", "--fault-after", "1s"])

        observer.wait_for("the alert on m2", lambda: alerts_for(observer, "m2", "raised"), deadline, processes)
        raised = alerts_for(observer, "m2", "raised")[0]
        if raised["fault"] != "bearing-outer" or raised["line"] != "line1":
            raise Failure(f"wrong alert on m2: {raised}")
        if raised["anomalous_windows"] < RAISE_AFTER:
            raise Failure(f"alert raised before {RAISE_AFTER} anomalous windows: {raised}")

        baseline = dict(observer.features)
        observer.wait_for(
            f"{HEALTHY_WINDOWS} more windows of m1 and m3",
            lambda: all(observer.features.get(m, 0) >= baseline.get(m, 0) + HEALTHY_WINDOWS for m in ("m1", "m3")),
            deadline, processes)
        for machine in ("m1", "m3"):
            if alerts_for(observer, machine):
                raise Failure(f"healthy machine {machine} alerted: {alerts_for(observer, machine)}")

        reply = observer.request("plant/alerts/ack", {"machine": "m2"}, deadline, processes)
        if reply.get("state") != "acknowledged" or reply.get("machine") != "m2" or reply.get("fault") != "bearing-outer":
            raise Failure(f"unexpected ack reply: {reply}")
        observer.wait_for("the acknowledged alert on plant/alerts/line1/m2",
                          lambda: alerts_for(observer, "m2", "acknowledged"), deadline, processes)

        reply = observer.request("plant/alerts/ack", {"machine": "m9"}, deadline, processes)
        if reply.get("state") != "none":
            raise Failure(f"ack of an unknown machine answered {reply}")

        reply = observer.request("plant/sim/fault", {"machine": "m3", "fault": "imbalance"}, deadline, processes)
        if reply.get("fault") != "imbalance" or reply.get("machine") != "m3":
            raise Failure(f"unexpected fault-injection reply: {reply}")
        observer.wait_for("the alert on m3 after injecting imbalance at run time",
                          lambda: alerts_for(observer, "m3", "raised"), deadline, processes)
        m3 = alerts_for(observer, "m3", "raised")[0]
        if m3["fault"] != "imbalance":
            raise Failure(f"wrong alert on m3: {m3}")
        if alerts_for(observer, "m1"):
            raise Failure(f"healthy machine m1 alerted: {alerts_for(observer, 'm1')}")
        print(f"ok: windows {observer.features}, alerts {[(m, a['state'], a['fault']) for m, a in observer.alerts]}")
        return 0
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        processes.dump_logs()
        return 1
    finally:
        if observer:
            observer.close()
        processes.stop_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ternd", required=True)
    parser.add_argument("--sensor-sim", required=True)
    parser.add_argument("--analyzer", required=True)
    parser.add_argument("--alerter", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tern-vibration-") as log_dir:
        return run(args, log_dir)


if __name__ == "__main__":
    sys.exit(main())
