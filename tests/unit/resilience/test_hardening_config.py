"""Non-finite, negative and out-of-range numbers are refused when the decorator or breaker
is built, with a ConfigError naming the option and the fix -- never accepted and turned
into an ``OverflowError`` (in place of the user's own exception) at the first retry."""

from __future__ import annotations

import math

import pytest

from faultlens import ConfigError
from faultlens.resilience import CircuitBreaker, Restart, retry, retrying
from faultlens.resilience._common import MAX_SECONDS

BAD_NUMBERS = [math.inf, -math.inf, math.nan, -1.0, MAX_SECONDS * 2, "1", None, True]


@pytest.mark.parametrize("option", ["wait_initial", "wait_max", "timeout", "wait_exp_base"])
@pytest.mark.parametrize("value", [v for v in BAD_NUMBERS if v is not None], ids=repr)
def test_retry_refuses_bad_seconds(option, value):
    with pytest.raises(ConfigError) as caught:
        retry(**{option: value})
    assert caught.value.key == option
    assert option in str(caught.value)
    assert "must be a finite number" in str(caught.value)
    with pytest.raises(ConfigError):
        retrying(**{option: value})


@pytest.mark.parametrize("value", [0, -1, 1.5, math.inf, math.nan, "3", True])
def test_retry_refuses_bad_attempts(value):
    with pytest.raises(ConfigError, match="attempts") as caught:
        retry(attempts=value)
    assert "attempts=1" in str(caught.value)  # how to fix it


def test_infinite_initial_wait_is_refused_at_decoration_not_raised_at_the_first_retry():
    with pytest.raises(ConfigError, match=r"wait_initial: must be a finite number"):

        @retry(wait_initial=float("inf"))
        def fetch():
            raise ConnectionError("the user's own exception")


def test_no_timeout_is_spelled_none():
    with pytest.raises(ConfigError, match="None for no deadline"):
        retry(timeout=math.inf)
    assert retry(timeout=None)  # fine


def test_waits_are_capped_where_time_sleep_would_overflow():
    # MAX_SECONDS is what time.sleep accepts; one more order of magnitude overflows.
    import time

    with pytest.raises((OverflowError, ValueError)):
        time.sleep(MAX_SECONDS * 10)
    retry(wait_initial=MAX_SECONDS, wait_max=MAX_SECONDS)


BREAKER_OPTIONS = {
    "failure_threshold": [0, -1, 1.5, math.inf, math.nan, "5"],
    "open_timeout": [math.inf, -math.inf, math.nan, -1.0, MAX_SECONDS * 2, "30"],
    "half_open_max_calls": [0, math.inf, math.nan, 1.5],
    "failure_rate_threshold": [math.inf, math.nan, 0.0, 1.5, -0.5],
    "minimum_calls": [0, math.inf, 2.5],
    "slow_call_duration": [math.inf, math.nan, 0.0, -1.0],
    "window_size": [0, math.inf, math.nan, 2.5],
}


@pytest.mark.parametrize(
    ("option", "value"),
    [(o, v) for o, values in BREAKER_OPTIONS.items() for v in values],
    ids=lambda x: repr(x),
)
def test_the_breaker_refuses_bad_numbers(option, value):
    with pytest.raises(ConfigError) as caught:
        CircuitBreaker("bad", **{option: value})
    assert caught.value.key == option


def test_a_time_window_refuses_an_infinite_span():
    with pytest.raises(ConfigError, match="window_size"):
        CircuitBreaker("bad", window_type="time", window_size=math.inf)


def test_restart_refuses_bad_attempts():
    with pytest.raises(ConfigError, match=r"Restart\.attempts"):
        Restart(attempts=math.inf)  # type: ignore[arg-type]
