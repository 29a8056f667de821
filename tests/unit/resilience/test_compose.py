"""resilient(): recovery outermost, then retry, then the breaker innermost."""

from __future__ import annotations

import pytest

from faultlens.errors import ConfigError
from faultlens.resilience import CircuitBreaker, CircuitOpenError, resilient, retry


def test_the_breaker_sees_every_attempt_and_the_fallback_answers_last(cap, slept, clock):
    breaker = CircuitBreaker("dep", failure_threshold=10, clock=clock)
    attempts = []

    @resilient(retry={"attempts": 3}, breaker=breaker, fallbacks=["cached"])
    def fetch():
        attempts.append(1)
        raise ConnectionError

    assert fetch() == "cached"
    assert len(attempts) == 3
    assert breaker.stats().failure == 3  # innermost: one breaker call per attempt


def test_an_open_breaker_is_not_retried_by_default_it_goes_to_the_fallback(cap, slept, clock):
    breaker = CircuitBreaker("dep", failure_threshold=1, clock=clock)
    breaker.force_open()

    @resilient(retry=True, breaker=breaker, fallbacks=[lambda: "cached"])
    def fetch():
        return "live"

    assert fetch() == "cached"
    assert slept.delays == []
    assert breaker.stats().rejected == 1


def test_a_policy_of_your_own_decides_whether_rejections_are_retried(cap, slept):
    # Retrying into an open breaker waits out its retry_after, then the trial call runs.
    breaker = CircuitBreaker("dep", failure_threshold=1, open_timeout=0.5)
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError("down")
    assert breaker.state == "open"

    @resilient(retry=retry(attempts=2, wait_initial=0.01, on=CircuitOpenError), breaker=breaker)
    def fetch():
        return "live"

    assert fetch() == "live"
    assert breaker.stats().rejected == 1
    assert 0.4 < slept.delays[0] <= 0.5  # the breaker's retry_after, not the 0.01 backoff


def test_a_forced_open_breaker_is_never_retried_even_when_the_policy_covers_it(cap, slept):
    # Before: the policy retried into the forced-open breaker (2 rejections, for nothing:
    # only reset() can close it).
    breaker = CircuitBreaker("dep", failure_threshold=1, open_timeout=0.5)
    breaker.force_open()

    @resilient(retry=retry(attempts=2, on=CircuitOpenError), breaker=breaker)
    def fetch():
        return "live"

    with pytest.raises(CircuitOpenError):
        fetch()
    assert breaker.stats().rejected == 1
    assert slept.delays == []


def test_a_breaker_can_be_named(cap):
    wrapped = resilient(breaker="named-dep")(lambda: 1)
    assert wrapped() == 1
    from faultlens.resilience import breakers

    assert breakers()["named-dep"].stats().success == 1


def test_each_layer_is_optional(cap):
    assert resilient()(lambda: 3)() == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"retry": 3}, {"breaker": 5}, {"fallbacks": "x"}, {"recovery": [1]}],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ConfigError):
        resilient(**kwargs)
