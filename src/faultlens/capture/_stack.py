"""Stack headroom for recording an error raised deep in a recursion.

A ``RecursionError`` (or any error raised a few frames short of the recursion limit) is caught
by the innermost instrumented wrapper with almost no stack left, so recording it (classify,
fingerprint, format, emit: a few dozen frames) would itself fail, and the error would go
unrecorded. The recorder then retries once with the limit raised by ``HEADROOM`` frames, and
puts it back as soon as it is done.

The limit is process-wide: while a recording runs with headroom, another thread could recurse
``HEADROOM`` frames deeper than the application allows before its own ``RecursionError``. That
lasts microseconds and only happens while an error raised at the limit is being recorded. The
limit is restored only if nobody changed it meanwhile, and nested or concurrent users share
one raise (the last one out restores it).
"""

from __future__ import annotations

import sys
import threading

from ._fork import on_fork_child

__all__ = ["HEADROOM", "lower_limit", "raise_limit"]

HEADROOM = 400

_lock = threading.Lock()
_holders: dict[int, int] = {}  # thread ident -> nesting depth
_saved: int | None = None


def raise_limit() -> None:
    """Give the calling thread ``HEADROOM`` more frames; pair with :func:`lower_limit`."""
    global _saved
    ident = threading.get_ident()
    with _lock:
        if not _holders:
            _saved = sys.getrecursionlimit()
            sys.setrecursionlimit(_saved + HEADROOM)
        _holders[ident] = _holders.get(ident, 0) + 1


def lower_limit() -> None:
    global _saved
    ident = threading.get_ident()
    with _lock:
        depth = _holders.get(ident, 0) - 1
        if depth > 0:
            _holders[ident] = depth
            return
        _holders.pop(ident, None)
        if _holders or _saved is None:
            return
        saved, _saved = _saved, None
        if sys.getrecursionlimit() == saved + HEADROOM:  # else the application changed it
            try:
                sys.setrecursionlimit(saved)
            except RecursionError:  # still deeper than the old limit: leave it raised
                pass


def _after_fork() -> None:
    # Only the forking thread exists in the child: forget the others' holds (restoring the
    # limit if only they held it) and the lock they may have held.
    global _lock, _saved
    _lock = threading.Lock()
    ident = threading.get_ident()
    mine = _holders.get(ident, 0)
    _holders.clear()
    if mine:
        _holders[ident] = mine
    elif _saved is not None:
        if sys.getrecursionlimit() == _saved + HEADROOM:
            try:
                sys.setrecursionlimit(_saved)
            except RecursionError:
                pass
        _saved = None


on_fork_child(_after_fork)
