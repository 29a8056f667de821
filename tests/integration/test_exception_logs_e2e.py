"""Exceptions as OpenTelemetry log records, end to end on the real stack: an ``exception``
log record sent over OTLP to the collector is queryable in VictoriaLogs (LogsQL) with its
exception, faultlens attributes, severity and the ids of the span it failed in; and the
log-metrics collector counts the exception records into
``faultlens_exception_logs_total{code, category, severity}`` in Prometheus, so alerting
works on exceptions reported as log records as it does on ``faultlens_errors_total``.

The records are sent with the plain OpenTelemetry SDK (``Logger.emit(event_name=...,
exception=...)``), over OTLP/gRPC and OTLP/HTTP, as any application or instrumentation
would send them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration

FAULTLENS_ATTRIBUTES = {
    "faultlens.error.code": "VAL_FILE_NOT_FOUND",
    "faultlens.error.category": "validation",
    "faultlens.error.severity": "high",
    "faultlens.error.retryable": False,
    "faultlens.error.fingerprint": "0123456789abcdef",
    "faultlens.error.fingerprint_version": 1,
    "faultlens.stage": "load",
}


@dataclass
class LogApp:
    """An app with the plain OpenTelemetry SDK's logs pipeline (and a tracer, for the ids of
    the span an exception is logged in), exporting OTLP to the stack's collector."""

    logger: Any
    tracer: Any
    flush: Callable[[], None]


@pytest.fixture
def log_app(stack, unique_service) -> Iterator[Callable[..., LogApp]]:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    providers: list[LoggerProvider] = []

    def make(protocol: str = "grpc") -> LogApp:
        resource = Resource.create(
            {"service.name": unique_service, "deployment.environment.name": "integration"}
        )
        exporter = (
            GrpcLogExporter(endpoint=stack.otlp_grpc, insecure=True, timeout=10)
            if protocol == "grpc"
            else HttpLogExporter(endpoint=f"{stack.otlp_http}/v1/logs", timeout=10)
        )
        provider = LoggerProvider(resource=resource)
        # One export per record: each reaches the collector as a request of its own.
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        providers.append(provider)
        tracer = TracerProvider(resource=resource).get_tracer("faultlens.itest")
        return LogApp(
            logger=provider.get_logger("faultlens.itest"),
            tracer=tracer,
            flush=lambda: provider.force_flush(10_000),
        )

    yield make
    for provider in providers:
        provider.shutdown()


def log_exception(
    app: LogApp,
    exc: BaseException,
    *,
    attributes: dict[str, Any] | None = None,
    event_name: str | None = "exception",
    severity: str = "ERROR",
) -> None:
    """Log an exception the way the semantic conventions (and faultlens' logs mode) do."""
    from opentelemetry._logs import SeverityNumber

    app.logger.emit(
        event_name=event_name,
        exception=exc,
        severity_number=SeverityNumber[severity],
        severity_text=severity,
        body=str(exc),
        attributes=attributes,
    )


def raised(exc: BaseException) -> BaseException:
    """The exception after a real raise, so it carries a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_exception_log_record_is_queryable_in_victorialogs(
    stack, log_app, unique_service, protocol
):
    app = log_app(protocol)
    with app.tracer.start_as_current_span("load") as span:
        log_exception(
            app, raised(FileNotFoundError("missing.txt")), attributes=FAULTLENS_ATTRIBUTES
        )
        context = span.get_span_context()
    app.flush()

    (record,) = stack.wait_for_logs(f'{{service.name="{unique_service}"}} event_name:=exception')

    assert record["exception.type"] == "FileNotFoundError"
    assert record["exception.message"] == "missing.txt"
    assert "raise exc" in record["exception.stacktrace"]
    assert record["exception.stacktrace"].rstrip().endswith("FileNotFoundError: missing.txt")
    assert record["_msg"] == "missing.txt"
    assert record["severity_text"] == "ERROR"
    assert record["severity_number"] == "17"
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")
    for key, value in FAULTLENS_ATTRIBUTES.items():
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert record[key] == expected, key
    # the stream is the service, its environment and the event, not the process
    assert record["_stream"] == (
        '{deployment.environment.name="integration",event_name="exception",'
        f'service.name="{unique_service}"}}'
    )


def test_logsql_finds_an_exception_by_its_code_among_other_records(stack, log_app, unique_service):
    app = log_app()
    log_exception(app, raised(FileNotFoundError("a.txt")), attributes=FAULTLENS_ATTRIBUTES)
    log_exception(
        app,
        raised(TimeoutError("slow")),
        attributes=FAULTLENS_ATTRIBUTES
        | {"faultlens.error.code": "EXE_TIMEOUT", "faultlens.error.category": "execution"},
    )
    app.logger.emit(body="job 7 done", severity_text="INFO")  # an ordinary log record
    app.flush()

    service = f'{{service.name="{unique_service}"}}'
    assert len(stack.wait_for_logs(service, count=3)) == 3
    (timeout,) = stack.logsql(
        f'{service} event_name:=exception faultlens.error.code:="EXE_TIMEOUT"'
    )
    assert timeout["exception.type"] == "TimeoutError"
    assert len(stack.logsql(f"{service} event_name:=exception")) == 2


def test_exception_records_are_counted_in_prometheus_with_the_labels_of_faultlens_errors(
    stack, log_app, unique_service
):
    app = log_app()
    # Two high-severity file errors, sent apart: the counter sums across requests.
    for name in ("a.txt", "b.txt"):
        log_exception(app, raised(FileNotFoundError(name)), attributes=FAULTLENS_ATTRIBUTES)
        app.flush()
    low = FAULTLENS_ATTRIBUTES | {
        "faultlens.error.code": "VAL_INVALID_VALUE",
        "faultlens.error.severity": "low",
    }
    log_exception(app, raised(ValueError("bad value 3")), attributes=low, severity="INFO")
    # An exception logged by other instrumentation: no event name, no faultlens attributes,
    # recognised by its exception.type; counted without code, category and severity.
    log_exception(app, raised(KeyError("k")), event_name=None)
    # Not an exception: never counted.
    app.logger.emit(body="job 7 done", severity_text="INFO")
    app.flush()

    expr = f'faultlens_exception_logs_total{{job="{unique_service}"}}'
    series = stack.prom_wait(
        f"sum by (code, category, severity) ({expr})",
        until=lambda r: sum(float(s["value"][1]) for s in r) >= 4,
        timeout=60,
    )
    counts = {
        (s["metric"].get("code"), s["metric"].get("category"), s["metric"].get("severity")): float(
            s["value"][1]
        )
        for s in series
    }
    assert counts == {
        ("VAL_FILE_NOT_FOUND", "validation", "high"): 2,
        ("VAL_INVALID_VALUE", "validation", "low"): 1,
        (None, None, None): 1,
    }
    # and nothing high-cardinality became a label
    (labels,) = {frozenset(s["metric"]) for s in stack.prom_query(expr) if "code" in s["metric"]}
    assert labels <= {"__name__", "job", "instance", "code", "category", "severity"} | {
        "otel_scope_name",
        "otel_scope_version",
        "otel_scope_schema_url",
    }


def test_the_logs_backend_and_the_log_counter_answer_on_loopback_only(stack):
    assert requests.get(f"{stack.victorialogs}/health", timeout=5).text.strip() == "OK"
    assert requests.get("http://127.0.0.1:13134/", timeout=5).status_code == 200
    pids = {
        (stack.state_dir / "run" / f"{c}.pid").read_text().strip()
        for c in ("victorialogs", "logmetrics")
    }
    sockets = subprocess.run(
        ["ss", "-Htulnp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    ours = [s for s in sockets if any(f"pid={pid}," in s for pid in pids)]
    listening = {line.split()[4] for line in ours}
    assert {"127.0.0.1:9428", "127.0.0.1:4319", "127.0.0.1:13134", "127.0.0.1:8890"} <= listening
    assert all(a.startswith(("127.0.0.1:", "[::1]:")) for a in listening), ours


def test_records_sent_while_victorialogs_is_down_arrive_after_it_is_back(
    stack, log_app, unique_service
):
    app = log_app()
    stack.stop("victorialogs")
    try:
        for name in ("a.txt", "b.txt", "c.txt"):
            log_exception(app, raised(FileNotFoundError(name)), attributes=FAULTLENS_ATTRIBUTES)
        app.flush()  # accepted by the collector, which holds them in its disk queue
        # counted meanwhile all the same: the log counter does not depend on the backend
        stack.prom_wait(
            f'sum(faultlens_exception_logs_total{{job="{unique_service}"}}) == 3', timeout=60
        )
    finally:
        stack.start("victorialogs")
    records = stack.wait_for_logs(f'{{service.name="{unique_service}"}}', count=3, timeout=60)
    assert sorted(r["exception.message"] for r in records) == ["a.txt", "b.txt", "c.txt"]
