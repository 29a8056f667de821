"""Exceptions as OpenTelemetry log records (issue 15): the three signal modes, the event to
span event bridge, and what stays the same in every mode (span status, error.type, the
count, the journal's record, record-once)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import faultlens
from faultlens import ConfigError, FaultError, Severity
from faultlens.capture import dropped_counts
from faultlens.capture._exception_logs import severity_of  # the mapping itself, unit-tested


class PaymentDeclined(FaultError):
    code = "PAY_DECLINED"


@faultlens.instrument
def charge(card: str) -> None:
    raise ValueError(f"card {card} refused, password=hunter2")


@faultlens.instrument
def checkout() -> None:
    charge("4111")


def _fail(fn, *args) -> BaseException:
    with pytest.raises(Exception) as info:
        fn(*args)
    return info.value


# -- the three modes ------------------------------------------------------------------------


def test_by_default_an_error_is_a_span_event_and_no_log_record() -> None:
    with faultlens.testing.capture() as cap:
        _fail(charge, "1")
    assert len(cap.error_events) == 1
    assert cap.logs == []


def test_logs_mode_emits_one_exception_log_record_in_the_failing_spans_context() -> None:
    with faultlens.testing.capture(exception_signal="logs") as cap:
        exc = _fail(charge, "1")
    [record] = cap.exception_logs
    span = cap.span("charge")
    assert record.event_name == "exception"
    assert record.trace_id == span.context.trace_id
    assert record.span_id == span.context.span_id
    assert record.exception is exc  # the object itself, for in-process log processors
    attrs = dict(record.attributes)
    assert attrs["faultlens.error.code"] == "VAL_INVALID_VALUE"
    assert attrs["faultlens.error.category"] == "validation"
    assert attrs["faultlens.error.severity"] == "medium"
    assert attrs["faultlens.error.fingerprint"]
    assert attrs["exception.type"] == "ValueError"
    assert "charge" in attrs["exception.stacktrace"]
    assert record.severity_number is SeverityNumber.WARN and record.severity_text == "WARN"


def test_the_log_record_carries_faultlenss_scrubbed_attributes_not_the_sdks_raw_ones() -> None:
    with faultlens.testing.capture(exception_signal="logs") as cap:
        _fail(charge, "1")
    [record] = cap.exception_logs
    assert "hunter2" not in str(record.attributes["exception.message"])
    assert "hunter2" not in str(record.attributes["exception.stacktrace"])
    assert "hunter2" not in str(record.body)
    assert record.body == record.attributes["exception.message"]


def test_in_logs_mode_the_bridge_puts_the_record_back_on_its_span_once() -> None:
    with faultlens.testing.capture(exception_signal="logs") as cap:
        _fail(charge, "1")
    [record] = cap.exception_logs
    [event] = cap.error_events  # Jaeger still shows the exception
    assert dict(event.attributes) == dict(record.attributes)
    assert event.timestamp == record.timestamp


def test_the_bridge_can_be_turned_off_for_backends_that_read_the_logs() -> None:
    with faultlens.testing.capture(exception_signal="logs", exception_bridge=False) as cap:
        _fail(charge, "1")
    assert len(cap.exception_logs) == 1
    assert cap.error_events == []
    span = cap.span("charge")
    assert span.status.status_code is trace.StatusCode.ERROR  # the trace stays honest
    assert span.attributes["error.type"] == "ValueError"


def test_logs_dup_gives_exactly_one_of_each() -> None:
    with faultlens.testing.capture(exception_signal="logs/dup") as cap:
        _fail(charge, "1")
    assert len(cap.exception_logs) == 1
    assert len(cap.error_events) == 1
    assert dict(cap.error_events[0].attributes) == dict(cap.exception_logs[0].attributes)


@pytest.mark.parametrize("signal", ["span", "logs", "logs/dup"])
def test_every_mode_keeps_status_error_type_the_count_and_the_record(signal: str) -> None:
    with faultlens.testing.capture(exception_signal=signal) as cap:
        _fail(checkout)  # escapes two instrumented functions: recorded once, on charge
    assert len(cap.errors) == 1
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
    for name in ("charge", "checkout"):
        span = cap.span(name)
        assert span.status.status_code is trace.StatusCode.ERROR
        assert span.attributes["error.type"] == "ValueError"
    assert len(cap.exception_logs) == (0 if signal == "span" else 1)
    assert len(cap.error_events) == 1  # span event, bridged event, or the dup's own
    assert cap.events()[0][0].name == "charge"


# -- severity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "number"),
    [
        (Severity.CRITICAL, SeverityNumber.FATAL),
        (Severity.HIGH, SeverityNumber.ERROR),
        (Severity.MEDIUM, SeverityNumber.WARN),
        (Severity.LOW, SeverityNumber.INFO),
    ],
)
def test_the_log_severity_follows_the_faultlens_severity(
    severity: Severity, number: SeverityNumber
) -> None:
    with faultlens.testing.capture(exception_signal="logs") as cap:
        try:
            raise PaymentDeclined("declined")
        except PaymentDeclined as exc:
            faultlens.record_error(exc, severity=severity)
    [record] = cap.exception_logs
    assert record.severity_number is number
    assert record.severity_text == number.name


def test_an_uncaught_exception_is_at_least_error() -> None:
    assert severity_of({"faultlens.error.severity": "low", "faultlens.context.uncaught": True})[
        0
    ] is (SeverityNumber.ERROR)
    assert severity_of({"faultlens.error.severity": "critical"})[0] is SeverityNumber.FATAL
    with faultlens.testing.capture(exception_signal="logs") as cap:
        faultlens.capture.record_uncaught(ValueError("crash"))
    [record] = cap.exception_logs
    assert record.severity_number.value >= SeverityNumber.ERROR.value


# -- what is not emitted ----------------------------------------------------------------------


def test_an_error_a_processor_drops_emits_no_log_record() -> None:
    faultlens.configure(service_name="svc", journal=False, processors=[lambda event: None])
    with faultlens.testing.capture(exception_signal="logs") as cap:
        _fail(charge, "1")
    assert cap.exception_logs == [] and cap.error_events == []
    assert cap.counter("faultlens.errors") == 1  # counted all the same


def test_an_error_suppressed_by_the_rate_limit_emits_no_log_record() -> None:
    faultlens.configure(service_name="svc", journal=False, rate_limit=2)
    with faultlens.testing.capture(exception_signal="logs") as cap:
        for i in range(5):
            _fail(charge, str(i))
    assert len(cap.exception_logs) == 2
    assert cap.counter("faultlens.errors") == 5


# -- configuration -----------------------------------------------------------------------------


def _app_logs() -> InMemoryLogRecordExporter:
    """An application that set up its own logs pipeline."""
    exporter = InMemoryLogRecordExporter()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    set_logger_provider(lp)
    return exporter


def test_the_otel_opt_in_variable_selects_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "http,logs")
    assert faultlens.configure(service_name="svc", journal=False).exceptions.signal == "logs"


def test_dup_wins_in_the_opt_in_list_and_other_values_are_someone_elses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "logs, logs/dup")
    assert faultlens.configure(service_name="a", journal=False).exceptions.signal == "logs/dup"
    faultlens.shutdown()
    monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "database/dup")
    assert faultlens.configure(service_name="b", journal=False).exceptions.signal == "span"


def test_the_argument_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "logs/dup")
    s = faultlens.configure(service_name="svc", journal=False, exception_signal="span")
    assert s.exceptions.signal == "span"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"exception_signal": "log"}, "expected one of span, logs, logs/dup"),
        ({"exception_event_name": "Exception"}, "<domain>.exception"),
        ({"exception_bridge": "maybe"}, "expected true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_option(kwargs: dict, words: str) -> None:
    with pytest.raises(ConfigError, match="exception_") as info:
        faultlens.configure(service_name="svc", journal=False, **kwargs)
    assert words in str(info.value)


def test_a_bad_faultlens_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTLENS_EXCEPTION_SIGNAL", "logz")
    with pytest.raises(ConfigError, match="FAULTLENS_EXCEPTION_SIGNAL"):
        faultlens.configure(service_name="svc", journal=False)


def test_records_go_to_the_applications_logger_provider_with_the_bridge(app_otel) -> None:
    exporter = _app_logs()
    faultlens.configure(service_name="svc", journal=False, exception_signal="logs")
    _fail(charge, "1")
    [record] = [r.log_record for r in exporter.get_finished_logs()]
    assert record.event_name == "exception"
    assert len(app_otel.exception_events()) == 1  # bridged onto the app's span


def test_a_domain_event_name_is_used_for_the_record_and_the_span_event_keeps_the_contract(
    app_otel,
) -> None:
    exporter = _app_logs()
    faultlens.configure(
        service_name="svc",
        journal=False,
        exception_signal="logs",
        exception_event_name="payments.exception",
    )
    _fail(charge, "1")
    [record] = [r.log_record for r in exporter.get_finished_logs()]
    assert record.event_name == "payments.exception"
    assert len(app_otel.exception_events()) == 1


def test_back_in_span_mode_after_shutdown_the_bridge_is_disarmed(app_otel) -> None:
    exporter = _app_logs()
    faultlens.configure(service_name="svc", journal=False, exception_signal="logs")
    faultlens.shutdown()
    faultlens.configure(service_name="svc", journal=False)
    _fail(charge, "1")
    assert exporter.get_finished_logs() == ()
    assert len(app_otel.exception_events()) == 1  # the span event, once


def test_faultlens_owns_a_logger_provider_when_the_application_has_none() -> None:
    faultlens.configure(service_name="svc", journal=False, exception_signal="logs/dup")
    from opentelemetry._logs import get_logger_provider

    lp = get_logger_provider()
    assert getattr(lp, "_faultlens_owned", False)
    assert lp.resource.attributes["service.name"] == "svc"
    faultlens.shutdown()
    from faultlens.capture._state import STATE

    assert STATE.exception_logs is None and STATE.span_events  # as before configure()


def test_span_mode_does_not_import_the_sdks_logs_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, faultlens; faultlens.configure(service_name='s', journal=False); "
        "print('opentelemetry.sdk._logs' in sys.modules, 'faultlens._logs' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- the SDK's Logger: the same record without a second traceback -----------------------------


def _records_both_ways(monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The same error emitted through the direct path and through the public
    ``Logger.emit``, into one provider; both finished records."""
    from faultlens._logs import emitter_for

    exporter = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    emitter = emitter_for(lp.get_logger("faultlens", "1"), "exception")
    assert emitter.direct is not None, "the SDK's own Logger gets the direct path"
    tracer = trace.get_tracer("t")
    exc = ValueError("card 4111 refused")
    attributes = {
        "exception.type": "ValueError",
        "exception.message": "card 4111 refused",
        "exception.stacktrace": "Traceback (most recent call last):\n ...\nValueError: x\n",
        "faultlens.error.code": "VAL_INVALID_VALUE",
        "faultlens.error.severity": "high",
    }
    with tracer.start_as_current_span("op") as span:
        emitter(span, exc, dict(attributes), 1_000)
        public = emitter_for(lp.get_logger("faultlens", "1"), "exception")
        public.direct = None
        public(span, exc, dict(attributes), 1_000)
    direct_rec, public_rec = exporter.get_finished_logs()
    return direct_rec, public_rec, exc


def test_the_sdk_logger_gets_the_same_record_as_the_public_emit_would_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct, public, exc = _records_both_ways(monkeypatch)
    for field in (
        "timestamp",
        "observed_timestamp",
        "trace_id",
        "span_id",
        "trace_flags",
        "severity_text",
        "severity_number",
        "body",
        "event_name",
    ):
        assert getattr(direct.log_record, field) == getattr(public.log_record, field), field
    assert direct.log_record.exception is exc and public.log_record.exception is exc
    assert dict(direct.log_record.attributes) == dict(public.log_record.attributes)
    assert direct.resource == public.resource
    assert direct.instrumentation_scope == public.instrumentation_scope


def test_the_direct_path_does_not_format_the_traceback_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import traceback

    calls = []
    real = traceback.format_exception
    monkeypatch.setattr(
        traceback, "format_exception", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    from faultlens._logs import emitter_for

    lp = LoggerProvider(shutdown_on_exit=False)
    emitter = emitter_for(lp.get_logger("faultlens"), "exception")
    with trace.get_tracer("t").start_as_current_span("op") as span:
        emitter(span, ValueError("x"), {"exception.type": "ValueError"}, 1)
    assert calls == []


def test_another_logger_gets_the_public_emit() -> None:
    from faultlens._logs import emitter_for

    class AppLogger:
        def __init__(self) -> None:
            self.calls: list[dict] = []

        def emit(self, **kwargs) -> None:
            self.calls.append(kwargs)

    logger = AppLogger()
    emitter = emitter_for(logger, "exception")
    assert emitter.direct is None
    exc = ValueError("x")
    with trace.get_tracer("t").start_as_current_span("op") as span:
        emitter(span, exc, {"faultlens.error.severity": "low"}, 1)
    [call] = logger.calls
    assert call["exception"] is exc and call["event_name"] == "exception"
    assert call["severity_number"] == SeverityNumber.INFO


def test_logs_mode_on_an_sdk_without_exception_records_is_refused_at_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import opentelemetry._logs as api_logs

    class OldLogRecord:  # the API's LogRecord before event_name= and exception=
        def __init__(self, timestamp=None, body=None, attributes=None) -> None:
            pass

    monkeypatch.setattr(api_logs, "LogRecord", OldLogRecord)
    with pytest.raises(ConfigError, match=r"1\.42 or later.*exception_signal='span'"):
        faultlens.configure(service_name="svc", journal=False, exception_signal="logs")
    faultlens.configure(service_name="svc", journal=False)  # span mode is fine


# -- faults ------------------------------------------------------------------------------------


class _BrokenLogger:
    def emit(self, *args, **kwargs):
        raise RuntimeError("logs pipeline is broken")


def test_a_failing_logs_pipeline_never_reaches_the_caller_and_is_counted() -> None:
    from faultlens.capture._exception_logs import ExceptionLogEmitter
    from faultlens.capture._state import STATE

    with faultlens.testing.capture(exception_signal="logs/dup") as cap:
        STATE.exception_logs = ExceptionLogEmitter(_BrokenLogger())  # type: ignore[arg-type]
        exc = _fail(charge, "1")
    assert isinstance(exc, ValueError)  # the caller sees its own exception, nothing else
    assert len(cap.error_events) == 1  # the span event is there all the same
    assert dropped_counts().get("internal_error", 0) >= 1


def test_log_records_an_export_fails_to_deliver_are_counted() -> None:
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    from faultlens._logs import CountingLogExporter

    class Refusing(InMemoryLogRecordExporter):
        def export(self, batch):
            return LogRecordExportResult.FAILURE

    before = dropped_counts().get("export_failed", 0)
    counting = CountingLogExporter(Refusing())
    assert counting.export([object(), object(), object()]) is LogRecordExportResult.FAILURE
    assert dropped_counts().get("export_failed", 0) - before == 3


@pytest.mark.parametrize(
    ("protocol", "env", "url"),
    [
        ("http/protobuf", {}, "http://127.0.0.1:4318/v1/logs"),
        ("grpc", {}, "127.0.0.1:4317"),
        ("http/protobuf", {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs.example:9/in"}, None),
    ],
)
def test_the_owned_provider_exports_to_the_collector_and_counts_its_losses(
    monkeypatch: pytest.MonkeyPatch, protocol: str, env: dict, url: str | None
) -> None:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from faultlens._logs import CountingLogExporter

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    endpoint = "http://127.0.0.1:4318" if protocol.startswith("http") else "http://127.0.0.1:4317"
    faultlens.configure(
        service_name="svc",
        journal=False,
        exception_signal="logs",
        endpoint=endpoint,
        protocol=protocol,
    )
    from opentelemetry._logs import get_logger_provider

    parts = get_logger_provider()._faultlens_parts
    assert any(isinstance(p, BatchLogRecordProcessor) for p in parts)
    [counting] = [p for p in parts if isinstance(p, CountingLogExporter)]
    inner = counting.inner
    got = getattr(inner, "_endpoint", None)
    expected = url or env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"]
    assert got == expected or expected in str(got)


# -- logged exceptions (faultlens.LoggingHandler beside OpenTelemetry's logging handler) -------


@pytest.fixture
def otel_logging_handler():
    """OpenTelemetry's own handler on the root logger, as opentelemetry-instrument sets it up
    (opentelemetry-instrumentation-logging; the SDK's older class behaves the same)."""
    import logging

    from opentelemetry.sdk._logs import LoggingHandler as OTelLoggingHandler

    exporter = InMemoryLogRecordExporter()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    set_logger_provider(lp)
    with pytest.warns(DeprecationWarning):
        handler = OTelLoggingHandler(logger_provider=lp)
    root = logging.getLogger()
    root.addHandler(handler)
    yield exporter
    root.removeHandler(handler)


@pytest.mark.parametrize("faultlens_first", [True, False])
def test_a_logged_exception_is_one_log_record_when_both_handlers_are_installed(
    otel_logging_handler, faultlens_first: bool
) -> None:
    import logging

    root = logging.getLogger()
    ours = faultlens.LoggingHandler()
    if faultlens_first:  # reorder: faultlens's handler before OpenTelemetry's
        root.handlers.insert(0, ours)
    else:
        root.addHandler(ours)
    try:
        faultlens.configure(service_name="svc", journal=False, exception_signal="logs")
        log = logging.getLogger("shop")
        log.setLevel(logging.INFO)  # whatever an earlier test left on the root logger
        log.warning("stock is low")  # an ordinary line: OpenTelemetry's handler exports it
        try:
            raise ConnectionError("gateway down")
        except ConnectionError:
            log.exception("payment for order %s failed", 12)
    finally:
        root.removeHandler(ours)
        logging.getLogger("shop").setLevel(logging.NOTSET)
    records = [r.log_record for r in otel_logging_handler.get_finished_logs()]
    with_exception = [r for r in records if "exception.type" in (r.attributes or {})]
    assert len(with_exception) == 1
    [record] = with_exception
    assert record.event_name == "exception"
    assert record.attributes["faultlens.error.code"] == "NET_CONNECTION_FAILED"
    assert record.attributes["faultlens.context.log_message"] == "payment for order 12 failed"
    assert [r.body for r in records if r.event_name is None] == ["stock is low"]


def test_in_span_mode_opentelemetrys_handler_exports_logged_exceptions_as_before(
    otel_logging_handler,
) -> None:
    import logging

    root = logging.getLogger()
    ours = faultlens.LoggingHandler()
    root.addHandler(ours)
    try:
        faultlens.configure(service_name="svc", journal=False)
        try:
            raise ConnectionError("gateway down")
        except ConnectionError:
            logging.getLogger("shop").exception("payment failed")
    finally:
        root.removeHandler(ours)
    [record] = [r.log_record for r in otel_logging_handler.get_finished_logs()]
    assert record.body == "payment failed"
