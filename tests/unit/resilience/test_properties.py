"""Properties of retry and the breaker, checked over generated inputs with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faultlens
from faultlens.resilience import CircuitBreaker, CircuitOpenError, Retry, retry
from faultlens.resilience._window import CountWindow, TimeWindow

fast = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

seconds = st.floats(min_value=0.0, max_value=30.0, allow_nan=False)


@fast
@given(
    attempts=st.integers(min_value=1, max_value=8),
    failures=st.integers(min_value=0, max_value=12),
)
def test_attempts_never_exceed_the_limit(attempts, failures):
    calls = 0

    def flaky():
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ConnectionError
        return "ok"

    with faultlens.testing.no_sleep() as slept:
        try:
            retry(attempts=attempts)(flaky)()
        except ConnectionError:
            assert failures >= attempts
    assert calls == min(attempts, failures + 1)
    assert len(slept.delays) == calls - 1


@fast
@given(
    wait_initial=seconds,
    extra=seconds,
    base=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.booleans(),
    retry_number=st.integers(min_value=1, max_value=2000),
)
def test_backoff_is_always_within_wait_initial_and_wait_max(
    wait_initial, extra, base, jitter, retry_number
):
    wait_max = wait_initial + extra
    p = Retry(
        wait_initial=wait_initial, wait_max=wait_max, wait_exp_base=base, wait_jitter=jitter
    ).params()
    delay = p.delay(retry_number)
    assert wait_initial <= delay <= wait_max


@fast
@given(
    timeout=st.floats(min_value=0.01, max_value=20.0),
    wait_initial=st.floats(min_value=0.0, max_value=5.0),
    attempts=st.integers(min_value=1, max_value=50),
)
def test_the_deadline_is_respected(timeout, wait_initial, attempts):
    def down():
        raise TimeoutError

    with faultlens.testing.no_sleep() as slept, pytest.raises(TimeoutError):
        retry(
            attempts=attempts, timeout=timeout, wait_initial=wait_initial, wait_max=wait_initial * 4
        )(down)()
    assert slept.total <= timeout


behaviours = st.lists(
    st.sampled_from(["ok", "retryable", "fatal", "interrupt", "flaky"]), min_size=1, max_size=25
)


@fast
@given(script=behaviours)
def test_every_call_ends_with_exactly_one_terminal_outcome(script):
    with faultlens.testing.capture() as cap, faultlens.testing.no_sleep():
        for behaviour in script:
            state = {"n": 0}

            def call(behaviour=behaviour, state=state):
                state["n"] += 1
                if behaviour == "retryable" or (behaviour == "flaky" and state["n"] == 1):
                    raise ConnectionError
                if behaviour == "fatal":
                    raise ValueError
                if behaviour == "interrupt":
                    raise KeyboardInterrupt
                return "ok"

            try:
                retry(attempts=3, operation="prop")(call)()
            except (ConnectionError, ValueError, KeyboardInterrupt):
                pass
        total = cap.counter("faultlens.retry.calls", operation="prop")
        assert total == len(script)
        expected = {
            "success_first_attempt": script.count("ok"),
            "success_after_retry": script.count("flaky"),
            "exhausted": script.count("retryable"),
            "non_retryable": script.count("fatal"),
            "aborted": script.count("interrupt"),
        }
        for outcome, n in expected.items():
            assert cap.counter("faultlens.retry.calls", operation="prop", outcome=outcome) == n


events = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.booleans()),
        st.tuples(st.just("tick"), st.floats(min_value=0, max_value=5)),
    ),
    max_size=200,
)


@fast
@given(size=st.integers(min_value=1, max_value=20), script=events)
def test_count_window_counts_are_never_negative_nor_above_its_size(size, script):
    w = CountWindow(size)
    for kind, value in script:
        if kind == "call":
            w.failure() if value else w.success()
        calls, failures = w.counts()
        assert 0 <= failures <= calls <= size


@fast
@given(seconds=st.floats(min_value=0.1, max_value=30), script=events)
def test_time_window_counts_are_never_negative(seconds, script):
    now = [0.0]
    w = TimeWindow(seconds, lambda: now[0])
    for kind, value in script:
        if kind == "call":
            w.failure() if value else w.success()
        else:
            now[0] += value
        calls, failures = w.counts()
        assert 0 <= failures <= calls


@fast
@given(
    threshold=st.integers(min_value=1, max_value=5),
    rate=st.one_of(st.none(), st.floats(min_value=0.05, max_value=1.0)),
    script=st.lists(st.sampled_from(["ok", "fail", "ignored", "tick", "slow"]), max_size=80),
)
def test_breaker_bookkeeping_stays_consistent(threshold, rate, script):
    now = [0.0]
    b = CircuitBreaker(
        "prop",
        failure_threshold=threshold,
        failure_rate_threshold=rate,
        window_size=10,
        minimum_calls=3,
        open_timeout=2.0,
        half_open_max_calls=2,
        slow_call_duration=1.0,
        ignore=KeyError,
        clock=lambda: now[0],
    )
    made = 0
    for step in script:
        if step == "tick":
            now[0] += 1.0
            continue
        made += 1

        def call(step=step):
            if step == "fail":
                raise ConnectionError
            if step == "ignored":
                raise KeyError
            if step == "slow":
                now[0] += 1.5
            return "ok"

        try:
            b.call(call)
        except (ConnectionError, KeyError, CircuitOpenError):
            pass
        s = b.stats()
        assert 0 <= s.window_failures <= s.window_calls <= 10
        assert 0 <= s.half_open_in_flight <= 2
        assert s.state in ("closed", "open", "half_open")
    s = b.stats()
    assert s.success + s.failure + s.ignored + s.rejected == made
