"""In-memory capture for testing your own error handling, plus resets for test isolation.

::

    def test_missing_workspace_is_classified():
        with faultlens.testing.capture() as cap:
            with pytest.raises(WorkspaceNotFound):
                load_workspace("/nope")
        assert cap.errors[0].info.code == "WORKSPACE_NOT_FOUND"
        assert cap.counter("faultlens.errors", code="WORKSPACE_NOT_FOUND") == 1

Also a pytest fixture, ``faultlens_capture``, available once faultlens is installed (the
``pytest11`` plugin ``faultlens._pytest_plugin``: this module never imports pytest).

This module imports the OpenTelemetry SDK (its in-memory exporters); ``import faultlens``
does not import it until ``faultlens.testing`` is first used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import resources, scrub
from ._logs import ExceptionSpanEventBridge, emitter_for
from ._options import EXCEPTION_SIGNALS
from ._setup import shutdown
from .capture import RecordedError, reset_rate_limiter
from .capture import reset as _reset_capture
from .capture._state import STATE  # the capture layer's runtime state, which capture() swaps
from .errors import reset as _reset_errors
from .resilience import SleepLog, no_sleep
from .resilience import reset as _reset_resilience

__all__ = [
    "Captured",
    "MetricPoint",
    "SleepLog",
    "capture",
    "no_sleep",
    "reset",
    "reset_otel_globals",
]


class MetricPoint:
    __slots__ = ("attributes", "name", "value")

    def __init__(self, name: str, attributes: dict[str, Any], value: Any) -> None:
        self.name = name
        self.attributes = attributes
        self.value = value

    def __repr__(self) -> str:
        return f"MetricPoint({self.name!r}, {self.attributes!r}, {self.value!r})"


class Captured:
    """What faultlens emitted inside a ``capture()`` block."""

    def __init__(
        self,
        exporter: InMemorySpanExporter,
        reader: InMemoryMetricReader,
        logs: InMemoryLogRecordExporter | None = None,
    ) -> None:
        self._exporter = exporter
        self._reader = reader
        self._logs = logs
        self.errors: list[RecordedError] = []

    @property
    def logs(self) -> list[Any]:
        """The log records emitted (``opentelemetry._logs.LogRecord``), when the block's
        exceptions signal is ``logs`` or ``logs/dup``; else empty."""
        if self._logs is None:
            return []
        return [r.log_record for r in self._logs.get_finished_logs()]

    @property
    def exception_logs(self) -> list[Any]:
        """The ``exception`` log records (what a logs backend would show)."""
        return [r for r in self.logs if r.event_name and r.event_name.endswith("exception")]

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans created by faultlens (errors-mode spans, traced spans)."""
        return list(self._exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matches = [s for s in self.spans if s.name == name]
        if len(matches) != 1:
            names = sorted({s.name for s in self.spans})
            raise AssertionError(
                f"expected one span named {name!r}, found {len(matches)} in {names}"
            )
        return matches[0]

    def events(self, name: str = "exception") -> list[tuple[ReadableSpan, Event]]:
        """``(span, event)`` pairs for every event with that name on the captured spans."""
        return [(s, e) for s in self.spans for e in s.events if e.name == name]

    @property
    def error_events(self) -> list[Event]:
        """The ``exception`` events on the captured spans (what Jaeger would show)."""
        return [e for _, e in self.events("exception")]

    @property
    def metrics(self) -> dict[str, list[MetricPoint]]:
        """Every metric point collected so far, by instrument name."""
        out: dict[str, list[MetricPoint]] = {}
        for p in self.metric_points(None):
            out.setdefault(p.name, []).append(p)
        return out

    def metric_points(self, name: str | None) -> list[MetricPoint]:
        """The points of one instrument (``None``: of all of them)."""
        data = self._reader.get_metrics_data()
        out: list[MetricPoint] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if name is not None and metric.name != name:
                        continue
                    for p in metric.data.data_points:
                        value = getattr(p, "value", None)
                        if value is None:
                            value = p  # histograms: the whole point (count, sum, buckets)
                        out.append(MetricPoint(metric.name, dict(p.attributes or {}), value))
        return out

    def counter(self, name: str, **labels: Any) -> float:
        """Sum of a counter's points whose attributes include ``labels``."""
        total = 0.0
        for p in self.metric_points(name):
            if all(p.attributes.get(k) == v for k, v in labels.items()):
                total += p.value
        return total

    def clear(self) -> None:
        self._exporter.clear()
        if self._logs is not None:
            self._logs.clear()
        self.errors.clear()


@contextmanager
def capture(
    *, exception_signal: str | None = None, exception_bridge: bool | None = None
) -> Iterator[Captured]:
    """Route everything faultlens records inside the block to memory (and only there).

    Errors are signalled as configured (``span`` when faultlens is not configured), or as
    ``exception_signal`` says: ``"logs"`` and ``"logs/dup"`` records land in
    ``Captured.logs``, and in ``logs`` mode the bridge copies them onto their spans unless
    ``exception_bridge=False``.
    """
    configured = getattr(STATE.settings, "exceptions", None)
    signal = exception_signal or (configured.signal if configured else "span")
    if signal not in EXCEPTION_SIGNALS:
        raise ValueError(
            f"exception_signal: expected one of {', '.join(EXCEPTION_SIGNALS)}, got {signal!r}"
        )
    bridge = (
        exception_bridge
        if exception_bridge is not None
        else bool(configured.bridge if configured else True)
    )
    event_name = configured.event_name if configured else "exception"
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    log_exporter = lp = emitter = None
    if signal != "span":
        log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        lp = LoggerProvider(shutdown_on_exit=False)
        if signal == "logs" and bridge:
            lp.add_log_record_processor(ExceptionSpanEventBridge(event_name))
        lp.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        emitter = emitter_for(lp.get_logger("faultlens"), event_name)
    cap = Captured(exporter, reader, log_exporter)
    saved = (
        STATE.tracer_provider,
        STATE.meter_provider,
        STATE.sinks,
        STATE.pinned,
        STATE.exception_logs,
        STATE.span_events,
    )
    STATE.tracer_provider = tp
    STATE.meter_provider = mp
    STATE.pinned = True  # configure() inside the block must not take the providers over
    STATE.sinks = (cap.errors.append,)
    STATE.exception_logs = emitter
    STATE.span_events = signal != "logs"
    reset_rate_limiter()
    STATE.bump()
    try:
        yield cap
    finally:
        (
            STATE.tracer_provider,
            STATE.meter_provider,
            STATE.sinks,
            STATE.pinned,
            STATE.exception_logs,
            STATE.span_events,
        ) = saved
        STATE.bump()
        tp.shutdown()
        mp.shutdown()
        if lp is not None:
            lp.shutdown()


def reset_otel_globals() -> None:
    """Unset the global OTel tracer/meter/logger providers so the next set_* call takes effect.

    OTel makes them set-once for applications; tests need them fresh. Uses the same private
    hooks as OpenTelemetry's own test utilities.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()
    del metrics  # imported for its side effect of loading the module
    from opentelemetry._logs import _internal as logs_internal

    logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()
    logs_internal._LOGGER_PROVIDER = None


def reset(*, otel_globals: bool = False) -> None:
    """Back to a fresh process: shut down, forget config, catalogs, counters and caches.

    Each layer forgets its own state in its own ``reset()``, the one place that knows it
    (from the top down: resilience, capture, resources and scrub, errors).
    """
    shutdown(timeout=2.0)
    integrations = sys.modules.get("faultlens.integrations")
    if integrations is not None:  # integrations switched on by install_detected(): off
        integrations.uninstall_detected()
    _reset_resilience()
    _reset_capture()
    resources.reset()
    scrub.set_current(None)
    _reset_errors()
    if otel_globals:
        reset_otel_globals()
