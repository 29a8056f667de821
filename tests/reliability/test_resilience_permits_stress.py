"""Under concurrency, ``with breaker:`` blocks whose steps run in other contexts and threads
(sync streaming bodies iterated Starlette-style from a thread pool) never leak a permit: after
the storm the breaker holds nothing and closes as soon as the dependency is healthy again."""

from __future__ import annotations

import contextvars
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import faultlens
from faultlens.resilience import CircuitBreaker, CircuitOpenError


def test_streamed_blocks_under_a_thread_pool_return_every_permit():
    rng = random.Random(7)
    healthy = threading.Event()
    with faultlens.testing.capture(), faultlens.testing.no_sleep():
        breaker = CircuitBreaker(
            "stress-stream", failure_threshold=3, open_timeout=0.0, half_open_max_calls=2
        )

        def body(fail: bool) -> Iterator[int]:
            with breaker:
                yield 1
                if fail and not healthy.is_set():
                    raise ConnectionError("dropped")
                yield 2

        def stream(fail: bool) -> str:
            try:
                it = body(fail)
            except CircuitOpenError:
                return "rejected"
            done = object()
            try:
                with ThreadPoolExecutor(max_workers=2) as steps:
                    while True:
                        # each step in a fresh copy of the caller's context, another thread
                        ctx = contextvars.copy_context()
                        if steps.submit(ctx.run, next, it, done).result() is done:
                            return "ok"
            except CircuitOpenError:
                return "rejected"
            except ConnectionError:
                return "failed"

        with ThreadPoolExecutor(max_workers=8) as callers:
            outcomes = list(callers.map(stream, [rng.random() < 0.5 for _ in range(400)]))

        assert {"ok", "failed"} <= set(outcomes)
        assert not breaker._blocks, "a with-block permit was never returned"
        healthy.set()
        for _ in range(2):  # half_open_max_calls trials, then closed
            assert stream(False) == "ok"
        assert breaker.state == "closed"
        assert breaker.stats().half_open_in_flight == 0
