"""Celery on a real Redis with a real prefork worker (2 pool processes), under faultlens.

A tasks module with known outcomes, a producer that sends N tasks, and the worker started
as a user would start it: ``faultlens run -- celery -A itasks worker --pool=prefork
--concurrency=2`` (zero code) or with ``faultlens.configure()`` + ``install()`` in the
tasks module. Then: exact counts in the journal (every process writes its own file), the
same counts in Prometheus through the collector, one exception event per failed task in
Jaeger on the worker's span in the producer's trace, retries never counted as errors, and
nothing lost when the worker gets SIGTERM while tasks run (warm shutdown).

Redis is the stack's (``scripts/stack.sh start redis``; ``make stack-up`` starts it too).
Missing, it fails under CI=true and skips elsewhere (tests/support/ci.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.ci import missing_component

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_DB = 11  # the tests' own database on the stack's Redis, flushed per test

TASKS = """
import logging
import os
import time

from celery import Celery, signals
from celery.exceptions import Ignore

import faultlens

app = Celery("itasks", broker=os.environ["ITEST_BROKER"], backend=os.environ["ITEST_BROKER"])
app.conf.update(
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ["ITEST_QUEUE"],
    result_expires=600,
)

if os.environ.get("ITEST_EXPLICIT") == "1":
    # The documented code path: configure in the worker's main process (before the pool
    # forks: fork-safe), then install the integration.
    from faultlens.integrations import celery as faultlens_celery

    faultlens.configure()
    faultlens_celery.install()

    @signals.worker_process_init.connect
    def _configure_in_child(**kwargs):
        # What OpenTelemetry's Celery docs ask for: configure again after the fork. The
        # same options again change nothing (no second set of exporter threads).
        faultlens.configure()


@signals.after_setup_logger.connect
def _faultlens_logs(logger, **kwargs):
    # Celery replaces the root logger's handlers at start: add the handler after it did.
    logger.addHandler(faultlens.LoggingHandler())


class NeedsTwoArgs(Exception):
    def __init__(self, job, why):
        super().__init__(f"job {job}: {why}")


@app.task(name="it.ok")
def ok(x):
    return x + 1


@app.task(name="it.invalid")
def invalid(n):
    raise ValueError(f"bad value {n}")


@app.task(name="it.flaky", bind=True, max_retries=3)
def flaky(self, key):
    if self.request.retries < 1:
        raise self.retry(exc=ConnectionError(f"registry {key} down"), countdown=0.2)
    return "recovered"


@app.task(
    name="it.exhaust",
    bind=True,
    autoretry_for=(ConnectionError,),
    max_retries=1,
    retry_backoff=False,
    default_retry_delay=0.2,
)
def exhaust(self, key):
    raise ConnectionError(f"upstream {key} refused")


@app.task(name="it.expected", throws=(KeyError,))
def expected(key):
    raise KeyError(key)


@app.task(name="it.ignored")
def ignored():
    raise Ignore()


@app.task(name="it.unpicklable")
def unpicklable(job):
    raise NeedsTwoArgs(job, "no workspace")


@app.task(name="it.crash")
def crash():
    os._exit(3)  # the pool process dies under the task: the parent sees WorkerLostError


@app.task(name="it.hang", time_limit=1.5)
def hang():
    time.sleep(30)  # killed by the hard time limit


@app.task(name="it.slow_soft", soft_time_limit=0.5)
def slow_soft():
    time.sleep(5)  # SoftTimeLimitExceeded is raised in here


@app.task(name="it.threads")
def threads():
    import threading

    return sorted(t.name for t in threading.enumerate())


@app.task(name="it.slow_fail")
def slow_fail(seconds, n):
    time.sleep(seconds)
    raise ValueError(f"slow bad value {n}")
"""

PRODUCER = """
import json
import os
import sys

from celery import Celery

import faultlens
from faultlens.integrations import celery as faultlens_celery

faultlens.configure()
faultlens_celery.install()
app = Celery("producer", broker=os.environ["ITEST_BROKER"], backend=os.environ["ITEST_BROKER"])
app.conf.task_default_queue = os.environ["ITEST_QUEUE"]
sent = []
for name, args in json.loads(sys.argv[1]):
    result = app.send_task(name, args=args)
    sent.append({"id": result.id, "name": name})
faultlens.flush(10)
print(json.dumps(sent))
"""

# What the batch below must produce, per task name.
BATCH: list[tuple[str, list[Any]]] = (
    [("it.ok", [i]) for i in range(4)]
    + [("it.invalid", [i]) for i in range(3)]
    + [("it.flaky", [i]) for i in range(2)]
    + [("it.exhaust", [i]) for i in range(2)]
    + [("it.expected", ["k"]), ("it.ignored", []), ("it.unpicklable", [7])]
)
ERRORS = Counter(
    {
        ("it.invalid", "VAL_INVALID_VALUE"): 3,
        ("it.exhaust", "NET_CONNECTION_FAILED"): 2,
        ("it.unpicklable", "SYS_UNKNOWN_ERROR"): 1,
    }
)
OUTCOMES = Counter(
    {
        ("it.ok", "success_first_attempt"): 4,
        ("it.invalid", "non_retryable"): 3,
        ("it.flaky", "success_after_retry"): 2,
        ("it.exhaust", "exhausted"): 2,
        ("it.expected", "non_retryable"): 1,
        ("it.unpicklable", "non_retryable"): 1,
    }
)
# One per failed attempt: flaky fails once each, exhaust twice each (max_retries=1),
# invalid/expected/unpicklable once each.
ATTEMPTS = Counter(
    {"it.flaky": 2, "it.exhaust": 4, "it.invalid": 3, "it.expected": 1, "it.unpicklable": 1}
)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis(stack) -> str:
    found = subprocess.run(
        [str(REPO / "scripts" / "stack.sh"), "bin", "redis"],
        env=stack.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        missing_component(
            f"redis-server is not installed ({found.stdout.strip()}); run `make stack-deps`"
        )
    stack.sh("start", "redis")  # no-op when `stack.sh up` started it
    return f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.fixture
def broker(redis: str) -> Iterator[str]:
    import redis as redis_client

    client = redis_client.Redis.from_url(redis)
    client.flushdb()
    yield redis
    client.flushdb()
    client.close()


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path
    journal: Path
    service: str

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if " ready." in text:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the worker exited ({self.proc.returncode}):\n{text}")
            time.sleep(0.2)
        raise AssertionError(f"the worker was not ready in {timeout}s:\n{self.log.read_text()}")

    def warm_shutdown(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(
                f"no warm shutdown within {timeout}s:\n{self.log.read_text()}"
            ) from None


def base_env(tmp_path: Path, broker: str, queue: str, service: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(
        ITEST_BROKER=broker,
        ITEST_QUEUE=queue,
        PYTHONPATH=str(tmp_path),
        FAULTLENS_SERVICE_NAME=service,
        FAULTLENS_JOURNAL="true",
        FAULTLENS_JOURNAL_PATH=str(tmp_path / "journal"),
        FAULTLENS_EXPORTER="none",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def otlp(env: dict[str, str], stack) -> dict[str, str]:
    return env | {
        "FAULTLENS_EXPORTER": "otlp",
        "FAULTLENS_ENDPOINT": stack.otlp_grpc,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "itasks.py").write_text(TASKS)
    workers: list[Worker] = []

    def start(
        env: dict[str, str],
        *,
        zero_code: bool = True,
        launcher: list[str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> Worker:
        argv = [
            str(BIN / "celery"),
            "-A",
            "itasks",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"itest-{uuid.uuid4().hex[:6]}@%h",
            *extra,
        ]
        if launcher is not None:
            argv = [*launcher, *argv]
        elif zero_code:
            argv = [str(BIN / "faultlens"), "run", "--", *argv]
        else:
            env = env | {"ITEST_EXPLICIT": "1"}
        log = tmp_path / f"worker-{len(workers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        worker = Worker(proc, log, tmp_path / "journal", env["FAULTLENS_SERVICE_NAME"])
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        if worker.proc.poll() is None:
            os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait()


def produce(tmp_path: Path, env: dict[str, str], batch: list[tuple[str, list[Any]]]) -> list[dict]:
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(batch)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def wait_done(broker: str, sent: list[dict], timeout: float = 90) -> dict[str, str]:
    """Each task's final state from the result backend (Ignore leaves none: PENDING)."""
    from celery import Celery

    app = Celery("observer", broker=broker, backend=broker)
    final = {"SUCCESS", "FAILURE"}
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        states = {t["id"]: app.AsyncResult(t["id"]).state for t in sent}
        waiting = [
            t
            for t in sent
            if t["name"] not in ("it.ignored", "it.crash") and states[t["id"]] not in final
        ]
        if not waiting:
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks not finished in {timeout}s: {waiting}; states {states}")
        time.sleep(0.3)


def journal_errors(journal: Path) -> list[dict[str, Any]]:
    """Every error occurrence in the journal (rate-limited tallies counted in full)."""
    out: list[dict[str, Any]] = []
    for path in sorted(journal.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            kind = entry.get("kind", "error")
            if kind == "error":
                out.extend([entry] * (1 + int(entry.get("suppressed", 0))))
            elif kind == "suppressed":
                out.extend([entry] * int(entry["count"]))
    return out


def by_task_and_code(errors: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter(
        ((e.get("context") or {}).get("celery.task_name", "?"), e["code"]) for e in errors
    )


# -- the journal ------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_code", [True, False], ids=["faultlens-run", "configure-install"])
def test_a_prefork_worker_records_each_failure_once_and_no_retry(
    tmp_path, broker, start_worker, zero_code
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    env = base_env(tmp_path, broker, f"q-{service}", service)
    worker = start_worker(env, zero_code=zero_code)

    sent = produce(tmp_path, env | {"FAULTLENS_SERVICE_NAME": f"{service}-producer"}, BATCH)
    states = wait_done(broker, sent)
    assert worker.warm_shutdown() == 0

    assert Counter(states[t["id"]] for t in sent if t["name"] == "it.ok") == {"SUCCESS": 4}
    errors = [e for e in journal_errors(worker.journal) if e.get("service") == service]
    assert by_task_and_code(errors) == ERRORS
    ids = {t["id"] for t in sent if t["name"] in ("it.invalid", "it.exhaust", "it.unpicklable")}
    assert {e["context"]["celery.task_id"] for e in errors} == ids
    # the retried attempts were never errors; the exhausted ones were, after their retry
    assert {
        e["context"]["celery.retries"]
        for e in errors
        if e["context"]["celery.task_name"] == "it.exhaust"
    } == {1}
    # the failures happened in the two pool processes, not in the worker's main process
    assert all(e["pid"] != worker.proc.pid for e in errors)
    (unpicklable,) = [e for e in errors if e["context"]["celery.task_name"] == "it.unpicklable"]
    assert unpicklable["exception_type"].endswith("NeedsTwoArgs")


@pytest.mark.parametrize("zero_code", [True, False], ids=["faultlens-run", "configure-install"])
def test_a_pool_process_that_dies_under_a_task_is_recorded_once_as_critical(
    tmp_path, broker, start_worker, zero_code
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    env = base_env(tmp_path, broker, f"q-{service}", service)
    worker = start_worker(env, zero_code=zero_code)

    sent = produce(tmp_path, env, [("it.crash", []), ("it.invalid", [1])])
    crash_id = sent[0]["id"]
    deadline = time.monotonic() + 60
    while True:
        errors = [e for e in journal_errors(worker.journal) if e.get("service") == service]
        if len(errors) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert worker.warm_shutdown() == 0

    errors = [e for e in journal_errors(worker.journal) if e.get("service") == service]
    lost = [e for e in errors if e["context"].get("celery.task_id") == crash_id]
    assert len(lost) == 1, errors  # recorded by the main process, not again from its log line
    assert lost[0]["exception_type"].endswith("WorkerLostError")
    assert lost[0]["code"] == "EXE_WORKER_LOST"
    assert lost[0]["severity"] == "critical"
    assert lost[0]["pid"] == worker.proc.pid
    assert by_task_and_code(errors)[("it.invalid", "VAL_INVALID_VALUE")] == 1


@pytest.mark.parametrize("zero_code", [True, False], ids=["faultlens-run", "configure-install"])
def test_time_limits_are_timeouts_recorded_once_per_task(tmp_path, broker, start_worker, zero_code):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    env = base_env(tmp_path, broker, f"q-{service}", service)
    worker = start_worker(env, zero_code=zero_code)

    sent = produce(tmp_path, env, [("it.hang", []), ("it.slow_soft", [])])
    states = wait_done(broker, sent)
    time.sleep(2)  # the killed pool process is replaced; anything late would show by now
    assert worker.warm_shutdown() == 0

    assert [states[t["id"]] for t in sent] == ["FAILURE", "FAILURE"]
    errors = [e for e in journal_errors(worker.journal) if e.get("service") == service]
    by_task = Counter(e["context"]["celery.task_id"] for e in errors)
    assert by_task == {sent[0]["id"]: 1, sent[1]["id"]: 1}, [
        (e["exception_type"], e["pid"], e["span_name"], e["message"]) for e in errors
    ]  # one record per task
    assert {e["code"] for e in errors} == {"EXE_TIMEOUT"}
    (hard,) = [e for e in errors if e["context"]["celery.task_id"] == sent[0]["id"]]
    assert hard["exception_type"].endswith("TimeLimitExceeded")
    assert hard["pid"] == worker.proc.pid  # the main process enforces the hard limit


# -- the stack: Prometheus through the collector, Jaeger --------------------------------------


def by_labels(results: list[dict[str, Any]], *names: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(r["metric"].get(n, "") for n in names): float(r["value"][1])
        for r in results
        if float(r["value"][1]) != 0
    }


def jaeger_failures(traces: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """task id -> the `exception` events in its trace, each with the span it is on."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in traces:
        spans = {s["spanID"]: s for s in t["spans"]}
        roots = [s for s in t["spans"] if s["operationName"].startswith("apply_async/")]
        tags = {
            tag["key"]: tag["value"]
            for s in roots
            if not s.get("references")
            for tag in s.get("tags", [])
        }
        task_id = tags.get("messaging.message.id")
        if task_id is None:
            continue
        events = out.setdefault(task_id, [])
        for s in t["spans"]:
            for log in s.get("logs", []):
                fields = {f["key"]: f["value"] for f in log["fields"]}
                if fields.get("event") == "exception":
                    parents = [spans.get(r["spanID"]) for r in s.get("references", [])]
                    events.append(
                        {
                            "span": s["operationName"],
                            "service": t["processes"][s["processID"]]["serviceName"],
                            "parent": parents[0]["operationName"]
                            if parents and parents[0]
                            else None,
                            "code": fields.get("faultlens.error.code"),
                            "task_id": fields.get("faultlens.context.celery.task_id"),
                        }
                    )
    return out


@pytest.mark.parametrize("zero_code", [True, False], ids=["faultlens-run", "configure-install"])
def test_on_the_stack_prometheus_counts_exactly_and_jaeger_has_one_event_per_failed_task(
    tmp_path, broker, start_worker, stack, zero_code
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    producer = f"{service}-producer"
    env = otlp(base_env(tmp_path, broker, f"q-{service}", service), stack)
    worker = start_worker(env, zero_code=zero_code)

    sent = produce(tmp_path, env | {"FAULTLENS_SERVICE_NAME": producer}, BATCH)
    wait_done(broker, sent)
    assert worker.warm_shutdown() == 0

    want_errors = Counter()
    for (_, code), n in ERRORS.items():
        want_errors[(code,)] += n
    stack.prom_wait(
        f'sum by (code) (faultlens_errors_total{{job="{service}"}})',
        until=lambda r: by_labels(r, "code") == dict(want_errors),
        timeout=60,
    )
    stack.prom_wait(
        f'sum by (operation, outcome) (faultlens_retry_calls_total{{job="{service}"}})',
        until=lambda r: by_labels(r, "operation", "outcome") == dict(OUTCOMES),
        timeout=60,
    )
    stack.prom_wait(
        f'sum by (operation) (faultlens_retry_attempts_total{{job="{service}"}})',
        until=lambda r: by_labels(r, "operation") == {(k,): v for k, v in ATTEMPTS.items()},
        timeout=60,
    )

    failing = {name for name, _ in ERRORS}
    failed = {t["id"]: t["name"] for t in sent if t["name"] in failing}
    deadline = time.monotonic() + 60
    while True:
        found = jaeger_failures(stack.find_traces(producer))
        if all(found.get(i) for i in failed) and len(found) >= len(sent):
            break
        assert time.monotonic() < deadline, f"Jaeger has {found} for {failed}"
        time.sleep(1)
    for task in sent:
        events = found.get(task["id"], [])
        if task["id"] not in failed:
            assert events == [], task  # retried, ignored, expected: no exception event
            continue
        (event,) = events  # one per failed task
        assert event["span"] == f"run/{task['name']}"
        assert event["service"] == service
        assert event["parent"] is not None and event["parent"].startswith("apply_async/")
        assert event["task_id"] == task["id"]
        assert (task["name"], event["code"]) in ERRORS


def test_a_running_task_terminated_by_revoke_is_aborted_not_an_error(
    tmp_path, broker, start_worker, stack
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    env = otlp(base_env(tmp_path, broker, f"q-{service}", service), stack)
    worker = start_worker(env, zero_code=False)

    (task,) = produce(tmp_path, env, [("it.slow_fail", [30, 0])])
    from celery import Celery

    control = Celery("control", broker=broker, backend=broker)
    deadline = time.monotonic() + 30
    while (
        "Task it.slow_fail[" not in worker.log.read_text()
        or "received" not in worker.log.read_text()
    ):
        assert time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.2)
    time.sleep(1)  # running in its pool process now
    control.control.revoke(task["id"], terminate=True)
    deadline = time.monotonic() + 30
    while "Terminating" not in worker.log.read_text():
        assert time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.2)
    assert worker.warm_shutdown() == 0

    # Counted once, by the main process (a pool process forked later does not report it
    # again: test_a_pool_process_forked_after_a_lost_worker_does_not_count_it_again); only
    # the outcomes are checked here: the run is aborted, and nothing else.
    results = stack.prom_wait(
        f'sum by (operation, outcome) (faultlens_retry_calls_total{{job="{service}"}})',
        until=bool,
        timeout=60,
    )
    assert set(by_labels(results, "operation", "outcome")) == {("it.slow_fail", "aborted")}
    assert [e for e in journal_errors(worker.journal) if e.get("service") == service] == []


# -- warm shutdown ------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_code", [True, False], ids=["faultlens-run", "configure-install"])
def test_sigterm_while_tasks_run_loses_nothing_recorded(
    tmp_path, broker, start_worker, stack, zero_code
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    producer = f"{service}-producer"
    env = otlp(base_env(tmp_path, broker, f"q-{service}", service), stack)
    # The SDK's default batch delay (5 s): a span still queued when its pool process exits
    # is only exported if faultlens flushes on the way out.
    env.pop("OTEL_BSP_SCHEDULE_DELAY")
    worker = start_worker(env, zero_code=zero_code)

    batch = [("it.slow_fail", [0.3, 0]), ("it.slow_fail", [0.3, 1])]
    batch += [("it.slow_fail", [4, 2]), ("it.slow_fail", [4, 3])]
    sent = produce(tmp_path, env | {"FAULTLENS_SERVICE_NAME": producer}, batch)
    deadline = time.monotonic() + 60
    while len([e for e in journal_errors(worker.journal) if e.get("service") == service]) < 2:
        assert time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.1)
    time.sleep(1.0)  # the two slow tasks have started (4 s each)
    os.kill(worker.proc.pid, signal.SIGTERM)  # warm shutdown: running tasks finish first
    assert worker.proc.wait(60) == 0
    assert "slow bad value 3" in worker.log.read_text()  # the in-flight tasks did finish

    errors = [e for e in journal_errors(worker.journal) if e.get("service") == service]
    assert sorted(e["context"]["celery.task_id"] for e in errors) == sorted(t["id"] for t in sent)
    # ... and each was exported before its pool process exited (within the export timeout)
    deadline = time.monotonic() + 30
    while True:
        found = jaeger_failures(stack.find_traces(producer))
        if all(len(found.get(t["id"], [])) == 1 for t in sent):
            break
        assert time.monotonic() < deadline, found
        time.sleep(1)


# -- one set of exporter threads per pool process ----------------------------------------------


@pytest.mark.parametrize("zero_code", [True, False], ids=["faultlens-run", "configure-install"])
def test_each_pool_process_has_one_set_of_exporter_threads(
    tmp_path, broker, start_worker, stack, zero_code
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    env = otlp(base_env(tmp_path, broker, f"q-{service}", service), stack)
    worker = start_worker(env, zero_code=zero_code)

    sent = produce(tmp_path, env, [("it.threads", []) for _ in range(6)])
    wait_done(broker, sent)
    from celery import Celery

    observer = Celery("observer", broker=broker, backend=broker)
    for task in sent:
        names = observer.AsyncResult(task["id"]).get(timeout=30)
        assert names.count("OtelBatchSpanRecordProcessor") == 1, names
        assert names.count("OtelPeriodicExportingMetricReader") == 1, names
    assert worker.warm_shutdown() == 0


# -- opentelemetry-instrument ------------------------------------------------------------------


def test_under_opentelemetry_instrument_each_failure_is_one_classified_event(
    tmp_path, broker, start_worker, stack
):
    # The OTel distro sets the providers and instruments Celery itself (the contrib's entry
    # point); faultlens's instrumentor installs the integration, which replaces the contrib's
    # own unclassified event. faultlens is not configured: the pool processes flush the
    # distro's providers when they exit.
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    producer = f"{service}-producer"
    env = base_env(tmp_path, broker, f"q-{service}", service)
    env |= {
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_grpc,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "FAULTLENS_AUTO_MODULES": "itasks",
    }
    launcher = [
        str(BIN / "opentelemetry-instrument"),
        "--traces_exporter", "otlp",
        "--metrics_exporter", "otlp",
        "--logs_exporter", "none",
    ]  # fmt: skip
    worker = start_worker(env, launcher=launcher)

    sent = produce(tmp_path, otlp(env, stack) | {"FAULTLENS_SERVICE_NAME": producer}, BATCH)
    wait_done(broker, sent)
    assert worker.warm_shutdown() == 0

    failing = {name for name, _ in ERRORS}
    failed = {t["id"] for t in sent if t["name"] in failing}
    deadline = time.monotonic() + 60
    while True:
        found = jaeger_failures(stack.find_traces(producer))
        if all(found.get(i) for i in failed):
            break
        assert time.monotonic() < deadline, f"Jaeger has {found} for {failed}"
        time.sleep(1)
    for task in sent:
        events = found.get(task["id"], [])
        assert len(events) == (1 if task["id"] in failed else 0), (task, events)
        for event in events:
            assert event["service"] == service
            assert event["code"] is not None  # classified: faultlens's event, not the contrib's
    want = Counter()
    for (_, code), n in ERRORS.items():
        want[(code,)] += n
    stack.prom_wait(
        f'sum by (code) (faultlens_errors_total{{job="{service}"}})',
        until=lambda r: by_labels(r, "code") == dict(want),
        timeout=60,
    )


# -- fork: a pool process is a new instance ---------------------------------------------------


# A pool process forked after the main process counted something reports only its own
# counts (faultlens's after-fork renewal of the providers it owns and of its tallies;
# tests/reliability/test_hardening_fork_metrics.py covers the class without Celery).
def test_a_pool_process_forked_after_a_lost_worker_does_not_count_it_again(
    tmp_path, broker, start_worker, stack
):
    service = f"itest-celery-{uuid.uuid4().hex[:8]}"
    env = otlp(base_env(tmp_path, broker, f"q-{service}", service), stack)
    # every pool process ends after one task: each later task runs in a process forked
    # after the main process recorded the lost worker
    worker = start_worker(env, zero_code=False, extra=("--max-tasks-per-child=1",))

    produce(tmp_path, env, [("it.crash", [])])
    deadline = time.monotonic() + 60
    while not [e for e in journal_errors(worker.journal) if e["code"] == "EXE_WORKER_LOST"]:
        assert time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.2)
    sent = produce(tmp_path, env, [("it.ok", [i]) for i in range(4)])
    wait_done(broker, sent)
    assert worker.warm_shutdown() == 0

    expr = f'sum(faultlens_errors_total{{job="{service}", code="EXE_WORKER_LOST"}})'
    try:
        stack.prom_wait(expr, until=bool, timeout=60)
    except AssertionError as exc:  # not the bug this test is about: fail, not xfail
        raise RuntimeError(f"the lost worker never reached Prometheus: {exc}") from None
    time.sleep(3 * stack.interval)  # every process's last export has been scraped
    assert float(stack.prom_query(expr)[0]["value"][1]) == 1
