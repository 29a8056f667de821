"""No data lost silently (DESIGN.md guarantee 4): while Jaeger is down the collector keeps
spans in its persistent sending queue and retries without limit; a collector restart
resumes from the same queue on disk."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration

N = 25


def emit_error_traces(app, n: int) -> set[str]:
    ids = {app.failing_operation("ingest", stage="ingest") for _ in range(n)}
    app.flush()
    return ids


def wait_until_collector_accepted(stack, before: float, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while stack.collector_counter("otelcol_receiver_accepted_spans_total") < before + n:
        assert time.monotonic() < deadline, "the collector never accepted the spans"
        time.sleep(0.3)


def trace_ids(traces) -> set[str]:
    return {t["traceID"].rjust(32, "0") for t in traces}


def test_traces_sent_while_jaeger_is_down_arrive_after_it_restarts(stack, otel_app, unique_service):
    stack.stop("jaeger")
    try:
        accepted = stack.collector_counter("otelcol_receiver_accepted_spans_total")
        sent = emit_error_traces(otel_app(unique_service), N)
        wait_until_collector_accepted(stack, accepted, N)
        time.sleep(2)  # let the batch reach the exporter, which now fails and retries
    finally:
        stack.start("jaeger")

    traces = stack.wait_for_traces(unique_service, N, timeout=60)

    assert trace_ids(traces) == sent


def test_queued_traces_survive_a_collector_restart(stack, otel_app, unique_service):
    stack.stop("jaeger")
    try:
        accepted = stack.collector_counter("otelcol_receiver_accepted_spans_total")
        sent = emit_error_traces(otel_app(unique_service), N)
        wait_until_collector_accepted(stack, accepted, N)
        time.sleep(2)  # batch -> exporter queue (on disk)
        assert stack.collector_counter("otelcol_exporter_queue_size", data_type="traces") > 0
        stack.restart("collector")  # the queue is only on disk now
    finally:
        stack.start("jaeger")

    traces = stack.wait_for_traces(unique_service, N, timeout=60)

    assert trace_ids(traces) == sent
