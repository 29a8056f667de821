"""A process forked while another thread holds one of the resilience layer's locks does not
deadlock: every lock the layer owns is re-created in the child (one ``os.register_at_fork``
hook, registered on first use, not at import)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from faultlens.resilience import CircuitBreaker, _breaker, _telemetry, get_breaker, retry

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait(pid: int, seconds: float) -> int | None:
    """The child's exit status, or None (after killing it) if it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_fork_while_a_thread_holds_every_resilience_lock(cap):
    breaker = CircuitBreaker("fork-held", failure_threshold=1)
    attempts = []

    @retry(attempts=2, wait_initial=0.0, on=ConnectionError, operation="fork-op")
    @breaker
    def call() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first attempt")
        return "ok"

    stats = _telemetry.retry_stats("fork-op")
    locks = [
        breaker._lock,
        stats.lock,
        _telemetry._registry_lock,
        _telemetry._lock,
        _breaker._create_lock,
    ]
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        holding.set()
        release.wait()
        for lock in reversed(locks):
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    try:
        pid = os.fork()
        if pid == 0:  # the child: every call below takes one of the held locks
            code = 1
            try:
                breaker.reset()
                # the first attempt opens the breaker, the retry is rejected
                try:
                    call()
                except Exception:
                    pass
                _ = breaker.state, breaker.stats()
                get_breaker("fork-new", failure_threshold=2)
                code = 0
            finally:
                os._exit(code)
        status = _wait(pid, 20.0)
    finally:
        release.set()
        holder.join()
    assert status == 0, "the forked child deadlocked on a lock held by the parent's thread"


def test_the_fork_hook_is_not_registered_at_import():
    # A fresh interpreter that only imports faultlens registers no at-fork hook of ours.
    code = (
        "import os, faultlens, faultlens.resilience._common as c\n"
        "assert not c._fork_registered and not c._fork_callbacks, c._fork_callbacks\n"
        "faultlens.CircuitBreaker('x')\n"
        "assert c._fork_registered and c._fork_callbacks\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
