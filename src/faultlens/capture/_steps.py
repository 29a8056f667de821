"""Driving a generator step by step so per-step state (a span, a context scope) is attached
only while the generator's own code runs, never across ``yield`` into the caller's code.

``send``/``throw``/``close`` (and their async forms) are forwarded exactly, so a wrapped
generator behaves like the original, coroutine-style generators included. An exception the
caller threw in that comes back out unchanged (a ``with`` block's failure thrown into a
``@contextmanager`` generator, a request's error into a FastAPI ``yield`` dependency) is the
caller's failure, not the generator's: it is not reported to ``hooks.error``. The hooks are
faultlens's code: whatever they raise is swallowed here, never seen by the caller (a failing
hook costs its telemetry, not the iteration).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, Protocol

__all__ = ["StepHooks", "drive", "drive_async"]

_FAILED = object()  # the token of an enter() that raised: there is nothing to leave


class StepHooks(Protocol):
    def enter(self) -> Any: ...
    def leave(self, token: Any) -> None: ...
    def error(self, exc: BaseException) -> None: ...
    def finish(self) -> None: ...


def drive(gen: Generator[Any, Any, Any], hooks: StepHooks) -> Generator[Any, Any, Any]:
    to_send: Any = None
    to_throw: BaseException | None = None
    thrown: BaseException | None = None  # the last exception the caller threw in
    try:
        while True:
            try:
                token = hooks.enter()
            except Exception:
                token = _FAILED
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = gen.throw(exc)
                else:
                    item = gen.send(to_send)
            except StopIteration as stop:
                return stop.value
            finally:
                if token is not _FAILED:
                    try:
                        hooks.leave(token)
                    except Exception:
                        pass
            try:
                to_send = yield item
            except GeneratorExit:
                try:
                    token = hooks.enter()
                except Exception:
                    token = _FAILED
                try:
                    gen.close()
                finally:
                    if token is not _FAILED:
                        try:
                            hooks.leave(token)
                        except Exception:
                            pass
                raise
            except BaseException as exc:  # thrown in by the caller: hand it to the generator
                to_throw, to_send, thrown = exc, None, exc
    except BaseException as exc:
        if exc is not thrown:
            try:
                hooks.error(exc)
            except Exception:
                pass
        raise
    finally:
        try:
            hooks.finish()
        except Exception:
            pass


async def drive_async(agen: AsyncGenerator[Any, Any], hooks: StepHooks) -> AsyncGenerator[Any, Any]:
    to_send: Any = None
    to_throw: BaseException | None = None
    thrown: BaseException | None = None  # the last exception the caller threw in
    try:
        while True:
            try:
                token = hooks.enter()
            except Exception:
                token = _FAILED
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await agen.athrow(exc)
                else:
                    item = await agen.asend(to_send)
            except StopAsyncIteration:
                return
            finally:
                if token is not _FAILED:
                    try:
                        hooks.leave(token)
                    except Exception:
                        pass
            try:
                to_send = yield item
            except GeneratorExit:
                try:
                    token = hooks.enter()
                except Exception:
                    token = _FAILED
                try:
                    await agen.aclose()
                finally:
                    if token is not _FAILED:
                        try:
                            hooks.leave(token)
                        except Exception:
                            pass
                raise
            except BaseException as exc:
                to_throw, to_send, thrown = exc, None, exc
    except BaseException as exc:
        if exc is not thrown:
            try:
                hooks.error(exc)
            except Exception:
                pass
        raise
    finally:
        try:
            hooks.finish()
        except Exception:
            pass
