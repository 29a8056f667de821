"""One fast, streaming pass over the journal: what ``faultlens stats`` and ``faultlens
report`` read a week of a busy service's errors with.

``read_entries`` builds a dict per line with the standard library's JSON decoder and checks
it in Python; over 200,000 lines (300 MB) that was most of the time ``faultlens stats``
took (and the list of them most of its memory). ``JournalScan`` reads the same files, but

- in 1 MiB chunks split at newlines (a line longer than ``MAX_LINE`` is never held);
- decoding each line with msgspec into a typed struct (``_Line``): the type checks of
  ``_format.entry_kind`` are done by the decoder, in C, and the maps (``context``,
  ``resources``, ``details``) are checked to be objects and skipped, never built;
- checking the ranges (``ts`` a time, counts in range, the kind's required fields) on it;
- and, for a journal of ``PARALLEL_BYTES`` or more, on two CPUs (``JournalScan.split``).

The verdict on every line is exactly ``_reader.parse_line``'s: a line the fast decoder
accepts is one the standard decoder reads to the same values (lines faultlens writes are
ASCII; any other line, and any line the fast decoder refuses — ``NaN`` inside a context
map, a lone surrogate escape, a byte-order mark — is handed to ``parse_line``, which
decides). So the totals, the damaged-line counts and the warnings are those of
``read_entries``; only the time differs. Without msgspec installed every line takes the
``parse_line`` path.

Each view comes with a ``ref`` (file number and offset, which also orders the entries as
read) from which ``resolve``/``LineReader`` re-read the full line later: a report needs
the whole record (its stack, its context) only for the rows it shows, so nothing else is
held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

from ._files import ignored_files, list_files
from ._format import KIND_DROPPED, KIND_ERROR, KIND_SUPPRESSED, MAX_COUNT, MAX_TS, entry_kind
from ._reader import MAX_LINE, ReadReport, _bound, _warn_bad, parse_line

__all__ = [
    "CHUNK",
    "Entry",
    "JournalScan",
    "LineReader",
    "fast_decoder_available",
    "fork_writer",
    "full_record",
    "parse_view",
]

_log = logging.getLogger("faultlens")

CHUNK = 1 << 20  # bytes read at a time
PARALLEL_BYTES = 64 << 20  # a journal this large is read on two CPUs (JournalScan.split)
T = TypeVar("T")
_KINDS = (KIND_ERROR, KIND_SUPPRESSED, KIND_DROPPED)


class Entry:
    """The fields of a journal line the aggregates use (what ``parse_line``'s dict would
    give for them). Built from a validated dict on the slow path."""

    __slots__ = (
        "category",
        "code",
        "count",
        "exception_type",
        "fingerprint",
        "first_ts",
        "kind",
        "message",
        "reason",
        "service",
        "severity",
        "stage",
        "suppressed",
        "ts",
    )

    def __init__(self, d: dict[str, Any]) -> None:
        self.kind = d["kind"]
        self.ts = float(d["ts"])
        for name in (
            "category",
            "code",
            "count",
            "exception_type",
            "fingerprint",
            "first_ts",
            "message",
            "reason",
            "service",
            "severity",
            "stage",
            "suppressed",
        ):
            setattr(self, name, d.get(name))


try:
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a dependency; the slow path still works
    msgspec = None  # type: ignore[assignment]


def fast_decoder_available() -> bool:
    return msgspec is not None


if msgspec is not None:

    class _Object(msgspec.Struct, gc=False):
        """Any JSON object, its members skipped (``context``, ``resources``, ``details``)."""

    class _Line(msgspec.Struct, gc=False):
        # Every field ``entry_kind`` type-checks, with the type it requires: a value of
        # another type fails the fast decoder and the line goes to ``parse_line``.
        ts: float
        kind: str = KIND_ERROR
        code: str | None = None
        category: str | None = None
        severity: str | None = None
        fingerprint: str | None = None
        stage: str | None = None
        service: str | None = None
        suppressed: int | None = None
        count: int | None = None
        first_ts: float | None = None
        reason: str | None = None
        message: str | None = None
        exception_type: str | None = None
        time: str | None = None
        trace_id: str | None = None
        span_id: str | None = None
        span_name: str | None = None
        hint: str | None = None
        stack: str | None = None
        host: str | None = None
        pid: int | None = None
        v: int | None = None
        retryable: bool | None = None
        open: bool | msgspec.UnsetType = msgspec.UNSET
        context: _Object | None = None
        resources: _Object | None = None
        details: _Object | None = None

    _decode: Any = msgspec.json.Decoder(_Line).decode
    _decode_any: Any = msgspec.json.Decoder().decode
    _DecodeError: Any = msgspec.DecodeError
else:  # pragma: no cover
    _decode = None
    _decode_any = None
    _DecodeError = ValueError


def _fast_ok(v: Any) -> bool:
    """The range checks of ``entry_kind`` on a view whose types the decoder checked."""
    ts = v.ts
    if not 0.0 <= ts <= MAX_TS:
        return False
    kind = v.kind
    if kind == KIND_ERROR:
        sup = v.suppressed
        return bool(v.code) and (sup is None or 0 <= sup <= MAX_COUNT)
    count = v.count
    if kind == KIND_SUPPRESSED:
        first = v.first_ts
        return (
            bool(v.code)
            and count is not None
            and 0 <= count <= MAX_COUNT
            and (first is None or 0.0 <= first <= MAX_TS)
        )
    if kind == KIND_DROPPED:
        return v.reason is not None and count is not None and 0 <= count <= MAX_COUNT
    return False


def _slow(raw: bytes) -> Entry | None:
    d = parse_line(raw)
    return None if d is None else Entry(d)


def parse_view(raw: bytes) -> Any:
    """One line as a view (``kind``, ``ts``, ``code``, ...), or None when ``parse_line``
    would return None for it."""
    if _decode is not None and raw.isascii():
        try:
            v = _decode(raw)
        except _DecodeError:
            return _slow(raw)
        except RecursionError:
            return None
        return v if _fast_ok(v) else None
    return _slow(raw)


def full_record(raw: bytes, ts: float | None = None) -> dict[str, Any] | None:
    """The whole line as ``parse_line`` gives it (``kind`` filled in), decoded by msgspec
    when it can give the same dict (an ASCII line it accepts), else by ``parse_line``.

    ``ts``: the line's time as a first pass that validated these bytes read it; a line
    that still has it is not validated again (an error line is never rewritten in place:
    different bytes at that offset mean another file, and a different time)."""
    if _decode_any is not None and raw.isascii():
        try:
            obj = _decode_any(raw)
        except _DecodeError:
            return parse_line(raw)
        except RecursionError:
            return None
        if isinstance(obj, dict):
            if ts is not None and obj.get("ts") == ts and obj.get("kind", KIND_ERROR) == KIND_ERROR:
                obj["kind"] = KIND_ERROR
                return obj
            kind = entry_kind(obj)
            if kind is None:
                return None
            obj["kind"] = kind
            return obj
        return None
    return parse_line(raw)


class LineReader:
    """Reads single lines back by ``ref`` (a few open files kept)."""

    def __init__(self, files: list[str], keep: int = 16) -> None:
        self._files = files
        self._fds: dict[int, int] = {}
        self._keep = keep

    def line(self, ref: int) -> bytes | None:
        n, offset = ref >> 40, ref & ((1 << 40) - 1)
        if not 0 <= n < len(self._files):
            return None
        fd = self._fds.get(n)
        try:
            if fd is None:
                if len(self._fds) >= self._keep:
                    old, ofd = next(iter(self._fds.items()))
                    del self._fds[old]
                    os.close(ofd)
                fd = self._fds[n] = os.open(self._files[n], os.O_RDONLY)
            data = os.pread(fd, 16384, offset)
            nl = data.find(b"\n")
            while nl < 0 and len(data) <= MAX_LINE:
                more = os.pread(fd, 65536, offset + len(data))
                if not more:
                    break
                nl = len(data) + more.find(b"\n") if b"\n" in more else -1
                data += more
        except OSError:
            return None
        return data if nl < 0 else data[:nl]

    def record(self, ref: int, ts: float | None = None) -> dict[str, Any] | None:
        """The error record at ``ref`` (``ts``: see ``full_record``)."""
        raw = self.line(ref)
        return None if raw is None or len(raw) > MAX_LINE else full_record(raw, ts)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _chunks(fh: IO[bytes], limit: int | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """``(offset, lines)`` per chunk read: the complete lines (without their newline) and
    the file offset of the first. A line still growing past ``MAX_LINE`` bytes comes as
    ``_OVERLONG``, dropped up to its newline as it is read, never held whole."""
    pos = 0  # file offset of ``carry``
    carry = b""
    skipping = False  # inside an over-long line: drop bytes up to its newline
    left = limit
    while True:
        if left is None:
            chunk = fh.read(CHUNK)
        else:
            chunk = fh.read(min(CHUNK, left))
            left -= len(chunk)
        if not chunk:
            if carry and not skipping:
                yield pos, [carry]
            return
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                pos += len(chunk)
                continue
            pos += nl + 1
            chunk = chunk[nl + 1 :]
            skipping = False
        data = carry + chunk if carry else chunk
        lines = data.split(b"\n")
        carry = lines.pop()
        if lines:
            yield pos, lines
            pos += len(data) - len(carry)
        if len(carry) > MAX_LINE:
            yield pos, [_OVERLONG]
            pos += len(carry)
            carry = b""
            skipping = True


_OVERLONG = b"\n\n"  # a marker no split line can be (none contains a newline)
_BLANK = object()  # a blank line: neither an entry nor damage


def fork_writer(write: Callable[[int], None], pipe_size: int = 0) -> tuple[int, int] | None:
    """Fork a child that runs ``write(fd)`` into a pipe and ends with ``os._exit`` (0 once
    ``write`` returned, 1 if it raised: the parent then does that work itself). Returns
    ``(pid, read end)`` to the parent, or None when no pipe or process could be had.
    ``pipe_size`` asks Linux for that much room in the pipe."""
    try:
        r, w = os.pipe()
    except OSError:
        return None
    if pipe_size:
        with contextlib.suppress(ImportError, AttributeError, OSError):
            import fcntl

            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, pipe_size)
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(r)
            write(w)
            code = 0
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


class _Child:
    """``worker`` over files ``[0, k)`` of a scan in a forked child; ``collect()`` gives
    ``(result, files read, damaged lines per file, ends)`` or None if anything failed."""

    def __init__(
        self, scan: JournalScan, worker: Callable[[Iterator[tuple[Any, int]]], Any], k: int
    ) -> None:
        self.pid = 0
        self.fd = -1

        def write(w: int) -> None:
            scan._quiet = True
            result = worker(scan._range(0, k))
            payload = pickle.dumps(
                (result, scan.report.files, scan.report.bad_lines, scan.ends[:k]),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view) :]

        forked = fork_writer(write)  # on failure, the parent reads these files itself
        if forked is not None:
            self.pid, self.fd = forked

    def collect(self) -> Any:
        if self.pid == 0:
            return None
        chunks = []
        try:
            while True:
                data = os.read(self.fd, 1 << 20)
                if not data:
                    break
                chunks.append(data)
        except OSError:
            chunks = []
        finally:
            os.close(self.fd)
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                status = 1
        if status != 0 or not chunks:
            return None
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:
            return None

    def abandon(self) -> None:
        """This process failed (or was interrupted): do not leave the child behind."""
        if self.pid == 0:
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)
        self.pid = 0


def _warn_ignored(directory: str, names: list[str]) -> None:
    shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
    _log.warning(
        "faultlens: ignored %d file%s in %s not named like journal files "
        "(journal-<host>-<pid>-<n>.jsonl): %s",
        len(names),
        "" if len(names) == 1 else "s",
        directory,
        shown,
    )


class JournalScan:
    """Iterate ``(view, ref)`` over every valid line of a journal directory (or one file)
    with ``since <= ts <= until``, oldest file first, like ``read_entries``: damaged lines
    skipped, counted in ``report`` and warned about once per file.

    ``ignored`` lists the files of the directory that look like journal data but are not
    named like journal files (``journal-<host>-<pid>-<n>.jsonl``), which no reader reads.
    """

    def __init__(
        self,
        path: str,
        since: float | None = None,
        until: float | None = None,
        *,
        kinds: frozenset[str] | None = None,
        report: ReadReport | None = None,
        warn_ignored: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        self.since = _bound(since, "since")
        self.until = _bound(until, "until")
        self.kinds = frozenset(_KINDS) if kinds is None else frozenset(kinds)
        self.report = report if report is not None else ReadReport()
        self.files: list[str] = []
        self.ignored: list[str] = []
        self.ends: list[int] = []
        self._quiet = False  # a forked child leaves the warnings to its parent
        if os.path.isdir(self.path):
            since_ = self.since
            # A file last modified before ``since`` holds only older lines: skip it unread.
            self.files = [
                f.path for f in list_files(self.path) if since_ is None or f.mtime >= since_ - 1.0
            ]
            self.ignored = ignored_files(self.path)
            self.report.ignored = list(self.ignored)
            if self.ignored and warn_ignored:
                _warn_ignored(self.path, self.ignored)
        elif os.path.exists(self.path):
            self.files = [self.path]

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        """``(view, ref)`` per entry; ``self.ends`` then holds how far each file was read.
        ``ref`` also orders the entries as they were read (file by file, line by line)."""
        return self._range(0, len(self.files))

    def _range(self, lo: int, hi: int) -> Iterator[tuple[Any, int]]:
        if len(self.ends) != len(self.files):
            self.ends = [0] * len(self.files)
        for n in range(lo, hi):
            yield from self._file(n, self.files[n], None, False)

    def split(
        self,
        worker: Callable[[Iterator[tuple[Any, int]]], T],
        merge: Callable[[T, T], T],
        *,
        workers: int | None = None,
        wrap: Callable[[Iterator[tuple[Any, int]]], Iterator[tuple[Any, int]]] | None = None,
    ) -> T:
        """``worker`` over every entry, on two CPUs when it pays: the older files are
        handed to a forked child, the newer ones read here, and ``merge(older, newer)``
        combines the two results (which must pickle). ``workers``: 1 to stay in this
        process, 2 to split whatever the size; by default a journal of ``PARALLEL_BYTES``
        or more is split when this is a single-threaded process on a Linux machine with two
        CPUs or more (fork is not plain elsewhere). Whatever goes wrong in the child (it
        dies, cannot fork), its files are read here instead: the result is always the whole
        journal's.
        Warnings about damaged lines are logged by this process, once per file."""
        k = self._split_point(workers)
        if k is None:
            it = iter(self)
            return worker(it if wrap is None else wrap(it))
        self.ends = [0] * len(self.files)
        child = _Child(self, worker, k)
        try:
            it = self._range(k, len(self.files))
            mine = worker(it if wrap is None else wrap(it))
        except BaseException:
            child.abandon()
            raise
        theirs = child.collect()
        if theirs is None:  # no child result: read its files here
            older = worker(self._range(0, k))
        else:
            older, files, bad, ends = theirs
            self.report.files += files
            self.ends[:k] = ends
            for path, count in bad.items():
                self.report.bad_lines[path] = self.report.bad_lines.get(path, 0) + count
                _warn_bad(path, count)
        return merge(older, mine)

    def _split_point(self, workers: int | None) -> int | None:
        if len(self.files) < 2 or workers == 1 or not hasattr(os, "fork"):
            return None
        sizes = []
        for path in self.files:
            try:
                sizes.append(os.stat(path).st_size)
            except OSError:
                sizes.append(0)
        total = sum(sizes)
        if workers is None:
            if total < PARALLEL_BYTES or (os.cpu_count() or 1) < 2:
                return None
            if not sys.platform.startswith("linux"):  # fork is only plain on Linux (macOS:
                return None  # frameworks that must not be forked; Windows: none)
            if threading.active_count() > 1:  # forking a threaded process is not safe
                return None
        half, acc = total / 2, 0
        for k, size in enumerate(sizes):
            if acc + size / 2 >= half and k > 0:
                return k
            acc += size
        return len(self.files) - 1

    def records(self) -> Iterator[dict[str, Any]]:
        """The error records (full dicts, as ``read_records`` gives them) of a second pass
        over the same files, up to where the first pass stopped (``ends``): a report's
        rows are the lines its totals counted, even while the journal grows. Damaged lines
        were counted and warned about by the first pass."""
        ends = self.ends
        for n, path in enumerate(self.files):
            limit = ends[n] if n < len(ends) else None
            for v, raw in self._file(n, path, limit, True):
                if v.kind == KIND_ERROR:
                    rec = full_record(raw)
                    if rec is not None:
                        yield rec

    def _file(self, n: int, path: str, limit: int | None, quiet: bool) -> Iterator[tuple[Any, Any]]:
        since = -1.0 if self.since is None else self.since
        until = MAX_TS + 1.0 if self.until is None else self.until
        kinds = self.kinds
        all_kinds = kinds == frozenset(_KINDS)
        base = n << 40
        bad = 0
        decode, decode_error, overlong = _decode, _DecodeError, _OVERLONG
        end = 0
        try:
            with open(path, "rb") as fh:
                if not quiet:
                    self.report.files += 1
                for pos, lines in _chunks(fh, limit):
                    for raw in lines:
                        at = pos
                        pos += len(raw) + 1
                        if raw is overlong or len(raw) > MAX_LINE:
                            bad += 1
                            continue
                        # The fast path, inlined (it runs once per line): parse_view.
                        if decode is not None and raw.isascii():
                            try:
                                v = decode(raw)
                            except decode_error:
                                v = _slow(raw) if raw.strip() else _BLANK
                            except RecursionError:
                                v = None
                            else:
                                if v.kind == KIND_ERROR:
                                    sup = v.suppressed
                                    if not (
                                        v.code
                                        and 0.0 <= v.ts <= MAX_TS
                                        and (sup is None or 0 <= sup <= MAX_COUNT)
                                    ):
                                        v = None
                                elif not _fast_ok(v):
                                    v = None
                        elif raw.strip():
                            v = _slow(raw)
                        else:
                            continue
                        if v is None:
                            bad += 1
                            continue
                        if v is _BLANK:
                            continue
                        if not all_kinds and v.kind not in kinds:
                            continue
                        ts = v.ts
                        if since <= ts <= until:
                            # the second pass (quiet) wants the line, the first its place
                            yield (v, raw) if quiet else (v, base | at)
                end = fh.tell()
        except OSError as exc:
            # Deleted by retention while we read it, or unreadable: the rest still counts.
            if not quiet:
                _log.warning(
                    "faultlens: cannot read journal file %s: %s", path, exc.strerror or exc
                )
        if not quiet:
            self.ends[n] = end
        if bad and not quiet:
            self.report.bad_lines[path] = self.report.bad_lines.get(path, 0) + bad
            if not self._quiet:
                _warn_bad(path, bad)

    def resolve(self, ref: int) -> dict[str, Any] | None:
        """The full line at ``ref`` (as ``parse_line`` gives it), or None when it is gone
        (the file pruned by retention meanwhile) or no longer valid."""
        reader = LineReader(self.files, keep=1)
        try:
            return reader.record(ref)
        finally:
            reader.close()
