"""Process lifecycle against the real thing: a collector that accepts connections and never
answers, real signals, real forks, real subprocesses exiting.

What these tests pin down:

- every blocking call faultlens makes has a deadline it honours: ``flush(timeout)`` and
  ``shutdown(timeout)`` return in time and a process exit adds at most ``EXIT_TIMEOUT``;
  what is abandoned is counted;
- nothing faultlens does on an asyncio loop's thread blocks it;
- SIGTERM ends the process as it would have without faultlens (exit status, the
  application's own handler), also when it arrives while faultlens is shutting down;
- a crash is recorded as critical even when the application replaced ``sys.excepthook``
  or the exception passed through an instrumented function first;
- configure, shutdown, configure again: exports keep working and the exit is silent;
- a forked multiprocessing worker (which ends with ``os._exit``) still delivers its spans.
"""

from __future__ import annotations

import asyncio
import gc
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import faultlens
from faultlens import _setup
from faultlens.auto import install_excepthooks, uninstall_excepthooks
from faultlens.capture import dropped_counts
from faultlens.journal import read_records

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

PROTOCOLS = ["http/protobuf", "grpc"]
# Slack for a loaded machine (two cores shared by many test processes).
SLACK = 1.5


# -- the real things ---------------------------------------------------------------------------


class HungCollector:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from, never answered

    def close(self) -> None:
        self._stop = True
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def hung() -> Iterator[HungCollector]:
    server = HungCollector()
    yield server
    server.close()


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver that answers 200 and counts the requests per path."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CollectorHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reqs = self.server.requests  # type: ignore[attr-defined]
        reqs[self.path] = reqs.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.shutdown()
    server.server_close()


def child(script: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 60) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"child never printed {expected!r}: {proc.communicate()[1]}")


def journal_records(path: str) -> list[dict[str, object]]:
    return list(read_records(path))


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


def record_some(n: int) -> None:
    for i in range(n):
        faultlens.record_error(raised(ConnectionError(f"refused {i}")))


# -- 1. deadlines with a collector that never answers ------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_flush_returns_within_its_timeout_when_the_collector_never_answers(hung, protocol):
    faultlens.configure(service_name="svc", endpoint=hung.url, protocol=protocol)
    record_some(5)
    start = time.monotonic()
    ok = faultlens.flush(timeout=1)
    took = time.monotonic() - start
    assert ok is False, "nothing was delivered: flush says so"
    assert took < 1 + SLACK, f"flush(timeout=1) took {took:.1f}s"
    # A second flush while the first export is still stuck does not start another one.
    threads = threading.active_count()
    start = time.monotonic()
    assert faultlens.flush(timeout=0.5) is False
    assert time.monotonic() - start < 0.5 + SLACK
    assert threading.active_count() <= threads + 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_returns_within_its_timeout_and_counts_what_it_abandoned(hung, protocol):
    faultlens.configure(service_name="svc", endpoint=hung.url, protocol=protocol)
    record_some(5)
    before = dropped_counts().get("export_failed", 0)
    start = time.monotonic()
    faultlens.shutdown(timeout=1)
    took = time.monotonic() - start
    assert took < 1 + SLACK, f"shutdown(timeout=1) took {took:.1f}s"
    assert not faultlens.is_configured()
    # The five error spans never reached the collector: counted, not silently lost.
    assert dropped_counts().get("export_failed", 0) - before >= 5


def test_a_second_shutdown_waits_for_the_first_within_its_own_timeout(hung):
    faultlens.configure(service_name="svc", endpoint=hung.url, protocol="http/protobuf")
    record_some(3)
    first = threading.Thread(target=faultlens.shutdown, kwargs={"timeout": 2})
    first.start()
    time.sleep(0.2)
    assert _setup.is_stopping() and not faultlens.is_configured()
    start = time.monotonic()
    faultlens.shutdown(timeout=0.5)  # e.g. the SIGTERM handler while a thread shuts down
    took = time.monotonic() - start
    assert 0.4 <= took < 0.5 + SLACK, took
    first.join(2 + SLACK)
    assert not first.is_alive() and not _setup.is_stopping()


EXITING_APP = """
    import sys, faultlens
    faultlens.configure(service_name="svc", endpoint=sys.argv[1], protocol=sys.argv[2],
                        journal=True, journal_path=sys.argv[3])
    for i in range(20):
        try:
            raise ConnectionError(f"refused {i}")
        except ConnectionError as exc:
            faultlens.record_error(exc)
    print("done", flush=True)
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_process_exit_adds_at_most_exit_timeout_with_a_hung_collector(hung, protocol, tmp_path):
    # Default export timeout (10 s): before, the exit waited 30 s and more.
    proc = child(EXITING_APP, hung.url, protocol, str(tmp_path / "journal"))
    wait_for_line(proc, "done")
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - start
    assert proc.returncode == 0, err
    assert took < _setup.EXIT_TIMEOUT + SLACK, f"exit took {took:.1f}s"
    assert "abandoned" in err, "the user is told the collector did not answer"
    assert len(journal_records(str(tmp_path / "journal"))) == 20


NO_THREADS_AT_EXIT = (
    EXITING_APP
    + """
    import atexit, threading

    def no_new_threads():  # what Python 3.12+ does during interpreter shutdown
        def start(self):
            raise RuntimeError("can't create new thread at interpreter shutdown")

        threading.Thread.start = start

    atexit.register(no_new_threads)  # runs before faultlens's exit shutdown (LIFO)
"""
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_exit_stays_bounded_where_no_thread_can_start_at_shutdown(hung, protocol, tmp_path):
    proc = child(NO_THREADS_AT_EXIT, hung.url, protocol, str(tmp_path / "journal"))
    wait_for_line(proc, "done")
    start = time.monotonic()
    _, err = proc.communicate(timeout=90)
    took = time.monotonic() - start
    assert proc.returncode == 0, err
    assert took < _setup.EXIT_TIMEOUT + SLACK, f"exit took {took:.1f}s"
    assert len(journal_records(str(tmp_path / "journal"))) == 20


APP_WITH_SIGTERM_HANDLER = """
    import signal, sys, time, faultlens
    from faultlens.auto import install_sigterm_flush

    def graceful(signum, frame):
        print("app handler", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, graceful)
    faultlens.configure(service_name="svc", endpoint=sys.argv[1], protocol=sys.argv[2],
                        journal=True, journal_path=sys.argv[3])
    install_sigterm_flush()
    for i in range(20):
        try:
            raise ConnectionError(f"refused {i}")
        except ConnectionError as exc:
            faultlens.record_error(exc)
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sigterm_with_the_apps_own_handler_exits_promptly(hung, protocol, tmp_path):
    proc = child(APP_WITH_SIGTERM_HANDLER, hung.url, protocol, str(tmp_path / "journal"))
    wait_for_line(proc, "ready")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    took = time.monotonic() - start
    assert proc.returncode == 3, err  # the application's handler decided the exit code
    assert "app handler" in out
    assert took < _setup.EXIT_TIMEOUT + SLACK, f"exit took {took:.1f}s (was 50 s)"
    assert len(journal_records(str(tmp_path / "journal"))) == 20


APP_WITHOUT_HANDLER = """
    import sys, time, faultlens
    from faultlens.auto import install_sigterm_flush

    faultlens.configure(service_name="svc", endpoint=sys.argv[1], protocol=sys.argv[2],
                        journal=True, journal_path=sys.argv[3])
    install_sigterm_flush()
    for i in range(20):
        try:
            raise ConnectionError(f"refused {i}")
        except ConnectionError as exc:
            faultlens.record_error(exc)
    print("ready", flush=True)
    if sys.argv[4] == "running":
        time.sleep(60)
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sigterm_flushes_within_the_deadline_then_dies_by_sigterm(hung, protocol, tmp_path):
    proc = child(APP_WITHOUT_HANDLER, hung.url, protocol, str(tmp_path / "j"), "running")
    wait_for_line(proc, "ready")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    took = time.monotonic() - start
    assert proc.returncode == -signal.SIGTERM, err  # as without faultlens
    assert took < _setup.EXIT_TIMEOUT + SLACK, f"took {took:.1f}s"
    assert len(journal_records(str(tmp_path / "j"))) == 20


BUSY_APP = """
    import sys, faultlens
    from faultlens.auto import install_sigterm_flush

    faultlens.configure(service_name="svc", journal_path=sys.argv[1], rate_limit=0)
    install_sigterm_flush()
    i = 0
    while True:  # recording all the time: SIGTERM lands inside faultlens's own code
        try:
            raise ConnectionError(f"refused {i}")
        except ConnectionError as exc:
            faultlens.record_error(exc)
        faultlens.flush(timeout=1)
        i += 1
        if i == 10:
            print("ready", flush=True)
"""


def test_sigterm_landing_inside_faultlens_code_still_ends_the_process_promptly(tmp_path):
    proc = child(BUSY_APP, str(tmp_path / "j"))
    wait_for_line(proc, "ready")
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    took = time.monotonic() - start
    assert proc.returncode == -signal.SIGTERM, err
    assert took < _setup.EXIT_TIMEOUT + SLACK, f"took {took:.1f}s"
    assert len(journal_records(str(tmp_path / "j"))) >= 10


def test_sigterm_while_faultlens_is_shutting_down_at_exit(hung, tmp_path):
    # The main thread has finished; faultlens's exit shutdown is waiting on the collector
    # when SIGTERM arrives. Before, the handler saw "not configured" and killed the process
    # at once, in the middle of that shutdown. Now the shutdown finishes (within its
    # deadline), then the process dies by SIGTERM, as it would have.
    proc = child(APP_WITHOUT_HANDLER, hung.url, "http/protobuf", str(tmp_path / "j"), "exit")
    wait_for_line(proc, "ready")
    time.sleep(0.5)  # well inside the exit shutdown, which waits EXIT_TIMEOUT for the collector
    assert proc.poll() is None
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    took = time.monotonic() - start
    assert proc.returncode == -signal.SIGTERM, err
    assert "abandoned" in err, "the shutdown ran to its end before the process died"
    assert took < _setup.EXIT_TIMEOUT + SLACK
    assert len(journal_records(str(tmp_path / "j"))) == 20


# -- 2. the asyncio loop never waits for faultlens ---------------------------------------------


def _twenty_failing_callbacks() -> float:
    def callback(i: int) -> None:
        raise TimeoutError(f"heartbeat {i} missed")

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        for i in range(20):
            loop.call_soon(callback, i)
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        return time.perf_counter() - start

    return asyncio.run(main())


def _twenty_tasks_never_retrieved() -> float:
    async def fail(i: int) -> None:
        raise TimeoutError(f"job {i} timed out")

    async def main() -> float:
        start = time.perf_counter()
        tasks = [asyncio.ensure_future(fail(i)) for i in range(20)]
        await asyncio.sleep(0)
        # Nobody awaits them: "Task exception was never retrieved", reported to the loop's
        # exception handler, on the loop's thread, as each task is collected.
        del tasks
        gc.collect()
        await asyncio.sleep(0)
        return time.perf_counter() - start

    return asyncio.run(main())


SCENARIOS = {
    "failing callbacks": _twenty_failing_callbacks,
    "never-retrieved tasks": _twenty_tasks_never_retrieved,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("mode", ["hung collector", "journal only"])
def test_nothing_faultlens_does_stalls_the_event_loop(hung, tmp_path, mode, scenario, caplog):
    twenty_failures = SCENARIOS[scenario]
    baseline = twenty_failures()  # without faultlens
    if mode == "hung collector":
        faultlens.configure(service_name="svc", endpoint=hung.url, protocol="http/protobuf")
    else:
        faultlens.configure(service_name="svc", journal_path=str(tmp_path / "j"))
    install_excepthooks()
    try:
        took = twenty_failures()
    finally:
        uninstall_excepthooks()
    # Before: 4 s per failure with a hung collector, ~25 ms per failure journal-only.
    assert took < 10 * baseline + 0.25, f"{took:.3f}s for 20 failures vs {baseline:.3f}s"
    if mode == "journal only":
        faultlens.shutdown()
        records = journal_records(str(tmp_path / "j"))
        assert len(records) == 20
        assert all(r["context"]["uncaught"] is True for r in records)


def test_the_handed_off_flush_delivers_soon_and_batches_a_storm(collector):
    faultlens.configure(service_name="svc", endpoint=collector.url, protocol="http/protobuf")

    def callback(i: int) -> None:
        raise TimeoutError(f"heartbeat {i} missed")

    async def storm() -> None:
        loop = asyncio.get_running_loop()
        for i in range(200):  # 200 failures over about a second
            loop.call_soon(callback, i)
            await asyncio.sleep(0.005)

    install_excepthooks()
    try:
        asyncio.run(storm())
    finally:
        uninstall_excepthooks()
    deadline = time.monotonic() + 3  # well before the batch processor's 5 s schedule
    while collector.requests.get("/v1/traces", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.2)
    sent = collector.requests.get("/v1/traces", 0)
    # Delivered without waiting for the schedule, in a few rounds (at most one a second),
    # not one export per failure.
    assert 1 <= sent <= 12, sent


# -- 3. fork: a multiprocessing worker ends with os._exit --------------------------------------


def _worker_fails(i: int) -> int:
    try:
        raise ConnectionError(f"worker {i} refused")
    except ConnectionError as exc:
        faultlens.record_error(exc)
    return i


def test_a_forked_pool_worker_delivers_its_spans_before_it_exits(collector):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    faultlens.configure(service_name="svc", endpoint=collector.url, protocol="http/protobuf")
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        assert sorted(pool.map(_worker_fails, range(4))) == [0, 1, 2, 3]
    # The workers' batch processors had not exported (5 s schedule): the exit of each
    # worker (os._exit, no atexit) flushed them.
    assert collector.requests.get("/v1/traces", 0) >= 1


def _configure_worker(url: str) -> None:
    faultlens.configure(service_name="worker", endpoint=url, protocol="http/protobuf")


def test_a_pool_worker_that_configures_itself_delivers_its_spans_before_it_exits(collector):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        2, mp_context=ctx, initializer=_configure_worker, initargs=(collector.url,)
    ) as pool:
        assert sorted(pool.map(_worker_fails, range(4))) == [0, 1, 2, 3]
    assert collector.requests.get("/v1/traces", 0) >= 1


FORK_WHILE_LOCKED = """
    import os, threading, faultlens
    from faultlens import _setup, resources

    faultlens.configure(service_name="svc", journal=False)
    resources.snapshot()  # in use: a thread may be refreshing it when the fork comes
    held, release = threading.Event(), threading.Event()

    def hold():
        with _setup._lock, resources._lock:
            held.set()
            release.wait()

    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        # The thread holding both locks does not exist here.
        snap = resources.snapshot(max_age=0)
        faultlens.shutdown(timeout=2)
        faultlens.configure(service_name="child", journal=False)
        os._exit(0 if snap else 1)
    release.set()
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_a_fork_while_faultlens_locks_are_held_does_not_deadlock_the_child():
    proc = child(FORK_WHILE_LOCKED)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "child 0" in out, err


FORK_HOOK_SPY = """
    import os
    calls = []
    real = os.register_at_fork

    def spy(**hooks):
        calls.extend(str(getattr(fn, "__module__", "?")) for fn in hooks.values())
        real(**hooks)

    os.register_at_fork = spy
    import faultlens
    from faultlens import resources
    print("import", sorted(set(calls)))
    faultlens.configure(service_name="svc", journal=False)
    resources.snapshot()
    print("use", sorted(set(calls)))
"""


def test_fork_hooks_are_registered_on_first_use_not_at_import():
    proc = child(FORK_HOOK_SPY)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    at_import, in_use = out.splitlines()
    for module in ("faultlens._setup", "faultlens.resources"):
        assert module not in at_import
        assert module in in_use


# -- 4/5. crashes ------------------------------------------------------------------------------


CRASHING_APP = """
    import sys, faultlens
    from faultlens.auto import install_excepthooks

    faultlens.configure(service_name="svc", journal_path=sys.argv[1])
    install_excepthooks()
    hook = sys.argv[2]
    if hook == "rich":
        import rich.traceback
        rich.traceback.install()
    elif hook == "swallowing":
        sys.excepthook = lambda *exc_info: print("the app's hook", file=sys.stderr)
    elif hook == "chaining":
        previous = sys.excepthook
        def chaining(*exc_info):
            print("the app's hook", file=sys.stderr)
            previous(*exc_info)
        sys.excepthook = chaining

    @faultlens.instrument
    def load(path):
        raise FileNotFoundError(path)

    if sys.argv[3] == "instrumented":
        load("settings.yaml")
    raise FileNotFoundError("settings.yaml")
"""

HOOKS = ["faultlens only", "swallowing", "chaining", "rich"]


@pytest.mark.parametrize("hook", HOOKS)
def test_a_crash_is_recorded_once_as_critical_whatever_excepthook_the_app_installs(tmp_path, hook):
    if hook == "rich":
        pytest.importorskip("rich.traceback")
    proc = child(CRASHING_APP, str(tmp_path / "j"), hook, "plain")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err  # the exit status of a crash, unchanged
    records = journal_records(str(tmp_path / "j"))
    assert [(r["code"], r["severity"], r["context"].get("uncaught")) for r in records] == [
        ("VAL_FILE_NOT_FOUND", "critical", True)
    ], err


@pytest.mark.parametrize("hook", ["faultlens only", "swallowing"])
def test_a_crash_through_an_instrumented_function_adds_a_critical_crash_record(tmp_path, hook):
    proc = child(CRASHING_APP, str(tmp_path / "j"), hook, "instrumented")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    records = journal_records(str(tmp_path / "j"))
    # The failure where it escaped load() keeps its catalog severity; the crash that ended
    # the process is a record of its own, critical and uncaught.
    assert [(r["severity"], r["context"].get("uncaught")) for r in records] == [
        ("medium", None),
        ("critical", True),
    ], err
    assert records[0]["fingerprint"] == records[1]["fingerprint"]


def test_a_crash_through_an_instrumented_function_counts_as_critical(monkeypatch):
    monkeypatch.setattr("faultlens.auto._uncaught._prev_sys", lambda *a: None)

    @faultlens.instrument
    def load(path: str) -> None:
        raise FileNotFoundError(path)

    install_excepthooks()
    try:
        with faultlens.testing.capture() as cap:
            try:
                load("settings.yaml")
            except FileNotFoundError as exc:
                sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        uninstall_excepthooks()
    counts = {p.attributes["severity"]: p.value for p in cap.metric_points("faultlens.errors")}
    assert counts == {"medium": 1, "critical": 1}
    assert [e.attributes.get("faultlens.context.uncaught") for e in cap.errors] == [None, True]


def test_a_crash_is_never_rate_limited_away(monkeypatch, tmp_path):
    monkeypatch.setattr("faultlens.auto._uncaught._prev_sys", lambda *a: None)
    faultlens.configure(service_name="svc", journal_path=str(tmp_path / "j"), rate_limit=1)

    @faultlens.instrument
    def load(path: str) -> None:
        raise FileNotFoundError(path)

    for _ in range(3):  # the same error again and again: one in full, the rest suppressed
        with pytest.raises(FileNotFoundError):
            load("settings.yaml")
    install_excepthooks()
    try:
        try:
            load("settings.yaml")
        except FileNotFoundError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        uninstall_excepthooks()
    faultlens.shutdown()
    crashes = [
        r for r in journal_records(str(tmp_path / "j")) if r["context"].get("uncaught") is True
    ]
    assert [r["severity"] for r in crashes] == ["critical"]


# -- 6. configure, shutdown, configure ---------------------------------------------------------

RECONFIGURING_APP = """
    import sys, faultlens
    kwargs = dict(service_name="svc", journal=False)
    if len(sys.argv) > 1:
        kwargs.update(endpoint=sys.argv[1], protocol="http/protobuf")
    faultlens.configure(**kwargs)
    faultlens.shutdown()
    faultlens.configure(**kwargs)
    try:
        raise ConnectionError("after reconfiguring")
    except ConnectionError as exc:
        faultlens.record_error(exc)
"""


def test_configure_shutdown_configure_then_exit_is_silent_and_still_exports(collector):
    proc = child(RECONFIGURING_APP, collector.url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert err == "" and out == "", err  # no "shutdown can only be called once"
    # The providers rebuilt by the second configure() exported at exit.
    assert collector.requests.get("/v1/traces", 0) >= 1
    assert collector.requests.get("/v1/metrics", 0) >= 1


APP_TRACER_ACROSS_RECONFIGURE = """
    import sys, faultlens
    from opentelemetry import trace

    kwargs = dict(service_name="svc", journal=False, endpoint=sys.argv[1],
                  protocol="http/protobuf")
    faultlens.configure(**kwargs)
    tracer = trace.get_tracer("app")  # the application's own tracer, held across
    faultlens.shutdown()
    faultlens.configure(**kwargs)
    with tracer.start_as_current_span("request"):
        pass
"""


def test_the_apps_tracers_export_again_after_configure_shutdown_configure(collector):
    proc = child(APP_TRACER_ACROSS_RECONFIGURE, collector.url)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")
    # The global tracer provider is set once: the one faultlens set first is re-armed
    # instead of being left shut down under the application's tracers.
    assert collector.requests.get("/v1/traces", 0) == 1


def test_configure_shutdown_configure_without_a_collector_is_silent():
    proc = child(RECONFIGURING_APP)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, "", "")


def test_journal_records_of_a_reconfigured_process_survive_its_exit(tmp_path):
    script = """
        import sys, faultlens
        faultlens.configure(service_name="svc", journal_path=sys.argv[1])
        faultlens.shutdown()
        faultlens.configure(service_name="svc", journal_path=sys.argv[1])
        for i in range(3):
            try:
                raise ConnectionError(f"refused {i}")
            except ConnectionError as exc:
                faultlens.record_error(exc)
    """
    proc = child(script, str(tmp_path / "j"))
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")
    assert len(journal_records(str(tmp_path / "j"))) == 3
    json.dumps(journal_records(str(tmp_path / "j")))  # plain data


def test_exit_hooks_run_before_the_exit_shutdown(tmp_path: Path) -> None:
    script = """
        import sys, faultlens
        from faultlens import _setup
        faultlens.configure(service_name="svc", journal_path=sys.argv[1])

        def late_error():
            try:
                raise ConnectionError("while exiting")
            except ConnectionError as exc:
                faultlens.record_error(exc)

        _setup.add_exit_hook(late_error)
    """
    proc = child(script, str(tmp_path / "j"))
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")
    assert [r["message"] for r in journal_records(str(tmp_path / "j"))] == ["while exiting"]
