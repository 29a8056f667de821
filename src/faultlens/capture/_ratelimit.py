"""Per-fingerprint rate limiting for error events, with exact suppressed counts.

During an error storm the first ``burst`` events of each fingerprint per window are recorded
in full; the rest are counted (``faultlens.internal.dropped{reason="rate_limited"}``) and the
next recorded event of that fingerprint carries how many were suppressed before it (on its
span event, ``faultlens.error.suppressed``). Memory is bounded by ``max_fingerprints`` (least
recently seen evicted), so a storm of distinct errors keeps memory flat too.

Sinks that keep their own totals (the journal) are told about every suppressed occurrence
as it happens (``notify_suppressed``), so a storm that ends, or a process that exits, before
the next recorded event still leaves an exact count behind: a sink may define
``note_suppressed(info, timestamp_ns, service)`` beside its ``__call__``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from ._state import STATE
from ._telemetry import internal_error

if TYPE_CHECKING:
    from ..errors import ErrorInfo

__all__ = ["RateLimiter", "notify_suppressed"]

_monotonic = time.monotonic


def notify_suppressed(info: ErrorInfo) -> None:
    """One occurrence of ``info`` was rate-limited: tell every sink that counts them
    (``note_suppressed``). Cheap (a clock read and a loop over the few sinks); never
    raises."""
    sinks = STATE.sinks
    if not sinks:
        return
    ts = time.time_ns()
    for sink in sinks:
        note = getattr(sink, "note_suppressed", None)
        if note is None:
            continue
        try:
            note(info, ts, STATE.service_name)
        except Exception as exc:
            internal_error(f"error sink {sink!r}", exc)


class _Entry:
    __slots__ = ("count", "suppressed", "total_suppressed", "window_start")

    def __init__(self, now: float) -> None:
        self.window_start = now
        self.count = 0
        self.suppressed = 0
        self.total_suppressed = 0


class RateLimiter:
    def __init__(self, burst: int, window: float, max_fingerprints: int) -> None:
        self.burst = burst
        self.window = window
        self.max_fingerprints = max_fingerprints
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.total_suppressed = 0

    def admit(self, fingerprint: str, now: float | None = None) -> tuple[bool, int]:
        """(record it?, events suppressed since the last recorded one of this fingerprint)."""
        if self.burst <= 0:
            return True, 0
        if now is None:
            now = _monotonic()
        entries = self._entries
        lock = self._lock
        lock.acquire()  # explicit calls: half the cost of a ``with`` block, on every error
        try:
            entry = entries.get(fingerprint)
            if entry is None:
                entry = _Entry(now)
                entries[fingerprint] = entry
                if len(entries) > self.max_fingerprints:
                    entries.popitem(last=False)
            else:
                entries.move_to_end(fingerprint)
                if now - entry.window_start >= self.window:
                    entry.window_start = now
                    entry.count = 0
            if entry.count < self.burst:
                entry.count += 1
                carried, entry.suppressed = entry.suppressed, 0
                return True, carried
            entry.suppressed += 1
            entry.total_suppressed += 1
            self.total_suppressed += 1
            return False, 0
        finally:
            lock.release()

    def __len__(self) -> int:
        return len(self._entries)
