"""Threads faultlens starts never take the application's signals.

A process-directed signal goes to any one thread that does not block it, and a Python
handler then runs only when the main thread next runs bytecode. A ``with Pool()`` worker
under ``faultlens run`` hung for good this way: ``terminate()``'s SIGTERM landed on the
journal writer's thread while the worker's main thread waited on its task queue's lock (a
C wait only a signal of its own interrupts), so faultlens's SIGTERM handler never ran and
the worker never ended. Every faultlens thread therefore blocks the signals applications
handle, and the kernel delivers them to the application's threads, as without faultlens.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import pytest

import faultlens
from faultlens.capture import SHIELDED_SIGNALS, shielded

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/task/<tid>/status"
)


def blocked_signals(thread: threading.Thread) -> set[int]:
    """The signals a running thread blocks, from the kernel's view of it."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    (mask,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
    bits = int(mask, 16)
    return {n for n in range(1, 65) if bits & (1 << (n - 1))}


def test_the_shielded_set_is_what_applications_handle_in_python() -> None:
    assert {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1} <= SHIELDED_SIGNALS


def test_every_thread_faultlens_starts_blocks_the_applications_signals(tmp_path) -> None:
    faultlens.configure(
        service_name="svc",
        journal=True,
        journal_path=str(tmp_path / "journal"),
    )
    try:
        try:
            raise ValueError("x")
        except ValueError as exc:
            faultlens.record_error(exc)  # the journal writer starts
        faultlens.flush(timeout=2)
        ours = [t for t in threading.enumerate() if t.name.startswith("faultlens-")]
        assert ours, "configure() and a recorded error start faultlens threads"
        for thread in ours:
            assert blocked_signals(thread) >= SHIELDED_SIGNALS, thread.name
        assert signal.SIGTERM not in blocked_signals(threading.main_thread())
    finally:
        faultlens.shutdown(timeout=2)


def test_a_shielded_body_runs_with_the_signals_blocked_and_leaves_the_caller_alone() -> None:
    seen: list[set[int]] = []

    def body() -> None:
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))

    t = threading.Thread(target=shielded(body))
    t.start()
    t.join()
    assert seen[0] >= SHIELDED_SIGNALS
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


SDK_THREADS_APP = """
import os, signal, sys, threading, faultlens
from pathlib import Path

def blocked(thread):
    # the main thread's native_id is the parent's in a forked child: /proc/self is its own
    where = "self" if thread is threading.main_thread() else f"self/task/{thread.native_id}"
    status = Path(f"/proc/{where}/status").read_text()
    (mask,) = [l.split()[1] for l in status.splitlines() if l.startswith("SigBlk:")]
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))

def report(who):
    for t in threading.enumerate():
        print(who, t is threading.main_thread(), t.name, blocked(t), flush=True)

faultlens.configure(service_name="svc", endpoint="http://127.0.0.1:9", protocol="http/protobuf",
                    journal=False, exception_signal="logs")
report("parent")
pid = os.fork()
if pid == 0:
    import time; time.sleep(0.3)  # the SDK's processors restart their threads after fork
    report("child")
    os._exit(0)
os.waitpid(pid, 0)
report("after")
faultlens.shutdown(timeout=1)
"""


def test_the_sdks_threads_are_shielded_too_in_the_process_and_in_a_forked_child() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", SDK_THREADS_APP], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    for who in ("parent", "child", "after"):
        threads = [r for r in rows if r[0] == who]
        workers = [r for r in threads if r[1] == "False"]
        assert workers, f"{who}: the SDK's batch processors run threads"
        assert all(r[-1] == "True" for r in workers), (who, workers)
        assert [r[-1] for r in threads if r[1] == "True"] == ["False"], (who, threads)
