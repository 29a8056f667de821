"""Journal file names, listing and retention, shared by the writer and the reader.

Each process appends to its own files, ``journal-<host>-<pid>-<n>.jsonl``: no two writers
ever share a file, so no cross-process lock is needed and a line can never interleave with
another process's line (NFS and Windows make O_APPEND atomicity a promise we cannot keep).
Readers merge the directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass

__all__ = ["JournalFile", "file_name", "list_files", "prune"]

_NAME = re.compile(r"^journal-(?P<host>.+)-(?P<pid>\d+)-(?P<n>\d+)\.jsonl$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


@dataclass(frozen=True, slots=True)
class JournalFile:
    path: str
    host: str
    pid: int
    n: int
    mtime: float
    size: int


def safe_host(host: str) -> str:
    """The host as it appears in a file name: no separators, no path characters."""
    return _UNSAFE.sub("_", host)[:64] or "localhost"


def file_name(host: str, pid: int, n: int) -> str:
    return f"journal-{safe_host(host)}-{pid}-{n}.jsonl"


def list_files(directory: str) -> list[JournalFile]:
    """The journal files in ``directory``, oldest first (by mtime, then sequence number)."""
    out: list[JournalFile] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    for name in names:
        m = _NAME.match(name)
        if m is None:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.stat(path)
        except OSError:  # deleted by another process's retention meanwhile
            continue
        out.append(
            JournalFile(path, m["host"], int(m["pid"]), int(m["n"]), st.st_mtime, st.st_size)
        )
    out.sort(key=lambda f: (f.mtime, f.n))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def prune(
    directory: str,
    *,
    max_files: int,
    retention_days: float,
    keep: str | None,
    host: str,
    now: float | None = None,
) -> list[str]:
    """Delete journal files older than ``retention_days``, then the oldest beyond
    ``max_files`` (a count over the whole directory, all processes together).

    Never deletes ``keep`` (the caller's open file) nor the newest file of another live
    process on this host, which may still be appending to it. Returns the deleted paths.
    """
    now = time.time() if now is None else now
    files = list_files(directory)
    me = safe_host(host)
    newest: dict[int, int] = {}
    for f in files:
        if f.host == me:
            newest[f.pid] = max(newest.get(f.pid, 0), f.n)

    def protected(f: JournalFile) -> bool:
        if keep is not None and os.path.abspath(f.path) == os.path.abspath(keep):
            return True
        return f.host == me and newest.get(f.pid) == f.n and _pid_alive(f.pid)

    deleted: list[str] = []
    cutoff = now - retention_days * 86400.0
    remaining: list[JournalFile] = []
    for f in files:
        if f.mtime < cutoff and not protected(f):
            with contextlib.suppress(OSError):
                os.unlink(f.path)
                deleted.append(f.path)
                continue
        remaining.append(f)
    excess = len(remaining) - max_files
    for f in remaining:  # oldest first
        if excess <= 0:
            break
        if protected(f):
            continue
        with contextlib.suppress(OSError):
            os.unlink(f.path)
            deleted.append(f.path)
            excess -= 1
    return deleted
