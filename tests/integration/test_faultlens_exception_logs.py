"""faultlens' own exception signal modes on the real stack (issue 15): the same failing
``@faultlens.instrument`` call, run in a fresh process configured only by environment, lands

- in ``span`` mode (the default) as one ``exception`` span event in Jaeger and no log record;
- in ``logs`` mode as one ``exception`` log record in VictoriaLogs, in the failing span's
  trace, *and* (by the bridge) as one ``exception`` span event in Jaeger, so the trace UI
  keeps showing it; with the bridge opted out, the record only;
- in ``logs/dup`` mode as exactly one of each (never a bridged second event);

and in every mode the span has status ERROR and ``error.type``, and ``faultlens_errors_total``
counts it once; log records are also counted in ``faultlens_exception_logs_total`` with the
faultlens labels."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import faultlens

    faultlens.configure()

    @faultlens.instrument
    def load(path):
        with open(path) as f:
            return f.read()

    try:
        load("/nonexistent/faultlens-itest.txt")
    except FileNotFoundError:
        pass
    faultlens.shutdown(timeout=20)
    """
)


def run_app(stack, *, signal: str | None, bridge: bool | None = None) -> str:
    """The app above as its own service; environment only, as a deployment would set it."""
    service = f"itest-exlogs-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(
        FAULTLENS_SERVICE_NAME=service,
        FAULTLENS_JOURNAL="false",
        OTEL_EXPORTER_OTLP_ENDPOINT=stack.otlp_grpc,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
    )
    if signal is not None:
        env["OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"] = signal
    if bridge is not None:
        env["FAULTLENS_EXCEPTION_BRIDGE"] = "true" if bridge else "false"
    proc = subprocess.run(
        [sys.executable, "-c", APP], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return service


def the_span(stack, service: str) -> tuple[dict, list[dict]]:
    """The failing ``load`` span in Jaeger and its ``exception`` events' fields."""
    (trace,) = stack.wait_for_traces(service, 1, timeout=60)
    (span,) = [s for s in trace["spans"] if s["operationName"] == "load"]
    events = [
        {f["key"]: f["value"] for f in log["fields"]}
        for log in span.get("logs", [])
        if any(f["key"] == "event" and f["value"] == "exception" for f in log["fields"])
    ]
    tags = {t["key"]: t["value"] for t in span["tags"]}
    assert tags.get("otel.status_code") == "ERROR", "the span's status is ERROR in every mode"
    assert tags.get("error.type") == "FileNotFoundError", "error.type: the qualified type"
    return span, events


def exception_records(stack, service: str, count: int = 1) -> list[dict]:
    return stack.wait_for_logs(
        f'{{service.name="{service}"}} event_name:=exception', count=count, timeout=60
    )


def assert_counted_once(stack, service: str) -> None:
    stack.prom_wait(
        f'sum(faultlens_errors_total{{job="{service}",code="VAL_FILE_NOT_FOUND"}}) == 1',
        timeout=60,
    )


def test_span_mode_is_one_span_event_and_no_log_record(stack):
    service = run_app(stack, signal=None)
    _, events = the_span(stack, service)
    assert len(events) == 1
    assert events[0]["faultlens.error.code"] == "VAL_FILE_NOT_FOUND"
    assert_counted_once(stack, service)
    assert stack.logsql(f'{{service.name="{service}"}}') == []


def test_logs_mode_is_a_log_record_in_the_span_and_the_bridge_keeps_jaeger_showing_it(stack):
    service = run_app(stack, signal="logs")
    span, events = the_span(stack, service)
    (record,) = exception_records(stack, service)
    assert record["trace_id"] == span["traceID"].rjust(32, "0")
    assert record["span_id"] == span["spanID"].rjust(16, "0")
    assert record["exception.type"] == "FileNotFoundError"
    assert "faultlens-itest.txt" in record["exception.message"]
    assert record["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert record["faultlens.error.code"] == "VAL_FILE_NOT_FOUND"
    assert record["faultlens.error.category"] == "validation"
    assert record["faultlens.error.fingerprint"]
    assert any(key.startswith("faultlens.resource.") for key in record)
    # severity from the faultlens severity: medium -> WARN
    assert (record["faultlens.error.severity"], record["severity_text"]) == ("medium", "WARN")
    # the bridge: the same exception, once, as the contract's span event
    (event,) = events
    assert event["faultlens.error.code"] == "VAL_FILE_NOT_FOUND"
    assert event["faultlens.error.fingerprint"] == record["faultlens.error.fingerprint"]
    assert event["exception.type"] == "FileNotFoundError"
    assert_counted_once(stack, service)
    stack.prom_wait(
        f'sum(faultlens_exception_logs_total{{job="{service}",code="VAL_FILE_NOT_FOUND",'
        'category="validation",severity="medium"}) == 1',
        timeout=60,
    )


def test_logs_mode_without_the_bridge_leaves_the_exception_to_the_logs_backend(stack):
    service = run_app(stack, signal="logs", bridge=False)
    _, events = the_span(stack, service)
    assert events == []
    (record,) = exception_records(stack, service)
    assert record["faultlens.error.code"] == "VAL_FILE_NOT_FOUND"
    assert_counted_once(stack, service)


def test_logs_dup_mode_is_exactly_one_span_event_and_one_log_record(stack):
    service = run_app(stack, signal="logs/dup")
    span, events = the_span(stack, service)
    (record,) = exception_records(stack, service)
    (event,) = events
    assert record["span_id"] == span["spanID"].rjust(16, "0")
    assert event["faultlens.error.fingerprint"] == record["faultlens.error.fingerprint"]
    assert_counted_once(stack, service)
