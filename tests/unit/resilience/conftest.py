"""Fixtures for the resilience tests: in-memory telemetry and no real sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import faultlens
from faultlens.testing import Captured, SleepLog


@pytest.fixture
def cap() -> Iterator[Captured]:
    """Everything faultlens records during the test (spans, events, metric points)."""
    with faultlens.testing.capture() as captured:
        yield captured


@pytest.fixture
def slept() -> Iterator[SleepLog]:
    """Retry backoff is logged and advances a virtual clock instead of sleeping."""
    with faultlens.testing.no_sleep() as log:
        yield log


class FakeClock:
    """A clock the test moves by hand, for breaker timeouts and time windows."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
