"""The journal's health in one call, for ``faultlens doctor`` and for people with no
metrics backend: is it private, writable, how big, and did faultlens lose anything?

In journal-only mode ``faultlens.internal.dropped`` goes nowhere, so the writer also
writes what it dropped into the journal (``dropped`` lines); ``inspect_journal`` sums
them, with the rate limiter's tallies and the damaged lines the readers skip.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ._files import list_files
from ._format import KIND_DROPPED, KIND_ERROR
from ._reader import ReadReport
from ._scan import JournalScan

__all__ = ["JournalHealth", "inspect_journal"]


@dataclass(frozen=True, slots=True)
class JournalHealth:
    path: str
    exists: bool
    writable: bool
    directory_mode: str | None  # e.g. "0700"
    private: bool  # neither the directory nor any file is open to group/others
    files: int
    total_bytes: int
    oldest: float | None  # mtime of the oldest file
    newest: float | None
    errors: int  # occurrences, rate-limited ones included
    recorded: int  # error lines written in full
    suppressed: int  # occurrences summarised by the rate limiter
    dropped: dict[str, int]  # what faultlens lost, by reason (from the dropped lines)
    bad_lines: int  # damaged lines the readers skip
    problems: list[str] = field(default_factory=list)
    # names of files in the directory that look like journal data but are not named like
    # journal files (journal-<host>-<pid>-<n>.jsonl): no reader reads them
    ignored_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def inspect_journal(path: str, since: float | None = None) -> JournalHealth:
    """Look at the journal at ``path`` (lines with ``ts >= since`` when given). Never
    raises for a missing or unreadable journal: that is what ``problems`` says."""
    path = os.path.abspath(os.fspath(path))
    problems: list[str] = []
    if not os.path.isdir(path):
        if os.path.exists(path):
            problems.append(f"{path} is not a directory")
        return JournalHealth(
            path=path,
            exists=os.path.exists(path),
            writable=False,
            directory_mode=None,
            private=True,
            files=0,
            total_bytes=0,
            oldest=None,
            newest=None,
            errors=0,
            recorded=0,
            suppressed=0,
            dropped={},
            bad_lines=0,
            problems=problems or [f"no journal at {path} yet (created at the first error)"],
        )
    dmode = _mode(path)
    private = True
    if dmode is not None and dmode & 0o077:
        private = False
        problems.append(
            f"the journal directory is open to other users (mode {dmode:04o}); it holds "
            f"error messages, stacks and context: chmod 700 {path}"
        )
    files = list_files(path)
    open_files = [f.path for f in files if (_mode(f.path) or 0) & 0o077]
    if open_files:
        private = False
        problems.append(
            f"{len(open_files)} journal file(s) readable by other users (e.g. "
            f"{open_files[0]}): chmod 600 them"
        )
    writable = os.access(path, os.W_OK | os.X_OK)
    if not writable:
        problems.append(f"the journal directory is not writable by this user: {path}")
    report = ReadReport()
    errors = recorded = suppressed = 0
    dropped: Counter[str] = Counter()
    # The streaming reader (the one `faultlens stats` uses): the same lines as
    # read_entries, without building them.
    for e, _ in JournalScan(path, since, report=report, warn_ignored=False):
        kind = e.kind
        if kind == KIND_DROPPED:
            dropped[str(e.reason)] += int(e.count)
        elif kind == KIND_ERROR:
            n = e.suppressed or 0
            errors += 1 + n
            recorded += 1
            suppressed += n
        else:
            errors += e.count
            suppressed += e.count
    lost = sum(dropped.values())
    if lost:
        reasons = ", ".join(f"{n} {k}" for k, n in sorted(dropped.items()))
        problems.append(f"faultlens could not record {lost} item(s): {reasons}")
    if report.bad:
        problems.append(f"{report.bad} damaged line(s) skipped in {len(report.bad_lines)} file(s)")
    if report.ignored:
        shown = ", ".join(report.ignored[:5]) + (", ..." if len(report.ignored) > 5 else "")
        problems.append(
            f"{len(report.ignored)} file(s) in the journal directory not named like journal "
            f"files (journal-<host>-<pid>-<n>.jsonl) are ignored by every reader: {shown}"
        )
    return JournalHealth(
        path=path,
        exists=True,
        writable=writable,
        directory_mode=f"{dmode:04o}" if dmode is not None else None,
        private=private,
        files=len(files),
        total_bytes=sum(f.size for f in files),
        oldest=files[0].mtime if files else None,
        newest=max((f.mtime for f in files), default=None),
        errors=errors,
        recorded=recorded,
        suppressed=suppressed,
        dropped=dict(sorted(dropped.items())),
        bad_lines=report.bad,
        problems=problems,
        ignored_files=list(report.ignored),
    )
