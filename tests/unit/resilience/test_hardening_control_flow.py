"""Control-flow exceptions pass through every resilience wrapper unchanged.

``StopIteration``/``StopAsyncIteration`` are the iterator protocol's "no more items": never
retried (not even with ``on=Exception``), never a breaker failure, never a fallback, never
recorded; the call counts as completed. Cancellation, ``KeyboardInterrupt``, ``SystemExit``
and ``GeneratorExit`` are never retried (outcome ``aborted``), never a breaker failure
(``ignored``) and never recovered -- also when they arrive during the backoff wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading

import pytest

from faultlens.resilience import CircuitBreaker, recover, resilient, retry, retrying

# -- the iterator protocol ----------------------------------------------------------------


class Pages:
    """An iterator class whose __next__ goes through retry (on=Exception), a breaker and
    recovery, as `faultlens run` or a user would wrap it."""

    breaker = CircuitBreaker("pages", failure_threshold=1)

    def __init__(self, n: int) -> None:
        self.left = n

    def __iter__(self) -> Pages:
        return self

    @recover(fallbacks=[lambda: -1])
    @retry(attempts=5, wait_initial=0.0, on=Exception)
    @breaker
    def __next__(self) -> int:
        if not self.left:
            raise StopIteration
        self.left -= 1
        return self.left


def test_a_loop_over_a_retried_iterator_ends_normally(cap, slept):
    Pages.breaker.reset()
    assert list(Pages(3)) == [2, 1, 0]
    assert slept.delays == []  # StopIteration was not retried
    assert cap.counter("faultlens.retry.attempts") == 0
    assert cap.counter("faultlens.retry.calls", outcome="success_first_attempt") == 4
    assert cap.counter("faultlens.circuit_breaker.calls", breaker="pages", outcome="failure") == 0
    assert Pages.breaker.state == "closed"  # failure_threshold=1: one failure would open it
    assert cap.counter("faultlens.recovery.actions") == 0
    assert cap.error_events == []


def _advance(it):
    return next(it)


@pytest.mark.parametrize(
    "decorate",
    [
        retry(attempts=3, on=Exception),
        CircuitBreaker("advance", failure_threshold=1),
        recover(fallbacks=["fallback"]),
        resilient(retry={"attempts": 3, "on": Exception}, breaker="advance-stack", fallbacks=[0]),
    ],
    ids=["retry", "breaker", "recover", "resilient"],
)
def test_stop_iteration_from_a_helper_propagates_unchanged(cap, slept, decorate):
    advance = decorate(_advance)
    it = iter([1])
    assert advance(it) == 1
    stop = StopIteration("end")
    with pytest.raises(StopIteration) as caught:
        advance(_Raising(stop))
    assert caught.value is stop
    assert slept.delays == []
    assert cap.counter("faultlens.retry.attempts") == 0
    assert cap.counter("faultlens.circuit_breaker.calls", outcome="failure") == 0
    assert cap.counter("faultlens.recovery.actions") == 0
    assert cap.error_events == []
    assert cap.counter("faultlens.errors") == 0


class _Raising:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __next__(self):
        raise self.exc


class Feed:
    breaker = CircuitBreaker("feed", failure_threshold=1)

    def __init__(self, n: int) -> None:
        self.left = n

    def __aiter__(self) -> Feed:
        return self

    @recover(fallbacks=[lambda: -1])
    @retry(attempts=5, wait_initial=0.0, on=Exception)
    @breaker
    async def __anext__(self) -> int:
        await asyncio.sleep(0)
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return self.left


async def test_an_async_for_over_a_retried_async_iterator_ends_normally(cap, slept):
    Feed.breaker.reset()
    assert [x async for x in Feed(2)] == [1, 0]
    assert slept.delays == []
    assert cap.counter("faultlens.retry.attempts") == 0
    assert cap.counter("faultlens.circuit_breaker.calls", breaker="feed", outcome="failure") == 0
    assert Feed.breaker.state == "closed"
    assert cap.counter("faultlens.recovery.actions") == 0
    assert cap.error_events == []


def test_stop_iteration_inside_an_attempt_block_ends_the_loop_at_once(cap, slept):
    attempts = []
    with pytest.raises(StopIteration):
        for attempt in retrying(attempts=3, on=Exception):
            with attempt:
                attempts.append(attempt.number)
                raise StopIteration
    assert attempts == [1]
    assert cap.counter("faultlens.retry.calls", outcome="success_first_attempt") == 1


def test_a_breaker_with_statement_counts_stop_iteration_as_success(cap):
    breaker = CircuitBreaker("with-stop", failure_threshold=1)
    with pytest.raises(StopIteration), breaker:
        raise StopIteration
    assert breaker.state == "closed"
    assert breaker.stats().success == 1


# -- cancellation and interrupts ------------------------------------------------------------

CONTROL = [
    KeyboardInterrupt(),
    SystemExit(3),
    GeneratorExit(),
    asyncio.CancelledError(),
    concurrent.futures.CancelledError(),
]


@pytest.mark.parametrize("exc", CONTROL, ids=lambda e: type(e).__name__)
def test_control_flow_is_never_retried_even_with_on_exception(cap, slept, exc):
    calls = []

    @retry(attempts=3, on=lambda e: True)
    def call():
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)) as caught:
        call()
    assert caught.value is exc
    assert calls == [1]
    assert cap.counter("faultlens.retry.calls", outcome="aborted") == 1
    assert cap.counter("faultlens.retry.attempts") == 0


@pytest.mark.parametrize("exc", CONTROL, ids=lambda e: type(e).__name__)
def test_control_flow_is_never_a_breaker_failure_nor_a_fallback(cap, exc):
    breaker = CircuitBreaker("control", failure_threshold=1)
    fallback_calls = []

    @recover(fallbacks=[lambda: fallback_calls.append(1)], on=lambda e: True)
    @breaker
    def call():
        raise exc

    with pytest.raises(type(exc)):
        call()
    assert breaker.state == "closed"
    assert breaker.stats().ignored == 1
    assert fallback_calls == []
    assert cap.counter("faultlens.recovery.actions") == 0
    assert cap.counter("faultlens.errors") == 0


# -- interrupted backoff --------------------------------------------------------------------


async def test_cancelling_a_task_during_the_backoff_wait_counts_aborted(cap):
    failed = asyncio.Event()

    @retry(attempts=3, wait_initial=30.0, wait_max=30.0, on=ConnectionError, operation="op")
    async def fetch():
        failed.set()
        raise ConnectionError("down")

    task = asyncio.create_task(fetch())
    await failed.wait()
    await asyncio.sleep(0.01)  # now in the 30 s backoff
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cap.counter("faultlens.retry.calls", operation="op", outcome="aborted") == 1
    assert cap.counter("faultlens.retry.calls", operation="op") == 1


async def test_cancelling_an_async_attempt_loop_during_the_wait_counts_aborted(cap):
    failed = asyncio.Event()

    async def loop():
        async for attempt in retrying(attempts=3, wait_initial=30.0, wait_max=30.0, operation="l"):
            with attempt:
                failed.set()
                raise ConnectionError("down")

    task = asyncio.create_task(loop())
    await failed.wait()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cap.counter("faultlens.retry.calls", operation="l", outcome="aborted") == 1


@pytest.fixture
def ctrl_c_soon():
    """Press Ctrl-C (a real SIGINT to the main thread) 0.2 s from now, from another thread."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert threading.get_ident() == main
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    yield
    timer.cancel()
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_the_sync_backoff_wait_counts_aborted(cap, ctrl_c_soon):
    @retry(attempts=3, wait_initial=30.0, wait_max=30.0, on=ConnectionError, operation="s")
    def fetch():
        raise ConnectionError("down")

    with pytest.raises(KeyboardInterrupt):
        fetch()
    assert cap.counter("faultlens.retry.calls", operation="s", outcome="aborted") == 1
    assert cap.counter("faultlens.retry.calls", operation="s") == 1


def test_ctrl_c_during_an_attempt_loop_wait_counts_aborted(cap, ctrl_c_soon):
    with pytest.raises(KeyboardInterrupt):
        for attempt in retrying(attempts=3, wait_initial=30.0, wait_max=30.0, operation="sl"):
            with attempt:
                raise ConnectionError("down")
    assert cap.counter("faultlens.retry.calls", operation="sl", outcome="aborted") == 1
    assert cap.counter("faultlens.retry.calls", operation="sl") == 1


def test_a_loop_left_after_a_swallowed_failure_still_counts_one_outcome(cap, slept):
    def leave_early():
        for attempt in retrying(attempts=3, on=ConnectionError, operation="left"):
            with attempt:
                raise ConnectionError("down")
            break  # runs after the swallowed failure: the loop is abandoned

    leave_early()
    assert cap.counter("faultlens.retry.calls", operation="left", outcome="aborted") == 1
    assert cap.counter("faultlens.retry.calls", operation="left") == 1


def test_a_completed_loop_is_not_counted_again_when_collected(cap, slept):
    for attempt in retrying(attempts=3, on=ConnectionError, operation="done"):
        with attempt:
            pass
    del attempt
    assert cap.counter("faultlens.retry.calls", operation="done") == 1
