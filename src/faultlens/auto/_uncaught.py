"""Uncaught exceptions and SIGTERM: record what would otherwise vanish, flush before exit.

Three places see exceptions nobody caught:

- ``sys.excepthook``: the main thread is about to die; faultlens records the exception,
  chains to the previous hook (which prints the traceback) and then shuts faultlens down so
  the record is flushed before the interpreter exits.
- ``threading.excepthook``: one thread died, the process goes on; record, flush, chain.
- the asyncio loop exception handler (exceptions in callbacks, "Task exception was never
  retrieved"): the loop goes on; record, flush, then the loop's default handler logs it.
  asyncio has no global hook, so the current event-loop policy's ``new_event_loop`` is
  wrapped to set the handler on every loop created after ``install_excepthooks()``
  (``asyncio.run`` included). Loops made by a policy installed later (``uvloop.install()``)
  and loops whose application sets its own handler are left to the application.

Each record carries the context flag ``uncaught=True`` (``faultlens.context.uncaught``).
An exception that already escaped an instrumented function was recorded there, once; the
hooks do not record it a second time. Severity comes from the catalog.

SIGTERM: by default Python dies on SIGTERM without running ``atexit``, which would lose
whatever the journal and exporters still buffer. When the application has no handler,
faultlens installs one that flushes (bounded by a timeout, in a helper thread so a lock
held by the interrupted code cannot hang it) and then re-delivers SIGTERM with the default
disposition, so the process still ends exactly as it would have: killed by SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .._setup import flush as _flush
from .._setup import is_configured, shutdown
from ..capture import internal_error, is_control_flow, record_error
from ..errors import Severity

__all__ = [
    "install_excepthooks",
    "install_sigterm_flush",
    "uninstall_excepthooks",
    "uninstall_sigterm_flush",
]

FLUSH_TIMEOUT = 5.0

_lock = threading.Lock()
_prev_sys: Callable[..., Any] | None = None
_prev_threading: Callable[..., Any] | None = None
_policy: asyncio.AbstractEventLoopPolicy | None = None
_prev_sigterm: Any = None
_sigterm_installed = False


def _record_uncaught(exc: BaseException | None, **context: Any) -> None:
    if exc is None or is_control_flow(exc):
        return
    try:
        # An exception nobody handled ends the process (or a thread): critical, whatever
        # its code's usual severity.
        record_error(exc, severity=Severity.CRITICAL, uncaught=True, **context)
    except Exception as e:  # pragma: no cover - record_error never raises
        internal_error("uncaught exception hook", e)


def flush(timeout: float = FLUSH_TIMEOUT) -> None:
    """Push what is buffered (journal, spans, metrics) without stopping anything."""
    _flush(timeout)


def _finish(timeout: float = FLUSH_TIMEOUT) -> None:
    """The process is ending: shut faultlens down (flushing the journal and exporters), or
    only flush when the providers belong to someone else (opentelemetry-instrument)."""
    try:
        if is_configured():
            shutdown(timeout)
        else:
            flush(timeout)
    except Exception as e:
        internal_error("flush at exit", e)


def _sys_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    _record_uncaught(exc)
    prev = _prev_sys or sys.__excepthook__
    try:
        prev(exc_type, exc, tb)
    finally:
        _finish()


def _threading_hook(args: Any) -> None:
    exc = getattr(args, "exc_value", None)
    if not isinstance(exc, SystemExit):  # threading ignores SystemExit; so do we
        thread = getattr(args, "thread", None)
        _record_uncaught(exc, thread=getattr(thread, "name", "unknown"))
        flush()
    prev = _prev_threading or threading.__excepthook__
    prev(args)


def _asyncio_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        message = context.get("message")
        _record_uncaught(exc, asyncio_message=message if isinstance(message, str) else "")
        flush()
    loop.default_exception_handler(context)


def _hooked_new_event_loop(original: Callable[[], asyncio.AbstractEventLoop]) -> Any:
    def new_event_loop() -> asyncio.AbstractEventLoop:
        loop = original()
        try:
            if loop.get_exception_handler() is None:
                loop.set_exception_handler(_asyncio_handler)
        except Exception as e:
            internal_error("asyncio exception handler", e)
        return loop

    new_event_loop.__faultlens__ = True  # type: ignore[attr-defined]
    return new_event_loop


def install_excepthooks() -> None:
    """Record uncaught exceptions (main thread, other threads, asyncio loops created from now
    on), chaining to the hooks already installed. Idempotent."""
    global _prev_sys, _prev_threading, _policy
    with _lock:
        if sys.excepthook is not _sys_hook:
            _prev_sys = sys.excepthook
            sys.excepthook = _sys_hook
        if threading.excepthook is not _threading_hook:
            _prev_threading = threading.excepthook
            threading.excepthook = _threading_hook
        try:
            policy = asyncio.get_event_loop_policy()
            current = policy.new_event_loop
            if not getattr(current, "__faultlens__", False):
                policy.new_event_loop = _hooked_new_event_loop(current)  # type: ignore[method-assign]
                _policy = policy
        except Exception as e:
            internal_error("asyncio policy hook", e)


def uninstall_excepthooks() -> None:
    """Put the previous hooks back (where nobody replaced ours since)."""
    global _prev_sys, _prev_threading, _policy
    with _lock:
        if sys.excepthook is _sys_hook:
            sys.excepthook = _prev_sys or sys.__excepthook__
        if threading.excepthook is _threading_hook:
            threading.excepthook = _prev_threading or threading.__excepthook__
        _prev_sys = _prev_threading = None
        policy, _policy = _policy, None
        if policy is not None and "new_event_loop" in vars(policy):
            try:
                del policy.new_event_loop
            except Exception as e:
                internal_error("asyncio policy hook", e)


def _flush_bounded(timeout: float) -> None:
    worker = threading.Thread(target=_finish, args=(timeout,), name="faultlens-flush")
    worker.daemon = True
    worker.start()
    worker.join(timeout + 1.0)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    prev = _prev_sigterm
    if callable(prev):
        flush()  # the application's handler decides whether and how to exit
        prev(signum, frame)
        return
    _flush_bounded(FLUSH_TIMEOUT)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_sigterm_flush() -> bool:
    """Flush before a SIGTERM ends the process. Returns False (and changes nothing) off the
    main thread, when SIGTERM is ignored, or when the handler was set outside Python."""
    global _prev_sigterm, _sigterm_installed
    if not hasattr(signal, "SIGTERM"):  # pragma: no cover - every POSIX system has it
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _sigterm_installed:
            return True
        try:
            prev = signal.getsignal(signal.SIGTERM)
            if prev is signal.SIG_IGN or prev is None:
                return False
            _prev_sigterm = prev if callable(prev) else None
            signal.signal(signal.SIGTERM, _sigterm)
            _sigterm_installed = True
            return True
        except (ValueError, OSError) as e:
            internal_error("SIGTERM handler", e)
            return False


def uninstall_sigterm_flush() -> None:
    global _prev_sigterm, _sigterm_installed
    with _lock:
        if not _sigterm_installed:
            return
        try:
            if signal.getsignal(signal.SIGTERM) is _sigterm:
                signal.signal(signal.SIGTERM, _prev_sigterm or signal.SIG_DFL)
        except (ValueError, OSError) as e:
            internal_error("SIGTERM handler", e)
        _prev_sigterm = None
        _sigterm_installed = False
