"""@instrument: classified errors (and optionally a span per call) for any callable.

The callable is classified once, at decoration time, as sync, async, generator or async
generator, and gets the matching wrapper; the per-call path does no inspection. An async
callable object (``async def __call__``) or a partial of a coroutine function is async. A
callable that only *returns* a coroutine (a sync ``functools.wraps`` decorator around an
async function, say) is recognised by what the call returns: the coroutine is handed back
wrapped, so its failure is recorded when it is awaited.

A plain sync function decorated in place in errors mode (the common case, and the one
whose success path users pay for on every call) gets a plain function around it, as
``functools.wraps`` makes: it costs half a wrapt proxy per call, binds as a method by itself
and pickles by reference under the name it was decorated as. Everything else (traced mode,
coroutines, generators, class/static methods, callable objects, partials, and
``instrument(work)`` on a function that keeps its own name, which must pickle by value) is a
wrapt proxy: wrapt keeps signatures, metadata and descriptor binding intact; the wrapper
pickles and copies by reference, like the function (``_wrapper.py``), or by value through
``rebuild`` when not reachable by name, so instrumented functions go to process pools as they
are.

Modes:
- ``errors`` (default): nothing on success except reading the clock; a failing call gets its
  own span, started at the call's real start time, carrying the exception event.
- ``traced``: a span per call, current while the function's own code runs.

Whatever the tracer, the exporter or the recorder do, the wrappers never raise into the
caller's code and never change what the call returns or raises. What passes through
unrecorded: control flow (``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``,
cancellation), the end of an iteration (``StopIteration``/``StopAsyncIteration``), and the
``ignore=`` exceptions.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import types
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

from ..errors import ConfigError, clean_text, safe_str
from ._context import pop, push
from ._record import PASS_THROUGH, escaped, record_escaping, record_on_span
from ._steps import drive, drive_async
from ._telemetry import get_tracer, internal_error
from ._wrapper import AsyncCallableWrapper, FunctionWrapper

__all__ = [
    "Kind",
    "callable_kind",
    "callable_name",
    "instrument",
    "instrument_proxy",
    "is_coroutine",
    "is_plain_instrumented",
]

F = TypeVar("F", bound=Callable[..., Any])
Mode = Literal["errors", "traced"]
Kind = Literal["sync", "async", "gen", "asyncgen"]
_MODES = ("errors", "traced")
_MAX_UNWRAP = 32
_CoroutineType = types.CoroutineType


def is_coroutine(value: Any) -> bool:
    """Whether what a call returned is a coroutine: a callable classified "sync" that hands
    one back is async in effect, and its failure only happens when it is awaited. Exact type
    check (cheap on the hot path); other awaitables (futures, tasks) have their own API and
    are left as they are."""
    return type(value) is _CoroutineType


def _code_kind(target: Any) -> Kind | None:
    if inspect.isasyncgenfunction(target):
        return "asyncgen"
    if inspect.iscoroutinefunction(target):
        return "async"
    if inspect.isgeneratorfunction(target):
        return "gen"
    return None


def _kind_of(func: Any) -> Kind:
    target = func
    for _ in range(_MAX_UNWRAP):
        if isinstance(target, (classmethod, staticmethod)):
            target = target.__func__
        elif isinstance(target, functools.partial):
            target = target.func  # a partial's call returns what its function returns
        elif inspect.ismethod(target):
            target = target.__func__
        elif inspect.isfunction(target):
            # A plain function is judged by its own code: @contextmanager and other @wraps
            # wrappers return something else than the generator or coroutine they wrap (a
            # sync one returning a coroutine is caught by what it returns, at the call).
            # wrapt proxies of functions pass as functions and answer with their code.
            return _code_kind(target) or "sync"
        elif isinstance(target, wrapt.BaseObjectProxy):
            target = target.__wrapped__  # transparent by design: calls go straight through
        elif isinstance(target, type) or not callable(target):
            return "sync"
        else:
            # A callable object: what its class's __call__ is (``async def __call__``).
            call = inspect.getattr_static(type(target), "__call__", None)
            if not (
                inspect.isfunction(call)
                or isinstance(call, (staticmethod, classmethod, wrapt.BaseObjectProxy))
            ):
                return "sync"  # a builtin's or C type's __call__: nothing async about it
            target = call
    return "sync"


def callable_kind(func: Any) -> Kind:
    """Classify a callable once, at decoration time, so the per-call path does no inspection:
    functions and methods by their code, partials by their function, callable objects by
    their ``__call__``. Never raises (anything unreadable is "sync", and a sync callable
    returning a coroutine is recognised at the call: see :func:`is_coroutine`)."""
    try:
        return _kind_of(func)
    except Exception:
        return "sync"


def _is_callable_object(func: Any) -> bool:
    """An object called through its class's ``__call__`` (or a partial), not a function,
    a method or a static/class method object."""
    return not (
        inspect.isfunction(func)
        or inspect.ismethod(func)
        or inspect.isbuiltin(func)
        or isinstance(func, (classmethod, staticmethod))
    )


def callable_name(func: Any) -> str:
    """The name a callable's spans and metrics go by: its qualified name without the
    ``<locals>`` noise; a partial's function's; a callable object's class's. Clean UTF-8,
    never raises."""
    try:
        target = func
        for _ in range(_MAX_UNWRAP):
            if isinstance(target, (classmethod, staticmethod)):
                target = target.__func__
            elif isinstance(target, functools.partial):
                target = target.func
            else:
                break
        for attr in ("__qualname__", "__name__"):
            name = getattr(target, attr, None)
            if isinstance(name, str) and name:
                # "outer.<locals>.inner" reads as noise in a trace; the function is "inner".
                return clean_text(name.rsplit("<locals>.", 1)[-1], 256)
        cls = getattr(target, "__class__", None)
        if not isinstance(cls, type):
            cls = type(target)
        name = cls.__qualname__
        return clean_text(name.rsplit("<locals>.", 1)[-1], 256)
    except Exception:
        return "callable"


def _record_escaped(
    exc: BaseException,
    name: str,
    start: int,
    stage: str | None,
    skip: tuple[type[BaseException], ...],
) -> None:
    try:
        record_escaping(exc, name=name, start_time=start, stage=stage, skip=skip)
    except Exception:
        pass  # no stack left even to start recording (deep recursion): an outer span will


async def _errors_coroutine(
    coro: Any, name: str, start: int, stage: str | None, skip: tuple[type[BaseException], ...]
) -> Any:
    """The coroutine a sync-looking callable returned, recorded like an async function's."""
    token = push(stage, {}) if stage is not None else None
    try:
        return await coro
    except BaseException as exc:
        if not isinstance(exc, skip):
            try:
                record_escaping(exc, name=name, start_time=start, stage=stage, skip=skip)
            except Exception:
                pass
        raise
    finally:
        if token is not None:
            pop(token)


def _stepped(
    kind: str,
    new_steps: Callable[[], Any],
    name: str,
    stage: str | None,
    skip: tuple[type[BaseException], ...],
) -> Callable[[Any, Any, Any, Any], Any]:
    """The wrapper of a generator or async generator function (both modes): make the steps
    at the call, record a call that fails before it yields anything (bad arguments), and
    drive what the call made step by step; something that is not a generator after all
    is returned as it is."""
    method, driver = ("send", drive) if kind == "gen" else ("asend", drive_async)

    def stepped(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        steps = new_steps()
        try:
            made = wrapped(*args, **kwargs)
        except BaseException as exc:
            if not isinstance(exc, skip):
                _record_escaped(exc, name, steps.start, stage, skip)
            raise
        if not hasattr(made, method):
            return made
        return driver(made, steps)

    return stepped


def _plain_errors(
    func: Any, name: str, stage: str | None, skip: tuple[type[BaseException], ...]
) -> Any:
    """Errors mode for a plain sync function decorated in place: a plain function around it,
    as ``functools.wraps`` makes. Half the cost of a wrapt proxy per call (two function calls
    instead of the proxy's C call into a Python wrapper with ``(wrapped, instance, args,
    kwargs)``), and nothing to proxy: it binds as a method by itself, carries the function's
    name, docstring, annotations, attributes and ``__wrapped__`` (so ``inspect.signature``
    is the function's), and pickles by reference under the name it is decorated as. It runs
    the proxy's own wrapper, so both record alike."""
    run = _errors_wrapper("sync", name, stage, skip)

    def instrumented(*args: Any, **kwargs: Any) -> Any:
        return run(func, None, args, kwargs)

    functools.update_wrapper(instrumented, func)
    return instrumented


_PLAIN_CODE = next(
    c
    for c in _plain_errors.__code__.co_consts
    if isinstance(c, types.CodeType) and c.co_name == "instrumented"
)


def is_plain_instrumented(obj: Any) -> bool:
    """Whether ``obj`` is the plain function ``@instrument`` made around a sync function."""
    return type(obj) is types.FunctionType and obj.__code__ is _PLAIN_CODE


def _named_as_itself(func: Any) -> bool:
    """Whether ``module.qualname`` already names ``func``: ``instrument(work)`` called on a
    function that keeps its own name, where the result must pickle by value (the proxy's
    ``rebuild``), as a plain function under a name it is not cannot. Under decorator syntax
    the name is not bound yet (or names an earlier definition)."""
    try:
        qualname = func.__qualname__
        if "<locals>" in qualname:
            return False  # not picklable by name either way
        obj: Any = sys.modules.get(func.__module__)
        for part in qualname.split("."):
            if obj is None:
                return False
            obj = inspect.getattr_static(obj, part, None)
        return obj is func
    except Exception:
        return True  # unknowable: the proxy, which pickles by value when it must


def _errors_wrapper(
    kind: str, name: str, stage: str | None, skip: tuple[type[BaseException], ...]
) -> Callable[..., Any]:
    # Bound once per decorated function: the success path is a clock read, the call and a
    # type check, with no global lookups.
    time_ns = time.time_ns
    coroutine_type = _CoroutineType
    if kind == "sync":
        if stage is None:

            def sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                start = time_ns()
                try:
                    result = wrapped(*args, **kwargs)
                except BaseException as exc:
                    if not isinstance(exc, skip):
                        try:
                            escaped(exc, name, start, None, skip)
                        except Exception:
                            pass  # no stack left to record with: an outer span will
                    raise
                if type(result) is coroutine_type:
                    return _errors_coroutine(result, name, start, stage, skip)
                return result

            return sync

        def sync_staged(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            start = time_ns()
            token = push(stage, {})
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    try:
                        escaped(exc, name, start, stage, skip)
                    except Exception:
                        pass  # no stack left to record with: an outer span will
                raise
            finally:
                pop(token)
            if type(result) is coroutine_type:
                return _errors_coroutine(result, name, start, stage, skip)
            return result

        return sync_staged

    if kind == "async":

        async def coro(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            start = time_ns()
            token = push(stage, {}) if stage is not None else None
            try:
                return await wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    try:
                        escaped(exc, name, start, stage, skip)
                    except Exception:
                        pass
                raise
            finally:
                if token is not None:
                    pop(token)

        return coro

    # The wrapper returns the driving generator rather than being a generator itself, so
    # the steps object (and the failing call's start time) is made at the call.
    return _stepped(kind, lambda: _ErrorSteps(name, stage, skip), name, stage, skip)


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
            record_escaping(
                exc, name=self.name, start_time=self.start, stage=self.stage, skip=self.skip
            )

    def finish(self) -> None:
        pass


def _start_span(name: str, attrs: dict[str, Any] | None) -> Any:
    """The call's span, or None when the tracer fails (the call goes on without it)."""
    try:
        return get_tracer().start_span(name, attributes=attrs)
    except Exception as e:
        try:
            internal_error("starting a span", e)
        except Exception:
            pass
        return None


def _failed(where: str, exc: BaseException) -> None:
    """A tracer or context failure around a traced call: counted, logged once; the call goes
    on (without the span, or with it unattached)."""
    try:
        internal_error(where, exc)
    except Exception:
        pass


def _attach(span: Any) -> Any:
    if span is None:
        return None
    try:
        return otel_context.attach(trace.set_span_in_context(span))
    except Exception as e:
        try:
            internal_error("attaching a span", e)
        except Exception:
            pass
        return None


def _finish(span: Any, token: Any) -> None:
    """Detach and end the call's span; never raises (a span processor's ``on_end`` is the
    application's, and may)."""
    try:
        if token is not None:
            otel_context.detach(token)
        if span is not None:
            span.end()
    except Exception as e:
        try:
            internal_error("ending a span", e)
        except Exception:
            pass


class _TracedSteps:
    """Traced mode for generators: the span starts with the first step and is current only
    while the generator's own code runs."""

    __slots__ = ("attrs", "ctx", "name", "skip", "span", "stage", "start")

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
        self.start = time.time_ns()

    def enter(self) -> Any:
        if self.span is None and self.ctx is None:
            self.span = _start_span(self.name, self.attrs)
            self.ctx = trace.set_span_in_context(self.span) if self.span is not None else False
        otel_token = None
        if self.ctx:
            try:
                otel_token = otel_context.attach(self.ctx)
            except Exception:
                otel_token = None
        return (otel_token, push(self.stage, {}) if self.stage is not None else None)

    def leave(self, token: Any) -> None:
        otel_token, scope = token
        if scope is not None:
            pop(scope)
        if otel_token is not None:
            otel_context.detach(otel_token)

    def error(self, exc: BaseException) -> None:
        if isinstance(exc, self.skip):
            return
        if self.span is not None:
            record_on_span(exc, self.span, stage=self.stage, skip=self.skip)
        else:  # no span (failed to start, or the generator never ran): one of its own
            record_escaping(
                exc, name=self.name, start_time=self.start, stage=self.stage, skip=self.skip
            )

    def finish(self) -> None:
        _finish(self.span, None)


def _traced_wrapper(
    kind: str,
    name: str,
    stage: str | None,
    attributes: Mapping[str, Any] | None,
    skip: tuple[type[BaseException], ...],
) -> Callable[..., Any]:
    attrs: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, str):
            value = clean_text(value, 1024)
        attrs[clean_text(key, 256) if isinstance(key, str) else safe_str(key, 256)] = value
    if stage is not None:
        attrs["faultlens.stage"] = clean_text(stage, 256)
    span_attrs = attrs or None

    def fail(span: Any, exc: BaseException, start: int) -> None:
        try:
            if span is not None:
                record_on_span(exc, span, stage=stage, skip=skip)
            else:
                record_escaping(exc, name=name, start_time=start, stage=stage, skip=skip)
        except Exception:
            pass  # no stack left to record with: an outer span will

    if kind == "sync":
        # _start_span, _attach and _finish inlined, with their guards: the span per call is
        # what traced mode costs, the wrapper around it should cost close to nothing.
        time_ns = time.time_ns
        attach = otel_context.attach
        detach = otel_context.detach
        in_context = trace.set_span_in_context

        def sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            start = time_ns()
            span: Any = None
            token: Any = None
            try:
                span = get_tracer().start_span(name, attributes=span_attrs)
            except Exception as e:
                _failed("starting a span", e)
            else:
                try:
                    token = attach(in_context(span))
                except Exception as e:
                    _failed("attaching a span", e)
            scope = push(stage, {}) if stage is not None else None
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    fail(span, exc, start)
                raise
            finally:
                if scope is not None:
                    pop(scope)
                try:
                    if token is not None:
                        detach(token)
                    if span is not None:
                        span.end()
                except Exception as e:
                    _failed("ending a span", e)
            if type(result) is _CoroutineType:
                # The call only made a coroutine; its failure, when awaited, is recorded on
                # a span of its own, as in errors mode.
                return _errors_coroutine(result, name, start, stage, skip)
            return result

        return sync

    if kind == "async":

        async def coro(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            start = time.time_ns()
            span = _start_span(name, span_attrs)
            token = _attach(span)
            scope = push(stage, {}) if stage is not None else None
            try:
                return await wrapped(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, skip):
                    fail(span, exc, start)
                raise
            finally:
                if scope is not None:
                    pop(scope)
                _finish(span, token)

        return coro

    return _stepped(kind, lambda: _TracedSteps(name, stage, span_attrs, skip), name, stage, skip)


def _rebuild(
    mode: Mode,
    name: str | None,
    stage: str | None,
    attributes: Mapping[str, Any] | None,
    ignore: tuple[type[BaseException], ...],
    wrapped: Any,
) -> Any:
    """Unpickling an instrumented object that is not reachable by name (a callable object,
    a partial): instrument it again, with the same options."""
    return instrument(
        wrapped, mode=mode, name=name, stage=stage, attributes=attributes, ignore=ignore
    )


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
    generators, methods, classmethods, staticmethods, async callable objects and partials.
    The wrapped callable returns the same values and raises the very same exception objects
    as before, and pickles like the bare function (by reference).

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
    skip = PASS_THROUGH + ignored

    def decorate(f: Any) -> Any:
        return _decorate(f, mode, name, stage, attributes, ignored, skip, plain=True)

    if func is not None:
        return decorate(func)
    return decorate


def instrument_proxy(func: Any) -> Any:
    """``instrument(func)`` (errors mode, no options) always as the wrapt proxy, for the
    auto-instrumentation's rewrite, which builds its own proxies from this one's parts."""
    return _decorate(func, "errors", None, None, None, (), PASS_THROUGH, plain=False)


def _decorate(
    f: Any,
    mode: Mode,
    name: str | None,
    stage: str | None,
    attributes: Mapping[str, Any] | None,
    ignored: tuple[type[BaseException], ...],
    skip: tuple[type[BaseException], ...],
    plain: bool,
) -> Any:
    """The decorator's work; ``plain`` allows the plain-function wrapper (errors mode, a sync
    function decorated in place), the wrapt proxy otherwise."""
    if isinstance(f, type):
        raise ConfigError(
            f"@instrument decorates functions and methods, not the class {f.__name__}; "
            "decorate its methods, or use faultlens.auto.install for whole modules",
            key="func",
        )
    if not callable(f) and not isinstance(f, (classmethod, staticmethod)):
        raise ConfigError(f"@instrument needs a callable, got {type(f).__name__}", key="func")
    kind = callable_kind(f)
    span_name = clean_text(name, 256) if name else callable_name(f)
    try:
        if (
            plain
            and mode == "errors"
            and kind == "sync"
            and type(f) is types.FunctionType
            and not _named_as_itself(f)
        ):
            return _plain_errors(f, span_name, stage, skip)
        if mode == "errors":
            wrapper = _errors_wrapper(kind, span_name, stage, skip)
        else:
            wrapper = _traced_wrapper(kind, span_name, stage, attributes, skip)
        options = dict(attributes) if attributes else None  # a plain dict pickles
        rebuild = functools.partial(_rebuild, mode, name, stage, options, ignored)
        if kind == "async" and _is_callable_object(f):
            return AsyncCallableWrapper(f, wrapper, rebuild)
        return FunctionWrapper(f, wrapper, rebuild)
    except Exception as e:
        internal_error("instrument", e)
        return f
