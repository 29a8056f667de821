"""A plain application module (no faultlens in it) for the tests of ``faultlens run``'s
auto-instrumentation: they wrap it with ``faultlens.auto.install`` and then use it the way
an application would (process pools, iterator classes)."""

from __future__ import annotations

import os


def work(x: int) -> int:
    return x * 10


def explode(x: int) -> int:
    raise KeyError(f"no item {x} in pid {os.getpid()}")


class Worker:
    def __init__(self, k: int) -> None:
        self.k = k

    def run(self, x: int) -> int:
        return self.k + x

    @staticmethod
    def helper(x: int) -> int:
        return -x


class Countdown:
    """An iterator class whose ``__next__`` delegates to a helper: the helper's
    StopIteration is how the loop ends (auto-instrumentation wraps ``_advance``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Countdown:
        return self

    def __next__(self) -> int:
        return self._advance()

    def _advance(self) -> int:
        if self.n <= 0:
            raise StopIteration
        self.n -= 1
        return self.n


class AsyncCountdown:
    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> AsyncCountdown:
        return self

    async def __anext__(self) -> int:
        return await self._advance()

    async def _advance(self) -> int:
        if self.n <= 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n
