"""Wrapping the functions and methods a module defines with ``faultlens.instrument``.

Only what the module itself defines is wrapped (re-exports are wrapped, if at all, where they
are defined), and only plain Python functions: builtins, C and Cython functions, properties,
other descriptors, lambdas, dunder methods and exception classes are left alone, because
wrapping them either cannot work or would change behaviour (``__eq__``, ``__iter__``,
``__exit__`` raising on purpose). Every replacement is remembered so ``uninstall()`` can put
the originals back, and any object that resists wrapping is skipped, never fatal.
"""

from __future__ import annotations

import inspect
import threading
import types
from dataclasses import dataclass
from typing import Any

import wrapt

from ..capture import instrument, internal_error, is_plain_instrumented
from . import _rewrite

__all__ = ["Replacement", "adopt_rewritten", "is_faultlens_wrapper", "restore", "wrap_module"]

# Nested classes deeper than this are left alone; real code rarely nests more than twice.
_MAX_CLASS_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Replacement:
    """``owner.name`` was ``original`` and is now ``wrapper`` (what uninstall undoes)."""

    owner: Any
    name: str
    original: Any
    wrapper: Any


_replacements: list[Replacement] = []
_lock = threading.Lock()


def is_faultlens_wrapper(obj: Any) -> bool:
    """True for anything ``faultlens.instrument`` produced, also behind other decorators."""
    seen = 0
    while obj is not None and seen < 32:
        seen += 1
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__  # the rewrite's wrapper sits under them
            continue
        if is_plain_instrumented(obj):
            return True
        if isinstance(obj, (wrapt.FunctionWrapper, wrapt.BoundFunctionWrapper)):
            wrapper = getattr(obj, "_self_wrapper", None)
            if str(getattr(wrapper, "__module__", "")).startswith("faultlens."):
                return True
        try:
            obj = inspect.getattr_static(obj, "__wrapped__", None)
        except Exception:
            return False
    return False


def _wrappable_function(func: Any, module_name: str) -> bool:
    if not isinstance(func, types.FunctionType):
        return False  # builtins, C/Cython functions, partials, callables objects
    if getattr(func, "__module__", None) != module_name:
        return False  # a re-export, or typing.overload's stub (defined in typing)
    name = func.__name__
    if name.startswith("<") or (name.startswith("__") and name.endswith("__")):
        return False  # lambdas, dunders
    return not is_faultlens_wrapper(func)


def _wrap_value(value: Any, module_name: str, qualname: str) -> Any | None:
    """The wrapper for a class attribute, or None when it must stay as it is."""
    if isinstance(value, (staticmethod, classmethod)):
        func = value.__func__
        if _wrappable_function(func, module_name) and func.__qualname__ == qualname:
            return instrument(value)  # type: ignore[type-var]
        return None
    if _wrappable_function(value, module_name) and value.__qualname__ == qualname:
        return instrument(value)
    return None


def _replace(owner: Any, name: str, original: Any, wrapper: Any, out: list[Replacement]) -> None:
    setattr(owner, name, wrapper)
    out.append(Replacement(owner, name, original, wrapper))


def _wrap_class(cls: type, module_name: str, depth: int, out: list[Replacement]) -> None:
    if issubclass(cls, BaseException):
        return  # exception classes: their methods run while an error is being built
    for name, value in list(vars(cls).items()):
        if name.startswith("__") and name.endswith("__"):
            continue
        try:
            if isinstance(value, type):
                if (
                    depth < _MAX_CLASS_DEPTH
                    and value.__module__ == module_name
                    and value.__qualname__ == f"{cls.__qualname__}.{name}"
                ):
                    _wrap_class(value, module_name, depth + 1, out)
                continue
            wrapper = _wrap_value(value, module_name, f"{cls.__qualname__}.{name}")
            if wrapper is not None:
                _replace(cls, name, value, wrapper, out)
        except Exception as exc:
            internal_error(f"auto-instrumenting {module_name}.{cls.__qualname__}", exc)


def wrap_module(module: types.ModuleType) -> int:
    """Wrap every function and method ``module`` defines; returns how many were wrapped.

    A module opts out by setting ``__faultlens_auto__ = False`` (for code that stands in for
    a third-party library, or whose functions raise on purpose as part of their protocol).
    Never raises: a member that cannot be wrapped is skipped (and the failure counted and
    logged once), the rest of the module is still instrumented.
    """
    module_name = getattr(module, "__name__", None)
    if not isinstance(module_name, str):
        return 0
    done: list[Replacement] = []
    try:
        namespace = vars(module)
        if namespace.get("__faultlens_auto__") is False:
            return 0
        for name, value in list(namespace.items()):
            if name.startswith("__") and name.endswith("__"):
                continue
            try:
                if isinstance(value, type):
                    if value.__module__ == module_name and value.__qualname__ == name:
                        _wrap_class(value, module_name, 1, done)
                elif _wrappable_function(value, module_name) and value.__qualname__ == name:
                    _replace(module, name, value, instrument(value), done)
            except Exception as exc:
                internal_error(f"auto-instrumenting {module_name}.{name}", exc)
    except Exception as exc:
        internal_error(f"auto-instrumenting {module_name}", exc)
    with _lock:
        _replacements.extend(done)
    return len(done)


def _adopt_class(cls: type, module_name: str, depth: int, out: list[Replacement]) -> None:
    for name, value in list(vars(cls).items()):
        if isinstance(value, type):
            if (
                depth < _MAX_CLASS_DEPTH
                and value.__module__ == module_name
                and value.__qualname__ == f"{cls.__qualname__}.{name}"
            ):
                _adopt_class(value, module_name, depth + 1, out)
            continue
        bare = _rewrite._unwrapped(value)
        if bare is not None:
            out.append(Replacement(cls, name, bare, value))


def adopt_rewritten(module: types.ModuleType) -> int:
    """Remember the functions and methods the rewrite instrumented in ``module`` (reachable
    as its attributes and its classes' attributes) so ``uninstall()`` puts the originals
    back there too; returns how many. What decorators captured stays instrumented."""
    module_name = getattr(module, "__name__", None)
    if not isinstance(module_name, str):
        return 0
    done: list[Replacement] = []
    try:
        for name, value in list(vars(module).items()):
            if isinstance(value, type):
                if value.__module__ == module_name and value.__qualname__ == name:
                    _adopt_class(value, module_name, 1, done)
                continue
            bare = _rewrite._unwrapped(value)
            if bare is not None:
                done.append(Replacement(module, name, bare, value))
    except Exception as exc:
        internal_error(f"auto-instrumenting {module_name}", exc)
    with _lock:
        _replacements.extend(done)
    return len(done)


def restore() -> int:
    """Put back every original this module replaced (where nobody replaced it since)."""
    with _lock:
        items = list(reversed(_replacements))
        _replacements.clear()
    restored = 0
    for r in items:
        try:
            current = inspect.getattr_static(r.owner, r.name, None)
            if current is r.wrapper:
                setattr(r.owner, r.name, r.original)
                restored += 1
        except Exception as exc:
            internal_error("auto-instrumentation restore", exc)
    return restored
