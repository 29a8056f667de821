"""Reading the journal back: every process's files merged, damaged lines skipped.

A line can be damaged in three ways: torn (the process died, or the disk filled up, in
the middle of a write), corrupt (someone edited the file, a disk error) or out of range (a
``ts`` of NaN, Infinity or 1e20, a count of the wrong type: see ``_format.validate``).
Either way the reader skips it and warns once per file with the number of lines skipped,
and goes on: one bad line must never hide a day of errors, and never makes ``faultlens
stats`` or ``faultlens report`` fail. A line longer than ``MAX_LINE`` bytes is skipped
without being held in memory. A last line with no newline that parses is the newest line
of a file still being written, and is included.

What to call:

- ``read_records(path, since, until)``: the error lines only (one per error written in
  full) — what a per-error table (CSV, the HTML list) shows;
- ``read_entries(path, since, until)``: every line — error records, ``suppressed``
  tallies and ``dropped`` lines; ``compute_stats(read_entries(...))`` counts
  rate-limited occurrences in every total (``journal_stats`` does both);
- ``JournalTail(directory).poll()``: what the journal gained since the last poll (error
  records and tallies, including *growth* of a tally updated in place since it was last
  seen, as an entry whose ``count`` is the increase); ``tail.dropped`` sums the dropped
  lines seen. Count with ``occurrences(entry)`` and the totals match ``faultlens stats``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ._files import ignored_files, list_files
from ._format import (
    KIND_DROPPED,
    KIND_ERROR,
    KIND_SUPPRESSED,
    TALLY_REGION,
    loads,
    valid_ts,
    validate,
)

__all__ = [
    "MAX_LINE",
    "JournalTail",
    "ReadReport",
    "parse_line",
    "read_entries",
    "read_records",
]

_log = logging.getLogger("faultlens")

MAX_LINE = 1 << 20  # bytes: no line faultlens writes comes near it (stack, message, context capped)
_CHUNK = 4 << 20  # bytes the tail reads at a time


@dataclass
class ReadReport:
    """Filled in by the readers when passed: files read, damaged lines per file, and the
    files of the directory not named like journal files (``ignored``: names, which no
    reader reads; see ``_files.ignored_files``)."""

    files: int = 0
    bad_lines: dict[str, int] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return sum(self.bad_lines.values())


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One journal line as a validated entry (``kind`` filled in: ``error``,
    ``suppressed`` or ``dropped``), or None when it is not a well-formed journal line."""
    raw = raw.strip()
    if not raw or len(raw) > MAX_LINE:
        return None
    try:
        obj = loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return validate(obj)


def _bound(value: float | None, name: str) -> float | None:
    """A time bound as a float: an infinite bound on the open side is no bound; NaN
    (which would select nothing without a word) is an error."""
    if value is None:
        return None
    try:
        v = float(value)
    except OverflowError:  # an int beyond any float
        v = math.inf if value > 0 else -math.inf
    if math.isnan(v):
        raise ValueError(f"{name} must be a time (epoch seconds), got NaN")
    if (name == "since" and v == -math.inf) or (name == "until" and v == math.inf):
        return None
    return v


def _files_for(path: str, since: float | None) -> list[str]:
    if os.path.isdir(path):
        # A file last modified before ``since`` holds only older lines: skip it unread.
        return [f.path for f in list_files(path) if since is None or f.mtime >= since - 1.0]
    if os.path.exists(path):
        return [path]
    return []


def _lines(fh: IO[bytes]) -> Iterator[bytes | None]:
    """The file's lines; None for a line over ``MAX_LINE`` bytes, read past in pieces."""
    while True:
        raw = fh.readline(MAX_LINE + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while True:
                more = fh.readline(MAX_LINE)
                if not more or more.endswith(b"\n"):
                    break
            yield None
            continue
        yield raw


def _warn_bad(path: str, bad: int) -> None:
    _log.warning(
        "faultlens: skipped %d corrupt or torn line%s in journal file %s",
        bad,
        "" if bad == 1 else "s",
        path,
    )


def _read_file(
    path: str,
    since: float | None,
    until: float | None,
    kinds: frozenset[str],
    report: ReadReport | None,
) -> Iterator[dict[str, Any]]:
    bad = 0
    try:
        with open(path, "rb") as fh:
            if report is not None:
                report.files += 1
            for raw in _lines(fh):
                if raw is not None and not raw.strip():
                    continue
                rec = parse_line(raw) if raw is not None else None
                if rec is None:
                    bad += 1
                    continue
                if rec["kind"] not in kinds:
                    continue
                ts = float(rec["ts"])
                if since is not None and ts < since:
                    continue
                if until is not None and ts > until:
                    continue
                yield rec
    except OSError as exc:
        # Deleted by retention while we read it, or unreadable: the rest still counts.
        _log.warning("faultlens: cannot read journal file %s: %s", path, exc.strerror or exc)
    if bad:
        if report is not None:
            report.bad_lines[path] = report.bad_lines.get(path, 0) + bad
        _warn_bad(path, bad)


_ALL = frozenset((KIND_ERROR, KIND_SUPPRESSED, KIND_DROPPED))
_ERRORS = frozenset((KIND_ERROR,))


def read_entries(
    path: str,
    since: float | None = None,
    until: float | None = None,
    *,
    kinds: frozenset[str] | set[str] | tuple[str, ...] = _ALL,
    report: ReadReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every valid line of a journal directory (all processes' files, oldest file
    first) or of a single file, with ``since <= ts <= until`` (epoch seconds) when given:
    error records, ``suppressed`` tallies and ``dropped`` lines (``kinds`` narrows it).

    Lines are in write order within a file; sort by ``ts`` when the order across
    processes matters. Damaged lines are skipped with one warning per file.
    """
    since, until = _bound(since, "since"), _bound(until, "until")
    wanted = frozenset(kinds)
    path = os.fspath(path)
    if report is not None and os.path.isdir(path):
        report.ignored = ignored_files(path)
    for file in _files_for(path, since):
        yield from _read_file(file, since, until, wanted, report)


def read_records(
    path: str,
    since: float | None = None,
    until: float | None = None,
    *,
    report: ReadReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the error records (one per error written in full) of a journal directory or
    file, with ``since <= ts <= until`` when given. Rate-limited occurrences are not among
    them: they are counted in tallies, which ``read_entries`` yields too."""
    yield from read_entries(path, since, until, kinds=_ERRORS, report=report)


def _parse_region(region: bytes) -> tuple[int, float, bool] | None:
    """The count, ts and open flag of a tally's in-place tail, or None when it is not one."""
    if len(region) != TALLY_REGION:
        return None
    try:
        obj = loads(b'{"count":' + region + b"}")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    count, ts, open_ = obj.get("count"), obj.get("ts"), obj.get("open")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return None
    if not isinstance(ts, (int, float)) or not valid_ts(ts) or not isinstance(open_, bool):
        return None
    return count, float(ts), open_


class _Tracked:
    __slots__ = ("count", "entry")

    def __init__(self, entry: dict[str, Any], count: int) -> None:
        self.entry = entry
        self.count = count


class JournalTail:
    """Incremental reader: each ``poll()`` returns only what the journal gained since the
    last poll, across all files of the directory (new, growing and rotated ones).

    The local monitor uses it so that a check every minute reads the last minute's bytes,
    not the whole journal. A trailing line without its newline is left for the next poll.
    Open tallies are re-read (a few bytes each) when their file changed, and their growth
    is returned as a ``suppressed`` entry whose ``count`` is the increase; so the sum of
    ``occurrences()`` over everything polled equals the journal's total. Dropped lines are
    not returned; their counts accumulate in ``dropped`` (reason -> count).
    """

    def __init__(self, directory: str, since: float | None = None) -> None:
        self.directory = directory
        self.since = since
        self.dropped: dict[str, int] = {}
        self._offsets: dict[str, int] = {}
        self._mtimes: dict[str, float] = {}
        self._bad: dict[str, int] = {}
        self._open: dict[str, dict[int, _Tracked]] = {}  # path -> region offset -> tally

    def poll(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for f in list_files(self.directory):
            seen.add(f.path)
            start = self._offsets.get(f.path, 0)
            if f.size < start:  # truncated or replaced: start over
                start = 0
                self._open.pop(f.path, None)
            changed = self._mtimes.get(f.path) != f.mtime
            self._mtimes[f.path] = f.mtime
            if changed and self._open.get(f.path):
                self._regrown(f.path, out)
            if f.size == start:
                self._offsets[f.path] = start
                continue
            if start == 0 and self.since is not None and f.mtime < self.since:
                self._offsets[f.path] = f.size
                continue
            self._offsets[f.path] = self._read_new(f.path, start, f.size, out)
        for gone in set(self._offsets) - seen:
            del self._offsets[gone]
            self._bad.pop(gone, None)
            self._mtimes.pop(gone, None)
            self._open.pop(gone, None)
        return out

    def _read_new(self, path: str, start: int, size: int, out: list[dict[str, Any]]) -> int:
        """Read complete lines from ``start``; returns the offset after the last one."""
        bad = 0
        pos = start
        try:
            with open(path, "rb") as fh:
                while pos < size:
                    fh.seek(pos)
                    data = fh.read(min(size - pos, _CHUNK))
                    if not data:
                        break
                    end = data.rfind(b"\n")
                    if end < 0:
                        if len(data) >= MAX_LINE:  # one over-long line: skip past it
                            nl = -1
                            while nl < 0 and data:
                                pos += len(data)
                                data = fh.read(_CHUNK)
                                nl = data.find(b"\n")
                            if nl >= 0:
                                pos += nl + 1
                                bad += 1
                            continue
                        break  # a line still being written: next poll
                    i = 0
                    while i <= end:
                        j = data.index(b"\n", i)
                        raw = data[i:j]
                        if raw.strip() and not self._take(path, pos + i, raw, out):
                            bad += 1
                        i = j + 1
                    pos += end + 1
        except OSError:
            return pos
        if bad:
            total = self._bad.get(path, 0)
            self._bad[path] = total + bad
            if total == 0:
                _warn_bad(path, bad)
        return pos

    def _take(self, path: str, offset: int, raw: bytes, out: list[dict[str, Any]]) -> bool:
        rec = parse_line(raw)
        if rec is None:
            return False
        kind = rec["kind"]
        if kind == KIND_DROPPED:
            reason = str(rec["reason"])
            self.dropped[reason] = self.dropped.get(reason, 0) + int(rec["count"])
            return True
        if kind == KIND_SUPPRESSED and rec.get("open") is True:
            body = raw.rstrip()
            region_at = len(body) - 1 - TALLY_REGION
            if body.endswith(b"}") and region_at > 0:
                parsed = _parse_region(body[region_at:-1])
                if parsed is not None:
                    self._open.setdefault(path, {})[offset + region_at] = _Tracked(rec, parsed[0])
        if self.since is not None and float(rec["ts"]) < self.since:
            return True
        out.append(rec)
        return True

    def _regrown(self, path: str, out: list[dict[str, Any]]) -> None:
        tracked = self._open.get(path, {})
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            for offset, t in list(tracked.items()):
                parsed = None
                prev = b""
                for _ in range(3):  # an update may land mid-read: trust two equal reads
                    region = os.pread(fd, TALLY_REGION, offset)
                    if region == prev:
                        parsed = _parse_region(region)
                        break
                    prev = region
                if parsed is None:
                    continue
                count, ts, open_ = parsed
                if count > t.count:
                    delta = dict(t.entry)
                    delta["count"] = count - t.count
                    delta["ts"] = ts
                    delta["open"] = open_
                    t.count = count
                    if self.since is None or ts >= self.since:
                        out.append(delta)
                if not open_:
                    del tracked[offset]
        except OSError:
            pass
        finally:
            os.close(fd)
