"""Recording errors onto spans: record_error(), @instrument, capture(), envelopes."""

from ._capture import capture
from ._context import Scope, current_scope
from ._envelope import to_api_envelope, to_cli_envelope
from ._instrument import Kind, callable_kind, callable_name, instrument, is_coroutine
from ._logging import LoggingHandler
from ._record import (
    CONTROL_FLOW,
    ITERATION_END,
    PASS_THROUGH,
    ErrorEvent,
    ErrorRecord,
    format_stacktrace,
    is_control_flow,
    mark_span,
    passes_through,
    record_error,
    record_escaping,
    record_on_span,
    record_uncaught,
)
from ._state import STATE, Limits, Processor, Sink
from ._telemetry import count_dropped, dropped_counts, get_meter, get_tracer, internal_error
from ._wrapper import FunctionWrapper

__all__ = [
    "CONTROL_FLOW",
    "ITERATION_END",
    "PASS_THROUGH",
    "STATE",
    "ErrorEvent",
    "ErrorRecord",
    "FunctionWrapper",
    "Kind",
    "Limits",
    "LoggingHandler",
    "Processor",
    "Scope",
    "Sink",
    "callable_kind",
    "callable_name",
    "capture",
    "count_dropped",
    "current_scope",
    "dropped_counts",
    "format_stacktrace",
    "get_meter",
    "get_tracer",
    "instrument",
    "internal_error",
    "is_control_flow",
    "is_coroutine",
    "mark_span",
    "passes_through",
    "record_error",
    "record_escaping",
    "record_on_span",
    "record_uncaught",
    "to_api_envelope",
    "to_cli_envelope",
]
