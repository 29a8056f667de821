"""Small helpers shared by retry, the breaker and recovery: callable kinds, exception
matchers, argument validation and access to the configured defaults."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, cast

import wrapt

from ..capture import STATE
from ..capture._instrument import Kind, callable_name
from ..capture._instrument import callable_kind as kind_of
from ..errors import ConfigError, catalog, code_for

__all__ = [
    "ExceptionSpec",
    "Kind",
    "callable_name",
    "check_number",
    "kind_of",
    "matcher",
    "settings",
    "wrap",
]

ExceptionSpec = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)


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
    fix: str = "",
) -> None:
    """Reject a bad decorator argument with a message naming it and the fix."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, int)
    if ok:
        ok = not math.isnan(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(
            f"must be {kind} {bound}, got {value!r}{'; ' + fix if fix else ''}", key=argument
        )


def settings() -> Any:
    """The Settings configure() resolved, or None before configure() (kept on the capture
    layer's state, so this layer needs no import of the setup code above it)."""
    return STATE.settings


def wrap(func: Any, run: Callable[[Any, Any, Any, Any], Any], is_async: bool) -> Any:
    """Wrap ``func`` so each call goes through ``run(wrapped, instance, args, kwargs)``.

    Plain functions (the common case, and the hot path) get a closure with
    ``functools.wraps``: it keeps the name, docstring and signature (``__wrapped__``) and
    binds as a method like any function, at a third of wrapt's per-call cost. Everything
    else (classmethod/staticmethod objects, callable instances, builtins) gets a wrapt
    FunctionWrapper, which handles those descriptors correctly.
    """
    if not inspect.isfunction(func):
        return wrapt.FunctionWrapper(func, run)
    if is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await run(func, None, args, kwargs)

        return functools.update_wrapper(async_wrapper, func)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(func, None, args, kwargs)

    return functools.update_wrapper(wrapper, func)
