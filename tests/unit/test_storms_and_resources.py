"""Bounded cost: error storms are rate-limited per fingerprint with exact counts; resource
snapshots are cached and never raise."""

from __future__ import annotations

import os

import pytest

import faultlens
from faultlens import resources, testing
from faultlens.capture import Limits, dropped_counts
from faultlens.capture._ratelimit import RateLimiter
from faultlens.capture._state import STATE


@faultlens.instrument
def flaky(i):
    raise ConnectionError(f"attempt {i} refused")


def test_a_storm_records_the_first_burst_and_counts_the_rest_exactly():
    STATE.limits = Limits(rate_limit_burst=5, rate_limit_window=3600)
    with testing.capture() as cap:
        for i in range(105):
            with pytest.raises(ConnectionError):
                flaky(i)
    assert len(cap.events("exception")) == 5
    assert cap.counter("faultlens.errors", code="NET_CONNECTION_FAILED") == 105
    assert dropped_counts()["rate_limited"] == 100
    assert cap.counter("faultlens.internal.dropped", reason="rate_limited") == 100


def test_the_next_recorded_event_carries_how_many_were_suppressed():
    limiter = RateLimiter(burst=2, window=10, max_fingerprints=10)
    results = [limiter.admit("fp", now=t) for t in (0, 1, 2, 3, 4)]
    assert results == [(True, 0), (True, 0), (False, 0), (False, 0), (False, 0)]
    assert limiter.admit("fp", now=11) == (True, 3)


def test_rate_limiter_memory_is_bounded_by_fingerprint_count():
    limiter = RateLimiter(burst=1, window=10, max_fingerprints=100)
    for i in range(10_000):
        limiter.admit(f"fp{i}", now=0)
    assert len(limiter) == 100


def test_snapshot_has_the_contract_keys_and_is_cached():
    resources.reset()
    snap = resources.snapshot()
    for key in ("memory.rss", "memory.percent", "cpu.percent", "threads", "open_fds"):
        assert f"faultlens.resource.{key}" in snap
    assert "faultlens.resource.system.memory.available" in snap
    assert "faultlens.resource.system.disk.free" in snap
    assert resources.snapshot() is snap, "a second read within a second is the cached one"


def test_values_psutil_cannot_read_are_omitted(monkeypatch):
    import psutil

    def denied(self, *a, **k):
        raise psutil.AccessDenied(os.getpid())

    monkeypatch.setattr(psutil.Process, "num_fds", denied)
    monkeypatch.setattr(psutil.Process, "memory_percent", denied)
    resources.reset()
    snap = resources.snapshot()
    assert "faultlens.resource.open_fds" not in snap
    assert "faultlens.resource.memory.percent" not in snap
    assert "faultlens.resource.memory.rss" in snap


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_recording_works_in_a_forked_child_after_configure(tmp_path):
    faultlens.configure(service_name="parent", journal=False)
    faultlens.record_error(ValueError("parent"))
    pid = os.fork()
    if pid == 0:  # the child: record, then report through the exit code
        code = 1
        try:
            with testing.capture() as cap:
                faultlens.record_error(ValueError("child"))
            snap = resources.snapshot()
            code = 0 if len(cap.errors) == 1 and snap else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
