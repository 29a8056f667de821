"""Retry: bounded attempts, an overall deadline and jittered exponential backoff, with every
call ending in exactly one counted outcome.

Two shapes share one policy object, ``Retry``:

- a decorator for sync and async functions (``@faultlens.retry(...)``), classified once at
  decoration time; the wrapper keeps the signature and method binding (see ``_common.wrap``);
- an attempt loop for code that is not a single call::

      for attempt in faultlens.retrying(attempts=3):
          with attempt:
              push(batch)

  and ``async for`` the same way. A loop left after a swallowed failure (a ``break``, or
  an exception raised in the loop body outside ``with attempt:``) ends ``aborted``.

Semantics, per call (state is per call, so one policy is safe under threads and asyncio):

- An attempt fails with an ``Exception``. If ``on=`` (default: what the error catalog marks
  retryable) does not cover it, the exception propagates at once: ``non_retryable``.
- A ``BaseException`` that is not an ``Exception`` (cancellation, KeyboardInterrupt,
  SystemExit, GeneratorExit, ...), and ``concurrent.futures.CancelledError``, are never
  retried, whatever ``on=`` says: ``aborted``. The same holds when one arrives during the
  backoff wait (a cancelled task, Ctrl-C while sleeping).
- ``StopIteration``/``StopAsyncIteration`` end a call by protocol (a retried ``__next__``
  or ``__anext__`` reporting the end of the items): they propagate at once, unchanged,
  are never retried (not even with ``on=Exception``) and the call counts as a success.
- An async callable object (an instance whose ``__call__`` is ``async def``) or any
  callable that returns a coroutine is retried as async: the coroutine is awaited and the
  outcome is what it raised or returned.
- An open circuit breaker's ``CircuitOpenError`` (retryable in the catalog) is retried
  only as its ``retry_after`` allows: the wait before the next attempt is at least
  ``retry_after`` (even above ``wait_max``), and if that wait would pass the deadline the
  call gives up at once (``exhausted``). A breaker that was forced open
  (``retry_after`` None) is never retried (``non_retryable``): it stays open until someone
  resets it, so waiting cannot help.
- Any other retryable failure that carries the server's wish to be left alone for a while
  (an HTTP ``429``/``503`` answer of httpx or requests with a ``Retry-After`` header, in
  seconds or as an HTTP date, or an exception with a numeric ``retry_after`` attribute; see
  ``faultlens.errors.retry_after_of``) is retried no sooner than that: the wait is at least
  ``retry_after`` (even above ``wait_max``), since an earlier attempt would only be refused
  again. The call waits that long only up to a cap: the deadline when there is one (``timeout``
  says how long the caller accepts to wait), else ``max(wait_max, 60 s)`` (``RETRY_AFTER_MAX``,
  the bound the OpenAI, Anthropic and Stripe SDKs use). A server asking for more than the cap
  makes the call give up at once (``exhausted``) without sleeping, so the caller gets the
  answer (and its ``Retry-After``) now instead of retrying into a certain refusal or blocking
  for as long as a server says. A value that is not a valid wait (negative, NaN, infinite,
  not a number, unparsable) is ignored: the normal backoff applies. The wait chosen is the one
  the backoff histogram and the ``faultlens.retry`` event report.
- Otherwise the next delay is drawn; if the attempts are used up, or sleeping that long
  would pass the deadline (``timeout`` seconds after the call started), the call ends:
  ``exhausted``. The deadline is never slept past; an attempt that is already running is
  not interrupted.
- When the call gives up, the **last exception itself** is re-raised, unchanged (no wrapper
  exception, no added notes), so ``except ConnectionError`` keeps working around a retried
  call. Its traceback gains only the retry wrapper's frame.

Backoff: the ``n``-th retry waits ``min(wait_max, wait_initial * wait_exp_base ** (n - 1))``
without jitter; with jitter (the default) a uniformly random delay between ``wait_initial``
and ``min(wait_max, wait_initial * wait_exp_base ** n)``, i.e. full jitter over the
exponential band, always within ``[wait_initial, wait_max]``.

Inside ``resilient()`` the failures retry swallows (every failed attempt but the last) are
also recorded with ``record_error``, once each, so ``faultlens.errors`` shows what the
dependency did and not only the final outcome (see ``_compose``).

Signals: a span event ``faultlens.retry`` on the current span for each failed attempt;
``faultlens.retry.attempts{operation, error.type}`` per failed attempt;
``faultlens.retry.backoff.duration{operation}`` per wait; ``faultlens.retry.calls{operation,
outcome}`` once per call, aggregated locally (see ``_telemetry``).
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from ..capture import internal_error, record_error
from ..capture._state import STATE
from ..errors import ConfigError, error_type, retry_after_of
from . import _telemetry as tel
from . import _timing
from ._breaker import CircuitOpenError
from ._common import (
    ENDS_ITERATION,
    MAX_SECONDS,
    ExceptionSpec,
    callable_name,
    catalog_retryable,
    check_number,
    control_flow,
    is_coroutine,
    kind_of,
    label,
    wrap,
)
from ._common import matcher as make_matcher
from ._defaults import defaults

__all__ = ["RETRY_AFTER_MAX", "Attempt", "Retry", "Retrying", "retry", "retrying"]

F = TypeVar("F", bound=Callable[..., Any])

FIRST, AFTER, EXHAUSTED, NON_RETRYABLE, ABORTED = range(5)  # indexes of RETRY_OUTCOMES

_random = random.Random()

RETRY_AFTER_MAX = 60.0
"""The longest server-requested wait (``Retry-After``) a call without a deadline honours,
unless its ``wait_max`` is longer; a longer request ends the call (``exhausted``)."""


@dataclass(frozen=True, slots=True)
class _Params:
    attempts: int
    timeout: float | None
    wait_initial: float
    wait_max: float
    wait_exp_base: float
    wait_jitter: bool

    def delay(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry)."""
        lo = self.wait_initial
        hi = self._ceiling(retry_number if self.wait_jitter else retry_number - 1)
        if not self.wait_jitter or hi <= lo:
            return hi if hi >= lo else lo
        return _random.uniform(lo, hi)

    def _ceiling(self, exponent: int) -> float:
        try:
            value = self.wait_initial * self.wait_exp_base**exponent
        except OverflowError:
            return self.wait_max
        return min(self.wait_max, value)


class Retry:
    """A retry policy; ``faultlens.retry(...)`` builds one. Use it as a decorator (on any
    number of functions) or call ``.retrying()`` for an attempt loop.

    Arguments left as None take the defaults in force when the call runs: the
    ``error_handling.retry`` section once ``faultlens.configure()`` read it (``max_retries +
    1`` attempts, ``base_delay``, ``max_delay``, ``exponential_backoff``, ``jitter``), else
    the built-in 3 attempts, 0.1 s initial wait, 5 s maximum wait, base 2, jitter on (the
    same values the configuration has when nothing sets them; see ``ResilienceDefaults``).
    ``timeout`` (total seconds for the whole call, attempts and waits included) defaults to
    none. Explicit arguments always win.
    """

    __slots__ = ("_explicit", "_on_spec", "_params", "_params_gen", "on", "operation")

    def __init__(
        self,
        *,
        attempts: int | None = None,
        timeout: float | None = None,
        wait_initial: float | None = None,
        wait_max: float | None = None,
        wait_exp_base: float | None = None,
        wait_jitter: bool | None = None,
        on: ExceptionSpec | None = None,
        operation: str | None = None,
    ) -> None:
        if attempts is not None:
            check_number(
                attempts,
                "attempts",
                minimum=1,
                integer=True,
                fix="use attempts=1 to call once without retrying",
            )
        if timeout is not None:
            check_number(
                timeout,
                "timeout",
                strict=True,
                fix="pass the total seconds the call may take, or None for no deadline",
            )
        if wait_initial is not None:
            check_number(wait_initial, "wait_initial", fix="pass seconds, e.g. 0.1")
        if wait_max is not None:
            check_number(wait_max, "wait_max", fix="pass seconds, e.g. 5.0")
        if wait_initial is not None and wait_max is not None and wait_max < wait_initial:
            raise ConfigError(
                f"must be >= wait_initial ({wait_initial:g}), got {wait_max:g}; "
                "raise wait_max or lower wait_initial",
                key="wait_max",
            )
        if wait_exp_base is not None:
            check_number(
                wait_exp_base,
                "wait_exp_base",
                minimum=1,
                fix="use 1 for a constant wait, 2 to double it each retry",
            )
        if wait_jitter is not None and not isinstance(wait_jitter, bool):
            raise ConfigError(f"must be True or False, got {wait_jitter!r}", key="wait_jitter")
        if operation is not None and (not isinstance(operation, str) or not operation):
            raise ConfigError(
                f"must be a non-empty string (a metric label), got {operation!r}",
                key="operation",
            )
        self.on: Callable[[BaseException], bool] = make_matcher(on, "on", catalog_retryable)
        self._on_spec = on
        self.operation = operation
        self._explicit = (attempts, timeout, wait_initial, wait_max, wait_exp_base, wait_jitter)
        self._params: _Params | None = None
        self._params_gen = -1

    # -- configuration -------------------------------------------------------------------

    def params(self) -> _Params:
        """The effective parameters (explicit > configured > built-in), per configuration."""
        gen = STATE.generation
        p = self._params
        if p is None or self._params_gen != gen:
            p = self._resolve()
            self._params = p
            self._params_gen = gen
        return p

    def _resolve(self) -> _Params:
        attempts, timeout, w_init, w_max, base, jitter = self._explicit
        d = defaults()
        init = w_init if w_init is not None else d.wait_initial
        mx = w_max if w_max is not None else d.wait_max
        if mx < init:  # one side came from the defaults: the explicit side wins
            if w_max is not None:
                init = mx
            else:
                mx = init
        return _Params(
            attempts=attempts if attempts is not None else d.attempts,
            timeout=timeout,
            wait_initial=float(init),
            wait_max=float(mx),
            wait_exp_base=float(base if base is not None else d.wait_exp_base),
            wait_jitter=jitter if jitter is not None else d.wait_jitter,
        )

    # -- the two shapes -----------------------------------------------------------------

    def __call__(self, func: F) -> F:
        return self._decorate(func, record=False)

    def _decorate(self, func: F, record: bool) -> F:
        """Wrap ``func``; with ``record`` (inside ``resilient()``) every failure the retry
        swallows is recorded with ``record_error``."""
        kind = kind_of(func)
        if kind in ("gen", "asyncgen"):
            raise ConfigError(
                f"cannot retry the generator function {callable_name(func)!r}: items already "
                "yielded cannot be taken back. Retry the code that consumes it, or use "
                "faultlens.retrying() inside the generator",
                key="retry",
            )
        call = _Call(self, self.operation or callable_name(func), record)
        wrapper = call.run_async if kind == "async" else call.run_sync
        rewrap = functools.partial(_decorate, self, record)
        return cast(F, wrap(func, wrapper, kind == "async", rewrap))

    def __reduce__(self) -> tuple[Any, ...]:
        # A policy pickles as its arguments (with a decorated callable object, which pickles
        # by value); ``on=`` must itself be picklable (a type, a module-level predicate).
        attempts, timeout, w_init, w_max, base, jitter = self._explicit
        return (
            _restore,
            (attempts, timeout, w_init, w_max, base, jitter, self._on_spec, self.operation),
        )

    def retrying(self, operation: str | None = None) -> Retrying:
        """An attempt loop with this policy (``for``/``async for``)."""
        return Retrying(self, operation or self.operation or _caller_name(2))

    def __repr__(self) -> str:
        p = self.params()
        return (
            f"Retry(attempts={p.attempts}, timeout={p.timeout}, wait_initial={p.wait_initial}, "
            f"wait_max={p.wait_max}, wait_exp_base={p.wait_exp_base}, "
            f"wait_jitter={p.wait_jitter}, operation={self.operation!r})"
        )


def _decorate(policy: Retry, record: bool, func: Any) -> Any:
    return policy._decorate(func, record)


def _restore(
    attempts: int | None,
    timeout: float | None,
    wait_initial: float | None,
    wait_max: float | None,
    wait_exp_base: float | None,
    wait_jitter: bool | None,
    on: ExceptionSpec | None,
    operation: str | None,
) -> Retry:
    return Retry(
        attempts=attempts,
        timeout=timeout,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_exp_base=wait_exp_base,
        wait_jitter=wait_jitter,
        on=on,
        operation=operation,
    )


def _caller_name(depth: int) -> str:
    try:
        code = sys._getframe(depth).f_code
        return getattr(code, "co_qualname", code.co_name)
    except Exception:
        return "retrying"


class _Call:
    """One decorated function: the policy, its operation label and its outcome counts."""

    __slots__ = ("gen", "operation", "policy", "record", "stats")

    def __init__(self, policy: Retry, operation: str, record: bool = False) -> None:
        self.policy = policy
        self.operation = label(operation)
        self.stats = tel.retry_stats(self.operation)
        self.record = record
        self.gen = -1

    def _refresh(self) -> _Params:
        tel.ensure()
        p = self.policy.params()
        self.gen = STATE.generation
        return p

    def count(self, outcome: int) -> None:
        stats = self.stats
        with stats.lock:
            stats.counts[outcome] += 1

    def settle(self, exc: Exception, number: int) -> bool:
        """True (after counting the outcome) when ``exc`` ends the call without a retry
        decision: the end of an iteration (a success) or a cancellation (aborted)."""
        if isinstance(exc, ENDS_ITERATION):
            self.count(FIRST if number == 1 else AFTER)
            return True
        if control_flow(exc):
            self.count(ABORTED)
            return True
        return False

    # The hot path: one generation check, the call, one locked increment. The failure
    # handling lives outside the ``except`` clause so that a later attempt's exception is
    # not implicitly chained to the previous one's.

    def run_sync(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = self.policy._params
        if self.gen != STATE.generation or p is None:
            p = self._refresh()
        deadline = _timing.monotonic() + p.timeout if p.timeout is not None else None
        try:
            result = wrapped(*args, **kwargs)
        except Exception as exc:
            failed = exc
        except BaseException:
            self.count(ABORTED)
            raise
        else:
            if is_coroutine(result):  # an async callable the decoration could not see
                return self._attempts_async(wrapped, args, kwargs, p, deadline, 1, result)
            stats = self.stats
            with stats.lock:
                stats.counts[FIRST] += 1
            return result
        return self._again_sync(wrapped, args, kwargs, failed, p, deadline)

    def _again_sync(
        self,
        wrapped: Any,
        args: Any,
        kwargs: Any,
        exc: Exception,
        p: _Params,
        deadline: float | None,
    ) -> Any:
        number = 1
        while True:
            if self.settle(exc, number):
                raise exc
            delay = decide(self, exc, number, p, deadline)
            if delay is None:
                raise exc
            try:
                _timing.sleep(delay)
            except BaseException:  # Ctrl-C, SystemExit from a signal handler
                self.count(ABORTED)
                raise
            number += 1
            try:
                result = wrapped(*args, **kwargs)
            except Exception as e:
                exc = e
                continue
            except BaseException:
                self.count(ABORTED)
                raise
            if is_coroutine(result):
                return self._attempts_async(wrapped, args, kwargs, p, deadline, number, result)
            self.count(AFTER)
            return result

    async def run_async(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = self.policy._params
        if self.gen != STATE.generation or p is None:
            p = self._refresh()
        deadline = _timing.monotonic() + p.timeout if p.timeout is not None else None
        return await self._attempts_async(wrapped, args, kwargs, p, deadline, 1, None)

    async def _attempts_async(
        self,
        wrapped: Any,
        args: Any,
        kwargs: Any,
        p: _Params,
        deadline: float | None,
        number: int,
        pending: Any,
    ) -> Any:
        """The async attempt loop, from attempt ``number``; ``pending`` is that attempt's
        coroutine when a sync-looking call already returned it."""
        while True:
            try:
                if pending is not None:
                    step, pending = pending, None
                    result = await step
                else:
                    result = wrapped(*args, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
            except Exception as e:
                exc = e
            except BaseException:
                self.count(ABORTED)
                raise
            else:
                self.count(FIRST if number == 1 else AFTER)
                return result
            if self.settle(exc, number):
                raise exc
            delay = decide(self, exc, number, p, deadline)
            if delay is None:
                raise exc
            try:
                await _timing.asleep(delay)
            except BaseException:  # the task was cancelled while waiting
                self.count(ABORTED)
                raise
            number += 1


def decide(
    call: _Call, exc: Exception, number: int, p: _Params, deadline: float | None
) -> float | None:
    """Attempt ``number`` failed with ``exc``: record it, and return the delay before the
    next attempt, or None when the call ends here (its outcome is then counted)."""
    try:
        retryable = bool(call.policy.on(exc))
    except Exception as pe:
        internal_error("retry on= predicate", pe)
        retryable = False
    delay: float | None = None
    outcome = NON_RETRYABLE
    rejected = isinstance(exc, CircuitOpenError)
    if retryable:
        floor = 0.0
        cap = MAX_SECONDS
        if rejected:
            floor, retryable = _open_circuit_wait(exc)  # type: ignore[arg-type]
        else:
            floor = _server_wait(exc)
            if deadline is None:
                cap = max(p.wait_max, RETRY_AFTER_MAX)
        if retryable:
            outcome = EXHAUSTED
            if number < p.attempts and floor <= cap:
                d = max(p.delay(number), floor)
                if deadline is None or _timing.monotonic() + d <= deadline:
                    delay, outcome = d, -1
    _report_attempt(call.operation, exc, number, delay, outcome)
    if delay is None:
        call.count(outcome)
    elif call.record and not rejected:
        # Swallowed for good: nothing else will ever see this failure, so it is recorded
        # now (a rejection by an open breaker is not a failure of the dependency).
        record_error(exc)
    return delay


def _open_circuit_wait(exc: CircuitOpenError) -> tuple[float, bool]:
    """(the least wait before retrying into an open breaker, whether to retry at all)."""
    after = getattr(exc, "retry_after", 0.0)
    if after is None:
        return 0.0, False  # forced open: only reset() closes it
    try:
        wait = float(after)
    except (TypeError, ValueError):
        return 0.0, True
    if math.isnan(wait) or wait < 0:
        return 0.0, True
    return min(wait, MAX_SECONDS), True


def _server_wait(exc: Exception) -> float:
    """The least wait the failure itself asks for (a server's ``Retry-After``, an
    exception's ``retry_after``), 0.0 when it asks for none or for something that is not a
    valid wait. Never raises: the exception and its response are not trusted."""
    try:
        after = getattr(exc, "retry_after", None)
        if after is None:
            after = retry_after_of(exc)
        if after is None or isinstance(after, bool) or not isinstance(after, int | float):
            return 0.0
        wait = float(after)
    except Exception:  # a property that raises, an int too large for a float
        return 0.0
    if not math.isfinite(wait) or wait < 0:
        return 0.0
    return wait


def _report_attempt(
    operation: str, exc: BaseException, number: int, delay: float | None, outcome: int
) -> None:
    try:
        etype = label(error_type(exc))
        inst = tel.instruments()
        if inst is not None:
            inst.attempts.add(1, {"operation": operation, "error.type": etype})
            if delay is not None:
                inst.backoff.record(delay, {"operation": operation})
        attrs: dict[str, str | bool | int | float] = {
            "faultlens.retry.operation": operation,
            "faultlens.retry.attempt": number,
            "error.type": etype,
        }
        if delay is not None:
            attrs["faultlens.retry.delay"] = delay
        else:
            attrs["faultlens.retry.outcome"] = tel.RETRY_OUTCOMES[outcome]
        tel.add_event("faultlens.retry", attrs)
    except Exception as e:
        internal_error("retry telemetry", e)


# -- the attempt loop ---------------------------------------------------------------------


class Attempt:
    """One attempt of a ``retrying()`` loop; use it as ``with attempt:``.

    A retryable failure inside the block is swallowed and the loop moves on to the next
    attempt (after the backoff); any other failure, or the last one, propagates from the
    ``with`` statement itself, unchanged.
    """

    __slots__ = ("_loop", "number")

    def __init__(self, loop: _Loop, number: int) -> None:
        self._loop = loop
        self.number = number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._loop.exit(self.number, exc)

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._loop.exit(self.number, exc)

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"


class _Loop:
    """The per-call state of one attempt loop."""

    __slots__ = ("call", "deadline", "done", "number", "params", "pending")

    def __init__(self, call: _Call) -> None:
        self.call = call
        p = call._refresh() if call.gen != STATE.generation else call.policy.params()
        self.params = p
        self.deadline = _timing.monotonic() + p.timeout if p.timeout is not None else None
        self.number = 0
        self.pending: float | None = None
        self.done = False

    def next_number(self) -> int | None:
        if self.done:
            return None
        if self.number == 0 or self.pending is not None:
            self.number += 1
            return self.number
        # The previous attempt was never entered or ended without deciding: stop here.
        self.done = True
        return None

    def abort(self) -> None:
        """Cancelled or interrupted during the backoff wait: the call ends ``aborted``."""
        if not self.done:
            self.done = True
            self.call.count(ABORTED)

    def __del__(self) -> None:
        # A loop left after a swallowed failure (``break``, or an exception raised in the
        # loop body outside ``with attempt:``) still ends in exactly one outcome: aborted.
        try:
            if not self.done and self.number > 0:
                self.abort()
        except Exception:
            pass

    def exit(self, number: int, exc: BaseException | None) -> bool:
        if number != self.number or self.done:
            return False  # a stale Attempt object used again: leave the exception alone
        if exc is None:
            self.done = True
            self.call.count(FIRST if number == 1 else AFTER)
            return False
        if not isinstance(exc, Exception) or self.call.settle(exc, number):
            self.done = True
            if not isinstance(exc, Exception):
                self.call.count(ABORTED)
            return False
        delay = decide(self.call, exc, number, self.params, self.deadline)
        if delay is None:
            self.done = True
            return False
        self.pending = delay
        return True


class _SyncLoop(_Loop):
    __slots__ = ()

    def __iter__(self) -> Iterator[Attempt]:
        return self

    def __next__(self) -> Attempt:
        delay = self.pending
        n = self.next_number()
        if n is None:
            raise StopIteration
        if delay is not None:
            self.pending = None
            try:
                _timing.sleep(delay)
            except BaseException:
                self.abort()
                raise
        return Attempt(self, n)


class _AsyncLoop(_Loop):
    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return self

    async def __anext__(self) -> Attempt:
        delay = self.pending
        n = self.next_number()
        if n is None:
            raise StopAsyncIteration
        if delay is not None:
            self.pending = None
            try:
                await _timing.asleep(delay)
            except BaseException:
                self.abort()
                raise
        return Attempt(self, n)


class Retrying:
    """An iterable of attempts; each ``for``/``async for`` over it is an independent call
    with its own attempt count, deadline and one outcome."""

    __slots__ = ("_call",)

    def __init__(self, policy: Retry, operation: str) -> None:
        self._call = _Call(policy, operation)

    @property
    def operation(self) -> str:
        return self._call.operation

    def __iter__(self) -> Iterator[Attempt]:
        return _SyncLoop(self._call)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return _AsyncLoop(self._call)


# -- public constructors ------------------------------------------------------------------


@overload
def retry(func: F, /) -> F: ...


@overload
def retry(
    *,
    attempts: int | None = None,
    timeout: float | None = None,
    wait_initial: float | None = None,
    wait_max: float | None = None,
    wait_exp_base: float | None = None,
    wait_jitter: bool | None = None,
    on: ExceptionSpec | None = None,
    operation: str | None = None,
) -> Retry: ...


def retry(
    func: Callable[..., Any] | None = None,
    /,
    *,
    attempts: int | None = None,
    timeout: float | None = None,
    wait_initial: float | None = None,
    wait_max: float | None = None,
    wait_exp_base: float | None = None,
    wait_jitter: bool | None = None,
    on: ExceptionSpec | None = None,
    operation: str | None = None,
) -> Any:
    """Retry a sync or async function on retryable errors; see the module docs.

    ::

        @faultlens.retry(attempts=5, timeout=30.0, wait_initial=0.1, wait_max=5.0,
                         on=ConnectionError)
        def fetch(url): ...

    ``on`` is an exception type, a tuple of types, or a predicate ``exc -> bool``; by
    default, whatever the error catalog marks retryable. ``operation`` labels the metrics
    (default: the function's qualified name). When the call gives up, the last exception
    itself propagates.
    """
    policy = Retry(
        attempts=attempts,
        timeout=timeout,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_exp_base=wait_exp_base,
        wait_jitter=wait_jitter,
        on=on,
        operation=operation,
    )
    if func is not None:
        return policy(func)
    return policy


def retrying(
    *,
    attempts: int | None = None,
    timeout: float | None = None,
    wait_initial: float | None = None,
    wait_max: float | None = None,
    wait_exp_base: float | None = None,
    wait_jitter: bool | None = None,
    on: ExceptionSpec | None = None,
    operation: str | None = None,
) -> Retrying:
    """The attempt-loop form of ``retry`` for code that is not one function call::

        for attempt in faultlens.retrying(attempts=3, on=ConnectionError):
            with attempt:
                send(batch)

        async for attempt in faultlens.retrying(timeout=10.0):
            with attempt:
                await send(batch)

    ``operation`` defaults to the qualified name of the function containing the loop.
    """
    policy = Retry(
        attempts=attempts,
        timeout=timeout,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_exp_base=wait_exp_base,
        wait_jitter=wait_jitter,
        on=on,
        operation=operation,
    )
    return Retrying(policy, operation or _caller_name(2))
