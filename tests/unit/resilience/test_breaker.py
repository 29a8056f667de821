"""faultlens.CircuitBreaker: states, thresholds, windows, outcomes, controls and signals."""

from __future__ import annotations

import pickle

import pytest

import faultlens
from faultlens.capture import dropped_counts, get_tracer
from faultlens.errors import ConfigError, FaultError
from faultlens.resilience import CircuitBreaker, CircuitOpenError, breakers, get_breaker


def fail(exc_type: type[BaseException] = ConnectionError):
    def f():
        raise exc_type("boom")

    return f


def ok():
    return "ok"


def run(breaker: CircuitBreaker, fn) -> str:
    """Call through the breaker; say what happened."""
    try:
        breaker.call(fn)
    except CircuitOpenError:
        return "rejected"
    except Exception:
        return "raised"
    return "ok"


def calls(cap, name):
    return {
        p.attributes["outcome"]: p.value
        for p in cap.metric_points("faultlens.circuit_breaker.calls")
        if p.attributes["breaker"] == name
    }


def gauge(cap, name):
    return {
        p.attributes["state"]
        for p in cap.metric_points("faultlens.circuit_breaker.state")
        if p.attributes["breaker"] == name and p.value == 1
    }


# -- closed -> open ---------------------------------------------------------------------------


def test_opens_after_the_consecutive_failure_threshold(cap, clock):
    b = CircuitBreaker("db", failure_threshold=3, open_timeout=10, clock=clock)
    assert [run(b, fail()) for _ in range(3)] == ["raised"] * 3
    assert b.state == "open"
    assert run(b, ok) == "rejected"
    assert calls(cap, "db") == {"failure": 3, "rejected": 1}


def test_a_success_resets_the_consecutive_count(clock):
    b = CircuitBreaker("db", failure_threshold=3, clock=clock)
    for _ in range(5):
        run(b, fail())
        run(b, fail())
        run(b, ok)
    assert b.state == "closed"
    assert b.stats().consecutive_failures == 0


def test_a_rejection_says_when_the_next_trial_is(clock):
    b = CircuitBreaker("db", failure_threshold=1, open_timeout=30, clock=clock)
    run(b, fail())
    clock.advance(12)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    err = info.value
    assert isinstance(err, FaultError)
    assert err.code == "EXE_CIRCUIT_OPEN"
    assert err.breaker == "db"
    assert err.retry_after == pytest.approx(18)
    assert "db" in str(err) and "18" in str(err)
    assert faultlens.classify(err).retryable is True
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.code, clone.breaker, clone.retry_after) == ("EXE_CIRCUIT_OPEN", "db", 18)


def test_failure_rate_over_a_count_window_needs_the_minimum_calls(clock):
    b = CircuitBreaker(
        "api", failure_rate_threshold=0.5, window_size=10, minimum_calls=6, clock=clock
    )
    assert b.failure_threshold is None  # the rate alone decides
    for fn in (fail(), ok, fail(), ok, fail()):
        run(b, fn)
    assert b.state == "closed"  # 3/5 failed, but fewer than 6 calls
    run(b, ok)
    assert b.state == "closed"  # 3/6 = 0.5 ... reached on the next failure
    run(b, fail())
    assert b.state == "open"


def test_the_count_window_forgets_old_calls(clock):
    b = CircuitBreaker(
        "api", failure_rate_threshold=0.5, window_size=4, minimum_calls=4, clock=clock
    )
    run(b, fail())
    for _ in range(4):
        run(b, ok)
    assert b.failure_ratio == 0.0
    stats = b.stats()
    assert (stats.window_calls, stats.window_failures) == (4, 0)


def test_failure_rate_over_a_time_window(clock):
    b = CircuitBreaker(
        "api",
        failure_rate_threshold=0.5,
        window_type="time",
        window_size=10,
        minimum_calls=4,
        clock=clock,
    )
    run(b, fail())
    run(b, fail())
    clock.advance(11)  # those two fell out of the window
    for fn in (ok, ok, fail()):
        run(b, fn)
    assert b.state == "closed"
    assert b.failure_ratio == pytest.approx(1 / 3)
    run(b, fail())
    assert b.state == "open"


def test_both_rules_apply_when_both_are_given(clock):
    b = CircuitBreaker("api", failure_threshold=2, failure_rate_threshold=0.9, clock=clock)
    run(b, fail())
    run(b, fail())
    assert b.state == "open"


def test_slow_successes_count_as_failures_but_still_return(cap, clock):
    b = CircuitBreaker("slow", failure_threshold=2, slow_call_duration=1.0, clock=clock)

    def slow():
        clock.advance(1.5)
        return "late"

    assert b.call(slow) == "late"
    assert b.call(slow) == "late"
    assert b.state == "open"
    assert calls(cap, "slow") == {"failure": 2}


# -- what counts --------------------------------------------------------------------------


def test_ignored_exceptions_are_neither_success_nor_failure(cap, clock):
    b = CircuitBreaker("db", failure_threshold=2, ignore=KeyError, clock=clock)
    run(b, fail())
    run(b, fail(KeyError))  # does not reset the consecutive count as a success would
    assert b.state == "closed"
    run(b, fail())
    assert b.state == "open"
    assert calls(cap, "db") == {"failure": 2, "ignored": 1}


def test_exceptions_failure_on_does_not_cover_count_as_success(cap, clock):
    b = CircuitBreaker("db", failure_threshold=2, failure_on=ConnectionError, clock=clock)
    run(b, fail())
    run(b, fail(ValueError))  # the dependency answered; the caller's input was bad
    run(b, fail())
    assert b.state == "closed"
    assert calls(cap, "db") == {"failure": 2, "success": 1}


def test_control_flow_counts_as_ignored(cap, clock):
    b = CircuitBreaker("db", failure_threshold=1, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        b.call(fail(KeyboardInterrupt))
    assert b.state == "closed"
    assert calls(cap, "db") == {"ignored": 1}


def test_the_exception_passes_through_unchanged(clock):
    b = CircuitBreaker("db", clock=clock)
    exc = ConnectionError("x")

    def f():
        raise exc

    with pytest.raises(ConnectionError) as info:
        b.call(f)
    assert info.value is exc


# -- open -> half_open -> closed / open --------------------------------------------------------


def test_half_open_after_the_timeout_then_closed_after_the_trials_succeed(cap, clock):
    b = CircuitBreaker(
        "db", failure_threshold=1, open_timeout=5, half_open_max_calls=2, clock=clock
    )
    run(b, fail())
    clock.advance(4.9)
    assert b.state == "open"
    clock.advance(0.1)
    assert b.state == "half_open"
    assert run(b, ok) == "ok"
    assert b.state == "half_open"  # one of two trials done
    assert run(b, ok) == "ok"
    assert b.state == "closed"
    transitions = [
        (p.attributes["from"], p.attributes["to"])
        for p in cap.metric_points("faultlens.circuit_breaker.transitions")
    ]
    assert sorted(transitions) == [
        ("closed", "open"),
        ("half_open", "closed"),
        ("open", "half_open"),
    ]


def test_a_failed_trial_reopens_and_restarts_the_timeout(clock):
    b = CircuitBreaker("db", failure_threshold=1, open_timeout=5, clock=clock)
    run(b, fail())
    clock.advance(5)
    assert run(b, fail()) == "raised"
    assert b.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after == pytest.approx(5)


def test_a_result_from_before_a_transition_does_not_move_the_new_state(clock):
    b = CircuitBreaker("db", failure_threshold=1, open_timeout=5, clock=clock)
    with b:  # admitted while closed...
        run(b, fail())  # ...meanwhile another call trips the breaker
        clock.advance(5)
        assert b.state == "half_open"
    # the old call's success must not count as the half-open trial
    assert b.state == "half_open"
    assert b.stats().success == 1


# -- manual modes ------------------------------------------------------------------------------


def test_forced_open_rejects_everything_until_reset(cap, clock):
    b = CircuitBreaker("db", clock=clock)
    b.force_open()
    assert (b.state, b.mode) == ("open", "forced_open")
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after is None
    clock.advance(10_000)
    assert run(b, ok) == "rejected"
    b.reset()
    assert (b.state, b.mode) == ("closed", "normal")
    assert run(b, ok) == "ok"


def test_disabled_lets_everything_through_and_never_opens(clock):
    b = CircuitBreaker("db", failure_threshold=1, clock=clock)
    b.disable()
    for _ in range(5):
        assert run(b, fail()) == "raised"
    assert (b.state, b.mode) == ("closed", "disabled")


# -- shapes ---------------------------------------------------------------------------------


def test_decorator_keeps_the_function_and_guards_it(clock):
    b = CircuitBreaker("db", failure_threshold=1, clock=clock)

    @b
    def query(sql: str) -> str:
        """Run a query."""
        raise ConnectionError(sql)

    assert query.__name__ == "query" and query.__doc__ == "Run a query."
    with pytest.raises(ConnectionError):
        query("select 1")
    with pytest.raises(CircuitOpenError):
        query("select 1")


async def test_async_decorator_and_async_with(clock):
    b = CircuitBreaker("db", failure_threshold=2, clock=clock)

    @b
    async def query():
        raise ConnectionError

    with pytest.raises(ConnectionError):
        await query()
    with pytest.raises(ConnectionError):
        async with b:
            raise ConnectionError
    assert b.state == "open"
    with pytest.raises(CircuitOpenError):
        async with b:
            pass


def test_with_block_counts_one_call(cap, clock):
    b = CircuitBreaker("db", clock=clock)
    with b:
        pass
    with pytest.raises(ConnectionError), b:
        raise ConnectionError
    assert calls(cap, "db") == {"success": 1, "failure": 1}


def test_generator_functions_are_refused():
    def gen():
        yield 1

    with pytest.raises(ConfigError, match="generator"):
        CircuitBreaker("db")(gen)


# -- signals ----------------------------------------------------------------------------------


def test_each_transition_is_a_span_event(cap, clock):
    b = CircuitBreaker("db", failure_threshold=1, clock=clock)
    with get_tracer().start_as_current_span("request"):
        run(b, fail())
    ((span, event),) = cap.events("faultlens.circuit_breaker.transition")
    assert span.name == "request"
    assert event.attributes["faultlens.circuit_breaker.name"] == "db"
    assert event.attributes["faultlens.circuit_breaker.from"] == "closed"
    assert event.attributes["faultlens.circuit_breaker.to"] == "open"
    assert event.attributes["faultlens.circuit_breaker.failure_ratio"] == 1.0


def test_a_transition_outside_any_span_gets_a_short_span_of_its_own(cap, clock):
    b = CircuitBreaker("db", failure_threshold=1, clock=clock)
    run(b, fail())
    ((span, _),) = cap.events("faultlens.circuit_breaker.transition")
    assert span.name == "faultlens.circuit_breaker db"


def test_state_and_failure_ratio_gauges(cap, clock):
    b = CircuitBreaker("db", failure_threshold=2, open_timeout=5, clock=clock)
    assert gauge(cap, "db") == {"closed"}
    run(b, ok)
    run(b, fail())
    (ratio,) = cap.metric_points("faultlens.circuit_breaker.failure_ratio")
    assert ratio.value == 0.5
    run(b, fail())
    assert gauge(cap, "db") == {"open"}
    clock.advance(5)
    assert gauge(cap, "db") == {"half_open"}


def test_listeners_get_every_change_and_cannot_break_the_caller(clock):
    seen = []

    def broken(change):
        raise RuntimeError("listener bug")

    b = CircuitBreaker("db", failure_threshold=1, open_timeout=1, clock=clock, listeners=[broken])
    b.add_listener(seen.append)
    assert run(b, fail()) == "raised"  # the ConnectionError, not the listener's error
    clock.advance(1)
    assert run(b, ok) == "ok"
    assert [(c.from_state, c.to_state) for c in seen] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert seen[0].breaker == "db" and "consecutive" in seen[0].reason
    assert dropped_counts()["internal_error"] >= 3
    b.remove_listener(seen.append)


# -- registry and configuration -------------------------------------------------------------


def test_registry_by_name():
    b = CircuitBreaker("payments")
    assert breakers()["payments"] is b
    assert get_breaker("payments") is b
    created = get_breaker("search", failure_threshold=9)
    assert created.failure_threshold == 9
    assert get_breaker("search", failure_threshold=1) is created


def test_configured_defaults_apply_and_explicit_arguments_win(tmp_path):
    (tmp_path / "faultlens.yaml").write_text(
        "error_handling:\n  recovery: {circuit_breaker: {failure_threshold: 7, timeout: 12}}\n"
    )
    faultlens.configure(
        service_name="t",
        journal=False,
        exporter="none",
        config_file=str(tmp_path / "faultlens.yaml"),
    )
    b = CircuitBreaker("cfg")
    assert (b.failure_threshold, b.open_timeout) == (7, 12.0)
    b2 = CircuitBreaker("cfg2", failure_threshold=2, open_timeout=1)
    assert (b2.failure_threshold, b2.open_timeout) == (2, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"open_timeout": -1}, "open_timeout"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"failure_rate_threshold": 50}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"window_type": "sliding"}, "window_type"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 2.5}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"ignore": "KeyError"}, "ignore"),
        ({"clock": 5}, "clock"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        CircuitBreaker("bad", **kwargs)


def test_a_name_is_required():
    with pytest.raises(ConfigError, match="name"):
        CircuitBreaker("")


def test_methods_and_callable_objects_can_be_guarded(clock):
    b = CircuitBreaker("db", clock=clock)

    class Repo:
        @b
        def get(self, key):
            return (self, key)

        @b
        @staticmethod
        def version():
            return 2

    repo = Repo()
    assert repo.get("k") == (repo, "k")
    assert Repo.version() == 2
    assert b.stats().success == 2
