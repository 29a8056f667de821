"""A forked child starts with working capture machinery.

Every lock the capture layer owns (rate limiter, record-once marks, instrument cache,
dropped-telemetry tally, state, the fresh-stack recorder) may be held by another thread at
the moment of ``fork()``; the child, where that thread does not exist, gets new ones. The
marks do not cross into the child either. The after-fork hook is registered the first time
the layer is used, not at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback

import pytest

import faultlens
from faultlens.capture import Limits, _record, _stack, _telemetry, dropped_counts
from faultlens.capture._marks import MARKS
from faultlens.capture._state import STATE

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


@faultlens.instrument
def raise_it(exc: BaseException) -> None:
    raise exc


def _run_in_child(body) -> str:
    """Fork; run ``body()`` in the child and return what it printed to the pipe. Fails if
    the child hangs (a lock held at fork time) or fails."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, body().encode())
            code = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung: a lock held at fork time was not replaced")
        time.sleep(0.02)
    with os.fdopen(read_end) as pipe:
        out = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


def test_a_child_forked_while_another_thread_holds_every_capture_lock_records_normally():
    with faultlens.testing.capture() as cap:
        STATE.limits = Limits(rate_limit_burst=1, resources=False)
        with pytest.raises(ValueError):
            raise_it(ValueError("warm up every lock once"))
        locks = [
            _record._rate_limiter()._lock,
            MARKS._lock,
            _telemetry._dropped_lock,
            _telemetry._cache_lock,
            STATE.lock,
            _stack._lock,
        ]
        holding, release = threading.Event(), threading.Event()

        def hold_all():
            for lock in locks:
                lock.acquire()
            holding.set()
            release.wait(30)
            for lock in reversed(locks):
                lock.release()

        holder = threading.Thread(target=hold_all)
        holder.start()
        assert holding.wait(10)

        def child() -> str:
            STATE.bump()  # a fresh instrument cache, through the (new) cache lock
            for i in range(3):
                try:
                    raise_it(ValueError(f"same place {i}"))
                except ValueError:
                    pass
            errors = cap.counter("faultlens.errors")
            dropped = dropped_counts().get("rate_limited", 0)
            return f"{errors:g} {dropped}"

        try:
            out = _run_in_child(child)
        finally:
            release.set()
            holder.join(10)
    # The child is a new instance: the 1 counted before the fork is the parent's to report;
    # the child counts its own 3 and rate-limits 2 of them (its tallies start at zero).
    assert out == "3 2"


def test_a_mark_does_not_cross_into_a_forked_child():
    exc = KeyError("in flight at fork time")
    with faultlens.testing.capture() as cap:
        with pytest.raises(KeyError):
            raise_it(exc)

        def child() -> str:
            try:
                raise_it(exc)
            except KeyError:
                pass
            return f"{cap.counter('faultlens.errors'):g}"

        # recorded again in the child (the mark stayed in the parent); the child's count is
        # its own, the parent's 1 is not reported again by the child
        assert _run_in_child(child) == "1"
        assert cap.counter("faultlens.errors") == 1


def test_the_fork_hook_is_registered_at_first_use_not_at_import():
    code = (
        "import faultlens\n"
        "from faultlens.capture import _fork\n"
        "print(_fork._registered)\n"
        "faultlens.record_error(ValueError('x'))\n"
        "print(_fork._registered)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "True"]


def test_a_child_forked_during_an_auto_instrumentation_install_can_install_too():
    import faultlens.auto
    from faultlens.auto import _hook, _wrap

    faultlens.auto.install(["support.hardening_autowrap"])  # the first install registers
    faultlens.auto.uninstall()  # the after-fork hook
    holding, release = threading.Event(), threading.Event()

    def hold():
        with _hook._lock, _wrap._lock:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)

    def child() -> str:
        from support import hardening_autowrap as app

        faultlens.auto.install(["support.hardening_autowrap"])
        wrapped = faultlens.auto.is_faultlens_wrapper(app.work)
        faultlens.auto.uninstall()
        return f"{wrapped} {faultlens.auto.is_faultlens_wrapper(app.work)}"

    try:
        assert _run_in_child(child) == "True False"
    finally:
        release.set()
        holder.join(10)
