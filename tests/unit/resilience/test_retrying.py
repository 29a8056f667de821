"""faultlens.retrying(): the attempt-loop form of retry, for code that is not one call."""

from __future__ import annotations

import pytest

from faultlens.resilience import retrying


def outcomes(cap, operation):
    return {
        p.attributes["outcome"]: p.value
        for p in cap.metric_points("faultlens.retry.calls")
        if p.attributes["operation"] == operation
    }


def test_a_retryable_failure_inside_the_block_moves_on_to_the_next_attempt(cap, slept):
    seen = []
    for attempt in retrying(attempts=4, operation="loop"):
        with attempt:
            seen.append(attempt.number)
            if attempt.number < 3:
                raise ConnectionError("down")
    assert seen == [1, 2, 3]
    assert len(slept.delays) == 2
    assert outcomes(cap, "loop") == {"success_after_retry": 1}


def test_success_on_the_first_attempt_runs_the_block_once(cap, slept):
    runs = 0
    for attempt in retrying(operation="loop"):
        with attempt:
            runs += 1
    assert runs == 1
    assert outcomes(cap, "loop") == {"success_first_attempt": 1}


def test_the_last_failure_propagates_from_the_with_statement_unchanged(cap, slept):
    raised = []
    with pytest.raises(ConnectionError) as info:
        for attempt in retrying(attempts=2, operation="loop"):
            with attempt:
                raised.append(ConnectionError(attempt.number))
                raise raised[-1]
    assert info.value is raised[-1]
    assert outcomes(cap, "loop") == {"exhausted": 1}


def test_a_non_retryable_failure_propagates_at_once(cap, slept):
    with pytest.raises(ValueError):
        for attempt in retrying(attempts=5, operation="loop"):
            with attempt:
                raise ValueError("bad input")
    assert slept.delays == []
    assert outcomes(cap, "loop") == {"non_retryable": 1}


def test_each_iteration_over_the_same_object_is_an_independent_call(cap, slept):
    loop = retrying(attempts=2, operation="loop")
    for _ in range(3):
        for attempt in loop:
            with attempt:
                if attempt.number == 1:
                    raise TimeoutError
    assert outcomes(cap, "loop") == {"success_after_retry": 3}


def test_the_operation_defaults_to_the_enclosing_function(cap, slept):
    def sync_batches():
        for attempt in retrying():
            with attempt:
                return "done"
        return "unreachable"

    assert sync_batches() == "done"
    (point,) = cap.metric_points("faultlens.retry.calls")
    assert point.attributes["operation"].endswith("sync_batches")


def test_a_loop_left_without_entering_the_attempt_stops(cap, slept):
    attempts = list(retrying(attempts=3, operation="loop"))
    assert len(attempts) == 1  # the first attempt was never entered, so nothing failed


async def test_async_for_waits_with_async_sleeps(cap, slept):
    seen = []
    async for attempt in retrying(attempts=3, operation="aloop"):
        async with attempt:
            seen.append(attempt.number)
            if attempt.number == 1:
                raise ConnectionError
    assert seen == [1, 2]
    assert outcomes(cap, "aloop") == {"success_after_retry": 1}


async def test_async_for_also_accepts_a_plain_with(cap, slept):
    async for attempt in retrying(attempts=3, operation="aloop"):
        with attempt:
            pass
    assert outcomes(cap, "aloop") == {"success_first_attempt": 1}


def test_keyboard_interrupt_in_the_block_aborts(cap, slept):
    with pytest.raises(KeyboardInterrupt):
        for attempt in retrying(attempts=3, operation="loop"):
            with attempt:
                raise KeyboardInterrupt
    assert outcomes(cap, "loop") == {"aborted": 1}
