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
faultlens.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

__all__ = ["SHIELDED_SIGNALS", "shield_from_signals", "shielded"]

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
