"""Uncaught exceptions are recorded (flagged ``uncaught``) and the previous hooks still run."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

import faultlens
from faultlens.auto import install_excepthooks, uninstall_excepthooks


@pytest.fixture
def hooks():
    install_excepthooks()
    yield
    uninstall_excepthooks()


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


def test_main_thread_crash_is_recorded_then_the_previous_hook_prints_it(monkeypatch):
    seen = []

    def printing_hook(*args):
        seen.append(args)

    monkeypatch.setattr(sys, "excepthook", printing_hook)
    install_excepthooks()
    try:
        exc = _raised(FileNotFoundError("config.yaml"))
        with faultlens.testing.capture() as cap:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        uninstall_excepthooks()
    assert [e.info.code for e in cap.errors] == ["VAL_FILE_NOT_FOUND"]
    assert cap.errors[0].attributes["faultlens.context.uncaught"] is True
    assert seen == [(FileNotFoundError, exc, exc.__traceback__)]
    assert sys.excepthook is printing_hook


def test_ctrl_c_is_not_a_failure(monkeypatch, hooks):
    monkeypatch.setattr("faultlens.auto._uncaught._prev_sys", lambda *a: None)
    exc = _raised(KeyboardInterrupt())
    with faultlens.testing.capture() as cap:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert cap.errors == []


def test_a_dying_thread_is_recorded_and_the_process_goes_on(monkeypatch, hooks):
    monkeypatch.setattr("faultlens.auto._uncaught._prev_threading", lambda args: None)

    def work():
        raise ConnectionError("broker went away")

    with faultlens.testing.capture() as cap:
        t = threading.Thread(target=work, name="consumer")
        t.start()
        t.join()
    assert [e.info.code for e in cap.errors] == ["NET_CONNECTION_FAILED"]
    assert cap.errors[0].attributes["faultlens.context.thread"] == "consumer"
    assert faultlens.is_configured() is False  # a thread death does not shut faultlens down


def test_asyncio_callback_errors_reach_the_loop_handler(hooks, caplog):
    def callback():
        raise TimeoutError("heartbeat missed")

    async def main():
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.01)

    with faultlens.testing.capture() as cap:
        asyncio.run(main())
    assert [e.info.code for e in cap.errors] == ["EXE_TIMEOUT"]
    assert cap.errors[0].attributes["faultlens.context.uncaught"] is True
    assert "heartbeat missed" in caplog.text  # the default handler still logs it


def test_an_application_handler_on_its_loop_is_respected(hooks):
    got = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, ctx: got.append(ctx["exception"]))
        loop.call_soon(lambda: 1 / 0)
        await asyncio.sleep(0.01)

    with faultlens.testing.capture() as cap:
        asyncio.run(main())
    assert cap.errors == [] and isinstance(got[0], ZeroDivisionError)


def test_uninstall_restores_every_hook():
    before = (sys.excepthook, threading.excepthook)
    install_excepthooks()
    uninstall_excepthooks()
    assert (sys.excepthook, threading.excepthook) == before
    assert "new_event_loop" not in vars(asyncio.get_event_loop_policy())
