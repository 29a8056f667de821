"""After ``fork()``: the capture layer's locks and per-process state, rebuilt in the child.

A lock held by another thread at the moment of ``fork()`` stays held forever in the child
(that thread does not exist there), so the child's first error would deadlock. Each module
of this layer that owns a lock or per-process state registers a reset here; one
``os.register_at_fork`` hook runs them all in the child. The hook is registered once, the
first time the layer is used (never at import, so importing faultlens has no side effect).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["ensure_fork_hook", "on_fork_child"]

_resets: list[Callable[[], None]] = []
_registered = False
_register_lock = threading.Lock()


def on_fork_child(reset: Callable[[], None]) -> None:
    """Run ``reset`` in every child forked from now on (call at module import: it only
    records the function; nothing is registered with the OS until the layer is used)."""
    if reset not in _resets:
        _resets.append(reset)


def ensure_fork_hook() -> None:
    """Register the after-fork hook, once. Cheap enough for hot paths after the first call."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if _registered:
            return
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _registered = True


def _after_fork_in_child() -> None:
    global _register_lock
    _register_lock = threading.Lock()
    for reset in list(_resets):
        try:
            reset()
        except BaseException:  # a child must start even if one reset fails
            pass
