"""The CSV report over a journal of any size: one row per error line, in time order,
streamed in memory bounded by 16 bytes a record (never by the rows' text).

1. The first pass (``JournalScan.split``, on two CPUs for a large journal) keeps each error
   line's time and place (``ref``) as runs sorted by ``(ts, ref)``, one run per file.
2. The rows are cut into *windows* in time order: every row up to a time ``T`` not yet
   written, sorted by ``(ts, ref)``, is a window, and ``T`` is chosen so that a window holds
   about ``WINDOW`` rows. The windows one after the other are exactly ``sorted((ts, ref))``
   (a stable sort by time in read order), as a merge of the runs would give them.
3. Each window's lines are read back a file at a time through a span of each file
   (``_Lines``: one read serves the next rows of that file) and written by
   ``_csv.fast_row``, or by ``row_cells`` over the whole record for a line it leaves to the
   general path; the window's text is its rows in time order.
4. On two CPUs the windows are shared: a forked child writes every other window and sends
   its text through a pipe while this process writes the others, and this process yields
   them all in order. Whatever goes wrong in the child (it fails, dies, sends nonsense, or
   sends nothing for ``STALL`` seconds), it is killed and reaped and this process writes
   its windows itself: the text is the same either way. The child only reads lines,
   formats rows and writes to its pipe (no logging, no lock another thread could hold),
   and leaves by ``os._exit``; by default a process with other threads is not forked.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct
import sys
import threading
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from typing import Any

from ..journal import KIND_ERROR, JournalScan, LineReader, fork_writer
from ._csv import HEADER, csv_row, fast_row, row_cells

__all__ = ["csv_merge", "csv_pass", "csv_text"]

WINDOW = 2048  # rows a window holds, about: its text (~1 MB) is the most held at once
PARALLEL_ROWS = 20_000  # fewer rows than this are written here (a fork costs more)
_SPAN = 64 << 10  # bytes of a file read at a time to read lines back
_BACK = 4 << 10  # ... from this far before the line asked for (a file is nearly in time order)
_FILES = 64  # files kept open (and a span of each kept) while reading lines back
_OFFSET = (1 << 40) - 1  # a ref is (file number << 40) | offset
STALL = 30.0  # seconds the child may send nothing before its windows are written here


class Rows:
    """Every error record's time and ref, 16 bytes a record, as runs sorted by ``(ts,
    ref)`` (one per file: a file's lines are nearly in time order, sorting one file at a
    time keeps the sort's own memory to a file's worth)."""

    __slots__ = ("refs", "runs", "times")

    def __init__(self) -> None:
        self.times = array("d")
        self.refs = array("q")
        self.runs: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.times)

    def close_run(self, lo: int) -> None:
        hi = len(self.times)
        if hi == lo:
            return
        times, refs = self.times, self.refs
        if any(times[i] > times[i + 1] for i in range(lo, hi - 1)):
            ordered = sorted(zip(times[lo:hi], refs[lo:hi], strict=True))
            times[lo:hi] = array("d", (t for t, _ in ordered))
            refs[lo:hi] = array("q", (r for _, r in ordered))
        self.runs.append((lo, hi))

    def windows(self, size: int | None = None) -> Iterator[list[tuple[int, int, int]]]:
        """The windows in time order, each as its pieces of runs ``(run, lo, hi)``: every
        row with ``ts <= T`` not in an earlier window. ``T`` is the time of the ``size``-th
        next row of the run where it comes soonest (halved while the window would hold
        more than ``2 * size`` rows), so no run gives more than ``size`` rows but for rows
        of one and the same time."""
        size = WINDOW if size is None else size
        times = self.times
        pos = [lo for lo, _ in self.runs]
        ends = [hi for _, hi in self.runs]
        live = [r for r in range(len(pos)) if pos[r] < ends[r]]
        while live:
            step = size
            while True:
                t = min(times[min(pos[r] + step, ends[r]) - 1] for r in live)
                pieces = []
                total = 0
                for r in live:
                    lo = pos[r]
                    if times[lo] <= t:
                        hi = bisect_right(times, t, lo, ends[r])
                        pieces.append((r, lo, hi))
                        total += hi - lo
                if total <= 2 * size or step == 1:
                    break
                step //= 2
            for r, _, hi in pieces:
                pos[r] = hi
            live = [r for r in live if pos[r] < ends[r]]
            yield pieces


def csv_pass(entries: Iterator[tuple[Any, int]]) -> Rows:
    rows = Rows()
    times, refs = rows.times, rows.refs
    file_no, lo = -1, 0
    for view, ref in entries:
        if view.kind == KIND_ERROR:
            if ref >> 40 != file_no:
                rows.close_run(lo)
                file_no, lo = ref >> 40, len(times)
            times.append(view.ts)
            refs.append(ref)
    rows.close_run(lo)
    return rows


def csv_merge(older: Rows, newer: Rows) -> Rows:
    shift = len(older.times)
    older.times.extend(newer.times)
    older.refs.extend(newer.refs)
    older.runs.extend((lo + shift, hi + shift) for lo, hi in newer.runs)
    return older


class _Lines:
    """Lines read back by ref through a span of each file (``_SPAN`` bytes from a little
    before the line asked for): a window asks for one file's lines at a time, in time
    order, which is nearly the file's own, so one read serves the next rows too. A line
    that does not end inside a span (a long one, the last one of a file without its
    newline, a file cut short) is read by ``LineReader``, which decides about it as the
    general path does."""

    def __init__(self, files: list[str]) -> None:
        self._files = files
        self._fds: dict[int, int] = {}
        self._spans: dict[int, tuple[int, bytes]] = {}
        self.reader = LineReader(files)

    def line(self, ref: int) -> bytes | None:
        """The line at ``ref`` when it ends inside a span, else None (ask ``reader``)."""
        n, offset = ref >> 40, ref & _OFFSET
        span = self._spans.get(n)
        if span is not None:
            i = offset - span[0]
            data = span[1]
            if 0 <= i < len(data):
                end = data.find(b"\n", i)
                if end >= 0:
                    return data[i:end]
        return self._read(n, offset)

    def _read(self, n: int, offset: int) -> bytes | None:
        fd = self._fds.get(n)
        try:
            if fd is None:
                if not 0 <= n < len(self._files):
                    return None
                if len(self._fds) >= _FILES:
                    old = next(iter(self._fds))
                    os.close(self._fds.pop(old))
                    self._spans.pop(old, None)
                fd = self._fds[n] = os.open(self._files[n], os.O_RDONLY)
            start = max(0, offset - _BACK)
            data = os.pread(fd, _SPAN, start)
        except OSError:
            return None
        self._spans[n] = (start, data)
        i = offset - start
        end = data.find(b"\n", i) if i < len(data) else -1
        return data[i:end] if end >= 0 else None

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._spans.clear()
        self.reader.close()


def _window_text(rows: Rows, pieces: list[tuple[int, int, int]], lines: _Lines) -> str:
    """The CSV rows of a window (its ``pieces`` of runs, see ``Rows.windows``) in time
    order. The lines are read a piece at a time (a run is one file's rows in time order,
    nearly the file's own order: a span read serves the next rows however many files the
    window's rows come from), then the rows put in ``(ts, ref)`` order. A line gone
    meanwhile (pruned by retention since the first pass) has no row."""
    times, refs = rows.times, rows.refs
    line, record = lines.line, lines.reader.record
    done: list[tuple[float, int, str]] = []
    append = done.append
    for _, lo, hi in pieces:
        for ts, ref in zip(times[lo:hi], refs[lo:hi], strict=True):
            raw = line(ref)
            text = fast_row(raw, ts) if raw is not None and raw.isascii() else None
            if text is None:
                rec = record(ref, ts)  # the general path: the whole record
                if rec is None:
                    continue
                text = csv_row(row_cells(rec))
            append((ts, ref, text))
    if len(pieces) > 1:
        done.sort()  # by (ts, ref): refs differ, texts are never compared
    return "".join([text for _, _, text in done])


def _parallel(workers: int | None, rows: int) -> bool:
    if workers == 1 or not hasattr(os, "fork"):
        return False
    if workers is not None:
        return workers >= 2
    return (
        rows >= PARALLEL_ROWS
        and (os.cpu_count() or 1) >= 2
        and sys.platform.startswith("linux")  # fork is only plain on Linux
        and threading.active_count() == 1  # forking a threaded process is not safe
    )


def csv_text(scan: JournalScan, rows: Rows, *, workers: int | None = None) -> Iterator[str]:
    """The CSV report's text in chunks (the header, then a window at a time)."""
    yield HEADER
    lines = _Lines(scan.files)
    child = _Child(rows, scan.files) if _parallel(workers, len(rows)) else None
    try:
        for k, pieces in enumerate(rows.windows()):
            text = child.take(k) if child is not None and k % 2 else None
            if text is None:
                text = _window_text(rows, pieces, lines)
            if text:
                yield text
    finally:
        lines.close()
        if child is not None:
            child.close()


_HEAD = struct.Struct("<q")  # a window's text length before its bytes in the pipe


class _Child:
    """A forked process writing the odd windows into a pipe, each as its length and its
    UTF-8 bytes (``surrogatepass``: the text comes back exactly as written). ``take(k)``
    is window ``k``'s text, or None once the child is gone, failed or stalled (no byte for
    ``STALL`` seconds): the caller writes it instead, and the later ones too. ``close()``
    kills and reaps the child (never a zombie, whatever state it is in)."""

    def __init__(self, rows: Rows, files: list[str]) -> None:
        self.pid = 0
        self._fd = -1
        self._next = 1  # the window the pipe holds next
        # room in the pipe for a window's text; on failure the parent writes these windows
        forked = fork_writer(lambda w: _child_main(rows, files, w), pipe_size=1 << 20)
        if forked is not None:
            self.pid, self._fd = forked

    def take(self, k: int) -> str | None:
        if self.pid == 0 or k != self._next:
            return None
        head = self._read(_HEAD.size)
        if head is not None:
            (size,) = _HEAD.unpack(head)
            data = self._read(size) if size >= 0 else None
            text = None
            if data is not None:
                with contextlib.suppress(UnicodeDecodeError):
                    text = data.decode("utf-8", "surrogatepass")
            if text is not None:
                self._next += 2
                return text
        self.close()  # gone, failed or stalled: the rest is written here
        return None

    def _read(self, size: int) -> bytes | None:
        """``size`` bytes from the pipe, or None at its end, on an error, or when the
        child sends nothing for ``STALL`` seconds."""
        parts = []
        left = size
        try:
            while left:
                if not self._ready():
                    return None
                data = os.read(self._fd, min(left, 1 << 20))
                if not data:
                    return None
                parts.append(data)
                left -= len(data)
        except (OSError, ValueError):  # ValueError: an fd select() cannot watch
            return None
        return b"".join(parts)

    def _ready(self) -> bool:
        """Something to read (or the pipe's end) within ``STALL`` seconds."""
        if hasattr(select, "poll"):
            poll = select.poll()
            poll.register(self._fd, select.POLLIN)
            return bool(poll.poll(STALL * 1000))
        return bool(select.select([self._fd], [], [], STALL)[0])

    def close(self) -> None:
        if self.pid == 0:
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)
        self.pid, self._fd = 0, -1


def _child_main(rows: Rows, files: list[str], fd: int) -> None:
    lines = _Lines(files)
    with os.fdopen(fd, "wb", buffering=0) as out:
        for k, pieces in enumerate(rows.windows()):
            if k % 2:
                data = _window_text(rows, pieces, lines).encode("utf-8", "surrogatepass")
                out.write(_HEAD.pack(len(data)))
                view = memoryview(data)
                while view:
                    view = view[out.write(view) :]
