"""@instrument: classified errors (and optionally a span per call) for any callable.

The callable is classified once, at decoration time, as sync, async, generator or async
generator, and gets the matching wrapper; the per-call path does no inspection. wrapt keeps
signatures, metadata and descriptor binding (methods, classmethods, staticmethods) intact.

Modes:
- ``errors`` (default): nothing on success except reading the clock; a failing call gets its
  own span, started at the call's real start time, carrying the exception event.
- ``traced``: a span per call, current while the function's own code runs.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

from ..errors import ConfigError
from ._context import pop, push
from ._record import CONTROL_FLOW, record_escaping, record_on_span
from ._steps import drive, drive_async
from ._telemetry import get_tracer, internal_error

__all__ = ["Kind", "callable_kind", "callable_name", "instrument"]

F = TypeVar("F", bound=Callable[..., Any])
Mode = Literal["errors", "traced"]
Kind = Literal["sync", "async", "gen", "asyncgen"]
_MODES = ("errors", "traced")


def callable_kind(func: Any) -> Kind:
    """Classify a callable once, at decoration time, so the per-call path does no inspection."""
    target = func
    if isinstance(target, (classmethod, staticmethod)):
        target = target.__func__
    # A plain function is judged by its own code: @contextmanager and other @wraps wrappers
    # return something else than the generator or coroutine they wrap.
    if not inspect.isfunction(target) and callable(target):
        target = inspect.unwrap(target)
    if inspect.isasyncgenfunction(target):
        return "asyncgen"
    if inspect.iscoroutinefunction(target):
        return "async"
    if inspect.isgeneratorfunction(target):
        return "gen"
    return "sync"


def callable_name(func: Any) -> str:
    """The name a callable's spans and metrics go by."""
    target = func.__func__ if isinstance(func, (classmethod, staticmethod)) else func
    for attr in ("__qualname__", "__name__"):
        name = getattr(target, attr, None)
        if isinstance(name, str):
            # "outer.<locals>.inner" reads as noise in a trace; the function is "inner".
            return name.rsplit("<locals>.", 1)[-1]
    return type(target).__name__


def _errors_wrapper(
    kind: str, name: str, stage: str | None, skip: tuple[type[BaseException], ...]
) -> Callable[..., Any]:
    if kind == "sync":
        if stage is None:

            def sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                start = time.time_ns()
                try:
                    return wrapped(*args, **kwargs)
                except BaseException as exc:
                    if not isinstance(exc, skip):
                        record_escaping(exc, name=name, start_time=start)
                    raise

            return sync

        def sync_staged(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            start = time.time_ns()
            token = push(stage, {})
            try:
                return wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    record_escaping(exc, name=name, start_time=start, stage=stage)
                raise
            finally:
                pop(token)

        return sync_staged

    if kind == "async":

        async def coro(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            start = time.time_ns()
            token = push(stage, {}) if stage is not None else None
            try:
                return await wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    record_escaping(exc, name=name, start_time=start, stage=stage)
                raise
            finally:
                if token is not None:
                    pop(token)

        return coro

    # The wrappers return the driving generator rather than being generators themselves,
    # so the steps object (and the failing call's start time) is made at the call.
    if kind == "gen":

        def gen(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return drive(wrapped(*args, **kwargs), _ErrorSteps(name, stage, skip))

        return gen

    def agen(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return drive_async(wrapped(*args, **kwargs), _ErrorSteps(name, stage, skip))

    return agen


class _ErrorSteps:
    """Errors mode for generators: the stage scope per step, a span only on failure."""

    __slots__ = ("name", "skip", "stage", "start")

    def __init__(self, name: str, stage: str | None, skip: tuple[type[BaseException], ...]) -> None:
        self.name = name
        self.stage = stage
        self.skip = skip
        self.start = time.time_ns()

    def enter(self) -> Any:
        return push(self.stage, {}) if self.stage is not None else None

    def leave(self, token: Any) -> None:
        if token is not None:
            pop(token)

    def error(self, exc: BaseException) -> None:
        if not isinstance(exc, self.skip):
            record_escaping(exc, name=self.name, start_time=self.start, stage=self.stage)

    def finish(self) -> None:
        pass


class _TracedSteps:
    """Traced mode for generators: the span starts with the first step and is current only
    while the generator's own code runs."""

    __slots__ = ("attrs", "ctx", "name", "skip", "span", "stage")

    def __init__(
        self,
        name: str,
        stage: str | None,
        attrs: dict[str, Any] | None,
        skip: tuple[type[BaseException], ...],
    ) -> None:
        self.name = name
        self.stage = stage
        self.attrs = attrs
        self.skip = skip
        self.span: Any = None
        self.ctx: Any = None

    def enter(self) -> Any:
        if self.span is None:
            self.span = get_tracer().start_span(self.name, attributes=self.attrs)
            self.ctx = trace.set_span_in_context(self.span)
        return (
            otel_context.attach(self.ctx),
            push(self.stage, {}) if self.stage is not None else None,
        )

    def leave(self, token: Any) -> None:
        otel_token, scope = token
        if scope is not None:
            pop(scope)
        otel_context.detach(otel_token)

    def error(self, exc: BaseException) -> None:
        if self.span is not None and not isinstance(exc, self.skip):
            record_on_span(exc, self.span, stage=self.stage)

    def finish(self) -> None:
        if self.span is not None:
            self.span.end()


def _traced_wrapper(
    kind: str,
    name: str,
    stage: str | None,
    attributes: Mapping[str, Any] | None,
    skip: tuple[type[BaseException], ...],
) -> Callable[..., Any]:
    attrs = dict(attributes or {})
    if stage is not None:
        attrs["faultlens.stage"] = stage

    def start() -> Any:
        return get_tracer().start_span(name, attributes=attrs or None)

    def fail(span: Any, exc: BaseException) -> None:
        record_on_span(exc, span, stage=stage)

    if kind == "sync":

        def sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span = start()
            token = otel_context.attach(trace.set_span_in_context(span))
            scope = push(stage, {}) if stage is not None else None
            try:
                return wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    fail(span, exc)
                raise
            finally:
                if scope is not None:
                    pop(scope)
                otel_context.detach(token)
                span.end()

        return sync

    if kind == "async":

        async def coro(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span = start()
            token = otel_context.attach(trace.set_span_in_context(span))
            scope = push(stage, {}) if stage is not None else None
            try:
                return await wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    fail(span, exc)
                raise
            finally:
                if scope is not None:
                    pop(scope)
                otel_context.detach(token)
                span.end()

        return coro

    span_attrs = attrs or None
    if kind == "gen":

        def gen(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return drive(wrapped(*args, **kwargs), _TracedSteps(name, stage, span_attrs, skip))

        return gen

    def agen(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return drive_async(wrapped(*args, **kwargs), _TracedSteps(name, stage, span_attrs, skip))

    return agen


@overload
def instrument(func: F) -> F: ...


@overload
def instrument(
    func: None = None,
    *,
    mode: Mode = "errors",
    name: str | None = None,
    stage: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Callable[[F], F]: ...


def instrument(
    func: Any = None,
    *,
    mode: Mode = "errors",
    name: str | None = None,
    stage: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Any:
    """Record classified errors escaping ``func`` (and, in ``traced`` mode, a span per call).

    Usable bare (``@instrument``) or with options (``@instrument(mode="traced",
    name="score", stage="scoring")``) on functions, coroutines, generators, async
    generators, methods, classmethods and staticmethods. The wrapped callable returns the
    same values and raises the very same exception objects as before.

    ``ignore`` names exceptions that are part of the function's contract (a lookup's
    ``KeyError``, an HTTP 404): they propagate as usual but are not recorded as failures.
    """
    if mode not in _MODES:
        raise ConfigError(
            f"unknown mode {mode!r}; use 'errors' (span only on failure) or 'traced' "
            "(span per call)",
            key="mode",
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError("name must be a non-empty string", key="name")
    if stage is not None and not isinstance(stage, str):
        raise ConfigError(f"stage must be a string, got {type(stage).__name__}", key="stage")
    if attributes is not None and not isinstance(attributes, Mapping):
        raise ConfigError(
            "attributes must be a mapping of str to str/bool/int/float", key="attributes"
        )
    ignored = ignore if isinstance(ignore, tuple) else (ignore,)
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in ignored):
        raise ConfigError(
            f"ignore must be an exception class or a tuple of them, got {ignore!r}",
            key="ignore",
        )
    skip = CONTROL_FLOW + ignored

    def decorate(f: Any) -> Any:
        if isinstance(f, type):
            raise ConfigError(
                f"@instrument decorates functions and methods, not the class {f.__name__}; "
                "decorate its methods, or use faultlens.auto.install for whole modules",
                key="func",
            )
        if not callable(f) and not isinstance(f, (classmethod, staticmethod)):
            raise ConfigError(f"@instrument needs a callable, got {type(f).__name__}", key="func")
        kind = callable_kind(f)
        span_name = name or callable_name(f)
        try:
            if mode == "errors":
                wrapper = _errors_wrapper(kind, span_name, stage, skip)
            else:
                wrapper = _traced_wrapper(kind, span_name, stage, attributes, skip)
        except Exception as e:
            internal_error("instrument", e)
            return f
        return wrapt.FunctionWrapper(f, wrapper)

    if func is not None:
        return decorate(func)
    return decorate
