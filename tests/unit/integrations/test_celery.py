"""faultlens.integrations.celery: what a Celery task run becomes.

Eager mode (``task_always_eager``) runs Celery's real tracer (signals, retry, the log line
about a failure) in the test's thread; ``real_worker`` runs a real Celery worker consumer
on the in-memory transport, so producer and worker spans, the message headers that carry
the trace and Celery's ``Request`` path are the real ones. Prefork pools on a real Redis
are in tests/integration/test_celery_worker.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

pytest.importorskip("celery")
pytest.importorskip("opentelemetry.instrumentation.celery")

from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.exceptions import Ignore, Reject

import faultlens
from faultlens.integrations import celery as faultlens_celery

CONTRACT = (
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "faultlens.error.code",
    "faultlens.error.category",
    "faultlens.error.severity",
    "faultlens.error.retryable",
    "faultlens.error.fingerprint",
    "faultlens.error.fingerprint_version",
)


class NeedsTwoArgs(Exception):
    """Does not survive pickling (Celery reports a stand-in of another class instead)."""

    def __init__(self, job: int, why: str) -> None:
        super().__init__(f"job {job}: {why}")


class Declined(Exception):
    pass


def make_app(eager: bool = True, propagate: bool = False) -> Celery:
    app = Celery("unit", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_always_eager = eager
    app.conf.task_eager_propagates = propagate
    app.conf.task_store_eager_result = True

    @app.task(name="unit.ok", shared=False)
    def ok(x):
        return x * 2

    @app.task(name="unit.invalid", shared=False)
    def invalid(n):
        raise ValueError(f"bad value {n}")

    @app.task(name="unit.flaky", shared=False, bind=True, max_retries=3, default_retry_delay=0)
    def flaky(self, failures):
        if self.request.retries < failures:
            raise self.retry(exc=ConnectionError("registry down"), countdown=0)
        return "done"

    @app.task(
        name="unit.auto",
        shared=False,
        bind=True,
        autoretry_for=(ConnectionError,),
        max_retries=2,
        retry_backoff=False,
        default_retry_delay=0,
    )
    def auto(self, failures):
        if self.request.retries < failures:
            raise ConnectionError("upstream refused")
        return "done"

    @app.task(name="unit.ignored", shared=False)
    def ignored():
        raise Ignore()

    @app.task(name="unit.rejected", shared=False)
    def rejected():
        raise Reject("malformed", requeue=False)

    @app.task(name="unit.expected", shared=False, throws=(Declined,))
    def expected():
        raise Declined("not today")

    @app.task(name="unit.unpicklable", shared=False)
    def unpicklable():
        raise NeedsTwoArgs(7, "no workspace")

    @app.task(name="unit.nested", shared=False)
    def nested():
        return load_workspace("/w/7")

    @faultlens.instrument
    def load_workspace(path):
        raise FileNotFoundError(path)

    return app


@pytest.fixture(scope="module", autouse=True)
def installed() -> Iterator[None]:
    assert faultlens_celery.install()
    yield


@pytest.fixture
def app() -> Celery:
    return make_app()


def calls(cap, operation, outcome=None):
    """``faultlens.retry.calls`` for a task (one outcome, or all of them)."""
    labels = {"operation": operation} | ({"outcome": outcome} if outcome else {})
    return cap.counter("faultlens.retry.calls", **labels)


def exception_events(cap, span_name=None):
    return [(s, e) for s, e in cap.events("exception") if span_name in (None, s.name)]


# -- failures -----------------------------------------------------------------------------


def test_a_failing_task_is_recorded_once_on_its_run_span_with_the_task_context(app):
    with faultlens.testing.capture() as cap:
        result = app.tasks["unit.invalid"].delay(3)

    assert result.state == "FAILURE"
    [(span, event)] = exception_events(cap)
    assert span.name == "run/unit.invalid"
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "ValueError"
    for key in CONTRACT:
        assert key in event.attributes, key
    assert event.attributes["faultlens.error.code"] == "VAL_INVALID_VALUE"
    assert event.attributes["faultlens.context.celery.task_name"] == "unit.invalid"
    assert event.attributes["faultlens.context.celery.task_id"] == result.id
    assert event.attributes["faultlens.context.celery.retries"] == 0
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
    assert calls(cap, "unit.invalid", "non_retryable") == 1


def test_failures_are_counted_per_code(app):
    with faultlens.testing.capture() as cap:
        for n in range(3):
            app.tasks["unit.invalid"].delay(n)
        app.tasks["unit.unpicklable"].delay()

    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 3
    assert cap.counter("faultlens.errors", code="SYS_UNKNOWN_ERROR") == 1
    assert cap.counter("faultlens.errors") == 4
    assert len(cap.errors) == 4


def test_the_exception_recorded_is_the_one_raised_not_celerys_pickleable_stand_in(app):
    with faultlens.testing.capture() as cap:
        result = app.tasks["unit.unpicklable"].delay()

    assert type(result.result).__name__ != "NeedsTwoArgs"  # what Celery stored instead
    [record] = cap.errors
    assert record.info.exception_type.endswith("NeedsTwoArgs")
    assert record.info.message == "job 7: no workspace"


def test_the_logging_handler_does_not_record_celerys_failure_line_again(app):
    handler = faultlens.LoggingHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    lines: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = lines.append  # type: ignore[method-assign]
    logging.getLogger("celery.app.trace").addHandler(collect)
    try:
        with faultlens.testing.capture() as cap:
            app.tasks["unit.invalid"].delay(1)
            app.tasks["unit.unpicklable"].delay()  # logged with another exception object
    finally:
        root.removeHandler(handler)
        logging.getLogger("celery.app.trace").removeHandler(collect)

    failure_lines = [r for r in lines if r.exc_info and "raised unexpected" in r.getMessage()]
    assert len(failure_lines) == 2  # Celery still logs both failures, unchanged
    assert cap.counter("faultlens.errors") == 2
    assert len(exception_events(cap)) == 2


def test_the_pool_parents_log_line_with_billiards_wrapper_is_not_recorded_again(app):
    # The prefork pool's parent logs the failures it reports ("Task handler raised error")
    # with the exception wrapped in billiard's ExceptionWithTraceback: another object.
    from billiard.einfo import ExceptionWithTraceback

    handler = faultlens.LoggingHandler()
    logging.getLogger().addHandler(handler)
    try:
        with faultlens.testing.capture() as cap:
            result = app.tasks["unit.invalid"].delay(4)
            exc = result.result
            wrapped = ExceptionWithTraceback(exc, "Traceback ...")
            logging.getLogger("celery.worker.request").error(
                "Task handler raised error: %r", exc, exc_info=(type(exc), wrapped, None)
            )
            # and a line naming the task by id only (Celery's `data` extra)
            other = ValueError("bad value 4")
            logging.getLogger("celery.app.trace").error(
                "Task %(id)s failed",
                {"id": result.id},
                exc_info=(ValueError, other, None),
                extra={"data": {"id": result.id}},
            )
    finally:
        logging.getLogger().removeHandler(handler)

    assert cap.counter("faultlens.errors") == 1
    assert len(exception_events(cap)) == 1


def test_an_error_recorded_inside_the_task_carries_its_context_and_is_not_counted_twice(app):
    with faultlens.testing.capture() as cap:
        app.tasks["unit.nested"].delay()

    [(span, event)] = exception_events(cap)
    assert span.name == "load_workspace"  # the innermost instrumented span, per the contract
    assert event.attributes["faultlens.context.celery.task_name"] == "unit.nested"
    assert cap.span("run/unit.nested").status.status_code.name == "ERROR"
    assert cap.counter("faultlens.errors") == 1


def test_eager_propagation_records_the_failure_once_and_lets_it_through():
    app = make_app(propagate=True)
    with faultlens.testing.capture() as cap, pytest.raises(ValueError, match="bad value 9"):
        app.tasks["unit.invalid"].delay(9)

    [(span, _)] = exception_events(cap)
    assert span.name == "run/unit.invalid"
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1


# -- retries are not failures --------------------------------------------------------------


def test_self_retry_then_success_counts_attempts_and_one_success_after_retry(app):
    with faultlens.testing.capture() as cap:
        result = app.tasks["unit.flaky"].delay(2)

    assert result.get() == "done"
    assert cap.counter("faultlens.errors") == 0
    assert exception_events(cap) == []
    assert (
        cap.counter(
            "faultlens.retry.attempts", operation="unit.flaky", **{"error.type": "ConnectionError"}
        )
        == 2
    )
    assert calls(cap, "unit.flaky", "success_after_retry") == 1
    assert calls(cap, "unit.flaky") == 1
    retry_events = [e for s in cap.spans for e in s.events if e.name == "faultlens.retry"]
    assert [e.attributes["faultlens.retry.attempt"] for e in retry_events] == [1, 2]
    assert all(e.attributes["faultlens.retry.delay"] == 0 for e in retry_events)
    backoff = cap.metric_points("faultlens.retry.backoff.duration")
    assert sum(p.value.count for p in backoff) == 2


def test_a_first_time_success_is_counted_as_such(app):
    with faultlens.testing.capture() as cap:
        assert app.tasks["unit.ok"].delay(21).get() == 42

    assert calls(cap, "unit.ok", "success_first_attempt") == 1
    assert cap.counter("faultlens.retry.attempts") == 0


def test_retries_exhausted_end_in_one_error_and_one_exhausted_outcome(app):
    with faultlens.testing.capture() as cap:
        result = app.tasks["unit.flaky"].delay(10)

    assert result.state == "FAILURE"
    # max_retries=3: attempts 1-3 retried, the 4th gives up; each failed attempt is a point
    assert cap.counter("faultlens.retry.attempts", operation="unit.flaky") == 4
    assert calls(cap, "unit.flaky", "exhausted") == 1
    assert calls(cap, "unit.flaky") == 1
    [record] = cap.errors
    assert record.info.code == "NET_CONNECTION_FAILED"
    assert record.attributes["faultlens.context.celery.retries"] == 3
    assert cap.counter("faultlens.errors") == 1


def test_autoretry_for_is_retried_like_self_retry(app):
    with faultlens.testing.capture() as cap:
        assert app.tasks["unit.auto"].delay(1).get() == "done"
        failed = app.tasks["unit.auto"].delay(5)

    assert failed.state == "FAILURE"
    assert calls(cap, "unit.auto", "success_after_retry") == 1
    assert calls(cap, "unit.auto", "exhausted") == 1
    assert cap.counter("faultlens.retry.attempts", operation="unit.auto") == 1 + 3
    assert cap.counter("faultlens.errors") == 1


@pytest.mark.parametrize("name", ["unit.ignored", "unit.rejected"])
def test_ignore_and_reject_are_not_failures_and_end_no_call(app, name):
    with faultlens.testing.capture() as cap:
        app.tasks[name].delay()

    assert cap.counter("faultlens.errors") == 0
    assert exception_events(cap) == []
    assert calls(cap, name) == 0
    assert cap.span(f"run/{name}").status.status_code.name != "ERROR"


def test_an_exception_the_task_declares_in_throws_is_expected(app):
    with faultlens.testing.capture() as cap:
        result = app.tasks["unit.expected"].delay()

    assert result.state == "FAILURE"
    assert cap.counter("faultlens.errors") == 0
    assert exception_events(cap) == []
    assert cap.span("run/unit.expected").status.status_code.name != "ERROR"
    assert calls(cap, "unit.expected", "non_retryable") == 1


# -- the real path: a worker consuming from a broker ----------------------------------------


@pytest.fixture
def real_worker() -> Iterator[Celery]:
    app = make_app(eager=False)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app


def test_a_real_worker_records_the_failure_on_the_run_span_in_the_producers_trace(real_worker):
    with faultlens.testing.capture() as cap:
        result = real_worker.tasks["unit.invalid"].delay(5)
        with pytest.raises(ValueError):
            result.get(timeout=20)
        ok = real_worker.tasks["unit.flaky"].delay(1)
        assert ok.get(timeout=20) == "done"

    producer = cap.span("apply_async/unit.invalid")
    [(run, event)] = exception_events(cap)
    assert run.name == "run/unit.invalid"
    assert run.context.trace_id == producer.context.trace_id
    assert run.parent is not None and run.parent.span_id == producer.context.span_id
    assert event.attributes["faultlens.context.celery.task_id"] == result.id
    assert cap.counter("faultlens.errors") == 1
    assert calls(cap, "unit.flaky", "success_after_retry") == 1
    assert cap.counter("faultlens.retry.attempts", operation="unit.flaky") == 1


# -- installing ---------------------------------------------------------------------------


def test_install_is_idempotent():
    assert faultlens_celery.install()
    assert faultlens_celery.install()
    app = make_app()
    with faultlens.testing.capture() as cap:
        app.tasks["unit.invalid"].delay(1)
    assert cap.counter("faultlens.errors") == 1
    assert len(exception_events(cap)) == 1


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_activate_installs_when_the_process_imports_celery_and_not_before():
    proc = run_python(
        """
        import sys
        from faultlens.integrations import celery as fc
        fc.activate()
        assert not fc.is_installed()
        assert "celery" not in sys.modules
        import celery
        print(fc.is_installed())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_an_instrumentor_the_application_set_up_first_does_not_add_a_second_event():
    # The application (or opentelemetry-instrument) instrumented Celery before faultlens:
    # faultlens takes its failure receiver over; the task span still gets one event.
    proc = run_python(
        """
        import faultlens, faultlens.testing
        from celery import Celery
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry import trace
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        CeleryInstrumentor().instrument()
        from faultlens.integrations import celery as fc
        assert fc.install()
        app = Celery("x", broker="memory://", backend="cache+memory://")
        app.conf.task_always_eager = True
        @app.task(name="x.bad")
        def bad():
            raise ValueError("bad value 1")
        bad.delay()
        [span] = exporter.get_finished_spans()
        events = [e for e in span.events if e.name == "exception"]
        print(span.name, len(events), events[0].attributes.get("faultlens.error.code"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["run/x.bad", "1", "VAL_INVALID_VALUE"]


def test_an_instrumentor_loaded_after_activation_does_not_add_a_second_event():
    # opentelemetry-instrument's order: faultlens's instrumentor arms the integration, then
    # the distro imports the contrib instrumentor (whose own import of celery is what
    # installs faultlens, half-way through that import) and instruments it.
    proc = run_python(
        """
        from faultlens.integrations import celery as fc
        fc.activate()
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        assert fc.is_installed()
        CeleryInstrumentor().instrument()
        from celery import Celery
        app = Celery("x", broker="memory://", backend="cache+memory://")
        app.conf.task_always_eager = True
        @app.task(name="x.bad")
        def bad():
            raise ValueError("bad value 1")
        bad.delay()
        [span] = exporter.get_finished_spans()
        events = [e for e in span.events if e.name == "exception"]
        print(span.name, len(events), events[0].attributes.get("faultlens.error.code"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["run/x.bad", "1", "VAL_INVALID_VALUE"]


def test_celerys_own_exceptions_are_classified():
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
    from kombu.exceptions import OperationalError

    assert faultlens.classify(SoftTimeLimitExceeded()).code == "EXE_TIMEOUT"
    assert faultlens.classify(TimeLimitExceeded(30)).code == "EXE_TIMEOUT"
    lost = faultlens.classify(WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."))
    assert (lost.code, lost.severity.value) == ("EXE_WORKER_LOST", "critical")
    broker_down = faultlens.classify(OperationalError("Error 111 connecting"))
    assert broker_down.code == "NET_CONNECTION_FAILED"


def test_a_failure_the_pool_reports_twice_is_recorded_once(app):
    # The pool's main process reports a hard time limit when it kills the pool process, and
    # again when the pool reports the job lost, each time with a new exception object.
    from celery import signals
    from celery.exceptions import TimeLimitExceeded

    task = app.tasks["unit.ok"]
    with faultlens.testing.capture() as cap:
        for _ in range(2):
            signals.task_failure.send(
                sender=task, task_id="run-1", exception=TimeLimitExceeded(1.5), einfo=None
            )

    [(span, event)] = exception_events(cap)
    assert span.name == "run/unit.ok"  # a span of its own: the run's died with its process
    assert event.attributes["faultlens.error.code"] == "EXE_TIMEOUT"
    assert cap.counter("faultlens.errors") == 1
    assert calls(cap, "unit.ok", "non_retryable") == 1


def test_a_running_task_terminated_by_revoke_ends_aborted_and_is_no_error(app):
    from celery import signals

    task = app.tasks["unit.ok"]
    with faultlens.testing.capture() as cap:
        signals.task_revoked.send(sender=task, request=None, terminated=True, signum=15)
        signals.task_revoked.send(sender=task, request=None, terminated=False, expired=True)

    assert calls(cap, "unit.ok", "aborted") == 1  # revoked before it ran: no run, no outcome
    assert calls(cap, "unit.ok") == 1
    assert cap.counter("faultlens.errors") == 0


def test_uninstall_disconnects_and_install_connects_again():
    proc = run_python(
        """
        import faultlens, faultlens.testing
        from celery import Celery
        from faultlens.integrations import celery as fc
        app = Celery("x", broker="memory://", backend="cache+memory://")
        app.conf.task_always_eager = True
        @app.task(name="x.bad")
        def bad():
            raise ValueError("bad value 1")
        counts = []
        for step in (fc.install, fc.uninstall, fc.install):
            step()
            with faultlens.testing.capture() as cap:
                bad.delay()
            [span] = [s for s in cap.spans if s.name == "x.bad" or s.name == "run/x.bad"]
            events = [e for e in span.events if e.name == "exception"]
            counts.append((int(cap.counter("faultlens.errors")), len(events)))
        print(counts)
        """
    )
    assert proc.returncode == 0, proc.stderr
    # uninstalled: no faultlens record, and the contrib instrumentor records its own event
    assert proc.stdout.strip() == "[(1, 1), (0, 1), (1, 1)]"
