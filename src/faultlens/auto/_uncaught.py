"""Uncaught exceptions and SIGTERM: record what would otherwise vanish, flush before exit.

Three places see exceptions nobody caught:

- ``sys.excepthook``: the main thread is about to die; faultlens records the exception and
  chains to the previous hook (which prints the traceback). The exit path then shuts
  faultlens down (within ``EXIT_TIMEOUT``), which writes the record out.
- ``threading.excepthook``: one thread died, the process goes on; record, chain.
- the asyncio loop exception handler (exceptions in callbacks, "Task exception was never
  retrieved"): the loop goes on; record, then the loop's default handler logs it.
  asyncio has no global hook, so the current event-loop policy's ``new_event_loop`` is
  wrapped to set the handler on every loop created after ``install_excepthooks()``
  (``asyncio.run`` included). Loops made by a policy installed later (``uvloop.install()``)
  and loops whose application sets its own handler are left to the application.

None of them blocks: the thread they run on may be an event loop or a thread someone joins,
so the thread and asyncio hooks hand a flush to a faultlens thread (``flush_soon``) instead
of waiting for it, and the main-thread hook leaves it to the exit that follows.

An application that installs its own ``sys.excepthook`` after faultlens (``rich.traceback
.install()``, a framework's crash reporter) and does not chain to the previous one would
hide its crashes from the hook. faultlens does not depend on being last: at exit it also
looks at the exception the interpreter reported as uncaught (``sys.last_exc`` /
``sys.last_value``, set before any excepthook runs) and records it if no faultlens hook did
(context ``excepthook="replaced"``). The interpreter keeps no such trace for threads: a
``threading.excepthook`` replaced later without chaining hides thread deaths.

The crash record. An exception that kills the process (or a thread, or surfaces in an
asyncio handler) is recorded with severity ``critical`` and the context flag
``uncaught=True`` (``faultlens.context.uncaught``), whatever its code's usual severity, so
critical alerts fire for crashes. When the exception was already recorded on its way out of
an instrumented function (``faultlens run`` wraps the application's modules), that record
stays as it was (the failure where it happened, with its catalog severity) and the crash is
*added* as a record of its own, rather than the first one upgraded: a crash is a distinct
event (the process ended), a counter cannot be corrected after the fact, and the journal is
append-only. So ``faultlens.errors{severity="critical"}`` counts one per crash, and the
instrumented function's failure is counted once under its own severity.

SIGTERM: by default Python dies on SIGTERM without running ``atexit``, which would lose
whatever the journal and exporters still buffer. When the application has no handler,
faultlens installs one that shuts faultlens down (within ``EXIT_TIMEOUT``) and then
re-delivers SIGTERM with the default disposition, so the process still ends exactly as it
would have: killed by SIGTERM. When the application has its own handler, faultlens starts a
flush in the background and calls that handler at once (its graceful shutdown is not
delayed); the exit that follows is bounded as any other. A SIGTERM that arrives while
faultlens is already shutting down on the same thread (during ``atexit``) waits for that
shutdown to finish, then is delivered as above.
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

from .._setup import (
    EXIT_TIMEOUT,
    add_exit_hook,
    defer_while_stopping,
    flush_soon,
    is_configured,
    is_stopping,
    shutdown,
)
from .._setup import flush as _flush
from ..capture import internal_error, is_control_flow, record_uncaught, shielded

__all__ = [
    "install_excepthooks",
    "install_sigterm_flush",
    "uninstall_excepthooks",
    "uninstall_sigterm_flush",
]

FLUSH_TIMEOUT = EXIT_TIMEOUT

_lock = threading.Lock()
_prev_sys: Callable[..., Any] | None = None
_prev_threading: Callable[..., Any] | None = None
_policy: asyncio.AbstractEventLoopPolicy | None = None
_prev_sigterm: Any = None
_sigterm_installed = False
_hooks_installed = False
# The last exception recorded as the main thread's crash (the exit check must not record it
# again). One strong reference at most, dropped at exit.
_crash: BaseException | None = None


def _record_uncaught(exc: BaseException | None, **context: Any) -> None:
    """The crash record (see the module docstring): critical, ``uncaught=True``, a record of
    its own even when an instrumented function recorded the exception on its way out."""
    if exc is None or is_control_flow(exc):
        return
    try:
        record_uncaught(exc, **context)
    except Exception as e:  # pragma: no cover - record_uncaught never raises
        internal_error("uncaught exception hook", e)


def flush(timeout: float = FLUSH_TIMEOUT) -> None:
    """Push what is buffered (journal, spans, metrics) without stopping anything; returns
    within ``timeout`` seconds."""
    _flush(timeout)


def _finish(timeout: float = EXIT_TIMEOUT) -> None:
    """The process is ending: shut faultlens down (flushing the journal and exporters), or
    only flush when the providers belong to someone else (opentelemetry-instrument).
    Returns within ``timeout`` seconds."""
    try:
        if is_configured() or is_stopping():
            shutdown(timeout)
        else:
            _flush(timeout)
    except Exception as e:  # pragma: no cover - neither raises
        internal_error("flush at exit", e)


def _sys_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    global _crash
    _record_uncaught(exc)
    _crash = exc
    # No flush here: the exit that follows shuts faultlens down within EXIT_TIMEOUT.
    prev = _prev_sys or sys.__excepthook__
    prev(exc_type, exc, tb)


def _reported_crash() -> BaseException | None:
    """The exception the interpreter reported as uncaught in the main thread: it sets
    ``sys.last_exc`` (3.12+) / ``sys.last_value`` before calling whatever excepthook is
    installed, so this holds even when that hook is not faultlens's and never chains."""
    if sys.flags.interactive or hasattr(sys, "ps1"):
        return None  # a REPL sets it for every error typed at the prompt
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(exc, BaseException):
        return None
    # Only an exception that unwound the whole stack: its traceback starts in the
    # outermost frame. (An embedded console, code.interact(), sets sys.last_value for an
    # error it caught and showed; that frame has a caller.)
    tb = exc.__traceback__
    if tb is None or tb.tb_frame.f_back is not None:
        return None
    return exc


def _record_missed_crash() -> None:
    """At exit: record the main thread's crash if an application's own excepthook, installed
    after faultlens's, swallowed it without chaining."""
    global _crash
    try:
        if not _hooks_installed:
            return
        exc = _reported_crash()
        if exc is not None and exc is not _crash:
            _record_uncaught(exc, excepthook="replaced")
        _crash = None
    except Exception as e:
        internal_error("exit crash check", e)


def _threading_hook(args: Any) -> None:
    exc = getattr(args, "exc_value", None)
    if not isinstance(exc, SystemExit):  # threading ignores SystemExit; so do we
        thread = getattr(args, "thread", None)
        _record_uncaught(exc, thread=getattr(thread, "name", "unknown"))
        flush_soon()  # never block a thread someone may be joining
    prev = _prev_threading or threading.__excepthook__
    prev(args)


def _asyncio_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Runs on the event loop's thread: nothing here may block.
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        message = context.get("message")
        _record_uncaught(exc, asyncio_message=message if isinstance(message, str) else "")
        flush_soon()
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
    on), chaining to the hooks already installed. Idempotent. The main thread's crash is
    also recorded when the application replaces ``sys.excepthook`` afterwards."""
    global _prev_sys, _prev_threading, _policy, _hooks_installed
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
        _hooks_installed = True
        add_exit_hook(_record_missed_crash)


def uninstall_excepthooks() -> None:
    """Put the previous hooks back (where nobody replaced ours since)."""
    global _prev_sys, _prev_threading, _policy, _hooks_installed, _crash
    with _lock:
        if sys.excepthook is _sys_hook:
            sys.excepthook = _prev_sys or sys.__excepthook__
        if threading.excepthook is _threading_hook:
            threading.excepthook = _prev_threading or threading.__excepthook__
        _prev_sys = _prev_threading = None
        _hooks_installed = False
        _crash = None
        policy, _policy = _policy, None
        if policy is not None and "new_event_loop" in vars(policy):
            try:
                del policy.new_event_loop
            except Exception as e:
                internal_error("asyncio policy hook", e)


def _die(signum: int) -> None:
    """End the process the way the signal's default disposition would."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    prev = _prev_sigterm
    if callable(prev):
        # The application's handler decides whether and how to exit: call it now, with a
        # flush under way in the background (its graceful shutdown is not delayed).
        if defer_while_stopping(lambda: prev(signum, frame)):
            return
        flush_soon()
        prev(signum, frame)
        return
    if defer_while_stopping(lambda: _die(signum)):
        return  # SIGTERM interrupted faultlens's own shutdown: let it finish, then die
    _finish_off_this_thread(EXIT_TIMEOUT)
    _die(signum)


def _finish_off_this_thread(timeout: float) -> None:
    """``_finish`` in a helper thread, waited for at most ``timeout`` (+ a margin): the
    interrupted code may hold a lock the shutdown needs, which it cannot release until
    this handler returns."""
    try:
        worker = threading.Thread(
            target=shielded(_finish), args=(timeout,), name="faultlens-sigterm"
        )
        worker.daemon = True
        worker.start()
    except RuntimeError:  # interpreter shutdown: no new threads
        _finish(timeout)
        return
    worker.join(timeout + 0.5)


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
