"""Module-level functions and classes wrapped by faultlens resilience, for tests that send
them to other processes (a spawned child must be able to import them by name)."""

from __future__ import annotations

import functools
import os

import faultlens
from faultlens.resilience import CircuitBreaker, recover, resilient, retry


def _double(x: int) -> int:
    return 2 * x


@retry(attempts=2, wait_initial=0.0, on=ConnectionError)
def retried(x: int) -> int:
    return 2 * x


guard = CircuitBreaker("pickle-targets", failure_threshold=3)


@guard
def guarded(x: int) -> int:
    return 2 * x


@recover(fallbacks=[-1])
def recovered(x: int) -> int:
    if x < 0:
        raise ValueError(x)
    return 2 * x


@resilient(retry={"attempts": 2, "wait_initial": 0.0}, breaker="pickle-targets-stack")
def stacked(x: int) -> int:
    return 2 * x


@faultlens.retry
async def retried_async(x: int) -> int:
    return 2 * x


def pid_and_double(x: int) -> tuple[int, int]:
    return os.getpid(), 2 * x


class Scorer:
    """Methods in every descriptor shape, each under a resilience decorator."""

    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scorer) and other.factor == self.factor

    def __hash__(self) -> int:
        return hash(self.factor)

    @retry(attempts=2, wait_initial=0.0)
    def score(self, x: int) -> int:
        return self.factor * x

    @classmethod
    @retry(attempts=2, wait_initial=0.0)
    def build(cls, factor: int) -> Scorer:
        return cls(factor)

    @retry(attempts=2, wait_initial=0.0)
    @classmethod
    def build_outer(cls, factor: int) -> Scorer:
        return cls(factor)

    @retry(attempts=2, wait_initial=0.0)
    @staticmethod
    def helper(x: int) -> int:
        return 2 * x

    @recover(fallbacks=[0])
    @staticmethod
    def safe_helper(x: int) -> int:
        return 2 * x


class Doubler:
    """A callable object: it pickles by value, and so must its decorated form."""

    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return self.factor * x


# Decorated callable objects (pickled by value: the decorator is applied again on load).
retried_doubler = retry(attempts=2, wait_initial=0.0, on=(ConnectionError, TimeoutError))(
    Doubler(3)
)
guarded_partial = guard(functools.partial(_double))
recovered_doubler = recover(fallbacks=[0])(Doubler(5))


class FlakyOnce:
    """Fails its first call with a TimeoutError, then answers its argument."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise TimeoutError("first call")
        return x


flaky_once = retry(attempts=2, wait_initial=0.0, on=TimeoutError)(FlakyOnce())
