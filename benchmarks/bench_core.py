"""Core instrumentation costs against their anchors, measured in one process.

- @instrument errors mode, success path   vs a wrapt pass-through   (goal <= 2x)
- @instrument traced mode                  vs a raw OTel span        (goal <= 1.1x)
- recording one classified error           vs Span.record_exception  (goal <= 1.0x)
                                           vs sentry_sdk.capture_exception (goal >= 4x cheaper)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import per_call, row


def _providers() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(Discard()))
    trace.set_tracer_provider(tp)
    return tp


def run(quick: bool = False) -> list[dict[str, Any]]:
    import wrapt
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import faultlens

    tp = _providers()
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    faultlens.configure(service_name="bench", journal=False)
    tracer = tp.get_tracer("bench")
    n = 20_000 if quick else 200_000
    rows = []

    def plain(x: int) -> int:
        return x + 1

    @wrapt.decorator
    def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    wrapt_fn = passthrough(plain)
    errors_fn = faultlens.instrument(plain)
    t_wrapt = per_call(lambda: wrapt_fn(1), number=n)
    t_err = per_call(lambda: errors_fn(1), number=n)
    rows.append(
        row(
            "instrument",
            "errors mode, success",
            t_err,
            "wrapt pass-through",
            t_wrapt,
            "<= 2x",
            t_err <= 2 * t_wrapt,
        )
    )

    traced_fn = faultlens.instrument(mode="traced", name="op")(plain)

    def raw_span() -> int:
        with tracer.start_as_current_span("op"):
            return plain(1)

    m = n // 10
    t_raw = per_call(raw_span, number=m)
    t_traced = per_call(lambda: traced_fn(1), number=m)
    rows.append(
        row(
            "instrument",
            "traced mode, success",
            t_traced,
            "raw OTel span",
            t_raw,
            "<= 1.1x",
            t_traced <= 1.1 * t_raw,
        )
    )

    def nested_error() -> BaseException:
        def level3() -> None:
            raise ValueError("bad value 17 for 'job-42'")

        def level2() -> None:
            level3()

        try:
            level2()
        except ValueError as exc:
            return exc
        raise AssertionError

    k = 2_000 if quick else 20_000
    faultlens.shutdown()
    faultlens.configure(service_name="bench", journal=False, rate_limit=0)

    def raw_record() -> None:
        exc = nested_error()
        span = tracer.start_span("op")
        span.record_exception(exc)
        span.end()

    def fl_record() -> None:
        exc = nested_error()
        span = tracer.start_span("op")
        from faultlens.capture import record_on_span

        record_on_span(exc, span)
        span.end()

    t_raw_rec = per_call(raw_record, number=k)
    t_fl_rec = per_call(fl_record, number=k)
    rows.append(
        row(
            "record",
            "classified error (code, fingerprint, resources)",
            t_fl_rec,
            "Span.record_exception",
            t_raw_rec,
            "<= 1.0x",
            t_fl_rec <= t_raw_rec,
        )
    )
    try:
        import sentry_sdk

        sentry_sdk.init(
            dsn="http://public@127.0.0.1:9/1", transport=_NullTransport, default_integrations=False
        )

        def sentry_record() -> None:
            sentry_sdk.capture_exception(nested_error())

        t_sentry = per_call(sentry_record, number=k)
        rows.append(
            row(
                "record",
                "classified error",
                t_fl_rec,
                "sentry_sdk.capture_exception",
                t_sentry,
                ">= 4x cheaper (ratio <= 0.25)",
                t_fl_rec * 4 <= t_sentry,
            )
        )
    except ImportError:
        pass
    faultlens.shutdown()
    return rows


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
