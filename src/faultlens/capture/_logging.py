"""Errors that code logs instead of raising: ``logger.exception(...)`` is recorded too.

Much real failure handling ends in a log line (``except Exception: log.exception("...")``)
and never reaches an instrumented frame. The handler records the logged exception on the
current span, once (an exception recorded elsewhere is only marked), with the logger name
and the scrubbed log message as context.
"""

from __future__ import annotations

import logging

from .. import scrub
from ..errors import clean_text
from ._record import record_error

__all__ = ["LoggingHandler"]


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

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or record.name == "faultlens" or record.name.startswith("faultlens."):
            return
        try:
            message = clean_text(scrub.current().text(record.getMessage()), 1024)
        except Exception:  # a broken %-format in the user's call: keep the exception anyway
            message = str(record.msg)[:1024]
        record_error(exc, logger=record.name, log_message=message)

    def handleError(self, record: logging.LogRecord) -> None:
        # record_error never raises, and a logging handler must not print tracebacks
        # about itself into the application's stderr.
        pass
