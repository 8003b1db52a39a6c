"""One trace across SDK services and the real ternd: a producer service's PUBLISH span,
ternd's broker span and the consumer service's process span (and the consumer's own
publish) all reach a local OTLP/HTTP receiver under one trace id.

Parentage follows W3C trace context: the traceparent carried by the message holds the
producer span's id, and ternd forwards it unchanged, so both the broker span and the
consumer's process span are children of the producer span (siblings of each other).

SDK_TRACE_CHAIN names the helper program (ctest sets it), TERND the broker."""

from __future__ import annotations

import os
import subprocess

import pytest

from tracekit import attributes

PRODUCER_KIND, CONSUMER_KIND, SERVER_KIND = 4, 5, 2


def chain_path() -> str:
    path = os.environ.get("SDK_TRACE_CHAIN")
    if not path:
        pytest.skip("SDK_TRACE_CHAIN is not set (run through ctest)")
    return path


def run_chain(ternd, receiver, *extra: str) -> str:
    """Runs the two services once; returns the traceparent the consumer's handler saw."""
    result = subprocess.run([chain_path(), ternd.host, str(ternd.port), receiver.url, *extra],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("handled ")]
    assert len(lines) == 1, result.stdout
    return lines[0].split(" ", 1)[1]


def broker_config(receiver) -> str:
    return (f'[tracing]\nendpoint = "{receiver.url}"\nsample_ratio = 1.0\n'
            'service_name = "ternd-under-test"\nflush_ms = 50\n')


def test_producer_broker_and_consumer_spans_form_one_trace(ternd_factory, receiver):
    ternd = ternd_factory(broker_config(receiver))
    handled = run_chain(ternd, receiver)
    version, trace_id, parent_id, flags = handled.split("-")
    assert (version, flags) == ("00", "01")

    def in_trace(name, service):
        return lambda s: (s["traceId"] == trace_id and s["name"] == name
                          and s["_resource"].get("service.name") == service)

    producer = receiver.wait_for_span(in_trace("publish demo/orders", "trace-producer"))
    broker = receiver.wait_for_span(in_trace("publish demo/orders", "ternd-under-test"))
    consumer = receiver.wait_for_span(in_trace("process demo/orders", "trace-consumer"))
    reply = receiver.wait_for_span(in_trace("publish demo/shipped", "trace-consumer"))
    reply_broker = receiver.wait_for_span(in_trace("publish demo/shipped", "ternd-under-test"))

    # The producer span starts the trace; its id is the one the message carried.
    assert producer["kind"] == PRODUCER_KIND
    assert not producer.get("parentSpanId")
    assert producer["spanId"] == parent_id
    assert attributes(producer)["messaging.destination.name"] == "demo/orders"
    assert producer["_resource"]["service.instance.id"].startswith("trace-producer-")

    assert broker["kind"] == SERVER_KIND
    assert broker["parentSpanId"] == producer["spanId"]

    assert consumer["kind"] == CONSUMER_KIND
    assert consumer["parentSpanId"] == producer["spanId"]
    attrs = attributes(consumer)
    assert attrs["messaging.system"] == "mqtt"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == "demo/orders"
    assert attrs["tern.service"] == "trace-consumer"
    assert attrs["tern.attempt"] == 1
    assert consumer["status"]["code"] == 0
    assert int(consumer["startTimeUnixNano"]) <= int(consumer["endTimeUnixNano"])

    # What the handler publishes continues the trace under the process span.
    assert reply["kind"] == PRODUCER_KIND
    assert reply["parentSpanId"] == consumer["spanId"]
    assert reply_broker["parentSpanId"] == reply["spanId"]

    ids = [s["spanId"] for s in (producer, broker, consumer, reply, reply_broker)]
    assert len(set(ids)) == len(ids)


def test_a_failing_handler_marks_its_span_as_an_error(ternd_factory, receiver):
    ternd = ternd_factory(broker_config(receiver))
    handled = run_chain(ternd, receiver, "fail")
    trace_id = handled.split("-")[1]
    consumer = receiver.wait_for_span(lambda s: s["traceId"] == trace_id and s["name"] == "process demo/orders")
    assert consumer["status"]["code"] == 2
    assert consumer["status"]["message"] == "cannot ship"
    # The dead-letter publish copies the event's traceparent, so it adds no producer span
    # of the consumer's; nothing else was published from the handler.
    assert not any(s["name"] == "publish demo/shipped" for s in receiver.all_spans())
