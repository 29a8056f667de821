"""capture(): stage and context for every error recorded inside a block or function."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from ..errors import ConfigError, clean_text
from ._context import Scope, enter_owned, find_owned, leave_owned, pop, push
from ._instrument import _is_callable_object, callable_kind, is_coroutine
from ._record import record_escaping
from ._steps import drive, drive_async
from ._wrapper import AsyncCallableWrapper, FunctionWrapper

__all__ = ["capture"]

F = TypeVar("F", bound=Callable[..., Any])


class _ScopeSteps:
    """For generators: the scope is pushed per step, since held across ``yield`` it would
    leak into the caller's code."""

    __slots__ = ("context", "name", "stage", "start")

    def __init__(self, stage: str | None, context: Mapping[str, Any], name: str) -> None:
        self.stage = stage
        self.context = context
        self.name = name
        self.start = time.time_ns()

    def enter(self) -> Token[Scope]:
        return push(self.stage, self.context)

    def leave(self, token: Token[Scope]) -> None:
        pop(token)

    def error(self, exc: BaseException) -> None:
        token = push(self.stage, self.context)
        try:
            record_escaping(exc, name=self.name, start_time=self.start)
        finally:
            pop(token)

    def finish(self) -> None:
        pass


async def _scoped(scope: capture, coro: Any) -> Any:
    with scope:
        return await coro


class capture:
    """Context for every error recorded inside: ``stage`` and user keys.

    Works as ``with``, ``async with`` and as a decorator (functions, coroutines, generators
    and async generators, async callable objects). An exception that escapes is recorded
    with this context (once: an inner instrumented function may already have recorded it),
    then re-raised unchanged.

    One instance may be entered from several threads or tasks at once, and re-entrantly:
    each ``with`` is independent (its scope lives in the context that entered it), so
    leaving one never ends another's stage.
    """

    __slots__ = ("_context", "_name", "_stage")

    def __init__(self, stage: str | None = None, **context: Any) -> None:
        if stage is not None and not isinstance(stage, str):
            raise ConfigError(f"stage must be a string, got {type(stage).__name__}", key="stage")
        self._stage = stage
        self._context = context
        self._name = clean_text(stage, 256) if stage else "faultlens.capture"

    def __enter__(self) -> capture:
        enter_owned(self, self._stage, self._context, time.time_ns())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = find_owned(self)  # this context's entry; None if it was entered elsewhere
        if exc is not None:
            start = entry.start if entry is not None else time.time_ns()
            try:
                record_escaping(exc, name=self._name, start_time=start)
            except Exception:
                pass  # no stack left to record with: an outer span records it
        if entry is not None:
            leave_owned(entry)

    async def __aenter__(self) -> capture:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        kind = callable_kind(func)
        if not inspect.isfunction(func):
            # staticmethod/classmethod objects, callable objects, partials: a wrapt wrapper
            # keeps their binding, and pickles like them.
            run = self._runner(kind)
            rebuild = functools.partial(_recapture, self._stage, self._context)
            if kind == "async" and _is_callable_object(func):
                return cast(F, AsyncCallableWrapper(func, run, rebuild))
            return cast(F, FunctionWrapper(func, run, rebuild))
        stage, context, name = self._stage, self._context, self._name
        if kind == "asyncgen":

            @functools.wraps(func)
            def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return drive_async(func(*args, **kwargs), _ScopeSteps(stage, context, name))

            return cast(F, agen_wrapper)
        if kind == "async":

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)
        if kind == "gen":

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return (yield from drive(func(*args, **kwargs), _ScopeSteps(stage, context, name)))

            return cast(F, gen_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                result = func(*args, **kwargs)
            if is_coroutine(result):  # a sync callable handing back a coroutine: scope its run
                return _scoped(self, result)
            return result

        return cast(F, wrapper)

    def _runner(self, kind: str) -> Callable[[Any, Any, Any, Any], Any]:
        """The wrapt-style ``run(wrapped, instance, args, kwargs)`` for ``kind``."""
        stage, context, name = self._stage, self._context, self._name
        if kind == "asyncgen":

            def run_agen(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                return drive_async(wrapped(*args, **kwargs), _ScopeSteps(stage, context, name))

            return run_agen
        if kind == "async":

            async def run_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                with self:
                    return await wrapped(*args, **kwargs)

            return run_async
        if kind == "gen":

            def run_gen(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                return drive(wrapped(*args, **kwargs), _ScopeSteps(stage, context, name))

            return run_gen

        def run(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            with self:
                result = wrapped(*args, **kwargs)
            if is_coroutine(result):
                return _scoped(self, result)
            return result

        return run


def _recapture(stage: str | None, context: dict[str, Any], wrapped: Any) -> Any:
    """Unpickling a capture-decorated object that is not reachable by name: decorate again."""
    return capture(stage, **context)(wrapped)
