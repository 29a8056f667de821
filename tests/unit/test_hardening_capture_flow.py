"""The application's control flow is never changed by the capture layer.

- The end of an iteration (``StopIteration``/``StopAsyncIteration`` escaping ``__next__``,
  ``__anext__`` or a helper they call) and control flow (``KeyboardInterrupt``,
  ``SystemExit``, ``GeneratorExit``, cancellation) pass through every wrapper unrecorded.
- Async callable objects, partials of coroutine functions and sync callables that return a
  coroutine are recorded when what they return is awaited.
- One ``capture()`` instance shared by threads or tasks: each ``with`` is independent.
- A tracer or span processor that raises never reaches the application's code.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

import faultlens
import faultlens.auto
from faultlens.capture import callable_kind, callable_name, current_scope
from faultlens.capture._state import STATE
from support import hardening_autowrap as app

# -- the end of an iteration -------------------------------------------------------------


@pytest.fixture
def auto_app():
    faultlens.auto.install(["support.hardening_autowrap"])
    try:
        yield app
    finally:
        faultlens.auto.uninstall()


def test_a_helper_ending_an_iteration_under_faultlens_run_is_not_a_failure(auto_app):
    assert faultlens.auto.is_faultlens_wrapper(auto_app.Countdown._advance)
    with faultlens.testing.capture() as cap:
        assert list(auto_app.Countdown(3)) == [2, 1, 0]
        assert next(auto_app.Countdown(0), "done") == "done"
    assert cap.counter("faultlens.errors") == 0
    assert cap.spans == []


async def test_an_async_helper_ending_an_async_iteration_is_not_a_failure(auto_app):
    with faultlens.testing.capture() as cap:
        assert [i async for i in auto_app.AsyncCountdown(2)] == [1, 0]
    assert cap.counter("faultlens.errors") == 0
    assert cap.spans == []


@pytest.mark.parametrize("mode", ["errors", "traced"])
def test_an_instrumented_dunder_next_ends_loops_as_before(mode):
    class Numbers:
        def __init__(self):
            self.left = 2

        def __iter__(self):
            return self

        @faultlens.instrument(mode=mode)
        def __next__(self):
            if not self.left:
                raise StopIteration
            self.left -= 1
            return self.left

    with faultlens.testing.capture() as cap:
        assert list(Numbers()) == [1, 0]
    assert cap.counter("faultlens.errors") == 0
    assert all(s.status.status_code is not StatusCode.ERROR for s in cap.spans)


def test_stop_iteration_leaving_a_capture_block_is_not_a_failure():
    it = iter([])
    with (
        faultlens.testing.capture() as cap,
        pytest.raises(StopIteration),
        faultlens.capture(stage="read"),
    ):
        next(it)
    assert cap.counter("faultlens.errors") == 0


def test_an_explicit_record_error_of_a_stop_iteration_still_records_it():
    with faultlens.testing.capture() as cap:
        faultlens.record_error(StopIteration("asked for"))
    assert cap.counter("faultlens.errors") == 1


@pytest.mark.parametrize("mode", ["errors", "traced"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(2)], ids=["ctrl-c", "exit"])
def test_interrupts_and_exits_pass_through_unrecorded_and_unchanged(mode, exc):
    @faultlens.instrument(mode=mode)
    def stop():
        raise exc

    with faultlens.testing.capture() as cap:
        with pytest.raises(type(exc)) as raised:
            stop()
        assert raised.value is exc
    assert cap.counter("faultlens.errors") == 0
    assert all(s.status.status_code is not StatusCode.ERROR for s in cap.spans)


@pytest.mark.parametrize("mode", ["errors", "traced"])
async def test_cancellation_passes_through_unrecorded(mode):
    @faultlens.instrument(mode=mode)
    async def wait_forever():
        await asyncio.sleep(3600)

    with faultlens.testing.capture() as cap:
        task = asyncio.ensure_future(wait_forever())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert cap.counter("faultlens.errors") == 0


@pytest.mark.parametrize("mode", ["errors", "traced"])
def test_closing_an_instrumented_generator_early_is_not_a_failure(mode):
    @faultlens.instrument(mode=mode)
    def lines():
        yield "a"
        yield "b"

    with faultlens.testing.capture() as cap:
        gen = lines()
        assert next(gen) == "a"
        gen.close()
    assert cap.counter("faultlens.errors") == 0


def test_a_generator_called_with_bad_arguments_fails_and_is_recorded_like_any_call():
    @faultlens.instrument
    def lines(path):
        yield path

    with faultlens.testing.capture() as cap, pytest.raises(TypeError):
        lines()
    assert cap.counter("faultlens.errors") == 1


# -- async callables, classified by what the call returns ----------------------------------


class Client:
    """An async client object: ``await client(url)``."""

    async def __call__(self, url: str) -> str:
        await asyncio.sleep(0)
        raise ConnectionError(f"{url} refused")


async def fetch(url: str, timeout: float = 1.0) -> str:
    await asyncio.sleep(0)
    raise TimeoutError(f"{url} after {timeout} s")


def synchronous_decorator(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)  # hands back the coroutine: async in effect

    return wrapper


def test_callables_are_classified_by_what_calling_them_returns():
    assert callable_kind(Client()) == "async"
    assert callable_kind(functools.partial(fetch, "u")) == "async"
    assert callable_kind(Client().__call__) == "async"
    assert callable_kind(synchronous_decorator(fetch)) == "sync"  # recognised at the call
    assert callable_kind(faultlens.instrument(Client())) == "async"
    assert callable_name(functools.partial(fetch, "u")) == "fetch"
    assert callable_name(functools.partial(functools.partial(fetch), "u")) == "fetch"
    assert callable_name(Client()) == "Client"


@pytest.mark.parametrize("mode", ["errors", "traced"])
@pytest.mark.parametrize(
    ("make", "error", "span_name"),
    [
        (Client, ConnectionError, "Client"),
        (lambda: functools.partial(fetch, timeout=2.0), TimeoutError, "fetch"),
        (lambda: synchronous_decorator(fetch), TimeoutError, "fetch"),
    ],
    ids=["async-__call__", "partial", "sync-returning-coroutine"],
)
async def test_async_callables_of_every_shape_are_recorded_when_awaited(
    mode, make, error, span_name
):
    target = faultlens.instrument(make(), mode=mode)
    with faultlens.testing.capture() as cap, pytest.raises(error):
        await target("http://svc")
    assert cap.counter("faultlens.errors") == 1
    [(span, _)] = cap.events()
    assert span.name == span_name


def is_async_callable(obj) -> bool:
    """How Starlette tells an async endpoint from a sync one (which it runs in a thread)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(obj.__call__)
    )


@pytest.mark.parametrize(
    "make",
    [Client, lambda: functools.partial(fetch, timeout=1.0), lambda: fetch],
    ids=["async-__call__", "partial", "coroutine-function"],
)
def test_instrumented_async_callables_still_look_async_to_frameworks(make):
    assert is_async_callable(make())
    assert is_async_callable(faultlens.instrument(make()))
    assert is_async_callable(faultlens.instrument(make(), mode="traced"))


async def test_a_coroutine_returned_by_a_sync_callable_keeps_its_value_and_stage():
    async def answer():
        return current_scope().stage

    @faultlens.instrument(stage="scoring")
    def make():
        return answer()

    assert await make() == "scoring"


def test_a_sync_object_wrapping_an_async_function_stays_sync():
    class RunsItself:
        """Looks async (``__wrapped__`` is a coroutine function), runs the loop itself."""

        def __init__(self, func):
            self.__wrapped__ = func

        def __call__(self, *args):
            return asyncio.run(self.__wrapped__(*args))

    async def compute(x):
        return x + 1

    runner = faultlens.instrument(RunsItself(compute))
    assert callable_kind(RunsItself(compute)) == "sync"
    assert runner(1) == 2


# -- a shared capture() --------------------------------------------------------------------


def test_one_capture_instance_shared_by_threads_keeps_each_with_independent():
    shared = faultlens.capture(stage="shared")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def first():
        with shared:
            a_in.set()
            b_in.wait(5)
        a_out.set()
        seen["a_after"] = current_scope().stage
        info = faultlens.record_error(ValueError("after the block"))
        seen["a_info_stage"] = info.stage

    def second():
        a_in.wait(5)
        with shared:
            b_in.set()
            a_out.wait(5)
            seen["b_inside"] = current_scope().stage
        seen["b_after"] = current_scope().stage

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"a_after": None, "a_info_stage": None, "b_inside": "shared", "b_after": None}


async def test_one_capture_instance_shared_by_tasks_keeps_each_with_independent():
    shared = faultlens.capture(stage="batch", job=1)
    a_in, b_in, a_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first():
        async with shared:
            a_in.set()
            await b_in.wait()
        a_out.set()
        return current_scope().stage

    async def second():
        await a_in.wait()
        async with shared:
            b_in.set()
            await a_out.wait()
            inside = current_scope().stage
        return inside, current_scope().stage

    assert await asyncio.gather(first(), second()) == [None, ("batch", None)]


def test_a_capture_instance_entered_recursively_unwinds_one_level_at_a_time():
    scope = faultlens.capture(stage="outer")
    with scope:
        with scope:
            assert current_scope().stage == "outer"
        assert current_scope().stage == "outer"
        with faultlens.capture(stage="inner"):
            assert current_scope().stage == "inner"
    assert current_scope().stage is None


def test_leaving_out_of_order_keeps_the_blocks_still_open():
    """Generators suspended inside their blocks and closed in another order."""
    a = faultlens.capture(stage="a", a=1)
    b = faultlens.capture(stage="b", b=2)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert current_scope().stage == "b"
    assert dict(current_scope().context) == {"b": 2}
    b.__exit__(None, None, None)
    assert current_scope().stage is None


def test_a_capture_decorator_used_from_threads_tags_each_call():
    @faultlens.capture(stage="worker")
    def job(i):
        return current_scope().stage, i

    results: list[object] = []
    threads = [threading.Thread(target=lambda i=i: results.append(job(i))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [("worker", i) for i in range(4)]


# -- telemetry failures never reach the application ---------------------------------------


class ExplodingTracerProvider(TracerProvider):
    def get_tracer(self, *args, **kwargs):
        tracer = super().get_tracer(*args, **kwargs)

        def start_span(*a, **k):
            raise RuntimeError("tracer exploded")

        tracer.start_span = start_span
        return tracer


class ExplodingOnEnd(SpanProcessor):
    def on_end(self, span):
        raise RuntimeError("span processor exploded")


@pytest.mark.parametrize("provider", ["tracer", "processor"])
async def test_a_raising_tracer_or_span_processor_never_reaches_the_application(provider):
    if provider == "tracer":
        tp = ExplodingTracerProvider()
    else:
        tp = TracerProvider()
        tp.add_span_processor(ExplodingOnEnd())

    @faultlens.instrument(mode="traced")
    def compute(x):
        return x * 2

    @faultlens.instrument(mode="traced")
    async def acompute(x):
        return x * 3

    @faultlens.instrument(mode="traced")
    def items():
        yield from (1, 2)

    @faultlens.instrument(mode="traced")
    def broken():
        raise LookupError("app error")

    STATE.tracer_provider = tp
    STATE.bump()
    assert compute(2) == 4
    assert await acompute(2) == 6
    assert list(items()) == [1, 2]
    with pytest.raises(LookupError) as raised:
        broken()
    assert str(raised.value) == "app error" and raised.value.__context__ is None


def test_capture_decorates_static_and_class_methods_and_callable_objects_keeping_binding():
    from support import hardening_capture as h

    assert h.Scoped.static_stage() == "static"
    assert h.Scoped().static_stage() == "static"
    assert h.Scoped.class_stage() == ("Scoped", "class")
    assert h.Scoped().class_stage() == ("Scoped", "class")

    class Handler:
        async def __call__(self):
            return current_scope().stage

    handler = faultlens.capture(stage="handler")(Handler())
    assert is_async_callable(handler)
    assert asyncio.run(handler()) == "handler"


def test_capture_decorated_callables_pickle_like_the_bare_ones():
    import pickle

    from support import hardening_capture as h

    for fn, expected in [
        (h.scoped_stage, "pooled"),
        (h.Scoped.static_stage, "static"),
        (h.Scoped.class_stage, ("Scoped", "class")),
    ]:
        assert pickle.loads(pickle.dumps(fn))() == expected
    by_value = faultlens.capture(stage="partial")(functools.partial(divmod, 7))
    assert pickle.loads(pickle.dumps(by_value))(2) == (3, 1)
