"""Recording errors onto spans: record_error(), @instrument, capture(), envelopes.

This package is also ``faultlens.capture``, the public context manager: calling it opens a
capture scope (``with faultlens.capture(stage="render", video_hash=h):``, or as a
decorator) — the same as :class:`capture` from ``._capture``. One object under one name,
so ``import faultlens.capture`` and ``faultlens.capture(...)`` never disagree.

What it exports is what the layers above (resilience, the journal, integrations, auto,
configure() and faultlens.testing) use. The runtime state configure() and faultlens.testing
set is ``faultlens.capture._state.STATE``: not API.
"""

import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

from . import _state
from ._capture import capture
from ._context import current_scope
from ._envelope import to_api_envelope, to_cli_envelope
from ._exception_logs import ExceptionLogEmitter, set_exception_emitter
from ._instrument import (
    Kind,
    callable_kind,
    callable_name,
    instrument,
    instrument_proxy,
    is_plain_instrumented,
)
from ._logging import LoggingHandler, guard_otel_handlers
from ._marks import MARKS, Mark
from ._record import (
    ErrorEvent,
    RecordedError,
    format_stacktrace,
    is_control_flow,
    passes_through,
    record_error,
    record_on_span,
    record_uncaught,
    reset_rate_limiter,
)
from ._state import Limits, Processor
from ._telemetry import (
    count_dropped,
    dropped_counts,
    get_meter,
    get_tracer,
    internal_error,
    reset_dropped,
    scrub_own_logs,
)
from ._threads import (
    SHIELDED_SIGNALS,
    register_fork_shield,
    shielded,
    signals_shielded,
)
from ._wrapper import FunctionWrapper

__all__ = [
    "MARKS",
    "SHIELDED_SIGNALS",
    "ErrorEvent",
    "ExceptionLogEmitter",
    "FunctionWrapper",
    "Kind",
    "Limits",
    "LoggingHandler",
    "Mark",
    "Processor",
    "RecordedError",
    "callable_kind",
    "callable_name",
    "capture",
    "count_dropped",
    "current_scope",
    "dropped_counts",
    "format_stacktrace",
    "get_meter",
    "get_tracer",
    "guard_otel_handlers",
    "instrument",
    "instrument_proxy",
    "internal_error",
    "is_control_flow",
    "is_plain_instrumented",
    "passes_through",
    "record_error",
    "record_on_span",
    "record_uncaught",
    "register_fork_shield",
    "reset",
    "reset_rate_limiter",
    "scrub_own_logs",
    "set_exception_emitter",
    "shielded",
    "signals_shielded",
    "to_api_envelope",
    "to_cli_envelope",
]


def reset() -> None:
    """Forget this layer's process-wide state: configuration, providers, sinks, the drop
    tallies and error counts, the rate limiter and the recording caches
    (faultlens.testing.reset())."""
    from ._record import reset_caches

    _state.STATE.reset()
    reset_dropped()
    reset_rate_limiter()
    reset_caches()


# Old names, kept working with a DeprecationWarning: old -> (what to use, the value).
_DEPRECATED: dict[str, tuple[str, Callable[[], Any]]] = {
    "ErrorRecord": (f"{__name__}.RecordedError", lambda: RecordedError),
    "STATE": ("nothing: it is faultlens's internal state", lambda: _state.STATE),
}


def __getattr__(name: str) -> Any:
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    use, value = _DEPRECATED[name]
    warnings.warn(f"{__name__}.{name} is deprecated; use {use}", DeprecationWarning, stacklevel=2)
    return value()


class _CaptureLayer(types.ModuleType):
    """This package's module type: the module is also the ``capture`` context manager."""

    def __call__(self, stage: str | None = None, **context: Any) -> capture:
        return capture(stage, **context)


sys.modules[__name__].__class__ = _CaptureLayer
