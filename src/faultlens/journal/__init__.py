"""The local error journal: one JSON line per recorded error, and what reads it back.

- ``start_journal(settings)``: the component ``faultlens.configure()`` starts when no
  exporter is configured (the embedded default) or when asked. It is a *sink* of the
  capture layer, not a span processor: see ``_journal`` for why.
- ``read_records(path, since, until)``: the error lines of every process's files, damaged
  lines skipped; ``read_entries`` adds the rate limiter's tallies and the dropped lines.
- ``compute_stats(entries)`` / ``journal_stats(path, ...)``: totals (rate-limited
  occurrences included), top errors, breakdowns, timeline, trend, spikes, drops.
- ``JournalTail``: incremental reading for the local monitor (same totals, via
  ``occurrences``).
- ``inspect_journal(path)``: the journal's health for ``faultlens doctor``.
- ``LocalMonitor``: the faultlens.yaml thresholds, notified on log/webhook channels.

File layout: ``<path>/journal-<host>-<pid>-<n>.jsonl``, one writer per file (see
``_files``), owner-only (0700 directory, 0600 files), rotated at ``max_bytes``, pruned by
``retention_days`` and total size (``max_total_bytes``). Line format: ``_format``.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

# Nothing is imported until it is used: the readers (`faultlens stats`, `report`, `doctor`)
# must not pay for the writer's side, which pulls in the capture layer (wrapt, OpenTelemetry).
_LAZY = {
    "Alert": "._alerts",
    "list_files": "._files",
    "prune": "._files",
    "FIELDS": "._format",
    "KIND_ERROR": "._format",
    "occurrences": "._format",
    "inspect_journal": "._health",
    "Journal": "._journal",
    "start_journal": "._journal",
    "LocalMonitor": "._monitor",
    "Notifier": "._notify",
    "WebhookChannel": "._notify",
    "JournalTail": "._reader",
    "ReadReport": "._reader",
    "parse_line": "._reader",
    "read_entries": "._reader",
    "read_records": "._reader",
    "JournalScan": "._scan",
    "LineReader": "._scan",
    "fork_writer": "._scan",
    "Bucket": "._stats",
    "Stats": "._stats",
    "StatsAccumulator": "._stats",
    "TopError": "._stats",
    "compute_stats": "._stats",
    "journal_stats": "._stats",
    "JournalWriter": "._writer",
}

if TYPE_CHECKING:
    from ._alerts import Alert
    from ._files import list_files, prune
    from ._format import FIELDS, KIND_ERROR, occurrences
    from ._health import inspect_journal
    from ._journal import Journal, start_journal
    from ._monitor import LocalMonitor
    from ._notify import Notifier, WebhookChannel
    from ._reader import JournalTail, ReadReport, parse_line, read_entries, read_records
    from ._scan import JournalScan, LineReader, fork_writer
    from ._stats import Bucket, Stats, StatsAccumulator, TopError, compute_stats, journal_stats
    from ._writer import JournalWriter

__all__ = [
    "FIELDS",
    "KIND_ERROR",
    "Alert",
    "Bucket",
    "Journal",
    "JournalScan",
    "JournalTail",
    "JournalWriter",
    "LineReader",
    "LocalMonitor",
    "Notifier",
    "ReadReport",
    "Stats",
    "StatsAccumulator",
    "TopError",
    "WebhookChannel",
    "compute_stats",
    "fork_writer",
    "inspect_journal",
    "journal_stats",
    "list_files",
    "occurrences",
    "parse_line",
    "prune",
    "read_entries",
    "read_records",
    "start_journal",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
