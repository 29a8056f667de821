"""Error envelopes: the JSON shapes an API response or a CLI prints for a failure.

Both are always JSON-serialisable (odd detail values become strings) and scrubbed, so a
handler can ``return to_api_envelope(exc)`` without thinking about what the exception holds.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from .. import scrub
from .._version import __version__
from ..errors import FaultError, classify, clean_text, safe_str
from ._context import current_scope
from ._record import recorded_info
from ._state import STATE

__all__ = ["to_api_envelope", "to_cli_envelope"]

_MAX_MESSAGE = 2048
_MAX_DEPTH = 6


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: str) -> str:
    """A string as valid UTF-8 (lone surrogates replaced), never shortened."""
    if type(value) is str and value.isascii():
        return value
    return clean_text(value, max(len(value), 1))


def _jsonable(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else safe_str(value)
    if depth >= _MAX_DEPTH:
        return safe_str(value, 256)
    if isinstance(value, Mapping):
        try:
            return {
                (_text(k) if isinstance(k, str) else safe_str(k, 128)): _jsonable(v, depth + 1)
                for k, v in list(value.items())[:200]
            }
        except Exception:
            return safe_str(value, 256)
    if isinstance(value, (list, tuple, set, frozenset)):
        try:
            return [_jsonable(v, depth + 1) for v in list(value)[:200]]
        except Exception:
            return safe_str(value, 256)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return safe_str(value, 1024)


def _parts(exc: BaseException) -> tuple[str, str, str | None, dict[str, Any], str]:
    scrubber = scrub.current()
    message = scrubber.capped(safe_str(exc, _MAX_MESSAGE + scrub.MARGIN), _MAX_MESSAGE)
    # The stage recorded when the exception escaped (a decorator's, a capture block's) is
    # gone from the context by the time a handler builds the envelope: reuse the record.
    info = recorded_info(exc) or classify(exc, message=message)
    stage = info.stage or current_scope().stage
    if stage is not None:
        stage = clean_text(stage, 256)
    details: dict[str, Any] = {}
    if isinstance(exc, FaultError) and exc.details:
        try:
            details = scrubber.mapping(_jsonable(exc.details))
        except Exception:
            details = {"_unreadable": True}
    return (
        clean_text(info.code, 256),
        clean_text(message, _MAX_MESSAGE),
        stage,
        details,
        clean_text(info.hint, 1024),
    )


def to_api_envelope(exc: BaseException) -> dict[str, Any]:
    """``{"ok": false, "error": {code, message, stage, details, hint}, "meta": {timestamp,
    version, trace_id, span_id}}``: the body an HTTP API returns for a failure, with the ids
    that let whoever reads it find the trace."""
    code, message, stage, details, hint = _parts(exc)
    ctx = trace.get_current_span().get_span_context()
    return {
        "ok": False,
        "error": {
            "code": code,
            "message": message,
            "stage": stage,
            "details": details,
            "hint": hint,
        },
        "meta": {
            "timestamp": _now_iso(),
            "version": STATE.service_version or __version__,
            "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else None,
            "span_id": format(ctx.span_id, "016x") if ctx.is_valid else None,
        },
    }


def to_cli_envelope(exc: BaseException) -> dict[str, Any]:
    """``{"status": "error", "error": {code, message, stage}, "timestamp"}``: what a CLI
    prints with ``--json`` when it fails."""
    code, message, stage, _, _ = _parts(exc)
    return {
        "status": "error",
        "error": {"code": code, "message": message, "stage": stage},
        "timestamp": _now_iso(),
    }
