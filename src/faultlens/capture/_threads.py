"""Threads faultlens starts never take a signal meant for the application.

A process-directed signal (``kill PID``, ``Pool.terminate()``'s SIGTERM, Ctrl-C's SIGINT)
goes to any one thread that does not block it. When the application (or faultlens, for
SIGTERM) has a Python handler, that handler only ever runs on the main thread: if the kernel
picks a background thread, the main thread is merely asked to run the handler at its next
bytecode, and a main thread blocked in a C wait that only a signal of its own interrupts
(a ``multiprocessing`` lock, a pool worker waiting for its next task) never gets there. Seen
under ``faultlens run``: a ``with Pool()`` worker kept waiting for its task queue's lock
after ``terminate()`` sent it SIGTERM, and the pool's exit hung for good; without the
journal writer's thread the same SIGTERM reached the main thread and ended the worker.

So every thread faultlens starts blocks the signals applications handle in Python, first
thing: they are then delivered to the application's own threads, as they would be without
faultlens. The OpenTelemetry SDK's threads (batch processors, the periodic metric reader)
are started by ``configure()`` and again in every forked child by the SDK's own fork
hooks; they inherit the mask of the thread that starts them, so ``configure()`` builds the
providers inside :func:`signals_shielded`, and a fork is made with the signals blocked in
the forking thread until the child's fork hooks (the SDK's among them) have run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "SHIELDED_SIGNALS",
    "register_fork_shield",
    "shield_from_signals",
    "shielded",
    "signals_shielded",
]

SHIELDED_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


def shield_from_signals() -> None:
    """Block :data:`SHIELDED_SIGNALS` in the calling thread (a thread faultlens started)."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED_SIGNALS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no pthread_sigmask
        pass


def shielded(target: Callable[..., Any]) -> Callable[..., Any]:
    """``target`` as a thread's body that first shields its thread from signals."""

    def run(*args: Any, **kwargs: Any) -> Any:
        shield_from_signals()
        return target(*args, **kwargs)

    return run


@contextlib.contextmanager
def signals_shielded() -> Iterator[None]:
    """Block :data:`SHIELDED_SIGNALS` in this thread for the block, then put its mask back:
    threads started inside inherit the blocked mask. A signal that arrives meanwhile waits
    (pending) and is delivered when the mask is restored."""
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED_SIGNALS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no pthread_sigmask
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


_saved: dict[int, Any] = {}  # forking thread -> its mask before the fork
_fork_shield_registered = False


def _block_for_fork() -> None:
    try:
        _saved[threading.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED_SIGNALS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover
        pass


def _restore_after_fork() -> None:
    before = _saved.pop(threading.get_ident(), None)
    if before is not None:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def register_fork_shield() -> None:
    """Fork with the signals blocked in the forking thread, restored in the parent at once
    and in the child after every fork hook registered before this one (the SDK's, which
    restart its threads) has run. Call after the providers are built; once per process."""
    global _fork_shield_registered
    if _fork_shield_registered or not hasattr(os, "register_at_fork"):
        return
    _fork_shield_registered = True
    os.register_at_fork(
        before=_block_for_fork,
        after_in_parent=_restore_after_fork,
        after_in_child=_restore_after_fork,
    )
