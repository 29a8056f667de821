"""The process's resource state at the moment of a failure, from psutil.

Failures cluster around resource pressure (memory, fds, threads), so each recorded error
carries a snapshot. Reading psutil costs tens of microseconds, so the snapshot is cached for
``MAX_AGE`` seconds: an error storm pays for one read a second, not one per error. Any value
psutil cannot read (access denied, a sandboxed /proc, an unsupported platform) is simply
left out; this module never raises.

Fork safety: the refresh lock is re-created in a forked child (a thread holding it at fork
time does not exist there, and the child would never refresh again), together with the
cache and the psutil Process of the parent. The after-fork hook is registered on first use,
not at import.
"""

from __future__ import annotations

import os
import threading
import time
from types import MappingProxyType
from typing import Any

__all__ = ["MAX_AGE", "PREFIX", "reset", "snapshot"]

PREFIX = "faultlens.resource."
MAX_AGE = 1.0

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_lock = threading.Lock()
_cached: MappingProxyType[str, Any] = _EMPTY
_cached_at = -1e18
_process: Any = None
_process_pid = -1
_disk_path = os.path.abspath(os.sep)
_fork_hook_registered = False


def _read() -> dict[str, Any]:
    global _process, _process_pid
    try:
        import psutil
    except Exception:
        return {}
    out: dict[str, Any] = {}
    pid = os.getpid()
    if _process is None or _process_pid != pid:  # fork: the child needs its own Process
        try:
            _process = psutil.Process(pid)
            _process_pid = pid
        except Exception:
            return out
    proc = _process

    def put(key: str, fn: Any) -> None:
        try:
            out[PREFIX + key] = fn()
        except Exception:
            pass

    try:
        with proc.oneshot():
            put("memory.rss", lambda: int(proc.memory_info().rss))
            put("memory.percent", lambda: round(float(proc.memory_percent()), 3))
            put("cpu.percent", lambda: float(proc.cpu_percent(interval=None)))
            put("threads", lambda: int(proc.num_threads()))
            if hasattr(proc, "num_fds"):
                put("open_fds", lambda: int(proc.num_fds()))
    except Exception:
        pass
    put("system.memory.available", lambda: int(psutil.virtual_memory().available))
    put("system.disk.free", lambda: int(psutil.disk_usage(_disk_path).free))
    return out


def snapshot(max_age: float = MAX_AGE) -> MappingProxyType[str, Any]:
    """The current snapshot, at most ``max_age`` seconds old; keys under ``PREFIX``."""
    global _cached, _cached_at
    now = time.monotonic()
    if now - _cached_at <= max_age:
        return _cached
    if not _fork_hook_registered:
        _register_fork_hook()
    # One reader refreshes; the others keep the previous snapshot rather than waiting.
    if not _lock.acquire(blocking=False):
        return _cached
    try:
        if now - _cached_at > max_age:
            try:
                _cached = MappingProxyType(_read())
            except Exception:
                _cached = _EMPTY
            _cached_at = time.monotonic()
        return _cached
    finally:
        _lock.release()


def reset() -> None:
    """Forget the cache and the Process handle (after fork, and in tests)."""
    global _cached, _cached_at, _process, _process_pid
    _cached, _cached_at, _process, _process_pid = _EMPTY, -1e18, None, -1


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    reset()


def _register_fork_hook() -> None:
    # Flag first: two threads racing here at most register twice, which is harmless.
    global _fork_hook_registered
    _fork_hook_registered = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
