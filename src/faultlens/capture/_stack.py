"""Recording an error raised deep in a recursion: on a fresh stack, never with a raised limit.

An error raised at (or a few frames short of) the recursion limit reaches the innermost
instrumented wrapper with almost no stack left, and recording it takes frames: measured on
Python 3.11 with the in-memory SDK, a ``record_error()`` in place needs about 16 free slots
of the limit when warm and 29 when cold (the first fingerprint fills ``sysconfig``'s config
vars), more with a journal, processors or a synchronous exporter. Three ways to find them:

- **Raise the limit while recording** (what faultlens did). The limit is process-wide: while
  it was raised, other threads recursing through wrapt's C frames went that much deeper than
  the application allows and overflowed a default 8 MiB thread stack, or were left beyond
  the limit when it was put back, which Python 3.11 answers with "Fatal Python error: Cannot
  recover from stack overflow": the whole process aborted where a clean ``RecursionError``
  was due. Rejected: faultlens never changes the recursion limit (or any other process-wide
  interpreter state) another thread can see.
- **Record in place, shallowly.** At the limit no frame is left at all, so a record in place
  can only happen on a span further out (about 3 of the limit's slots per wrapped level),
  after every level below has tried and failed; a ``record_error()`` with no instrumented
  caller further out is lost. Worse, a record interrupted at the brink leaves whatever it
  was initialising half-done for the rest of the process: measured, a first record 16 to 28
  frames short of the limit left ``sysconfig.get_config_vars()`` with 13 of its 965 entries
  (``LIBDIR`` None), and the OTel SDK's registration of an observable counter half-made (a
  ``KeyError`` ever after). No choice of cheaper calls avoids that for code faultlens does
  not own (the SDK, sinks, processors, exporters).
- **Record on a fresh stack** (chosen). With fewer than ``MARGIN`` slots left
  (:func:`short_of_stack`, asked before every record), or when a record in place runs out
  of stack anyway, the recording step runs on a dedicated worker thread, in a copy of the
  caller's context (the current span, ``capture()`` scope and ``testing.capture()`` sinks
  travel with it), while the caller waits. The caller needs only the frame of
  :func:`on_fresh_stack`, whose work is C calls (copy the context, queue the job, wait on a
  lock), so the record lands on the innermost span that has it and nothing runs at the
  brink. Measured: the same attributes and formatted stack trace as a record in place on
  that span, counted once; a hand-off costs about 10 us more than a record in place (a
  thread start more when the worker was idle), and only records deep in a recursion pay it.
  The probe costs about 0.2 us (0.4% of a recorded ``@instrument`` failure) on 3.11.

Bounds, so that a hand-off can never hang the caller: the caller waits at most ``TIMEOUT``;
a job the worker has not started by then is withdrawn, and while a job whose caller stopped
waiting is still running (the worker blocked on a lock held by the thread a signal handler
interrupted, a slow synchronous exporter), later callers do not hand off at all. Nothing is
handed off during interpreter shutdown (no thread could run it), from the worker itself, or
when no thread can be started. In those cases the step simply does not run here: the
exception stays unmarked and the next span it escapes through with stack to spare records
it in place (the marks make every step happen once, whoever does it). The worker is a
daemon thread, started when first needed (by a bare ``_thread`` thread, the only start that
takes no Python frames from a caller at the limit) and gone after ``IDLE`` seconds without
work; a forked child starts its own.
"""

from __future__ import annotations

import _thread
import contextvars
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._fork import ensure_fork_hook, on_fork_child
from ._telemetry import internal_error
from ._threads import shield_from_signals

__all__ = ["IDLE", "MARGIN", "TIMEOUT", "on_fresh_stack", "short_of_stack"]

MARGIN = 64  # frames of the limit a record in place may use (2 to 5 times what it takes)
TIMEOUT = 2.0  # s a caller waits for its job
IDLE = 1.0  # s the worker waits for another job before it ends
_LOCK_WAIT = 0.5  # s for _lock (held for a few bytecodes; a signal handler may interrupt them)


if sys.version_info < (3, 12):
    # Python 3.11 has one budget for Python frames and nested C calls alike, and
    # isinstance() with a tuple of tuples takes one slot of it per level of nesting (in C,
    # a few nanoseconds each): MARGIN levels fail exactly when MARGIN slots are not left.
    # No Python frame is run, no exception raised in the usual case, no audit event.
    _PROBE: Any = int
    for _level in range(MARGIN):
        _PROBE = (_PROBE,)
    del _level

    def short_of_stack() -> bool:
        """Fewer than ``MARGIN`` frames left before the recursion limit: a record must
        not run here. Exact, and about 0.25 us whatever the depth."""
        try:
            isinstance(None, _PROBE)
        except RecursionError:
            return True
        return False

else:
    # Python 3.12 and later count only Python frames against the limit (C recursion has a
    # budget of its own), and this thread's Python frames are exactly what
    # sys._getframemodulename() walks (C-to-Python entry frames skipped, as by the count):
    # past the outermost it answers None, no exception. It raises an audit event, as
    # sys._getframe() would.
    _frame_module = sys._getframemodulename

    def short_of_stack() -> bool:
        """Fewer than ``MARGIN`` frames left before the recursion limit: a record must
        not run here. Exact; a C walk of the stack (about 2 ns a frame)."""
        return _frame_module(sys.getrecursionlimit() - MARGIN) is not None


class _Job:
    """One recording step handed to the worker. Filled in by attribute, without an
    ``__init__``: its caller has no frame to spare."""

    __slots__ = ("args", "call", "claim", "context", "done", "result", "where")

    args: tuple[Any, ...]
    call: Callable[..., Any]
    claim: _thread.LockType  # taken by whoever decides the job's fate: the worker or a quitter
    context: contextvars.Context
    done: _thread.LockType  # released by the worker when the job has run
    result: Any
    where: str


_lock = _thread.allocate_lock()  # guards _running, the queueing of a job, the worker's end
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_running = False  # a worker is up (or starting), and will see every job queued
_worker: int | None = None  # the worker's thread ident
_abandoned: _Job | None = None  # running, its caller gone: hand nothing else off meanwhile


def on_fresh_stack(where: str, step: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``step(*args)`` run on the worker's fresh stack in a copy of the caller's context; its
    result, or None when it did not run in time (see the module docstring). A step that
    raises is reported by the worker as an internal error at ``where``.

    Everything here is a C call one level deep, each needing the same single slot of the
    limit: if the first succeeds, all do, so a caller at the brink either hands the job off
    whole or raises ``RecursionError`` before anything was queued."""
    global _running, _abandoned
    if _abandoned is not None or _thread.get_ident() == _worker or sys.is_finalizing():
        return None
    job = _Job()
    job.context = contextvars.copy_context()
    job.call = step
    job.args = args
    job.where = where
    job.result = None
    job.claim = _thread.allocate_lock()
    job.done = done = _thread.allocate_lock()
    done.acquire()
    if not _lock.acquire(True, _LOCK_WAIT):
        return None  # held by the code a signal handler on this very thread interrupted
    try:
        if not _running:
            try:
                _thread.start_new_thread(_boot, ())
            except BaseException:  # no thread to be had (interpreter shutdown, resources)
                return None
            _running = True
        _jobs.put(job)  # under _lock: the worker cannot decide it is idle meanwhile
    finally:
        _lock.release()
    if done.acquire(True, TIMEOUT):
        return job.result
    if job.claim.acquire(False):
        return None  # not started: withdrawn, the worker will skip it
    _abandoned = job
    # It finished just now (the worker may have missed the flag): nothing is abandoned.
    if done.acquire(False) and _abandoned is job:
        _abandoned = None
    return None


def _boot() -> None:
    """A bare thread's first moments: start the worker as a proper ``threading`` thread (a
    bare thread that logs would stay listed as a dummy thread); serve from here if no new
    thread can be had."""
    shield_from_signals()  # the worker started from here inherits the mask too
    try:
        ensure_fork_hook()  # a child forked from now on starts its own worker
        threading.Thread(target=_serve, name="faultlens-recorder", daemon=True).start()
    except BaseException:
        _serve()


def _serve() -> None:
    global _running, _worker
    shield_from_signals()
    _worker = _thread.get_ident()
    try:
        while True:
            try:
                job = _jobs.get(True, IDLE)
            except queue.Empty:
                with _lock:  # a job is queued under _lock, after the check for a worker
                    if _jobs.empty():
                        _worker = None
                        _running = False
                        return
                continue
            _run(job)
    except BaseException:  # pragma: no cover - _run catches everything
        with _lock:  # a worker never dies leaving _running set
            _worker = None
            _running = False


def _run(job: _Job) -> None:
    global _abandoned
    if not job.claim.acquire(False):
        return  # its caller stopped waiting before it started
    try:
        job.result = job.context.run(job.call, *job.args)
    except BaseException as e:  # a hostile sink's SystemExit too: the worker must go on
        internal_error(job.where, e)
    finally:
        job.done.release()
        if _abandoned is job:
            _abandoned = None


def _after_fork() -> None:
    # The worker does not exist in the child, and its jobs were the parent's threads'.
    global _lock, _jobs, _running, _worker, _abandoned
    _lock = _thread.allocate_lock()
    _jobs = queue.SimpleQueue()
    _running, _worker, _abandoned = False, None, None


on_fork_child(_after_fork)
