"""The journal writer: write-through, on the thread that recorded the error.

Every record is encoded and appended (one ``os.write`` on an ``O_APPEND`` descriptor) by
the recording thread, before ``record_error()`` returns. Once written, a line is in the
kernel's page cache and survives whatever happens to the process next: a multiprocessing
worker that ends in ``os._exit``, a pool worker ``terminate()`` kills with SIGTERM, a
SIGKILL, a crash. Nothing is queued for later, so nothing waits for an exit hook that may
never run. The cost is one small write per *recorded* error (a few microseconds into the
page cache); storms are bounded by the per-fingerprint rate limiter.

Rate-limited occurrences are counted in tally lines (see ``_format``), appended at the
first suppressed occurrence and then updated in place with one ``pwrite`` per
occurrence on a second descriptor (``O_APPEND`` would make Linux ignore the offset): the
count on disk is exact at every moment, at a fixed cost and size however long the storm.
At most ``MAX_SLOTS`` tallies are open at a time (memory stays flat); a tally is closed
after ``TALLY_PERIOD`` seconds, at rotation and at shutdown.

The ``fsync`` policy decides how much survives a crash of the *machine*, and never puts
an unbounded wait on the application:

- ``always``: fsync after every record written, on the recording thread (what was asked
  for); in-place tally updates are fsynced at most once per ``FSYNC_INTERVAL``, so a storm
  of rate-limited errors does not become a storm of fsyncs;
- ``batch`` (default): a background thread fsyncs at most once a second (on a duplicate
  descriptor, holding no lock the recording threads need), and at rotation and shutdown;
- ``never``: the operating system decides.

Concurrency: one lock serialises the writes of a process's threads. A thread that cannot
take it within ``LOCK_WAIT`` (another thread's write is stuck in the kernel) leaves its
record in a bounded pending queue, which the lock holder writes before it lets go; so does
a signal handler that records an error while its own thread is in the middle of a write.
A full pending queue drops the record, counted in ``faultlens.internal.dropped
{reason="queue_full"}``.

Fork: a forked child must never write the parent's records nor into the parent's file. An
``os.register_at_fork`` hook (registered once, when the first writer is created) rebuilds
every writer's locks, descriptors, tallies and background thread in the child, which opens
its own file at its first record; a pid check on every write backs it up for children
forked without the hook (``fork()`` called from C).

Failures (read-only directory, disk full, file-size limit) never reach the application:
the records are counted in ``faultlens.internal.dropped{reason="export_failed"}``, the
problem is logged once, and writing is retried every ``RETRY_AFTER`` seconds. What this
process dropped is also written to the journal itself (``dropped`` lines), so it shows in
``faultlens stats`` when there is no metrics backend to show the counter.

Files and directories are owner-only (``_files``); retention is by age and total size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from ..capture import RecordedError, count_dropped, dropped_counts, internal_error, shielded
from ..capture._state import STATE
from ._files import file_name, make_private_dir, open_private, prune, wide_permissions
from ._format import (
    MAX_COUNT,
    dropped_line,
    encode,
    hostname,
    tally_line,
    tally_region,
    to_dict,
)

if TYPE_CHECKING:
    from .._config import JournalSettings
    from ..errors import ErrorInfo

__all__ = [
    "DEFAULT_MAX_TOTAL_BYTES",
    "LOCK_WAIT",
    "MAX_QUEUE",
    "MAX_SLOTS",
    "RETRY_AFTER",
    "TALLY_PERIOD",
    "JournalWriter",
    "max_total_bytes",
]

_log = logging.getLogger("faultlens")

MAX_QUEUE = 10_000  # records waiting for a stuck write; more are dropped (counted)
MAX_BATCH = 2_000  # records turned into one write
LOCK_WAIT = 0.5  # s a recording thread waits for another thread's write before queueing
RETRY_AFTER = 5.0  # s between attempts once the directory or disk failed
FSYNC_INTERVAL = 1.0  # s between fsyncs under the "batch" policy
TICK = 1.0  # s between background passes (fsync, tallies, drops, retention)
RETENTION_INTERVAL = 300.0  # s between retention sweeps when nothing rotates
TALLY_PERIOD = 10.0  # s a tally stays open; the next occurrence starts a new one
MAX_SLOTS = 1024  # open tallies per process; the oldest is closed to make room
DROPPED_INTERVAL = 10.0  # s between "dropped" lines while drops keep happening
DEFAULT_MAX_TOTAL_BYTES = 100 * 1024 * 1024
DROP_REASONS_JOURNALED = ("queue_full", "export_failed", "internal_error")


def max_total_bytes(settings: JournalSettings) -> int:
    """The journal directory's size budget: ``max_total_bytes``, or for configurations
    that still set the deprecated ``max_files``, ``max_files * max_bytes`` (the most the
    old count-based rule could keep), else ``DEFAULT_MAX_TOTAL_BYTES``."""
    explicit = getattr(settings, "max_total_bytes", None)
    if explicit:
        return int(explicit)
    legacy = getattr(settings, "max_files", None)
    if legacy:
        return int(legacy) * int(settings.max_bytes)
    return DEFAULT_MAX_TOTAL_BYTES


_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(msg, *args)


# -- fork safety: one hook for every writer, registered at the first writer ---------------------

_writers: weakref.WeakSet[JournalWriter] = weakref.WeakSet()
_fork_hook = False


def _track(writer: JournalWriter) -> None:
    global _fork_hook
    _writers.add(writer)
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        try:
            writer.after_fork()
        except Exception as exc:
            internal_error("journal after fork", exc)


class _Occurrence:
    """One rate-limited occurrence waiting for the lock (rare: contention or re-entrance)."""

    __slots__ = ("info", "service", "ts")

    def __init__(self, info: ErrorInfo, ts: float, service: str | None) -> None:
        self.info = info
        self.ts = ts
        self.service = service


class _Slot:
    """An open tally: where its in-place region is, and what it counted so far."""

    __slots__ = ("count", "first_ts", "key", "offset", "ts")

    def __init__(self, key: tuple[str, str | None, str | None], ts: float, offset: int) -> None:
        self.key = key  # severity, stage, service: a change starts a new tally
        self.count = 1
        self.first_ts = ts
        self.ts = ts
        self.offset = offset


class JournalWriter:
    """Appends ``RecordedError``\\ s to this process's journal files. Thread-safe, fork-safe."""

    def __init__(self, settings: JournalSettings, *, max_queue: int = MAX_QUEUE) -> None:
        self.settings = settings
        self.directory = os.path.abspath(settings.path)
        self.max_queue = max_queue
        self.max_total_bytes = max_total_bytes(settings)
        if getattr(settings, "max_files", None) and not getattr(settings, "max_total_bytes", None):
            _warn_once(
                "max_files",
                "faultlens: journal.max_files is deprecated and no longer counts files "
                "(every process writes its own, so a count deleted the history of short "
                "jobs); retention is by retention_days and total size: using max_files x "
                "max_bytes = %d bytes. Set journal.max_total_bytes instead.",
                self.max_total_bytes,
            )
        self._closed = False
        self._init_runtime()
        _track(self)

    # -- state that a forked child must rebuild ---------------------------------------------

    def _init_runtime(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._owner: int | None = None  # thread id inside a write (re-entrance guard)
        self._pending: deque[RecordedError | _Occurrence] = deque()
        self._fd: int | None = None  # O_APPEND: lines
        self._tfd: int | None = None  # no O_APPEND: in-place tally updates
        self._file: str | None = None
        self._n = 0
        self._size = 0
        self._torn = False  # the last write stopped mid-line: start the next with "\n"
        self._retry_at = 0.0
        self._failing = False
        self._dirty = False
        self._last_fsync = 0.0
        self._last_prune = 0.0
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_drops = time.monotonic()
        # Drops counted before this writer (or, in a child, by the parent) are not ours.
        # (In a forked child the capture layer has re-created its lock before any code runs:
        # whoever counted a drop registered that after-fork hook first.)
        base = dropped_counts()
        self._drops_base = {r: base.get(r, 0) for r in DROP_REASONS_JOURNALED}

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pending records, tallies, descriptors and
        thread (the parent writes its own); this process opens its own file on its first
        record. Idempotent."""
        if self._pid == os.getpid():
            return
        fds = (self._fd, self._tfd)
        self._init_runtime()
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- the sink side (recording thread) ------------------------------------------------------

    def submit(self, record: RecordedError) -> None:
        """Write one record now (write-through). Never raises into the caller."""
        self._enqueue(record)

    def note_suppressed(self, info: ErrorInfo, timestamp_ns: int, service: str | None) -> None:
        """Count one occurrence the rate limiter kept from being recorded in full."""
        self._enqueue(_Occurrence(info, timestamp_ns / 1e9, service))

    def _enqueue(self, item: RecordedError | _Occurrence) -> None:
        if self._pid != os.getpid():
            self.after_fork()
        if self._closed:
            count_dropped("queue_full")
            return
        if self._owner != threading.get_ident() and self._write_now(item):
            return
        if len(self._pending) >= self.max_queue:
            count_dropped("queue_full")
            return
        self._pending.append(item)
        self._write_pending(LOCK_WAIT)

    def _write_now(self, item: RecordedError | _Occurrence) -> bool:
        """The uncontended case without the queue: True when ``item`` was handled."""
        if self._pending or not self._lock.acquire(blocking=False):
            return False
        me = threading.get_ident()
        self._owner = me
        try:
            if isinstance(item, _Occurrence):
                self._tally(item)
            else:
                self._write_records([item])
            if self._pending:
                self._drain_locked()
        except Exception as exc:
            internal_error("journal write", exc)
        finally:
            self._owner = None
            self._lock.release()
        if self._pending:
            self._write_pending(LOCK_WAIT)
        return True

    def _write_pending(self, wait: float) -> bool:
        """Write what is pending, unless another write is in progress on this very thread
        (a signal handler interrupted it: that write picks ours up) or the lock stays taken
        for ``wait`` seconds (its holder writes ours before letting go). True when nothing
        is left pending."""
        me = threading.get_ident()
        if self._owner == me:
            return False
        while self._pending:
            if not self._lock.acquire(timeout=max(wait, 0.0)):
                return False
            self._owner = me
            try:
                self._drain_locked()
            finally:
                self._owner = None
                self._lock.release()
        return True

    def _drain_locked(self) -> None:
        batch: list[RecordedError] = []
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, _Occurrence):
                if batch:
                    self._write_records(batch)
                    batch = []
                try:
                    self._tally(item)
                except Exception as exc:
                    internal_error("journal tally", exc)
            else:
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    self._write_records(batch)
                    batch = []
        if batch:
            self._write_records(batch)

    # -- records ---------------------------------------------------------------------------------

    def _write_records(self, batch: list[RecordedError]) -> None:
        lines: list[bytes] = []
        for record in batch:
            try:
                lines.append(encode(to_dict(record, self._pid)))
            except Exception as exc:  # one odd record must not sink the batch
                internal_error("journal encode", exc)
        if lines:
            self._write_lines(lines)

    def _write_lines(self, lines: list[bytes]) -> bool:
        """Append whole lines, rotating at ``max_bytes``. Whatever does not make it is
        counted. True when every line was written."""
        if not self._ensure_open():
            count_dropped("export_failed", len(lines))
            return False
        max_bytes = self.settings.max_bytes
        i = 0
        while i < len(lines):
            room = max_bytes - self._size
            chunk: list[bytes] = []
            size = 0
            # Fill the current file up to max_bytes; a single oversized line still goes into
            # an empty file rather than being lost.
            while i < len(lines) and (
                size + len(lines[i]) <= room or (not chunk and self._size == 0)
            ):
                chunk.append(lines[i])
                size += len(lines[i])
                i += 1
            if not chunk:  # the current file is full
                self._rotate()
                if not self._ensure_open():
                    count_dropped("export_failed", len(lines) - i)
                    return False
                continue
            if not self._write_chunk(chunk):
                count_dropped("export_failed", len(lines) - i)
                return False
        return True

    def _write_chunk(self, chunk: list[bytes]) -> bool:
        """Append whole lines; on failure count the lines that did not make it. Returns
        whether the descriptor is still usable."""
        fd = self._fd
        if fd is None:
            count_dropped("export_failed", len(chunk))
            return False
        data = b"".join(chunk)
        prefix = b"\n" if self._torn else b""
        view = memoryview(prefix + data)
        written = 0
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        except OSError as exc:
            done = bytes(view[:written])
            complete = done.count(b"\n") - (1 if prefix and written > 0 else 0)
            if written > 0:
                self._torn = not done.endswith(b"\n")
            self._size += written
            count_dropped("export_failed", len(chunk) - max(complete, 0))
            self._fail(f"cannot write {self._file}", exc)
            self._close_fds()
            return False
        self._torn = False
        self._size += written
        self._dirty = True
        if self.settings.fsync == "always":
            self._fsync_now()
        if self._failing:
            self._failing = False
            _log.warning("faultlens: the journal at %s is writable again", self.directory)
        return True

    # -- tallies -----------------------------------------------------------------------------------

    def _tally(self, occ: _Occurrence) -> None:
        info = occ.info
        fp = info.fingerprint
        key = (info.severity.value, info.stage, occ.service)
        slot = self._slots.get(fp)
        if slot is not None and (
            slot.key != key or occ.ts - slot.first_ts >= TALLY_PERIOD or slot.count >= MAX_COUNT
        ):
            self._close_slot(fp)
            slot = None
        if slot is not None and self._tfd is not None:
            slot.count += 1
            slot.ts = max(slot.ts, occ.ts)
            self._slots.move_to_end(fp)
            self._pwrite(slot, True)
            return
        if slot is not None:  # the descriptors were lost (write failure): start over
            self._slots.pop(fp, None)
        while len(self._slots) >= MAX_SLOTS:
            self._close_slot(next(iter(self._slots)))
        line, region = tally_line(
            fingerprint=fp,
            code=info.code,
            category=str(info.category),
            severity=info.severity.value,
            stage=info.stage,
            service=occ.service,
            exception_type=info.exception_type,
            message=info.message,
            first_ts=occ.ts,
            count=1,
            pid=self._pid,
        )
        if not self._write_lines([line]) or self._fd is None:
            return  # counted
        try:
            # Where the line really landed: with O_APPEND the descriptor's offset is the
            # end of our write even if something else appended to the file too.
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
        except OSError:
            return  # the line is there with count 1; later occurrences start a new tally
        self._slots[fp] = _Slot(key, occ.ts, end - len(line) + region)

    def _pwrite(self, slot: _Slot, open_: bool) -> None:
        tfd = self._tfd
        if tfd is None:
            count_dropped("export_failed")
            return
        data = tally_region(slot.count, slot.ts, open_)
        try:
            if hasattr(os, "pwrite"):
                os.pwrite(tfd, data, slot.offset)
            else:  # pragma: no cover - Windows
                os.lseek(tfd, slot.offset, os.SEEK_SET)
                os.write(tfd, data)
        except OSError as exc:
            count_dropped("export_failed")
            self._fail(f"cannot update a tally in {self._file}", exc)
            return
        self._dirty = True
        # A storm updates a tally once per occurrence: even under "always", fsync those
        # updates at most once per FSYNC_INTERVAL (the background pass does the rest).
        if (
            self.settings.fsync == "always"
            and time.monotonic() - self._last_fsync >= FSYNC_INTERVAL
        ):
            self._fsync_now()

    def _close_slot(self, fp: str) -> None:
        slot = self._slots.pop(fp, None)
        if slot is not None and self._tfd is not None:
            data = tally_region(slot.count, slot.ts, False)
            try:
                os.pwrite(self._tfd, data, slot.offset)
                self._dirty = True
            except (OSError, AttributeError):
                pass  # the count is on disk already; the tally just stays "open"

    def _close_slots(self, older_than: float | None = None) -> None:
        for fp, slot in list(self._slots.items()):
            if older_than is None or slot.first_ts < older_than:
                self._close_slot(fp)

    # -- dropped -------------------------------------------------------------------------------

    def _write_drops_locked(self) -> None:
        """Write what this process dropped since the last ``dropped`` lines."""
        self._last_drops = time.monotonic()
        now = dropped_counts()
        lines: list[bytes] = []
        deltas: dict[str, int] = {}
        ts = time.time()
        for reason in DROP_REASONS_JOURNALED:
            delta = now.get(reason, 0) - self._drops_base.get(reason, 0)
            if delta > 0:
                deltas[reason] = delta
                lines.append(
                    encode(
                        dropped_line(
                            reason, delta, ts=ts, pid=self._pid, service=STATE.service_name
                        )
                    )
                )
        if lines and self._fd is not None and self._write_lines(lines):
            for reason, delta in deltas.items():
                self._drops_base[reason] += delta

    # -- file handling ---------------------------------------------------------------------------

    def _ensure_open(self) -> bool:
        if self._fd is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        host = hostname()
        try:
            if not make_private_dir(self.directory):
                mode = wide_permissions(self.directory)
                if mode is not None:
                    _warn_once(
                        f"mode:{self.directory}",
                        "faultlens: the journal directory %s is open to other users (mode "
                        "%o) and faultlens did not create it, so it leaves it as it is; the "
                        "journal files are owner-only (0600). Run `chmod 700 %s` to close "
                        "the directory too.",
                        self.directory,
                        mode,
                        self.directory,
                    )
            if self._n == 0:  # continue this process's newest file (a second configure())
                n = 1
                while os.path.exists(
                    os.path.join(self.directory, file_name(host, self._pid, n + 1))
                ):
                    n += 1
                self._n = n
            path = os.path.join(self.directory, file_name(host, self._pid, self._n))
            created = not os.path.exists(path)
            fd = open_private(path, os.O_WRONLY | os.O_APPEND)
            try:
                tfd = open_private(path, os.O_RDWR)
                size = os.fstat(fd).st_size
                torn = size > 0 and os.pread(tfd, 1, size - 1) != b"\n"
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            self._fail(f"cannot open the journal directory {self.directory}", exc)
            return False
        self._fd, self._tfd, self._file, self._size, self._torn = fd, tfd, path, size, torn
        if created and self.settings.fsync != "never":
            self._fsync_dir()
        self._start_thread()
        return True

    def _rotate(self) -> None:
        self._close_slots()
        if self.settings.fsync != "never":
            self._fsync_now()
        self._close_fds()
        self._n += 1
        self._size = 0
        self._torn = False
        self._last_prune = 0.0  # sweep at the next background pass

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        try:
            prune(
                self.directory,
                retention_days=self.settings.retention_days,
                max_total_bytes=self.max_total_bytes,
                keep=self._file,
                host=hostname(),
            )
        except Exception as exc:
            internal_error("journal retention", exc)

    def _fsync_now(self) -> None:
        fd = self._fd
        self._dirty = False
        self._last_fsync = time.monotonic()
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            self._fail(f"cannot fsync {self._file}", exc)

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def _close_fds(self) -> None:
        fds = (self._fd, self._tfd)
        self._fd = self._tfd = None
        self._slots.clear()  # their offsets belong to the file just closed
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _fail(self, what: str, exc: OSError) -> None:
        self._retry_at = time.monotonic() + RETRY_AFTER
        if not self._failing:
            self._failing = True
            _log.warning(
                "faultlens: %s (%s); errors are counted in "
                "faultlens.internal.dropped{reason=export_failed} and the application goes on",
                what,
                exc.strerror or exc,
            )

    # -- the background thread: fsync, tallies, drops, retention --------------------------------

    def _start_thread(self) -> None:
        if self._thread is not None or self._closed:
            return
        t = threading.Thread(target=shielded(self._run), name="faultlens-journal", daemon=True)
        self._thread = t
        try:
            t.start()
        except Exception:  # interpreter shutting down: close() does the rest inline
            self._thread = None

    def _run(self) -> None:
        stop = self._stop
        first = True
        while first or not stop.wait(TICK):
            first = False
            if self._pid != os.getpid():
                return
            try:
                self._tick()
            except Exception as exc:  # the thread must outlive any one pass
                internal_error("journal writer", exc)

    def _check_file(self) -> None:
        """The open file was deleted or replaced (someone removed the journal directory,
        another host's retention on a shared disk): writes would go to an inode nobody can
        read. Close it; the next write creates the directory and a file again."""
        fd, path = self._fd, self._file
        if fd is None or path is None:
            return
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if not same:
            _log.warning("faultlens: the journal file %s was removed; starting a new one", path)
            self._close_fds()
            self._size = 0
            self._torn = False

    def _tick(self) -> None:
        now = time.monotonic()
        if self._pending:
            self._write_pending(0.0)
        dup: int | None = None
        if self._lock.acquire(timeout=LOCK_WAIT):
            try:
                self._check_file()
                self._close_slots(older_than=time.time() - TALLY_PERIOD)
                if now - self._last_drops >= DROPPED_INTERVAL:
                    self._write_drops_locked()
                if (
                    self._dirty
                    and self.settings.fsync != "never"
                    and now - self._last_fsync >= FSYNC_INTERVAL
                    and self._fd is not None
                ):
                    self._dirty = False
                    self._last_fsync = now
                    with contextlib.suppress(OSError):
                        dup = os.dup(self._fd)
            finally:
                self._lock.release()
        if dup is not None:  # fsync without the lock: recording threads keep writing
            try:
                os.fsync(dup)
            except OSError as exc:
                self._fail(f"cannot fsync {self._file}", exc)
            finally:
                os.close(dup)
        if self._fd is not None and (
            self._last_prune == 0.0 or now - self._last_prune >= RETENTION_INTERVAL
        ):
            self._prune()

    # -- flush and close -------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Write anything still pending and what this process dropped so far. Records are
        written as they are recorded, so this is normally instant. True when nothing is
        left pending."""
        try:
            if self._pid != os.getpid():
                self.after_fork()
            done = self._write_pending(timeout)
            if self._lock.acquire(timeout=max(timeout, 0.0)):
                try:
                    self._write_drops_locked()
                finally:
                    self._lock.release()
            return done and not self._pending
        except Exception as exc:
            internal_error("journal flush", exc)
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending, close the tallies, record the drops, fsync (unless the
        policy is ``never``), stop the background thread and close. Never raises."""
        try:
            if self._pid != os.getpid():
                self.after_fork()
            deadline = time.monotonic() + max(timeout, 0.0)
            self._write_pending(timeout)
            self._stop.set()
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(max(min(deadline - time.monotonic(), 1.0), 0.0))
            if self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.05)):
                self._owner = threading.get_ident()
                try:
                    self._drain_locked()
                    self._closed = True
                    self._close_slots()
                    if self._fd is not None:
                        self._write_drops_locked()
                    if self.settings.fsync != "never":
                        self._fsync_now()
                    if self._file is not None:
                        self._prune()  # a short job that rotated gets its sweep too
                    self._close_fds()
                finally:
                    self._owner = None
                    self._lock.release()
            self._closed = True
            lost = len(self._pending)
            if lost:
                self._pending.clear()
                count_dropped("export_failed", lost)
        except Exception as exc:
            internal_error("journal close", exc)
