"""Two decisions about retry and breakers working together (README, resilience section):

1. Under ``resilient(retry, breaker, fallbacks)`` every failure of the dependency is counted
   in ``faultlens.errors`` once, under its own code (``NET_CONNECTION_FAILED``), not only the
   ``EXE_CIRCUIT_OPEN`` the calls end with once the breaker is open.
2. ``EXE_CIRCUIT_OPEN`` is retryable, so a plain ``@retry`` over a breaker may retry a
   rejection -- but only as the breaker allows: it waits at least ``retry_after``, gives up
   (``exhausted``) when that wait would pass the deadline, and never retries a breaker that
   was forced open (``non_retryable``).
"""

from __future__ import annotations

import pytest

import faultlens
from faultlens.resilience import CircuitBreaker, CircuitOpenError, resilient, retry


class Dependency:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"refused ({self.calls})")
        return "live"


def test_every_underlying_failure_is_counted_once_under_resilient(cap, slept):
    dep = Dependency(failures=100)
    breaker = CircuitBreaker("db", failure_threshold=2, open_timeout=60.0)

    @resilient(retry={"attempts": 3}, breaker=breaker, fallbacks=["cached"])
    def load() -> str:
        return dep()

    assert load() == "cached"  # CE (swallowed), CE (opens the breaker), rejected -> fallback
    assert load() == "cached"  # rejected at once
    assert dep.calls == 2
    assert cap.counter("faultlens.errors", code="NET_CONNECTION_FAILED") == 2
    assert cap.counter("faultlens.errors", code="EXE_CIRCUIT_OPEN") == 2
    assert cap.counter("faultlens.errors") == 4
    events = [e for e in cap.error_events if e.attributes["exception.type"] == "ConnectionError"]
    assert len(events) == 2  # one event per failure, never twice for the same exception


def test_a_call_that_succeeds_after_retries_still_shows_what_failed(cap, slept):
    dep = Dependency(failures=2)

    @resilient(retry={"attempts": 3}, breaker=CircuitBreaker("svc", failure_threshold=5))
    def load() -> str:
        return dep()

    assert load() == "live"
    assert cap.counter("faultlens.errors", code="NET_CONNECTION_FAILED") == 2


def test_the_final_failure_is_recorded_once_even_under_instrument(cap, slept):
    dep = Dependency(failures=100)

    @faultlens.instrument
    @resilient(retry={"attempts": 2}, breaker=CircuitBreaker("svc2", failure_threshold=5))
    def load() -> str:
        return dep()

    with pytest.raises(ConnectionError):
        load()
    assert cap.counter("faultlens.errors", code="NET_CONNECTION_FAILED") == 2  # 2 attempts


def test_a_plain_retry_is_unchanged_it_reports_attempts_not_errors(cap, slept):
    dep = Dependency(failures=1)
    assert retry(attempts=2)(dep)() == "live"
    assert cap.counter("faultlens.retry.attempts") == 1
    assert cap.counter("faultlens.errors") == 0


# -- retry over a breaker ---------------------------------------------------------------------


def test_retry_over_a_breaker_waits_out_retry_after_then_runs_the_trial(cap, slept):
    dep = Dependency(failures=1)
    breaker = CircuitBreaker("wait", failure_threshold=1, open_timeout=5.0)

    @retry(attempts=3, wait_initial=0.1, wait_max=0.2, operation="wait-op")
    @breaker
    def fetch() -> str:
        return dep()

    assert fetch() == "live"
    # attempt 1 fails and opens the breaker; attempt 2 is rejected (retry_after ~5 s,
    # above wait_max); attempt 3, after that wait, is the half-open trial and succeeds.
    assert len(slept.delays) == 2
    assert slept.delays[0] <= 0.2
    assert slept.delays[1] > 0.2  # retry_after wins over wait_max
    assert 4.5 < sum(slept.delays) <= 5.0  # until the open timeout, not past it
    assert breaker.state == "closed"
    assert cap.counter("faultlens.retry.calls", operation="wait-op", outcome="success_after_retry")


async def test_async_retry_over_a_breaker_waits_out_retry_after(cap, slept):
    calls = []
    breaker = CircuitBreaker("await", failure_threshold=1, open_timeout=5.0)

    @retry(attempts=3, wait_initial=0.1, wait_max=0.2)
    @breaker
    async def fetch() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("down")
        return "live"

    assert await fetch() == "live"
    assert len(calls) == 2  # the rejected attempt never reached the function
    assert 4.5 < sum(slept.delays) <= 5.0


def test_retry_gives_up_when_retry_after_would_pass_the_deadline(cap, slept):
    dep = Dependency(failures=100)
    breaker = CircuitBreaker("deadline", failure_threshold=1, open_timeout=60.0)

    @retry(attempts=5, timeout=10.0, wait_initial=0.1, operation="deadline-op")
    @breaker
    def fetch() -> str:
        return dep()

    with pytest.raises(CircuitOpenError):
        fetch()
    assert sum(slept.delays) < 1.0  # never waited toward the 60 s
    assert cap.counter("faultlens.retry.calls", operation="deadline-op", outcome="exhausted") == 1


def test_a_forced_open_breaker_is_never_retried(cap, slept):
    breaker = CircuitBreaker("forced", failure_threshold=1)
    breaker.force_open()

    @retry(attempts=5, operation="forced-op")
    @breaker
    def fetch() -> str:
        return "live"

    with pytest.raises(CircuitOpenError) as caught:
        fetch()
    assert caught.value.retry_after is None
    assert breaker.stats().rejected == 1
    assert slept.delays == []
    assert cap.counter("faultlens.retry.calls", operation="forced-op", outcome="non_retryable") == 1


def test_a_half_open_rejection_is_retried_with_the_ordinary_backoff(cap, slept, clock):
    breaker = CircuitBreaker("busy", failure_threshold=1, open_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError
    clock.advance(1.0)
    breaker.__enter__()  # a trial is running: others get retry_after == 0.0

    @retry(attempts=2, wait_initial=0.05, wait_max=0.05)
    @breaker
    def fetch() -> str:
        return "live"

    with pytest.raises(CircuitOpenError) as caught:
        fetch()
    assert caught.value.retry_after == 0.0
    assert slept.delays == [0.05]
    breaker.__exit__(None, None, None)
