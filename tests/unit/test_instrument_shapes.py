"""@instrument keeps every kind of callable working exactly as before."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from opentelemetry import trace

import faultlens
from faultlens.capture import current_scope


def test_signature_and_metadata_are_preserved():
    def load(path: str, *, retries: int = 3) -> bytes:
        """Load a file."""
        return b""

    wrapped = faultlens.instrument(load)
    assert wrapped.__name__ == "load"
    assert wrapped.__doc__ == "Load a file."
    assert inspect.signature(wrapped) == inspect.signature(load)


async def test_coroutines_stay_coroutine_functions_and_record_failures(app_otel):
    @faultlens.instrument
    async def fetch(x):
        await asyncio.sleep(0)
        if x:
            raise ConnectionError("down")
        return "ok"

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch(0) == "ok"
    with pytest.raises(ConnectionError):
        await fetch(1)
    [(span, event)] = app_otel.exception_events()
    assert span.name == "fetch"
    assert event.attributes["faultlens.error.code"] == "NET_CONNECTION_FAILED"


async def test_a_cancelled_coroutine_is_not_a_failure(app_otel):
    @faultlens.instrument(mode="traced")
    async def wait_forever():
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(wait_forever())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert app_otel.exception_events() == []


def test_generators_forward_send_throw_and_return_values(app_otel):
    @faultlens.instrument
    def accumulate():
        total = 0
        while True:
            try:
                value = yield total
            except KeyError:
                value = 100
            if value is None:
                return total
            total += value

    assert inspect.isgeneratorfunction(accumulate)
    gen = accumulate()
    assert next(gen) == 0
    assert gen.send(5) == 5
    assert gen.throw(KeyError("k")) == 105
    with pytest.raises(StopIteration) as stop:
        gen.send(None)
    assert stop.value.value == 105
    assert app_otel.spans == []


def test_a_failing_generator_is_recorded_and_closing_one_is_not(app_otel):
    @faultlens.instrument
    def rows(fail):
        yield 1
        if fail:
            raise ValueError("bad row")
        yield 2

    assert list(rows(False)) == [1, 2]
    g = rows(False)
    next(g)
    g.close()  # GeneratorExit is not a failure
    with pytest.raises(ValueError):
        list(rows(True))
    [(span, _)] = app_otel.exception_events()
    assert span.name == "rows"


def test_a_traced_generator_span_is_current_only_while_its_own_code_runs(app_otel):
    seen_inside = []

    @faultlens.instrument(mode="traced", stage="read")
    def items():
        for i in range(2):
            seen_inside.append((trace.get_current_span().name, current_scope().stage))
            yield i

    outside = []
    for _ in items():
        outside.append((trace.get_current_span().is_recording(), current_scope().stage))
    assert seen_inside == [("items", "read"), ("items", "read")]
    assert outside == [(False, None), (False, None)], "nothing leaks into the caller"
    [span] = app_otel.spans
    assert span.name == "items"


async def test_async_generators_forward_asend_and_record_failures(app_otel):
    @faultlens.instrument(mode="traced")
    async def ticker():
        received = []
        while len(received) < 2:
            received.append((yield len(received)))
        raise TimeoutError(f"got {received}")

    agen = ticker()
    assert await agen.asend(None) == 0
    assert await agen.asend("a") == 1
    with pytest.raises(TimeoutError, match=r"\['a', 'b'\]"):
        await agen.asend("b")
    [(span, event)] = app_otel.exception_events()
    assert span.name == "ticker"
    assert event.attributes["faultlens.error.code"] == "EXE_TIMEOUT"


class Repo:
    prefix = "p"

    @faultlens.instrument
    def method(self, x):
        if x is None:
            raise ValueError("none")
        return f"{self.prefix}{x}"

    @faultlens.instrument
    @classmethod
    def klass(cls, x):
        return f"{cls.prefix}{x}"

    @faultlens.instrument
    @staticmethod
    def static(x):
        raise PermissionError(x)


def test_methods_classmethods_and_staticmethods_bind_normally(app_otel):
    repo = Repo()
    assert repo.method(1) == "p1"
    assert Repo.klass(2) == "p2"
    assert repo.klass(3) == "p3"
    with pytest.raises(PermissionError):
        Repo.static("x")
    with pytest.raises(ValueError):
        repo.method(None)
    names = sorted(s.name for s, _ in app_otel.exception_events())
    assert names == ["Repo.method", "Repo.static"]


def test_the_traceback_still_points_at_the_users_code():
    @faultlens.instrument
    def origin():
        raise LookupError("here")

    with pytest.raises(LookupError) as info:
        origin()
    assert info.traceback[-1].name == "origin"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "always"}, "unknown mode 'always'"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"stage": 3}, "stage must be a string"),
    ],
)
def test_bad_decorator_arguments_are_typed_errors(kwargs, message):
    with pytest.raises(faultlens.ConfigError, match=message):
        faultlens.instrument(**kwargs)


def test_decorating_a_class_is_refused_with_a_pointer():
    with pytest.raises(faultlens.ConfigError, match="decorate its methods"):
        faultlens.instrument(Repo)


async def test_capture_works_as_async_context_manager_and_decorator(app_otel):
    @faultlens.capture(stage="transcode", video_hash="h1")
    async def transcode():
        raise MemoryError()

    with pytest.raises(MemoryError):
        await transcode()
    async with faultlens.capture(stage="upload"):
        assert current_scope().stage == "upload"
    [(_, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.context.video_hash"] == "h1"


def test_capture_as_a_generator_decorator_does_not_leak_its_scope():
    @faultlens.capture(stage="frames")
    def frames():
        yield current_scope().stage
        yield current_scope().stage

    outside = []
    inside = []
    for s in frames():
        inside.append(s)
        outside.append(current_scope().stage)
    assert inside == ["frames", "frames"]
    assert outside == [None, None]


def test_a_contextmanager_function_keeps_working_when_instrumented(app_otel):
    import contextlib

    @faultlens.instrument
    @contextlib.contextmanager
    def opened(fail):
        if fail:
            raise FileNotFoundError("nope")
        yield "handle"

    with opened(False) as h:
        assert h == "handle"
    # The call only builds the context manager; the body runs in __enter__, outside it.
    with pytest.raises(FileNotFoundError), opened(True):
        pass
    assert app_otel.exception_events() == []


def test_a_failing_generator_span_starts_when_the_generator_was_called(app_otel):
    import time

    @faultlens.instrument
    def slow_rows():
        yield 1
        raise ValueError("late failure")

    gen = slow_rows()
    called = time.time_ns()
    time.sleep(0.02)
    with pytest.raises(ValueError):
        list(gen)
    [span] = app_otel.spans
    assert span.start_time <= called
    assert inspect.isgeneratorfunction(slow_rows)


@pytest.mark.parametrize("mode", ["errors", "traced"])
def test_ignored_exceptions_propagate_but_are_not_failures(app_otel, mode):
    @faultlens.instrument(mode=mode, ignore=KeyError)
    def lookup(key):
        if key == "boom":
            raise ValueError("real failure")
        raise KeyError(key)

    with pytest.raises(KeyError):
        lookup("missing")
    with pytest.raises(ValueError):
        lookup("boom")
    [(_, event)] = app_otel.exception_events()
    assert event.attributes["exception.type"] == "ValueError"


def test_ignore_must_name_exception_classes():
    with pytest.raises(faultlens.ConfigError, match="ignore must be an exception class"):
        faultlens.instrument(ignore="KeyError")
