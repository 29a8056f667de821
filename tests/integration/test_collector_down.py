"""With the collector down an app neither blocks beyond its export timeout nor crashes."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

pytestmark = pytest.mark.integration

EXPORT_TIMEOUT_S = 2.0
SLACK_S = 1.5


@pytest.fixture
def collector_down(stack):
    stack.stop("collector")
    yield
    stack.start("collector")


def test_recording_errors_does_not_wait_for_the_missing_collector(
    stack, collector_down, otel_app, unique_service
):
    app = otel_app(unique_service, export_timeout=EXPORT_TIMEOUT_S)

    started = time.monotonic()
    for _ in range(50):
        app.failing_operation("load")
    recording = time.monotonic() - started

    # Spans are handed to the batch processor: the app's own code path never exports.
    assert recording < 0.5


def test_an_export_gives_up_within_its_timeout(stack, collector_down, otel_app, unique_service):
    app = otel_app(unique_service, export_timeout=EXPORT_TIMEOUT_S)
    with app.tracer.start_as_current_span("load") as span:
        app.record_error(span)
    finished = [span]

    started = time.monotonic()
    result = app.span_exporter.export(finished)
    elapsed = time.monotonic() - started

    assert result is SpanExportResult.FAILURE
    assert elapsed < EXPORT_TIMEOUT_S + SLACK_S


def test_flush_and_shutdown_return_within_the_timeout(
    stack, collector_down, otel_app, unique_service
):
    app = otel_app(unique_service, export_timeout=EXPORT_TIMEOUT_S)
    for _ in range(10):
        app.failing_operation("load")

    started = time.monotonic()
    app.flush(timeout_ms=int(EXPORT_TIMEOUT_S * 1000))
    app.shutdown()
    elapsed = time.monotonic() - started

    # force_flush of traces and metrics, then shutdown of both (each bounded by the timeout)
    assert elapsed < 4 * EXPORT_TIMEOUT_S + SLACK_S
