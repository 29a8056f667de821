"""A recorded error as an OpenTelemetry log record: the semantic conventions' new home for
exceptions (OTEP 4430; ``docs/exceptions/exceptions-logs.md``).

One record per recorded error, emitted in the failing span's context (so it carries that
span's trace and span ids, and a bridge can find the span), with

- ``event_name`` ``exception`` (or the configured ``<domain>.exception``);
- the exception object as the record's ``exception``, for in-process log processors, and
  faultlens's own ``exception.*`` attributes (scrubbed, own frames dropped, capped). The
  SDK's ``Logger.emit(exception=...)`` formats the traceback again whenever it is given an
  exception, only for its attributes to lose to ours: the largest single cost of a record.
  With the SDK's own ``Logger`` the record is therefore handed to the provider's processors
  as ``emit`` would hand it, without that formatting (``direct``, built in ``_logs``); any
  other logger gets the public ``emit``;
- every attribute of the ``exception`` span event (code, category, severity, fingerprint,
  stage, context, resource), so a logs backend can group and alert on the same keys;
- a severity from the faultlens severity: critical → FATAL, high → ERROR, medium → WARN,
  low → INFO, and at least ERROR for an uncaught exception (a crash is never a warning);
- the scrubbed message as the body, which is what a logs UI shows as the line.

Only the OpenTelemetry *API* is used here: the logger comes from ``configure()`` (a provider
faultlens owns, or the application's), and whatever the provider's processors do is theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry._logs import Logger, LogRecord, SeverityNumber
from opentelemetry.trace import Span, set_span_in_context

from ._state import STATE
from ._telemetry import internal_error

__all__ = ["ExceptionLogEmitter", "set_exception_emitter", "severity_of"]

_SEVERITY: dict[str, tuple[SeverityNumber, str]] = {
    "critical": (SeverityNumber.FATAL, "FATAL"),
    "high": (SeverityNumber.ERROR, "ERROR"),
    "medium": (SeverityNumber.WARN, "WARN"),
    "low": (SeverityNumber.INFO, "INFO"),
}
_AT_LEAST_ERROR = (SeverityNumber.ERROR, "ERROR")


def severity_of(attributes: dict[str, Any]) -> tuple[SeverityNumber, str]:
    """The log severity of an error event's attributes (an unknown severity is ERROR: a
    recorded error is never quieter than a warning by accident)."""
    number, text = _SEVERITY.get(str(attributes.get("faultlens.error.severity")), _AT_LEAST_ERROR)
    if (
        attributes.get("faultlens.context.uncaught") is True
        and number.value < SeverityNumber.ERROR.value
    ):
        return _AT_LEAST_ERROR
    return number, text


class ExceptionLogEmitter:
    """Called by the recorder for each error event (``STATE.exception_logs``)."""

    __slots__ = ("direct", "event_name", "logger")

    def __init__(
        self,
        logger: Logger,
        event_name: str = "exception",
        direct: Callable[[LogRecord], None] | None = None,
    ) -> None:
        self.logger = logger
        self.event_name = event_name
        self.direct = direct

    def __call__(
        self, span: Span, exc: BaseException, attributes: dict[str, Any], timestamp_ns: int
    ) -> None:
        try:
            number, text = severity_of(attributes)
            fields: dict[str, Any] = {
                "timestamp": timestamp_ns,
                "observed_timestamp": timestamp_ns,
                "context": set_span_in_context(span),
                "severity_number": number,
                "severity_text": text,
                "body": attributes.get("exception.message") or attributes.get("exception.type"),
                "attributes": attributes,
                "event_name": self.event_name,
                "exception": exc,
            }
            direct = self.direct
            if direct is not None:
                direct(LogRecord(**fields))
            else:
                self.logger.emit(**fields)
        except Exception as e:  # RecursionError too: a rerun would repeat the span event
            internal_error("exception log record", e)

    def __repr__(self) -> str:
        return f"ExceptionLogEmitter(event_name={self.event_name!r}, logger={self.logger!r})"


def set_exception_emitter(emitter: ExceptionLogEmitter | None, span_events: bool) -> None:
    """Set how errors are signalled (``configure()`` and ``faultlens.testing`` call this)."""
    with STATE.lock:
        STATE.exception_logs = emitter
        STATE.span_events = span_events
        STATE.bump()
