"""Trace context across the real ternd: a PUBLISH with a W3C traceparent user property
gives a broker span, exported over OTLP/HTTP (JSON) to a local receiver, that belongs to
the producer's trace and is a child of the producer's span."""

from __future__ import annotations

import re
import secrets

from helpers import publish_props


def tracing_config(receiver, ratio: str = "1.0") -> str:
    return (f'[tracing]\nendpoint = "{receiver.url}"\nsample_ratio = {ratio}\n'
            'service_name = "ternd-under-test"\nflush_ms = 50\n')


def producer_context(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def user_properties(message) -> dict:
    return dict(getattr(message.properties, "UserProperty", []) or [])


def test_traced_publish_yields_a_broker_span_in_the_producers_trace(ternd_factory, receiver):
    from tracekit import attributes

    ternd = ternd_factory(tracing_config(receiver))
    consumer = ternd.paho("trace-consumer")
    consumer.subscribe("orders/created", qos=1)
    producer = ternd.paho("trace-producer")
    trace_id, producer_span_id, traceparent = producer_context()

    producer.publish("orders/created", b"{}", qos=1, properties=publish_props(UserProperty=[("traceparent", traceparent)]))

    # The consumer gets the producer's context unchanged, so its own span joins the trace.
    delivered = consumer.get_message()
    assert user_properties(delivered).get("traceparent") == traceparent

    span = receiver.wait_for_span(lambda s: s["traceId"] == trace_id)
    assert span["parentSpanId"] == producer_span_id
    assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"]) and span["spanId"] != producer_span_id
    assert span["name"] == "publish orders/created"
    assert span["kind"] == 2  # SERVER: the broker serves the producer's PUBLISH
    assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"])
    attrs = attributes(span)
    assert attrs["messaging.system"] == "mqtt"
    assert attrs["messaging.destination.name"] == "orders/created"
    assert attrs["messaging.client_id"] == "trace-producer"
    assert attrs["tern.deliveries"] == 1
    assert attrs["tern.qos"] == 1
    assert span["_resource"]["service.name"] == "ternd-under-test"
    request = receiver.requests[0]
    assert request["path"] == "/v1/traces"
    assert request["content_type"].startswith("application/json")


def test_each_traced_message_gets_its_own_span_and_untraced_ones_none(ternd_factory, receiver):
    ternd = ternd_factory(tracing_config(receiver))
    sub = ternd.paho("fan-sub")
    sub.subscribe("fan/+", qos=0)
    sub2 = ternd.paho("fan-sub2")
    sub2.subscribe("fan/#", qos=0)
    producer = ternd.paho("fan-producer")
    contexts = [producer_context() for _ in range(5)]
    producer.publish("fan/plain", b"untraced", qos=1)
    for _, _, traceparent in contexts:
        producer.publish("fan/x", b"traced", qos=1,
                         properties=publish_props(UserProperty=[("traceparent", traceparent)]))
    for trace_id, span_id, _ in contexts:
        span = receiver.wait_for_span(lambda s, t=trace_id: s["traceId"] == t)
        assert span["parentSpanId"] == span_id
        assert {"key": "tern.deliveries", "value": {"intValue": "2"}} in span["attributes"]
    assert len(receiver.all_spans()) == 5
    assert not any(s["name"] == "publish fan/plain" for s in receiver.all_spans())


def test_unsampled_and_invalid_traceparents_get_no_span(ternd_factory, receiver):
    ternd = ternd_factory(tracing_config(receiver))
    consumer = ternd.paho("unsampled-consumer")
    consumer.subscribe("u/t", qos=1)
    producer = ternd.paho("unsampled-producer")
    unsampled_trace, _, unsampled = producer_context(sampled=False)
    sampled_trace, _, sampled = producer_context(sampled=True)
    producer.publish("u/t", b"1", qos=1, properties=publish_props(UserProperty=[("traceparent", unsampled)]))
    producer.publish("u/t", b"2", qos=1, properties=publish_props(UserProperty=[("traceparent", "00-garbage")]))
    producer.publish("u/t", b"3", qos=1, properties=publish_props(UserProperty=[("traceparent", sampled)]))
    # Every message is delivered whatever its trace context says.
    assert [m.payload for m in consumer.get_messages(3)] == [b"1", b"2", b"3"]
    # Spans leave in the order the messages were routed: once the sampled message's span
    # is in, an earlier one would have arrived too.
    receiver.wait_for_span(lambda s: s["traceId"] == sampled_trace)
    assert [s["traceId"] for s in receiver.all_spans()] == [sampled_trace]
    assert unsampled_trace not in {s["traceId"] for s in receiver.all_spans()}


def test_sample_ratio_zero_exports_nothing(ternd_factory, receiver):
    ternd = ternd_factory(tracing_config(receiver, ratio="0.0"))
    consumer = ternd.paho("ratio-consumer")
    consumer.subscribe("r/t", qos=1)
    producer = ternd.paho("ratio-producer")
    for _ in range(20):
        producer.publish("r/t", b"x", qos=1,
                         properties=publish_props(UserProperty=[("traceparent", producer_context()[2])]))
    consumer.get_messages(20)
    # Stopping ternd sends whatever is still queued, so after it exits nothing can be pending.
    assert ternd.stop() == 0
    assert receiver.all_spans() == []


def test_queued_spans_are_sent_when_ternd_stops(ternd_factory, receiver):
    config = (f'[tracing]\nendpoint = "{receiver.url}"\nservice_name = "ternd"\n'
              "flush_ms = 3600000\nmax_batch_spans = 1000\n")
    ternd = ternd_factory(config)
    producer = ternd.paho("stop-producer")
    trace_id, _, traceparent = producer_context()
    producer.publish("s/t", b"x", qos=1, properties=publish_props(UserProperty=[("traceparent", traceparent)]))
    producer.close()
    assert receiver.all_spans() == []  # an hour-long flush delay and a batch far from full
    assert ternd.stop() == 0
    assert [s["traceId"] for s in receiver.all_spans()] == [trace_id]


def test_an_unreachable_collector_does_not_disturb_delivery(ternd_factory):
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ternd = ternd_factory(f'[tracing]\nendpoint = "http://127.0.0.1:{port}/v1/traces"\nflush_ms = 10\n')
    consumer = ternd.paho("down-consumer")
    consumer.subscribe("d/t", qos=1)
    producer = ternd.paho("down-producer")
    for i in range(200):
        producer.publish("d/t", str(i).encode(), qos=1, wait=False,
                         properties=publish_props(UserProperty=[("traceparent", producer_context()[2])]))
    assert [int(m.payload) for m in consumer.get_messages(200, timeout=20)] == list(range(200))


def test_a_bad_tracing_endpoint_is_a_configuration_error(tmp_path):
    import subprocess

    from tracekit import ternd_path

    config = tmp_path / "bad.toml"
    config.write_text('[tracing]\nendpoint = "https://collector:4318/v1/traces"\n')
    result = subprocess.run([ternd_path(), "--config", str(config), "--check-config"], capture_output=True,
                            timeout=30)
    assert result.returncode != 0
    assert b"bad.toml:2: tracing.endpoint must be an http:// URL" in result.stderr
