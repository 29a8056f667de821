"""Exceptions as log records: the logger provider, its exporter, and the bridge that keeps
them visible in a trace UI.

``configure(exception_signal="logs" | "logs/dup")`` (or ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``)
makes the recorder emit each error as an ``exception`` log record (see
``capture._exception_logs``). The records go through

- the application's ``LoggerProvider`` when it set one (``opentelemetry-instrument`` with a
  logs exporter, or its own code): its pipeline is its own, faultlens only adds the bridge;
- else one faultlens owns, built like its tracer provider: the same resource, an OTLP log
  exporter to the same collector (``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` if set), a batch
  processor, losses counted in ``faultlens.internal.dropped``, flushed and shut down within
  the same deadlines. It is also made the global provider when there is none, as the
  tracer provider is.

The bridge (``logs`` mode only, on by default) is the semantic conventions' *event to span
event bridge*: a log record processor that copies an exception record back onto its span as
a span event when the event name matches, the record's trace and span ids are the span's,
and the span is still recording. Jaeger reads only span events, so without it a ``logs``
mode user would lose exceptions from the trace view. In ``logs/dup`` the recorder adds the
span event itself, so the bridge stays out (one span event per error in every mode).

A module of its own: it imports the SDK's logs package, which only these modes need.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import (
    Logger as SdkLogger,
)
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)

from ._config import Settings
from ._exporters import CountingExport
from ._version import __version__
from .capture import (
    ExceptionLogEmitter,
    guard_otel_handlers,
    internal_error,
    set_exception_emitter,
)
from .capture._state import STATE
from .errors import ConfigError

__all__ = [
    "CountingLogExporter",
    "ExceptionSpanEventBridge",
    "app_logger_provider",
    "build_logger_provider",
    "emitter_for",
    "install_exception_logs",
    "pending",
    "renew_in_child",
    "require_logs_support",
    "set_global_logger_provider",
    "uninstall_exception_logs",
]

_log = logging.getLogger("faultlens")


class ExceptionSpanEventBridge(LogRecordProcessor):
    """Copies exception log records onto their span as span events (see the module doc).

    Runs synchronously inside ``Logger.emit``: the recorder emits while the failing span is
    still open, so the span is found recording in the record's context. A record whose span
    has ended, or that names another span, is left alone (the spec's rules), and so is one
    with another event name.
    """

    def __init__(self, event_name: str = "exception") -> None:
        self.event_name = event_name

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            record = log_record.log_record
            if record.event_name != self.event_name or record.context is None:
                return
            span = trace.get_current_span(record.context)
            ctx = span.get_span_context()
            if (
                not span.is_recording()
                or ctx.trace_id != record.trace_id
                or ctx.span_id != record.span_id
            ):
                return
            span.add_event(
                "exception",  # the span event's name is the contract's, whatever the domain
                dict(record.attributes or {}),
                timestamp=record.timestamp,
            )
        except Exception as e:
            internal_error("exception span event bridge", e)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class CountingLogExporter(CountingExport, LogRecordExporter):
    """Log records, counted like spans (``_exporters.CountingExport``)."""

    _success = LogRecordExportResult.SUCCESS
    _failure = LogRecordExportResult.FAILURE
    _where = "log export"

    def __init__(self, inner: LogRecordExporter, factory: Any = None) -> None:
        self._init_counting(inner, factory)

    def export(self, batch: Any) -> LogRecordExportResult:
        return self._counted(len(batch), lambda: self.inner.export(batch))  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def app_logger_provider() -> Any | None:
    """The logger provider the application set, or None if it set none."""
    lp = get_logger_provider()
    if type(lp).__name__ in ("ProxyLoggerProvider", "NoOpLoggerProvider"):
        return None
    return lp


def build_logger_provider(settings: Settings, resource: Any, exporter: Any) -> LoggerProvider:
    """A logger provider faultlens owns: the same resource as its tracer provider, the
    bridge first (it must run while the span is open, before any batching), then the
    exporter behind a batch processor."""
    lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
    lp._faultlens_owned = True  # type: ignore[attr-defined]
    lp._faultlens_logs = True  # type: ignore[attr-defined]
    parts: list[Any] = []
    if exporter is not None:
        counting = exporter if isinstance(exporter, CountingLogExporter) else None
        processor = BatchLogRecordProcessor(
            exporter, export_timeout_millis=int(settings.exporter.timeout_for("logs") * 1000)
        )
        lp.add_log_record_processor(processor)
        parts += [processor, *([counting] if counting else [])]
    lp._faultlens_parts = tuple(parts)  # type: ignore[attr-defined]
    return lp


def _bridge_of(lp: Any) -> ExceptionSpanEventBridge | None:
    return getattr(lp, "_faultlens_bridge", None)


def _ensure_bridge(lp: Any, settings: Settings) -> None:
    """The bridge on ``lp`` in ``logs`` mode (once per provider; its event name follows the
    latest configure()); in other modes, or opted out, an existing one is disarmed. A
    processor cannot be removed from an SDK provider, so disarming empties its name."""
    want = settings.exceptions.signal == "logs" and settings.exceptions.bridge
    bridge = _bridge_of(lp)
    if bridge is None and want:
        bridge = ExceptionSpanEventBridge(settings.exceptions.event_name)
        add = getattr(lp, "add_log_record_processor", None)
        if add is None:
            _log.warning(
                "faultlens: the application's logger provider %r takes no processors; "
                "exception log records will not be copied onto their spans",
                lp,
            )
            return
        add(bridge)
        lp._faultlens_bridge = bridge
    if bridge is not None:
        bridge.event_name = settings.exceptions.event_name if want else ""


def install_exception_logs(settings: Settings, lp: Any | None) -> None:
    """Point the recorder at ``lp`` (or, with None, back at span events only). A provider
    given in ``span`` mode only has its bridge disarmed (an earlier configure() armed it)."""
    if STATE.pinned:
        return  # a faultlens.testing.capture() block routes the records itself
    ex = settings.exceptions
    if lp is not None:
        _ensure_bridge(lp, settings)
    if lp is None or not ex.log_records:
        set_exception_emitter(None, True)
        return
    set_exception_emitter(
        emitter_for(lp.get_logger("faultlens", __version__), ex.event_name), ex.span_events
    )
    guard_otel_handlers(logging.getLogger())  # one record per logged exception


def require_logs_support() -> None:
    """Exception log records need ``event_name`` and ``exception`` on the API's log record
    (opentelemetry-api/-sdk 1.42 and later); faultlens itself accepts 1.30 on. Said at
    ``configure()``, not found out at the first error."""
    import inspect

    from opentelemetry._logs import LogRecord

    params = inspect.signature(LogRecord.__init__).parameters
    if "exception" not in params or "event_name" not in params:
        from importlib.metadata import version

        raise ConfigError(
            "exception_signal 'logs' and 'logs/dup' need opentelemetry-api and "
            f"opentelemetry-sdk 1.42 or later (installed: {version('opentelemetry-sdk')}); "
            "upgrade them (pip install -U opentelemetry-sdk) or use exception_signal='span'"
        )


def emitter_for(logger: Any, event_name: str) -> ExceptionLogEmitter:
    """The recorder's emitter into ``logger``: with the SDK's own ``Logger``, records go to
    the provider's processors the way ``Logger.emit`` sends them (enabled check, the
    logger's resource, scope and limits, its ``emit_log`` metric) minus the traceback the SDK
    would format again for attributes faultlens already set (``capture._exception_logs``).
    Any other logger, or an SDK whose ``Logger`` lacks the expected parts, gets the public
    ``emit``; tests check that both paths give the same record."""
    direct = None
    if type(logger) is SdkLogger and all(
        hasattr(logger, name)
        for name in (
            "_is_enabled",
            "_resource",
            "_instrumentation_scope",
            "_log_record_limits",
            "_logger_metrics",
            "_multi_log_record_processor",
        )
    ):

        def direct(record: Any) -> None:
            if not logger._is_enabled():
                return
            writable = ReadWriteLogRecord._from_api_log_record(
                record=record,
                resource=logger._resource,  # read each time: a forked child renews it
                instrumentation_scope=logger._instrumentation_scope,
                limits=logger._log_record_limits,
            )
            logger._logger_metrics.emit_log()
            logger._multi_log_record_processor.on_emit(writable)

    return ExceptionLogEmitter(logger, event_name, direct)


def uninstall_exception_logs() -> None:
    if not STATE.pinned:
        set_exception_emitter(None, True)


def set_global_logger_provider(lp: Any) -> None:
    """Make ``lp`` the global provider (set-once in the API; only when none was set)."""
    set_logger_provider(lp)


def pending(lp: Any) -> int:
    """What a faultlens-owned provider still holds undelivered: records queued in its batch
    processor and those of an export under way (for a shutdown that gives up)."""
    lost = 0
    for part in getattr(lp, "_faultlens_parts", ()):
        if isinstance(part, CountingLogExporter):
            lost += part.abandon()
        elif isinstance(part, BatchLogRecordProcessor):
            queue = getattr(getattr(part, "_batch_processor", None), "_queue", None)
            lost += len(queue) if queue is not None else 0
    return lost


def renew_in_child(lp: Any, identity: Any) -> None:
    """A faultlens-owned logger provider inherited through fork becomes the child's: the
    resource's instance identity, the exporter's connection (built anew on first export).
    The SDK's batch processor clears its queue and restarts its thread in the child itself
    (its own at-fork hook)."""
    update = getattr(lp, "_update_resource", None)
    if update is not None:  # also re-points the loggers it made, the recorder's included
        update(identity)  # (the SDK's own fork hook set another instance id than traces')
    else:  # pragma: no cover - older SDKs
        lp._resource = lp.resource.merge(identity)
    for part in getattr(lp, "_faultlens_parts", ()):
        if isinstance(part, CountingLogExporter):
            part.after_fork()
