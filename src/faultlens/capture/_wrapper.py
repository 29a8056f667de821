"""A ``wrapt.FunctionWrapper`` that pickles and copies like the callable it wraps.

wrapt's proxies refuse ``pickle`` and ``copy`` outright, so a decorated function could not
be sent to a ``ProcessPoolExecutor`` or ``multiprocessing.Pool`` (under ``faultlens run``,
an application that works without faultlens would break). Python pickles functions *by
reference* (module and qualified name, looked up again on the other side) and methods as
``getattr(owner, name)``; these wrappers do exactly the same, so the other process gets
whatever that name means there (the decorated function, if it imports the same module).
``copy.copy``/``deepcopy`` follow the same reduction, as they do for functions (a function
is its own copy; a bound method copies its instance).

A wrapper that is not reachable by name (a decorated callable object, a partial) pickles by
value when the decorator says how to rebuild it (``rebuild``: a picklable callable taking
the wrapped object), else it fails the way pickling the bare object would.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import wrapt

__all__ = ["AsyncCallableWrapper", "FunctionWrapper", "resolve_qualname"]


def _target(obj: Any) -> Any:
    return obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj


def resolve_qualname(module: str, qualname: str) -> Any:
    """``module.qualname`` looked up attribute by attribute (what unpickling does)."""
    obj: Any = sys.modules.get(module)
    if obj is None:
        __import__(module)
        obj = sys.modules[module]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class BoundFunctionWrapper(wrapt.BoundFunctionWrapper):  # type: ignore[misc,type-arg]
    """The wrapper bound to an instance or class: reduced like a bound method."""

    __copy__ = None  # type: ignore[assignment]  # copy/deepcopy: __reduce_ex__, as methods
    __deepcopy__ = None  # type: ignore[assignment]

    def __reduce_ex__(self, protocol: Any) -> Any:
        name = getattr(_target(self._self_parent.__wrapped__), "__name__", None)
        if isinstance(name, str):
            binding = self._self_binding
            instance = self._self_instance
            if binding == "classmethod":
                owner = getattr(self.__wrapped__, "__self__", None) or self._self_owner
                if owner is not None:
                    return (getattr, (owner, name))
            elif instance is not None and binding != "staticmethod":
                return (getattr, (instance, name))
            elif self._self_owner is not None:
                # Reached through the class (``C.method``, a staticmethod): by reference,
                # if that name on the class is this very wrapper (as pickle checks for
                # a bare function's qualified name).
                try:
                    found = inspect.getattr_static(self._self_owner, name, None)
                except Exception:
                    found = None
                if found is self._self_parent:
                    return (getattr, (self._self_owner, name))
        return self._self_parent.__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


class FunctionWrapper(wrapt.FunctionWrapper):  # type: ignore[misc,type-arg]
    """``wrapt.FunctionWrapper(wrapped, wrapper)`` that pickles by reference like a function.

    ``rebuild``, if given, is a picklable callable: ``rebuild(wrapped)`` makes the same
    wrapper again; used for wrapped objects that are not reachable by name (pickled by value
    then, like the bare object).
    """

    __bound_function_wrapper__ = BoundFunctionWrapper
    __copy__ = None  # type: ignore[assignment]  # copy/deepcopy: __reduce_ex__, as functions
    __deepcopy__ = None  # type: ignore[assignment]

    def __init__(
        self, wrapped: Any, wrapper: Any, rebuild: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(wrapped, wrapper)
        self._self_rebuild = rebuild

    def __reduce_ex__(self, protocol: Any) -> Any:
        target = _target(self.__wrapped__)
        module = getattr(target, "__module__", None)
        qualname = getattr(target, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str) and "<locals>" not in qualname:
            try:
                found = resolve_qualname(module, qualname)
            except Exception:
                found = None
            if found is self:
                return qualname  # a global reference, byte for byte what the bare function gives
            parent = getattr(found, "_self_parent", None)
            owner_name, _, name = qualname.rpartition(".")
            if parent is self and owner_name:
                return (getattr, (resolve_qualname(module, owner_name), name))
        rebuild = self._self_rebuild
        if rebuild is not None:
            return (rebuild, (self.__wrapped__,))
        # Not reachable by name and no way to rebuild: fail like pickling the bare object.
        import pickle  # only ever needed here, while pickling: not at faultlens's import

        if isinstance(module, str) and isinstance(qualname, str):
            raise pickle.PicklingError(
                f"Can't pickle {self.__wrapped__!r}: it's not found as {module}.{qualname}"
            )
        raise pickle.PicklingError(f"Can't pickle {self.__wrapped__!r}")

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


class AsyncCallableWrapper(FunctionWrapper):
    """The wrapper of an async callable *object* (``async def __call__``, a partial of a
    coroutine function): its own ``__call__`` is a coroutine function too, as the bare
    object's is, so frameworks that tell async endpoints apart by
    ``inspect.iscoroutinefunction(obj.__call__)`` (Starlette, Django) still see one."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        wrapper: Any = self._self_wrapper
        return await wrapper(self.__wrapped__, self._self_instance, args, kwargs)
