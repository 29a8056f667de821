"""Locks that a forked child gets fresh: gunicorn, uWSGI and Celery fork workers, and a lock
held by a thread of the parent at fork time would stay held forever in the child."""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType

__all__ = ["ForkSafeLock"]

_all: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


class ForkSafeLock:
    """A (re-entrant) lock re-created in the child after ``fork()``."""

    __slots__ = ("__weakref__", "_lock", "_reentrant")

    def __init__(self, *, reentrant: bool = False) -> None:
        self._reentrant = reentrant
        self._lock = threading.RLock() if reentrant else threading.Lock()
        _all.add(self)

    def _renew(self) -> None:
        self._lock = threading.RLock() if self._reentrant else threading.Lock()

    def __enter__(self) -> bool:
        if not _hooked:
            _hook()
        return self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


def _after_fork_in_child() -> None:
    for lock in list(_all):
        lock._renew()


_hooked = False


def _hook() -> None:
    # On the first acquisition of any of these locks, not at import: a lock that was never
    # taken cannot be held at fork time (importing faultlens registers nothing). Flag first,
    # no lock: two threads racing here at most register twice, which renews twice.
    global _hooked
    _hooked = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
