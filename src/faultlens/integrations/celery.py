"""Celery: task failures classified and counted once, retries as metrics, prefork-safe.

::

    # tasks.py
    import faultlens
    from faultlens.integrations import celery as faultlens_celery

    app = Celery("tasks", broker="redis://127.0.0.1:6379/0")
    faultlens.configure(service_name="scorer-worker")   # before the pool forks: fork-safe
    faultlens_celery.install()

or with no code at all: ``faultlens run -- celery -A tasks worker`` (``install()`` runs as
soon as the process imports celery), or under ``opentelemetry-instrument``.

Built on ``opentelemetry-instrumentation-celery`` (``pip install 'faultlens[celery]'``): its
producer span (``apply_async/<task>``) carries the trace to the worker, whose run span
(``run/<task>``) is its child. On top of it, per task run:

- **a failure** is recorded once, on the run's span, with the contract attributes and the
  task's context (``faultlens.context.celery.task_name``, ``.celery.task_id``,
  ``.celery.retries``), and counted in ``faultlens.errors``. Errors recorded by code inside
  the task (instrumented functions, ``record_error``) carry the same context. A worker
  process that dies under a task (``WorkerLostError``, seen by the pool's parent) is
  recorded as critical on a span of its own in the producer's trace;
- **retries are not failures**: ``self.retry()``, ``autoretry_for`` and the ``Retry``,
  ``Ignore`` and ``Reject`` exceptions are Celery's control flow. Each retry is one
  ``faultlens.retry.attempts{operation=<task name>, error.type}`` point, its countdown a
  ``faultlens.retry.backoff.duration`` point, and a ``faultlens.retry`` event on the span;
  each run that ends is one ``faultlens.retry.calls{operation, outcome}``, counted like
  ``@faultlens.retry``'s (``success_first_attempt``, ``success_after_retry``, ``exhausted``
  when ``max_retries`` stops the retries, ``non_retryable`` otherwise, ``aborted`` when
  ``revoke(terminate=True)`` kills it), so one dashboard shows retries from both;
- exceptions listed in the task's ``throws`` are **expected**: not recorded, not counted
  as errors (the run still ends ``non_retryable``);
- Celery's own log line about a failure (``Task ... raised unexpected``) is not recorded a
  second time by a ``faultlens.LoggingHandler``.

Prefork: configure faultlens in the worker's main process (the tasks module, or
``faultlens run``) or in ``worker_process_init``; both are safe. faultlens and the OTel SDK
rebuild their locks and exporter threads in each forked child (one set per process, never
two), and a pool child, which ends with ``os._exit`` and so runs no ``atexit``, flushes and
shuts faultlens down on ``worker_process_shutdown``, so what it recorded is exported
before it goes (a warm shutdown included).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from .. import _setup
from ..capture import internal_error, shielded
from ._providers import late_tracer_provider

__all__ = ["activate", "install", "instrument", "is_installed", "uninstall"]

_log = logging.getLogger("faultlens")
_UID = "faultlens.integrations.celery."
_CONTRIB = "opentelemetry.instrumentation.celery"
# Celery's loggers that write lines about task failures with the exception attached.
_FAILURE_LOGGERS = ("celery.app.trace", "celery.worker.request")

_lock = threading.RLock()
_installed = False
_fork_hook = False
_filter: logging.Filter | None = None  # the LoggedFailureFilter on Celery's loggers
_took_over: Any = None  # the CeleryInstrumentor whose failure/postrun receivers we manage


def is_installed() -> bool:
    return _installed


def install() -> bool:
    """Connect faultlens to Celery's signals in this process (and the children it forks).

    Idempotent and never raises: returns False when Celery is not importable or something
    went wrong (logged once and counted in ``faultlens.internal.dropped``). Instruments
    ``opentelemetry-instrumentation-celery`` when it is installed and nobody did, with
    spans recorded through faultlens's providers (so ``faultlens.testing.capture()`` sees
    them too); an instrumentor the application set up itself is kept, with its own
    providers.
    """
    global _installed, _fork_hook, _filter
    try:
        with _lock:
            if _installed:
                return True
            try:
                from celery import signals  # type: ignore[import-untyped]
            except ImportError:
                return False
            # Imported here, not with this module: `faultlens run` imports this module in
            # every process it starts, most of which never import celery.
            from . import _celery_tasks as tasks

            if _filter is None:
                _filter = tasks.LoggedFailureFilter()
            # Ours first: the run's span must still be open when postrun is handled.
            signals.task_prerun.connect(tasks.on_prerun, weak=False, dispatch_uid=_UID + "pre")
            signals.task_postrun.connect(
                tasks.on_postrun_before_span_end, weak=False, dispatch_uid=_UID + "post"
            )
            signals.task_failure.connect(tasks.on_failure, weak=False, dispatch_uid=_UID + "fail")
            signals.task_retry.connect(tasks.on_retry, weak=False, dispatch_uid=_UID + "retry")
            signals.task_revoked.connect(
                tasks.on_revoked, weak=False, dispatch_uid=_UID + "revoked"
            )
            signals.worker_process_shutdown.connect(
                _on_process_shutdown, weak=False, dispatch_uid=_UID + "child-exit"
            )
            _take_over_instrumentor(signals)
            for name in _FAILURE_LOGGERS:
                logger = logging.getLogger(name)
                if _filter not in logger.filters:
                    logger.addFilter(_filter)
            if not _fork_hook and hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=tasks.reset_after_fork)
                _fork_hook = True
            _installed = True
            return True
    except Exception as exc:
        internal_error("celery integration install", exc)
        return False


def instrument() -> bool:
    """``install()`` under the name every integration has (``install_detected()`` calls it)."""
    return install()


def uninstall() -> None:
    """Disconnect what ``install()`` connected. The OTel instrumentor stays instrumented,
    with its own failure receiver back."""
    global _installed
    try:
        with _lock:
            if not _installed:
                return
            from celery import signals

            for signal, uid in (
                (signals.task_prerun, "pre"),
                (signals.task_postrun, "post"),
                (signals.task_failure, "fail"),
                (signals.task_retry, "retry"),
                (signals.task_revoked, "revoked"),
                (signals.worker_process_shutdown, "child-exit"),
            ):
                signal.disconnect(dispatch_uid=_UID + uid)
            if _filter is not None:
                for name in _FAILURE_LOGGERS:
                    logging.getLogger(name).removeFilter(_filter)
            _give_back_instrumentor(signals)
            _installed = False
    except Exception as exc:
        internal_error("celery integration uninstall", exc)


def activate() -> None:
    """For ``faultlens run`` and the OTel instrumentor: ``install()`` as soon as (and only
    if) the process imports celery; at once if it already did. Costs nothing in a process
    that never imports celery. Never raises."""
    try:
        import wrapt

        wrapt.register_post_import_hook(_on_celery_imported, "celery")
    except Exception as exc:
        internal_error("celery integration activate", exc)


def _on_celery_imported(module: Any) -> None:
    install()


# -- opentelemetry-instrumentation-celery --------------------------------------------------------


def _failure_left_to_faultlens(*args: Any, **kwargs: Any) -> None:
    """Stands in for the instrumentor's task_failure receiver, which would add a second
    ``exception`` event (unclassified, with ``str(exc)`` unguarded) to the run's span."""


def _take_over_instrumentor(signals: Any) -> None:
    """Instrument opentelemetry-instrumentation-celery if nobody did; in every case, make
    faultlens the one that records failures on its spans.

    ``CeleryInstrumentor`` is a singleton that connects ``self._trace_failure`` and
    ``self._trace_postrun`` when instrumented: an attribute on the instance replaces its
    failure receiver for any later ``instrument()`` (``opentelemetry-instrument`` may come
    after us), and a receiver it already connected is disconnected. Its postrun receiver
    (which ends the span) is moved after ours.

    When the contrib module is being imported at this very moment (its import of celery is
    what installed us: the OTel distro or the application loading it, to instrument it
    next), the take-over waits for Celery's first signal in the process (the worker
    starting, a task published or run), by which time that import is complete.
    """
    global _took_over, _pending_takeover
    module = sys.modules.get(_CONTRIB)
    if module is not None and not hasattr(module, "CeleryInstrumentor"):
        _pending_takeover = True
        for signal in (
            signals.worker_init,
            signals.worker_process_init,
            signals.before_task_publish,
            signals.task_prerun,
        ):
            signal.connect(_deferred_takeover, weak=False, dispatch_uid=_UID + "takeover")
        return
    try:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
    except Exception:  # not installed (or broken): faultlens records on spans of its own
        _log.debug("faultlens: opentelemetry-instrumentation-celery not available")
        return
    inst = _replace_failure_receiver(CeleryInstrumentor, signals)
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument(tracer_provider=late_tracer_provider())
    _took_over = inst


_pending_takeover = False


def _deferred_takeover(*args: Any, **kwargs: Any) -> None:
    global _pending_takeover
    if not _pending_takeover:
        return
    try:
        with _lock:
            if not _pending_takeover:
                return
            _pending_takeover = False
            from celery import signals

            _take_over_instrumentor(signals)
    except Exception as exc:
        internal_error("celery integration: taking over the contrib instrumentor", exc)


def _give_back_instrumentor(signals: Any) -> None:
    global _took_over, _pending_takeover
    _pending_takeover = False
    inst, _took_over = _took_over, None
    if inst is None or "_trace_failure" not in vars(inst):
        return
    del inst._trace_failure
    if inst.is_instrumented_by_opentelemetry:
        signals.task_failure.disconnect(_failure_left_to_faultlens)
        signals.task_failure.connect(inst._trace_failure, weak=False)


def _replace_failure_receiver(cls: Any, signals: Any) -> Any:
    inst = cls()
    stock_failure = cls.__dict__.get("_trace_failure")
    stock_failure = getattr(stock_failure, "__func__", stock_failure)
    inst._trace_failure = _failure_left_to_faultlens
    if inst.is_instrumented_by_opentelemetry:
        if stock_failure is not None:
            signals.task_failure.disconnect(stock_failure)
        postrun = inst._trace_postrun
        if signals.task_postrun.disconnect(postrun):
            signals.task_postrun.connect(postrun, weak=False)
    return inst


# -- pool children -------------------------------------------------------------------------------


def _on_process_shutdown(*args: Any, **kwargs: Any) -> None:
    """A prefork child is about to ``os._exit``: the only exit hook it runs. faultlens shuts
    down (flushing everything) when configured; otherwise (``opentelemetry-instrument``,
    providers the application set) the global tracer and meter providers are flushed, since
    nothing else will. Bounded by the usual exit timeout either way."""
    try:
        if _setup.is_configured():
            _setup.shutdown(_setup.EXIT_TIMEOUT)
            return
        deadline = time.monotonic() + _setup.EXIT_TIMEOUT
        _setup.flush(_setup.EXIT_TIMEOUT)  # the tracer providers (global and faultlens's)
        from opentelemetry import metrics

        force = getattr(metrics.get_meter_provider(), "force_flush", None)
        remaining = deadline - time.monotonic()
        if force is not None and remaining > 0:
            # On a thread of its own: an exporter that ignores its timeout cannot hold the
            # process past the deadline.
            done = threading.Thread(
                target=shielded(_quietly), args=(force, int(remaining * 1000)), daemon=True
            )
            done.start()
            done.join(remaining)
    except Exception as exc:
        internal_error("celery worker_process_shutdown", exc)


def _quietly(fn: Any, timeout_millis: int) -> None:
    try:
        fn(timeout_millis=timeout_millis)
    except Exception as exc:
        internal_error("celery worker_process_shutdown flush", exc)
