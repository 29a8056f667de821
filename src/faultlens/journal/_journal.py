"""The journal component configure() starts: a writer fed by a capture sink, plus the
local monitor when monitoring and notifications are on.

Why a sink and not a span processor (DESIGN.md's first sketch): ``record_error()`` hands
every admitted error to the registered sinks at record time, on the recording thread. A
span processor would only see errors when their span *ends*, would see nothing when the
application owns a non-SDK tracer provider, and would lose the error of a span that never
ends because the process is crashing. The sink sees all of them, exactly once, and is
told about every occurrence the rate limiter suppressed (``note_suppressed``) so the
journal's totals are exact.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..capture import RecordedError, internal_error
from ..capture._state import STATE
from ._monitor import LocalMonitor
from ._writer import JournalWriter

if TYPE_CHECKING:
    from .._config import JournalSettings, Settings
    from ..errors import ErrorInfo

__all__ = ["Journal", "start_journal"]


class _JournalSink:
    """What ``STATE.add_sink`` receives: recorded errors and rate-limited occurrences go
    straight to the writer (write-through, on the recording thread)."""

    __slots__ = ("writer",)

    def __init__(self, writer: JournalWriter) -> None:
        self.writer = writer

    def __call__(self, record: RecordedError, /) -> None:
        self.writer.submit(record)

    def note_suppressed(self, info: ErrorInfo, timestamp_ns: int, service: str | None) -> None:
        self.writer.note_suppressed(info, timestamp_ns, service)

    def __repr__(self) -> str:
        return f"<faultlens journal sink {self.writer.directory}>"


class Journal:
    """This process's journal: ``sink`` goes to ``STATE.add_sink``; ``shutdown`` flushes."""

    def __init__(
        self,
        settings: JournalSettings,
        *,
        monitor: LocalMonitor | None = None,
    ) -> None:
        self.settings = settings
        self.writer = JournalWriter(settings)
        self.monitor = monitor
        self.path = self.writer.directory
        # One object, kept: remove_sink() matches by identity.
        self.sink = _JournalSink(self.writer)

    def start(self) -> Journal:
        STATE.add_sink(self.sink)
        if self.monitor is not None:
            self.monitor.start()
        return self

    def flush(self, timeout: float = 5.0) -> bool:
        """Write anything still pending (records are written as they are recorded) and the
        drops counted so far. True when done within ``timeout``."""
        return self.writer.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop receiving and write everything pending; give the monitor one last
        evaluation and its webhooks what is left of ``timeout`` (at most
        ``LocalMonitor.stop``'s 2 s); then close the files, so that alerts abandoned at
        exit are in this process's ``dropped`` line too. Never raises."""
        deadline = time.monotonic() + max(timeout, 0.1)
        try:
            STATE.remove_sink(self.sink)
            if self.monitor is not None:
                self.writer.flush(max(deadline - time.monotonic(), 0.1))
                self.monitor.stop(max(deadline - time.monotonic(), 0.1))
            self.writer.close(max(deadline - time.monotonic(), 0.1))
        except Exception as exc:
            internal_error("journal shutdown", exc)

    def after_fork(self) -> None:
        """In a forked child: own queue and file, no monitor (the parent keeps watching)."""
        self.writer.after_fork()
        if self.monitor is not None:
            self.monitor.after_fork()
            self.monitor = None


def start_journal(settings: Settings) -> Journal:
    """Start the journal for ``settings`` (called by ``faultlens.configure()``)."""
    eh = settings.error_handling
    monitor = None
    if eh.monitoring.enabled and eh.notifications.enabled and eh.notifications.channels:
        monitor = LocalMonitor(
            eh.monitoring,
            eh.notifications,
            journal_path=settings.journal.path,
            service=settings.service_name,
        )
    return Journal(settings.journal, monitor=monitor).start()
