"""The CSV report: one row per recorded error, safe to open in a spreadsheet.

One row per error (not per fingerprint) so that the file can be filtered, pivoted and
counted any way; the per-fingerprint summary is what the JSON and HTML reports add.
A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (after any
leading spaces) would be read as a formula by Excel/LibreOffice/Sheets (CSV injection): such
cells get a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "cell", "neutralise", "render_csv"]

COLUMNS = (
    "time",
    "ts",
    "service",
    "code",
    "category",
    "severity",
    "retryable",
    "stage",
    "fingerprint",
    "exception_type",
    "message",
    "hint",
    "context",
    "trace_id",
    "span_id",
    "span_name",
    "suppressed",
    "pid",
    "host",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate as a formula."""
    return "'" + value if value.lstrip(" ").startswith(_FORMULA_START) else value


def cell(value: Any) -> str:
    """One CSV cell: text, maps and lists as JSON, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    else:
        text = str(value)
    return neutralise(text)


def render_csv(records: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    ordered = sorted(
        records, key=lambda r: float(r["ts"]) if isinstance(r.get("ts"), (int, float)) else 0.0
    )
    for r in ordered:
        writer.writerow([cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()
