"""The breaker and retry under threads and asyncio: bounded trials, one transition per trip,
permits that come back, and counts that add up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

import faultlens
from faultlens.resilience import CircuitBreaker, CircuitOpenError, retry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cap() -> Iterator[faultlens.testing.Captured]:
    with faultlens.testing.capture() as captured:
        yield captured


def tripped(clock: Clock, **kwargs) -> CircuitBreaker:
    """A breaker that has just become half-open."""
    b = CircuitBreaker("dep", failure_threshold=1, open_timeout=5, clock=clock, **kwargs)
    with pytest.raises(ConnectionError):
        b.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.now += 5
    assert b.state == "half_open"
    return b


def wait_until(predicate, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def test_half_open_admits_at_most_n_concurrent_trials(cap):
    clock = Clock()
    b = tripped(clock, half_open_max_calls=3)
    release = threading.Event()
    lock = threading.Lock()
    active = peak = 0
    results: list[str] = []

    def trial():
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(5)
        with lock:
            active -= 1
        return "ok"

    def worker():
        try:
            results.append(b.call(trial))
        except CircuitOpenError:
            results.append("rejected")

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    wait_until(lambda: results.count("rejected") == 17 and active == 3)
    release.set()
    for t in threads:
        t.join(5)
    assert peak == 3
    assert results.count("ok") == 3
    assert b.state == "closed"  # all three trials succeeded


def test_exactly_one_transition_per_trip_under_concurrent_failures(cap):
    changes = []
    b = CircuitBreaker("dep", failure_threshold=5, listeners=[changes.append])
    barrier = threading.Barrier(16)

    def failing():
        raise ConnectionError

    def worker():
        barrier.wait()
        for _ in range(20):
            try:
                b.call(failing)
            except (ConnectionError, CircuitOpenError):
                pass

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [(c.from_state, c.to_state) for c in changes] == [("closed", "open")]
    assert cap.counter("faultlens.circuit_breaker.transitions", breaker="dep") == 1
    s = b.stats()
    assert s.success + s.failure + s.ignored + s.rejected == 16 * 20


async def test_a_cancelled_trial_gives_its_permit_back(cap):
    clock = Clock()
    b = tripped(clock, half_open_max_calls=1)
    started = asyncio.Event()

    @b
    async def slow_trial():
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(slow_trial())
    await started.wait()
    with pytest.raises(CircuitOpenError) as info:
        await b.call_async(asyncio.sleep, 0)
    assert info.value.retry_after == 0.0  # a trial is running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.stats().half_open_in_flight == 0
    assert await b.call_async(asyncio.sleep, 0, "fine") == "fine"  # admitted as the trial
    assert b.state == "closed"
    assert cap.counter("faultlens.circuit_breaker.calls", breaker="dep", outcome="ignored") == 1


async def test_a_cancelled_async_with_block_gives_its_permit_back():
    clock = Clock()
    b = tripped(clock, half_open_max_calls=1)
    entered = asyncio.Event()

    async def guarded():
        async with b:
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(guarded())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with b:
        pass
    assert b.state == "closed"


def test_an_ignored_trial_gives_its_permit_back_and_is_not_a_success():
    clock = Clock()
    b = tripped(clock, half_open_max_calls=1, ignore=KeyError)

    def ignored():
        raise KeyError

    with pytest.raises(KeyError):
        b.call(ignored)
    assert b.state == "half_open"  # not closed: ignored is not a success
    assert b.stats().half_open_in_flight == 0
    assert b.call(lambda: "ok") == "ok"
    assert b.state == "closed"


async def test_many_tasks_through_one_breaker_add_up(cap):
    b = CircuitBreaker("dep", failure_threshold=1000)

    @b
    async def call(i):
        await asyncio.sleep(0)
        if i % 3 == 0:
            raise ConnectionError
        if i % 7 == 0:
            raise asyncio.CancelledError
        return i

    results = await asyncio.gather(*(call(i) for i in range(300)), return_exceptions=True)
    s = b.stats()
    assert s.failure == sum(isinstance(r, ConnectionError) for r in results)
    assert s.ignored == sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert s.success + s.failure + s.ignored == 300


def test_retry_state_is_per_call_across_threads(cap):
    local = threading.local()

    @retry(attempts=3, operation="threads")
    def call(fail_times):
        local.n = getattr(local, "n", 0) + 1
        if local.n <= fail_times:
            raise ConnectionError
        return local.n

    out: list[int] = []

    def worker(fail_times):
        local.n = 0
        try:
            out.append(call(fail_times))
        except ConnectionError:
            out.append(-1)

    with faultlens.testing.no_sleep():
        threads = [threading.Thread(target=worker, args=(i % 4,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sorted(out) == sorted([-1] * 10 + [1] * 10 + [2] * 10 + [3] * 10)
    assert cap.counter("faultlens.retry.calls", operation="threads") == 40
    assert cap.counter("faultlens.retry.calls", operation="threads", outcome="exhausted") == 10
