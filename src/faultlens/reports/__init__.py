"""Reports over the journal: JSON (stats + records), CSV (one row per error), HTML (one
self-contained file with charts).

``render_report`` turns already-computed stats and records into text; ``write_report``
reads the journal, computes the stats and writes the file (what ``faultlens report`` runs),
streaming it (``stream_report``): a week of a busy service's journal in one pass, in
memory bounded by the distinct errors, whatever the journal's size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attributes
from .._output import STDOUT, write_text
from ..journal import ReadReport, Stats
from ._csv import COLUMNS, neutralise, render_csv
from ._stream import finite_json, stream_report

if TYPE_CHECKING:
    from ._alert_rules import render_alert_rules
    from ._html import MAX_ROWS, trace_link

__all__ = [
    "COLUMNS",
    "FORMATS",
    "MAX_ROWS",
    "neutralise",
    "render_alert_rules",
    "render_report",
    "stream_report",
    "trace_link",
    "write_report",
]

# Loaded when asked for: the alert rules pull in YAML and the settings model, the HTML
# page the scrubber and the error model; a CSV report needs neither.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {"render_alert_rules": "._alert_rules", "MAX_ROWS": "._html", "trace_link": "._html"},
    globals(),
    __all__,
)

FORMATS = ("json", "csv", "html")
DEFAULT_TITLE = "faultlens error report"


def render_report(
    stats: Stats,
    records: Sequence[Mapping[str, Any]],
    fmt: str,
    *,
    jaeger_url: str | None = None,
    title: str = DEFAULT_TITLE,
    embed_traces: bool = False,
) -> str:
    """The report as text. ``fmt``: ``json`` (``{"title", "generated_at", "stats",
    "records"}``), ``csv`` (one row per error, formula cells neutralised) or ``html``.

    ``jaeger_url`` only ever appears without its credentials (``user:pass@``, query).
    ``embed_traces`` (HTML): the top errors' sample traces fetched from Jaeger's API are
    drawn as waterfalls (``faultlens report --jaeger-url``)."""
    fmt = fmt.lower()
    if fmt == "json":
        from ._html import jaeger_base

        doc = {
            "title": title,
            "generated_at": stats.now,
            "jaeger_url": jaeger_base(jaeger_url),
            "stats": stats.to_dict(),
            "records": list(records),
        }
        return (
            json.dumps(finite_json(doc), indent=2, ensure_ascii=False, default=str, allow_nan=False)
            + "\n"
        )
    if fmt == "csv":
        return render_csv(records)
    if fmt == "html":
        from ._html import render_html
        from ._waterfall import fetch_traces

        traces = (
            fetch_traces(jaeger_url, (t.trace_id for t in stats.top))
            if embed_traces and jaeger_url
            else None
        )
        return render_html(stats, records, jaeger_url=jaeger_url, title=title, traces=traces)
    raise ValueError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}")


def write_report(
    path: str,
    fmt: str,
    *,
    journal_path: str,
    since: float | None,
    jaeger_url: str | None = None,
    until: float | None = None,
    title: str = DEFAULT_TITLE,
    now: float | None = None,
    report: ReadReport | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    embed_traces: bool = False,
) -> str:
    """Read the journal (``since``/``until`` in epoch seconds), render, write ``path``
    atomically (a reader never sees half a report) and return the path written.

    When ``path`` is an existing directory the file is ``faultlens-report.<fmt>`` in it.
    The journal is streamed (``_stream``): memory does not grow with its size. ``report``
    receives the files read, damaged lines and ignored files; ``progress`` wraps the
    stream of entries; ``embed_traces`` as for ``render_report``.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}")
    now = time.time() if now is None else now
    chunks = stream_report(
        fmt,
        journal_path=journal_path,
        since=since,
        until=until,
        jaeger_url=jaeger_url,
        title=title,
        now=now if until is None else min(now, until),
        report=report,
        progress=progress,
        embed_traces=embed_traces,
    )
    if path != STDOUT and os.path.isdir(path):
        path = os.path.join(path, f"faultlens-report.{fmt}")
    # As careful tools write: through symlinks, devices/FIFOs in place, regular files
    # replaced atomically, umask respected (faultlens._output).
    write_text(path, chunks)
    return path
