"""Fallbacks of a recovered *method* receive the call's arguments without ``self`` (or
``cls``), as ``Fallback`` documents: a fallback is a plain function of the arguments, the
same whatever decorator shape or descriptor the method has."""

from __future__ import annotations

import pytest

import faultlens
from faultlens.resilience import Fallback, RecoveryContext, Restart, recover, resilient


def from_cache(job: str, *, tier: str = "gold") -> str:
    return f"cached:{job}:{tier}"


class Scorer:
    calls: list[str] = []

    @recover(fallbacks=[from_cache])
    def result(self, job: str, *, tier: str = "gold") -> str:
        raise ConnectionError(job)

    @classmethod
    @recover(fallbacks=[from_cache])
    def class_result(cls, job: str) -> str:
        raise ConnectionError(job)

    @recover(fallbacks=[from_cache])
    @classmethod
    def class_result_outer(cls, job: str) -> str:
        raise ConnectionError(job)

    @staticmethod
    @recover(fallbacks=[from_cache])
    def static_result(job: str) -> str:
        raise ConnectionError(job)

    @recover(fallbacks=[from_cache])
    @staticmethod
    def static_result_outer(job: str) -> str:
        raise ConnectionError(job)

    @faultlens.instrument
    @recover(fallbacks=[from_cache])
    def instrumented_result(self, job: str) -> str:
        raise ConnectionError(job)

    @resilient(retry={"attempts": 2, "on": ConnectionError}, fallbacks=[from_cache])
    def stacked_result(self, job: str) -> str:
        raise ConnectionError(job)

    @recover(fallbacks=[from_cache])
    async def async_result(self, job: str) -> str:
        raise ConnectionError(job)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.result("j1", tier="silver"),
        lambda s: Scorer.result(s, "j1", tier="silver"),
        lambda s: s.class_result("j1") + ":silver",
        lambda s: Scorer.class_result("j1") + ":silver",
        lambda s: s.class_result_outer("j1") + ":silver",
        lambda s: s.static_result("j1") + ":silver",
        lambda s: Scorer.static_result_outer("j1") + ":silver",
        lambda s: s.instrumented_result("j1") + ":silver",
        lambda s: s.stacked_result("j1") + ":silver",
    ],
    ids=[
        "method",
        "method called on the class",
        "classmethod",
        "classmethod on the class",
        "recover over a classmethod object",
        "staticmethod",
        "recover over a staticmethod object",
        "under @instrument",
        "resilient",
    ],
)
def test_a_fallback_receives_the_arguments_without_self(cap, slept, call):
    result = call(Scorer())
    assert result.startswith("cached:j1:")  # from_cache(job) got "j1", not the instance


async def test_an_async_method_fallback_receives_the_arguments_without_self(cap):
    assert await Scorer().async_result("j2") == "cached:j2:gold"


def test_a_plain_function_whose_first_argument_has_a_same_named_method_keeps_it(cap):
    class Other:
        def first(self):  # same name as the function below, but not this wrapper
            return "method"

    @recover(fallbacks=[lambda obj: type(obj).__name__])
    def first(obj):
        raise ConnectionError

    assert first(Other()) == "Other"


def test_strategies_see_the_instance_and_a_bound_function(cap):
    seen: list[RecoveryContext] = []

    class Spy:
        name = "spy"

        def applies(self, exc: Exception) -> bool:
            return True

        def attempt(self, ctx: RecoveryContext) -> str:
            seen.append(ctx)
            return "spied"

        async def attempt_async(self, ctx: RecoveryContext) -> str:
            return "spied"

    class Repo:
        @recover(Spy())
        def load(self, key: str) -> str:
            raise ConnectionError(key)

    repo = Repo()
    assert repo.load("k") == "spied"
    (ctx,) = seen
    assert ctx.args == ("k",)
    assert ctx.instance is repo
    assert ctx.func.__self__ is repo


def test_restart_re_runs_a_method_with_a_fresh_resource(cap):
    class Repo:
        def __init__(self) -> None:
            self.tries = 0

        @recover(Restart(lambda: "fresh", argument="conn"))
        def query(self, conn: str, sql: str) -> str:
            self.tries += 1
            if conn != "fresh":
                raise ConnectionError(conn)
            return f"{conn}:{sql}"

    repo = Repo()
    assert repo.query("stale", "select 1") == "fresh:select 1"
    assert repo.tries == 2


def test_fallback_chain_on_a_method_with_a_value_entry(cap):
    class Svc:
        @recover(Fallback(lambda x: 1 / 0, "default"))
        def get(self, x: int) -> str:
            raise TimeoutError

    assert Svc().get(3) == "default"
