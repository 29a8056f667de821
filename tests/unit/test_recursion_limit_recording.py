"""An error raised at the recursion limit is recorded in full, and nobody else's stack changes.

faultlens records an error raised deep in a recursion on a fresh stack (a worker thread,
in a copy of the caller's context) rather than by raising the recursion limit, which is
process-wide: while it was raised, other threads could recurse deeper than the application
allows, overflow a default-sized thread stack or be left beyond the limit when it was put
back (a segfault or a fatal abort where a clean RecursionError was due). These tests pin the
behaviour the application sees:

- the recursion limit observed from any thread never changes, a thread recursing at the
  same moment stops at exactly the depth it reaches without faultlens, and threads hitting
  the limit together never take the process down;
- the RecursionError is counted once, with the attributes, formatted stack trace and
  ``capture()`` context a record in place has, on the innermost span there is;
- nothing runs at the brink of the limit, where a half-run first-time initialisation (of
  the standard library, the OTel SDK) would stay broken for the rest of the process, and
  recording never raises into the application, however little stack is left;
- the hand-off is bounded: a worker that cannot finish in time never holds the recursion
  up, with no thread to be had the record is made further out at once, at interpreter exit
  nothing hangs, and a forked child records on its own worker.
"""

from __future__ import annotations

import _thread
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

import faultlens
from faultlens.capture import _stack, dropped_counts
from faultlens.capture._record import _guarded
from faultlens.capture._state import STATE
from faultlens.journal import read_records

LIMIT = 1000  # the interpreter's default


@pytest.fixture(autouse=True)
def default_recursion_limit() -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@faultlens.instrument
def descend(n: int) -> int:
    return descend(n + 1) + 1


def reach() -> int:
    """How deep a plain recursion gets on this thread before its RecursionError."""
    deepest = 0

    def down(n: int) -> None:
        nonlocal deepest
        deepest = n
        down(n + 1)

    try:
        down(1)
    except RecursionError:
        pass
    return deepest


def frames_left_call(free: int, fn):
    """Call ``fn`` with ``free`` calls left before the recursion limit. Measured by trying
    (``reach``): on Python 3.11 C calls on the way here (pytest's, wrappers') use up the
    limit too, so counting Python frames would not tell."""
    room = reach()  # reach's frames start where go's do

    def go(n: int):
        if n:
            return go(n - 1)
        return fn()

    return go(room - free - 1)  # go(0) is the (room - free)-th frame: ``free`` left


def internal_errors() -> int:
    return dropped_counts().get("internal_error", 0)


def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wait for the recording worker of earlier tests to end (it does when idle)."""
    monkeypatch.setattr(_stack, "IDLE", 0.05)
    for t in threading.enumerate():
        if t.name == "faultlens-recorder":
            t.join(10)
    assert not _stack._running


# -- nobody else's stack changes ----------------------------------------------------------------


def test_a_thread_recursing_while_a_recursion_error_is_recorded_stops_where_it_always_does():
    baseline: list[int] = []
    during: list[tuple[int, int]] = []
    go, measured = threading.Event(), threading.Event()

    def other_thread() -> None:
        baseline.append(reach())
        go.wait(30)
        during.append((reach(), sys.getrecursionlimit()))
        measured.set()

    gated = False

    def hold_the_record_open(event):
        # Runs inside the record of the RecursionError: the other thread measures now.
        nonlocal gated
        if not gated:
            gated = True
            go.set()
            measured.wait(30)
        return event

    other = threading.Thread(target=other_thread)
    with faultlens.testing.capture() as cap:
        STATE.processors = (hold_the_record_open,)
        other.start()
        while not baseline:
            time.sleep(0.001)
        with pytest.raises(RecursionError):
            descend(0)
        other.join(30)
    assert gated and measured.is_set(), "the other thread measured during the record"
    assert during == [(baseline[0], LIMIT)], "no deeper, and the limit it sees is unchanged"
    assert cap.counter("faultlens.errors") == 1
    assert len(cap.error_events) == 1


def test_the_limit_seen_from_another_thread_never_changes_while_threads_hit_it():
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(sys.getrecursionlimit())

    def recurse() -> None:
        for _ in range(5):
            try:
                descend(0)
            except RecursionError:
                pass

    with faultlens.testing.capture() as cap:
        watcher = threading.Thread(target=watch)
        watcher.start()
        workers = [threading.Thread(target=recurse) for _ in range(3)]  # default stacks
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        stop.set()
        watcher.join(10)
    assert seen == {LIMIT}
    assert cap.counter("faultlens.errors") == 15
    assert len(cap.error_events) == 15
    assert internal_errors() == 0


def test_threads_hitting_the_limit_together_never_abort_the_process():
    # While the limit was raised for one thread's record, another could go past the old
    # limit, and once it was put back that thread was beyond it: on Python 3.11 that ends
    # the process ("Fatal Python error: _Py_CheckRecursiveCall: Cannot recover from stack
    # overflow"), or overflows a default-sized thread stack. In a child process, so that an
    # abort fails this test rather than ending the test run.
    script = textwrap.dedent(
        f"""
        import sys, threading
        import faultlens
        sys.setrecursionlimit({LIMIT})

        @faultlens.instrument
        def descend(n):
            return descend(n + 1) + 1

        def hit_it(times):
            for _ in range(times):
                try:
                    descend(0)
                except RecursionError:
                    pass

        with faultlens.testing.capture() as cap:
            threads = [threading.Thread(target=hit_it, args=(20,)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(int(cap.counter("faultlens.errors")), len(cap.error_events))
        print(sys.getrecursionlimit())
        """
    )
    assert _python(script, timeout=120).split() == ["80", "80", str(LIMIT)]


# -- recorded in full -----------------------------------------------------------------------------


def test_a_recursion_error_is_recorded_like_any_error_with_its_stack_and_context():
    with faultlens.testing.capture() as cap:
        with pytest.raises(RecursionError) as raised, faultlens.capture(stage="walk", job=7):
            descend(0)
        exc = raised.value
        ((span, event),) = cap.events()
        attrs = dict(event.attributes)
        assert attrs["exception.type"] == "RecursionError"
        # "... exceeded", or "... exceeded while calling a Python object" (where it was raised)
        assert attrs["exception.message"].startswith("maximum recursion depth exceeded")
        info = faultlens.classify(exc, stage="walk")  # the same error classified shallowly
        assert attrs["faultlens.error.code"] == info.code == "SYS_UNKNOWN_ERROR"
        assert attrs["faultlens.error.category"] == info.category == "system"
        assert attrs["faultlens.error.severity"] == info.severity.value
        assert attrs["faultlens.stage"] == "walk"  # the caller's context travelled with it
        assert attrs["faultlens.context.job"] == 7
        assert any(key.startswith("faultlens.resource.") for key in attrs)
        # On the innermost span there is: nothing deeper was recorded or left unrecorded.
        assert span.name == "descend"
        assert not [s for s in cap.spans if s.start_time > span.start_time]
        # Its stack trace is what any error recorded on that span shows: the frames from the
        # span's call to the raise (here the innermost levels of the recursion, as they were
        # when it was recorded), not the whole recursion the final traceback has by now.
        stack = attrs["exception.stacktrace"]
        assert stack.startswith("Traceback (most recent call last):\n")
        assert stack.endswith(f"RecursionError: {attrs['exception.message']}\n")
        levels = stack.count(", in descend\n")
        whole = [f for f in traceback.extract_tb(exc.__traceback__) if f.name == "descend"]
        assert 1 <= levels < len(whole)
        expected = "".join(
            f'  File "{f.filename}", line {f.lineno}, in descend\n    {f.line}\n'
            for f in whole[-levels:]
        )
        assert (
            stack
            == "Traceback (most recent call last):\n"
            + expected
            + stack.splitlines(keepends=True)[-1]
        )
        # The same recursion again: the same error, grouped under one fingerprint.
        cap.clear()
        with pytest.raises(RecursionError):
            descend(0)
        (again,) = cap.error_events
        assert (
            again.attributes["faultlens.error.fingerprint"] == attrs["faultlens.error.fingerprint"]
        )
    assert internal_errors() == 0


@pytest.mark.parametrize("free", [6, 8, 12, 16, 24, 32, 48, 64, 80, 120])
def test_an_error_recorded_a_few_frames_short_of_the_limit_is_recorded_once(free):
    def fail_and_record():
        try:
            raise KeyError("deep")
        except KeyError as exc:
            return faultlens.record_error(exc, stage="deep")

    with faultlens.testing.capture() as cap:
        faultlens.record_error(ValueError("warm"))  # the public name resolved up here
        cap.clear()  # the events; the counter is cumulative
        before = internal_errors()
        info = frames_left_call(free, fail_and_record)
    assert info.code == "SYS_UNKNOWN_ERROR" and info.stage == "deep"
    assert cap.counter("faultlens.errors") == 2  # "warm", then "deep" once
    assert len(cap.error_events) == 1
    assert internal_errors() == before


@pytest.mark.parametrize("free", [14, 20, 27])
def test_a_first_record_close_to_the_limit_leaves_what_it_initialises_whole(free):
    # In a fresh process the first fingerprint reads sysconfig's paths, which fills
    # sysconfig's config vars once for the whole process. Run at the brink and interrupted by
    # the limit, that would leave them half-filled forever (measured: 13 of 965 entries,
    # LIBDIR None, for a record in place 16 to 28 frames short of the limit).
    script = textwrap.dedent(
        f"""
        import sys, sysconfig
        import faultlens
        assert sysconfig._CONFIG_VARS is None, "precondition: not initialised yet"
        sys.setrecursionlimit({LIMIT})

        def reach():
            deepest = 0
            def down(n):
                nonlocal deepest
                deepest = n
                down(n + 1)
            try:
                down(1)
            except RecursionError:
                pass
            return deepest

        def record():
            try:
                raise KeyError("deep")
            except KeyError as exc:
                faultlens.record_error(exc)

        def go(n):  # as frames_left_call({free}, record)
            return go(n - 1) if n else record()

        with faultlens.testing.capture() as cap:
            go(reach() - {free} - 1)
            print(int(cap.counter("faultlens.errors")), len(cap.error_events))
        print(len(sysconfig.get_config_vars()), sysconfig.get_config_var("LIBDIR") is not None)
        """
    )
    out = _python(script)
    reference = _python("import sysconfig; print(len(sysconfig.get_config_vars()), True)")
    recorded, config = out.splitlines()
    assert recorded == "1 1"
    assert config == reference.strip()


# -- the probe and the hand-off -------------------------------------------------------------------


def test_short_of_stack_says_whether_a_record_has_its_margin_of_frames_left():
    assert not _stack.short_of_stack(), "a usual stack is far from the limit"
    # Within a frame either way: the probe's own call may or may not take a slot.
    assert not frames_left_call(_stack.MARGIN + 2, _stack.short_of_stack)
    assert frames_left_call(_stack.MARGIN - 2, _stack.short_of_stack)
    assert frames_left_call(3, _stack.short_of_stack)


def test_a_recording_step_never_raises_into_its_caller_however_little_stack_is_left():
    def needs_stack(n: int = 100) -> str:  # a step that takes more frames than are left
        return needs_stack(n - 1) if n else "done"

    def call():
        try:
            return _guarded("test", needs_stack)
        except RecursionError as exc:  # inspected up here: no frame to spare down there
            return exc

    outcomes = {free: frames_left_call(free, call) for free in range(0, 80)}
    for free, outcome in outcomes.items():
        if isinstance(outcome, RecursionError):
            raised_in = [f.f_code for f, _ in traceback.walk_tb(outcome.__traceback__)]
            assert _guarded.__code__ not in raised_in, f"{free} frames left: raised inside"
        else:
            assert outcome in ("done", None), (free, outcome)
    # Wherever it could start at all, the step ran, on a fresh stack when this one had none.
    started = [f for f, o in outcomes.items() if not isinstance(o, RecursionError)]
    assert started and all(outcomes[f] == "done" for f in started if f >= started[0] + 2)


# -- bounded ---------------------------------------------------------------------------------------


def test_a_hand_off_that_cannot_finish_in_time_never_holds_the_recursion_up(monkeypatch):
    monkeypatch.setattr(_stack, "TIMEOUT", 0.2)
    release = threading.Event()
    blocked = []

    def stuck(event):
        # As a worker blocked on a lock the waiting thread holds would be (a signal
        # handler interrupted the code holding it).
        if not blocked:
            blocked.append(event)
            release.wait(30)
        return event

    with faultlens.testing.capture() as cap:
        STATE.processors = (stuck,)
        start = time.monotonic()
        with pytest.raises(RecursionError):
            descend(0)
        took = time.monotonic() - start
        assert took < 2.0, f"the recursion was held up {took:.1f}s"
        assert cap.counter("faultlens.errors") == 1, "counted before the event was due"
        release.set()
        deadline = time.monotonic() + 10
        while len(cap.error_events) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(cap.error_events) == 1, "the event arrives once the worker is free"
        while _stack._abandoned is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        cap.clear()  # the events; the counter is cumulative
        with pytest.raises(RecursionError):
            descend(0)  # the worker is free again: recorded as usual
        assert cap.counter("faultlens.errors") == 2
        assert len(cap.error_events) == 1


def test_with_no_thread_to_be_had_the_error_is_recorded_further_out_at_once(monkeypatch):
    class NoThreads:  # _thread, except that no thread can be started (as at shutdown)
        def __getattr__(self, name):
            return getattr(_thread, name)

        def start_new_thread(self, *args):
            raise RuntimeError("can't start new thread")

    no_worker(monkeypatch)
    monkeypatch.setattr(_stack, "_thread", NoThreads())
    monkeypatch.setattr(_stack, "TIMEOUT", 5.0)
    with faultlens.testing.capture() as cap:
        start = time.monotonic()
        with pytest.raises(RecursionError):
            descend(0)
        took = time.monotonic() - start
        assert took < 2.0, f"a caller waited {took:.1f}s for a worker that never started"
        assert cap.counter("faultlens.errors") == 1
        (event,) = cap.error_events
        # Not on the innermost call's span: on the first one out with MARGIN frames to
        # spare, so its stack trace has that many levels of the recursion (a hand-off's has
        # one or two).
        levels = event.attributes["exception.stacktrace"].count(", in descend\n")
        assert levels >= _stack.MARGIN // 6, levels
    assert internal_errors() == 0


def test_the_worker_is_a_daemon_that_ends_when_idle(monkeypatch):
    monkeypatch.setattr(_stack, "IDLE", 0.1)
    with faultlens.testing.capture(), pytest.raises(RecursionError):
        descend(0)
    workers = [t for t in threading.enumerate() if t.name == "faultlens-recorder"]
    assert all(t.daemon for t in workers)
    for t in workers:
        t.join(5)
    assert not [t for t in threading.enumerate() if t.name == "faultlens-recorder"]
    assert not [t for t in threading.enumerate() if t.name.startswith("Dummy-")]


def test_recursion_errors_at_interpreter_exit_are_recorded_and_the_process_ends(tmp_path):
    script = textwrap.dedent(
        f"""
        import atexit, sys, threading
        import faultlens
        sys.setrecursionlimit({LIMIT})
        faultlens.configure(service_name="exit-test", journal={str(tmp_path)!r})

        @faultlens.instrument
        def descend(n):
            return descend(n + 1) + 1

        def forever():  # a daemon thread still recursing when the interpreter finalizes
            while True:
                try:
                    descend(0)
                except RecursionError:
                    pass

        def at_exit():
            try:
                descend(0)
            except RecursionError:
                pass

        atexit.register(at_exit)  # runs before faultlens's own shutdown (registered earlier)
        threading.Thread(target=forever, daemon=True).start()
        try:
            descend(0)
        except RecursionError:
            pass
        print("main done")
        """
    )
    start = time.monotonic()
    out = _python(script, timeout=60)
    assert out.strip() == "main done"
    assert time.monotonic() - start < 30
    records = list(read_records(str(tmp_path)))
    assert sum(1 for r in records if r.get("code") == "SYS_UNKNOWN_ERROR") >= 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_after_a_hand_off_records_on_its_own_worker():
    with faultlens.testing.capture(), pytest.raises(RecursionError):
        descend(0)  # the parent's worker is up now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            with faultlens.testing.capture() as cap:
                try:
                    descend(0)
                except RecursionError:
                    pass
                ok = cap.counter("faultlens.errors") == 1 and len(cap.error_events) == 1
            os.write(write_end, b"ok" if ok else b"not recorded")
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"ok"
    assert os.waitstatus_to_exitcode(status) == 0


def _python(script: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "FAULTLENS_EXPORTER": "none"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
