"""The journal's JSON Lines schema, shared by the writer and every reader.

A journal file holds one JSON object per line, of three kinds (``"kind"``; a line without
it is an error record, as every line written before schema version 2 was):

``error`` — one recorded error, written when it is recorded::

    {"kind": "error", "v": 2, "time": "2026-12-01T04:36:35.123Z", "ts": 1795833395.123,
     "trace_id", "span_id", "span_name", "service", "code", "category", "severity",
     "retryable", "fingerprint", "stage", "context": {...}, "message", "exception_type",
     "hint", "resources": {...}, "stack", "suppressed": 0, "pid", "host"[, "details": {...}]}

  ``suppressed`` is the number of earlier occurrences of the same fingerprint summarised
  into this line. Schema-1 writers carried rate-limited occurrences here; schema-2 writers
  write them as ``suppressed`` lines (below) and always write 0.

``suppressed`` — a tally: occurrences of one fingerprint the rate limiter kept from being
written in full. Every suppressed occurrence is counted in exactly one tally::

    {"kind": "suppressed", "v": 2, "first_ts": 1795833395.2, "fingerprint", "code",
     "category", "severity", "stage", "service", "exception_type", "message", "pid",
     "host", "count": 45          ,"ts": 1795833399.871234  ,"open": false}

  The tally is appended at the first suppressed occurrence and then *updated in place*
  (one ``pwrite`` of the fixed-width ``count``/``ts``/``open`` tail per occurrence), so
  the count on disk is exact at every moment, even for a process that ends in
  ``os._exit`` or SIGKILL an instant later. ``ts`` is the newest occurrence counted,
  ``first_ts`` the oldest. ``open: true`` means the count may still grow; a tally is
  closed after ``TALLY_PERIOD`` seconds, at rotation and at shutdown (a process that
  died leaves it open, with its final count). Every occurrence a tally counts has its
  ``severity``, ``stage`` and ``service``: a change starts a new tally. ``since``/``until``
  select a tally by its ``ts``.

``dropped`` — telemetry this process's faultlens lost (what
``faultlens.internal.dropped{reason}`` counts, which nobody sees without a metrics
exporter), written as a delta per reason at shutdown and every ``DROPPED_INTERVAL``::

    {"kind": "dropped", "v": 2, "ts", "time", "reason": "export_failed", "count": 3,
     "service", "pid", "host"}

  Reasons: ``queue_full``, ``export_failed``, ``internal_error`` (rate-limited
  occurrences are in the tallies, ``filtered`` ones were dropped on purpose).

Totals: an entry stands for ``occurrences(entry)`` errors — 1 + ``suppressed`` for an
error line, ``count`` for a tally, 0 for a dropped line. ``faultlens stats``, the reports
and the local monitor all count with it, so "50 errors, 45 of them summarised" reads the
same everywhere, and matches ``faultlens.errors`` in Prometheus.

Readers validate every line with ``validate()``: a value of the wrong type, a ``ts`` that
is not a finite time between 1970 and 9999 (NaN, Infinity, 1e20), a negative or huge
count makes the line corrupt — skipped and counted like a torn line, never a traceback.
Non-finite numbers inside ``context``/``resources``/``details`` (which the writer never
produces: it writes them as strings) are read as the strings ``"NaN"``/``"Infinity"``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the capture layer (wrapt, OpenTelemetry) is not needed to read lines
    from ..capture import RecordedError

__all__ = [
    "FIELDS",
    "KINDS",
    "KIND_DROPPED",
    "KIND_ERROR",
    "KIND_SUPPRESSED",
    "MAX_COUNT",
    "MAX_TS",
    "SCHEMA_VERSION",
    "STACK_CAP",
    "TALLY_REGION",
    "dropped_line",
    "encode",
    "entry_kind",
    "hostname",
    "loads",
    "occurrences",
    "summarised",
    "tally_line",
    "tally_region",
    "to_dict",
    "valid_ts",
    "validate",
]

SCHEMA_VERSION = 2
STACK_CAP = 8192  # chars of stacktrace kept per line; the innermost frames survive the cut
MAX_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z: later (or NaN, inf) is not a time
MAX_COUNT = 10**12 - 1  # what a tally's fixed-width count field holds; more is corrupt
TALLY_MESSAGE_CAP = 512

KIND_ERROR = "error"
KIND_SUPPRESSED = "suppressed"
KIND_DROPPED = "dropped"
KINDS = (KIND_ERROR, KIND_SUPPRESSED, KIND_DROPPED)

_CONTEXT = "faultlens.context."
_DETAILS = "faultlens.details."
_RESOURCE = "faultlens.resource."

FIELDS = (
    "time",
    "ts",
    "trace_id",
    "span_id",
    "span_name",
    "service",
    "code",
    "category",
    "severity",
    "retryable",
    "fingerprint",
    "stage",
    "context",
    "message",
    "exception_type",
    "hint",
    "resources",
    "stack",
    "suppressed",
    "pid",
    "host",
)

_host: str | None = None


def hostname() -> str:
    """The host name, read once: it goes into every line and into the file names."""
    global _host
    if _host is None:
        try:
            _host = socket.gethostname() or "localhost"
        except Exception:  # a sandbox without uname: still write a journal
            _host = "localhost"
    return _host


def iso_time(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, the form every log tool sorts correctly."""
    whole = int(ts // 1)
    ms = min(int((ts - whole) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def _cap_stack(text: str) -> str:
    if len(text) <= STACK_CAP:
        return text
    keep = STACK_CAP - 64
    # The innermost frames and the exception line are at the end: they are what matters.
    return f"... [{len(text) - keep} chars elided] ...\n{text[-keep:]}"


def _finite(value: Any) -> Any:
    """A float that JSON cannot carry (NaN, ±Infinity) as its string, so every line stays
    strict JSON that any tool (jq, a browser, ``json.loads(strict)``) reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _prefixed(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    n = len(prefix)
    return {k[n:]: _finite(v) for k, v in attrs.items() if k.startswith(prefix)}


def to_dict(record: RecordedError, pid: int | None = None) -> dict[str, Any]:
    """The journal line for one ``RecordedError`` (see the module docstring for the schema)."""
    info = record.info
    attrs = record.attributes
    ts = record.timestamp_ns / 1e9
    out: dict[str, Any] = {
        "kind": KIND_ERROR,
        "time": iso_time(ts),
        "ts": round(ts, 6),
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "span_name": record.span_name,
        "service": record.service,
        "code": info.code,
        "category": str(info.category),
        "severity": info.severity.value,
        "retryable": bool(info.retryable),
        "fingerprint": info.fingerprint,
        "stage": info.stage,
        "context": _prefixed(attrs, _CONTEXT),
        "message": attrs.get("exception.message", info.message),
        "exception_type": attrs.get("exception.type", info.exception_type),
        "hint": info.hint or None,
        "resources": _prefixed(attrs, _RESOURCE),
        "stack": _cap_stack(str(attrs.get("exception.stacktrace", ""))),
        # Rate-limited occurrences go to tally lines, each counted once (module docstring).
        "suppressed": 0,
        "pid": os.getpid() if pid is None else pid,
        "host": hostname(),
        "v": SCHEMA_VERSION,
    }
    details = _prefixed(attrs, _DETAILS)
    if details:
        out["details"] = details
    return out


def encode(line: Mapping[str, Any]) -> bytes:
    """One line of JSON, ASCII-only so that any message (lone surrogates included) encodes."""
    return (
        json.dumps(line, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii")
        + b"\n"
    )


# -- tallies: fixed-width tail updated in place -----------------------------------------------

_COUNT_W = 12
_TS_W = 18


def _clamp_ts(ts: float) -> float:
    # Keeps the formatted time within its field whatever the clock says.
    return min(max(ts, 0.0), 99_999_999_999.0) if math.isfinite(ts) else 0.0


_REGION = b"%-" + str(_COUNT_W).encode() + b'd,"ts":%-' + str(_TS_W).encode() + b'.6f,"open":%s'


def tally_region(count: int, ts: float, open_: bool) -> bytes:
    """The fixed-width tail of a tally line, after ``"count":`` (always ``TALLY_REGION``
    bytes, so a ``pwrite`` of it never moves the rest of the file). Called once per
    rate-limited occurrence: kept to one bytes formatting."""
    if not 0 <= count <= MAX_COUNT:
        count = min(max(count, 0), MAX_COUNT)
    if not 0.0 <= ts <= 99_999_999_999.0:
        ts = _clamp_ts(ts)
    return _REGION % (count, ts, b"true " if open_ else b"false")


TALLY_REGION = len(tally_region(0, 0.0, True))


def tally_line(
    *,
    fingerprint: str,
    code: str,
    category: str,
    severity: str,
    stage: str | None,
    service: str | None,
    exception_type: str,
    message: str,
    first_ts: float,
    count: int,
    pid: int,
) -> tuple[bytes, int]:
    """A new, open tally line and the offset of its in-place region within the line."""
    head: dict[str, Any] = {
        "kind": KIND_SUPPRESSED,
        "v": SCHEMA_VERSION,
        "first_ts": round(_clamp_ts(first_ts), 6),
        "fingerprint": fingerprint,
        "code": code,
        "category": category,
        "severity": severity,
        "stage": stage,
        "service": service,
        "exception_type": exception_type,
        "message": message[:TALLY_MESSAGE_CAP],
        "pid": pid,
        "host": hostname(),
    }
    prefix = encode(head)[:-2] + b',"count":'  # drop "}\n"
    return prefix + tally_region(count, first_ts, True) + b"}\n", len(prefix)


def dropped_line(
    reason: str, count: int, *, ts: float, pid: int, service: str | None
) -> dict[str, Any]:
    return {
        "kind": KIND_DROPPED,
        "v": SCHEMA_VERSION,
        "time": iso_time(ts),
        "ts": round(ts, 6),
        "reason": reason,
        "count": count,
        "service": service,
        "pid": pid,
        "host": hostname(),
    }


# -- reading -------------------------------------------------------------------------------------


def _parse_float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text  # 1e400 is not a number we can use


def loads(raw: bytes | str) -> Any:
    """``json.loads`` that never produces NaN or Infinity: such constants (and overflowing
    literals like ``1e400``) come back as strings, which ``validate`` rejects where a number
    is required."""
    return json.loads(raw, parse_constant=str, parse_float=_parse_float)


_STR_FIELDS = (
    "time",
    "trace_id",
    "span_id",
    "span_name",
    "service",
    "category",
    "severity",
    "fingerprint",
    "stage",
    "message",
    "exception_type",
    "hint",
    "stack",
    "host",
    "reason",
)
_MAP_FIELDS = ("context", "resources", "details")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def valid_ts(v: Any) -> bool:
    """A usable epoch time: a finite number between 1970 and 9999 (not a bool)."""
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and 0 <= v <= MAX_TS  # NaN fails every comparison
    )


def _count_ok(v: Any) -> bool:
    return _is_int(v) and 0 <= v <= MAX_COUNT


def _count(v: Any) -> int:
    return int(v) if _count_ok(v) else 0


def entry_kind(obj: Any) -> str | None:
    """The kind of a well-formed journal line (``error``, ``suppressed``, ``dropped``), or
    None when it is not one: wrong types, a ``ts`` that is no time, a count out of range.
    Does not change ``obj``."""
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind", KIND_ERROR)
    if kind not in KINDS or not valid_ts(obj.get("ts")):
        return None
    for key in _STR_FIELDS:
        v = obj.get(key)
        if v is not None and not isinstance(v, str):
            return None
    for key in _MAP_FIELDS:
        v = obj.get(key)
        if v is not None and not isinstance(v, dict):
            return None
    for key in ("pid", "v"):
        v = obj.get(key)
        if v is not None and not _is_int(v):
            return None
    if kind == KIND_ERROR:
        code = obj.get("code")
        if not isinstance(code, str) or not code:
            return None
        sup = obj.get("suppressed")
        if sup is not None and not _count_ok(sup):
            return None
        retryable = obj.get("retryable")
        if retryable is not None and not isinstance(retryable, bool):
            return None
    elif kind == KIND_SUPPRESSED:
        code = obj.get("code")
        if not isinstance(code, str) or not code or not _count_ok(obj.get("count")):
            return None
        first = obj.get("first_ts")
        if first is not None and not valid_ts(first):
            return None
        if not isinstance(obj.get("open", False), bool):
            return None
    elif not isinstance(obj.get("reason"), str) or not _count_ok(obj.get("count")):
        return None
    return str(kind)


def validate(obj: Any) -> dict[str, Any] | None:
    """The parsed line as an entry with ``kind`` filled in, or None when it is not a
    well-formed journal line (see ``entry_kind``)."""
    kind = entry_kind(obj)
    if kind is None:
        return None
    obj["kind"] = kind
    return obj  # type: ignore[no-any-return]


def occurrences(entry: Mapping[str, Any]) -> int:
    """How many errors a (validated) entry stands for: 1 + ``suppressed`` for an error
    line, ``count`` for a tally, 0 for a dropped line."""
    kind = entry.get("kind", KIND_ERROR)
    if kind == KIND_ERROR:
        return 1 + _count(entry.get("suppressed"))
    if kind == KIND_SUPPRESSED:
        return _count(entry.get("count"))
    return 0


def summarised(entry: Mapping[str, Any]) -> int:
    """How many of ``occurrences(entry)`` were rate-limited (not written in full)."""
    kind = entry.get("kind", KIND_ERROR)
    if kind == KIND_ERROR:
        return _count(entry.get("suppressed"))
    if kind == KIND_SUPPRESSED:
        return occurrences(entry)
    return 0
