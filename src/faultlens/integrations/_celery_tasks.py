"""What a Celery task run becomes: one classified failure, retry attempts and one outcome.

Signal receivers, connected by ``faultlens.integrations.celery.install()``. Celery sends
these signals in the process that runs the task (a prefork pool child), except for the
failures only the pool's parent can see (a child that died: ``WorkerLostError``; a hard
time limit), which it sends there.

- ``task_prerun``: the task's context (``celery.task_name``, ``celery.task_id``,
  ``celery.retries``) for every error recorded while it runs (``faultlens.capture``).
- ``task_failure``: the exception the task raised (the original object, not the pickleable
  stand-in Celery substitutes for an exception that does not survive pickling) is recorded
  once, on the task's span, and counted in ``faultlens.errors``. ``Retry``, ``Ignore`` and
  ``Reject`` are Celery's control flow, never failures; an exception the task declares in
  ``throws`` is expected: no error, although the call still ends ``non_retryable``.
- ``task_retry``: one ``faultlens.retry.attempts`` point and one ``faultlens.retry`` span
  event per retry (the backoff Celery will wait in ``faultlens.retry.backoff.duration``).
  The exception behind a retry is not a failure of the task.
- the outcome of each run in ``faultlens.retry.calls{operation=<task name>, outcome}``,
  counted through the same local counters as ``@faultlens.retry``'s, so one dashboard shows
  both: ``success_first_attempt`` / ``success_after_retry`` (a success with
  ``request.retries`` 0 / above 0), ``exhausted`` (the task gave up retrying: its
  ``self.retry()`` or ``autoretry_for`` hit ``max_retries``), ``non_retryable`` (any other
  failure), ``aborted`` (killed by ``revoke(terminate=True)``). A run that retries, is
  ignored or rejected has no outcome: the run that follows it has.
- Celery logs the failure it reports (``Task ... raised unexpected``), and the pool's
  parent logs the exceptions it reports: a ``faultlens.LoggingHandler`` would record those
  log lines a second time, with an exception object that is not always the one recorded
  (Celery's pickleable stand-in, billiard's wrapper). A filter on Celery's two loggers
  marks those objects as part of the recorded failure before any handler sees the line.
  The line itself is untouched.

Nothing here raises into Celery: every receiver is guarded (Celery would only log it, but
a receiver that fails half-way would leave a scope entered).
"""

from __future__ import annotations

import datetime
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from ..capture import MARKS, Mark, capture, get_tracer, internal_error, record_on_span
from ..capture._state import STATE
from ..errors import ErrorInfo, Severity, clean_text, error_type
from ..resilience import RETRY_OUTCOMES, count_retry_attempt, count_retry_outcome, label

__all__ = [
    "CONTEXT_RETRIES",
    "CONTEXT_TASK_ID",
    "CONTEXT_TASK_NAME",
    "LoggedFailureFilter",
    "on_failure",
    "on_postrun_before_span_end",
    "on_prerun",
    "on_retry",
    "on_revoked",
    "task_span",
]

CONTEXT_TASK_NAME = "celery.task_name"
CONTEXT_TASK_ID = "celery.task_id"
CONTEXT_RETRIES = "celery.retries"

_FIRST = RETRY_OUTCOMES.index("success_first_attempt")
_AFTER = RETRY_OUTCOMES.index("success_after_retry")
_EXHAUSTED = RETRY_OUTCOMES.index("exhausted")
_NON_RETRYABLE = RETRY_OUTCOMES.index("non_retryable")
_ABORTED = RETRY_OUTCOMES.index("aborted")

_MAX_TRACEBACK = 512  # frames looked at when deciding whether a failure came from retry()
_MAX_REMEMBERED = 1024  # recent failures the log filter can match by task id
_SAME_RUN_WINDOW = 60.0  # s: a second report of a run's failure comes within this


_pieces: Any = None


def _celery() -> Any:
    """Celery's pieces, imported when a receiver first runs (celery is imported by then)."""
    if _pieces is None:
        _load_pieces()
    return _pieces


def _load_pieces() -> None:
    global _pieces
    # Celery and billiard ship no type information.
    from billiard.einfo import ExceptionWithTraceback  # type: ignore[import-untyped]
    from celery import states  # type: ignore[import-untyped]
    from celery.app.task import Task  # type: ignore[import-untyped]
    from celery.exceptions import (  # type: ignore[import-untyped]
        MaxRetriesExceededError,
        TaskPredicate,
        WorkerLostError,
    )
    from celery.utils.serialization import (  # type: ignore[import-untyped]
        UnpickleableExceptionWrapper,
    )

    _pieces = (
        ExceptionWithTraceback,
        states,
        Task,
        MaxRetriesExceededError,
        TaskPredicate,
        WorkerLostError,
        UnpickleableExceptionWrapper,
    )


# -- the run's scope ---------------------------------------------------------------------------

# (thread, task id) -> the capture() scope entered at prerun. A run's prerun and postrun are
# sent from the same thread (the tracer's try/finally), whatever the pool.
_scopes: dict[tuple[int, str], capture] = {}


_labels: dict[str, str] = {}  # task name -> its label (task names are few: bounded anyway)


def _task_name(task: Any) -> str:
    """The task's name as a label (``shadow`` when the message renamed it)."""
    try:
        name = getattr(task.request, "shadow", None) or getattr(task, "name", None)
        if not name:
            name = type(task).__name__
        cached = _labels.get(name) if type(name) is str else None
        if cached is not None:
            return cached
        out = label(name)
        if type(name) is str and len(_labels) < 4096:
            _labels[name] = out
        return out
    except Exception:
        return "<unknown task>"


def _retries(task: Any) -> int:
    try:
        value = getattr(task.request, "retries", 0) or 0
        return int(value) if isinstance(value, int) and value >= 0 else 0
    except Exception:
        return 0


def _context(task: Any, task_id: Any) -> dict[str, Any]:
    return {
        CONTEXT_TASK_NAME: _task_name(task),
        CONTEXT_TASK_ID: clean_text(str(task_id), 256) if task_id is not None else "",
        CONTEXT_RETRIES: _retries(task),
    }


def on_prerun(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    """Enter the task's scope: every error recorded inside carries the task's context."""
    try:
        task = task if task is not None else sender
        if task is None or task_id is None or not STATE.enabled:
            return
        scope = capture(**_context(task, task_id))
        scope.__enter__()
        _scopes[(threading.get_ident(), str(task_id))] = scope
    except Exception as exc:
        internal_error("celery task_prerun", exc)


def _leave_scope(task_id: Any) -> None:
    scope = _scopes.pop((threading.get_ident(), str(task_id)), None)
    if scope is not None:
        scope.__exit__(None, None, None)


def on_postrun_before_span_end(
    sender: Any = None, task_id: Any = None, task: Any = None, state: Any = None, **_: Any
) -> None:
    """The run is over (sent before the task's span ends): count a success, record a
    failure that Celery let propagate (eager mode with ``task_eager_propagates``, where no
    ``task_failure`` is sent), and leave the scope."""
    try:
        task = task if task is not None else sender
        if task is None:
            return
        states = _celery()[1]
        if state == states.SUCCESS:
            _count_outcome(task, _AFTER if _retries(task) > 0 else _FIRST)
        elif state is None:
            exc = sys.exc_info()[1]
            if isinstance(exc, Exception):
                _failure(task, task_id, exc, None)
    except Exception as exc:
        internal_error("celery task_postrun", exc)
    finally:
        try:
            _leave_scope(task_id)
        except Exception as exc:
            internal_error("celery task_postrun scope", exc)


# -- failures ----------------------------------------------------------------------------------


def on_failure(
    sender: Any = None,
    task_id: Any = None,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """``task_failure``: record the failure once and count the run's outcome."""
    try:
        if sender is None or exception is None:
            return
        _failure(sender, task_id, exception, einfo)
    except Exception as exc:
        internal_error("celery task_failure", exc)


def _original(exception: BaseException) -> tuple[BaseException, BaseException | None]:
    """(the exception the task raised, the stand-in Celery reports instead, if any).

    Celery hands ``task_failure`` a pickleable version of the exception: the same object
    when it pickles, else a new instance of its nearest pickleable base class or an
    ``UnpickleableExceptionWrapper``. The original is still the exception being handled
    while the signal is sent (in the process that ran the task)."""
    ewt, _, _, _, _, _, wrapper = _celery()
    if isinstance(exception, ewt) and isinstance(getattr(exception, "exc", None), BaseException):
        return exception.exc, exception
    handled = sys.exc_info()[1]
    if handled is None or handled is exception:
        return exception, None
    if isinstance(exception, wrapper):
        if type(handled).__name__ == getattr(exception, "exc_cls_name", None):
            return handled, exception
        return exception, None
    if isinstance(handled, type(exception)):
        return handled, exception
    return exception, None


def _gave_up_retrying(task: Any, exc: BaseException) -> bool:
    """The failure is retry() refusing to retry again (``max_retries`` reached): it raised
    ``MaxRetriesExceededError`` or re-raised the task's exception from inside ``retry()``
    (``self.retry(exc=...)``, and ``autoretry_for``, which calls it)."""
    _, _, task_cls, max_exceeded, _, _, _ = _celery()
    if isinstance(exc, max_exceeded):
        return True
    retry_code = task_cls.retry.__code__
    tb = exc.__traceback__
    for _ in range(_MAX_TRACEBACK):
        if tb is None:
            return False
        if tb.tb_frame.f_code is retry_code:
            return True
        tb = tb.tb_next
    return False


def _expected(task: Any, exc: BaseException) -> bool:
    throws = getattr(task, "throws", None)
    if not throws:
        return False
    try:
        return isinstance(exc, tuple(throws) if not isinstance(throws, type) else throws)
    except TypeError:
        return False


def _failure(task: Any, task_id: Any, exception: BaseException, einfo: Any) -> None:
    _, _, _, _, predicate, worker_lost, _ = _celery()
    exc, stand_in = _original(exception)
    if isinstance(exc, predicate):
        return  # Retry / Ignore / Reject: Celery's control flow (Reject(requeue=False) too)
    again, prior = _reported_already(task_id, _retries(task))
    if again:  # the same run's failure, reported again: handled and counted already
        for other in (exc, stand_in, exception):
            if prior is not None and other is not None and MARKS.get(other) is None:
                cover(other, prior)
        return
    gave_up = _gave_up_retrying(task, exc)
    outcome = _EXHAUSTED if gave_up else _NON_RETRYABLE
    _count_outcome(task, outcome)
    span = task_span(task, task_id)
    own_span: Span | None = None
    if span is None:
        # The pool's parent (a lost worker, a hard time limit): the run's own span died with
        # the child. A span of its own, in the producer's trace, carries the failure.
        own_span = span = _parent_side_span(task, task_id)
    try:
        _report_attempt(task, exc, None, RETRY_OUTCOMES[outcome], span)
        if _expected(task, exc):
            _remember(task_id, None, _retries(task))
            return  # in the task's `throws`: an expected outcome, not a failure
        severity = Severity.CRITICAL if isinstance(exc, worker_lost) else None
        info = record_on_span(exc, span, context=_context(task, task_id), severity=severity)
        _remember(task_id, info, _retries(task))
        if info is not None:
            for other in (stand_in, exception):
                if other is not None and other is not exc:
                    cover(other, info)
    finally:
        if own_span is not None:
            own_span.end()


def task_span(task: Any, task_id: Any) -> Span | None:
    """The run's span, as opentelemetry-instrumentation-celery keeps it; else the current
    span if it records (another instrumentation's)."""
    try:
        from opentelemetry.instrumentation.celery import utils

        ctx = utils.retrieve_context(task, task_id)
        if ctx is not None and ctx[0].is_recording():
            return ctx[0]  # type: ignore[no-any-return]
    except Exception:
        pass
    current = trace.get_current_span()
    return current if current.is_recording() else None


def _parent_side_span(task: Any, task_id: Any) -> Span:
    parent = None
    try:
        from opentelemetry.propagate import extract

        request = task.request
        carrier = {}
        for key in ("traceparent", "tracestate"):
            value = getattr(request, key, None)
            if isinstance(value, str):
                carrier[key] = value
        if carrier:
            parent = extract(carrier)
    except Exception:
        parent = None
    name = _task_name(task)
    return get_tracer().start_span(
        clean_text(f"run/{name}", 256),
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "celery.action": "run",
            "celery.task_name": name,
            "messaging.message.id": clean_text(str(task_id), 256),
        },
    )


# -- retries and outcomes ----------------------------------------------------------------------


def on_retry(
    sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None, **_: Any
) -> None:
    """``task_retry``: one failed attempt, retried after ``reason.when``."""
    try:
        task = sender
        if task is None:
            return
        exc = getattr(reason, "exc", None)
        cause = exc if isinstance(exc, BaseException) else reason
        if not isinstance(cause, BaseException):
            return
        delay = _delay(getattr(reason, "when", None))
        task_id = getattr(request, "id", None)
        _report_attempt(task, cause, delay if delay is not None else 0.0, None, None, task_id)
    except Exception as exc:
        internal_error("celery task_retry", exc)


def on_revoked(sender: Any = None, request: Any = None, terminated: bool = False, **_: Any) -> None:
    """``task_revoked`` with ``terminated``: a running task was killed on request
    (``revoke(terminate=True)``): the run ends ``aborted``, like a cancelled ``@retry``
    call. Never an error. (Revoked before it ran: no run, no outcome.)"""
    try:
        if sender is not None and terminated:
            _count_outcome(sender, _ABORTED)
    except Exception as exc:
        internal_error("celery task_revoked", exc)


def _delay(when: Any) -> float | None:
    """Seconds until the retry: a countdown, or an ETA (a datetime)."""
    if isinstance(when, bool):
        return None
    if isinstance(when, int | float):
        return max(float(when), 0.0) if when == when else None
    if isinstance(when, datetime.datetime):
        eta: datetime.datetime = when
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=datetime.UTC)
        seconds: float = (eta - datetime.datetime.now(datetime.UTC)).total_seconds()
        return max(seconds, 0.0)
    if isinstance(when, str):
        try:
            return _delay(datetime.datetime.fromisoformat(when))
        except ValueError:
            return None
    return None


def _report_attempt(
    task: Any,
    exc: BaseException,
    delay: float | None,
    outcome: str | None,
    span: Span | None,
    task_id: Any = None,
) -> None:
    """A failed attempt, like ``@faultlens.retry``'s: the attempts counter, the backoff
    histogram when there is a wait, and a ``faultlens.retry`` event on the task's span."""
    operation = _task_name(task)
    etype = label(error_type(exc))
    count_retry_attempt(operation, etype, delay)
    attrs: dict[str, str | bool | int | float] = {
        "faultlens.retry.operation": operation,
        "faultlens.retry.attempt": _retries(task) + 1,
        "error.type": etype,
    }
    if delay is not None:
        attrs["faultlens.retry.delay"] = delay
    if outcome is not None:
        attrs["faultlens.retry.outcome"] = outcome
    if span is None and task_id is not None:
        span = task_span(task, task_id)
    if span is None:
        span = trace.get_current_span()
    if STATE.enabled and span.is_recording():
        span.add_event("faultlens.retry", attrs)


def _count_outcome(task: Any, outcome: int) -> None:
    """One terminal outcome in ``faultlens.retry.calls``, through @retry's own counters."""
    if not STATE.enabled:
        return
    count_retry_outcome(_task_name(task), RETRY_OUTCOMES[outcome])


# -- recorded failures and Celery's log lines about them ---------------------------------------

# task id -> (the failure recorded for it, its retry number, when)
_recent: OrderedDict[str, tuple[ErrorInfo | None, int, float]] = OrderedDict()
_recent_lock = threading.Lock()


def _remember(task_id: Any, info: ErrorInfo | None, retries: int) -> None:
    """A run's failure was handled (``info`` None: expected, or not recordable)."""
    if task_id is None:
        return
    with _recent_lock:
        _recent[str(task_id)] = (info, retries, time.monotonic())
        _recent.move_to_end(str(task_id))
        while len(_recent) > _MAX_REMEMBERED:
            _recent.popitem(last=False)


def _recorded_for(task_id: Any) -> ErrorInfo | None:
    if task_id is None:
        return None
    with _recent_lock:
        hit = _recent.get(str(task_id))
    return hit[0] if hit is not None else None


def _reported_already(task_id: Any, retries: int) -> tuple[bool, ErrorInfo | None]:
    """The failure recorded for this very run, if Celery reports it a second time: the
    pool's main process sends ``task_failure`` for a hard time limit when it kills the
    pool process, and again when the pool reports the job lost (another exception object).
    One run, one failure: the same task id and retry number within a short while."""
    if task_id is None:
        return False, None
    with _recent_lock:
        hit = _recent.get(str(task_id))
    if hit is None:
        return False, None
    info, seen_retries, when = hit
    if seen_retries != retries or time.monotonic() - when > _SAME_RUN_WINDOW:
        return False, None
    return True, info


def reset_after_fork() -> None:
    """In a forked child: no scope of the parent's is open here, and a lock another thread
    held at fork time must not stay held."""
    global _recent_lock
    _recent_lock = threading.Lock()
    _scopes.clear()
    _recent.clear()


def cover(exc: BaseException, info: ErrorInfo) -> None:
    """``exc`` stands for a failure recorded as ``info``: a span it escapes through (or a
    log line that carries it) is only marked, never recorded or counted again."""
    MARKS.add(exc, Mark(info, covered=True))


def _counted_info(exc: Any) -> ErrorInfo | None:
    if not isinstance(exc, BaseException):
        return None
    mark = MARKS.get(exc)
    return mark.info if mark is not None and mark.counted else None


class LoggedFailureFilter(logging.Filter):
    """On Celery's loggers: a line about a failure faultlens recorded carries an exception
    object that handlers must not record again. Never drops or changes a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            exc_info = record.exc_info
            if not exc_info or not isinstance(exc_info, tuple) or len(exc_info) < 2:
                return True
            logged = exc_info[1]
            if not isinstance(logged, BaseException):
                return True
            inner = getattr(logged, "exc", None)
            inner = inner if isinstance(inner, BaseException) else None
            data = getattr(record, "data", None)
            task_id = data.get("id") if isinstance(data, Mapping) else None
            info = _counted_info(logged) or _counted_info(inner) or _recorded_for(task_id)
            if info is not None:
                for exc in (logged, inner):
                    if exc is not None and MARKS.get(exc) is None:
                        cover(exc, info)
        except Exception as exc:
            internal_error("celery log filter", exc)
        return True
