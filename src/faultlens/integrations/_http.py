"""HTTP-aware policy: which request errors are failures, what status an envelope answers with.

Sentry's ``failed_request_status_codes`` decides by status alone; ``HttpPolicy`` decides by
status *and* by the error's classification:

- an exception that escapes the view unhandled, or that a handler turned into a status in
  ``failed_status_codes`` (5xx by default), is a **failure**: one classified ``exception``
  event on the request's server span, counted in ``faultlens.errors``, journaled;
- an exception the framework (or the app's handler) turned into any other status
  (``HTTPException(404)``, ``RequestValidationError`` → 422, Django ``Http404``, Flask
  ``abort(403)``) is **not a failure**: no event, not in ``faultlens.errors`` (so error-rate
  alerts do not fire on scanners and typos), but counted with its code in
  ``faultlens.http.handled_errors`` {code, category, http.route, http.request.method,
  http.response.status_code}, so a spike in 422s is still visible;
- ``failed_categories`` makes errors of a category failures whatever their status (say
  ``network``: a dependency error the app answers with a friendly 4xx is still paged on);
  ``ignored_codes`` are never failures (a deliberate 503 during maintenance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..capture import get_meter, internal_error
from ..capture._state import STATE
from ..errors import ErrorInfo, clean_text, http_status_of
from ._locks import ForkSafeLock

__all__ = ["HttpPolicy", "count_handled", "envelope_status"]

_SERVER_ERRORS = frozenset(range(500, 600))


def _statuses(value: Iterable[int] | range) -> frozenset[int]:
    out = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
            raise ValueError(f"failed_status_codes: {item!r} is not an HTTP status (100-599)")
        out.add(item)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """Which request errors are failures (see the module docstring)."""

    failed_status_codes: frozenset[int] = field(default=_SERVER_ERRORS)
    failed_categories: frozenset[str] = frozenset()
    ignored_codes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "failed_status_codes", _statuses(self.failed_status_codes))
        for name in ("failed_categories", "ignored_codes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name}: expected a collection of strings, got {value!r}")
            object.__setattr__(self, name, frozenset(value))

    def is_failure(self, info: ErrorInfo, status: int | None, *, handled: bool) -> bool:
        """Whether an error answered with ``status`` is a failure. ``handled``: a handler
        turned it into the response (else it escaped the view, and the server answers 500
        unless an error handler chose another status)."""
        if info.code in self.ignored_codes:
            return False
        if str(info.category) in self.failed_categories:
            return True
        if status is None:
            return not handled
        if not handled and status < 400:
            return True  # it broke a response that had started well (a stream cut mid-way)
        return status in self.failed_status_codes


DEFAULT_POLICY = HttpPolicy()

# -- the handled-errors counter ----------------------------------------------------------------

_lock = ForkSafeLock()
_counter: Any = None
_counter_key: tuple[int, int] | None = None


def _handled_counter() -> Any:
    global _counter, _counter_key
    meter = get_meter()
    key = (STATE.generation, id(meter))
    if _counter_key != key:
        with _lock:
            if _counter_key != key:
                _counter = meter.create_counter(
                    "faultlens.http.handled_errors",
                    unit="{error}",
                    description="Request errors the framework answered with a non-failure "
                    "status (404, 422, ...), by code and route; not in faultlens.errors",
                )
                _counter_key = key
    return _counter


def count_handled(
    info: ErrorInfo, route: str | None, method: str | None, status: int | None
) -> None:
    """One non-failure request error, counted with its code. Never raises."""
    try:
        labels: dict[str, str | int] = {
            "code": clean_text(info.code, 256),
            "category": clean_text(str(info.category), 128),
        }
        if route:
            labels["http.route"] = clean_text(route, 256)
        if method:
            labels["http.request.method"] = clean_text(method, 32)
        if status is not None:
            labels["http.response.status_code"] = status
        _handled_counter().add(1, labels)
    except Exception as e:
        internal_error("http handled-errors counter", e)


# -- envelope status ---------------------------------------------------------------------------

_BY_CODE = {
    "HTTP_BAD_REQUEST": 400,
    "HTTP_UNAUTHORIZED": 401,
    "HTTP_FORBIDDEN": 403,
    "HTTP_NOT_FOUND": 404,
    "HTTP_METHOD_NOT_ALLOWED": 405,
    "HTTP_CONFLICT": 409,
    "VAL_REQUEST_INVALID": 422,
    "HTTP_TOO_MANY_REQUESTS": 429,
    "EXE_TIMEOUT": 504,
    "EXE_PERMISSION_DENIED": 403,
    "EXE_CIRCUIT_OPEN": 503,
    "NET_RATE_LIMITED": 503,
    "NET_DEPENDENCY_ERROR": 502,
    "NET_CONNECTION_FAILED": 502,
}


def envelope_status(exc: BaseException, info: ErrorInfo) -> tuple[int, dict[str, str]]:
    """The status (and headers) an API envelope answers with, from the error's classification:
    an HTTP exception keeps its own status; validation → 422, not found → 404, permission →
    403, timeout → 504, network/dependency → 502, or 503 with ``Retry-After`` when an open
    breaker (or a throttling dependency) says when to come back; anything else → 500."""
    headers: dict[str, str] = {}
    status = http_status_of(exc)
    if status is None or status < 400:
        code = info.code
        status = _BY_CODE.get(code)
        if status is None:
            upper = code.upper()
            category = str(info.category)
            if "NOT_FOUND" in upper:
                status = 404
            elif "PERMISSION" in upper or "FORBIDDEN" in upper:
                status = 403
            elif "TIMEOUT" in upper:
                status = 504
            elif category == "validation":
                status = 422
            elif category == "network":
                status = 502
            else:
                status = 500
    after = getattr(exc, "retry_after", None)
    if after is None and status in (429, 503):
        from ..errors import retry_after_of

        after = retry_after_of(exc)
    if (
        isinstance(after, int | float)
        and not isinstance(after, bool)
        and math.isfinite(after)
        and after >= 0
        and status in (429, 503)
    ):
        headers["Retry-After"] = str(max(1, math.ceil(after)))
    return status, headers
