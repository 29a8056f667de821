"""Telemetry shaped per DESIGN.md, sent with the plain OpenTelemetry SDK, lands where the
contract says: the trace with its `exception` event in Jaeger, the counters and the span
metrics in Prometheus."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def _tags(items):
    return {t["key"]: t["value"] for t in items}


def test_jaeger_returns_the_trace_with_the_exception_event_and_resource(
    stack, otel_app, unique_service
):
    app = otel_app(unique_service)
    trace_id = app.failing_operation(
        "load", code="VAL_FILE_NOT_FOUND", category="validation", severity="high", stage="load"
    )
    app.flush()

    trace = stack.wait_for_trace(unique_service, trace_id)

    (span,) = trace["spans"]
    assert span["operationName"] == "load"
    tags = _tags(span["tags"])
    assert tags["error"] is True
    assert tags["otel.status_code"] == "ERROR"
    assert tags["error.type"] == "FileNotFoundError"
    (event,) = [log for log in span["logs"] if _tags(log["fields"]).get("event") == "exception"]
    fields = _tags(event["fields"])
    assert fields["exception.type"] == "FileNotFoundError"
    assert fields["faultlens.error.code"] == "VAL_FILE_NOT_FOUND"
    assert fields["faultlens.error.category"] == "validation"
    assert fields["faultlens.error.severity"] == "high"
    assert fields["faultlens.stage"] == "load"
    assert fields["faultlens.context.job_id"] == "7"
    process = trace["processes"][span["processID"]]
    assert process["serviceName"] == unique_service
    resource = _tags(process["tags"])
    assert resource["service.version"] == "9.9.9"
    assert resource["deployment.environment.name"] == "integration"


def test_prometheus_counts_errors_by_code_category_severity_and_stage(
    stack, otel_app, unique_service
):
    app = otel_app(unique_service)
    for _ in range(3):
        app.failing_operation(
            "load", code="VAL_FILE_NOT_FOUND", category="validation", severity="high", stage="load"
        )
    app.failing_operation(
        "score",
        exc_type="TimeoutError",
        message="slow",
        code="EXE_TIMEOUT",
        category="execution",
        severity="medium",
        stage="scoring",
    )
    app.flush()

    series = stack.prom_wait(
        f'faultlens_errors_total{{job="{unique_service}"}}',
        until=lambda r: sum(float(s["value"][1]) for s in r) == 4,
        timeout=30,
    )

    counts = {
        (m["code"], m["category"], m["severity"], m["stage"]): float(v)
        for m, (_, v) in ((s["metric"], s["value"]) for s in series)
    }
    assert counts == {
        ("VAL_FILE_NOT_FOUND", "validation", "high", "load"): 3.0,
        ("EXE_TIMEOUT", "execution", "medium", "scoring"): 1.0,
    }
    # The service is the Prometheus job; no per-process labels beyond `instance`.
    assert all(s["metric"]["job"] == unique_service for s in series)
    assert not any("process_pid" in s["metric"] or "host_name" in s["metric"] for s in series)


def test_span_metrics_count_calls_and_errors_per_operation(stack, otel_app, unique_service):
    app = otel_app(unique_service)
    for _ in range(2):
        app.failing_operation("load")
    with app.tracer.start_as_current_span("load"):
        pass  # one success
    app.flush()

    series = stack.prom_wait(
        f"sum by (span_name, status_code, error_type) "
        f'(traces_span_metrics_calls_total{{service_name="{unique_service}"}})',
        until=lambda r: sum(float(s["value"][1]) for s in r) == 3,
        timeout=30,
    )

    calls = {
        (
            s["metric"]["span_name"],
            s["metric"]["status_code"],
            s["metric"].get("error_type"),
        ): float(s["value"][1])
        for s in series
    }
    assert calls == {
        ("load", "STATUS_CODE_ERROR", "FileNotFoundError"): 2.0,
        ("load", "STATUS_CODE_UNSET", None): 1.0,
    }
    durations = stack.prom_query(
        f'traces_span_metrics_duration_seconds_count{{service_name="{unique_service}"}}'
    )
    assert durations
