"""Errors that code logs instead of raising: ``logger.exception(...)`` is recorded too.

Much real failure handling ends in a log line (``except Exception: log.exception("...")``)
and never reaches an instrumented frame. The handler records the logged exception on the
current span, once (an exception recorded elsewhere is only marked), with the logger name
and the scrubbed log message as context.

With exceptions signalled as log records (``exception_signal`` ``logs``/``logs/dup``), the
recorded error is itself an ``exception`` log record. If OpenTelemetry's own logging handler
is also attached (``opentelemetry-instrumentation-logging``, which ``opentelemetry-instrument``
enables by default, or the SDK's older ``LoggingHandler``), it would export the same
``log.exception(...)`` line as a second record carrying the same exception. So faultlens adds
a filter to those handlers that lets such a line through only when no faultlens handler
records it: one record per logged exception, faultlens's, with the code, category and
fingerprint, and the log message kept as ``faultlens.context.log_message``. Every other log
line goes through OpenTelemetry's handler untouched, and in ``span`` mode nothing is
filtered (the span event and the log line are different signals).
"""

from __future__ import annotations

import logging

from .. import scrub
from ..errors import clean_text
from ._record import record_error
from ._state import STATE

__all__ = ["LoggingHandler", "guard_otel_handlers"]


class LoggingHandler(logging.Handler):
    """Attach to a logger (the root one for everything) to record logged exceptions::

        logging.getLogger().addHandler(faultlens.LoggingHandler())

    Only records with ``exc_info`` (``logger.exception``, ``exc_info=True``) at ``level`` or
    above are recorded; faultlens's own log lines never are. Add it *after* configuring
    logging: a root logger with any handler makes ``logging.basicConfig()`` a no-op, which
    is why ``faultlens run`` does not attach it on its own.
    """

    def __init__(self, level: int = logging.ERROR) -> None:
        super().__init__(level)
        guard_otel_handlers(logging.getLogger())

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or record.name == "faultlens" or record.name.startswith("faultlens."):
            return
        if STATE.exception_logs is not None:  # before OTel's handler, if it comes after us
            guard_otel_handlers(logging.getLogger(record.name))
        try:
            message = clean_text(scrub.current().text(record.getMessage()), 1024)
        except Exception:  # a broken %-format in the user's call: keep the exception anyway
            message = str(record.msg)[:1024]
        record_error(exc, logger=record.name, log_message=message)

    def handleError(self, record: logging.LogRecord) -> None:
        # record_error never raises, and a logging handler must not print tracebacks
        # about itself into the application's stderr.
        pass


def _is_otel_handler(handler: logging.Handler) -> bool:
    cls = type(handler)
    return cls.__name__ == "LoggingHandler" and cls.__module__.startswith("opentelemetry.")


def _records_it(record: logging.LogRecord) -> bool:
    """A faultlens handler on the record's way up the logger tree records it."""
    if not record.exc_info or record.exc_info[1] is None:
        return False
    if record.name == "faultlens" or record.name.startswith("faultlens."):
        return False
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if isinstance(handler, LoggingHandler) and record.levelno >= handler.level:
                return True
        logger = logger.parent if logger.propagate else None
    return False


class _OneRecordPerException(logging.Filter):
    """On OpenTelemetry's logging handler: a logged exception that faultlens records as an
    exception log record is not exported a second time (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return STATE.exception_logs is None or not _records_it(record)
        except Exception:  # a filter must never break the application's logging
            return True


_FILTER = _OneRecordPerException()


def guard_otel_handlers(logger: logging.Logger) -> None:
    """Add the filter to OpenTelemetry's logging handlers on ``logger`` and its ancestors."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if _is_otel_handler(handler) and _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
        current = current.parent if current.propagate else None
