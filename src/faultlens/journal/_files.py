"""Journal file names, listing and retention, shared by the writer and the reader.

Each process appends to its own files, ``journal-<host>-<pid>-<n>.jsonl``: no two writers
ever share a file, so no cross-process lock is needed and a line can never interleave with
another process's line (NFS and Windows make O_APPEND atomicity a promise we cannot keep).
Readers merge the directory.

Permissions: the journal holds messages, stacks and context of every error, so it is
owner-only. Directories faultlens creates are 0700 and files 0600 whatever the umask
(``make_private_dir``, ``open_private``); rotation creates every new file the same way. A
directory that already existed is never chmod-ed behind the user's back (it may be a
shared directory they chose on purpose): the writer warns once when it is open to group or
others, ``inspect_journal`` (``faultlens doctor``) reports it, and the files in it are 0600
anyway.

Retention (``prune``) is by age and total size, never by a number of files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "JournalFile",
    "file_name",
    "ignored_files",
    "list_files",
    "make_private_dir",
    "open_private",
    "prune",
    "wide_permissions",
]

DIR_MODE = 0o700
FILE_MODE = 0o600

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


def ignored_files(directory: str) -> list[str]:
    """Files in ``directory`` that look like journal data — named ``*.jsonl*`` or
    ``journal*`` — but not like a journal file (``journal-<host>-<pid>-<n>.jsonl``), so no
    reader reads them: a rotated copy someone renamed, ``errors.jsonl`` copied in by hand,
    a compressed file. Sorted names; hidden files and other files are not listed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out: list[str] = []
    for name in names:
        if name.startswith(".") or _NAME.match(name) is not None:
            continue
        if ".jsonl" not in name and not name.startswith("journal"):
            continue
        try:
            if not os.path.isfile(os.path.join(directory, name)):
                continue
        except OSError:
            continue
        out.append(name)
    return sorted(out)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


# -- owner-only files ----------------------------------------------------------------------------


def make_private_dir(directory: str) -> bool:
    """Create ``directory`` and its missing parents owner-only (0700), whatever the umask.

    Returns whether anything was created. A directory that already exists is left exactly
    as it is: faultlens never changes the permissions of a directory it did not create
    (``wide_permissions`` tells the caller so it can warn instead).
    """
    directory = os.path.abspath(directory)
    missing: list[str] = []
    d = directory
    while not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            if os.path.isdir(d):  # another process made it meanwhile: not ours to change
                continue
            raise
        os.chmod(d, DIR_MODE)  # mkdir's mode went through the umask (0o777 would leave 000)
    return bool(missing)


def open_private(path: str, flags: int) -> int:
    """Open ``path`` for writing, creating it owner-only (0600) whatever the umask.

    The last component is never followed if it is a symlink (a link planted in the journal
    directory must not redirect the journal elsewhere). A journal file of ours found with
    wider permissions (written by an older faultlens) is narrowed to 0600.
    """
    fd = os.open(
        path,
        flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0),
        FILE_MODE,
    )
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o777 != FILE_MODE and st.st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
    except (OSError, AttributeError):  # AttributeError: no geteuid/fchmod (Windows)
        pass
    return fd


def wide_permissions(directory: str) -> int | None:
    """The mode of ``directory`` when group or others may read or enter it, else None."""
    try:
        mode = os.stat(directory).st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o077 else None


# -- retention -----------------------------------------------------------------------------------


def prune(
    directory: str,
    *,
    retention_days: float,
    max_total_bytes: int,
    keep: str | None,
    host: str,
    now: float | None = None,
) -> list[str]:
    """Retention by age and total size, never by how many processes wrote.

    Deletes journal files last modified more than ``retention_days`` ago, then the oldest
    files until the directory's journal files total at most ``max_total_bytes``. Every
    process writes its own files, so a count of files would measure how many processes
    ran (a nightly job's history would vanish after a few runs); age and size measure what
    the journal holds.

    Never deletes ``keep`` (the caller's open file) nor the newest file of another live
    process on this host, which may still be appending to it. Only ``journal-*.jsonl``
    files are ever deleted. Returns the deleted paths.
    """
    now = time.time() if now is None else now
    files = list_files(directory)
    me = safe_host(host)
    newest: dict[int, int] = {}
    for f in files:
        if f.host == me:
            newest[f.pid] = max(newest.get(f.pid, 0), f.n)
    keep_abs = os.path.abspath(keep) if keep is not None else None

    def protected(f: JournalFile) -> bool:
        if keep_abs is not None and os.path.abspath(f.path) == keep_abs:
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
    total = sum(f.size for f in remaining)
    for f in remaining:  # oldest first
        if total <= max_total_bytes:
            break
        if protected(f):
            continue
        with contextlib.suppress(OSError):
            os.unlink(f.path)
            deleted.append(f.path)
            total -= f.size
    return deleted
