"""Metrics and span events shared by retry, the circuit breaker and recovery.

Two kinds of signal, chosen by how often they happen:

- Per-call outcomes (``faultlens.retry.calls``, ``faultlens.circuit_breaker.calls``, the
  breaker's state and failure ratio) happen on every call, so the hot path only bumps plain
  ints under a lock it takes anyway; observable instruments read them at collection time.
  An OTel ``Counter.add`` per call would cost more than the whole retry wrapper.
- Failure-path signals (attempts, backoff, transitions, recovery actions) are rare and use
  ordinary synchronous instruments.

Instruments are bound to the meter of the current ``STATE.generation`` and rebuilt when it
changes (``configure()``, ``faultlens.testing.capture()``). Each registration reports the
local counts *relative to a baseline taken when it was made*, so a new provider starts from
zero while a provider that lives on keeps a monotonic series. In a forked child the counts
restart from zero (the child is a new instance; the parent's totals are the parent's).

Nothing here raises into user code: every failure is passed to ``internal_error``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation

from ..capture import get_meter, get_tracer, internal_error
from ..capture._state import STATE
from ._common import after_fork, label

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = [
    "RETRY_OUTCOMES",
    "RetryStats",
    "add_event",
    "count_retry_attempt",
    "count_retry_outcome",
    "instruments",
    "register_breaker",
    "retry_stats",
]

RETRY_OUTCOMES = (
    "success_first_attempt",
    "success_after_retry",
    "exhausted",
    "non_retryable",
    "aborted",
)
BREAKER_OUTCOMES = ("success", "failure", "ignored", "rejected")
BREAKER_STATES = ("closed", "open", "half_open")

AttrValue = str | bool | int | float


class RetryStats:
    """Per-operation outcome counts of retry calls; bumped under its own small lock."""

    __slots__ = ("counts", "lock", "operation")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.lock = threading.Lock()
        self.counts = [0, 0, 0, 0, 0]  # indexed like RETRY_OUTCOMES

    def snapshot(self) -> list[int]:
        with self.lock:
            return list(self.counts)


_retry_stats: dict[str, RetryStats] = {}
_breakers: weakref.WeakValueDictionary[str, CircuitBreaker] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def retry_stats(operation: str) -> RetryStats:
    """The shared stats object for an operation name (policies with one name add up)."""
    stats = _retry_stats.get(operation)
    if stats is None:
        after_fork(_reinit_after_fork)
        with _registry_lock:
            stats = _retry_stats.setdefault(operation, RetryStats(operation))
    return stats


def register_breaker(breaker: CircuitBreaker) -> None:
    """The registry by name: the newest breaker with a name is the one reported and found."""
    after_fork(_reinit_after_fork)
    with _registry_lock:
        _breakers[breaker.name] = breaker


def breakers() -> dict[str, CircuitBreaker]:
    with _registry_lock:
        return dict(_breakers)


# Bumped when the local counts restart from zero (a fork, faultlens.testing.reset()):
# registrations made before stop subtracting their baseline, which was taken from counts
# that no longer exist, and report the counts as they are.
_epoch = 0


def _reinit_after_fork() -> None:
    """In a forked child: new locks for everything here (a thread of the parent may have
    held one when it forked, and would never release it in the child), and counts that
    start from zero. The child is a new instance with its own series: the parent's retry
    and breaker call counts are the parent's to report; re-reported by the child, a sum
    over instances would count them twice. Only the counts restart: a breaker's state and
    window (how the dependency behaved) are behaviour, and the child keeps them."""
    global _registry_lock, _lock, _epoch
    _registry_lock = threading.Lock()
    _lock = threading.Lock()
    for stats in list(_retry_stats.values()):
        stats.lock = threading.Lock()
        stats.counts[:] = [0] * len(RETRY_OUTCOMES)
    # The breakers' own locks are renewed by their module's hook, which may run after this
    # one: the child has a single thread now, so the counts are zeroed without the lock.
    for b in list(_breakers.values()):
        b._counts[:] = [0] * len(BREAKER_OUTCOMES)
    _epoch += 1


class Instruments:
    """The synchronous instruments of one meter generation."""

    __slots__ = (
        "attempts",
        "backoff",
        "generation",
        "recovery_actions",
        "recovery_duration",
        "transitions",
    )

    def __init__(self, generation: int) -> None:
        self.generation = generation
        meter = get_meter()
        self.attempts: Counter = meter.create_counter(
            "faultlens.retry.attempts",
            unit="{attempt}",
            description="Failed retry attempts, by operation and error type",
        )
        self.backoff: Histogram = meter.create_histogram(
            "faultlens.retry.backoff.duration",
            unit="s",
            description="Backoff waited before a retry attempt",
        )
        self.transitions: Counter = meter.create_counter(
            "faultlens.circuit_breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state transitions, by breaker, from and to",
        )
        self.recovery_actions: Counter = meter.create_counter(
            "faultlens.recovery.actions",
            unit="{action}",
            description="Recovery actions, by strategy and outcome",
        )
        self.recovery_duration: Histogram = meter.create_histogram(
            "faultlens.recovery.duration",
            unit="s",
            description="Time a recovery strategy took",
        )
        _register_observables(meter)


_current: Instruments | None = None
_failed_gen = -1  # a generation whose meter refused to build them: do not retry per call
_lock = threading.Lock()


def instruments() -> Instruments | None:
    """This generation's instruments, built on first use; None if the meter cannot build
    them (counted once as an internal error; callers simply skip the measurement)."""
    cur = _current
    gen = STATE.generation
    if cur is not None and cur.generation == gen:
        return cur
    if _failed_gen == gen:
        return None
    return _rebuild()


def ensure() -> None:
    """Make sure this generation's observables are registered (cheap once they are)."""
    cur = _current
    gen = STATE.generation
    if (cur is None or cur.generation != gen) and _failed_gen != gen:
        _rebuild()


def _rebuild() -> Instruments | None:
    global _current, _failed_gen
    with _lock:
        gen = STATE.generation
        cur = _current
        if cur is not None and cur.generation == gen:
            return cur
        if _failed_gen == gen:
            return None
        try:
            _current = Instruments(gen)
        except Exception as exc:
            _failed_gen = gen
            internal_error("resilience instruments", exc)
            return None
        return _current


def _register_observables(meter: Any) -> None:
    epoch = _epoch
    retry_base = {op: s.snapshot() for op, s in list(_retry_stats.items())}
    breaker_base: weakref.WeakKeyDictionary[CircuitBreaker, tuple[int, ...]] = (
        weakref.WeakKeyDictionary()
    )
    for b in breakers().values():
        breaker_base[b] = b._call_counts()

    def observe_retry(options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            fresh = epoch != _epoch  # the counts restarted since: no baseline applies
            for op, stats in list(_retry_stats.items()):
                now = stats.snapshot()
                base = None if fresh else retry_base.get(op)
                for i, outcome in enumerate(RETRY_OUTCOMES):
                    value = now[i] - (base[i] if base is not None else 0)
                    if value > 0:
                        out.append(Observation(value, {"operation": op, "outcome": outcome}))
        except Exception as exc:
            internal_error("observe faultlens.retry.calls", exc)
        return out

    def observe_calls(options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            fresh = epoch != _epoch
            for b in breakers().values():
                now = b._call_counts()
                base = None if fresh else breaker_base.get(b)
                for i, outcome in enumerate(BREAKER_OUTCOMES):
                    value = now[i] - (base[i] if base is not None else 0)
                    if value > 0:
                        out.append(Observation(value, {"breaker": b._label, "outcome": outcome}))
        except Exception as exc:
            internal_error("observe faultlens.circuit_breaker.calls", exc)
        return out

    meter.create_observable_counter(
        "faultlens.retry.calls",
        callbacks=[observe_retry],
        unit="{call}",
        description="Calls through retry, by operation and terminal outcome",
    )
    meter.create_observable_counter(
        "faultlens.circuit_breaker.calls",
        callbacks=[observe_calls],
        unit="{call}",
        description="Calls through a circuit breaker, by breaker and outcome",
    )
    meter.create_observable_gauge(
        "faultlens.circuit_breaker.state",
        callbacks=[_observe_state],
        unit="{state}",
        description="1 for the breaker's current state, 0 for the others",
    )
    meter.create_observable_gauge(
        "faultlens.circuit_breaker.failure_ratio",
        callbacks=[_observe_ratio],
        unit="1",
        description="Failures over calls in the breaker's sliding window",
    )


def _observe_state(options: CallbackOptions) -> Iterable[Observation]:
    out: list[Observation] = []
    try:
        for b in breakers().values():
            state = b._observed_state()
            for s in BREAKER_STATES:
                out.append(Observation(1 if s == state else 0, {"breaker": b._label, "state": s}))
    except Exception as exc:
        internal_error("observe faultlens.circuit_breaker.state", exc)
    return out


def _observe_ratio(options: CallbackOptions) -> Iterable[Observation]:
    out: list[Observation] = []
    try:
        for b in breakers().values():
            out.append(Observation(b.failure_ratio, {"breaker": b._label}))
    except Exception as exc:
        internal_error("observe faultlens.circuit_breaker.failure_ratio", exc)
    return out


def add_event(
    name: str,
    attributes: Mapping[str, AttrValue],
    *,
    span_name: str | None = None,
) -> None:
    """Add an event to the current span; with ``span_name`` and no recording span, start a
    short span to carry it, so that rare but important events (a breaker opening) are never
    lost for want of a trace. Never raises."""
    try:
        if not STATE.enabled:
            return
        attributes = {k: label(v) if type(v) is str else v for k, v in attributes.items()}
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, attributes)
        elif span_name is not None:
            own = get_tracer().start_span(span_name)
            try:
                own.add_event(name, attributes)
            finally:
                own.end()
    except Exception as exc:
        internal_error(f"span event {name}", exc)


def reset() -> None:
    """Forget local counts and registries (faultlens.testing.reset()).

    Retry counts are zeroed rather than forgotten: functions decorated at import time keep
    their stats object, and must keep reporting after a reset."""
    global _current, _failed_gen, _epoch
    with _registry_lock:
        for stats in _retry_stats.values():
            with stats.lock:
                stats.counts[:] = [0] * len(stats.counts)
        _breakers.clear()
        _epoch += 1
    with _lock:
        _current = None
        _failed_gen = -1


# -- retries made elsewhere (a task queue's own retry, e.g. Celery's) ----------------------------


def count_retry_attempt(operation: str, error_type: str, delay: float | None) -> None:
    """One failed attempt of a retry loop faultlens does not run itself, counted like
    ``@retry``'s: ``faultlens.retry.attempts`` and, when a wait follows, the backoff
    histogram. ``error_type`` must be a clean, low-cardinality label."""
    inst = instruments()
    if inst is None:
        return
    inst.attempts.add(1, {"operation": operation, "error.type": error_type})
    if delay is not None:
        inst.backoff.record(delay, {"operation": operation})


def count_retry_outcome(operation: str, outcome: str) -> None:
    """One terminal outcome (one of ``RETRY_OUTCOMES``) in ``faultlens.retry.calls``,
    through the same per-operation counters as ``@retry``, so one dashboard shows both."""
    index = RETRY_OUTCOMES.index(outcome)  # ValueError names a bad outcome at once
    ensure()  # observables first: a registration counts from the baseline it takes
    stats = retry_stats(operation)
    with stats.lock:
        stats.counts[index] += 1
