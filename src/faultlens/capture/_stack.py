"""Stack headroom for recording an error raised deep in a recursion.

A ``RecursionError`` (or any error raised a few frames short of the recursion limit) is caught
by the innermost instrumented wrapper with almost no stack left, so recording it (classify,
fingerprint, format, emit: a few dozen frames) would itself fail, and the error would go
unrecorded. The recorder then retries once with the limit raised by ``HEADROOM`` frames.

The limit is process-wide: while it is raised, another thread could recurse ``HEADROOM``
frames deeper than the application allows before its own ``RecursionError``. It is put back
as soon as possible: when the last recording using it is done, or, when that one is still
too deep for the old limit (Python refuses a limit below the current depth), at the next
recording that starts shallower (``settle()``, a flag check on every recording). It is put
back only if nobody changed it meanwhile, and concurrent users share one raise.
"""

from __future__ import annotations

import sys
import threading

from ._fork import on_fork_child

__all__ = ["HEADROOM", "lower_limit", "raise_limit", "settle"]

HEADROOM = 400

_lock = threading.Lock()
_holders: dict[int, int] = {}  # thread ident -> nesting depth
_saved: int | None = None  # the limit before the raise, while it is raised
_pending = False  # raised, no holder left, not yet restored (was too deep to)


def raise_limit() -> None:
    """Give the calling thread ``HEADROOM`` more frames; pair with :func:`lower_limit`."""
    global _saved, _pending
    ident = threading.get_ident()
    with _lock:
        if _saved is None:
            _saved = sys.getrecursionlimit()
            sys.setrecursionlimit(_saved + HEADROOM)
        _pending = False
        _holders[ident] = _holders.get(ident, 0) + 1


def lower_limit() -> None:
    global _pending
    ident = threading.get_ident()
    with _lock:
        depth = _holders.get(ident, 0) - 1
        if depth > 0:
            _holders[ident] = depth
            return
        _holders.pop(ident, None)
        if not _holders:
            _pending = True
            _restore()


def settle() -> None:
    """Put back a limit a deep recording could not restore itself. Cheap when nothing is
    pending (one global read): called at the start of every recording."""
    if _pending:
        with _lock:
            _restore()


def _restore() -> None:
    """With ``_lock`` held: the old limit back, if nobody holds the headroom."""
    global _saved, _pending
    if not _pending or _holders or _saved is None:
        return
    if sys.getrecursionlimit() != _saved + HEADROOM:  # the application changed it: keep theirs
        _saved, _pending = None, False
        return
    try:
        sys.setrecursionlimit(_saved)
    except RecursionError:
        return  # still deeper than the old limit here: the next recording puts it back
    _saved, _pending = None, False


def _after_fork() -> None:
    # Only the forking thread exists in the child: forget the others' holds (restoring the
    # limit if only they held it) and the lock they may have held.
    global _lock, _pending
    _lock = threading.Lock()
    ident = threading.get_ident()
    mine = _holders.get(ident, 0)
    _holders.clear()
    if mine:
        _holders[ident] = mine
    elif _saved is not None:
        _pending = True
        _restore()


on_fork_child(_after_fork)
