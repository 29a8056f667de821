"""capture(): stage and context for every error recorded inside a block or function."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from ..errors import ConfigError
from ._context import Scope, pop, push
from ._record import record_escaping
from ._steps import drive, drive_async

__all__ = ["capture"]

F = TypeVar("F", bound=Callable[..., Any])


class _ScopeSteps:
    """For generators: the scope is pushed per step, since held across ``yield`` it would
    leak into the caller's code."""

    __slots__ = ("context", "stage", "start")

    def __init__(self, stage: str | None, context: Mapping[str, Any]) -> None:
        self.stage = stage
        self.context = context
        self.start = time.time_ns()

    def enter(self) -> Token[Scope]:
        return push(self.stage, self.context)

    def leave(self, token: Token[Scope]) -> None:
        pop(token)

    def error(self, exc: BaseException) -> None:
        token = push(self.stage, self.context)
        try:
            record_escaping(exc, name=self.stage or "faultlens.capture", start_time=self.start)
        finally:
            pop(token)

    def finish(self) -> None:
        pass


class capture:
    """Context for every error recorded inside: ``stage`` and user keys.

    Works as ``with``, ``async with`` and as a decorator (functions, coroutines, generators
    and async generators). An exception that escapes is recorded with this context (once: an
    inner instrumented function may already have recorded it), then re-raised unchanged.
    """

    __slots__ = ("_context", "_stage", "_tokens")

    def __init__(self, stage: str | None = None, **context: Any) -> None:
        if stage is not None and not isinstance(stage, str):
            raise ConfigError(f"stage must be a string, got {type(stage).__name__}", key="stage")
        self._stage = stage
        self._context = context
        # A stack: one capture object may be entered re-entrantly (a recursive function).
        self._tokens: list[tuple[Token[Scope], int]] = []

    def __enter__(self) -> capture:
        self._tokens.append((push(self._stage, self._context), time.time_ns()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, start = self._tokens.pop()
        try:
            if exc is not None:
                record_escaping(exc, name=self._stage or "faultlens.capture", start_time=start)
        finally:
            pop(token)

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
        stage, context = self._stage, self._context
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return drive_async(func(*args, **kwargs), _ScopeSteps(stage, context))

            return cast(F, agen_wrapper)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with capture(stage, **context):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return (yield from drive(func(*args, **kwargs), _ScopeSteps(stage, context)))

            return cast(F, gen_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with capture(stage, **context):
                return func(*args, **kwargs)

        return cast(F, wrapper)
