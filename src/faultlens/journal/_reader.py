"""Reading the journal back: every process's files merged, damaged lines skipped.

A line can be damaged in two ways: torn (the process died, or the disk filled up, in the
middle of a write) or corrupt (someone edited the file, a disk error). Either way the reader
skips it and warns once per file with the number of lines skipped, and goes on: one bad
line must never hide a day of errors. A last line with no newline that parses is the newest
record of a file still being written, and is included.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from ._files import list_files

__all__ = ["JournalTail", "parse_line", "read_records"]

_log = logging.getLogger("faultlens")

_REQUIRED = ("ts", "code")


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One journal line as a dict, or None when it is not a journal record."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict) or not all(k in obj for k in _REQUIRED):
        return None
    ts = obj.get("ts")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return None
    return obj


def _files_for(path: str, since: float | None) -> list[str]:
    if os.path.isdir(path):
        # A file last modified before ``since`` holds only older records: skip it unread.
        return [f.path for f in list_files(path) if since is None or f.mtime >= since - 1.0]
    if os.path.exists(path):
        return [path]
    return []


def _read_file(path: str, since: float | None, until: float | None) -> Iterator[dict[str, Any]]:
    bad = 0
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                rec = parse_line(raw)
                if rec is None:
                    bad += 1
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
        _log.warning(
            "faultlens: skipped %d corrupt or torn line%s in journal file %s",
            bad,
            "" if bad == 1 else "s",
            path,
        )


def read_records(
    path: str, since: float | None = None, until: float | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records of a journal directory (all processes' files, oldest file first)
    or of a single file, with ``since <= ts <= until`` (epoch seconds) when given.

    Records are in write order within a file; sort by ``ts`` when the order across
    processes matters. Damaged lines are skipped with one warning per file.
    """
    for file in _files_for(os.fspath(path), since):
        yield from _read_file(file, since, until)


class JournalTail:
    """Incremental reader: each ``poll()`` returns only the complete lines appended since
    the last poll, across all files of the directory (new, growing and rotated ones).

    The local monitor uses it so that a check every minute reads the last minute's bytes,
    not the whole journal. A trailing line without its newline is left for the next poll.
    """

    def __init__(self, directory: str, since: float | None = None) -> None:
        self.directory = directory
        self.since = since
        self._offsets: dict[str, int] = {}
        self._bad: dict[str, int] = {}

    def poll(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for f in list_files(self.directory):
            seen.add(f.path)
            start = self._offsets.get(f.path, 0)
            if f.size < start:  # truncated or replaced: start over
                start = 0
            if f.size == start:
                self._offsets[f.path] = start
                continue
            if start == 0 and self.since is not None and f.mtime < self.since:
                self._offsets[f.path] = f.size
                continue
            try:
                with open(f.path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(f.size - start)
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                self._offsets[f.path] = start
                continue
            bad = 0
            for raw in data[: end + 1].splitlines():
                if not raw.strip():
                    continue
                rec = parse_line(raw)
                if rec is None:
                    bad += 1
                    continue
                if self.since is not None and float(rec["ts"]) < self.since:
                    continue
                out.append(rec)
            self._offsets[f.path] = start + end + 1
            if bad:
                total = self._bad.get(f.path, 0)
                self._bad[f.path] = total + bad
                if total == 0:
                    _log.warning(
                        "faultlens: skipped %d corrupt or torn line%s in journal file %s",
                        bad,
                        "" if bad == 1 else "s",
                        f.path,
                    )
        for gone in set(self._offsets) - seen:
            del self._offsets[gone]
            self._bad.pop(gone, None)
        return out
