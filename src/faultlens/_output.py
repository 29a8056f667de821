"""Writing a file the way careful command-line tools do (``faultlens report -o``, ``rules -o``,
``demo``).

- ``-`` is standard output, and so is any path that names the file standard output writes to
  (``/dev/stdout`` when it is redirected to a file or a pipe).
- A symlink is written through: the file it points to gets the content, the link stays.
- A regular file (new or existing) is replaced atomically: the text goes to a temporary file
  in the same directory, is flushed to disk, then renamed over the target, so a reader never
  sees half a file. An existing file keeps its permission bits; a new one gets
  ``0666 & ~umask``, as ``>`` in a shell would give it. A file with several hard links is
  rewritten in place instead, so that every name keeps seeing the same file, and so is a
  file that cannot be renamed over (a file bind-mounted into a container). A file this
  process may not write is refused, never replaced (a rename would bypass its mode).
- Character devices (``/dev/stdout``, a terminal, ``/dev/null``) and FIFOs are opened and
  written directly: they are never replaced, and nothing is ever created under ``/dev`` or
  ``/proc``.
- Anything else (a socket, a block device) is refused with an error naming the path.

This module imports nothing from faultlens: any layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

__all__ = ["STDOUT", "current_umask", "write_text"]

STDOUT = "-"

# Paths whose files belong to the kernel or to another process's open descriptors
# (/dev/stdout -> /proc/self/fd/1 -> the shell's redirection target): written in place, never
# replaced by a rename and never created.
_DIRECT_PREFIXES = ("/dev/", "/proc/")


def current_umask() -> int:
    """The process's umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str, text: str | Iterable[str], *, stdout: TextIO | None = None) -> str:
    """Write ``text`` (UTF-8) to ``path`` as described in the module docstring and return what
    was written: ``"-"`` for standard output, otherwise ``path`` made absolute (a symlink
    stays a symlink: the file it points to holds the text).

    ``text`` may be an iterable of chunks (a report streamed from a large journal): each is
    written as it comes, never joined in memory; a regular file is still replaced only once
    the last chunk is written.

    Raises ``OSError`` (with the path in it) when the file cannot be written; a partially
    written temporary file is removed.
    """
    stream = sys.stdout if stdout is None else stdout
    rest = iter((text,) if isinstance(text, str) else text)
    # A streamed text does its reading before its first chunk: nothing is opened (or
    # truncated) until there is something to write.
    chunks = itertools.chain((next(rest, ""),), rest)
    if path == STDOUT:
        for chunk in chunks:
            stream.write(chunk)
        stream.flush()
        return STDOUT
    data = _encoded(chunks)
    absolute = os.path.abspath(path)
    try:
        st: os.stat_result | None = os.stat(absolute)  # follows symlinks, /proc magic links too
    except FileNotFoundError:
        st = None
    if st is not None:
        if _is_stream(st, stream):
            # /dev/stdout, or a link to it: through the stream, so that the text and anything
            # else printed there come out in order (a second descriptor would overwrite it).
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            return STDOUT
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            _write_in_place(absolute, data, truncate=False)
            return absolute
        if not stat.S_ISREG(st.st_mode):
            raise _not_writable(absolute, st)
        if not _writable(absolute):
            # A file its owner made read-only stays as it is: a rename would replace it
            # although writing to it is refused (as `>` in a shell refuses).
            raise PermissionError(errno.EACCES, "the file is not writable", path)
        if st.st_nlink > 1 or _through_kernel_paths(absolute):
            _write_in_place(absolute, data, truncate=True)
            return absolute
    target = os.path.realpath(absolute)  # the symlink's target, also for a dangling link
    if st is None and _is_direct(target):
        raise FileNotFoundError(
            errno.ENOENT, "no such file (none is created under /dev or /proc)", path
        )
    _replace_atomically(target, data, st)
    return absolute


def _writable(path: str) -> bool:
    if os.access in os.supports_effective_ids:
        return os.access(path, os.W_OK, effective_ids=True)
    return os.access(path, os.W_OK)


def _encoded(chunks: Iterable[str]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk.encode("utf-8")


def _write_all(fd: int, data: Iterable[bytes]) -> None:
    for chunk in data:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _is_stream(st: os.stat_result, stream: TextIO) -> bool:
    """Whether ``st`` is the file ``stream`` writes to."""
    try:
        own = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no descriptor (a StringIO, pytest capture)
        return False
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _is_direct(path: str) -> bool:
    return path.startswith(_DIRECT_PREFIXES) or path in ("/dev", "/proc")


def _through_kernel_paths(path: str) -> bool:
    """Whether ``path`` or a symlink on the way to its file is under /dev or /proc (``out`` ->
    /dev/stdout -> /proc/self/fd/1 -> the file the shell redirected standard output to)."""
    for _ in range(40):  # the kernel's own limit on symlink hops
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if _is_direct(path):
            return True
        try:
            link = os.readlink(path)
        except OSError:  # not a symlink (or gone): the chain ends here
            return False
        path = os.path.join(os.path.dirname(path), link)
    return False


def _not_writable(path: str, st: os.stat_result) -> OSError:
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file, FIFO or terminal"
    return OSError(errno.EINVAL, f"cannot write the output there: {kind}", path)


def _write_in_place(path: str, data: Iterable[bytes], *, truncate: bool) -> None:
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | (os.O_TRUNC if truncate else 0)
    fd = os.open(path, flags)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _replace_atomically(
    target: str, data: Iterable[bytes], existing: os.stat_result | None
) -> None:
    directory = os.path.dirname(target) or os.curdir
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(target)[:200]  # the temporary name must fit NAME_MAX (255) too
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    n = 0
    while True:
        try:
            fd = os.open(tmp, flags, 0o600)
            break
        except FileExistsError:  # a leftover of a killed run with the same pid, or a race
            n += 1
            tmp = os.path.join(directory, f".{base}.{os.getpid()}.{n}.tmp")
    try:
        try:
            _write_all(fd, data)
            if existing is None:
                os.fchmod(fd, 0o666 & ~current_umask())
            else:
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
                if os.geteuid() == 0 and (existing.st_uid, existing.st_gid) != (0, 0):
                    with contextlib.suppress(OSError):  # root keeps the file's owner
                        os.fchown(fd, existing.st_uid, existing.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if existing is None or exc.errno != errno.EBUSY:
                raise
            # The file is a mount point (a file bind-mounted into a container): it cannot be
            # renamed over, so its content is replaced in place, from the finished copy.
            _copy_in_place(tmp, target)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _copy_in_place(source: str, target: str) -> None:
    with open(source, "rb") as src:
        _write_in_place(target, iter(lambda: src.read(1 << 16), b""), truncate=True)
