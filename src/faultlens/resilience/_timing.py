"""The clock and the sleeps of the resilience layer, with a test switch that removes waiting.

Retry and the breaker read time through this module so that ``no_sleep()`` can replace real
waiting with *virtual* time: a sleep returns at once and moves a monotonic offset forward
instead. Deadlines keep working under the switch (the virtual clock reaches them), which is
what lets tests check "never sleeps past the deadline" without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SleepLog", "asleep", "monotonic", "no_sleep", "sleep"]


class SleepLog:
    """What would have been slept inside a ``no_sleep()`` block, in order (seconds)."""

    __slots__ = ("_lock", "_offset", "delays")

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def total(self) -> float:
        """Seconds of virtual time the sleeps added."""
        return self._offset

    def _advance(self, seconds: float) -> None:
        with self._lock:
            self.delays.append(seconds)
            self._offset += seconds

    def __repr__(self) -> str:
        return f"SleepLog(delays={self.delays!r})"


_virtual: SleepLog | None = None


def monotonic() -> float:
    """``time.monotonic()``, plus the virtual time slept under ``no_sleep()``."""
    v = _virtual
    if v is None:
        return time.monotonic()
    return time.monotonic() + v._offset


def sleep(seconds: float) -> None:
    v = _virtual
    if v is None:
        time.sleep(seconds)
    else:
        v._advance(seconds)


async def asleep(seconds: float) -> None:
    v = _virtual
    if v is None:
        await asyncio.sleep(seconds)
    else:
        v._advance(seconds)
        await asyncio.sleep(0)  # still a scheduling point, as a real sleep would be


@contextmanager
def no_sleep() -> Iterator[SleepLog]:
    """Inside the block, retry backoff does not wait: each sleep is logged and advances a
    virtual clock instead, so deadlines and breaker timeouts behave as if time had passed.

    ::

        with faultlens.testing.no_sleep() as slept:
            flaky_fetch()
        assert len(slept.delays) == 2
    """
    global _virtual
    from ._common import after_fork

    after_fork(_reinit_after_fork)
    saved = _virtual
    log = SleepLog()
    _virtual = log
    try:
        yield log
    finally:
        _virtual = saved


def _reinit_after_fork() -> None:
    v = _virtual
    if v is not None:
        v._lock = threading.Lock()


def reset() -> None:
    global _virtual
    _virtual = None
