"""A sync function decorated in place in errors mode becomes a plain function around it.

That is the common case and the one users pay for on every successful call, so it gets the
cheapest wrapper there is (what ``functools.wraps`` decorators make) instead of a wrapt
proxy. It must still behave as the proxy did where users can tell: metadata and signature,
method binding, pickling, recording, and being recognised as faultlens's own.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle

import pytest

import faultlens
import faultlens.auto
from faultlens.capture import FunctionWrapper, current_scope


def kept_name(x: int) -> int:
    """Instrumented by an explicit call below; this name keeps the bare function."""
    if x < 0:
        raise ValueError("negative")
    return x


@faultlens.instrument
def decorated(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * 2


def test_a_decorated_function_is_a_function_with_the_originals_face():
    def mark(f):
        f.route = "/load"  # what a framework decorator underneath leaves on the function
        return f

    @faultlens.instrument
    @mark
    def load(path: str, *, retries: int = 3) -> bytes:
        """Load a file."""
        return path.encode()

    assert inspect.isfunction(load)
    assert not isinstance(load, FunctionWrapper)
    assert (load.__name__, load.__doc__, load.route) == ("load", "Load a file.", "/load")
    assert load.__qualname__.endswith("load")
    assert load.__module__ == __name__
    assert str(inspect.signature(load)) == "(path: 'str', *, retries: 'int' = 3) -> 'bytes'"
    assert load("a") == b"a"
    assert faultlens.auto.is_faultlens_wrapper(load)


def test_it_binds_as_a_method_and_under_staticmethod():
    class Job:
        factor = 3

        @faultlens.instrument
        def scale(self, x: int) -> int:
            return self.factor * x

        @staticmethod
        @faultlens.instrument
        def add(x: int) -> int:
            return x + 1

    assert Job().scale(2) == 6
    assert Job.scale(Job(), 2) == 6
    assert Job.add(1) == 2 and Job().add(1) == 2


def test_a_failure_gets_its_own_span_from_the_calls_start(app_otel):
    @faultlens.instrument
    def parse(text: str) -> int:
        return int(text)

    with pytest.raises(ValueError) as raised:
        parse("x")
    [(span, event)] = app_otel.exception_events()
    assert span.name == "parse"
    assert span.start_time <= event.timestamp <= span.end_time
    assert event.attributes["exception.type"] == "ValueError"
    assert raised.value.__traceback__ is not None
    assert parse("4") == 4
    assert len(app_otel.spans) == 1  # nothing on success


def test_ignore_and_control_flow_pass_unrecorded(app_otel):
    @faultlens.instrument(ignore=KeyError)
    def lookup(d: dict, k: str) -> int:
        return d[k]

    @faultlens.instrument
    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyError):
        lookup({}, "k")
    with pytest.raises(KeyboardInterrupt):
        stop()
    assert app_otel.exception_events() == []


def test_a_stage_is_the_scope_while_the_function_runs(app_otel):
    seen = []

    @faultlens.instrument(stage="render")
    def render() -> None:
        seen.append(current_scope().stage)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        render()
    assert seen == ["render"]
    assert current_scope().stage is None
    [(_span, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.stage"] == "render"


def test_a_returned_coroutine_is_recorded_when_awaited(app_otel):
    async def fetch() -> None:
        raise ConnectionError("down")

    @faultlens.instrument
    def start_fetch():
        return fetch()

    with pytest.raises(ConnectionError):
        asyncio.run(start_fetch())
    [(span, _event)] = app_otel.exception_events()
    assert span.name == "start_fetch"


def test_decorated_in_place_it_pickles_by_reference_like_the_bare_function():
    assert pickle.loads(pickle.dumps(decorated)) is decorated


def test_instrumenting_a_function_that_keeps_its_name_gives_the_proxy_pickled_by_value(
    app_otel,
):
    wrapped = faultlens.instrument(kept_name)
    assert isinstance(wrapped, FunctionWrapper)
    again = pickle.loads(pickle.dumps(wrapped))
    assert again is not wrapped and again(2) == 2
    with pytest.raises(ValueError):
        again(-1)
    assert len(app_otel.exception_events()) == 1
