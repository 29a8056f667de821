"""Tracer, meter and instruments, bound through the OTel API.

Before configure() this uses whatever providers the application set (the global API's proxies
bind late, so a provider set afterwards is picked up); faultlens.testing can override both.
Instruments are cached per state generation so an override takes effect at once.
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
    "dropped_counts",
    "errors_counter",
    "get_meter",
    "get_tracer",
    "internal_error",
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


if not any(isinstance(f, _ScrubLogs) for f in _log.filters):
    _log.addFilter(_ScrubLogs())
DROP_REASONS = ("rate_limited", "queue_full", "export_failed", "internal_error")

_cache: dict[str, Any] = {}
_cache_gen = -1
_cache_lock = threading.Lock()
_dropped: _Tally[str] = _Tally()
_dropped_lock = threading.Lock()
_logged_internal: set[str] = set()


def _refresh() -> None:
    global _cache, _cache_gen
    ensure_fork_hook()
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
        new["errors"] = meter.create_counter(
            "faultlens.errors",
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


def errors_counter() -> metrics.Counter:
    if _cache_gen != STATE.generation:
        _refresh()
    return _cache["errors"]  # type: ignore[no-any-return]


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
    with _dropped_lock:
        _dropped.clear()
    _logged_internal.clear()


def _after_fork() -> None:
    # The child's own locks (another thread may have held these at fork time), and its own
    # tallies: what the parent dropped is the parent's to report, under the parent's pid.
    global _cache_lock, _dropped_lock, _dropped
    _cache_lock = threading.Lock()
    _dropped_lock = threading.Lock()
    _dropped = _Tally()
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
            _log.warning(
                "faultlens: internal error in %s (counted in faultlens.internal.dropped; "
                "the application is unaffected)",
                where,
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )
    except BaseException:
        pass
