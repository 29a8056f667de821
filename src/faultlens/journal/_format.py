"""One recorded error as one journal line: the JSON Lines schema, shared by writer and reader.

The record is built on the writer thread, not on the thread that recorded the error, so the
cost of the dict and of ``json.dumps`` never lands on the application's hot path.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from ..capture import ErrorRecord

__all__ = ["FIELDS", "SCHEMA_VERSION", "STACK_CAP", "encode", "hostname", "to_dict"]

SCHEMA_VERSION = 1
STACK_CAP = 8192  # chars of stacktrace kept per line; the innermost frames survive the cut

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


def _prefixed(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    n = len(prefix)
    return {k[n:]: v for k, v in attrs.items() if k.startswith(prefix)}


def to_dict(record: ErrorRecord, pid: int | None = None) -> dict[str, Any]:
    """The journal line for one ``ErrorRecord`` (see the module docstring for the schema)."""
    info = record.info
    attrs = record.attributes
    ts = record.timestamp_ns / 1e9
    out: dict[str, Any] = {
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
        "suppressed": int(record.suppressed),
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
