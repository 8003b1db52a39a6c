"""The admin endpoint of the real ternd: health, readiness, metrics (checked by promtool),
the JSON API and the bearer token."""

from __future__ import annotations

from conftest import check_with_promtool
from helpers import wait_until
from mqtt_raw import publish_packet


def test_healthz(ternd):
    r = ternd.http("/healthz")
    assert r.status == 200
    assert r.text == "ok\n"


def test_readyz_lists_its_checks(ternd):
    r = ternd.http("/readyz")
    assert r.status == 200, r.text
    doc = r.json()
    assert doc["ready"] is True
    names = {c["name"] for c in doc["checks"]}
    assert "listeners" in names
    assert all(c["ok"] for c in doc["checks"])


def test_metrics_pass_promtool(ternd):
    r = ternd.http("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    check_with_promtool(r.body)


def test_metrics_follow_traffic(ternd):
    before = ternd.metric("tern_messages_received_total")
    assert before is not None
    sub = ternd.paho("metrics-sub")
    sub.subscribe("m/t", qos=1)
    pub = ternd.paho("metrics-pub")
    for i in range(10):
        pub.publish("m/t", f"{i}", qos=1)
    sub.get_messages(10)
    assert ternd.metric("tern_messages_received_total") >= before + 10
    assert ternd.metric("tern_messages_sent_total") >= 10
    assert ternd.metric("tern_connections_current") >= 2
    assert ternd.metric("tern_subscriptions") >= 1
    assert ternd.metric("tern_process_resident_memory_bytes") > 0
    assert ternd.metric("tern_process_open_fds") > 0
    assert 'tern_build_info{version="' in ternd.http("/metrics").text


def test_deepest_queue_is_labelled_with_its_client(ternd):
    slow = ternd.paho("slow-one", clean=False, session_expiry=600)
    slow.subscribe("deep/#", qos=1)
    slow.disconnect()
    pub = ternd.paho("deep-pub")
    for i in range(7):
        pub.publish("deep/x", f"{i}", qos=1)
    wait_until(lambda: ternd.metric('tern_session_queued_messages{client_id="slow-one"}') == 7,
               message="the offline session's queue depth on /metrics")
    assert ternd.metric("tern_queued_messages") >= 7


def test_status_clients_and_subscriptions(ternd):
    client = ternd.paho("api-client")
    client.subscribe("api/+/x", qos=1)
    status = ternd.http("/api/v1/status").json()
    assert status["ready"] is True
    assert status["broker"]["clients_connected"] >= 1
    clients = ternd.http("/api/v1/clients").json()
    mine = [c for c in clients["clients"] if c["client_id"] == "api-client"]
    assert len(mine) == 1 and mine[0]["connected"] is True and mine[0]["subscriptions"] == 1
    subs = ternd.http("/api/v1/subscriptions").json()
    assert {"client_id": "api-client", "filter": "api/+/x", "qos": 1} in [
        {k: s[k] for k in ("client_id", "filter", "qos")} for s in subs["subscriptions"]]
    limited = ternd.http("/api/v1/clients?limit=0").json()
    assert limited["clients"] == [] and limited["total"] >= 1


def test_logs_endpoint_filters_by_level(ternd):
    raw = ternd.raw()
    raw.send(publish_packet("early/t", b"x"))  # PUBLISH before CONNECT: a warning
    raw.expect_close()
    lines = wait_until(lambda: ternd.http("/api/v1/logs?level=warning&limit=50").json()["lines"],
                       message="a warning in the ring buffer")
    assert all(line["level"] in ("warning", "error") for line in lines)
    everything = ternd.http("/api/v1/logs?level=debug&limit=1000").json()["lines"]
    assert len(everything) > len(lines)
    assert len(ternd.http("/api/v1/logs?limit=2").json()["lines"]) == 2
    assert ternd.http("/api/v1/logs?level=loud").status == 400


def test_bearer_token(start_ternd):
    ternd = start_ternd('[admin]\ntoken = "s3cret-token"\n')
    assert ternd.http("/healthz").status == 200
    for path in ("/metrics", "/readyz", "/api/v1/status", "/api/v1/clients", "/api/v1/logs"):
        r = ternd.http(path)
        assert r.status == 401, path
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="tern"'
        assert ternd.http(path, token="wrong").status == 401
        assert ternd.http(path, token="s3cret-token").status == 200, path


def test_unknown_path(ternd):
    assert ternd.http("/nope").status == 404
