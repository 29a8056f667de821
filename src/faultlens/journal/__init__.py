"""The local error journal: one JSON line per recorded error, and what reads it back.

- ``start_journal(settings)``: the component ``faultlens.configure()`` starts when no
  exporter is configured (the embedded default) or when asked. It is a *sink* of the
  capture layer, not a span processor: see ``_journal`` for why.
- ``read_records(path, since, until)``: every process's files, damaged lines skipped.
- ``compute_stats(records)``: totals, top errors, breakdowns, timeline, trend, spikes.
- ``LocalMonitor``: the faultlens.yaml thresholds, notified on log/webhook channels.

File layout: ``<path>/journal-<host>-<pid>-<n>.jsonl``, one writer per file (see
``_files``), rotated at ``max_bytes``, pruned by ``retention_days`` and ``max_files``.
"""

from ._alerts import Alert
from ._files import JournalFile, list_files, prune
from ._format import FIELDS, SCHEMA_VERSION, to_dict
from ._journal import Journal, start_journal
from ._monitor import LocalMonitor
from ._notify import LogChannel, Notifier, WebhookChannel, build_channels
from ._reader import JournalTail, parse_line, read_records
from ._stats import Bucket, Signal, Stats, TopError, Trend, compute_stats
from ._writer import JournalWriter

__all__ = [
    "FIELDS",
    "SCHEMA_VERSION",
    "Alert",
    "Bucket",
    "Journal",
    "JournalFile",
    "JournalTail",
    "JournalWriter",
    "LocalMonitor",
    "LogChannel",
    "Notifier",
    "Signal",
    "Stats",
    "TopError",
    "Trend",
    "WebhookChannel",
    "build_channels",
    "compute_stats",
    "list_files",
    "parse_line",
    "prune",
    "read_records",
    "start_journal",
    "to_dict",
]
