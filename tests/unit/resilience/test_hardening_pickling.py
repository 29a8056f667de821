"""Functions under @retry, a CircuitBreaker, @recover and @resilient pickle exactly like the
undecorated ones, so ``ProcessPoolExecutor.map`` and ``multiprocessing.Pool.map`` keep
working (spawn and fork): functions, methods, classmethods and staticmethods by reference;
callable objects and partials by value, the decorator being applied again on load."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from support import resilience_targets as targets

START_METHODS = [m for m in ("spawn", "fork") if m in multiprocessing.get_all_start_methods()]


@pytest.fixture(scope="module", params=START_METHODS)
def pool(request: pytest.FixtureRequest) -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context(request.param)
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as executor:
        yield executor


FUNCTIONS = {
    "retry": targets.retried,
    "breaker": targets.guarded,
    "recover": targets.recovered,
    "resilient": targets.stacked,
    "classmethod under retry": targets.Scorer.build,
    "retry over a classmethod object": targets.Scorer.build_outer,
    "retry over a staticmethod object": targets.Scorer.helper,
    "recover over a staticmethod object": targets.Scorer.safe_helper,
    "bound method under retry": targets.Scorer(3).score,
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_decorated_functions_and_methods_pickle_by_reference(name: str, protocol: int):
    func = FUNCTIONS[name]
    data = pickle.dumps(func, protocol=protocol)
    assert b"resilience_targets" in data  # a reference to the module, not a copy of code
    copy = pickle.loads(data)
    # the very same function object (a bound method: the same function, an equal instance)
    assert getattr(copy, "__func__", copy) is getattr(func, "__func__", func)
    assert getattr(copy, "__self__", None) == getattr(func, "__self__", None)


@pytest.mark.parametrize("name", ["retry", "breaker", "recover", "resilient"])
def test_process_pool_map_runs_decorated_functions(pool: ProcessPoolExecutor, name: str):
    assert list(pool.map(FUNCTIONS[name], [1, 2, 3])) == [2, 4, 6]


def test_process_pool_map_runs_decorated_methods(pool: ProcessPoolExecutor):
    scorer = targets.Scorer(3)
    assert list(pool.map(scorer.score, [1, 2])) == [3, 6]
    assert list(pool.map(targets.Scorer.build, [4])) == [targets.Scorer(4)]
    assert list(pool.map(targets.Scorer.build_outer, [5])) == [targets.Scorer(5)]
    assert list(pool.map(targets.Scorer.helper, [6])) == [12]
    assert list(pool.map(targets.Scorer.safe_helper, [7])) == [14]


def test_the_child_runs_the_decorated_function_not_a_copy_of_the_plain_one(
    pool: ProcessPoolExecutor,
):
    # recovered(-1) fails and its fallback answers -1: only the decorated function does that.
    assert list(pool.map(targets.recovered, [-1, 2])) == [-1, 4]


def test_decorated_callable_objects_pickle_by_value_like_the_objects_themselves(
    pool: ProcessPoolExecutor,
):
    for wrapped, expected in [
        (targets.retried_doubler, [3, 6]),
        (targets.guarded_partial, [2, 4]),
        (targets.recovered_doubler, [5, 10]),
    ]:
        copy = pickle.loads(pickle.dumps(wrapped))
        assert copy is not wrapped
        assert [copy(1), copy(2)] == expected
        assert list(pool.map(wrapped, [1, 2])) == expected


def test_an_unpickled_callable_object_keeps_its_decorator_configuration():
    copy = pickle.loads(pickle.dumps(targets.flaky_once))
    assert copy(4) == 4  # the first call's TimeoutError was retried: same `on=`, attempts
    assert copy.calls == 2  # attributes read through to the wrapped object


def test_a_breaker_unpickles_as_the_breaker_of_that_name_in_the_process():
    copy = pickle.loads(pickle.dumps(targets.guard))
    assert copy.name == "pickle-targets"
    assert copy.failure_threshold == 3
    assert pickle.loads(pickle.dumps(copy)) is copy  # one breaker per name and process


def test_multiprocessing_pool_map_with_the_default_start_method():
    with multiprocessing.get_context(START_METHODS[-1]).Pool(1) as p:
        assert p.map(targets.retried, [1, 2]) == [2, 4]
        assert p.map(targets.stacked, [3]) == [6]


def test_async_decorated_function_pickles_and_runs_in_the_child(pool: ProcessPoolExecutor):
    assert pickle.loads(pickle.dumps(targets.retried_async)) is targets.retried_async
    assert asyncio.run(targets.retried_async(2)) == 4
