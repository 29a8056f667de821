"""Tracer, meter and instruments, bound through the OTel API.

Before configure() this uses whatever providers the application set (the global API's proxies
bind late, so a provider set afterwards is picked up); faultlens.testing can override both.
Instruments are cached per state generation so an override takes effect at once.

``faultlens.errors`` is counted locally (a plain int per label set, bumped under a small
lock) and reported through an observable counter read at collection time: an SDK
``Counter.add`` costs several microseconds per error (attribute hashing, the measurement
pipeline), more than the rest of deciding that a storm's error is suppressed. The series is
the same monotonic sum a synchronous counter gives. Each registration (a configure(), a
faultlens.testing.capture()) reports the counts made since it was registered, so a new
provider starts from zero. Label sets are capped like the SDK caps a synchronous counter's
(past the cap, counts go to one ``otel.metric.overflow`` series).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as _Tally
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from .. import scrub
from .._version import __version__
from ..errors import clean_text
from ._fork import ensure_fork_hook, on_fork_child
from ._state import STATE

__all__ = [
    "DROP_REASONS",
    "count_dropped",
    "count_error",
    "dropped_counts",
    "errors_counts",
    "get_meter",
    "get_tracer",
    "internal_error",
    "scrub_own_logs",
]

_log = logging.getLogger("faultlens")
SCOPE = "faultlens"


class _ScrubLogs(logging.Filter):
    """faultlens's own log lines pass through the scrubber too: a warning about a failed
    export or a broken sink may quote user data (URLs with credentials, tokens)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            scrubber = scrub.current()
            record.msg = scrubber.text(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = scrubber.text(
                    logging.Formatter().formatException(record.exc_info)
                )
                record.exc_info = None
        except Exception:
            pass
        return True


_log_filter_added = False


def scrub_own_logs() -> None:
    """Put the scrubber on the ``faultlens`` logger, once: on first use of the layer
    (configure(), the first tracer or meter, the first internal error), never at import."""
    global _log_filter_added
    if _log_filter_added:
        return
    _log_filter_added = True
    if not any(isinstance(f, _ScrubLogs) for f in _log.filters):
        _log.addFilter(_ScrubLogs())


DROP_REASONS = ("rate_limited", "queue_full", "export_failed", "internal_error")

_cache: dict[str, Any] = {}
_cache_gen = -1
_cache_lock = threading.Lock()
_dropped: _Tally[str] = _Tally()
_dropped_lock = threading.Lock()
_logged_internal: set[str] = set()
# faultlens.errors, counted locally: (code, category, severity, stage) -> count since start.
ERRORS_LABEL_SETS = 2000  # as the SDK's default cardinality limit for one instrument
_errors: dict[tuple[str, str, str, str | None], int] = {}
_errors_lock = threading.Lock()
_OVERFLOW_KEY = ("", "", "", None)
_errors_epoch = 0


def _refresh() -> None:
    global _cache, _cache_gen
    ensure_fork_hook()
    scrub_own_logs()
    with _cache_lock:
        if _cache_gen == STATE.generation:
            return
        tp = STATE.tracer_provider
        mp = STATE.meter_provider
        tracer = (
            tp.get_tracer(SCOPE, __version__)
            if tp is not None
            else trace.get_tracer(SCOPE, __version__)
        )
        meter = (
            mp.get_meter(SCOPE, __version__)
            if mp is not None
            else metrics.get_meter(SCOPE, __version__)
        )
        new: dict[str, Any] = {"tracer": tracer, "meter": meter}
        with _errors_lock:
            baseline, epoch = dict(_errors), _errors_epoch
        meter.create_observable_counter(
            "faultlens.errors",
            callbacks=[_errors_observer(baseline, epoch)],
            unit="{error}",
            description="Errors recorded, by code/category/severity/stage",
        )
        meter.create_observable_counter(
            "faultlens.internal.dropped",
            callbacks=[_observe_dropped],
            unit="{item}",
            description="Telemetry faultlens dropped, by reason; never silently",
        )
        # Replaced whole, never cleared and refilled: readers take no lock, and one reading
        # between a clear and a refill would find nothing.
        _cache = new
        _cache_gen = STATE.generation


def get_tracer() -> trace.Tracer:
    if _cache_gen != STATE.generation:
        _refresh()
    return _cache["tracer"]  # type: ignore[no-any-return]


def get_meter() -> metrics.Meter:
    if _cache_gen != STATE.generation:
        _refresh()
    return _cache["meter"]  # type: ignore[no-any-return]


def count_error(code: str, category: str, severity: str, stage: str | None) -> None:
    """One error in ``faultlens.errors`` (labels code, category, severity and, when there
    is one, stage). Exact; cheap (a dict bump under a lock)."""
    if _cache_gen != STATE.generation:
        _refresh()  # registers the observable counter with the provider in force
    key = (code, category, severity, stage)
    with _errors_lock:
        n = _errors.get(key)
        if n is not None:
            _errors[key] = n + 1
        elif len(_errors) < ERRORS_LABEL_SETS:
            _errors[key] = 1
        else:
            _errors[_OVERFLOW_KEY] = _errors.get(_OVERFLOW_KEY, 0) + 1


def errors_counts() -> dict[tuple[str, str, str, str | None], int]:
    """The local ``faultlens.errors`` tallies since the process started (or forked)."""
    with _errors_lock:
        return dict(_errors)


def _errors_observer(baseline: dict[tuple[str, str, str, str | None], int], epoch: int) -> Any:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        with _errors_lock:
            items = list(_errors.items())
            base = baseline if epoch == _errors_epoch else {}
        out = []
        for key, total in items:
            value = total - base.get(key, 0)
            if value <= 0:
                continue
            if key is _OVERFLOW_KEY or key == _OVERFLOW_KEY:
                out.append(Observation(value, {"otel.metric.overflow": True}))
                continue
            code, category, severity, stage = key
            labels = {"code": code, "category": category, "severity": severity}
            if stage:
                labels["stage"] = stage
            out.append(Observation(value, labels))
        return out

    return observe


def _observe_dropped(options: CallbackOptions) -> Iterable[Observation]:
    with _dropped_lock:
        items = list(_dropped.items())
    return [Observation(v, {"reason": k}) for k, v in items]


def count_dropped(reason: str, n: int = 1) -> None:
    """Count telemetry faultlens had to drop. Exact; reported as faultlens.internal.dropped."""
    ensure_fork_hook()
    with _dropped_lock:
        _dropped[reason] += n


def dropped_counts() -> dict[str, int]:
    with _dropped_lock:
        return dict(_dropped)


def reset_dropped() -> None:
    """Forget the drop tallies and the ``faultlens.errors`` counts (faultlens.testing)."""
    global _errors_epoch
    with _dropped_lock:
        _dropped.clear()
    with _errors_lock:
        _errors.clear()
        _errors_epoch += 1  # registrations made before count from the reset, not their baseline
    _logged_internal.clear()


def _after_fork() -> None:
    # The child's own locks (another thread may have held these at fork time), and its own
    # tallies: what the parent counted (errors, drops) is the parent's to report. The child
    # is a new instance (its own service.instance.id): re-reported there, the parent's
    # totals would be counted twice by any sum over instances. Registrations made before
    # the fork count from zero (the epoch), as a new registration does.
    global _cache_lock, _dropped_lock, _dropped, _errors_lock, _errors, _errors_epoch
    _cache_lock = threading.Lock()
    _dropped_lock = threading.Lock()
    _dropped = _Tally()
    _errors_lock = threading.Lock()
    _errors = {}
    _errors_epoch += 1
    STATE.lock = threading.RLock()


on_fork_child(_after_fork)


def internal_error(where: str, exc: BaseException | None = None) -> None:
    """A faultlens bug or hostile input broke something internal: count it, log it once per
    place, and let the caller go on. Must itself never raise."""
    try:
        count_dropped("internal_error")
        where = clean_text(where, 512)  # may quote user objects: valid UTF-8 for the logs
        if where not in _logged_internal:
            _logged_internal.add(where)
            scrub_own_logs()
            _log.warning(
                "faultlens: internal error in %s (counted in faultlens.internal.dropped; "
                "the application is unaffected)",
                where,
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )
    except BaseException:
        pass
