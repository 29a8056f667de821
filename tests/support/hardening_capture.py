"""Instrumented callables a child process can import: the process-pool tests send them by
reference (spawn and fork), as an application would."""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any

import faultlens


@faultlens.instrument
def double(x: int) -> int:
    return 2 * x


@faultlens.instrument(mode="traced", stage="pool")
def triple(x: int) -> int:
    return 3 * x


@faultlens.instrument
async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@faultlens.instrument(mode="traced")
def count_to(n: int):
    yield from range(n)


@faultlens.instrument
async def acount_to(n: int):
    for i in range(n):
        yield i


@faultlens.instrument
def fail(x: int) -> int:
    raise ValueError(f"bad input {x} in pid {os.getpid()}")


class Job:
    def __init__(self, k: int) -> None:
        self.k = k

    @faultlens.instrument
    def scale(self, x: int) -> int:
        return self.k * x

    @faultlens.instrument(mode="traced")
    async def ascale(self, x: int) -> int:
        return self.k * x

    @faultlens.instrument
    @staticmethod
    def static_add(x: int) -> int:
        return x + 1

    @faultlens.instrument(mode="traced")
    @classmethod
    def tagged(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @staticmethod
    @faultlens.instrument
    def static_outer(x: int) -> int:
        return x - 1

    @classmethod
    @faultlens.instrument(mode="traced")
    def class_outer(cls, x: int) -> str:
        return f"{cls.__name__}/{x}"


def call(fn: Any, *args: Any) -> Any:
    """Run any kind of callable to completion (in a worker process)."""
    result = fn(*args)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    if inspect.isasyncgen(result):

        async def collect() -> list[Any]:
            return [item async for item in result]

        return asyncio.run(collect())
    if inspect.isgenerator(result):
        return list(result)
    return result


def pid(_: object = None) -> int:
    return os.getpid()


@faultlens.capture(stage="pooled")
def scoped_stage(_: object = None) -> str | None:
    from faultlens.capture import current_scope

    return current_scope().stage


class Scoped:
    @faultlens.capture(stage="static")
    @staticmethod
    def static_stage() -> str | None:
        from faultlens.capture import current_scope

        return current_scope().stage

    @faultlens.capture(stage="class")
    @classmethod
    def class_stage(cls) -> tuple[str, str | None]:
        from faultlens.capture import current_scope

        return cls.__name__, current_scope().stage
