"""CircuitBreaker: stop calling a dependency that keeps failing, try it again later.

States (``breaker.state``):

- ``closed``: calls pass. Each outcome goes into a sliding window. The breaker opens after
  ``failure_threshold`` consecutive failures, or, with ``failure_rate_threshold``, when at
  least ``minimum_calls`` calls in the window failed at that rate or more.
- ``open``: calls are rejected with ``CircuitOpenError`` (carrying ``retry_after``, the
  seconds until the next trial) until ``open_timeout`` has passed since it opened.
- ``half_open``: at most ``half_open_max_calls`` trial calls run at a time; the others are
  rejected. The breaker closes once that many trials have succeeded and re-opens on the
  first trial failure. A trial that never reports back (a ``with breaker:`` block in a
  generator that is never resumed, a coroutine that is never awaited) cannot hold its slot
  forever: after ``open_timeout`` seconds (at least ``TRIAL_LEASE_MIN``) the slot is given
  to the next caller. The late trial's outcome, if it ever comes, still counts.

Plus two manual modes: ``force_open()`` (reject everything until ``reset()``) and
``disable()`` (let everything through, record nothing, until ``reset()``).

Outcomes of a call: ``success``; ``failure`` (an exception ``failure_on`` matches, by
default every ``Exception``; or a success slower than ``slow_call_duration``); ``ignored``
(an exception in ``ignore``, or cancellation, ``concurrent.futures.CancelledError`` and
other ``BaseException``\\ s: neither a success nor a failure; in half-open the trial permit
is handed back, so a cancelled trial can never leave the breaker stuck); ``rejected``. An
exception that ``failure_on`` does not match counts as a success, as in resilience4j, and
so does ``StopIteration``/``StopAsyncIteration`` (a guarded ``__next__`` reporting the end
of its items): they are the iterator protocol, never a failure, whatever ``failure_on``
says. An async callable object, or any callable returning a coroutine, is guarded as async:
the outcome is what awaiting the coroutine gives.

``with breaker:`` holds its permit until the block exits, in whatever context that happens:
a generator resumed under another ``contextvars`` context (Starlette and anyio iterate sync
streaming bodies under ``copy_context().run``), or another thread, returns the permit like
any other exit.

Concurrency: all state lives under one ``threading.Lock`` that is never held across the
user's call (nor across an ``await``), so the breaker is safe under threads and asyncio and
a slow call never blocks the others. A closed breaker admits a call without taking the lock
at all. A result reaching the breaker after it changed state (a slow call admitted before a
trip) is counted in the metrics but does not move the new state.

Every transition counts ``faultlens.circuit_breaker.transitions{breaker, from, to}``, adds a
``faultlens.circuit_breaker.transition`` span event (on the current span, else on a short
span of its own) and calls the listeners, outside the lock; a listener that raises is
counted as an internal error and never reaches the caller.
"""

from __future__ import annotations

import contextvars
import math
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, cast

from ..capture import internal_error
from ..capture._state import STATE
from ..errors import ConfigError, FaultError
from . import _telemetry as tel
from . import _timing
from ._common import (
    ENDS_ITERATION,
    ExceptionSpec,
    after_fork,
    callable_name,
    check_number,
    control_flow,
    is_coroutine,
    kind_of,
    label,
    matcher,
    wrap,
)
from ._defaults import defaults
from ._window import CountWindow, TimeWindow

__all__ = [
    "BreakerStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "StateChange",
    "StateListener",
    "breakers",
    "get_breaker",
]

F = TypeVar("F", bound=Callable[..., Any])
State = Literal["closed", "open", "half_open"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
FORCED_OPEN = "forced_open"
DISABLED = "disabled"

SUCCESS, FAILURE, IGNORED, REJECTED = range(4)  # indexes of the calls counts

DEFAULT_COUNT_WINDOW = 100
DEFAULT_TIME_WINDOW = 60.0
DEFAULT_MINIMUM_CALLS = 10
TRIAL_LEASE_MIN = 1.0  # seconds a half-open trial keeps its slot at the least

_UNSET: Any = object()


class CircuitOpenError(FaultError):
    """A circuit breaker rejected the call without running it.

    ``retry_after`` is the number of seconds until the breaker admits its next trial call:
    0.0 while trials are already running (half-open), None when it was forced open.
    ``faultlens.retry`` honours it: a retried rejection waits at least ``retry_after``, the
    call gives up when that would pass its deadline, and a forced-open breaker (None) is
    never retried.
    """

    code = "EXE_CIRCUIT_OPEN"

    def __init__(self, breaker: str, retry_after: float | None) -> None:
        if retry_after is None:
            when = "it was forced open; call reset() to close it"
        elif retry_after > 0:
            when = f"next trial in {retry_after:.3g} s"
        else:
            when = "trial calls are running"
        super().__init__(
            f"circuit breaker {breaker!r} is open; {when}",
            details={"breaker": breaker, "retry_after": retry_after},
        )
        self.breaker = breaker
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class StateChange:
    """What a state listener receives: one transition of one breaker."""

    breaker: str
    from_state: str
    to_state: str
    reason: str
    at: float  # the breaker's clock
    failure_ratio: float


class StateListener(Protocol):
    def __call__(self, change: StateChange, /) -> None: ...


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """A consistent snapshot of a breaker's counters."""

    state: str
    mode: str
    success: int
    failure: int
    ignored: int
    rejected: int
    window_calls: int
    window_failures: int
    consecutive_failures: int
    half_open_in_flight: int


def _any_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


def _nothing(exc: BaseException) -> bool:
    return False


class _Trial:
    """The permit of one half-open trial call (its identity is the token)."""

    __slots__ = ("epoch",)

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch


# What the call paths hand back to the breaker: the state epoch the call was admitted in
# (an int, the closed fast path) or a half-open trial's permit.
Permit = int | _Trial


def _epoch(permit: Permit) -> int:
    return permit if type(permit) is int else permit.epoch  # type: ignore[union-attr]


class _Held:
    """One ``with breaker:`` block's permit."""

    __slots__ = ("breaker", "permit", "started")

    def __init__(self, breaker: CircuitBreaker, permit: Permit, started: float) -> None:
        self.breaker = breaker
        self.permit = permit
        self.started = started


# The permits of `with breaker:` blocks entered in this context, innermost last: how an exit
# finds its own block's permit. The breaker also keeps every outstanding block permit, so an
# exit in another context (which cannot see this variable's value) still returns one.
_held: contextvars.ContextVar[tuple[_Held, ...]] = contextvars.ContextVar(
    "faultlens_breaker_permits", default=()
)
_MISSING: Any = object()

# Every breaker alive, for re-creating their locks in a forked child.
_all_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


class CircuitBreaker:
    """A named circuit breaker; see the module docs for the states and outcomes.

    ::

        registry = faultlens.CircuitBreaker("registry", failure_threshold=5, open_timeout=30.0)

        @registry
        def pull(image): ...

        with registry:
            push(image)

    ``failure_threshold`` and ``open_timeout`` left unset take the defaults in force when the
    breaker is used: ``error_handling.recovery.circuit_breaker`` (``failure_threshold``,
    ``timeout``) once ``configure()`` read it, else the built-in 5 and 30 s (the same values
    the configuration has when nothing sets them; see ``ResilienceDefaults``). A half-open
    trial that has not reported back after ``open_timeout`` (at least ``TRIAL_LEASE_MIN`` =
    1 s) gives its slot to the next caller, so a lost trial cannot keep the breaker half-open
    and rejecting forever. Passing ``failure_rate_threshold`` alone turns the consecutive
    rule off (pass both to use both).
    ``window_size`` is a number of calls for ``window_type="count"`` (default 100) and
    seconds for ``"time"`` (default 60).
    ``clock`` (default: monotonic, virtual under ``faultlens.testing.no_sleep()``) can be
    injected for tests.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int | None = _UNSET,
        open_timeout: float | None = None,
        half_open_max_calls: int = 1,
        failure_rate_threshold: float | None = None,
        window_size: float | None = None,
        window_type: Literal["count", "time"] = "count",
        minimum_calls: int | None = None,
        slow_call_duration: float | None = None,
        ignore: ExceptionSpec = (),
        failure_on: ExceptionSpec | None = None,
        clock: Callable[[], float] | None = None,
        listeners: Iterable[StateListener] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"must be a non-empty string, got {name!r}", key="name")
        if failure_threshold is _UNSET:
            explicit_threshold: int | None = None
            use_threshold = failure_rate_threshold is None
        else:
            explicit_threshold = failure_threshold
            use_threshold = failure_threshold is not None
            if failure_threshold is not None:
                check_number(
                    failure_threshold,
                    "failure_threshold",
                    minimum=1,
                    integer=True,
                    fix="the number of consecutive failures that opens the breaker",
                )
        if open_timeout is not None:
            check_number(
                open_timeout,
                "open_timeout",
                fix="seconds the breaker stays open before a trial call",
            )
        self._config: dict[str, Any] = {
            "open_timeout": open_timeout,
            "half_open_max_calls": half_open_max_calls,
            "failure_rate_threshold": failure_rate_threshold,
            "window_size": window_size,
            "window_type": window_type,
            "minimum_calls": minimum_calls,
            "slow_call_duration": slow_call_duration,
            "ignore": ignore,
            "failure_on": failure_on,
            "clock": clock,
            "listeners": tuple(listeners),
        }
        if failure_threshold is not _UNSET:
            self._config["failure_threshold"] = failure_threshold
        check_number(
            half_open_max_calls,
            "half_open_max_calls",
            minimum=1,
            integer=True,
            fix="how many trial calls may run at once in half-open",
        )
        if failure_rate_threshold is not None:
            check_number(
                failure_rate_threshold,
                "failure_rate_threshold",
                strict=True,
                fix="a ratio in (0, 1], e.g. 0.5 for 50%",
            )
            if failure_rate_threshold > 1:
                raise ConfigError(
                    f"must be a ratio in (0, 1], got {failure_rate_threshold!r}; write 0.5 for 50%",
                    key="failure_rate_threshold",
                )
        if window_type not in ("count", "time"):
            raise ConfigError(f"must be 'count' or 'time', got {window_type!r}", key="window_type")
        if window_type == "count":
            size = DEFAULT_COUNT_WINDOW if window_size is None else window_size
            check_number(
                size,
                "window_size",
                minimum=1,
                integer=True,
                fix="the number of most recent calls the failure rate is taken over",
            )
        else:
            size = DEFAULT_TIME_WINDOW if window_size is None else window_size
            check_number(
                size,
                "window_size",
                strict=True,
                fix="the seconds of history the failure rate is taken over",
            )
        if minimum_calls is None:
            minimum = (
                min(DEFAULT_MINIMUM_CALLS, int(size))
                if window_type == "count"
                else (DEFAULT_MINIMUM_CALLS)
            )
        else:
            check_number(
                minimum_calls,
                "minimum_calls",
                minimum=1,
                integer=True,
                fix="calls needed in the window before the failure rate counts",
            )
            minimum = minimum_calls
        if slow_call_duration is not None:
            check_number(
                slow_call_duration,
                "slow_call_duration",
                strict=True,
                fix="seconds after which a successful call counts as a failure",
            )
        if clock is not None and not callable(clock):
            raise ConfigError(f"must be a callable returning seconds, got {clock!r}", key="clock")

        self.name = name
        self._label = label(name)
        self.half_open_max_calls = half_open_max_calls
        self.failure_rate_threshold = failure_rate_threshold
        self.minimum_calls = minimum
        self.slow_call_duration = slow_call_duration
        self.window_type = window_type
        self.window_size = size
        self._use_threshold = use_threshold
        self._explicit = (explicit_threshold, open_timeout)
        self._limits: tuple[int | None, float] | None = None
        self._limits_gen = -1
        self._ignore = matcher(ignore, "ignore", _nothing)
        self._failure_on = matcher(failure_on, "failure_on", _any_exception)
        self._clock: Callable[[], float] = clock if clock is not None else _timing.monotonic
        self._listeners: tuple[StateListener, ...] = self._config["listeners"]

        self._lock = threading.Lock()
        self._state = CLOSED
        self._epoch = 0
        self._snap: tuple[str, int] = (CLOSED, 0)  # read without the lock on the fast path
        self._opened_at = 0.0
        self._trials: dict[_Trial, float] = {}  # running half-open trials -> admitted at
        self._blocks: dict[_Held, None] = {}  # outstanding `with` permits, oldest first
        self._trial_successes = 0
        self._consecutive = 0
        self._window: CountWindow | TimeWindow = (
            CountWindow(int(size)) if window_type == "count" else TimeWindow(size, self._clock)
        )
        self._counts = [0, 0, 0, 0]
        self._gen = -1
        _all_breakers.add(self)
        after_fork(_reinit_after_fork)
        tel.register_breaker(self)
        tel.ensure()  # so the state gauge shows the breaker before its first call

    # -- configuration -------------------------------------------------------------------

    def _resolved(self) -> tuple[int | None, float]:
        """(consecutive threshold or None, open timeout): explicit > the defaults in force
        (``configure()``'s, else the built-in ones), re-read once per configuration."""
        gen = STATE.generation
        limits = self._limits
        if limits is not None and self._limits_gen == gen:
            return limits
        threshold, timeout = self._explicit
        d = defaults()
        if threshold is None and self._use_threshold:
            threshold = d.failure_threshold
        limits = (
            threshold if self._use_threshold else None,
            d.open_timeout if timeout is None else timeout,
        )
        self._limits = limits
        self._limits_gen = gen
        return limits

    @property
    def failure_threshold(self) -> int | None:
        return self._resolved()[0]

    @property
    def open_timeout(self) -> float:
        return self._resolved()[1]

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(StateChange)`` after every transition (outside the lock)."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: StateListener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    # -- reading ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``closed``, ``open`` or ``half_open``; forced-open reads as ``open`` and disabled as
        ``closed`` (see ``mode``). An open breaker whose timeout has passed reads (and
        becomes) ``half_open`` without waiting for the next call."""
        changes: list[StateChange] = []
        with self._lock:
            self._expire_open(changes)
            st = self._state
        self._emit(changes)
        if st == FORCED_OPEN:
            return "open"
        if st == DISABLED:
            return "closed"
        return st  # type: ignore[return-value]

    def _observed_state(self) -> State:
        """The state as the gauge reports it, without making a transition: callbacks run
        inside the metric reader's collection, which is no place for span events and
        listeners. An open breaker whose timeout passed reads ``half_open``."""
        with self._lock:
            st = self._state
            if st == OPEN and self._clock() >= self._opened_at + self._resolved()[1]:
                st = HALF_OPEN
        if st == FORCED_OPEN:
            return "open"
        if st == DISABLED:
            return "closed"
        return st  # type: ignore[return-value]

    @property
    def mode(self) -> Literal["normal", "forced_open", "disabled"]:
        st = self._state
        if st == FORCED_OPEN:
            return "forced_open"
        if st == DISABLED:
            return "disabled"
        return "normal"

    @property
    def failure_ratio(self) -> float:
        """Failures over calls in the sliding window (0.0 when it is empty)."""
        with self._lock:
            calls, failures = self._window.counts()
        return failures / calls if calls else 0.0

    def stats(self) -> BreakerStats:
        with self._lock:
            calls, failures = self._window.counts()
            s, f, i, r = self._counts
            st = self._state
            return BreakerStats(
                state="open" if st == FORCED_OPEN else "closed" if st == DISABLED else st,
                mode=self.mode,
                success=s,
                failure=f,
                ignored=i,
                rejected=r,
                window_calls=calls,
                window_failures=failures,
                consecutive_failures=self._consecutive,
                half_open_in_flight=len(self._trials),
            )

    def _call_counts(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._counts)

    # -- manual control ----------------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until ``reset()`` (maintenance, a known outage)."""
        self._manual(FORCED_OPEN, "forced open")

    def disable(self) -> None:
        """Let every call through and record nothing until ``reset()``."""
        self._manual(DISABLED, "disabled")

    def reset(self) -> None:
        """Back to closed with an empty window, from any state or mode."""
        self._manual(CLOSED, "reset")

    def _manual(self, to: str, reason: str) -> None:
        changes: list[StateChange] = []
        with self._lock:
            if self._state != to:
                self._to(to, reason, changes)
            elif to == CLOSED:
                self._window.reset()
                self._consecutive = 0
        self._emit(changes)

    # -- the state machine (all under self._lock) ------------------------------------------

    def _to(self, to: str, reason: str, changes: list[StateChange]) -> None:
        frm = self._state
        now = self._clock()
        calls, failures = self._window.counts()
        self._state = to
        self._epoch += 1
        self._snap = (to, self._epoch)
        self._trials = {}
        self._trial_successes = 0
        if to == OPEN:
            self._opened_at = now
        if to in (CLOSED, DISABLED):
            self._window.reset()
            self._consecutive = 0
        changes.append(
            StateChange(self.name, frm, to, reason, now, failures / calls if calls else 0.0)
        )

    def _expire_open(self, changes: list[StateChange]) -> None:
        if self._state == OPEN and self._clock() >= self._opened_at + self._resolved()[1]:
            self._to(HALF_OPEN, "open timeout elapsed", changes)

    def _expire_trials(self) -> None:
        """Free the slots of half-open trials that never reported back (see module docs)."""
        trials = self._trials
        if not trials:
            return
        lease = max(self._resolved()[1], TRIAL_LEASE_MIN)
        cutoff = self._clock() - lease
        for trial, admitted in list(trials.items()):
            if admitted > cutoff:
                break  # oldest first: the rest are younger
            del trials[trial]

    def _acquire(self) -> Permit:
        """A permit or CircuitOpenError. Only for non-closed states."""
        changes: list[StateChange] = []
        rejected: CircuitOpenError | None = None
        permit: Permit
        with self._lock:
            self._expire_open(changes)
            st = self._state
            permit = self._epoch
            admit = st in (CLOSED, DISABLED)
            if st == HALF_OPEN:
                if len(self._trials) >= self.half_open_max_calls:
                    self._expire_trials()
                if len(self._trials) < self.half_open_max_calls:
                    admit = True
                    permit = _Trial(self._epoch)
                    self._trials[permit] = self._clock()
            if not admit:
                self._counts[REJECTED] += 1
                if st == OPEN:
                    wait: float | None = max(
                        0.0, self._opened_at + self._resolved()[1] - self._clock()
                    )
                else:
                    wait = None if st == FORCED_OPEN else 0.0
                rejected = CircuitOpenError(self.name, wait)
        if changes:
            self._emit(changes)
        if rejected is not None:
            raise rejected
        return permit

    def _success(self, permit: Permit, started: float) -> None:
        if self.slow_call_duration is not None and (
            self._clock() - started >= self.slow_call_duration
        ):
            self._failure(permit, "slow call")
            return
        with self._lock:
            self._counts[SUCCESS] += 1
            if _epoch(permit) != self._epoch:
                return
            st = self._state
            if st == CLOSED:
                self._consecutive = 0
                self._window.success()
                return
            if st != HALF_OPEN:
                return
            if type(permit) is _Trial:
                self._trials.pop(permit, None)
            self._trial_successes += 1
            if self._trial_successes < self.half_open_max_calls:
                return
            changes: list[StateChange] = []
            self._to(CLOSED, "trial calls succeeded", changes)
        self._emit(changes)

    def _failure(self, permit: Permit, reason: str) -> None:
        changes: list[StateChange] = []
        with self._lock:
            self._counts[FAILURE] += 1
            if _epoch(permit) != self._epoch:
                return
            st = self._state
            if st == CLOSED:
                self._consecutive += 1
                self._window.failure()
                threshold = self._resolved()[0]
                if threshold is not None and self._consecutive >= threshold:
                    self._to(OPEN, f"{self._consecutive} consecutive failures ({reason})", changes)
                elif self.failure_rate_threshold is not None:
                    calls, failures = self._window.counts()
                    if calls >= self.minimum_calls and (
                        failures / calls >= self.failure_rate_threshold
                    ):
                        self._to(OPEN, f"failure rate {failures}/{calls} ({reason})", changes)
            elif st == HALF_OPEN:
                self._to(OPEN, f"trial call failed ({reason})", changes)
        if changes:
            self._emit(changes)

    def _ignored(self, permit: Permit) -> None:
        with self._lock:
            self._counts[IGNORED] += 1
            if type(permit) is _Trial and permit.epoch == self._epoch:
                self._trials.pop(permit, None)

    def _error(self, permit: Permit, exc: BaseException, started: float = math.inf) -> None:
        """Sort an exception into failure / ignored / success. Never raises."""
        try:
            if isinstance(exc, ENDS_ITERATION):
                self._success(permit, started)  # the iterator protocol, not a failure
                return
            if control_flow(exc):
                self._ignored(permit)  # cancellation, interrupts: not the dependency's fault
                return
            try:
                ignored = bool(self._ignore(exc))
            except Exception as e:
                internal_error(f"breaker {self._label} ignore= predicate", e)
                ignored = False
            if ignored:
                self._ignored(permit)
                return
            try:
                failed = bool(self._failure_on(exc))
            except Exception as e:
                internal_error(f"breaker {self._label} failure_on= predicate", e)
                failed = True
            if failed:
                self._failure(permit, label(type(exc).__name__))
            else:
                self._success(permit, math.inf)
        except Exception as e:
            internal_error(f"breaker {self._label}", e)

    def _emit(self, changes: list[StateChange]) -> None:
        """Metrics, span event and listeners for transitions; outside the lock."""
        for change in changes:
            try:
                labels = {"breaker": self._label, "from": change.from_state, "to": change.to_state}
                inst = tel.instruments()
                if inst is not None:
                    inst.transitions.add(1, labels)
                tel.add_event(
                    "faultlens.circuit_breaker.transition",
                    {
                        "faultlens.circuit_breaker.name": self._label,
                        "faultlens.circuit_breaker.from": change.from_state,
                        "faultlens.circuit_breaker.to": change.to_state,
                        "faultlens.circuit_breaker.reason": label(change.reason),
                        "faultlens.circuit_breaker.failure_ratio": change.failure_ratio,
                    },
                    span_name=f"faultlens.circuit_breaker {self._label}",
                )
            except Exception as e:
                internal_error("breaker transition telemetry", e)
            for listener in self._listeners:
                try:
                    listener(change)
                except Exception as e:
                    internal_error(f"breaker {self._label} listener", e)

    # -- the call paths --------------------------------------------------------------------

    def _admit(self) -> Permit:
        if self._gen != STATE.generation:
            tel.ensure()
            self._gen = STATE.generation
        snap = self._snap
        if snap[0] is CLOSED:
            return snap[1]
        return self._acquire()

    def _run_sync(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        permit = self._admit()
        started = self._clock() if self.slow_call_duration is not None else 0.0
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._error(permit, exc, started)
            raise
        if is_coroutine(result):  # an async callable the decoration could not see
            return self._settle_async(permit, started, result)
        self._success(permit, started)
        return result

    async def _settle_async(self, permit: Permit, started: float, pending: Any) -> Any:
        try:
            result = await pending
        except BaseException as exc:
            self._error(permit, exc, started)
            raise
        self._success(permit, started)
        return result

    async def _run_async(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        permit = self._admit()
        started = self._clock() if self.slow_call_duration is not None else 0.0
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._error(permit, exc, started)
            raise
        self._success(permit, started)
        return result

    def __call__(self, func: F) -> F:
        """Guard a sync or async function with this breaker."""
        kind = kind_of(func)
        if kind in ("gen", "asyncgen"):
            raise ConfigError(
                f"cannot guard the generator function {callable_name(func)!r} as one call; "
                "use `with breaker:` around the part that talks to the dependency",
                key="CircuitBreaker",
            )
        wrapper = self._run_async if kind == "async" else self._run_sync
        return cast(F, wrap(func, wrapper, kind == "async", self))

    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` through the breaker (an async ``func``'s coroutine
        comes back guarded: await it)."""
        return self._run_sync(func, None, args, kwargs)

    async def call_async(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``func(*args, **kwargs)`` through the breaker."""
        return await self._run_async(func, None, args, kwargs)

    def __enter__(self) -> CircuitBreaker:
        permit = self._admit()
        started = self._clock() if self.slow_call_duration is not None else 0.0
        block = _Held(self, permit, started)
        self._blocks[block] = None
        held = _held.get()
        if held and any(h not in h.breaker._blocks for h in held):
            # drop entries whose permit an exit in another context returned, so a context
            # that keeps handing its exits to others does not accumulate them
            held = tuple(h for h in held if h in h.breaker._blocks)
        _held.set((*held, block))
        return self

    def _release_block(self) -> _Held | None:
        """The permit this exit returns: its own block's, found in the context it entered
        in; else (an exit in another context or thread) the oldest outstanding one, so that
        every exit returns exactly one permit whatever context runs it."""
        held = _held.get()
        blocks = self._blocks
        found: _Held | None = None
        keep = list(held)
        for i in range(len(held) - 1, -1, -1):
            block = held[i]
            if block.breaker is not self:
                continue
            del keep[i]
            if blocks.pop(block, _MISSING) is not _MISSING:
                found = block
                break
            # else: a stale entry, whose permit an exit in another context returned
        if len(keep) != len(held):
            _held.set(tuple(keep))
        if found is not None:
            return found
        for block in list(blocks):
            if blocks.pop(block, _MISSING) is not _MISSING:
                return block
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            block = self._release_block()
        except Exception as e:
            internal_error(f"breaker {self._label}: return a permit", e)
            return
        if block is None:
            internal_error(f"breaker {self._label}: __exit__ without a matching __enter__")
            return
        if exc is None:
            self._success(block.permit, block.started)
        else:
            self._error(block.permit, exc, block.started)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __reduce__(self) -> tuple[Any, ...]:
        # A breaker is per-process state: it pickles as "the breaker of this name" (made
        # with the same configuration in a process that has none yet), which is what lets a
        # decorated callable object travel to a process pool.
        return (_restore, (self.name, self._config))

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state}>"


def _restore(name: str, config: dict[str, Any]) -> CircuitBreaker:
    return get_breaker(name, **config)


def _reinit_after_fork() -> None:
    """In a forked child: new locks (a thread of the parent may have held one)."""
    global _create_lock
    _create_lock = threading.Lock()
    for b in list(_all_breakers):
        b._lock = threading.Lock()


def breakers() -> dict[str, CircuitBreaker]:
    """The live breakers by name (the newest one when a name was reused)."""
    return tel.breakers()


def get_breaker(name: str, **config: Any) -> CircuitBreaker:
    """The registered breaker called ``name``; created with ``config`` if there is none.

    ``config`` is ignored when the breaker exists: the first definition wins, so that
    every module asking for "registry" shares one breaker.
    """
    after_fork(_reinit_after_fork)
    with _create_lock:
        existing = tel.breakers().get(name)
        if existing is not None:
            return existing
        return CircuitBreaker(name, **config)


_create_lock = threading.Lock()
