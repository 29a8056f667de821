"""The exporters and span processor faultlens builds for the providers it owns: they count
what they lose in ``faultlens.internal.dropped`` (``export_failed``, ``queue_full``), and
know what an export still under way holds, so that a shutdown that gives up on a collector
that never answers can count it.

A module of its own so that ``import faultlens`` does not import the OpenTelemetry SDK:
``configure()`` imports this when it builds providers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .capture import count_dropped, internal_error

__all__ = [
    "CountingBatchSpanProcessor",
    "CountingMetricExporter",
    "CountingSpanExporter",
    "takes_timeout",
]


def takes_timeout(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (a ``shutdown``) accepts ``timeout_millis``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "timeout_millis" or p.kind is p.VAR_KEYWORD for p in params)


class CountingSpanExporter(SpanExporter):
    """Counts spans an export failed to deliver as ``internal.dropped{reason=export_failed}``.

    Also knows how many spans an export still under way holds, so that a shutdown that
    gives up on a collector that never answers can count them (:meth:`abandon`).
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._in_flight = 0  # exports are serialised by the span processor
        self._abandoned = False

    def export(self, spans: Any) -> SpanExportResult:
        n = len(spans)
        self._in_flight = n
        try:
            try:
                result = self.inner.export(spans)
            except Exception as exc:
                internal_error("span export", exc)
                result = SpanExportResult.FAILURE
        finally:
            self._in_flight = 0
        if result is not SpanExportResult.SUCCESS and not self._abandoned:
            count_dropped("export_failed", n)
        return result

    def abandon(self) -> int:
        """Give up on the export under way: return how many spans it holds (counted by the
        caller), and do not count them a second time if it fails later."""
        self._abandoned = True
        return self._in_flight

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if takes_timeout(self.inner.shutdown):
            self.inner.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        else:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class CountingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self._in_flight = 0
        self._abandoned = False

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self._in_flight = 1
        try:
            try:
                result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as exc:
                internal_error("metric export", exc)
                result = MetricExportResult.FAILURE
        finally:
            self._in_flight = 0
        if result is not MetricExportResult.SUCCESS and not self._abandoned:
            count_dropped("export_failed")
        return result

    def abandon(self) -> int:
        """Give up on the export under way, if any: 1 (counted by the caller), else 0."""
        self._abandoned = True
        return self._in_flight

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """BatchSpanProcessor that counts the spans it drops when its queue is full."""

    def on_end(self, span: ReadableSpan) -> None:
        try:
            bp = self._batch_processor
            if not bp._shutdown and len(bp._queue) >= bp._max_queue_size:
                count_dropped("queue_full")
        except Exception:
            pass
        super().on_end(span)

    def pending(self) -> int:
        """Spans queued and not yet handed to the exporter."""
        try:
            return len(self._batch_processor._queue)
        except Exception:
            return 0

    def shutdown_within(self, timeout_millis: float) -> None:
        """Shut down, waiting at most ``timeout_millis`` for the export under way (the
        processor's own ``shutdown()`` always waits up to 30 s)."""
        try:
            shutdown: Any = self._batch_processor.shutdown
        except AttributeError:  # pragma: no cover - an SDK without the shared processor
            self.shutdown()  # type: ignore[no-untyped-call]
            return
        shutdown(timeout_millis=max(int(timeout_millis), 0))
