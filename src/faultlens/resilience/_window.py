"""Sliding windows of call outcomes for the breaker's failure rate.

Both windows are used only under the breaker's lock. They are shaped so that the common
case, a success, is one integer increment: the count window stores only *where* failures
happened, the time window only per-bucket totals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["CountWindow", "TimeWindow", "Window"]


class CountWindow:
    """The last ``size`` calls. Failures are kept as call indexes, successes only counted,
    so memory is bounded by ``size`` and a success costs one increment."""

    __slots__ = ("calls", "failed_at", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls = 0
        self.failed_at: deque[int] = deque()

    def success(self) -> None:
        self.calls += 1

    def failure(self) -> None:
        self.calls += 1
        self.failed_at.append(self.calls)
        self._prune()

    def _prune(self) -> None:
        oldest = self.calls - self.size
        failed = self.failed_at
        while failed and failed[0] <= oldest:
            failed.popleft()

    def counts(self) -> tuple[int, int]:
        """(calls, failures) in the window; never negative, failures <= calls <= size."""
        self._prune()
        return min(self.calls, self.size), len(self.failed_at)

    def reset(self) -> None:
        self.calls = 0
        self.failed_at.clear()


class TimeWindow:
    """The calls of the last ``seconds``, in ten buckets (so the window slides in tenths)."""

    __slots__ = ("buckets", "clock", "failures", "span", "total", "width")

    BUCKETS = 10

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.width = seconds / self.BUCKETS
        self.span = self.BUCKETS
        self.clock = clock
        # [bucket index, calls, failures], oldest first
        self.buckets: deque[list[int]] = deque()
        self.total = 0
        self.failures = 0

    def _bucket(self) -> list[int]:
        index = int(self.clock() // self.width)
        self._evict(index)
        buckets = self.buckets
        if buckets and buckets[-1][0] == index:
            return buckets[-1]
        if buckets and buckets[-1][0] > index:  # a clock that went backwards: keep adding
            return buckets[-1]
        bucket = [index, 0, 0]
        buckets.append(bucket)
        return bucket

    def _evict(self, index: int) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] <= index - self.span:
            _, calls, failures = buckets.popleft()
            self.total -= calls
            self.failures -= failures

    def success(self) -> None:
        self._bucket()[1] += 1
        self.total += 1

    def failure(self) -> None:
        bucket = self._bucket()
        bucket[1] += 1
        bucket[2] += 1
        self.total += 1
        self.failures += 1

    def counts(self) -> tuple[int, int]:
        self._evict(int(self.clock() // self.width))
        return self.total, self.failures

    def reset(self) -> None:
        self.buckets.clear()
        self.total = 0
        self.failures = 0


Window = CountWindow | TimeWindow
