"""The exporters and span processor faultlens builds for the providers it owns: they count
what they lose in ``faultlens.internal.dropped`` (``export_failed``, ``queue_full``), and
know what an export still under way holds, so that a shutdown that gives up on a collector
that never answers can count it.

A module of its own so that ``import faultlens`` does not import the OpenTelemetry SDK:
``configure()`` imports this when it builds providers.
"""

from __future__ import annotations

import inspect
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .capture import count_dropped, internal_error

__all__ = [
    "CountingBatchSpanProcessor",
    "CountingExport",
    "CountingMetricExporter",
    "CountingSpanExporter",
    "child_identity",
    "renew_meter_provider_in_child",
    "renew_tracer_provider_in_child",
    "renewed_exporter",
    "takes_timeout",
]

# Exporters a forked child stopped using (they hold the parent's connections). Kept
# referenced, never shut down: closing or collecting them in the child would act on the
# parent's gRPC channel or HTTP connection.
_forked_exporters: list[Any] = []


def takes_timeout(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (a ``shutdown``) accepts ``timeout_millis``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "timeout_millis" or p.kind is p.VAR_KEYWORD for p in params)


class CountingExport:
    """What every counting exporter does around its inner exporter's ``export``: count what
    a failed export did not deliver as ``internal.dropped{reason=export_failed}``, know what
    an export under way holds, so that a shutdown that gives up on a collector that never
    answers can count it (:meth:`abandon`), and in a forked child build a new inner exporter
    on the first export (:meth:`after_fork`)."""

    _success: Any  # the signal's export result enum member for success
    _failure: Any
    _where = "export"  # the internal error's label

    def _init_counting(self, inner: Any, factory: Callable[[], Any] | None) -> None:
        self.inner = inner
        self._factory = factory  # builds an equal exporter: used in a forked child
        self._in_flight = 0  # exports are serialised by the processor or reader
        self._abandoned = False
        self._renew = False

    def after_fork(self) -> None:
        """In a forked child: the inherited exporter holds the parent's connection (a gRPC
        channel is not fork-safe; an HTTP keep-alive socket would be shared by both
        processes). The child's first export builds its own; the old one is abandoned."""
        self._in_flight = 0
        self._abandoned = False
        self._renew = self._factory is not None

    def _counted(self, n: int, export: Callable[[], Any]) -> Any:
        if self._renew:
            self.inner = renewed_exporter(self.inner, self._factory)
            self._renew = False
        self._in_flight = n
        try:
            try:
                result = export()
            except Exception as exc:
                internal_error(self._where, exc)
                result = self._failure
        finally:
            self._in_flight = 0
        if result is not self._success and not self._abandoned:
            count_dropped("export_failed", n)
        return result

    def abandon(self) -> int:
        """Give up on the export under way: return how many items it holds (counted by the
        caller), and do not count them a second time if it fails later."""
        self._abandoned = True
        return self._in_flight


class CountingSpanExporter(CountingExport, SpanExporter):
    """Spans, counted (see :class:`CountingExport`)."""

    _success = SpanExportResult.SUCCESS
    _failure = SpanExportResult.FAILURE
    _where = "span export"

    def __init__(
        self, inner: SpanExporter, factory: Callable[[], SpanExporter | None] | None = None
    ) -> None:
        self._init_counting(inner, factory)

    def export(self, spans: Any) -> SpanExportResult:
        return self._counted(len(spans), lambda: self.inner.export(spans))  # type: ignore[no-any-return]

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if takes_timeout(self.inner.shutdown):
            self.inner.shutdown(timeout_millis=timeout_millis)
        else:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class CountingMetricExporter(CountingExport, MetricExporter):
    """Metric exports, counted one per failed export (see :class:`CountingExport`)."""

    _success = MetricExportResult.SUCCESS
    _failure = MetricExportResult.FAILURE
    _where = "metric export"

    def __init__(
        self, inner: MetricExporter, factory: Callable[[], MetricExporter | None] | None = None
    ) -> None:
        MetricExporter.__init__(
            self,
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._init_counting(inner, factory)

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return self._counted(  # type: ignore[no-any-return]
            1, lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        )

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

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued now, in full batches, and return: the SDK's own flush
        exports until the queue is empty, so during a storm on a slow machine (an export
        slower than the failures arrive) it chased each new span with an export of its own,
        one request per failure. Spans that arrive meanwhile wait for the next flush or the
        schedule."""
        try:
            from opentelemetry.sdk._shared_internal import BatchExportStrategy

            bp = self._batch_processor
            rounds = -(-len(bp._queue) // bp._max_export_batch_size)  # ceil
            export = bp._export
        except Exception:  # pragma: no cover - an SDK without the shared processor
            return bool(super().force_flush(timeout_millis))
        if bp._shutdown:
            return False
        for _ in range(rounds):  # each exports a batch (more while full ones wait)
            export(BatchExportStrategy.EXPORT_AT_LEAST_ONE_BATCH)
        return True

    def forget_queued(self) -> None:
        """In a forked child: the spans the parent had queued are the parent's to export."""
        try:
            self._batch_processor._queue.clear()
        except Exception:
            pass

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


def renewed_exporter(old: Any, factory: Callable[[], Any] | None) -> Any:
    """A new exporter from ``factory`` in place of ``old`` (inherited through fork); ``old``
    if one cannot be built (counted as an internal error: the child still exports)."""
    try:
        new = factory() if factory is not None else None
    except Exception as exc:
        internal_error("exporter after fork", exc)
        new = None
    if new is None:
        return old
    _forked_exporters.append(old)
    return new


# -- after fork: a child is a new instance ------------------------------------------------------


def child_identity() -> Resource:
    """The resource attributes that name this process: a new ``service.instance.id`` (the
    collector's Prometheus exporter makes it the ``instance`` label, so each process has
    its own series) and this process's pid."""
    return Resource(
        {
            "service.instance.id": str(uuid.uuid4()),
            "process.pid": os.getpid(),
            "process.parent_pid": os.getppid(),
        }
    )


def renew_tracer_provider_in_child(tp: Any, identity: Resource) -> None:
    """Make a faultlens-owned TracerProvider inherited through fork the child's own.

    The provider object stays (it is the global one, which is set-once, and the tracers the
    application holds are bound to it); what is the parent's is renewed: the resource's
    instance identity, the exporters' connections (built anew on the first export), the
    span processor's queue and thread. The SDK's ``BatchSpanProcessor`` clears its queue
    and starts a new worker thread in the child itself (its own at-fork hook): spans the
    parent had queued are the parent's to export, never exported a second time here; the
    queue is cleared here too, so that holds whatever order the fork hooks run in.
    """
    if hasattr(tp, "_tracers_lock"):
        tp._tracers_lock = threading.Lock()
    tracers = getattr(tp, "_tracers", None)
    update = getattr(tp, "_update_resource", None)
    if update is not None:
        update(identity)  # also re-points the tracers it made at the new resource
    else:  # pragma: no cover - older SDKs: the resource is copied onto each tracer
        tp._resource = tp.resource.merge(identity)
        for tracer in (tracers or {}).values():
            tracer.resource = tp._resource
    for part in getattr(tp, "_faultlens_parts", ()):
        if isinstance(part, CountingSpanExporter):
            part.after_fork()
        elif isinstance(part, CountingBatchSpanProcessor):
            part.forget_queued()


def renew_meter_provider_in_child(mp: Any, identity: Resource) -> None:
    """Make a faultlens-owned MeterProvider inherited through fork the child's own.

    The SDK keeps every instrument's aggregation (cumulative sums, histograms) in the
    provider's storage, which fork copies: unrenewed, the child's reader (the SDK restarts
    its thread in the child) would export the parent's totals again under the child's
    instance id, and a ``sum by (...)`` over instances would count them twice. Here the
    storage starts empty, so the child reports only what it measures itself, from the
    moment it was forked; the instruments and observable callbacks registered stay (the
    application's included), the resource gets the child's identity, the exporters their
    own connections, and the reader a new export lock (the parent's export thread may
    have held it at fork time: the child's reader would wait on it forever). Nothing the
    parent collected is exported by the child, and nothing is flushed or joined.
    """
    for name in ("_lock", "_meter_lock"):
        if hasattr(mp, name):
            setattr(mp, name, threading.Lock())
    consumer = mp._measurement_consumer
    consumer._lock = threading.Lock()
    for storage in consumer._reader_storages.values():
        storage._lock = threading.RLock()
        storage._instrument_view_instrument_matches = {}
    config = mp._sdk_config
    object.__setattr__(config, "resource", config.resource.merge(identity))  # frozen in some SDKs
    for reader in getattr(mp, "_metric_readers", ()):
        if hasattr(reader, "_export_lock"):
            reader._export_lock = threading.Lock()
        if hasattr(reader, "_lock"):
            reader._lock = threading.RLock()
        exporter = getattr(reader, "_exporter", None)
        if isinstance(exporter, CountingMetricExporter):
            exporter.after_fork()
