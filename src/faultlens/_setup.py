"""configure()/shutdown(): providers, exporters, journal and limits, wired once.

The application's own OTel setup always wins: a tracer or meter provider it already set is
reused, never replaced, and faultlens only adds what it owns (its sinks, its limits). When
nothing is set, faultlens creates SDK providers with its resource and exporters, installs
them globally and owns their shutdown (at exit too).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from . import scrub
from ._config import Settings, load_settings
from ._version import __version__
from .capture import STATE, Limits, Processor, count_dropped, internal_error
from .capture._record import reset_rate_limiter
from .errors import ConfigError, catalog

__all__ = [
    "bootstrap_configure",
    "configure",
    "current_settings",
    "flush",
    "is_configured",
    "shutdown",
]

_log = logging.getLogger("faultlens")
_lock = threading.RLock()


@dataclass
class _Runtime:
    settings: Settings
    args: dict[str, Any]
    tracer_provider: TracerProvider | None = None  # only the ones faultlens created
    meter_provider: MeterProvider | None = None
    components: list[Any] = field(default_factory=list)  # things with .shutdown(timeout)
    bootstrap: bool = False  # configured by `faultlens run`; the app's own configure() wins
    retired: list[Any] = field(default_factory=list)  # earlier providers still serving spans


_runtime: _Runtime | None = None
_atexit_registered = False


# -- exporters that count what they lose ------------------------------------------------------


class CountingSpanExporter(SpanExporter):
    """Counts spans an export failed to deliver as ``internal.dropped{reason=export_failed}``."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Any) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            internal_error("span export", exc)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            count_dropped("export_failed", len(spans))
        return result

    def shutdown(self) -> None:
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

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            internal_error("metric export", exc)
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            count_dropped("export_failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """BatchSpanProcessor that counts the spans it drops when its queue is full."""

    def on_end(self, span: ReadableSpan) -> None:
        try:
            bp = self._batch_processor
            if len(bp._queue) >= bp._max_queue_size:
                count_dropped("queue_full")
        except Exception:
            pass
        super().on_end(span)


def _signal_url(settings: Settings, signal: str) -> str | None:
    """Where one signal goes: its own OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT verbatim, else the
    shared endpoint (with the /v1/<signal> path for OTLP/HTTP); None when neither is set."""
    ex = settings.exporter
    own = ex.traces_endpoint if signal == "traces" else ex.metrics_endpoint
    if own:
        return own
    base = (ex.endpoint or "").rstrip("/")
    if not base:
        return None
    return base if ex.protocol == "grpc" else f"{base}/v1/{signal}"


def _exporter_args(settings: Settings, url: str, signal: str) -> dict[str, Any]:
    ex = settings.exporter
    args: dict[str, Any] = {
        "endpoint": url,
        "headers": dict(ex.headers) or None,
        "timeout": ex.timeout_for(signal),  # seconds, a float: 0.5 must not become 0
    }
    if ex.protocol == "grpc":
        args["insecure"] = ex.insecure if ex.insecure is not None else url.startswith("http://")
    return args


def _otlp_span_exporter(settings: Settings) -> SpanExporter | None:
    url = _signal_url(settings, "traces")
    if url is None:
        return None
    if settings.exporter.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return OTLPSpanExporter(**_exporter_args(settings, url, "traces"))


def _otlp_metric_exporter(settings: Settings) -> MetricExporter | None:
    url = _signal_url(settings, "metrics")
    if url is None:
        return None
    if settings.exporter.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    return OTLPMetricExporter(**_exporter_args(settings, url, "metrics"))


# Process attributes that may carry secrets passed on the command line.
_UNSAFE_RESOURCE_KEYS = ("process.command_args", "process.command_line", "process.command")


def build_resource(settings: Settings) -> Resource:
    from opentelemetry.sdk.resources import (
        OsResourceDetector,
        ProcessResourceDetector,
        _HostResourceDetector,
        get_aggregated_resources,
    )

    try:
        detected = get_aggregated_resources(
            [ProcessResourceDetector(), OsResourceDetector(), _HostResourceDetector()], timeout=2
        )
        base = {k: v for k, v in detected.attributes.items() if k not in _UNSAFE_RESOURCE_KEYS}
    except Exception:
        base = {}
    attrs: dict[str, Any] = dict(base)
    attrs.update(settings.resource_attributes)
    attrs["service.name"] = settings.service_name
    if settings.service_version:
        attrs["service.version"] = settings.service_version
    if settings.environment:
        attrs["deployment.environment.name"] = settings.environment
    attrs["telemetry.distro.name"] = "faultlens"
    attrs["telemetry.distro.version"] = __version__
    scrubber = scrub.current()
    clean = {k: scrubber.text(v) if isinstance(v, str) else v for k, v in attrs.items()}
    return Resource.create(clean)


def _app_tracer_provider() -> Any | None:
    """The tracer provider the application set, or None if it set none."""
    tp = trace.get_tracer_provider()
    if isinstance(tp, trace.ProxyTracerProvider) or type(tp).__name__ == "ProxyTracerProvider":
        return None
    return tp


def _app_meter_provider() -> Any | None:
    mp = metrics.get_meter_provider()
    if type(mp).__name__ in ("_ProxyMeterProvider", "ProxyMeterProvider"):
        return None
    return mp


def _apply_capture_settings(settings: Settings) -> None:
    c = settings.capture
    STATE.limits = Limits(
        max_message=c.max_message,
        max_stacktrace=c.max_stacktrace,
        rate_limit_burst=c.rate_limit_burst,
        rate_limit_window=c.rate_limit_window,
        resources=c.resources,
    )
    STATE.service_name = settings.service_name
    STATE.service_version = settings.service_version
    STATE.settings = settings
    STATE.enabled = settings.enabled
    reset_rate_limiter()
    if settings.scrub_keys or settings.scrub_patterns:
        scrub.set_current(
            scrub.Scrubber(extra_keys=settings.scrub_keys, extra_patterns=settings.scrub_patterns)
        )
    else:
        scrub.set_current(None)
    logging.getLogger("faultlens").setLevel(settings.error_handling.log_level)


def configure(
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    exporter: str | None = None,
    journal: bool | str | None = None,
    journal_path: str | None = None,
    auto_modules: list[str] | tuple[str, ...] | None = None,
    catalogs: list[str] | tuple[str, ...] | None = None,
    config_file: str | None = None,
    enabled: bool | None = None,
    resource_attributes: dict[str, str] | None = None,
    rate_limit: int | None = None,
    capture_resources: bool | None = None,
    jaeger_url: str | None = None,
    metrics_interval: float | None = None,
    export_timeout: float | None = None,
    processors: Sequence[Processor] | None = None,
) -> Settings:
    """Set faultlens up: arguments, then FAULTLENS_*/OTEL_* variables, then faultlens.yaml.

    Safe to call twice: the same arguments again change nothing; different ones are refused
    with a ConfigError until ``shutdown()`` (exporters cannot be swapped under running code).
    ``processors`` see each error event before it is emitted and may enrich, redact or drop
    it (see ``faultlens.ErrorEvent``). Returns the resolved Settings.
    """
    global _runtime
    args = {k: v for k, v in locals().items() if v is not None and k != "config_file"}
    with _lock:
        previous = _runtime
        if previous is not None:
            same_file = config_file in (None, previous.settings.config_file)
            if previous.args == args and same_file:
                return previous.settings
            if not previous.bootstrap:
                raise ConfigError(
                    "faultlens is already configured with different options; call "
                    "faultlens.shutdown() first to reconfigure",
                    key="configure()",
                )
        return _configure_locked(args, config_file, previous)


def _provider_key(settings: Settings) -> tuple[Any, ...]:
    """What a provider is built from: when it is unchanged, a provider can be kept."""
    return (
        settings.service_name,
        settings.service_version,
        settings.environment,
        tuple(sorted(settings.resource_attributes.items())),
        settings.exporter,
    )


def _configure_locked(
    args: dict[str, Any], config_file: str | None, previous: _Runtime | None
) -> Settings:
    global _runtime, _atexit_registered
    settings = load_settings(args, config_file=config_file, known_categories=catalog.categories)
    for path in settings.catalogs:
        catalog.load(path)
    procs = tuple(args.get("processors") or ())
    for i, proc in enumerate(procs):
        if not callable(proc):
            raise ConfigError(
                f"processors[{i}] is {type(proc).__name__}, not a callable taking an "
                "ErrorEvent and returning it (or None to drop it)",
                key="processors",
            )
    rt = _Runtime(settings=settings, args=args)
    if previous is not None:
        # `faultlens run` configured first from the environment; the application's own
        # configure() call now takes over. Its components restart with the new settings;
        # providers are kept when nothing they are built from changed. Otherwise the new
        # ones carry faultlens's signals and the old ones keep serving tracers the app
        # already holds until shutdown.
        _log.info("faultlens: applying the application's configure() over `faultlens run`'s")
        _stop_components(previous, timeout=5.0)
        if _provider_key(previous.settings) == _provider_key(settings):
            rt.tracer_provider = previous.tracer_provider
            rt.meter_provider = previous.meter_provider
            rt.retired = previous.retired
        else:
            rt.retired = [
                *previous.retired,
                *(p for p in (previous.tracer_provider, previous.meter_provider) if p is not None),
            ]
    _apply_capture_settings(settings)
    STATE.processors = procs
    if settings.sdk_disabled:
        _log.info("faultlens: OTEL_SDK_DISABLED is set; recording through no-op providers")
    else:
        if rt.tracer_provider is None and rt.meter_provider is None:
            _install_providers(rt)
        _start_components(rt)
    _runtime = rt
    if not _atexit_registered:
        atexit.register(_shutdown_at_exit)
        _atexit_registered = True
    return settings


def bootstrap_configure() -> Settings:
    """configure() from the environment for `faultlens run`: provisional, so that an
    application calling configure() itself gets its own options instead of an error."""
    settings = configure()
    with _lock:
        if _runtime is not None:
            _runtime.bootstrap = True
    return settings


def _install_providers(rt: _Runtime) -> None:
    settings = rt.settings
    active = settings.exporter.active
    resource = None
    app_tp = _app_tracer_provider()
    if app_tp is None or getattr(app_tp, "_faultlens_owned", False):
        resource = build_resource(settings)
        tp = TracerProvider(resource=resource)
        tp._faultlens_owned = True  # type: ignore[attr-defined]
        span_exporter = _otlp_span_exporter(settings) if active == "otlp" else None
        if span_exporter is not None:
            tp.add_span_processor(
                CountingBatchSpanProcessor(
                    CountingSpanExporter(span_exporter),
                    export_timeout_millis=int(settings.exporter.timeout * 1000),
                )
            )
        elif active == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            tp.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        rt.tracer_provider = tp
        if app_tp is None:
            trace.set_tracer_provider(tp)
        if not STATE.pinned:  # a testing.capture() block keeps its in-memory providers
            STATE.tracer_provider = tp  # faultlens records into it even if the global is stale
    else:
        _log.debug("faultlens: reusing the application's tracer provider %r", app_tp)

    app_mp = _app_meter_provider()
    if app_mp is None or getattr(app_mp, "_faultlens_owned", False):
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers: list[Any] = []
        interval = int(settings.exporter.metrics_interval * 1000)
        metric_exporter = _otlp_metric_exporter(settings) if active == "otlp" else None
        if metric_exporter is not None:
            readers.append(
                PeriodicExportingMetricReader(
                    CountingMetricExporter(metric_exporter),
                    export_interval_millis=interval,
                    export_timeout_millis=int(settings.exporter.timeout * 1000),
                )
            )
        elif active == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            readers.append(
                PeriodicExportingMetricReader(
                    ConsoleMetricExporter(), export_interval_millis=interval
                )
            )
        mp = MeterProvider(resource=resource or build_resource(settings), metric_readers=readers)
        mp._faultlens_owned = True  # type: ignore[attr-defined]
        rt.meter_provider = mp
        if app_mp is None:
            metrics.set_meter_provider(mp)
        if not STATE.pinned:
            STATE.meter_provider = mp
    STATE.bump()


def _start_components(rt: _Runtime) -> None:
    settings = rt.settings
    if settings.journal.active(settings.exporter.active != "none"):
        try:
            from .journal import start_journal
        except ImportError:  # pragma: no cover - the journal ships with the package
            return
        rt.components.append(start_journal(settings))


def is_configured() -> bool:
    return _runtime is not None


def current_settings() -> Settings | None:
    return _runtime.settings if _runtime is not None else None


def _stop_components(rt: _Runtime, timeout: float) -> None:
    for comp in reversed(rt.components):
        try:
            comp.shutdown(timeout)
        except Exception as exc:
            internal_error("shutdown component", exc)
    rt.components.clear()


def flush(timeout: float = 5.0) -> bool:
    """Push everything buffered (journal, spans, metrics) out now, without stopping.

    For the moments a process may end abruptly: an uncaught exception in a thread, a
    SIGTERM handler, the end of a batch step. Never raises; False if something timed out.
    """
    ok = True
    rt = _runtime
    providers: list[Any] = []
    if rt is not None:
        for comp in rt.components:
            fn = getattr(comp, "flush", None)
            if fn is None:
                continue
            try:
                ok = bool(fn(timeout)) and ok
            except Exception as exc:
                internal_error("flush component", exc)
                ok = False
        providers += [rt.tracer_provider, rt.meter_provider, *rt.retired]
    providers += [STATE.tracer_provider, trace.get_tracer_provider()]
    seen: set[int] = set()
    for provider in providers:
        if provider is None or id(provider) in seen:
            continue
        seen.add(id(provider))
        force = getattr(provider, "force_flush", None)
        if force is None:
            continue
        try:
            ok = bool(force(int(timeout * 1000))) and ok
        except Exception as exc:
            internal_error("flush", exc)
            ok = False
    return ok


def shutdown(timeout: float = 10.0) -> None:
    """Flush and stop everything faultlens started (exporters, journal). Never raises.

    Providers the application set are left alone: their lifecycle is the application's.
    """
    global _runtime
    with _lock:
        rt, _runtime = _runtime, None
    if rt is None:
        return
    _stop_components(rt, timeout)
    for provider in (rt.tracer_provider, rt.meter_provider, *rt.retired):
        if provider is None:
            continue
        try:
            provider.force_flush(int(timeout * 1000))
        except Exception as exc:
            internal_error("flush", exc)
        try:
            provider.shutdown()
        except Exception as exc:
            internal_error("provider shutdown", exc)
    if STATE.settings is rt.settings:
        STATE.settings = None
        STATE.processors = ()
    if STATE.tracer_provider is rt.tracer_provider:
        STATE.tracer_provider = None
    if STATE.meter_provider is rt.meter_provider:
        STATE.meter_provider = None
    STATE.bump()


def _shutdown_at_exit() -> None:
    try:
        shutdown()
    except BaseException:
        pass


def _after_fork_in_child() -> None:
    # Locks held by another thread at fork time would deadlock the child: rebuild them.
    global _lock
    _lock = threading.RLock()
    reset_rate_limiter()
    from .capture import _telemetry

    _telemetry._dropped_lock = threading.Lock()
    _telemetry._cache_lock = threading.Lock()
    rt = _runtime
    if rt is not None:
        for comp in rt.components:
            hook = getattr(comp, "after_fork", None)
            if hook is not None:
                try:
                    hook()
                except Exception as exc:
                    internal_error("after fork", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
