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

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import resources, scrub
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

    def __init__(self, exporter: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self._exporter = exporter
        self._reader = reader
        self.errors: list[RecordedError] = []

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
        self.errors.clear()


@contextmanager
def capture() -> Iterator[Captured]:
    """Route everything faultlens records inside the block to memory (and only there)."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    cap = Captured(exporter, reader)
    saved = (STATE.tracer_provider, STATE.meter_provider, STATE.sinks, STATE.pinned)
    STATE.tracer_provider = tp
    STATE.meter_provider = mp
    STATE.pinned = True  # configure() inside the block must not take the providers over
    STATE.sinks = (cap.errors.append,)
    reset_rate_limiter()
    STATE.bump()
    try:
        yield cap
    finally:
        STATE.tracer_provider, STATE.meter_provider, STATE.sinks, STATE.pinned = saved
        STATE.bump()
        tp.shutdown()
        mp.shutdown()


def reset_otel_globals() -> None:
    """Unset the global OTel tracer/meter providers so the next set_* call takes effect.

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
