"""Core instrumentation costs against their anchors, measured in one process, through the
PUBLIC path a user pays for.

Every recording row times an ``@faultlens.instrument``ed function that raises: the
errors-mode span, the ``faultlens.errors`` count, the ``exception`` event with every contract
attribute (code, category, severity, fingerprint, scrubbed message and stack trace, context,
the resources snapshot), with ``rate_limit=0`` so that every error is really recorded. The
span processor is a real SDK ``SimpleSpanProcessor`` (exporter discarding), the meter a real
SDK ``MeterProvider`` with a reader. Each error is a new exception object raised three frames
deep from the same code location, as in a storm or a hot failing endpoint.

Rows (ratios are measured interleaved, in one process):

- errors mode, success            / wrapt pass-through                       goal <= 1.0x
- traced mode, success            / raw OTel span (start_as_current_span)    goal <= 0.95x
- recorded error                  / raw span + record_exception + status     goal <= 0.5x
- recorded error                  / sentry_sdk.capture_exception             goal <= 0.1x
- suppressed by the rate limit    / the same error recorded                  goal <= 0.1x
- recorded error, logs mode       / raw span + Logger.emit(exception=) + status  goal <= 1.0x
- [internal] record_on_span on a span the benchmark made (the first round's row), labelled.

The RSS rows (distinct fingerprints) are in bench_storm.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compare, row


def _providers() -> Any:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(Discard()))
    trace.set_tracer_provider(tp)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return tp, reader


def _level3(i: int) -> None:
    raise ValueError(f"bad value {i} for 'job-42'")


def _level2(i: int) -> None:
    _level3(i)


def work(i: int) -> None:
    """The application function that fails: three frames deep, a new exception each call."""
    _level2(i)


def run(quick: bool = False) -> list[dict[str, Any]]:
    import wrapt
    from opentelemetry.trace import Status, StatusCode

    import faultlens

    tp, _reader = _providers()
    tracer = tp.get_tracer("bench")
    n = 20_000 if quick else 200_000
    rows: list[dict[str, Any]] = []

    # -- success paths ---------------------------------------------------------------------
    faultlens.configure(service_name="bench", journal=False)

    def plain(x: int) -> int:
        return x + 1

    @wrapt.decorator
    def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    wrapt_fn = passthrough(plain)
    errors_fn = faultlens.instrument(plain)
    t_wrapt, t_err = compare(lambda: wrapt_fn(1), lambda: errors_fn(1), number=n)
    rows.append(
        row(
            "instrument",
            "errors mode, success",
            t_err,
            "wrapt pass-through",
            t_wrapt,
            "<= 1.0x",
            t_err <= t_wrapt,
        )
    )

    traced_fn = faultlens.instrument(mode="traced", name="op")(plain)

    def raw_span() -> int:
        with tracer.start_as_current_span("op"):
            return plain(1)

    m = n // 10
    t_raw, t_traced = compare(raw_span, lambda: traced_fn(1), number=m)
    rows.append(
        row(
            "instrument",
            "traced mode, success",
            t_traced,
            "raw OTel span",
            t_raw,
            "<= 0.95x",
            t_traced <= 0.95 * t_raw,
        )
    )
    faultlens.shutdown()

    # -- recording: every error recorded in full (rate_limit=0) ----------------------------
    faultlens.configure(service_name="bench", journal=False, rate_limit=0)
    k = 2_000 if quick else 20_000
    recorded_fn = faultlens.instrument(work)

    def fl_recorded() -> None:
        try:
            recorded_fn(17)
        except ValueError:
            pass

    def raw_recorded() -> None:
        span = tracer.start_span("work")
        try:
            work(17)
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            span.end()

    def fl_internal() -> None:
        from faultlens.capture import record_on_span

        try:
            work(17)
        except ValueError as exc:
            span = tracer.start_span("op")
            record_on_span(exc, span)
            span.end()

    t_raw_rec, t_fl_rec, t_internal = compare(raw_recorded, fl_recorded, fl_internal, number=k)
    rows.append(
        row(
            "record",
            "@instrument'ed function raising, recorded (span, count, event)",
            t_fl_rec,
            "raw span + record_exception",
            t_raw_rec,
            "<= 0.5x",
            t_fl_rec <= 0.5 * t_raw_rec,
        )
    )
    try:
        import sentry_sdk
    except ImportError:
        sentry_sdk = None
    if sentry_sdk is not None:
        sentry_sdk.init(
            dsn="http://public@127.0.0.1:9/1", transport=_NullTransport, default_integrations=False
        )

        def sentry_record() -> None:
            try:
                work(17)
            except ValueError as exc:
                sentry_sdk.capture_exception(exc)

        t_sentry, t_fl_rec2 = compare(sentry_record, fl_recorded, number=max(k // 4, 500))
        rows.append(
            row(
                "record",
                "@instrument'ed function raising, recorded",
                t_fl_rec2,
                "sentry_sdk.capture_exception",
                t_sentry,
                "<= 0.1x",
                t_fl_rec2 <= 0.1 * t_sentry,
            )
        )
        sentry_sdk.init(dsn=None)
    rows.append(
        row(
            "record",
            "[internal] record_on_span on the benchmark's own span",
            t_internal,
            "raw span + record_exception",
            t_raw_rec,
        )
    )
    faultlens.shutdown()

    # -- suppressed by the rate limit vs recorded ------------------------------------------
    # The same error, round by round: recorded in full (rate_limit=0), and suppressed by the
    # default limit (100 per fingerprint per 60 s; the warm-up spends the burst, so every
    # timed call is suppressed: counted, tallied, no event).
    from faultlens.capture import dropped_counts

    def limited(burst: int) -> Any:
        def setup() -> None:
            faultlens.shutdown()
            faultlens.configure(service_name="bench", journal=False, rate_limit=burst)

        return setup

    before = dropped_counts().get("rate_limited", 0)
    t_fl_rec3, t_suppressed = compare(
        fl_recorded, fl_recorded, number=k, warmup=500, setups=(limited(0), limited(100))
    )
    suppressed = dropped_counts().get("rate_limited", 0) - before
    faultlens.shutdown()
    rows.append(
        row(
            "record",
            "suppressed by the rate limit (counted)",
            t_suppressed,
            "the same error recorded",
            t_fl_rec3,
            "<= 0.1x",
            t_suppressed <= 0.1 * t_fl_rec3,
            value=f"{suppressed:,} suppressed",
        )
    )
    rows.append(_logs_mode_row(tracer, k))
    return rows


def _logs_mode_row(tracer: Any, k: int) -> dict[str, Any]:
    """``exception_signal="logs"``: one log record per error (and, by default, the bridge's
    span event) against what the semantic conventions ask of an application: a span, the
    exception as a log record with ``Logger.emit(event_name=..., exception=...)`` in the
    span's context, status ERROR. Both emit into the same application ``LoggerProvider``
    (a simple processor, exporter discarding). The SDK formats the traceback itself whenever
    ``exception=`` is passed, so faultlens pays that as the anchor does, on top of its own
    classified attributes."""
    from opentelemetry import trace
    from opentelemetry._logs import SeverityNumber, set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        LogRecordExporter,
        LogRecordExportResult,
        SimpleLogRecordProcessor,
    )
    from opentelemetry.trace import Status, StatusCode

    import faultlens

    class Discard(LogRecordExporter):
        def export(self, batch: Any) -> LogRecordExportResult:
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(Discard()))
    set_logger_provider(lp)
    logger = lp.get_logger("bench")
    faultlens.configure(service_name="bench", journal=False, rate_limit=0, exception_signal="logs")
    recorded_fn = faultlens.instrument(work)

    def fl_logs() -> None:
        try:
            recorded_fn(17)
        except ValueError:
            pass

    def raw_logs() -> None:
        span = tracer.start_span("work")
        try:
            work(17)
        except ValueError as exc:
            logger.emit(
                event_name="exception",
                exception=exc,
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body=str(exc),
                context=trace.set_span_in_context(span),
            )
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            span.end()

    t_raw, t_fl = compare(raw_logs, fl_logs, number=k)
    faultlens.shutdown()
    return row(
        "record",
        "@instrument'ed function raising, logs mode (record + bridged event)",
        t_fl,
        "raw span + Logger.emit(exception=)",
        t_raw,
        "<= 1.0x",
        t_fl <= t_raw,
    )


class _NullTransport:
    """A sentry transport that drops envelopes: we time capture, not the network."""

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def capture_envelope(self, envelope: Any) -> None:
        pass

    def flush(self, timeout: float, callback: Any = None) -> None:
        pass

    def kill(self) -> None:
        pass

    def record_lost_event(self, *a: Any, **k: Any) -> None:
        pass

    def is_healthy(self) -> bool:
        return True

    def __del__(self) -> None:
        pass


if __name__ == "__main__":
    from pprint import pprint

    pprint(run(quick="--quick" in sys.argv))
