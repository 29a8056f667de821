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

__all__ = ["COLUMNS", "cell", "neutralise", "render_csv", "row_cells"]

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


# json.dumps(value, ensure_ascii=False, sort_keys=True, default=str), the encoder made once
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)
# first characters after which a cell may need a look (``neutralise``); any other is safe
_MAYBE_FORMULA = frozenset((*_FORMULA_START, " ")).__contains__


def neutralise(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate as a formula."""
    if not value or not _MAYBE_FORMULA(value[0]):  # the common case, decided by one character
        return value
    return "'" + value if value.lstrip(" ").startswith(_FORMULA_START) else value


def cell(value: Any) -> str:
    """One CSV cell: text, maps and lists as JSON, formulas neutralised."""
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        return neutralise(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is dict or kind is list or isinstance(value, (Mapping, list)):
        text = _JSON.encode(value)
    else:
        text = str(value)
    return neutralise(text)


def row_cells(record: Mapping[str, Any]) -> list[str]:
    """``[cell(record.get(c)) for c in COLUMNS]``, with the plain-text cells (most of them)
    decided inline: a CSV report writes one row per error of the journal."""
    return [
        v if v.__class__ is str and not (v and _MAYBE_FORMULA(v[0])) else cell(v)
        for v in map(record.get, COLUMNS)
    ]


def render_csv(records: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    ordered = sorted(
        records, key=lambda r: float(r["ts"]) if isinstance(r.get("ts"), (int, float)) else 0.0
    )
    for r in ordered:
        writer.writerow(row_cells(r))
    return buf.getvalue()
