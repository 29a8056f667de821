"""Instrumented callables go to other processes exactly like the bare ones.

Python pickles a function by reference (its module and qualified name) and a bound method as
``getattr(instance, name)``; ``@faultlens.instrument`` (both modes, every callable shape) and
``faultlens run``'s auto-instrumentation keep that, so ``ProcessPoolExecutor.map`` and
``multiprocessing.Pool.map`` work under the spawn and the fork start methods. A recorded
exception carries no mark to another process, nor back from one.
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

import faultlens
import faultlens.auto
from support import hardening_autowrap as app
from support import hardening_capture as h

START_METHODS = [m for m in ("spawn", "fork") if m in multiprocessing.get_all_start_methods()]

# (callable, args, expected) for every shape: functions, coroutines, generators, async
# generators, methods, static and class methods (decorated inside and outside), both modes.
SHAPES = [
    (h.double, (4,), 8),
    (h.triple, (4,), 12),
    (h.adouble, (4,), 8),
    (h.count_to, (3,), [0, 1, 2]),
    (h.acount_to, (3,), [0, 1, 2]),
    (h.Job.scale, (h.Job(5), 4), 20),
    (h.Job(3).scale, (4,), 12),
    (h.Job(3).ascale, (4,), 12),
    (h.Job.static_add, (4,), 5),
    (h.Job(2).static_add, (4,), 5),
    (h.Job.tagged, (4,), "Job:4"),
    (h.Job(1).tagged, (4,), "Job:4"),
    (h.Job.static_outer, (4,), 3),
    (h.Job.class_outer, (4,), "Job/4"),
]
IDS = [
    "function",
    "traced-function",
    "coroutine",
    "generator",
    "async-generator",
    "method-via-class",
    "bound-method",
    "bound-async-method",
    "staticmethod",
    "staticmethod-via-instance",
    "classmethod",
    "classmethod-via-instance",
    "staticmethod-outside",
    "classmethod-outside",
]


@pytest.mark.parametrize(("fn", "args", "expected"), SHAPES, ids=IDS)
def test_every_instrumented_shape_round_trips_through_pickle_and_copy(fn, args, expected):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        clone = pickle.loads(pickle.dumps(fn, protocol))
        assert h.call(clone, *args) == expected
    assert h.call(copy.copy(fn), *args) == expected
    assert h.call(copy.deepcopy(fn), *args) == expected


def test_a_module_function_pickles_to_the_same_bytes_as_a_plain_function():
    def plain_reference(module: str, name: str) -> bytes:
        return pickle.dumps(getattr(sys.modules[module], name))

    # By reference: module and name, nothing of the wrapper.
    data = pickle.dumps(h.double)
    assert b"support.hardening_capture" in data and b"double" in data
    assert data == plain_reference("support.hardening_capture", "double")
    assert pickle.loads(data) is h.double
    assert copy.copy(h.double) is h.double and copy.deepcopy(h.double) is h.double


def test_what_cannot_be_pickled_bare_cannot_be_pickled_instrumented():
    def local(x):
        return x

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(local)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(faultlens.instrument(local))


def test_an_instrumented_callable_object_pickles_by_value_like_the_object():
    from functools import partial

    wrapped = faultlens.instrument(partial(pow, 2))
    clone = pickle.loads(pickle.dumps(wrapped))
    assert clone(5) == 32
    with faultlens.testing.capture() as cap:
        bad = pickle.loads(pickle.dumps(faultlens.instrument(partial(int, "x"))))
        with pytest.raises(ValueError):
            bad()
    assert cap.span("int") is not None  # still instrumented, named after the function


@pytest.mark.parametrize("method", START_METHODS)
def test_process_pools_run_instrumented_callables(method):
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        assert list(pool.map(h.double, [1, 2, 3])) == [2, 4, 6]
        assert list(pool.map(h.Job(7).scale, [1, 2])) == [7, 14]
        futures = [pool.submit(h.call, fn, *args) for fn, args, _ in SHAPES]
        assert [f.result() for f in futures] == [expected for _, _, expected in SHAPES]
    with ctx.Pool(1) as mp_pool:
        assert mp_pool.map(h.triple, [1, 2]) == [3, 6]
        assert mp_pool.map(h.Job.static_add, [1, 2]) == [2, 3]


@pytest.mark.parametrize("method", START_METHODS)
def test_an_error_from_a_worker_is_recorded_in_the_parent_that_re_raises_it(method):
    """The worker records it in its own process (or not at all: it never configured
    faultlens); the pickled exception carries no mark, so the parent records it once."""

    @faultlens.instrument
    def collect(future):
        return future.result()

    ctx = multiprocessing.get_context(method)
    with faultlens.testing.capture() as cap:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            future = pool.submit(h.fail, 3)
            with pytest.raises(ValueError) as raised:
                collect(future)
        assert "bad input 3" in str(raised.value)
        assert vars(raised.value) == {}
        assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
        [span] = [s for s in cap.spans if s.name == "collect"]
        assert [e.name for e in span.events] == ["exception"]


@pytest.fixture
def auto_app():
    faultlens.auto.install(["support.hardening_autowrap"])
    try:
        yield app
    finally:
        faultlens.auto.uninstall()


@pytest.mark.parametrize("method", START_METHODS)
def test_functions_wrapped_by_faultlens_run_go_to_process_pools(auto_app, method):
    assert faultlens.auto.is_faultlens_wrapper(auto_app.work)
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        assert list(pool.map(auto_app.work, [1, 2])) == [10, 20]
        assert list(pool.map(auto_app.Worker(5).run, [1, 2])) == [6, 7]
        assert list(pool.map(auto_app.Worker.helper, [1, 2])) == [-1, -2]
    with ctx.Pool(1) as mp_pool:
        assert mp_pool.map(auto_app.work, [3]) == [30]


def test_auto_wrapped_functions_pickle_by_reference(auto_app):
    data = pickle.dumps(auto_app.work)
    faultlens.auto.uninstall()
    # Unpickled where the module is not instrumented, it is the plain function: by name.
    assert pickle.loads(data) is app.work
    assert not faultlens.auto.is_faultlens_wrapper(app.work)
