"""Async callable objects (an instance whose ``__call__`` is ``async def``, as HTTP and RPC
clients are written), partials of async functions and plain functions returning a
coroutine get async retry, breaker and recovery: the outcome is what awaiting gives, not
the coroutine object the call returned."""

from __future__ import annotations

import asyncio
import functools

import pytest

from faultlens.resilience import CircuitBreaker, recover, resilient, retry


class Client:
    """An async client object: fails ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self, path: str) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.failures:
            raise ConnectionError(f"{path}: refused")
        return f"ok:{path}"


async def _get(client: Client, path: str) -> str:
    return await client(path)


def _returns_coroutine(client: Client, path: str):
    return client(path)  # a plain def handing back the client's coroutine


SHAPES = {
    "async callable object": lambda c: c,
    "partial of an async function": lambda c: functools.partial(_get, c),
    "function returning a coroutine": lambda c: functools.partial(_returns_coroutine, c),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_retry_awaits_and_retries_async_callables(cap, slept, shape):
    client = Client(failures=2)
    fetch = retry(attempts=3, on=ConnectionError, operation="fetch")(SHAPES[shape](client))
    assert await fetch("/a") == "ok:/a"
    assert client.calls == 3
    assert cap.counter("faultlens.retry.calls", operation="fetch", outcome="success_after_retry")
    assert cap.counter("faultlens.retry.attempts", operation="fetch") == 2


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_retry_gives_up_with_the_last_exception_of_an_async_callable(cap, slept, shape):
    client = Client(failures=5)
    fetch = retry(attempts=2, on=ConnectionError, operation="fetch")(SHAPES[shape](client))
    with pytest.raises(ConnectionError, match="refused"):
        await fetch("/a")
    assert client.calls == 2
    assert cap.counter("faultlens.retry.calls", operation="fetch", outcome="exhausted") == 1
    first = cap.counter("faultlens.retry.calls", operation="fetch", outcome="success_first_attempt")
    assert first == 0


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_the_breaker_counts_async_callable_failures_as_failures(cap, shape):
    client = Client(failures=5)
    breaker = CircuitBreaker(f"client-{shape}", failure_threshold=2)
    fetch = breaker(SHAPES[shape](client))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await fetch("/a")
    assert breaker.state == "open"
    stats = breaker.stats()
    assert (stats.failure, stats.success) == (2, 0)


async def test_breaker_call_with_an_async_object_guards_the_awaited_outcome(cap):
    breaker = CircuitBreaker("call-async-object", failure_threshold=1)
    with pytest.raises(ConnectionError):
        await breaker.call(Client(failures=1), "/a")
    assert breaker.state == "open"


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_recover_answers_with_a_fallback_when_the_awaited_call_fails(cap, shape):
    client = Client(failures=5)

    def from_cache(path: str) -> str:
        return f"cached:{path}"

    fetch = recover(fallbacks=[from_cache])(SHAPES[shape](client))
    assert await fetch("/a") == "cached:/a"
    assert cap.counter("faultlens.recovery.actions", outcome="recovered") == 1
    assert cap.counter("faultlens.errors", code="NET_CONNECTION_FAILED") == 1


async def test_an_async_client_object_may_have_async_fallbacks(cap):
    async def from_cache(path: str) -> str:
        await asyncio.sleep(0)
        return f"cached:{path}"

    fetch = recover(fallbacks=[from_cache])(Client(failures=5))
    assert await fetch("/a") == "cached:/a"


async def test_the_whole_stack_over_an_async_client_object(cap, slept):
    client = Client(failures=1)
    fetch = resilient(
        retry={"attempts": 3, "on": ConnectionError},
        breaker=CircuitBreaker("stack-client", failure_threshold=5),
        fallbacks=["cached"],
    )(client)
    assert await fetch("/a") == "ok:/a"
    assert client.calls == 2
    assert cap.counter("faultlens.circuit_breaker.calls", outcome="failure") == 1
    assert cap.counter("faultlens.circuit_breaker.calls", outcome="success") == 1


async def test_a_task_returned_by_a_sync_function_is_handed_back_untouched(cap):
    # Futures and tasks can be cancelled or given callbacks: they are not rewrapped.
    async def work() -> int:
        return 7

    def start():
        return asyncio.ensure_future(work())

    task = retry(attempts=2)(start)()
    assert isinstance(task, asyncio.Task)
    assert await task == 7


def test_a_sync_call_is_still_sync(cap):
    calls = []

    @retry(attempts=2, on=ConnectionError)
    def plain():
        calls.append(1)
        return 1

    assert plain() == 1
    assert cap.counter("faultlens.retry.calls", outcome="success_first_attempt") == 1


async def test_the_whole_stack_over_an_async_client_object_with_async_fallbacks(cap, slept):
    async def from_cache(path: str) -> str:
        return f"cached:{path}"

    fetch = resilient(
        retry={"attempts": 2, "on": ConnectionError},
        breaker=CircuitBreaker("stack-client-fallback", failure_threshold=5),
        fallbacks=[from_cache],
    )(Client(failures=5))
    assert await fetch("/a") == "cached:/a"
