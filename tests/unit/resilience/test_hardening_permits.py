"""A half-open breaker can never get stuck: a ``with breaker:`` permit is returned whatever
context the block exits in (a generator resumed under ``copy_context().run``, as Starlette
and anyio do for sync streaming bodies; another thread), and a trial call that never
reports back loses its slot after ``open_timeout``."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest

from faultlens.resilience import CircuitBreaker, CircuitOpenError
from faultlens.resilience._breaker import TRIAL_LEASE_MIN


def half_open(name: str, clock, **kwargs) -> CircuitBreaker:
    breaker = CircuitBreaker(name, failure_threshold=1, open_timeout=10.0, clock=clock, **kwargs)
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError("down")
    clock.advance(10.0)
    assert breaker.state == "half_open"
    return breaker


def streaming_body(breaker: CircuitBreaker) -> Iterator[bytes]:
    """A sync streaming response body that talks to the dependency while it streams."""
    with breaker:
        yield b"chunk 1"
        yield b"chunk 2"


def iterate_like_starlette(body: Iterator[bytes]) -> list[bytes]:
    """Starlette's iterate_in_threadpool: every next() runs in a fresh copy of the
    caller's context (anyio.to_thread.run_sync copies it per call)."""
    chunks = []
    while True:
        try:
            chunks.append(contextvars.copy_context().run(next, body))
        except StopIteration:
            return chunks


def test_a_trial_inside_a_body_streamed_under_copied_contexts_closes_the_breaker(cap, clock):
    breaker = half_open("stream", clock)
    assert iterate_like_starlette(streaming_body(breaker)) == [b"chunk 1", b"chunk 2"]
    assert breaker.state == "closed"  # before: half_open forever, every call rejected
    assert breaker.stats().half_open_in_flight == 0


def test_a_failing_trial_streamed_under_copied_contexts_reopens_the_breaker(cap, clock):
    breaker = half_open("stream-fail", clock)

    def failing_body() -> Iterator[bytes]:
        with breaker:
            yield b"chunk 1"
            raise ConnectionError("dropped mid-stream")

    with pytest.raises(ConnectionError):
        iterate_like_starlette(failing_body())
    assert breaker.state == "open"


async def test_the_same_body_streamed_through_real_threads_and_asyncio(cap, clock):
    breaker = half_open("stream-threads", clock)
    body = streaming_body(breaker)
    loop = asyncio.get_running_loop()
    chunks = []
    done = object()
    while True:
        # as Starlette's _next(): StopIteration cannot cross a Future, so map it to a value
        ctx = contextvars.copy_context()
        chunk = await loop.run_in_executor(None, ctx.run, next, body, done)
        if chunk is done:
            break
        chunks.append(chunk)
    assert chunks == [b"chunk 1", b"chunk 2"]
    assert breaker.state == "closed"


def test_a_block_entered_in_one_thread_and_exited_in_another_returns_its_permit(cap, clock):
    breaker = half_open("threads", clock)
    breaker.__enter__()
    exited = threading.Thread(target=breaker.__exit__, args=(None, None, None))
    exited.start()
    exited.join()
    assert breaker.state == "closed"


def test_a_generator_closed_by_the_garbage_collector_returns_its_permit(cap, clock):
    breaker = half_open("gc", clock)
    body = streaming_body(breaker)
    contextvars.copy_context().run(next, body)
    del body  # GeneratorExit runs the with-exit in whatever context collects it
    assert breaker.stats().half_open_in_flight == 0
    assert breaker.stats().ignored == 1  # cancelled, neither success nor failure
    with breaker:  # the slot is free again
        pass
    assert breaker.state == "closed"


def test_nested_blocks_in_one_context_still_pair_up_exactly(cap, clock):
    breaker = CircuitBreaker("nested", failure_threshold=2, clock=clock)
    with pytest.raises(ValueError), breaker:
        with breaker:
            pass
        raise ValueError("outer fails, inner succeeded")
    stats = breaker.stats()
    assert (stats.success, stats.failure) == (1, 1)


def test_a_trial_that_never_reports_back_expires_after_open_timeout(cap, clock):
    breaker = half_open("lost-trial", clock)
    breaker.__enter__()  # a trial whose exit never comes (an abandoned, uncollected body)
    with pytest.raises(CircuitOpenError), breaker:
        pass
    clock.advance(max(breaker.open_timeout, TRIAL_LEASE_MIN))
    with breaker:  # the lost trial's slot has been handed to this call
        pass
    assert breaker.state == "closed"


async def test_a_trial_coroutine_that_is_never_awaited_to_the_end_expires(cap, clock):
    breaker = half_open("lost-coroutine", clock)
    started = asyncio.Event()

    @breaker
    async def call() -> str:
        started.set()
        await asyncio.Event().wait()  # hangs forever
        return "never"

    coro = call()
    task = asyncio.ensure_future(coro)
    await started.wait()
    with pytest.raises(CircuitOpenError):
        await call()
    clock.advance(10.0)

    @breaker
    async def ok() -> str:
        return "ok"

    assert await ok() == "ok"
    assert breaker.state == "closed"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_with_open_timeout_zero_a_trial_still_holds_its_slot_for_the_minimum_lease(clock):
    breaker = CircuitBreaker("lease", failure_threshold=1, open_timeout=0.0, clock=clock)
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError
    breaker.__enter__()  # the trial (open_timeout 0: half-open at once)
    with pytest.raises(CircuitOpenError), breaker:
        pass  # open_timeout=0 must not mean "unlimited concurrent trials"
    clock.advance(TRIAL_LEASE_MIN)
    with breaker:
        pass
    assert breaker.state == "closed"


async def test_an_async_generator_closed_from_another_task_returns_its_permit(cap, clock):
    breaker = half_open("agen", clock)

    async def body():
        async with breaker:
            yield b"chunk 1"
            yield b"chunk 2"

    agen = body()
    # the first step runs in a task of its own (its own context), the close in another
    assert await asyncio.create_task(agen.__anext__()) == b"chunk 1"
    await asyncio.create_task(agen.aclose())
    assert breaker.stats().half_open_in_flight == 0
    async with breaker:  # the slot is free: this trial closes the breaker
        pass
    assert breaker.state == "closed"


def test_a_context_whose_exits_run_elsewhere_does_not_accumulate_entries(cap, clock):
    from faultlens.resilience._breaker import _held

    breaker = CircuitBreaker("handed-off", failure_threshold=5, clock=clock)

    def enter_here_exit_elsewhere() -> int:
        for _ in range(100):
            breaker.__enter__()
            other = threading.Thread(target=breaker.__exit__, args=(None, None, None))
            other.start()
            other.join()
        return len(_held.get())

    assert contextvars.Context().run(enter_here_exit_elsewhere) <= 1
    assert breaker.stats().success == 100
    assert not breaker._blocks
