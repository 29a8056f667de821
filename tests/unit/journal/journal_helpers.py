"""Helpers shared by the journal tests."""

from __future__ import annotations

from typing import Any

import faultlens
from faultlens.journal import Journal


def running_journal() -> Journal:
    """The Journal component configure() started."""
    from faultlens import _setup

    rt = _setup._runtime
    assert rt is not None, "faultlens is not configured"
    journals = [c for c in rt.components if isinstance(c, Journal)]
    assert len(journals) == 1, rt.components
    return journals[0]


def record(exc: BaseException, **context: Any) -> faultlens.ErrorInfo:
    """Raise-and-record, so the error has a real traceback like in an application."""
    try:
        raise exc
    except BaseException as e:
        return faultlens.record_error(e, **context)
