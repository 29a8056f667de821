"""Recorded once, invisibly, completely: the marks faultlens keeps about exceptions.

- The "recorded once" mark lives outside the exception: recording changes nothing of it the
  application can see (``vars``, ``repr``, pickling, equality), and a mark never travels to
  another process with a pickled exception.
- Recording is all or nothing per step: the error is counted in ``faultlens.errors`` exactly
  once whatever fails later, and an event that could not be emitted is emitted on the next
  span the exception escapes through.
- Exception groups are one failure: counted once, never again for their members (re-raised
  alone or in the smaller group ``except*`` leaves), and not at all when every member was
  recorded already by its own instrumented task.
"""

from __future__ import annotations

import asyncio
import gc
import json
import pickle
import sys
import weakref

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, StatusCode

import faultlens
from faultlens.capture import dropped_counts, record_on_span
from faultlens.capture._marks import MARKS, MAX_STRONG, SWEEP_EVERY
from faultlens.capture._state import STATE


class OrderError(Exception):
    def __init__(self, order_id: int, reason: str) -> None:
        super().__init__(f"order {order_id}: {reason}")
        self.order_id = order_id
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return type(other) is OrderError and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]  # unhashable, like many value-like classes

    def __reduce__(self):
        return (OrderError, (self.order_id, self.reason))


@faultlens.instrument
def raise_it(exc: BaseException) -> None:
    raise exc


@faultlens.instrument
def outer(exc: BaseException) -> None:
    raise_it(exc)


# -- invisible -----------------------------------------------------------------------------


def test_recording_changes_nothing_the_application_can_see_of_the_exception():
    exc = OrderError(7, "out of stock")
    before = (dict(vars(exc)), repr(exc), pickle.dumps(exc), str(exc))
    with faultlens.testing.capture() as cap, pytest.raises(OrderError):
        outer(exc)
    assert len(cap.error_events) == 1
    assert (dict(vars(exc)), repr(exc), pickle.dumps(exc), str(exc)) == before
    assert json.dumps(vars(exc)) == '{"order_id": 7, "reason": "out of stock"}'
    assert exc == OrderError(7, "out of stock")
    assert not any("faultlens" in name for name in dir(exc))


def test_builtin_exceptions_get_no_attribute_either():
    exc = ValueError("bad")
    with faultlens.testing.capture() as cap, pytest.raises(ValueError):
        outer(exc)
    assert len(cap.error_events) == 1
    assert vars(exc) == {}
    assert pickle.loads(pickle.dumps(exc)).args == ("bad",)


def test_a_copy_of_a_recorded_exception_made_by_pickling_is_a_new_failure_to_record():
    """What crosses a process boundary is a new object without a mark: the process that
    re-raises it records it (see test_hardening_capture_pickle for real process pools)."""
    exc = OrderError(1, "late")
    with faultlens.testing.capture() as cap:
        with pytest.raises(OrderError):
            outer(exc)
        clone = pickle.loads(pickle.dumps(exc))
        with pytest.raises(OrderError):
            outer(clone)
        with pytest.raises(OrderError):
            outer(exc)  # the original again: recorded already
    assert cap.counter("faultlens.errors") == 2
    assert len(cap.error_events) == 2


@pytest.mark.parametrize("make", [lambda i: ValueError(f"v{i}"), lambda i: OrderError(i, "x")])
def test_every_new_exception_is_recorded_even_when_it_reuses_a_dead_ones_address(make):
    with faultlens.testing.capture() as cap:
        for i in range(300):
            with pytest.raises((ValueError, OrderError)):
                raise_it(make(i))
    assert cap.counter("faultlens.errors") == 300


def test_a_handled_exception_and_its_frames_are_released_soon_after_the_application_drops_it():
    class Payload:
        pass

    @faultlens.instrument
    def load():
        payload = Payload()  # a frame local the traceback keeps alive
        del payload_refs[:]
        payload_refs.append(weakref.ref(payload))
        raise ValueError("cannot load")

    payload_refs: list[weakref.ref[Payload]] = []
    with faultlens.testing.capture():
        try:
            load()
        except ValueError:
            pass
        first = payload_refs[0]
        for i in range(SWEEP_EVERY + 1):
            with pytest.raises(ValueError):
                raise_it(ValueError(str(i)))
        gc.collect()
        assert first() is None, "faultlens must not keep a handled exception's frames alive"
    assert len(MARKS._strong) <= MAX_STRONG


def test_marks_of_exceptions_that_are_gone_are_forgotten():
    with faultlens.testing.capture():
        for i in range(100):
            with pytest.raises(OrderError):
                raise_it(OrderError(i, "gone"))
    gc.collect()
    assert not any(isinstance(ref(), OrderError) for ref, _ in MARKS._weak.values())
    assert len(MARKS._weak) < 100


# -- complete --------------------------------------------------------------------------------


def test_an_error_at_the_recursion_limit_is_counted_once_with_one_event():
    @faultlens.instrument
    def descend(n: int) -> int:
        return descend(n + 1) + 1

    limit = sys.getrecursionlimit()
    with faultlens.testing.capture() as cap, pytest.raises(RecursionError) as raised:
        descend(0)
    assert sys.getrecursionlimit() == limit, "the recursion limit is never changed"
    assert raised.value.__context__ is None, "the application's own RecursionError propagates"
    assert cap.counter("faultlens.errors", code="SYS_UNKNOWN_ERROR") == 1
    assert len(cap.error_events) == 1
    assert dropped_counts().get("internal_error", 0) == 0


def test_an_event_that_fails_part_way_is_emitted_on_the_next_span_and_counted_once():
    class BrokenSpan(NonRecordingSpan):
        def add_event(self, *args, **kwargs):
            raise RecursionError("no stack left")

        def is_recording(self):
            return True

    exc = OrderError(3, "partial")
    with faultlens.testing.capture() as cap:
        broken = BrokenSpan(NonRecordingSpan(None).get_span_context())
        record_on_span(exc, broken)
        assert cap.counter("faultlens.errors") == 1
        assert cap.error_events == []
        with pytest.raises(OrderError):
            raise_it(exc)  # the next span it escapes through completes the record
        with pytest.raises(OrderError):
            outer(exc)
    assert cap.counter("faultlens.errors") == 1
    assert len(cap.error_events) == 1


def test_a_failing_tracer_costs_the_span_never_the_count():
    class Refusing(TracerProvider):
        def get_tracer(self, *args, **kwargs):
            tracer = super().get_tracer(*args, **kwargs)

            def start_span(*a, **k):
                raise RuntimeError("tracer down")

            tracer.start_span = start_span
            return tracer

    @faultlens.instrument(mode="traced")
    def traced():
        raise TimeoutError("slow")

    with faultlens.testing.capture() as cap:
        STATE.tracer_provider = Refusing()
        STATE.bump()
        exc = TimeoutError("slow")
        with pytest.raises(TimeoutError) as raised:
            raise_it(exc)
        assert raised.value is exc
        with pytest.raises(TimeoutError):
            traced()
        assert cap.counter("faultlens.errors", code="EXE_TIMEOUT") == 2


def test_an_exception_defeating_classification_is_still_counted_and_recorded():
    class Hostile(Exception):
        armed = True

        def __getattribute__(self, name):
            if Hostile.armed and name in ("__traceback__", "__cause__", "__context__", "args"):
                raise RuntimeError(f"no {name}")
            return super().__getattribute__(name)

    def fail_hostile():
        try:
            outer(exc)
        finally:
            Hostile.armed = False  # disarmed once the instrumented frames are left

    exc = Hostile("x")
    with faultlens.testing.capture() as cap, pytest.raises(Hostile):
        fail_hostile()
    assert cap.counter("faultlens.errors") == 1
    assert len(cap.error_events) == 1


def test_a_raising_processor_leaves_the_count_and_the_event():
    def broken(event):
        raise RecursionError("processor recursed")

    with faultlens.testing.capture() as cap:
        STATE.processors = (broken,)
        with pytest.raises(ValueError):
            outer(ValueError("v"))
    assert cap.counter("faultlens.errors") == 1
    assert len(cap.error_events) == 1


# -- exception groups: one failure, one count ---------------------------------------------------


@faultlens.instrument
async def fetch(name: str, exc: BaseException | None) -> str:
    await asyncio.sleep(0)
    if exc is not None:
        raise exc
    return name


async def test_a_task_group_counts_each_failed_task_once_and_the_group_not_again():
    @faultlens.instrument
    async def fan_out():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fetch("a", ConnectionError("a down")))
            tg.create_task(fetch("b", TimeoutError("b slow")))
            tg.create_task(fetch("c", None))

    with faultlens.testing.capture() as cap, pytest.raises(ExceptionGroup):
        await fan_out()
    assert cap.counter("faultlens.errors") == 2
    assert cap.counter("faultlens.errors", code="NET_CONNECTION_FAILED") == 1
    assert cap.counter("faultlens.errors", code="EXE_TIMEOUT") == 1
    assert len(cap.error_events) == 2
    parent = cap.span("fan_out")
    assert parent.status.status_code is StatusCode.ERROR
    assert parent.attributes["error.type"] == "ExceptionGroup"
    assert [e.name for e in parent.events] == []


async def test_a_group_of_unrecorded_failures_is_one_failure_classified_as_its_worst():
    async def plain(exc):
        await asyncio.sleep(0)
        raise exc

    @faultlens.instrument
    async def fan_out():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(plain(ValueError("bad")))
            tg.create_task(plain(PermissionError("denied")))

    with faultlens.testing.capture() as cap, pytest.raises(ExceptionGroup):
        await fan_out()
    assert cap.counter("faultlens.errors") == 1
    [event] = cap.error_events
    assert event.attributes["exception.type"] == "ExceptionGroup"


def test_what_except_star_leaves_of_a_recorded_group_is_not_counted_again():
    @faultlens.instrument
    def batch():
        raise ExceptionGroup("batch", [ValueError("row 1"), KeyError("row 2")])

    @faultlens.instrument
    def handle_values():
        try:
            batch()
        except* ValueError:
            pass  # handled; the KeyError part propagates as a new, smaller group

    @faultlens.instrument
    def unwrap_key_error():
        try:
            handle_values()
        except* KeyError as rest:
            raise rest.exceptions[0] from None  # the member itself, on its own

    with faultlens.testing.capture() as cap, pytest.raises(KeyError):
        unwrap_key_error()
    assert cap.counter("faultlens.errors") == 1
    assert len(cap.error_events) == 1
    for name in ("handle_values", "unwrap_key_error"):
        assert cap.span(name).status.status_code is StatusCode.ERROR


async def test_a_group_of_cancellations_is_no_failure():
    with faultlens.testing.capture() as cap, pytest.raises(BaseExceptionGroup):
        raise_it(BaseExceptionGroup("stop", [asyncio.CancelledError(), KeyboardInterrupt()]))
    assert cap.counter("faultlens.errors") == 0
    assert cap.spans == []


def test_errors_at_the_recursion_limit_in_several_threads_are_each_counted_once():
    import threading

    @faultlens.instrument
    def descend(n: int) -> int:
        return descend(n + 1) + 1

    # Default thread stacks: recording never raises the (process-wide) recursion limit, so
    # no thread can descend deeper than the application allows while another records.
    outer_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    limit = sys.getrecursionlimit()
    failures: list[BaseException] = []

    def run():
        try:
            descend(0)
        except RecursionError as exc:
            failures.append(exc)

    try:
        with faultlens.testing.capture() as cap:
            threads = [threading.Thread(target=run) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert len(failures) == 3
        assert cap.counter("faultlens.errors") == 3
        assert len(cap.error_events) == 3
        assert sys.getrecursionlimit() == limit, "the recursion limit is never changed"
    finally:
        sys.setrecursionlimit(outer_limit)


async def test_a_large_task_group_of_recorded_failures_adds_no_count():
    @faultlens.instrument
    async def fan_out(n: int):
        async with asyncio.TaskGroup() as tg:
            for i in range(n):
                tg.create_task(fetch(str(i), ValueError(f"item {i}")))

    with faultlens.testing.capture() as cap, pytest.raises(ExceptionGroup) as raised:
        await fan_out(300)
    assert len(raised.value.exceptions) == 300
    assert cap.counter("faultlens.errors") == 300
