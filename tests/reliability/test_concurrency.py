"""Threads and asyncio tasks recording at once: every error counted exactly once, context
never bleeds between tasks."""

from __future__ import annotations

import asyncio
import threading

import faultlens
from faultlens import testing


def test_threads_recording_concurrently_are_all_counted():
    @faultlens.instrument
    def work(i):
        raise TimeoutError(f"t{i}")

    def run(n):
        for i in range(n):
            try:
                work(i)
            except TimeoutError:
                pass

    with testing.capture() as cap:
        threads = [threading.Thread(target=run, args=(250,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert cap.counter("faultlens.errors", code="EXE_TIMEOUT") == 2000


async def test_asyncio_tasks_keep_their_own_context():
    @faultlens.instrument
    async def job(n):
        async with faultlens.capture(stage=f"stage-{n}", job=n):
            await asyncio.sleep(0.001 * (n % 3))
            raise ValueError(f"job {n}")

    async def guarded(n):
        try:
            await job(n)
        except ValueError:
            pass

    with testing.capture() as cap:
        await asyncio.gather(*(guarded(n) for n in range(50)))
    assert len(cap.errors) == 50
    for record in cap.errors:
        n = record.attributes["faultlens.context.job"]
        assert record.info.stage == f"stage-{n}"
        assert record.info.message == f"job {n}"
