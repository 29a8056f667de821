"""Small helpers shared by retry, the breaker and recovery: callable kinds, exception
matchers, argument validation, metric-label cleaning, and fork safety of the layer's locks."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import os
import threading
import types
from collections.abc import Callable, Coroutine
from typing import Any, cast

from ..capture import Kind, internal_error
from ..capture import callable_kind as _capture_kind
from ..capture import callable_name as _capture_name
from ..errors import ConfigError, catalog, clean_text, code_for

__all__ = [
    "MAX_SECONDS",
    "ExceptionSpec",
    "Kind",
    "after_fork",
    "callable_name",
    "check_number",
    "control_flow",
    "is_coroutine",
    "kind_of",
    "label",
    "matcher",
    "wrap",
]

ExceptionSpec = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)

# The longest wait or deadline accepted anywhere in the layer: what ``time.sleep`` and lock
# timeouts accept (about 292 years on 64-bit Linux). Larger numbers raise OverflowError
# when slept, in place of the user's own exception, so they are refused up front.
MAX_SECONDS = float(threading.TIMEOUT_MAX)

# Exceptions that end a call by protocol, not by failing: the iterator protocol's "no more
# items". They pass through every wrapper unchanged: never retried, never a breaker failure,
# never a fallback, never recorded; the call counts as having completed.
ENDS_ITERATION: tuple[type[BaseException], ...] = (StopIteration, StopAsyncIteration)


def control_flow(exc: BaseException) -> bool:
    """True for exceptions that stop a call without the dependency having failed:
    cancellation (asyncio's, and ``concurrent.futures``' which is an ``Exception``),
    ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit`` and every other non-Exception
    ``BaseException``. Retry counts them ``aborted``, the breaker ``ignored``; recovery lets
    them through. (``StopIteration`` is not here: see ``ENDS_ITERATION``.)"""
    return not isinstance(exc, Exception) or isinstance(exc, _FutureCancelled)


def _future_cancelled() -> type[BaseException]:
    import concurrent.futures

    return concurrent.futures.CancelledError


_FutureCancelled = _future_cancelled()


# -- callables ------------------------------------------------------------------------------


def kind_of(func: Any) -> Kind:
    """The capture layer's classification, plus async callable objects (an instance whose
    ``__call__`` is ``async def``), judged by their ``__call__``. The call-time check
    (``is_coroutine`` on what a "sync" callable returned) catches whatever this cannot see:
    a plain function that returns a coroutine, a callable built at runtime."""
    if isinstance(func, CallableWrapper):  # one of ours, around a callable object
        return "async" if func._fl_async else "sync"
    try:
        kind = _capture_kind(func)
    except Exception as exc:
        internal_error("resilience: classify a callable", exc)
        kind = "sync"
    if kind == "sync" and not inspect.isroutine(func) and not isinstance(func, type):
        call = inspect.getattr_static(type(func), "__call__", None)
        if isinstance(call, staticmethod | classmethod):
            call = call.__func__
        if call is not None and inspect.iscoroutinefunction(call):
            return "async"
    return kind


def callable_name(func: Any) -> str:
    """The operation label of a callable: its qualified name (the wrapped function's for a
    ``functools.partial``), cleaned for use as a metric label."""
    target = func
    for _ in range(8):
        if isinstance(target, functools.partial | functools.partialmethod):
            target = target.func
        else:
            break
    try:
        name = _capture_name(target)
    except Exception as exc:
        internal_error("resilience: name a callable", exc)
        name = type(target).__name__
    return label(name)


_CoroutineType = types.CoroutineType
_NOT_COROUTINES = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict, set})


def is_coroutine(value: Any) -> bool:
    """Did a call classified as sync hand back a coroutine (an async callable object, a
    function returning ``other_async()``)? Then its outcome is only known once awaited.
    Futures and tasks are not coroutines: they are returned untouched, as they may be
    used for more than awaiting (``cancel()``, callbacks)."""
    t = type(value)
    if t is _CoroutineType:
        return True
    if t in _NOT_COROUTINES:
        return False
    return isinstance(value, Coroutine)


# -- metric labels --------------------------------------------------------------------------

LABEL_LIMIT = 256


def label(text: Any) -> str:
    """A string safe as a metric label or span attribute: valid UTF-8 (a lone surrogate in a
    qualname would make the OTLP encoder fail on every export) and capped."""
    if type(text) is not str:
        try:
            text = str.__str__(str(text))
        except Exception:
            return "<unprintable>"
    s: str = text
    if s.isascii() and len(s) <= LABEL_LIMIT:
        return s
    try:
        return clean_text(s, LABEL_LIMIT)
    except Exception:
        return "<unprintable>"


# -- fork safety ----------------------------------------------------------------------------

_fork_callbacks: list[Callable[[], None]] = []
_fork_registered = False


def after_fork(callback: Callable[[], None]) -> None:
    """Run ``callback`` in the child after ``os.fork()``: it re-creates the locks of the
    layer, which may have been held by a thread of the parent that does not exist in the
    child (a held lock would deadlock the child's first call). The fork hook is registered
    with ``os.register_at_fork`` once, on first use, never at import."""
    global _fork_registered
    if callback in _fork_callbacks:
        return
    with _fork_guard:
        if callback in _fork_callbacks:
            return
        _fork_callbacks.append(callback)
        if not _fork_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_run_fork_callbacks)
            _fork_registered = True


def _run_fork_callbacks() -> None:
    global _fork_guard
    _fork_guard = threading.Lock()
    for callback in list(_fork_callbacks):
        try:
            callback()
        except Exception as exc:
            internal_error("resilience: re-create locks after fork", exc)


_fork_guard = threading.Lock()


def catalog_retryable(exc: BaseException) -> bool:
    """The default retry rule: what the catalog marks retryable (timeouts, connection
    failures, FaultErrors whose code says so). Cheaper than classify(): no fingerprint."""
    return catalog.resolve(code_for(exc))[0].retryable


def matcher(
    spec: ExceptionSpec | None, argument: str, default: Callable[[BaseException], bool]
) -> Callable[[BaseException], bool]:
    """Turn ``on=``/``ignore=``-style arguments (a type, a tuple of types or a predicate)
    into one predicate, rejecting anything else at decoration time."""
    if spec is None:
        return default
    if isinstance(spec, type) and issubclass(spec, BaseException):
        types: tuple[type[BaseException], ...] = (spec,)
    elif isinstance(spec, tuple | list | frozenset | set):
        items = tuple(spec)
        bad = [t for t in items if not (isinstance(t, type) and issubclass(t, BaseException))]
        if bad:
            raise ConfigError(
                f"every entry must be an exception class, got {bad[0]!r}; "
                "pass exception types or a predicate taking the exception",
                key=argument,
            )
        types = items
    elif callable(spec):
        return cast(Callable[[BaseException], bool], spec)
    else:
        raise ConfigError(
            f"expected an exception type, a tuple of types or a predicate, got {spec!r}",
            key=argument,
        )
    if not types:
        return _never

    def match(exc: BaseException) -> bool:
        return isinstance(exc, types)

    return match


def _never(exc: BaseException) -> bool:
    return False


def check_number(
    value: Any,
    argument: str,
    *,
    minimum: float = 0.0,
    strict: bool = False,
    integer: bool = False,
    maximum: float | None = None,
    fix: str = "",
) -> None:
    """Reject a bad decorator argument with a message naming it and the fix.

    Only finite numbers pass: an infinite wait or timeout would raise ``OverflowError`` from
    the sleep (in place of the user's exception) long after decoration, and NaN compares
    false with everything. ``maximum`` defaults to ``MAX_SECONDS`` for non-integers."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, int)
    top = maximum if maximum is not None else (None if integer else MAX_SECONDS)
    if ok:
        ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
        if ok and top is not None:
            ok = value <= top
    if not ok:
        kind = "an integer" if integer else "a finite number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        if top is not None:
            bound += f" and <= {top:g}"
        raise ConfigError(
            f"must be {kind} {bound}, got {value!r}{'; ' + fix if fix else ''}", key=argument
        )


Run = Callable[[Any, Any, Any, Any], Any]


def wrap(func: Any, run: Run, is_async: bool, rewrap: Callable[[Any], Any]) -> Any:
    """Wrap ``func`` so each call goes through ``run(wrapped, instance, args, kwargs)``.

    The result pickles exactly as ``func`` would, so decorated functions still work with
    ``ProcessPoolExecutor``/``multiprocessing`` (spawn and fork):

    - Plain functions (the common case, and the hot path) get a closure with
      ``functools.wraps``: it keeps the name, qualname, module, docstring and signature
      (``__wrapped__``), binds as a method like any function, and pickles by reference
      (``module.qualname`` finds the decorated function itself).
    - ``classmethod``/``staticmethod`` objects: their function is wrapped as above and put
      back into the same descriptor, so ``Class.method`` is again a plain (bound) function.
    - Other callables (callable instances, partials, builtins) get a ``CallableWrapper``;
      like the object it wraps it pickles by value: it unpickles as ``rewrap(func)``, i.e.
      the same decorator applied again to the unpickled object.
    """
    if isinstance(func, classmethod | staticmethod):
        return type(func)(wrap(func.__func__, run, is_async, rewrap))
    if not inspect.isfunction(func):
        return CallableWrapper(func, run, is_async, rewrap)
    if is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await run(func, None, args, kwargs)

        return functools.update_wrapper(async_wrapper, func)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(func, None, args, kwargs)

    return functools.update_wrapper(wrapper, func)


def _rewrap(rewrap: Callable[[Any], Any], func: Any) -> Any:
    return rewrap(func)


class CallableWrapper:
    """The wrapper of a callable that is not a function (see ``wrap``).

    Attributes the wrapper does not have are read from the wrapped object, and when the
    wrapped object is a descriptor (a method of a compiled class, say) the wrapper binds the
    same way, passing the instance to ``run`` separately.
    """

    def __init__(
        self,
        func: Any,
        run: Run,
        is_async: bool,
        rewrap: Callable[[Any], Any],
        instance: Any = None,
    ) -> None:
        self.__wrapped__ = func
        self._fl_run = run
        self._fl_async = is_async
        self._fl_rewrap = rewrap
        self._fl_instance = instance
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:
                value = getattr(func, attr)
            except Exception:
                continue
            if isinstance(value, str) or (attr == "__doc__" and value is None):
                self.__dict__[attr] = value
        if is_async:
            # asyncio.iscoroutinefunction() (used by some frameworks) recognises the mark.
            self.__dict__["_is_coroutine"] = getattr(asyncio.coroutines, "_is_coroutine", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fl_run(self.__wrapped__, self._fl_instance, args, kwargs)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        get = getattr(type(self.__wrapped__), "__get__", None)
        if get is None or instance is None:
            return self
        bound = get(self.__wrapped__, instance, owner)
        return CallableWrapper(bound, self._fl_run, self._fl_async, self._fl_rewrap, instance)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_fl_") or name == "__wrapped__":
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rewrap, (self._fl_rewrap, self.__wrapped__))

    def __repr__(self) -> str:
        try:
            inner = repr(self.__wrapped__)
        except Exception:
            inner = type(self.__wrapped__).__name__
        return f"<faultlens wrapper of {inner}>"
