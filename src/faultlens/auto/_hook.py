"""The import hook: a meta path finder that wraps the real loader of the modules to instrument.

The finder asks the finders behind it for the module's spec, and when the module is one the
user named, swaps the spec's loader for a thin proxy whose ``exec_module`` runs the module's
source rewritten so that every function is instrumented before any decorator captures it
(``_rewrite``: ``@app.route``, ``@task``, registries), then wraps what the module defined
that is not instrumented yet (for modules that are not plain source files: everything).
Everything else the import system or a library may ask the loader (``get_code``,
``get_resource_reader``, ``is_package`` ...) is forwarded, so packages keep their resources
and tracebacks keep their source lines; ``get_code`` answers the code ``exec_module`` runs
(the rewritten code, self-contained), so ``python -m pkg`` is instrumented too.

Targets are named two ways: glob patterns on module names (``myapp.*`` matches ``myapp`` and
everything below it; other patterns are ``fnmatch`` globs, so ``plain_app*`` matches
``plain_app`` and ``plain_app.jobs``) and directory roots (every module whose file lives
under the root, except installed packages under ``site-packages``). Some modules are never
instrumented, whatever the patterns say: faultlens itself, OpenTelemetry, wrapt, the standard
library and the interpreter's start-up modules.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
import types
import weakref
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from ..capture import internal_error
from ..errors import ConfigError
from . import _wrap
from ._rewrite import rewritten_code
from ._wrap import adopt_rewritten, restore, wrap_module

__all__ = ["Targets", "install", "installed", "uninstall"]

_log = logging.getLogger("faultlens")

_NEVER = frozenset(
    {
        "faultlens",
        "opentelemetry",
        "wrapt",
        "__main__",
        "site",
        "sitecustomize",
        "usercustomize",
        "_pytest",
        "pytest",
        "pluggy",
        "psutil",
        "yaml",
        "google",  # protobuf, pulled in by the OTLP exporter
        "grpc",
    }
)
_INSTALLED_DIRS = ("site-packages", "dist-packages")


def _never(name: str) -> bool:
    top = name.partition(".")[0]
    return top in _NEVER or top in sys.stdlib_module_names


class Targets:
    """Which modules to instrument: name patterns and directory roots."""

    __slots__ = ("patterns", "roots")

    def __init__(self, patterns: Iterable[str] = (), roots: Iterable[str] = ()) -> None:
        self.patterns = tuple(_check_pattern(p) for p in patterns)
        self.roots = tuple(os.path.join(os.path.realpath(r), "") for r in roots)

    def __bool__(self) -> bool:
        return bool(self.patterns or self.roots)

    def __repr__(self) -> str:
        return f"Targets(patterns={list(self.patterns)!r}, roots={list(self.roots)!r})"

    def name_matches(self, name: str) -> bool:
        for p in self.patterns:
            if p.endswith(".*") and (name == p[:-2] or fnmatchcase(name, p)):
                return True
            if fnmatchcase(name, p):
                return True
        return False

    def file_matches(self, filename: str | None) -> bool:
        if not self.roots or not filename:
            return False
        try:
            real = os.path.realpath(filename)
        except (OSError, ValueError):
            return False
        parts = real.split(os.sep)
        if any(d in parts for d in _INSTALLED_DIRS):
            return False
        return any(real.startswith(root) for root in self.roots)

    def module_matches(self, name: str, filename: str | None) -> bool:
        if _never(name):
            return False
        return self.name_matches(name) or self.file_matches(filename)


def _check_pattern(p: Any) -> str:
    if not isinstance(p, str) or not p.strip():
        raise ConfigError(
            f"module patterns are non-empty strings like 'myapp.*', got {p!r}",
            key="auto_instrumentation.modules",
        )
    return p.strip()


class _WrappingLoader(importlib.abc.Loader):
    """Runs the module's code rewritten so every function is instrumented before any
    decorator sees it (``_rewrite``), or, for modules that are not plain source files, the
    real loader; then instruments what the module defined that is not instrumented yet."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: types.ModuleType) -> None:
        code = rewritten_code(self._inner, module.__name__)
        try:
            if code is None:
                self._inner.exec_module(module)
            else:
                # the module's own code, run as its loader runs it (the marker frame tells
                # the import system to cut its own frames from the traceback)
                _call_with_frames_removed(exec, code, module.__dict__)
        except BaseException as exc:
            # The module's own error propagates unchanged, with the traceback Python prints
            # without faultlens: this frame taken off, the import system's frames go too.
            tb = exc.__traceback__
            if tb is not None and tb.tb_frame.f_code is _EXEC_MODULE_CODE:
                exc.__traceback__ = tb.tb_next
            raise
        try:
            if code is not None:
                adopt_rewritten(module)
            wrap_module(module)
            _done.add(module)
        except Exception as exc:  # pragma: no cover - wrap_module guards itself
            internal_error("auto-instrumentation", exc)

    def get_code(self, fullname: str) -> types.CodeType | None:
        """The code ``exec_module`` runs: what ``runpy`` asks for ``python -m pkg``."""
        code = rewritten_code(self._inner, fullname)
        if code is not None:
            return code
        get_code = self._inner.get_code  # AttributeError, as the real loader would raise
        return get_code(fullname)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<faultlens wrapping {self._inner!r}>"


_EXEC_MODULE_CODE = _WrappingLoader.exec_module.__code__


def _run(function: Any, *args: Any) -> Any:
    return function(*args)


# What importlib's loaders run a module's code through: the import system removes the frames
# of its own that lead to it from the traceback of an import-time error.
_call_with_frames_removed: Any = getattr(
    importlib._bootstrap,  # type: ignore[attr-defined]
    "_call_with_frames_removed",
    _run,
)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self._busy = threading.local()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if _never(fullname):
            return None
        by_name = self.targets.name_matches(fullname)
        if not by_name and not self.targets.roots:
            return None
        if getattr(self._busy, "on", False):
            return None
        self._busy.on = True
        try:
            spec = self._real_spec(fullname, path, target)
        except Exception:
            return None  # let the import system ask the real finders and report properly
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        if not (by_name or self.targets.file_matches(spec.origin)):
            return None
        if isinstance(spec.loader, _WrappingLoader):
            return spec
        spec.loader = _WrappingLoader(spec.loader)
        return spec

    def _real_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            if finder is self or isinstance(finder, _Finder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                return spec  # type: ignore[no-any-return]
        return None

    def invalidate_caches(self) -> None:
        pass


_lock = threading.RLock()
_finder: _Finder | None = None
# Modules instrumented already, so a second install() does not walk them again.
_done: weakref.WeakSet[types.ModuleType] = weakref.WeakSet()
_fork_hook = False


def _after_fork_in_child() -> None:
    # An install()/uninstall() running in another thread at fork time holds these locks
    # forever in the child (where that thread does not exist): the child gets new ones.
    global _lock
    _lock = threading.RLock()
    _wrap._lock = threading.Lock()


def _ensure_fork_hook() -> None:
    """Registered at the first install(), never at import."""
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


def install(modules: Iterable[str] | str | None = None, *, roots: Iterable[str] = ()) -> Targets:
    """Instrument the functions and methods of the modules named by ``modules`` (glob
    patterns such as ``"myapp.*"``) or living under ``roots`` (directories), in errors mode.

    Matching modules already imported are instrumented now; later imports through the import
    hook. Calling it again replaces the targets (already wrapped functions stay wrapped).
    Returns the active targets. Raises ConfigError for a pattern that is not a string.
    """
    if isinstance(modules, str):
        modules = [m for m in modules.replace(";", ",").split(",") if m.strip()]
    targets = Targets(modules or (), roots)
    global _finder
    _ensure_fork_hook()
    with _lock:
        if _finder is not None:
            _finder.targets = targets
        else:
            _finder = _Finder(targets)
            sys.meta_path.insert(0, _finder)
    if targets:
        _wrap_imported(targets)
    return targets


def _wrap_imported(targets: Targets) -> None:
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or getattr(module, "__name__", None) != name:
            continue
        try:
            filename = getattr(module, "__file__", None)
            if not targets.module_matches(name, filename):
                continue
            if module in _done:
                continue
            wrap_module(module)
            _done.add(module)
        except Exception as exc:
            internal_error(f"auto-instrumenting {name}", exc)


def installed() -> Targets | None:
    """The active targets, or None when the hook is not installed."""
    return _finder.targets if _finder is not None else None


def uninstall() -> None:
    """Remove the import hook and restore every function it wrapped (for tests)."""
    global _finder
    with _lock:
        finder, _finder = _finder, None
        if finder is not None:
            try:
                sys.meta_path.remove(finder)
            except ValueError:
                pass
    restore()
    _done.clear()
