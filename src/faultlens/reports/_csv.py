"""The CSV report: one row per recorded error, safe to open in a spreadsheet.

One row per error (not per fingerprint) so that the file can be filtered, pivoted and
counted any way; the per-fingerprint summary is what the JSON and HTML reports add.
A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (after any
leading spaces) would be read as a formula by Excel/LibreOffice/Sheets (CSV injection): such
cells get a leading ``'``.

A report over a large journal writes one row per error line: ``fast_row`` turns such a line
into its CSV row straight from the line's bytes (msgspec decodes only the columns, no dict
per record), and gives up (None) on anything unusual, which then takes the general path
(``row_cells`` over the whole record, quoted as ``csv.writer`` quotes): the text is the
same either way.
"""

from __future__ import annotations

import csv
import io
import json
import json.encoder
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "COLUMNS",
    "HEADER",
    "cell",
    "csv_row",
    "fast_row",
    "neutralise",
    "render_csv",
    "row_cells",
]

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
# The rows end as csv.writer(lineterminator="\r\n") ends them.
HEADER = ",".join(COLUMNS) + "\r\n"


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


# -- one row as text ------------------------------------------------------------------------

# What makes ``csv.writer`` (the default dialect, QUOTE_MINIMAL) quote a cell: the delimiter,
# the quote character, and the line terminator's characters.
_NEEDS_QUOTES = re.compile(r'[",\r\n]').search


def _quoted(text: str) -> str:
    """One cell as ``csv.writer`` writes it: quoted (``"`` doubled) when it must be."""
    if _NEEDS_QUOTES(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def csv_row(cells: Sequence[str]) -> str:
    """``csv.writer(f, lineterminator="\r\n").writerow(cells)``'s text, for text cells."""
    return ",".join(map(_quoted, cells)) + "\r\n"


# A cell after the first that may be a formula (or starts with a space: ``neutralise``
# decides). CR and LF anywhere, and a formula start in the first cell, are checked apart:
# single-character searches are much cheaper than one alternation over the text.
_FORMULA_AFTER_COMMA = re.compile(r",[=+\-@\t ]").search


def _careful(cells: list[str]) -> str:
    """``cells`` (text as ``cell`` gives it, before the formula guard) as a row's part,
    cell by cell as ``csv.writer`` writes ``row_cells``."""
    return ",".join([_quoted(neutralise(c)) for c in cells])


try:
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a dependency; the general path still works
    msgspec = None  # type: ignore[assignment]

if msgspec is not None:

    class _Row(msgspec.Struct, gc=False):
        """The columns of an error line, with the types ``journal``'s reader checks (a value
        of another type fails the decoder: the line takes the general path). ``ts`` keeps
        an integer an integer, as the record's dict does."""

        ts: int | float
        kind: str = "error"
        time: str | None = None
        service: str | None = None
        code: str | None = None
        category: str | None = None
        severity: str | None = None
        retryable: bool | None = None
        stage: str | None = None
        fingerprint: str | None = None
        exception_type: str | None = None
        message: str | None = None
        hint: str | None = None
        context: dict[str, Any] | None = None
        trace_id: str | None = None
        span_id: str | None = None
        span_name: str | None = None
        suppressed: int | None = None
        pid: int | None = None
        host: str | None = None

    _decode_row: Any = msgspec.json.Decoder(_Row).decode
    _DecodeError: Any = msgspec.DecodeError
else:  # pragma: no cover
    _decode_row = None
    _DecodeError = ValueError

_BOOL = {None: "", True: "true", False: "false"}


def _encoder() -> Any:
    """``_JSON.encode`` for a decoded ``context`` map: the C encoder made once with
    ``_JSON``'s settings (no check for cycles: decoded JSON has none), which saves the
    Python-level set-up ``JSONEncoder.encode`` does per call; the same text."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it; the text is the same without
        return _JSON.encode
    encode = make(None, str, json.encoder.encode_basestring, None, ": ", ", ", True, False, True)
    return lambda value: "".join(encode(value, 0))


_encode_context = _encoder()


def fast_row(raw: bytes, ts: float) -> str | None:
    """The CSV row of the error line ``raw`` (an ASCII line the journal's reader took for
    an error at time ``ts``), exactly as ``csv_row(row_cells(record))`` writes it; None
    when the line is one for the general path (another type somewhere, another time or
    kind than the first pass saw: see ``journal.LineReader.record``)."""
    if _decode_row is None:
        return None
    try:
        v = _decode_row(raw)
    except (_DecodeError, RecursionError):
        return None
    if v.ts != ts or v.kind != "error":
        return None
    sup, pid, ctx = v.suppressed, v.pid, v.context
    first = [
        v.time or "",
        str(v.ts),
        v.service or "",
        v.code or "",
        v.category or "",
        v.severity or "",
        _BOOL[v.retryable],
        v.stage or "",
        v.fingerprint or "",
        v.exception_type or "",
        v.message or "",
        v.hint or "",
    ]
    last = [
        v.trace_id or "",
        v.span_id or "",
        v.span_name or "",
        "" if sup is None else str(sup),
        "" if pid is None else str(pid),
        v.host or "",
    ]
    head, tail = ",".join(first), ",".join(last)
    # The plain case, checked once over the cells but the context: no cell needs quoting
    # (a delimiter inside a cell shows as one comma too many; ``"``, CR, LF) and none may
    # be a formula (the first character, or one after a comma). Else cell by cell.
    probe = f"{head},{tail}"
    if (
        probe.count(",") != 17
        or '"' in probe
        or "\n" in probe
        or "\r" in probe
        or _MAYBE_FORMULA(probe[:1])
        or _FORMULA_AFTER_COMMA(probe) is not None
    ):
        head, tail = _careful(first), _careful(last)
    # A map's JSON starts with "{" (never a formula); a map with a member has a quoted
    # key: always quoted. ``{}`` never is.
    if ctx is None:
        return f"{head},,{tail}\r\n"
    if not ctx:
        return f"{head},{{}},{tail}\r\n"
    quoted = _encode_context(ctx).replace('"', '""')
    return f'{head},"{quoted}",{tail}\r\n'
