"""Recovery: what to do once a call has failed for good.

A ``RecoveryManager`` holds an ordered list of strategies. When the guarded call raises an
``Exception`` the manager covers (``on=``, default every ``Exception``), the strategies are
tried in order; the first that produces a result wins. Cancellation (asyncio's and
``concurrent.futures``'), ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit`` and the
iterator protocol's ``StopIteration``/``StopAsyncIteration`` are never recovered, whatever
``on=`` says: they propagate unchanged and are not recorded. If no strategy produces a
result, the original exception itself propagates, unchanged. Either way the original
failure is recorded (``record_error``, once per exception object as always), so a fallback
never hides an error from the telemetry.

Strategies:

- ``Restart(factory, argument="resource")``: call the function again with a fresh resource
  from ``factory()`` in place of the named argument (a new connection, a new session).
- ``Fallback(f1, f2, ...)``: an ordered chain; each entry is called with the call's own
  arguments, *without* ``self``/``cls`` when the decorated function is a method or a
  classmethod (a fallback is a plain function of the call's arguments, e.g.
  ``from_cache(job)`` for ``Scorer.result(self, job)``; a non-callable entry is returned as
  is); the first that succeeds wins. ``RecoveryContext.instance`` carries the instance for
  strategies that need it, and ``RecoveryContext.func`` is bound to it.
- ``Degrade(value | factory=...)``: give up on the real result and return ``Degraded(value)``,
  so a degraded answer can never be mistaken for a real one.
- ``ManualIntervention(notify=...)``: a human must act. Records the failure as critical,
  logs it at CRITICAL, calls ``notify(InterventionRequest)``, and re-raises; later
  strategies are not tried.

Every step counts ``faultlens.recovery.actions{strategy, outcome}`` with outcome
``recovered``, ``failed`` (each failing fallback entry counts on its own) or ``skipped``
(the strategy's ``on=`` does not cover the error, or ``error_handling.recovery.enabled`` is
false in the configuration), records ``faultlens.recovery.duration{strategy}`` in seconds,
and adds a ``faultlens.recovery`` event to the current span.

An async callable object (an instance whose ``__call__`` is ``async def``), or any callable
that returns a coroutine, is recovered as async: the coroutine is awaited and its failure
goes through the chain (fallbacks may then be sync or async).
"""

from __future__ import annotations

import inspect
import logging
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from ..capture import internal_error, record_error
from ..errors import ConfigError, ErrorInfo, Severity, classify, error_type
from . import _telemetry as tel
from ._common import (
    ENDS_ITERATION,
    ExceptionSpec,
    callable_name,
    control_flow,
    is_coroutine,
    kind_of,
    label,
    matcher,
    wrap,
)
from ._defaults import defaults

__all__ = [
    "Degrade",
    "Degraded",
    "Fallback",
    "InterventionRequest",
    "ManualIntervention",
    "RecoveryContext",
    "RecoveryManager",
    "Restart",
    "Strategy",
    "recover",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_log = logging.getLogger("faultlens")


def _every_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    """What a strategy sees: the failed call and why it failed.

    For a method, ``args`` are the call's arguments without ``self`` (``cls`` for a
    classmethod), ``instance`` is that object and ``func`` is bound to it, so
    ``func(*args, **kwargs)`` repeats the call."""

    operation: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exception: Exception
    instance: Any = None


@dataclass(frozen=True, slots=True)
class Degraded(Generic[T]):
    """A result produced by graceful degradation rather than by the real call.

    Check with ``isinstance(result, faultlens.resilience.Degraded)``; ``Degraded.unwrap(x)``
    gives the plain value whether or not ``x`` was degraded.
    """

    value: T
    error_type: str  # the failure that caused the degradation
    code: str

    @staticmethod
    def unwrap(result: Any) -> Any:
        return result.value if isinstance(result, Degraded) else result


@dataclass(frozen=True, slots=True)
class InterventionRequest:
    """What a ManualIntervention ``notify`` hook receives."""

    operation: str
    exception: Exception
    info: ErrorInfo
    severity: Severity = Severity.CRITICAL


@runtime_checkable
class Strategy(Protocol):
    """One recovery step. ``name`` is the ``strategy`` metric label."""

    name: str

    def applies(self, exc: Exception) -> bool: ...

    def attempt(self, ctx: RecoveryContext) -> Any: ...

    async def attempt_async(self, ctx: RecoveryContext) -> Any: ...


class _Escalate(Exception):
    """Raised by ManualIntervention to stop the chain and re-raise the original error."""


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Restart:
    """Re-run the call with a fresh resource: ``factory()`` replaces argument ``argument``.

    With ``factory=None`` the call is simply run again with the same arguments. ``attempts``
    restarts are tried (a fresh resource each time) before the strategy counts as failed.
    """

    name = "restart"

    def __init__(
        self,
        factory: Callable[[], Any] | None = None,
        *,
        argument: str = "resource",
        attempts: int = 1,
        on: ExceptionSpec | None = None,
    ) -> None:
        if factory is not None and not callable(factory):
            raise ConfigError(f"must be callable, got {factory!r}", key="Restart.factory")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ConfigError(f"must be an integer >= 1, got {attempts!r}", key="Restart.attempts")
        self.factory = factory
        self.argument = argument
        self.attempts = attempts
        self._on_spec = on
        self._on = matcher(on, "Restart.on", _every_exception)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"argument": self.argument, "attempts": self.attempts, "on": self._on_spec}
        return (_make, (Restart, (self.factory,), kwargs))

    def applies(self, exc: Exception) -> bool:
        return bool(self._on(exc))

    def check(self, func: Any) -> None:
        """At decoration time: the argument to replace must exist."""
        if self.factory is None:
            return
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            return
        params = sig.parameters
        if self.argument not in params and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        ):
            raise ConfigError(
                f"{callable_name(func)!r} has no parameter {self.argument!r} to receive the "
                f"fresh resource; pass Restart(..., argument='<its name>')",
                key="Restart.argument",
            )

    def _rebind(
        self, ctx: RecoveryContext, resource: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        try:
            bound = inspect.signature(ctx.func).bind_partial(*ctx.args, **ctx.kwargs)
        except (TypeError, ValueError):
            kwargs = dict(ctx.kwargs)
            kwargs[self.argument] = resource
            return ctx.args, kwargs
        bound.arguments[self.argument] = resource
        return bound.args, bound.kwargs

    def attempt(self, ctx: RecoveryContext) -> Any:
        last: Exception | None = None
        for _ in range(self.attempts):
            try:
                if self.factory is None:
                    return ctx.func(*ctx.args, **ctx.kwargs)
                args, kwargs = self._rebind(ctx, self.factory())
                return ctx.func(*args, **kwargs)
            except Exception as exc:
                last = exc
        assert last is not None
        raise last

    async def attempt_async(self, ctx: RecoveryContext) -> Any:
        last: Exception | None = None
        for _ in range(self.attempts):
            try:
                if self.factory is None:
                    return await ctx.func(*ctx.args, **ctx.kwargs)
                resource = await _maybe_await(self.factory())
                args, kwargs = self._rebind(ctx, resource)
                return await ctx.func(*args, **kwargs)
            except Exception as exc:
                last = exc
        assert last is not None
        raise last


class _FallbackStep:
    """One entry of a fallback chain; a strategy of its own so each failure is counted."""

    name = "fallback"

    def __init__(self, entry: Any, index: int, on: Callable[[BaseException], bool]) -> None:
        self.entry = entry
        self.index = index
        self._on = on

    def applies(self, exc: Exception) -> bool:
        return bool(self._on(exc))

    def attempt(self, ctx: RecoveryContext) -> Any:
        if callable(self.entry):
            return self.entry(*ctx.args, **ctx.kwargs)
        return self.entry

    async def attempt_async(self, ctx: RecoveryContext) -> Any:
        if callable(self.entry):
            return await _maybe_await(self.entry(*ctx.args, **ctx.kwargs))
        return self.entry


class Fallback:
    """An ordered fallback chain: ``Fallback(from_cache, from_replica, default)``.

    Each entry is called with the failed call's arguments (without ``self`` for methods);
    an entry that is not callable is the fallback value itself. First success wins.
    """

    name = "fallback"

    def __init__(self, *fallbacks: Any, on: ExceptionSpec | None = None) -> None:
        if not fallbacks:
            raise ConfigError("needs at least one fallback", key="Fallback")
        self.fallbacks = fallbacks
        self._on_spec = on
        on_match = matcher(on, "Fallback.on", _every_exception)
        self.steps = tuple(_FallbackStep(f, i, on_match) for i, f in enumerate(fallbacks))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_make, (Fallback, self.fallbacks, {"on": self._on_spec}))


class Degrade:
    """Return ``Degraded(value)`` (or ``Degraded(factory(exc))``) instead of failing."""

    name = "degrade"

    def __init__(
        self,
        value: Any = None,
        *,
        factory: Callable[[Exception], Any] | None = None,
        on: ExceptionSpec | None = None,
    ) -> None:
        if factory is not None and not callable(factory):
            raise ConfigError(f"must be callable, got {factory!r}", key="Degrade.factory")
        self.value = value
        self.factory = factory
        self._on_spec = on
        self._on = matcher(on, "Degrade.on", _every_exception)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"factory": self.factory, "on": self._on_spec}
        return (_make, (Degrade, (self.value,), kwargs))

    def applies(self, exc: Exception) -> bool:
        return bool(self._on(exc))

    def _wrap(self, value: Any, exc: Exception) -> Degraded[Any]:
        code = getattr(exc, "code", None)
        if not isinstance(code, str):
            code = classify(exc).code
        return Degraded(value, error_type(exc), code)

    def attempt(self, ctx: RecoveryContext) -> Any:
        value = self.factory(ctx.exception) if self.factory is not None else self.value
        return self._wrap(value, ctx.exception)

    async def attempt_async(self, ctx: RecoveryContext) -> Any:
        value = (
            await _maybe_await(self.factory(ctx.exception))
            if self.factory is not None
            else self.value
        )
        return self._wrap(value, ctx.exception)


class ManualIntervention:
    """A human must act: record as critical, notify, re-raise. Ends the chain.

    ``notify`` receives an ``InterventionRequest``; if it raises, that is counted as an
    internal error and the original exception still propagates.
    """

    name = "manual_intervention"

    def __init__(
        self,
        notify: Callable[[InterventionRequest], Any] | None = None,
        *,
        on: ExceptionSpec | None = None,
    ) -> None:
        if notify is not None and not callable(notify):
            raise ConfigError(f"must be callable, got {notify!r}", key="ManualIntervention.notify")
        self.notify = notify
        self._on_spec = on
        self._on = matcher(on, "ManualIntervention.on", _every_exception)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_make, (ManualIntervention, (self.notify,), {"on": self._on_spec}))

    def applies(self, exc: Exception) -> bool:
        return bool(self._on(exc))

    def _escalate(self, ctx: RecoveryContext) -> InterventionRequest:
        info = classify(ctx.exception)
        request = InterventionRequest(ctx.operation, ctx.exception, info)
        tel.add_event(
            "faultlens.recovery.intervention",
            {
                "faultlens.recovery.operation": ctx.operation,
                "faultlens.error.code": info.code,
                "faultlens.error.severity": Severity.CRITICAL.value,
                "error.type": label(error_type(ctx.exception)),
            },
            span_name=f"faultlens.recovery {ctx.operation}",
        )
        try:
            _log.critical(
                "faultlens: manual intervention needed for %s: %s (%s)",
                ctx.operation,
                info.code,
                info.exception_type,
            )
        except Exception as e:
            internal_error("manual intervention log", e)
        return request

    def attempt(self, ctx: RecoveryContext) -> Any:
        request = self._escalate(ctx)
        if self.notify is not None:
            try:
                self.notify(request)
            except Exception as e:
                internal_error("manual intervention notify hook", e)
        raise _Escalate

    async def attempt_async(self, ctx: RecoveryContext) -> Any:
        request = self._escalate(ctx)
        if self.notify is not None:
            try:
                await _maybe_await(self.notify(request))
            except Exception as e:
                internal_error("manual intervention notify hook", e)
        raise _Escalate


StrategyLike = Restart | Fallback | Degrade | ManualIntervention | Strategy


class RecoveryManager:
    """An ordered recovery chain; a decorator for sync and async functions, or call
    ``run(func, *args, **kwargs)`` / ``await run_async(...)`` directly.

    ::

        manager = RecoveryManager(
            [Restart(connect, argument="conn"), Fallback(from_cache), Degrade([])],
        )

        @manager
        def query(conn, sql): ...
    """

    def __init__(
        self,
        strategies: Iterable[StrategyLike],
        *,
        on: ExceptionSpec | None = None,
        operation: str | None = None,
    ) -> None:
        given = tuple(strategies)
        steps: list[Any] = []
        for s in given:
            if isinstance(s, Fallback):
                steps.extend(s.steps)
            elif all(hasattr(s, a) for a in ("name", "applies", "attempt", "attempt_async")):
                steps.append(s)
            else:
                raise ConfigError(
                    f"{s!r} is not a recovery strategy; use Restart, Fallback, Degrade, "
                    "ManualIntervention or an object with name/applies/attempt/attempt_async",
                    key="strategies",
                )
        if not steps:
            raise ConfigError("needs at least one strategy", key="strategies")
        self.strategies: tuple[Any, ...] = tuple(steps)
        self.given = given  # as passed (a Fallback is one entry here, one step per fallback)
        self.on = matcher(on, "on", _every_exception)
        self.on_spec = on
        self.operation = operation

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as its strategies (with a decorated callable object, which pickles by
        # value); each strategy's callables and ``on=`` must be picklable themselves.
        return (
            _make,
            (RecoveryManager, (self.given,), {"on": self.on_spec, "operation": self.operation}),
        )

    # -- decoration --------------------------------------------------------------------

    def __call__(self, func: F) -> F:
        kind = kind_of(func)
        if kind in ("gen", "asyncgen"):
            raise ConfigError(
                f"cannot recover the generator function {callable_name(func)!r} as one call",
                key="recover",
            )
        for s in self.strategies:
            check = getattr(s, "check", None)
            if check is not None:
                check(func)
            if (
                kind == "sync"
                and isinstance(s, _FallbackStep)
                and (inspect.iscoroutinefunction(s.entry))
            ):
                raise ConfigError(
                    f"the fallback {callable_name(s.entry)!r} is async but "
                    f"{callable_name(func)!r} is not; use a sync fallback",
                    key="fallbacks",
                )
        operation = label(self.operation or callable_name(func))
        mine: list[Any] = []  # the wrapper, to recognise method calls (see _split_self)

        if kind == "async":

            async def run_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                try:
                    return await wrapped(*args, **kwargs)
                except Exception as exc:
                    failed = exc
                fn, inst, rest = _split_self(mine, wrapped, instance, args)
                return await self._recover_async(operation, fn, rest, kwargs, failed, inst)

            mine.append(wrap(func, run_async, True, self))
            return cast(F, mine[0])

        def run_sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            try:
                result = wrapped(*args, **kwargs)
            except Exception as exc:
                failed = exc
            else:
                if is_coroutine(result):  # an async callable the decoration could not see
                    fn, inst, rest = _split_self(mine, wrapped, instance, args)
                    return self._settle_async(operation, fn, rest, kwargs, inst, result)
                return result
            fn, inst, rest = _split_self(mine, wrapped, instance, args)
            return self._recover(operation, fn, rest, kwargs, failed, inst)

        mine.append(wrap(func, run_sync, False, self))
        return cast(F, mine[0])

    def run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | Any:
        """Call ``func(*args, **kwargs)`` and recover from its failure (an async ``func``'s
        coroutine comes back guarded: await it)."""
        operation = self.operation or callable_name(func)
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            failed = exc
        else:
            if is_coroutine(result):
                return self._settle_async(label(operation), func, args, kwargs, None, result)
            return result
        return self._recover(label(operation), func, args, kwargs, failed)

    async def run_async(
        self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any
    ) -> T | Any:
        try:
            return await func(*args, **kwargs)
        except Exception as exc:
            failed = exc
        return await self._recover_async(
            label(self.operation or callable_name(func)), func, args, kwargs, failed
        )

    async def _settle_async(
        self, operation: str, func: Any, args: Any, kwargs: Any, instance: Any, pending: Any
    ) -> Any:
        try:
            return await pending
        except Exception as exc:
            failed = exc
        return await self._recover_async(operation, func, args, kwargs, failed, instance)

    # -- the chain -----------------------------------------------------------------------

    def _covered(self, exc: Exception) -> bool:
        try:
            return bool(self.on(exc))
        except Exception as e:
            internal_error("recover on= predicate", e)
            return False

    def _plan(self, operation: str, exc: Exception) -> Sequence[Any]:
        """Pick the strategies that apply to ``exc``; the rest are counted as skipped."""
        enabled = _recovery_enabled()
        chosen = []
        for s in self.strategies:
            applies = False
            if enabled:
                try:
                    applies = bool(s.applies(exc))
                except Exception as e:
                    internal_error(f"recovery strategy {s.name} applies()", e)
            if applies:
                chosen.append(s)
            else:
                _report(operation, s, "skipped", 0.0, exc)
        return chosen

    def _recover(
        self,
        operation: str,
        func: Any,
        args: Any,
        kwargs: Any,
        exc: Exception,
        instance: Any = None,
    ) -> Any:
        if _passes_through(exc) or not self._covered(exc):
            raise exc
        ctx = RecoveryContext(operation, func, tuple(args), dict(kwargs), exc, instance)
        for s in self._plan(operation, exc):
            start = time.perf_counter()
            escalated = False
            try:
                result = s.attempt(ctx)
            except _Escalate:
                escalated = True
            except Exception as step_exc:
                _report(operation, s, "failed", time.perf_counter() - start, step_exc)
                continue
            if escalated:  # raised outside the except clause: no implicit chaining
                _report(operation, s, "failed", time.perf_counter() - start, exc)
                record_error(exc, severity=Severity.CRITICAL)
                raise exc
            _report(operation, s, "recovered", time.perf_counter() - start, exc)
            record_error(exc)
            return result
        record_error(exc)
        raise exc

    async def _recover_async(
        self,
        operation: str,
        func: Any,
        args: Any,
        kwargs: Any,
        exc: Exception,
        instance: Any = None,
    ) -> Any:
        if _passes_through(exc) or not self._covered(exc):
            raise exc
        ctx = RecoveryContext(operation, func, tuple(args), dict(kwargs), exc, instance)
        for s in self._plan(operation, exc):
            start = time.perf_counter()
            escalated = False
            try:
                result = await s.attempt_async(ctx)
            except _Escalate:
                escalated = True
            except Exception as step_exc:
                _report(operation, s, "failed", time.perf_counter() - start, step_exc)
                continue
            if escalated:  # raised outside the except clause: no implicit chaining
                _report(operation, s, "failed", time.perf_counter() - start, exc)
                record_error(exc, severity=Severity.CRITICAL)
                raise exc
            _report(operation, s, "recovered", time.perf_counter() - start, exc)
            record_error(exc)
            return result
        record_error(exc)
        raise exc


def _passes_through(exc: Exception) -> bool:
    """Control flow, not a failure: never recovered, never recorded."""
    return isinstance(exc, ENDS_ITERATION) or control_flow(exc)


def _split_self(mine: list[Any], wrapped: Any, instance: Any, args: Any) -> tuple[Any, Any, Any]:
    """(the function bound to its instance, the instance, the arguments without it).

    A wrapper for a plain function is a function too and binds like one, so a method call
    reaches it with ``self`` as the first argument. It is a method call when that first
    argument's class (or, for a classmethod, the class itself) holds this very wrapper
    under the function's name, possibly under further decorators; then ``self``/``cls`` is
    taken out of the arguments the fallbacks receive. Wrappers of other callables get the
    instance from their own binding.
    """
    if instance is not None or not args or not mine:
        return wrapped, instance, args
    try:
        first = args[0]
        name = getattr(wrapped, "__name__", None)
        if not isinstance(name, str):
            return wrapped, None, args
        if isinstance(first, type):
            attr = inspect.getattr_static(first, name, None)
            if not isinstance(attr, classmethod):
                return wrapped, None, args
            attr = attr.__func__
        else:
            attr = inspect.getattr_static(type(first), name, None)
        if isinstance(attr, staticmethod | classmethod):
            return wrapped, None, args
        me = mine[0]
        if isinstance(me, classmethod):  # recover() was given the classmethod object
            me = me.__func__
        for _ in range(32):
            if attr is me:
                return types.MethodType(wrapped, first), first, tuple(args[1:])
            attr = getattr(attr, "__wrapped__", None)
            if attr is None:
                break
    except Exception as exc:
        internal_error("recover: tell a method call", exc)
    return wrapped, None, args


def _make(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return cls(*args, **kwargs)


def _recovery_enabled() -> bool:
    return defaults().recovery_enabled


def _report(operation: str, step: Any, outcome: str, seconds: float, exc: BaseException) -> None:
    try:
        name = label(step.name)
        inst = tel.instruments()
        if inst is not None:
            inst.recovery_actions.add(1, {"strategy": name, "outcome": outcome})
            if outcome != "skipped":
                inst.recovery_duration.record(seconds, {"strategy": name})
        attrs: dict[str, str | bool | int | float] = {
            "faultlens.recovery.operation": operation,
            "faultlens.recovery.strategy": name,
            "faultlens.recovery.outcome": outcome,
            "error.type": label(error_type(exc)),
        }
        if isinstance(step, _FallbackStep):
            attrs["faultlens.recovery.index"] = step.index
        if outcome != "skipped":
            attrs["faultlens.recovery.duration"] = seconds
        tel.add_event("faultlens.recovery", attrs)
    except Exception as e:
        internal_error("recovery telemetry", e)


def recover(
    *strategies: StrategyLike,
    fallbacks: Sequence[Any] | None = None,
    on: ExceptionSpec | None = None,
    operation: str | None = None,
) -> RecoveryManager:
    """A recovery decorator::

        @faultlens.recover(fallbacks=[from_cache, default_result])
        def result(job): ...

        @faultlens.recover(Restart(connect, argument="conn"), Degrade(value=[]))
        def rows(conn, query): ...

    ``fallbacks=[...]`` is shorthand for a ``Fallback(...)`` strategy placed after the
    positional strategies.
    """
    chain: list[StrategyLike] = list(strategies)
    if fallbacks is not None:
        if isinstance(fallbacks, str | bytes) or not isinstance(fallbacks, Sequence):
            raise ConfigError(
                f"must be a list of fallbacks, got {fallbacks!r}; "
                "write fallbacks=[from_cache, default]",
                key="fallbacks",
            )
        chain.append(Fallback(*fallbacks))
    return RecoveryManager(chain, on=on, operation=operation)
