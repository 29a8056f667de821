"""Recording: one `exception` event per failure, on the innermost span it escapes from."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode

import faultlens
from support.cases import BUILTIN_TABLE

CONTRACT_KEYS = {
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "faultlens.error.code",
    "faultlens.error.category",
    "faultlens.error.severity",
    "faultlens.error.retryable",
    "faultlens.error.fingerprint",
    "faultlens.error.fingerprint_version",
}


@faultlens.instrument
def fail_with(exc):
    raise exc


@pytest.mark.parametrize(("exc", "code", "category", "retryable"), BUILTIN_TABLE)
def test_each_builtin_failure_is_one_event_with_the_contract_attributes(
    app_otel, exc, code, category, retryable
):
    with pytest.raises(type(exc)) as raised:
        fail_with(exc)
    assert raised.value is exc, "the very same exception object propagates"

    [(span, event)] = app_otel.exception_events()
    assert span.name == "fail_with"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(exc).__qualname__
    attrs = event.attributes
    assert set(attrs) >= CONTRACT_KEYS
    assert attrs["faultlens.error.code"] == code
    assert attrs["faultlens.error.category"] == category
    assert attrs["faultlens.error.retryable"] is retryable
    assert attrs["faultlens.error.fingerprint_version"] == 1
    assert attrs["exception.type"] == type(exc).__qualname__
    assert "fail_with" in attrs["exception.stacktrace"]
    assert "faultlens.resource.memory.rss" in attrs


def test_success_in_errors_mode_creates_no_span(app_otel):
    @faultlens.instrument
    def ok(x):
        return x * 2

    assert ok(21) == 42
    assert app_otel.spans == []


def test_the_failing_call_span_starts_at_the_call_and_is_a_child_of_the_current_span(app_otel):
    tracer = app_otel.tracer()

    @faultlens.instrument
    def slow_fail():
        import time

        time.sleep(0.01)
        raise ValueError("late")

    with tracer.start_as_current_span("request") as parent, pytest.raises(ValueError):
        slow_fail()
    child = next(s for s in app_otel.spans if s.name == "slow_fail")
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.end_time - child.start_time >= 10_000_000


def test_an_exception_is_recorded_once_however_many_instrumented_frames_it_crosses(app_otel):
    @faultlens.instrument
    def inner():
        raise KeyError("k")

    @faultlens.instrument(mode="traced")
    def middle():
        inner()

    @faultlens.instrument
    def outer():
        middle()

    with pytest.raises(KeyError):
        outer()
    events = app_otel.exception_events()
    assert len(events) == 1
    assert events[0][0].name == "inner"
    by_name = {s.name: s for s in app_otel.spans}
    for name in ("inner", "middle", "outer"):
        assert by_name[name].status.status_code is StatusCode.ERROR
        assert by_name[name].attributes["error.type"] == "KeyError"


def test_traced_mode_makes_a_span_per_call_and_records_failures_on_it(app_otel):
    @faultlens.instrument(mode="traced", name="score", stage="scoring")
    def score(x):
        if x < 0:
            raise ValueError("negative")
        return x

    assert score(1) == 1
    with pytest.raises(ValueError):
        score(-1)
    ok, failed = app_otel.spans
    assert ok.name == failed.name == "score"
    assert ok.status.status_code is StatusCode.UNSET and not ok.events
    [event] = failed.events
    assert event.attributes["faultlens.stage"] == "scoring"


def test_record_error_uses_the_current_span(app_otel):
    with app_otel.tracer().start_as_current_span("work") as span:
        try:
            raise TimeoutError("db")
        except TimeoutError as exc:
            info = faultlens.record_error(exc, stage="load", job_id=7)
    assert info.code == "EXE_TIMEOUT" and info.stage == "load"
    [(recorded_on, event)] = app_otel.exception_events()
    assert recorded_on.context.span_id == span.get_span_context().span_id
    assert event.attributes["faultlens.context.job_id"] == 7
    assert event.attributes["faultlens.stage"] == "load"


def test_record_error_without_a_span_creates_one_named_after_the_function(app_otel):
    def loader():
        raise FileNotFoundError("x.csv")

    try:
        loader()
    except FileNotFoundError as exc:
        faultlens.record_error(exc)
    [span] = app_otel.spans
    assert span.name.endswith("loader")
    assert span.status.status_code is StatusCode.ERROR


def test_record_error_with_no_argument_records_the_exception_being_handled(app_otel):
    try:
        raise ValueError("current")
    except ValueError:
        info = faultlens.record_error()
    assert info.code == "VAL_INVALID_VALUE"
    assert len(app_otel.exception_events()) == 1


def test_record_error_never_raises_even_on_nonsense(app_otel):
    info = faultlens.record_error("not an exception")  # type: ignore[arg-type]
    assert info.code == "SYS_UNKNOWN_ERROR"
    assert app_otel.exception_events() == []


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), asyncio.CancelledError()]
)
def test_interrupts_exits_and_cancellation_are_never_failures(app_otel, exc):
    @faultlens.instrument
    def stop():
        raise exc

    @faultlens.instrument(mode="traced")
    def traced_stop():
        raise exc

    for fn in (stop, traced_stop):
        with pytest.raises(type(exc)):
            fn()
    assert app_otel.exception_events() == []
    assert all(s.status.status_code is StatusCode.UNSET for s in app_otel.spans)


def test_capture_adds_stage_and_context_to_everything_recorded_inside(app_otel):
    @faultlens.instrument
    def render():
        raise MemoryError()

    with faultlens.capture(stage="render", video_hash="abc123"), pytest.raises(MemoryError):
        render()
    [(_, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.stage"] == "render"
    assert event.attributes["faultlens.context.video_hash"] == "abc123"


def test_capture_records_an_exception_escaping_a_plain_block(app_otel):
    with pytest.raises(ZeroDivisionError), faultlens.capture(stage="math"):
        1 / 0  # noqa: B018
    [(span, event)] = app_otel.exception_events()
    assert span.name == "math"
    assert event.attributes["faultlens.stage"] == "math"


def test_a_fault_errors_own_stage_is_the_most_specific(app_otel):
    @faultlens.instrument(stage="pipeline")
    def run():
        raise faultlens.FaultError("MISSING_FILE", "result.json", stage="validate")

    with pytest.raises(faultlens.FaultError):
        run()
    [(span, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.stage"] == "validate"
    assert span.attributes["error.type"] == "MISSING_FILE"


def test_fault_error_details_are_recorded_and_scrubbed(app_otel):
    with pytest.raises(faultlens.FaultError), faultlens.capture():
        raise faultlens.FaultError("LOAD_ERROR", "x", details={"path": "/a", "api_key": "s3cr3t"})
    [(_, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.details.path"] == "/a"
    assert event.attributes["faultlens.details.api_key"] == "[REDACTED]"


def test_secrets_are_scrubbed_from_messages_stacks_and_context(app_otel):
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"

    @faultlens.instrument
    def connect():
        raise ConnectionError(f"postgres://admin:hunter2@db:5432 failed, bearer {token}")

    with faultlens.capture(password="hunter2", user="bob"), pytest.raises(ConnectionError):
        connect()
    [(_, event)] = app_otel.exception_events()
    text = repr(dict(event.attributes))
    assert "hunter2" not in text and token not in text
    assert event.attributes["faultlens.context.password"] == "[REDACTED]"
    assert event.attributes["faultlens.context.user"] == "bob"


def test_errors_are_counted_with_low_cardinality_labels(app_otel):
    @faultlens.instrument(stage="load")
    def load(i):
        raise FileNotFoundError(f"file {i}")

    for i in range(3):
        with pytest.raises(FileNotFoundError):
            load(i)
    points = [
        p
        for rm in app_otel.reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "faultlens.errors"
        for p in m.data.data_points
    ]
    [point] = points
    assert point.value == 3
    assert dict(point.attributes) == {
        "code": "VAL_FILE_NOT_FOUND",
        "category": "validation",
        "severity": "medium",
        "stage": "load",
    }


def test_before_configure_faultlens_without_providers_is_a_silent_noop():
    @faultlens.instrument
    def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom()
    assert faultlens.record_error(ValueError("y")).code == "VAL_INVALID_VALUE"


def test_severity_can_be_raised_for_one_occurrence(app_otel):
    info = faultlens.record_error(ValueError("fatal here"), severity="critical")
    assert info.severity == "critical"
    [(_, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.error.severity"] == "critical"
    assert faultlens.record_error(ValueError("bad"), severity="urgent").severity == "medium"


def test_processors_enrich_redact_or_drop_events_but_never_the_count(app_otel):
    def add_tenant(event):
        event.attributes["faultlens.context.tenant"] = "acme"
        event.attributes["faultlens.context.api_token"] = "tok-123"  # re-scrubbed by key
        return event

    def drop_validation(event):
        return None if event.info.category == "validation" else event

    def broken(event):
        raise RuntimeError("processor bug")

    faultlens.configure(
        service_name="svc", journal=False, processors=[broken, add_tenant, drop_validation]
    )
    with faultlens.testing.capture() as cap:
        faultlens.record_error(TimeoutError("slow"))
        faultlens.record_error(ValueError("bad"))
    [record] = cap.errors
    assert record.info.code == "EXE_TIMEOUT"
    assert record.attributes["faultlens.context.tenant"] == "acme"
    assert record.attributes["faultlens.context.api_token"] == "[REDACTED]"
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
    assert cap.counter("faultlens.internal.dropped", reason="filtered") == 1
    assert cap.counter("faultlens.internal.dropped", reason="internal_error") >= 1


def test_a_processor_that_is_not_callable_is_a_config_error():
    with pytest.raises(faultlens.ConfigError, match=r"processors\[0\]"):
        faultlens.configure(service_name="svc", journal=False, processors=["nope"])
