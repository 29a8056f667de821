"""Resilience never changes the caller's control flow, whatever the exception holds or
whatever breaks inside faultlens: same result, same exception object, nothing new raised."""

from __future__ import annotations

import pytest
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider

import faultlens
from faultlens.capture import dropped_counts
from faultlens.capture._state import STATE
from faultlens.resilience import CircuitBreaker, recover, resilient, retry


class Hostile(ConnectionError):
    """str() and repr() raise; the class is retryable (a ConnectionError)."""

    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")

    def __repr__(self) -> str:
        raise RuntimeError("hostile __repr__")


class Unhashable(ConnectionError):
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile __eq__")


class Weird(BaseException):
    """A BaseException that is neither an Exception nor control flow."""


@pytest.mark.parametrize("exc_type", [Hostile, Unhashable])
def test_hostile_exceptions_through_every_layer_come_out_unchanged(exc_type):
    raised: list[BaseException] = []

    def down():
        raised.append(exc_type())
        raise raised[-1]

    breaker = CircuitBreaker("hostile", failure_threshold=100)
    guarded = resilient(retry={"attempts": 3}, breaker=breaker)(down)
    with faultlens.testing.capture(), faultlens.testing.no_sleep():
        with pytest.raises(exc_type) as info:
            guarded()
        assert info.value is raised[-1]
        assert len(raised) == 3
        assert recover(fallbacks=["fallback"])(down)() == "fallback"


def test_a_base_exception_passes_every_layer_untouched():
    def weird():
        raise Weird

    guarded = resilient(
        retry=True, breaker=CircuitBreaker("weird", failure_threshold=1), fallbacks=["never"]
    )(weird)
    with faultlens.testing.no_sleep() as slept:
        for _ in range(3):
            with pytest.raises(Weird):
                guarded()
    assert slept.delays == []
    assert faultlens.resilience.breakers()["weird"].state == "closed"


class _BrokenMeter(NoOpMeter):
    def _boom(self, *args, **kwargs):
        raise RuntimeError("meter is broken")

    create_counter = create_histogram = create_observable_counter = _boom
    create_observable_gauge = _boom


class _BrokenMeterProvider(NoOpMeterProvider):
    def get_meter(self, *args, **kwargs):
        return _BrokenMeter("broken")


def test_a_broken_meter_provider_never_reaches_the_caller():
    saved = STATE.meter_provider
    STATE.meter_provider = _BrokenMeterProvider()
    STATE.bump()
    try:
        breaker = CircuitBreaker("broken-meter", failure_threshold=1, open_timeout=0)
        flaky_calls = []

        @resilient(retry={"attempts": 3}, breaker=breaker, fallbacks=["fb"])
        def flaky():
            flaky_calls.append(1)
            if len(flaky_calls) < 2:
                raise ConnectionError
            return "ok"

        with faultlens.testing.no_sleep():
            assert flaky() == "ok"
            assert retry(attempts=1)(lambda: 5)() == 5
            assert breaker.state in ("closed", "half_open")
        assert dropped_counts().get("internal_error", 0) >= 1
    finally:
        STATE.meter_provider = saved
        STATE.bump()


def test_state_listeners_and_predicates_that_raise_are_contained():
    def bad_listener(change):
        raise RuntimeError("listener")

    def bad_predicate(exc):
        raise RuntimeError("predicate")

    b = CircuitBreaker(
        "contained",
        failure_threshold=1,
        listeners=[bad_listener],
        ignore=bad_predicate,
        failure_on=bad_predicate,
    )
    original = ConnectionError("x")

    def down():
        raise original

    with pytest.raises(ConnectionError) as info:
        b.call(down)
    assert info.value is original
    assert b.state == "open"  # a broken failure_on counts the error as a failure
    assert dropped_counts()["internal_error"] >= 3
