"""Driving a generator step by step so per-step state (a span, a context scope) is attached
only while the generator's own code runs, never across ``yield`` into the caller's code.

``send``/``throw``/``close`` (and their async forms) are forwarded exactly, so a wrapped
generator behaves like the original, coroutine-style generators included.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, Protocol

__all__ = ["StepHooks", "drive", "drive_async"]


class StepHooks(Protocol):
    def enter(self) -> Any: ...
    def leave(self, token: Any) -> None: ...
    def error(self, exc: BaseException) -> None: ...
    def finish(self) -> None: ...


def drive(gen: Generator[Any, Any, Any], hooks: StepHooks) -> Generator[Any, Any, Any]:
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            token = hooks.enter()
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = gen.throw(exc)
                else:
                    item = gen.send(to_send)
            except StopIteration as stop:
                return stop.value
            finally:
                hooks.leave(token)
            try:
                to_send = yield item
            except GeneratorExit:
                token = hooks.enter()
                try:
                    gen.close()
                finally:
                    hooks.leave(token)
                raise
            except BaseException as exc:  # thrown in by the caller: hand it to the generator
                to_throw, to_send = exc, None
    except BaseException as exc:
        hooks.error(exc)
        raise
    finally:
        hooks.finish()


async def drive_async(agen: AsyncGenerator[Any, Any], hooks: StepHooks) -> AsyncGenerator[Any, Any]:
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            token = hooks.enter()
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await agen.athrow(exc)
                else:
                    item = await agen.asend(to_send)
            except StopAsyncIteration:
                return
            finally:
                hooks.leave(token)
            try:
                to_send = yield item
            except GeneratorExit:
                token = hooks.enter()
                try:
                    await agen.aclose()
                finally:
                    hooks.leave(token)
                raise
            except BaseException as exc:
                to_throw, to_send = exc, None
    except BaseException as exc:
        hooks.error(exc)
        raise
    finally:
        hooks.finish()
