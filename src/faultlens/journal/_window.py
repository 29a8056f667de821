"""What the local monitor remembers of the journal: counters in time buckets, never records.

The monitor only needs, per rule, *how many* errors fell in a window, the most severe of
them and when the newest happened. ``AlertWindow`` keeps exactly that: for each configured
``category:CODE`` threshold, for the overall rate and for each code that had a critical
error, a ``Series`` of per-bucket counters. A bucket is ``window / BUCKETS`` seconds wide
(at least ``MIN_BUCKET``), so a window is counted to within that width and a series holds
at most ``BUCKETS + 1`` buckets however many errors arrive: memory is flat under a storm.

``JournalFollower`` reads what the journal directory gained since the last poll, in bounded
chunks, remembering one offset per file: a check reads the new bytes only, never whole files
again. At start it skips what is older than the monitor's history without parsing it (a
binary search over each file's time-ordered lines), so starting over a large journal costs
a few reads, not a parse of everything.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ..errors import Severity
from ._alerts import Alert, alert_key
from ._files import list_files
from ._format import KIND_SUPPRESSED, occurrences
from ._reader import parse_line

if TYPE_CHECKING:
    from .._config import FrequencyThreshold, MonitoringSettings

__all__ = ["AlertWindow", "Firing", "JournalFollower", "Series", "weight"]

_log = logging.getLogger("faultlens")

BUCKETS = 600  # buckets per window: a count is exact to window/600 seconds
MIN_BUCKET = 1.0  # s: the finest bucket
CRITICAL_WINDOW = 300.0  # s a critical error keeps CriticalError firing (at least interval)
MAX_CRITICAL_CODES = 256  # distinct codes tracked for CriticalError; more share one series
OTHER_CODES = "(other codes)"
FUTURE_SLACK = 3600.0  # s: a record further in the future than this is a broken clock: skip

CHUNK = 1 << 20  # bytes read per system call
MAX_LINE = 1 << 20  # a longer "line" is not a journal record: skipped, counted as damaged
ORDER_SLACK = 60.0  # s: how far out of time order lines of one file may be (threads)
MAX_TALLIES = 4096  # open tally lines followed for in-place updates


def _severity(value: Any) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError:
        return Severity.MEDIUM


def weight(rec: Mapping[str, Any]) -> int:
    """How many errors one journal line stands for (``_format.occurrences``): a recorded
    error is one plus the occurrences summarised into it, a rate-limit tally its ``count``,
    a ``dropped`` line none. Together they are what ``faultlens.errors`` counts, so local
    alerts fire on the same totals as the Prometheus rules."""
    return occurrences(rec)


class Series:
    """Counts in fixed-width time buckets: ``bucket -> [count, best rank, newest ts]``."""

    __slots__ = ("cells", "width", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.width = max(window / BUCKETS, MIN_BUCKET)
        self.cells: dict[int, list[float]] = {}

    def add(self, ts: float, n: int, rank: int) -> None:
        b = math.floor(ts / self.width)
        cell = self.cells.get(b)
        if cell is None:
            self.cells[b] = [float(n), float(rank), ts]
            return
        cell[0] += n
        if rank < cell[1]:
            cell[1] = rank
        if ts > cell[2]:
            cell[2] = ts

    def total(self, now: float) -> tuple[int, int, float]:
        """(count, best rank, newest ts) of the buckets that start within
        ``[now - window, now]``; the oldest, partly outside bucket is left out."""
        lo = now - self.window
        count = 0.0
        rank = 99.0
        newest = -math.inf
        for b, (n, r, ts) in self.cells.items():
            start = b * self.width
            if lo <= start <= now:
                count += n
                rank = min(rank, r)
                newest = max(newest, ts)
        return int(count), int(rank), newest

    def prune(self, now: float) -> None:
        lo = now - self.window - self.width
        old = [b for b in self.cells if b * self.width < lo]
        for b in old:
            del self.cells[b]


_RANKED = sorted(Severity, key=lambda s: s.rank)


def _by_rank(rank: int) -> Severity:
    return _RANKED[min(max(rank, 0), len(_RANKED) - 1)]


@dataclass(slots=True)
class _Critical:
    series: Series
    category: str
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class Firing:
    """An alert that fires now, with what the fleet-wide de-duplication needs: ``newest``
    is the time of the newest error it counts."""

    alert: Alert
    newest: float


class AlertWindow:
    """The counters behind the ``error_handling.monitoring`` rules (see ``_monitor``)."""

    def __init__(self, monitoring: MonitoringSettings) -> None:
        self.monitoring = monitoring
        self.thresholds: list[tuple[FrequencyThreshold, Series]] = [
            (t, Series(t.window)) for t in monitoring.alert_thresholds.error_frequency
        ]
        self._by_key: dict[tuple[str, str], list[Series]] = {}
        for t, s in self.thresholds:
            self._by_key.setdefault((t.category, t.code), []).append(s)
        freq = monitoring.anomaly_frequency
        self.anomaly = Series(min(monitoring.analysis_window, 3600.0)) if freq else None
        self.critical_window = max(monitoring.interval, CRITICAL_WINDOW)
        self.critical: dict[str, _Critical] = {}
        windows = [s.window + s.width for _, s in self.thresholds]
        if self.anomaly is not None:
            windows.append(self.anomaly.window + self.anomaly.width)
        windows.append(self.critical_window + MIN_BUCKET)
        self.history = max(windows)

    def keys(self) -> set[str]:
        """The alert keys this window's rules can judge (CriticalError keys are per code)."""
        keys = {alert_key("ErrorFrequency", _labels(t)) for t, _ in self.thresholds}
        if self.anomaly is not None:
            keys.add("ErrorAnomaly")
        return keys

    def add(self, rec: Mapping[str, Any], now: float | None = None) -> None:
        """Count one journal record (dict). Records older than the history, in the far
        future, or without a usable ``ts`` are ignored."""
        ts = rec.get("ts")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
            return
        ts = float(ts)
        if now is not None and not (now - self.history <= ts <= now + FUTURE_SLACK):
            return
        n = weight(rec)
        if n <= 0:
            return
        sev = _severity(rec.get("severity"))
        code = str(rec.get("code"))
        category = str(rec.get("category"))
        for s in self._by_key.get((category, code), ()):
            s.add(ts, n, sev.rank)
        if self.anomaly is not None:
            self.anomaly.add(ts, n, sev.rank)
        if sev is Severity.CRITICAL:
            crit = self.critical.get(code)
            if crit is None:
                if len(self.critical) >= MAX_CRITICAL_CODES:
                    code = OTHER_CODES
                    crit = self.critical.get(code)
                if crit is None:
                    crit = _Critical(Series(self.critical_window), category, "", -math.inf)
                    self.critical[code] = crit
            crit.series.add(ts, n, sev.rank)
            if ts >= crit.at:
                crit.at = ts
                crit.category = category
                crit.message = str(rec.get("message") or "")[:200]

    def extend(self, records: Iterable[Mapping[str, Any]], now: float | None = None) -> None:
        for r in records:
            self.add(r, now)

    def prune(self, now: float) -> None:
        for _, s in self.thresholds:
            s.prune(now)
        if self.anomaly is not None:
            self.anomaly.prune(now)
        for code in list(self.critical):
            crit = self.critical[code]
            crit.series.prune(now)
            if not crit.series.cells:
                del self.critical[code]

    def firing(self, now: float) -> list[Firing]:
        """What fires at ``now``."""
        out: list[Firing] = []
        for t, s in self.thresholds:
            count, rank, newest = s.total(now)
            if count > t.count:
                alert = Alert(
                    name="ErrorFrequency",
                    severity=_by_rank(rank),
                    summary=(
                        f"{count} {t.code} errors ({t.category}) in the last "
                        f"{t.window:g}s (threshold {t.count})"
                    ),
                    value=count,
                    threshold=t.count,
                    window=t.window,
                    at=now,
                    labels=_labels(t),
                )
                out.append(Firing(alert, newest))
        freq = self.monitoring.anomaly_frequency
        if freq and self.anomaly is not None:
            window = self.anomaly.window
            count, _, newest = self.anomaly.total(now)
            per_hour = count * 3600.0 / window
            if per_hour > freq:
                alert = Alert(
                    name="ErrorAnomaly",
                    severity=Severity.HIGH,
                    summary=(
                        f"{per_hour:.0f} errors/hour over the last {window:g}s "
                        f"(anomaly threshold {freq:g}/hour)"
                    ),
                    value=round(per_hour, 3),
                    threshold=freq,
                    window=window,
                    at=now,
                )
                out.append(Firing(alert, newest))
        for code, crit in sorted(self.critical.items()):
            count, _, newest = crit.series.total(now)
            if count <= 0:
                continue
            msg = crit.message
            alert = Alert(
                name="CriticalError",
                severity=Severity.CRITICAL,
                summary=f"{count} critical {code} error{'s' if count != 1 else ''}"
                + (f": {msg}" if msg else ""),
                value=count,
                threshold=0,
                window=self.critical_window,
                at=now,
                labels={"code": code, "category": crit.category},
            )
            out.append(Firing(alert, newest))
        return out


def _labels(t: FrequencyThreshold) -> dict[str, str]:
    return {"code": t.code, "category": t.category}


@dataclass(slots=True)
class _Tally:
    length: int  # bytes of the line (fixed: the writer rewrites a fixed-width tail)
    counted: int  # occurrences already handed to the window
    first_ts: float


class JournalFollower:
    """Incremental, bounded reader of a journal directory for the monitor.

    ``poll(add, deadline)`` hands every complete line appended since the last poll (across
    new, growing and rotated files) to ``add`` as a dict, reading ``CHUNK`` bytes at a time;
    it returns False when it stopped at ``deadline`` with bytes left (the next poll resumes
    where it stopped). The directory is the absolute path given at construction: the
    application changing its working directory later changes nothing.

    Tally lines (rate-limited occurrences) are the one thing a writer changes after
    appending: it rewrites their fixed-width count in place while they are open. The
    follower re-reads each open tally it has seen (at most ``MAX_TALLIES``) on every poll
    and hands on what its count gained, until the tally is closed.
    """

    def __init__(self, directory: str, since: float | None = None) -> None:
        self.directory = directory
        self.since = since
        self.caught_up = False
        self._offsets: dict[str, int] = {}
        self._bad: dict[str, int] = {}
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._first = True

    def poll(
        self,
        add: Callable[[dict[str, Any]], None],
        deadline: float | None = None,
        now: float | None = None,
    ) -> bool:
        files = list_files(self.directory)
        first, self._first = self._first, False
        seen: set[str] = set()
        done = True
        for f in files:
            seen.add(f.path)
            known = f.path in self._offsets
            start = self._offsets.get(f.path, 0)
            if f.size < start:  # truncated or replaced: start over
                start = 0
            if f.size == start:
                self._offsets[f.path] = start
                continue
            if not known and self.since is not None and f.mtime < self.since - 1.0:
                # Nothing in it is recent enough to matter, now or later.
                self._offsets[f.path] = f.size
                continue
            if deadline is not None and time.monotonic() >= deadline:
                done = False
                continue
            skip_old = first or not known
            try:
                self._offsets[f.path] = self._read(f.path, start, f.size, add, skip_old, deadline)
            except OSError:  # deleted by retention meanwhile, unreadable: the rest still counts
                continue
            if self._offsets[f.path] < f.size and deadline is not None:
                done = done and time.monotonic() < deadline
        for gone in set(self._offsets) - seen:
            del self._offsets[gone]
            self._bad.pop(gone, None)
        self._poll_tallies(add, time.time() if now is None else now)
        self.caught_up = self.caught_up or done
        return done

    # -- tallies: rate-limited counts the writer updates in place ------------------------------

    def _track(self, path: str, at: int, length: int, rec: Mapping[str, Any]) -> None:
        """Remember an open tally line: its count grows in place after we read it."""
        if len(self._tallies) >= MAX_TALLIES:
            return  # counted as it stood when read; later growth is missed (bounded memory)
        first = rec.get("first_ts")
        first_ts = float(first) if isinstance(first, (int, float)) else float(rec["ts"])
        self._tallies[(path, at)] = _Tally(length, int(weight(rec)), first_ts)

    def _poll_tallies(self, add: Callable[[dict[str, Any]], None], now: float) -> None:
        """Count what open tallies gained since the last poll (at their newest ``ts``)."""
        if not self._tallies:
            return
        stale = now - ORDER_SLACK
        for (path, at), tally in list(self._tallies.items()):
            offset = self._offsets.get(path)
            if offset is None or at + tally.length >= offset:
                del self._tallies[(path, at)]  # rotated away or truncated
                continue
            rec = _read_stable(path, at, tally.length)
            if rec is not None and rec.get("kind") == KIND_SUPPRESSED:
                n = weight(rec)
                if n > tally.counted:
                    add({**rec, "count": n - tally.counted})
                    tally.counted = n
                if rec.get("open") is not True:
                    del self._tallies[(path, at)]
                    continue
            if tally.first_ts < stale:
                # Open far longer than a writer keeps a tally open: its process died with
                # it open, and it will not grow any more.
                del self._tallies[(path, at)]

    def _read(
        self,
        path: str,
        start: int,
        end: int,
        add: Callable[[dict[str, Any]], None],
        skip_old: bool,
        deadline: float | None,
    ) -> int:
        """Parse the complete lines of ``path`` between ``start`` and ``end``; returns the
        offset after the last complete line handled."""
        bad = 0
        with open(path, "rb") as fh:
            if skip_old and start == 0 and self.since is not None:
                start = _first_recent(fh, end, self.since - ORDER_SLACK)
            fh.seek(start)
            pos = start  # the offset of the first byte not yet handled
            carry = b""
            skipping = False  # inside an overlong line: drop bytes until its newline
            while pos + len(carry) < end:
                chunk = fh.read(min(CHUNK, end - pos - len(carry)))
                if not chunk:
                    break
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    if len(data) > MAX_LINE:
                        skipping = True
                        pos += len(data)
                        carry = b""
                    else:
                        carry = data
                    continue
                lines = data[: cut + 1].split(b"\n")
                lines.pop()  # the empty tail after the last newline
                off = pos
                for i, raw in enumerate(lines):
                    line_at, off = off, off + len(raw) + 1
                    if skipping and i == 0:
                        skipping = False
                        bad += 1
                        continue
                    if not raw.strip():
                        continue
                    rec = parse_line(raw)
                    if rec is None:
                        bad += 1
                        continue
                    old = self.since is not None and float(rec["ts"]) < self.since
                    if rec.get("kind") == KIND_SUPPRESSED and rec.get("open") is True:
                        self._track(path, line_at, len(raw), rec)
                    if not old:
                        add(rec)
                pos += cut + 1
                carry = data[cut + 1 :]
                if deadline is not None and time.monotonic() >= deadline:
                    break
        if bad:
            total = self._bad.get(path, 0)
            self._bad[path] = total + bad
            if total == 0:
                _log.warning(
                    "faultlens: skipped %d corrupt or torn line%s in journal file %s",
                    bad,
                    "" if bad == 1 else "s",
                    path,
                )
        return pos


def _read_stable(path: str, at: int, length: int) -> dict[str, Any] | None:
    """The line at ``at``, read until two reads agree (the writer may be rewriting its
    tail at this very moment); None when it cannot be read or parsed now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        prev = None
        for _ in range(3):
            raw = os.pread(fd, length, at)
            if raw == prev:
                return parse_line(raw)
            prev = raw
        return None
    except OSError:
        return None
    finally:
        os.close(fd)


def _first_recent(fh: IO[bytes], size: int, since: float) -> int:
    """The offset of a line start before which every line is older than ``since``: a
    binary search over a file whose lines are appended in time order. 0 when unsure."""
    lo, hi = 0, size
    while hi - lo > 65536:
        mid = (lo + hi) // 2
        fh.seek(mid)
        fh.readline(MAX_LINE)  # the rest of the line mid falls into
        pos = fh.tell()
        line = fh.readline(MAX_LINE)
        rec = parse_line(line) if pos < hi and line.endswith(b"\n") else None
        if rec is None:
            hi = mid  # cannot tell from here: keep the earlier half
        elif float(rec["ts"]) < since:
            lo = pos + len(line)
        else:
            hi = mid
    return lo
