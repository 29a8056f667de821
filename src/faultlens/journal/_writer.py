"""The journal writer: a cheap sink on the recording thread, batched writes on another.

The sink only appends the frozen ``ErrorRecord`` to a bounded deque and wakes the writer
thread (a few hundred nanoseconds, never a syscall, never a lock the writer holds while it
does I/O). The writer thread turns records into JSON lines and appends them with ``os.write``
on an ``O_APPEND`` descriptor, whole batches per call.

Latency is kept short on purpose: the writer wakes as soon as a record arrives and lingers
only ``LINGER`` seconds to coalesce a burst, so an abrupt end (SIGTERM with no handler,
SIGKILL) loses at most the records of that short window; ``shutdown()`` flushes everything.
Once written, a line survives a crash of the process (it is in the kernel's page cache); the
``fsync`` policy decides how much survives a crash of the machine:

- ``always``: no linger; every batch is fsynced before the next one is taken;
- ``batch`` (default): fsync at most once a second, and at rotation and shutdown;
- ``never``: the operating system decides.

Failures (read-only directory, disk full, file-size limit) never reach the application:
the records are counted in ``faultlens.internal.dropped{reason="export_failed"}``, the
problem is logged once, and writing is retried every ``RETRY_AFTER`` seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from ..capture import ErrorRecord, count_dropped, internal_error
from ._files import file_name, list_files, prune, safe_host
from ._format import encode, hostname, to_dict

if TYPE_CHECKING:
    from .._config import JournalSettings

__all__ = ["LINGER", "MAX_QUEUE", "RETRY_AFTER", "JournalWriter"]

_log = logging.getLogger("faultlens")

LINGER = 0.02  # s the writer waits after a wake-up to coalesce a burst into one write
MAX_QUEUE = 10_000  # records waiting for the writer; more are dropped (counted)
MAX_BATCH = 2_000  # records turned into one write
RETRY_AFTER = 5.0  # s between attempts once the directory or disk failed
FSYNC_INTERVAL = 1.0  # s between fsyncs under the "batch" policy
RETENTION_INTERVAL = 300.0  # s between retention sweeps when nothing rotates


class JournalWriter:
    """Appends ``ErrorRecord``\\ s to this process's journal files. Thread-safe, fork-aware."""

    def __init__(
        self,
        settings: JournalSettings,
        *,
        max_queue: int = MAX_QUEUE,
        linger: float | None = None,
    ) -> None:
        self.settings = settings
        self.directory = os.path.abspath(settings.path)
        self.max_queue = max_queue
        self.linger = (0.0 if settings.fsync == "always" else LINGER) if linger is None else linger
        self._init_runtime()

    # -- state that a forked child must rebuild ---------------------------------------------

    def _init_runtime(self) -> None:
        self._pid = os.getpid()
        self._queue: deque[ErrorRecord] = deque()
        self._submitted = itertools.count(1)
        self._last_submitted = 0
        self._processed = 0
        self._done = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._io_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._fd: int | None = None
        self._file: str | None = None
        self._n = 0
        self._size = 0
        self._torn = False  # the last write stopped mid-line: start the next with "\n"
        self._retry_at = 0.0
        self._failing = False
        self._last_fsync = 0.0
        self._dirty = False
        self._last_prune = 0.0

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue, file and thread (the parent writes
        its own records); this process opens its own file on its first record."""
        fd = self._fd
        self._init_runtime()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the sink (recording thread) ---------------------------------------------------------

    def submit(self, record: ErrorRecord) -> None:
        """Queue one record. Cheap and non-blocking; a full queue drops it (counted)."""
        if self._closed:
            count_dropped("queue_full")
            return
        if len(self._queue) >= self.max_queue:
            count_dropped("queue_full")
            return
        self._queue.append(record)
        self._last_submitted = next(self._submitted)
        if self._thread is None:
            self._start_thread()
        if not self._wake.is_set():
            self._wake.set()

    def _start_thread(self) -> None:
        with self._thread_lock:
            if self._thread is not None or self._closed:
                return
            t = threading.Thread(target=self._run, name="faultlens-journal", daemon=True)
            self._thread = t
            try:
                t.start()
            except Exception as exc:  # interpreter shutting down: flush inline
                self._thread = None
                internal_error("journal writer start", exc)

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            woke = self._wake.wait(timeout=FSYNC_INTERVAL)
            stopping = self._stopping
            if woke and self.linger > 0 and not stopping:
                time.sleep(self.linger)
            self._wake.clear()
            try:
                self._drain()
                self._housekeeping()
            except Exception as exc:  # the writer must outlive any one batch
                internal_error("journal writer", exc)
            if stopping and not self._queue:
                return

    def _drain(self) -> None:
        """Write everything queued now. Runs on the writer thread, or inline at shutdown."""
        with self._io_lock:
            while self._queue:
                batch: list[ErrorRecord] = []
                while self._queue and len(batch) < MAX_BATCH:
                    batch.append(self._queue.popleft())
                try:
                    self._write_batch(batch)
                finally:
                    with self._done:
                        self._processed += len(batch)
                        self._done.notify_all()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._dirty and self.settings.fsync == "batch" and now - self._last_fsync >= 1.0:
            with self._io_lock:
                self._fsync()
        if self._fd is not None and now - self._last_prune >= RETENTION_INTERVAL:
            self._prune()

    # -- file handling -------------------------------------------------------------------------

    def _write_batch(self, batch: list[ErrorRecord]) -> None:
        lines: list[bytes] = []
        for record in batch:
            try:
                lines.append(encode(to_dict(record, self._pid)))
            except Exception as exc:  # one odd record must not sink the batch
                internal_error("journal encode", exc)
        if not lines:
            return
        if not self._ensure_open():
            count_dropped("export_failed", len(lines))
            return
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
                    return
                continue
            if not self._write_chunk(chunk):
                count_dropped("export_failed", len(lines) - i)
                return

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
            count_dropped("export_failed", len(chunk) - complete)
            self._fail(f"cannot write {self._file}", exc)
            self._close_fd()
            return False
        self._torn = False
        self._size += written
        self._dirty = True
        if self.settings.fsync == "always":
            self._fsync()
        if self._failing:
            self._failing = False
            _log.warning("faultlens: the journal at %s is writable again", self.directory)
        return True

    def _ensure_open(self) -> bool:
        if self._fd is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        host = hostname()
        try:
            os.makedirs(self.directory, exist_ok=True)
            if self._n == 0:
                me = safe_host(host)
                mine = [
                    f.n for f in list_files(self.directory) if f.host == me and f.pid == self._pid
                ] or [1]
                self._n = max(mine)
            path = os.path.join(self.directory, file_name(host, self._pid, self._n))
            created = not os.path.exists(path)
            fd = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644
            )
            self._size = os.fstat(fd).st_size
        except OSError as exc:
            self._fail(f"cannot open the journal directory {self.directory}", exc)
            return False
        self._fd, self._file = fd, path
        if created and self.settings.fsync != "never":
            self._fsync_dir()
        if self._last_prune == 0.0:
            self._prune()
        return True

    def _rotate(self) -> None:
        if self.settings.fsync != "never":
            self._fsync()
        self._close_fd()
        self._n += 1
        self._size = 0
        self._torn = False
        self._last_prune = 0.0  # sweep once the next file is open

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        try:
            prune(
                self.directory,
                max_files=self.settings.max_files,
                retention_days=self.settings.retention_days,
                keep=self._file,
                host=hostname(),
            )
        except Exception as exc:
            internal_error("journal retention", exc)

    def _fsync(self) -> None:
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

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
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

    # -- flush and close -------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything submitted so far; True when it all went through the writer in
        time (written or counted as dropped)."""
        target = self._last_submitted
        t = self._thread
        if t is None or not t.is_alive():
            acquired = self._io_lock.acquire(timeout=max(timeout, 0.0))
            if acquired:
                self._io_lock.release()
                self._drain()
            return not self._queue
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._processed < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush, fsync (unless the policy is ``never``) and close. Never raises."""
        try:
            self.flush(timeout)
            self._stopping = True
            self._closed = True
            self._wake.set()
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(max(timeout, 0.1))
            if self._queue and (t is None or not t.is_alive()):
                self._drain()
            lost = len(self._queue)
            if lost:
                self._queue.clear()
                count_dropped("export_failed", lost)
            with self._io_lock:
                if self.settings.fsync != "never":
                    self._fsync()
                self._close_fd()
        except Exception as exc:
            internal_error("journal close", exc)

    @property
    def current_file(self) -> str | None:
        return self._file
