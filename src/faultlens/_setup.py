"""configure()/shutdown(): providers, exporters, journal and limits, wired once.

The application's own OTel setup always wins: a tracer or meter provider it already set is
reused, never replaced, and faultlens only adds what it owns (its sinks, its limits). When
nothing is set, faultlens creates SDK providers with its resource and exporters, installs
them globally and owns their shutdown (at exit too).

Deadlines. Nothing faultlens does may stall the application, whatever the collector does
(one that accepts connections and never answers included): ``flush(timeout)`` and
``shutdown(timeout)`` return within ``timeout`` seconds (plus a few milliseconds), and at
process exit faultlens adds at most :data:`EXIT_TIMEOUT` seconds. The OTel SDK's flush and
shutdown do not honour their timeouts with a hung exporter, so each blocking part runs in a
daemon thread that is waited for until the deadline and then abandoned; what an abandoned
shutdown had not delivered is counted in ``faultlens.internal.dropped{reason="export_failed"}``
and logged. A call still stuck from before is waited on again rather than started twice, so
a hung collector never piles up threads.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from . import scrub
from ._config import Settings, load_settings
from ._version import __version__
from .capture import (
    Processor,
    count_dropped,
    dropped_counts,
    internal_error,
    register_fork_shield,
    reset_rate_limiter,
    scrub_own_logs,
    shielded,
    signals_shielded,
)
from .capture._state import STATE  # the capture layer's runtime state, which configure() sets
from .errors import ConfigError, catalog
from .resilience import set_defaults as set_resilience_defaults

if TYPE_CHECKING:  # the SDK is imported by configure(), not by `import faultlens`
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "EXIT_TIMEOUT",
    "add_exit_hook",
    "bootstrap_configure",
    "configure",
    "current_settings",
    "defer_while_stopping",
    "flush",
    "flush_soon",
    "is_configured",
    "is_stopping",
    "shutdown",
]

EXIT_TIMEOUT = 5.0
"""The most faultlens adds to a process's exit, however it ends (a normal exit, an uncaught
exception, SIGTERM, a multiprocessing worker finishing); also the default of ``flush()`` and
``shutdown()``."""

_log = logging.getLogger("faultlens")
_lock = threading.RLock()


@dataclass
class _Runtime:
    settings: Settings
    args: dict[str, Any]
    tracer_provider: TracerProvider | None = None  # only the ones faultlens created
    meter_provider: MeterProvider | None = None
    logger_provider: Any = None  # exception log records (exception_signal logs, logs/dup)
    components: list[Any] = field(default_factory=list)  # things with .shutdown(timeout)
    bootstrap: bool = False  # configured by `faultlens run`; the app's own configure() wins
    retired: list[Any] = field(default_factory=list)  # earlier providers still serving spans


_runtime: _Runtime | None = None
_atexit_registered = False
_fork_hook_registered = False


# -- blocking work with a deadline -------------------------------------------------------------


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


class _Job:
    """One blocking call in a daemon thread; ``done`` is set when it has returned."""

    __slots__ = ("done", "ok", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self.done = threading.Event()
        self.ok = False


_jobs: dict[Hashable, _Job] = {}
# Re-entrant, like _soon_lock: a signal handler may need it while its own thread holds it.
_jobs_lock = threading.RLock()


def _start_job(key: Hashable, what: str, fn: Callable[[], object]) -> _Job:
    """Run ``fn`` in a daemon thread and return its job at once. While a job with the same
    key is still running (stuck on a collector that never answers), that job is returned
    instead of starting a second one. Where no thread can be started (at interpreter
    shutdown on Python 3.12+), ``fn`` runs here: every job is written to honour its
    deadline on its own as far as the SDK lets it."""
    with _jobs_lock:
        job = _jobs.get(key)
        if job is not None and not job.done.is_set():
            return job
        job = _jobs[key] = _Job(what)

    def run() -> None:
        try:
            job.ok = fn() is not False
        except Exception as exc:
            internal_error(what, exc)
        finally:
            job.done.set()
            with _jobs_lock:
                if _jobs.get(key) is job:
                    del _jobs[key]

    try:
        threading.Thread(target=shielded(run), name=f"faultlens-{what}", daemon=True).start()
    except RuntimeError:
        run()
    return job


def _wait(jobs: Sequence[_Job], deadline: float) -> list[_Job]:
    """Wait for ``jobs`` until ``deadline``; the ones still running are returned."""
    for job in jobs:
        job.done.wait(_remaining(deadline))
    return [job for job in jobs if not job.done.is_set()]


def _signal_url(settings: Settings, signal: str) -> str | None:
    """Where one signal goes: its own OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT verbatim, else the
    shared endpoint (with the /v1/<signal> path for OTLP/HTTP); None when neither is set."""
    ex = settings.exporter
    own = ex.signal_endpoint(signal)
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


def _otlp_log_exporter(settings: Settings) -> Any | None:
    url = _signal_url(settings, "logs")
    if url is None:
        return None
    if settings.exporter.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # type: ignore[assignment]
            OTLPLogExporter,
        )
    return OTLPLogExporter(**_exporter_args(settings, url, "logs"))


# Process attributes that may carry secrets passed on the command line.
_UNSAFE_RESOURCE_KEYS = ("process.command_args", "process.command_line", "process.command")


def build_resource(settings: Settings) -> Resource:
    from opentelemetry.sdk.resources import (
        OsResourceDetector,
        ProcessResourceDetector,
        Resource,
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
    STATE.limits = settings.capture  # the capture layer's Limits, as configured
    STATE.service_name = settings.service_name
    STATE.service_version = settings.service_version
    STATE.settings = settings
    STATE.enabled = settings.enabled
    set_resilience_defaults(settings.error_handling.resilience)
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
    exception_signal: str | None = None,
    exception_event_name: str | None = None,
    exception_bridge: bool | None = None,
) -> Settings:
    """Set faultlens up: arguments, then FAULTLENS_*/OTEL_* variables, then faultlens.yaml.

    Safe to call twice: the same arguments again change nothing; different ones are refused
    with a ConfigError until ``shutdown()`` (exporters cannot be swapped under running code).
    ``processors`` see each error event before it is emitted and may enrich, redact or drop
    it (see ``faultlens.ErrorEvent``). ``exception_signal`` says how a recorded error is
    signalled: ``"span"`` (the ``exception`` span event, the default), ``"logs"`` (an
    ``exception`` log record, copied back onto the span unless ``exception_bridge=False``)
    or ``"logs/dup"`` (both); it wins over ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``.
    Returns the resolved Settings.
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
    global _runtime
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
    if settings.exceptions.log_records:
        from ._logs import require_logs_support

        require_logs_support()  # before anything is built or replaced
    rt = _Runtime(settings=settings, args=args)
    if previous is not None:
        # `faultlens run` configured first from the environment; the application's own
        # configure() call now takes over. Its components restart with the new settings;
        # providers are kept when nothing they are built from changed. Otherwise the new
        # ones carry faultlens's signals and the old ones keep serving tracers the app
        # already holds until shutdown.
        _log.info("faultlens: applying the application's configure() over `faultlens run`'s")
        _stop_components(previous, time.monotonic() + EXIT_TIMEOUT)
        same = _provider_key(previous.settings) == _provider_key(settings)
        if same:
            rt.tracer_provider = previous.tracer_provider
            rt.meter_provider = previous.meter_provider
            rt.retired = previous.retired
        else:
            rt.retired = [
                *previous.retired,
                *(p for p in (previous.tracer_provider, previous.meter_provider) if p is not None),
            ]
        if same and previous.settings.exceptions == settings.exceptions:
            rt.logger_provider = previous.logger_provider
        elif previous.logger_provider is not None:
            rt.retired.append(previous.logger_provider)
    _apply_capture_settings(settings)
    STATE.processors = procs
    if settings.sdk_disabled:
        _log.info("faultlens: OTEL_SDK_DISABLED is set; recording through no-op providers")
        if "faultlens._logs" in sys.modules:
            from ._logs import uninstall_exception_logs

            uninstall_exception_logs()
    else:
        # The SDK's (and faultlens's) threads started here never take the application's
        # signals (capture/_threads.py).
        with signals_shielded():
            if rt.tracer_provider is None and rt.meter_provider is None:
                _install_providers(rt)
            if rt.logger_provider is None:
                _install_logs(rt, getattr(rt.tracer_provider, "resource", None))
            _start_components(rt)
    _runtime = rt
    _register_process_hooks()
    _arm_worker_exit()
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
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from ._exporters import (
        CountingBatchSpanProcessor,
        CountingMetricExporter,
        CountingSpanExporter,
    )

    settings = rt.settings
    active = settings.exporter.active
    resource = None
    app_tp = _app_tracer_provider()
    if app_tp is None or getattr(app_tp, "_faultlens_owned", False):
        key = _provider_key(settings)
        if (
            app_tp is not None
            and getattr(app_tp, "_faultlens_stopped", False)
            and getattr(app_tp, "_faultlens_key", None) == key
        ):
            # configure() after shutdown(): the global provider faultlens set before (and
            # stopped) gets new processors, so the tracers the application already holds
            # (bound to it: the global is set-once) export again. A TracerProvider stays
            # usable after shutdown; a MeterProvider does not, so metrics get a new one.
            tp = app_tp
            resource = tp.resource
        else:
            resource = build_resource(settings)
            # shutdown_on_exit=False: faultlens shuts its providers down at exit itself,
            # once and within EXIT_TIMEOUT (the SDK's own atexit handler waits up to 30 s
            # and, after a configure/shutdown/configure, shut a provider down twice).
            tp = TracerProvider(resource=resource, shutdown_on_exit=False)
            tp._faultlens_owned = True  # type: ignore[attr-defined]
            tp._faultlens_key = key  # type: ignore[attr-defined]
        tp._faultlens_stopped = False  # type: ignore[attr-defined]
        span_exporter = _otlp_span_exporter(settings) if active == "otlp" else None
        parts: list[Any] = []
        if span_exporter is not None:
            counting = CountingSpanExporter(span_exporter, partial(_otlp_span_exporter, settings))
            parts += [
                CountingBatchSpanProcessor(
                    counting, export_timeout_millis=int(settings.exporter.timeout * 1000)
                ),
                counting,
            ]
        elif active == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            parts.append(CountingBatchSpanProcessor(ConsoleSpanExporter()))
        for part in parts:
            if isinstance(part, BatchSpanProcessor):
                tp.add_span_processor(part)
        tp._faultlens_parts = tuple(parts)  # type: ignore[attr-defined]
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
        counting_metrics = None
        if metric_exporter is not None:
            counting_metrics = CountingMetricExporter(
                metric_exporter, partial(_otlp_metric_exporter, settings)
            )
            readers.append(
                PeriodicExportingMetricReader(
                    counting_metrics,
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
        mp = MeterProvider(
            resource=resource or build_resource(settings),
            metric_readers=readers,
            shutdown_on_exit=False,
        )
        mp._faultlens_owned = True  # type: ignore[attr-defined]
        mp._faultlens_parts = (counting_metrics,) if counting_metrics else ()  # type: ignore[attr-defined]
        rt.meter_provider = mp
        if app_mp is None:
            metrics.set_meter_provider(mp)
        if not STATE.pinned:
            STATE.meter_provider = mp
    STATE.bump()


def _install_logs(rt: _Runtime, resource: Any) -> None:
    """Exceptions as log records (``exception_signal`` ``logs``/``logs/dup``): into the
    application's logger provider, else one faultlens owns (see ``_logs``). In ``span``
    mode the SDK's logs package is not even imported."""
    settings = rt.settings
    if not settings.exceptions.log_records:
        if "faultlens._logs" in sys.modules:  # an earlier configure() used logs: disarm
            from ._logs import app_logger_provider, install_exception_logs

            install_exception_logs(settings, app_logger_provider())
        return
    from ._logs import (
        CountingLogExporter,
        app_logger_provider,
        build_logger_provider,
        install_exception_logs,
        set_global_logger_provider,
    )

    app_lp = app_logger_provider()
    if app_lp is not None and not getattr(app_lp, "_faultlens_owned", False):
        _log.debug("faultlens: exception log records go to the application's %r", app_lp)
        install_exception_logs(settings, app_lp)
        return
    exporter: Any = None
    active = settings.exporter.active
    if active == "otlp":
        inner = _otlp_log_exporter(settings)
        if inner is not None:
            exporter = CountingLogExporter(inner, partial(_otlp_log_exporter, settings))
    elif active == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        exporter = ConsoleLogRecordExporter()
    lp = build_logger_provider(settings, resource or build_resource(settings), exporter)
    rt.logger_provider = lp
    if app_lp is None:
        set_global_logger_provider(lp)
    install_exception_logs(settings, lp)


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


# -- flush ---------------------------------------------------------------------------------------


def _flush_job(key: Hashable, fn: Callable[..., Any], arg: float) -> _Job:
    return _start_job(("flush", key), "flush", partial(fn, arg))


def flush(timeout: float = EXIT_TIMEOUT) -> bool:
    """Push everything buffered (journal, spans, metrics) out now, without stopping.

    For the moments a process may end abruptly: the end of a batch step, before handing
    control to code that may ``os._exit``. Returns within ``timeout`` seconds whatever the
    collector does (what is still under way then goes on in the background). Never
    raises; False if something failed or did not finish in time.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    jobs: list[_Job] = []
    rt = _runtime
    providers: list[Any] = []
    if rt is not None:
        for comp in list(rt.components):
            fn = getattr(comp, "flush", None)
            if fn is not None:
                jobs.append(_flush_job(id(comp), fn, max(timeout, 0.0)))
        providers += [rt.tracer_provider, rt.meter_provider, rt.logger_provider, *rt.retired]
    providers += [STATE.tracer_provider, STATE.meter_provider, trace.get_tracer_provider()]
    if STATE.exception_logs is not None and "faultlens._logs" in sys.modules:
        from ._logs import app_logger_provider  # the app's, when records go there

        providers.append(app_logger_provider())
    seen: set[int] = set()
    for provider in providers:
        if provider is None or id(provider) in seen:
            continue
        seen.add(id(provider))
        force = getattr(provider, "force_flush", None)
        if force is not None:
            jobs.append(_flush_job(id(provider), force, int(max(timeout, 0.0) * 1000)))
    stuck = _wait(jobs, deadline)
    if stuck:
        _log.debug(
            "faultlens: flush() returned after %.1fs with %d still under way", timeout, len(stuck)
        )
    return not stuck and all(job.ok for job in jobs)


_soon_lock = threading.RLock()
_soon_running = False
_soon_again = False
_soon_last = -1e18  # when the last background round started


def flush_soon() -> None:
    """Ask for a flush and return at once: the flush runs on a faultlens thread. For code
    that must never block (an asyncio loop's exception handler, a dying thread's hook).
    Requests made while a flush runs are folded into one more round, so a storm of
    failures (or a collector that never answers) costs one thread, not one per failure."""
    global _soon_running, _soon_again
    with _soon_lock:
        if _soon_running:
            _soon_again = True
            return
        _soon_running = True
    try:
        threading.Thread(
            target=shielded(_flush_rounds), name="faultlens-flush-soon", daemon=True
        ).start()
    except RuntimeError:  # interpreter shutdown: the exit path flushes anyway
        with _soon_lock:
            _soon_running = False


FLUSH_SOON_INTERVAL = 1.0
"""At most one background flush round a second: a storm of failures on an event loop must
not turn batching into one export per failure."""


def _flush_rounds() -> None:
    global _soon_running, _soon_again
    global _soon_last
    while True:
        time.sleep(max(_soon_last + FLUSH_SOON_INTERVAL - time.monotonic(), 0.0))
        with _soon_lock:
            _soon_again = False  # this round covers every request made so far
        _soon_last = time.monotonic()
        try:
            flush(EXIT_TIMEOUT)
        except Exception as exc:  # pragma: no cover - flush never raises
            internal_error("background flush", exc)
        with _soon_lock:
            if not _soon_again:
                _soon_running = False
                return


# -- shutdown ------------------------------------------------------------------------------------


@dataclass
class _Stop:
    """A shutdown under way: other threads wait for ``done``; a signal handler that
    interrupts it on its own thread leaves a ``deferred`` call for when it has finished."""

    deadline: float
    thread: int
    done: threading.Event = field(default_factory=threading.Event)
    deferred: list[Callable[[], None]] = field(default_factory=list)


_stopping: _Stop | None = None


def is_stopping() -> bool:
    """A shutdown is under way (``is_configured()`` is already False)."""
    return _stopping is not None


def defer_while_stopping(callback: Callable[[], None]) -> bool:
    """Called from a signal handler: if the handler interrupted a shutdown on this very
    thread (``atexit``, an explicit ``shutdown()``), keep ``callback`` for the moment that
    shutdown has finished and return True; otherwise return False and do nothing.

    Waiting for the interrupted shutdown inside the handler would wait for code that
    cannot run until the handler returns; ending the process at once would lose what that
    shutdown was about to write.
    """
    stop = _stopping
    if stop is None or stop.thread != threading.get_ident():
        return False
    stop.deferred.append(callback)
    return True


def shutdown(timeout: float = EXIT_TIMEOUT) -> None:
    """Flush and stop everything faultlens started (exporters, journal). Never raises.

    Returns within ``timeout`` seconds whatever the collector does: what could not be
    delivered by then is abandoned, counted in ``faultlens.internal.dropped{reason=
    "export_failed"}`` and logged. Providers the application set are left alone: their
    lifecycle is the application's. A shutdown already under way in another thread is
    waited for (within ``timeout``). At exit faultlens calls this itself with
    :data:`EXIT_TIMEOUT`.
    """
    global _runtime, _stopping
    timeout = max(timeout, 0.0)
    deadline = time.monotonic() + timeout
    if not (_lock.acquire(timeout=timeout) if timeout > 0 else _lock.acquire(blocking=False)):
        _log.warning("faultlens: shutdown() gave up waiting for a configure() in another thread")
        return
    try:
        rt, _runtime = _runtime, None
        ongoing = _stopping
        stop = None
        if rt is not None:
            stop = _stopping = _Stop(deadline, threading.get_ident())
    finally:
        _lock.release()
    if stop is None or rt is None:
        if ongoing is not None and ongoing.thread != threading.get_ident():
            ongoing.done.wait(_remaining(deadline))
        return
    try:
        _stop_runtime(rt, deadline)
    except Exception as exc:  # pragma: no cover - every step is guarded
        internal_error("shutdown", exc)
    finally:
        if _stopping is stop:
            _stopping = None
        stop.done.set()
        deferred = list(stop.deferred)
    for callback in deferred:  # a signal that arrived meanwhile: it may end the process
        try:
            callback()
        except Exception as exc:
            internal_error("deferred signal handler", exc)


def _stop_component(comp: Any, deadline: float) -> None:
    comp.shutdown(_remaining(deadline))


def _stop_components(rt: _Runtime, deadline: float) -> None:
    comps = list(reversed(rt.components))
    rt.components.clear()
    jobs = [
        _start_job(("stop", id(c)), "shutdown", partial(_stop_component, c, deadline))
        for c in comps
    ]
    for job in _wait(jobs, deadline):
        _log.warning(
            "faultlens: a component did not stop within the shutdown timeout (%s)", job.what
        )


def _stop_provider(provider: Any, deadline: float) -> None:
    from ._exporters import CountingBatchSpanProcessor, takes_timeout

    provider._faultlens_stopped = True
    for part in getattr(provider, "_faultlens_parts", ()):
        if isinstance(part, CountingBatchSpanProcessor):
            part.shutdown_within(_remaining(deadline) * 1000)
    if takes_timeout(provider.shutdown):  # a MeterProvider; a TracerProvider takes none
        provider.shutdown(timeout_millis=_remaining(deadline) * 1000)
    else:
        provider.shutdown()


def _abandon(provider: Any) -> int:
    """What a provider whose shutdown was given up on had not delivered."""
    from ._exporters import CountingBatchSpanProcessor, CountingMetricExporter, CountingSpanExporter

    if provider is _runtime_logger_provider(provider):
        from ._logs import pending

        try:
            return pending(provider)
        except Exception as exc:  # pragma: no cover - attribute reads
            internal_error("abandoned log export", exc)
            return 0
    lost = 0
    for part in getattr(provider, "_faultlens_parts", ()):
        try:
            if isinstance(part, CountingBatchSpanProcessor):
                lost += part.pending()
            elif isinstance(part, CountingSpanExporter | CountingMetricExporter):
                lost += part.abandon()
        except Exception as exc:  # pragma: no cover - both are plain attribute reads
            internal_error("abandoned export", exc)
    return lost


def _runtime_logger_provider(provider: Any) -> Any:
    """``provider`` if it is a logger provider faultlens owns (they carry the mark)."""
    return provider if getattr(provider, "_faultlens_logs", False) else None


def _stop_runtime(rt: _Runtime, deadline: float) -> None:
    providers = [
        p
        for p in (rt.tracer_provider, rt.meter_provider, rt.logger_provider, *rt.retired)
        if p is not None
    ]
    failed_before = dropped_counts().get("export_failed", 0)
    provider_jobs = [
        (p, _start_job(("stop", id(p)), "shutdown", partial(_stop_provider, p, deadline)))
        for p in providers
    ]
    _stop_components(rt, deadline)  # meanwhile, the providers stop in their own threads
    stuck = _wait([job for _, job in provider_jobs], deadline)
    # Whatever is still queued or being exported now (by a stuck shutdown, or by an
    # earlier flush still waiting on the collector) will not be delivered.
    lost = sum(_abandon(p) for p in providers)
    if lost:
        count_dropped("export_failed", lost)
    # An export the shutdown itself ended (closing a gRPC channel cancels the call under
    # way) fails rather than hangs: counted by the exporter, and said here all the same.
    failed = dropped_counts().get("export_failed", 0) - failed_before
    if stuck or failed:
        _log.warning(
            "faultlens: %d spans/metric exports not delivered at shutdown (abandoned at the "
            "timeout, or failed), counted as dropped: is the collector at %s answering?",
            failed,
            _signal_url(rt.settings, "traces") or "the configured endpoint",
        )
    if STATE.settings is rt.settings:
        STATE.settings = None
        STATE.processors = ()
        set_resilience_defaults(None)  # the built-in ones, as before configure()
    if STATE.tracer_provider is rt.tracer_provider:
        STATE.tracer_provider = None
    if STATE.meter_provider is rt.meter_provider:
        STATE.meter_provider = None
    if "faultlens._logs" in sys.modules and STATE.settings is None:
        from ._logs import uninstall_exception_logs

        uninstall_exception_logs()  # span events again, as before configure()
    STATE.bump()


# -- process exit and fork -------------------------------------------------------------------------

_exit_hooks: list[Callable[[], None]] = []


def add_exit_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit just before faultlens shuts down (the uncaught-
    exception layer uses it to record a crash an application's own excepthook hid)."""
    if hook not in _exit_hooks:
        _exit_hooks.append(hook)
    _register_atexit()


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_shutdown_at_exit)


def _shutdown_at_exit() -> None:
    try:
        for hook in list(_exit_hooks):
            try:
                hook()
            except Exception as exc:
                internal_error("exit hook", exc)
        shutdown(EXIT_TIMEOUT)
    except BaseException:  # an exit path never raises (a deferred SIGTERM handler may)
        pass


def _register_process_hooks() -> None:
    """On first configure(), not at import: the exit hook, the fork hooks, and the scrubber
    on faultlens's own log lines."""
    global _fork_hook_registered
    scrub_own_logs()
    _register_atexit()
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        _fork_hook_registered = True
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    register_fork_shield()  # after the providers' own fork hooks: see capture/_threads.py


class _WorkerToken:
    """Something multiprocessing can hold a weak reference to (its after-fork registry)."""


_worker_token = _WorkerToken()
_worker_hook_armed = False


def _before_fork() -> None:
    # A multiprocessing worker made by fork ends with os._exit: no atexit. Its own
    # finalizers do run, so have one registered in every such worker (multiprocessing
    # clears the finalizers it inherits, then runs its after-fork registry).
    global _worker_hook_armed
    if _worker_hook_armed:
        return
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None:
        return
    try:
        mp_util.register_after_fork(_worker_token, _in_forked_worker)
        _worker_hook_armed = True
    except Exception as exc:
        internal_error("multiprocessing fork hook", exc)


def _in_forked_worker(_token: object) -> None:
    if _runtime is not None:
        _arm_worker_exit()


_worker_exit_pid = -1


def _arm_worker_exit() -> None:
    """In a multiprocessing worker: shut faultlens down when it ends (once per process).
    Called after fork for a configuration the worker inherited, and by configure() in a
    worker that configures itself (a pool initializer)."""
    global _worker_exit_pid
    mp = sys.modules.get("multiprocessing")
    mp_util = sys.modules.get("multiprocessing.util")
    if mp is None or mp_util is None or _worker_exit_pid == os.getpid():
        return
    try:
        if mp.parent_process() is None:
            return  # not a worker: atexit runs as usual
        mp_util.Finalize(None, _shutdown_in_worker, exitpriority=0)
        _worker_exit_pid = os.getpid()
    except Exception as exc:
        internal_error("multiprocessing exit hook", exc)


def _shutdown_in_worker() -> None:
    try:
        shutdown(EXIT_TIMEOUT)
    except BaseException:
        pass


def _after_fork_in_child() -> None:
    # Locks held by another thread at fork time would deadlock the child: rebuild this
    # module's own (every layer rebuilds its own: capture, resources, the journal writer and
    # resilience register their hooks). Threads do not survive a fork: forget the parent's
    # jobs and shutdown. The components configure() started get their after_fork.
    global _lock, _jobs_lock, _soon_lock, _soon_running, _soon_again, _stopping
    _lock = threading.RLock()
    _jobs_lock = threading.RLock()
    _jobs.clear()
    _soon_lock = threading.RLock()
    _soon_running = _soon_again = False
    _stopping = None
    rt = _runtime
    if rt is not None:
        _renew_providers_in_child(rt)
        for comp in rt.components:
            hook = getattr(comp, "after_fork", None)
            if hook is not None:
                try:
                    hook()
                except Exception as exc:
                    internal_error("after fork", exc)


def _renew_providers_in_child(rt: _Runtime) -> None:
    """A forked child is a new instance: the providers faultlens owns start from nothing.

    Their metric storage starts empty (the parent's cumulative totals are the parent's to
    report: re-exported under the child's instance id they would be counted twice), the
    resource gets a new ``service.instance.id`` and the child's pid, the exporters build
    their own connections, and the spans the parent had queued are not exported again.
    Nothing inherited is flushed, shut down or joined (its threads are not in the child).
    The provider objects themselves stay: the global providers are set-once, and the
    tracers and meters the application already holds are bound to them.

    Providers the application set are its own, and so is their fork behaviour: the OTel
    SDK's own at-fork hooks (as of 1.45) start a new reader/processor thread, clear the span
    queue and give the resource a new ``service.instance.id``, but keep the copied metric
    storage. There faultlens restarts only its own tallies (each layer in its own after-fork
    hook: capture's ``faultlens.errors`` and drop counts, resilience's call counts).
    """
    if rt.tracer_provider is None and rt.meter_provider is None and rt.logger_provider is None:
        return
    try:
        from ._exporters import (
            child_identity,
            renew_meter_provider_in_child,
            renew_tracer_provider_in_child,
        )

        identity = child_identity()
    except Exception as exc:  # pragma: no cover - the SDK is imported when providers exist
        internal_error("after fork: providers", exc)
        return
    # Providers retired by a later configure() still serve tracers the app holds.
    seen: set[int] = set()
    for provider in (rt.tracer_provider, rt.meter_provider, rt.logger_provider, *rt.retired):
        if provider is None or id(provider) in seen:
            continue
        seen.add(id(provider))
        try:
            if getattr(provider, "_faultlens_logs", False):
                from ._logs import renew_in_child

                renew_in_child(provider, identity)
            elif hasattr(provider, "_measurement_consumer"):
                renew_meter_provider_in_child(provider, identity)
            else:
                renew_tracer_provider_in_child(provider, identity)
        except Exception as exc:
            internal_error("after fork: renew provider", exc)


_MOVED = ("CountingBatchSpanProcessor", "CountingMetricExporter", "CountingSpanExporter")


def __getattr__(name: str) -> Any:
    # The counting exporters live in ._exporters (which imports the SDK); still reachable
    # here, where they used to be, without importing the SDK with this module.
    if name in _MOVED:
        from . import _exporters

        return getattr(_exporters, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
