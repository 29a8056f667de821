"""Retry and breaker call counts are per process: a forked child starts from zero.

They are kept locally and reported through observable counters, each registration relative
to a baseline taken when it was made. A forked child is a new instance with its own series:
its counts start from zero, and a registration inherited from the parent must then report
them as they are, not hide them below a baseline taken from the parent's counts.
"""

from __future__ import annotations

import os
import time

import pytest

import faultlens
from faultlens.resilience import CircuitBreaker, retry

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _child_exit_code(pid: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


def test_a_forked_child_reports_only_its_own_retry_and_breaker_calls():
    breaker = CircuitBreaker("fork-counts")

    @retry(attempts=1, operation="fork-counts-op")
    @breaker
    def call() -> int:
        return 1

    for _ in range(3):
        call()  # counted before any registration: the baseline of the capture below
    with faultlens.testing.capture() as cap:
        for _ in range(2):
            call()
        assert cap.counter("faultlens.retry.calls", operation="fork-counts-op") == 2
        pid = os.fork()
        if pid == 0:  # the child: one call of its own
            code = 1
            try:
                call()
                retry_calls = cap.counter("faultlens.retry.calls", operation="fork-counts-op")
                breaker_calls = cap.counter(
                    "faultlens.circuit_breaker.calls", breaker="fork-counts"
                )
                stats = breaker.stats()
                code = 0 if (retry_calls, breaker_calls, stats.success) == (1, 1, 1) else 3
            finally:
                os._exit(code)
        assert _child_exit_code(pid) == 0
        # the parent's own series go on from where they were
        call()
        assert cap.counter("faultlens.retry.calls", operation="fork-counts-op") == 3
        assert cap.counter("faultlens.circuit_breaker.calls", breaker="fork-counts") == 3
