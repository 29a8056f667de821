"""faultlens.retry: attempts, backoff, deadline, `on=`, outcomes and what they emit."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import faultlens
from faultlens.capture import dropped_counts, get_tracer
from faultlens.errors import ConfigError, FaultError
from faultlens.resilience import Retry, retry


class Flaky:
    """Fails with ``exc_type`` ``failures`` times, then returns "ok"; keeps what it raised."""

    def __init__(self, failures: int, exc_type: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.exc_type = exc_type
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            exc = self.exc_type(f"failure {self.calls}")
            self.raised.append(exc)
            raise exc
        return "ok"


def outcomes(cap, operation: str) -> dict[str, float]:
    return {
        p.attributes["outcome"]: p.value
        for p in cap.metric_points("faultlens.retry.calls")
        if p.attributes["operation"] == operation
    }


# -- outcomes ---------------------------------------------------------------------------


def test_a_first_attempt_success_is_counted_and_emits_nothing_else(cap, slept):
    @retry
    def fetch(x):
        return x * 2

    assert fetch(21) == 42
    # the operation label is the function's name, as for spans (no "<locals>" noise)
    assert outcomes(cap, "fetch") == {"success_first_attempt": 1}
    assert cap.metric_points("faultlens.retry.attempts") == []
    assert slept.delays == []


def test_retryable_failures_are_retried_until_success(cap, slept):
    flaky = Flaky(2)
    fetch = retry(attempts=5, wait_initial=0.1, wait_max=1.0, operation="fetch")(flaky)

    with get_tracer().start_as_current_span("job"):
        assert fetch() == "ok"

    assert flaky.calls == 3
    assert len(slept.delays) == 2
    assert outcomes(cap, "fetch") == {"success_after_retry": 1}
    assert (
        cap.counter(
            "faultlens.retry.attempts", operation="fetch", **{"error.type": "ConnectionError"}
        )
        == 2
    )
    (backoff,) = cap.metric_points("faultlens.retry.backoff.duration")
    assert backoff.value.count == 2
    assert backoff.value.sum == pytest.approx(sum(slept.delays))
    events = cap.events("faultlens.retry")
    assert [e.attributes["faultlens.retry.attempt"] for _, e in events] == [1, 2]
    assert all(s.name == "job" for s, _ in events)  # on the current span, no span of its own
    assert [e.attributes["faultlens.retry.delay"] for _, e in events] == slept.delays
    assert events[0][1].attributes["error.type"] == "ConnectionError"


def test_exhausted_reraises_the_last_exception_itself_unchained(cap, slept):
    flaky = Flaky(10)
    fetch = retry(attempts=3, operation="fetch")(flaky)

    with pytest.raises(ConnectionError) as info:
        fetch()

    assert flaky.calls == 3
    assert info.value is flaky.raised[-1]
    assert info.value.__context__ is None  # attempts are not chained onto each other
    assert info.value.__cause__ is None
    assert outcomes(cap, "fetch") == {"exhausted": 1}
    assert cap.counter("faultlens.retry.attempts", operation="fetch") == 3
    assert len(slept.delays) == 2


def test_the_last_failed_attempt_event_says_why_it_stopped(cap, slept):
    fetch = retry(attempts=2, operation="fetch")(Flaky(10))
    with get_tracer().start_as_current_span("job"), pytest.raises(ConnectionError):
        fetch()
    last = cap.events("faultlens.retry")[-1][1]
    assert last.attributes["faultlens.retry.outcome"] == "exhausted"
    assert "faultlens.retry.delay" not in last.attributes


def test_errors_the_catalog_does_not_mark_retryable_propagate_at_once(cap, slept):
    flaky = Flaky(1, ValueError)
    fetch = retry(attempts=5, operation="fetch")(flaky)

    with pytest.raises(ValueError):
        fetch()

    assert flaky.calls == 1
    assert outcomes(cap, "fetch") == {"non_retryable": 1}
    assert cap.counter("faultlens.retry.attempts", operation="fetch") == 1
    assert slept.delays == []


def test_fault_errors_follow_their_code_in_the_catalog(cap, slept):
    faultlens.catalog.register("DB_BUSY", category="execution", severity="medium", retryable=True)

    class DbBusy(FaultError):
        code = "DB_BUSY"

    flaky = Flaky(2, DbBusy)
    assert retry(attempts=3, operation="db")(flaky)() == "ok"
    assert cap.counter("faultlens.retry.attempts", operation="db", **{"error.type": "DB_BUSY"}) == 2


@pytest.mark.parametrize(
    "on",
    [KeyError, (KeyError, IndexError), lambda exc: isinstance(exc, KeyError)],
    ids=["type", "tuple", "predicate"],
)
def test_on_selects_what_is_retried(cap, slept, on):
    assert retry(attempts=3, on=on)(Flaky(2, KeyError))() == "ok"
    flaky = Flaky(2, ConnectionError)
    with pytest.raises(ConnectionError):
        retry(attempts=3, on=on)(flaky)()
    assert flaky.calls == 1  # `on` replaces the default, it does not extend it


def test_a_predicate_that_raises_makes_the_error_non_retryable_not_a_new_error(cap, slept):
    def broken(exc):
        raise RuntimeError("bug in predicate")

    flaky = Flaky(1)
    with pytest.raises(ConnectionError) as info:
        retry(attempts=3, on=broken, operation="p")(flaky)()
    assert info.value is flaky.raised[0]
    assert outcomes(cap, "p") == {"non_retryable": 1}
    assert dropped_counts()["internal_error"] >= 1


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_control_flow_is_never_retried(cap, slept, exc_type):
    flaky = Flaky(1, exc_type)
    with pytest.raises(exc_type):
        retry(attempts=5, on=BaseException, operation="cf")(flaky)()
    assert flaky.calls == 1
    assert outcomes(cap, "cf") == {"aborted": 1}
    assert cap.metric_points("faultlens.retry.attempts") == []


# -- backoff and deadline -----------------------------------------------------------------


def test_backoff_without_jitter_doubles_up_to_wait_max(slept):
    fetch = retry(attempts=6, wait_initial=0.1, wait_max=0.5, wait_jitter=False)(Flaky(10))
    with pytest.raises(ConnectionError):
        fetch()
    assert slept.delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_jittered_backoff_stays_in_the_exponential_band(slept):
    fetch = retry(attempts=6, wait_initial=0.1, wait_max=0.5)(Flaky(10))
    with pytest.raises(ConnectionError):
        fetch()
    ceilings = [0.2, 0.4, 0.5, 0.5, 0.5]
    for delay, ceiling in zip(slept.delays, ceilings, strict=True):
        assert 0.1 <= delay <= ceiling


def test_wait_exp_base_one_gives_a_constant_wait(slept):
    fetch = retry(attempts=4, wait_initial=0.3, wait_exp_base=1, wait_jitter=False)(Flaky(10))
    with pytest.raises(ConnectionError):
        fetch()
    assert slept.delays == pytest.approx([0.3, 0.3, 0.3])


def test_the_deadline_is_never_slept_past(cap, slept):
    flaky = Flaky(100)
    fetch = retry(
        attempts=100,
        timeout=1.0,
        wait_initial=0.3,
        wait_exp_base=1,
        wait_jitter=False,
        operation="d",
    )(flaky)
    with pytest.raises(ConnectionError):
        fetch()
    assert slept.delays == pytest.approx([0.3, 0.3, 0.3])  # a 4th wait would end at 1.2 s
    assert flaky.calls == 4
    assert outcomes(cap, "d") == {"exhausted": 1}


def test_without_no_sleep_the_wait_is_real(cap):
    fetch = retry(attempts=2, wait_initial=0.01, wait_max=0.01)(Flaky(1))
    import time

    start = time.monotonic()
    assert fetch() == "ok"
    assert time.monotonic() - start >= 0.009


# -- shapes -----------------------------------------------------------------------------


async def test_async_functions_are_retried_with_async_sleeps(cap, slept):
    calls = []

    @retry(attempts=3, operation="aio")
    async def fetch(x):
        calls.append(x)
        if len(calls) < 3:
            raise TimeoutError("slow")
        return x

    assert await fetch(7) == 7
    assert len(calls) == 3
    assert outcomes(cap, "aio") == {"success_after_retry": 1}


async def test_async_cancellation_is_aborted_not_retried(cap, slept):
    @retry(attempts=3, on=BaseException, operation="aio")
    async def fetch():
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await fetch()
    assert outcomes(cap, "aio") == {"aborted": 1}


def test_signature_and_methods_are_kept(slept):
    class Client:
        def __init__(self):
            self.flaky = Flaky(1)

        @retry(attempts=2)
        def get(self, path: str, *, timeout: float = 1.0) -> str:
            """Fetch a path."""
            return self.flaky(path)

    assert Client().get("/x") == "ok"
    assert list(inspect.signature(Client.get).parameters) == ["self", "path", "timeout"]
    assert Client.get.__doc__ == "Fetch a path."
    assert Client.get.__name__ == "get"


def test_a_policy_can_decorate_several_functions_each_with_its_own_operation(cap, slept):
    policy = faultlens.resilience.retry(attempts=2)

    @policy
    def one():
        return 1

    @policy
    def two():
        return 2

    one(), two(), two()
    ops = {p.attributes["operation"]: p.value for p in cap.metric_points("faultlens.retry.calls")}
    assert ops == {
        "one": 1,
        "two": 2,
    }


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"timeout": 0}, "timeout"),
        ({"wait_initial": -1}, "wait_initial"),
        ({"wait_initial": 2.0, "wait_max": 1.0}, "wait_max"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
        ({"wait_jitter": "yes"}, "wait_jitter"),
        ({"on": "ConnectionError"}, "on"),
        ({"on": (ValueError, "x")}, "on"),
        ({"operation": ""}, "operation"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        retry(**kwargs)


def test_generator_functions_are_refused():
    def gen():
        yield 1

    with pytest.raises(ConfigError, match="generator"):
        retry(gen)


def test_configured_defaults_apply_and_explicit_arguments_win(tmp_path, slept):
    (tmp_path / "faultlens.yaml").write_text(
        "error_handling:\n"
        "  retry: {max_retries: 1, base_delay: 0.25, max_delay: 0.25, jitter: false}\n"
    )
    faultlens.configure(
        service_name="t",
        journal=False,
        exporter="none",
        config_file=str(tmp_path / "faultlens.yaml"),
    )
    with pytest.raises(ConnectionError):
        retry(Flaky(10))()
    assert slept.delays == [0.25]  # max_retries 1 -> 2 attempts, base_delay 0.25

    slept.delays.clear()
    with pytest.raises(ConnectionError):
        retry(attempts=3)(Flaky(10))()
    assert slept.delays == [0.25, 0.25]


def test_params_report_the_effective_values():
    p = Retry(attempts=4, wait_initial=0.5).params()
    assert (p.attempts, p.wait_initial, p.wait_max, p.timeout) == (4, 0.5, 5.0, None)
    assert "attempts=4" in repr(Retry(attempts=4))


def test_classmethods_staticmethods_and_callable_objects_are_wrapped_too(slept):
    class Api:
        @retry(attempts=2)
        @classmethod
        def create(cls):
            return cls.__name__

        @retry(attempts=2)
        @staticmethod
        def ping():
            return "pong"

    class Callable:
        def __call__(self, x):
            return x

    assert Api.create() == "Api" and Api().create() == "Api"
    assert Api.ping() == "pong" and Api().ping() == "pong"
    assert retry(attempts=2)(Callable())(3) == 3
