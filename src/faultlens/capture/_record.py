"""record_error(): one exception -> one classified `exception` event, counted and bounded.

The pipeline for one error is a few small steps (classify, fingerprint, rate-limit, scrub,
snapshot resources, emit); every step is guarded so that instrumentation never raises into
user code. An exception is recorded once: the first span it is recorded on marks it, and
every later span it escapes through only gets status ERROR and ``error.type``.
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from .. import resources, scrub
from ..errors import (
    Category,
    ErrorInfo,
    FaultError,
    Severity,
    classify,
    clean_text,
    error_type,
    qualified_name,
    safe_str,
)
from ._context import current_scope
from ._ratelimit import RateLimiter, notify_suppressed
from ._state import STATE
from ._telemetry import count_dropped, errors_counter, get_tracer, internal_error

__all__ = [
    "CONTROL_FLOW",
    "ErrorEvent",
    "ErrorRecord",
    "is_control_flow",
    "mark_span",
    "record_error",
    "record_escaping",
    "record_on_span",
]

_log = logging.getLogger("faultlens")

CONTROL_FLOW: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
)
_MARK = "__faultlens_info__"
AttrValue = str | bool | int | float


def is_control_flow(exc: BaseException) -> bool:
    """Interrupts, exits and cancellation end work on purpose: never failures, never retried."""
    return isinstance(exc, CONTROL_FLOW)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """What sinks (the journal, faultlens.testing) receive for each recorded error."""

    info: ErrorInfo
    attributes: Mapping[str, AttrValue]
    timestamp_ns: int
    trace_id: str | None
    span_id: str | None
    span_name: str | None
    service: str | None
    suppressed: int = 0


@dataclass(slots=True)
class ErrorEvent:
    """One error on its way to its span and the sinks, as processors see it.

    A processor (``faultlens.configure(processors=[...])``) may add or change
    ``attributes`` (they are scrubbed again afterwards) and returns the event, or None to
    drop it; the error is still counted in ``faultlens.errors`` and the span keeps its
    ERROR status.
    """

    exception: BaseException
    info: ErrorInfo
    attributes: dict[str, AttrValue]
    span: Span
    timestamp_ns: int
    suppressed: int = 0


# -- "recorded once" marks -----------------------------------------------------------------

# Exceptions cannot be weak-referenced; the mark lives in the exception's __dict__, with a
# small strong-ref map as the fallback for exceptions whose __dict__ is unusable.
_fallback_marks: OrderedDict[int, tuple[BaseException, ErrorInfo]] = OrderedDict()


def _get_mark(exc: BaseException) -> ErrorInfo | None:
    try:
        info = object.__getattribute__(exc, "__dict__").get(_MARK)
        if info is not None:
            return info  # type: ignore[no-any-return]
    except Exception:
        pass
    hit = _fallback_marks.get(id(exc))
    if hit is not None and hit[0] is exc:
        return hit[1]
    return None


def recorded_info(exc: BaseException) -> ErrorInfo | None:
    """The ErrorInfo an exception was recorded with, if it was."""
    return _get_mark(exc)


def _set_mark(exc: BaseException, info: ErrorInfo) -> None:
    try:
        object.__getattribute__(exc, "__dict__")[_MARK] = info
        return
    except Exception:
        pass
    _fallback_marks[id(exc)] = (exc, info)
    if len(_fallback_marks) > 256:
        _fallback_marks.popitem(last=False)


# -- the pipeline ------------------------------------------------------------------------------

_limiter: RateLimiter | None = None
_limiter_key: tuple[int, float, int] | None = None


def _rate_limiter() -> RateLimiter:
    global _limiter, _limiter_key
    lim = STATE.limits
    key = (lim.rate_limit_burst, lim.rate_limit_window, lim.max_fingerprints)
    if _limiter is None or _limiter_key != key:
        _limiter = RateLimiter(*key)
        _limiter_key = key
    return _limiter


def reset_rate_limiter() -> None:
    global _limiter
    _limiter = None


_MAX_FRAMES = 64
_MAX_CHAIN = 8
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _format_one(exc: BaseException, out: list[str]) -> None:
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    if frames:
        out.append("Traceback (most recent call last):\n")
        if len(frames) > _MAX_FRAMES:
            out.append(f"  ... {len(frames) - _MAX_FRAMES} outer frames omitted ...\n")
            frames = frames[-_MAX_FRAMES:]
        for t in frames:
            code = t.tb_frame.f_code
            lineno = t.tb_lineno
            out.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
            line = linecache.getline(code.co_filename, lineno).strip() if lineno else ""
            if line:
                out.append(f"    {line}\n")
    message = scrub.current().capped(safe_str(exc, 2048 + scrub.MARGIN), 2048)
    name = qualified_name(type(exc))
    out.append(f"{name}: {message}\n" if message else f"{name}\n")


def format_stacktrace(exc: BaseException, limit: int) -> str:
    """The formatted traceback with its cause/context chain, innermost frames kept when capped.

    Formatted here rather than by ``traceback``: Python 3.11's formatter re-parses every
    source line to draw ``^^^`` markers, which costs more than the rest of recording, and it
    calls ``str()`` on every exception in the chain unguarded. Exception groups, whose nested
    layout is worth the cost, still go through ``traceback``.
    """
    try:
        if isinstance(exc, BaseExceptionGroup):
            te = traceback.TracebackException(
                type(exc),
                exc,
                exc.__traceback__,
                limit=-_MAX_FRAMES,
                compact=True,
                max_group_width=8,
            )
            text = "".join(te.format(chain=True))
        else:
            chain: list[tuple[BaseException, str]] = []
            seen: set[int] = set()
            node: BaseException | None = exc
            link = ""
            while node is not None and id(node) not in seen and len(chain) < _MAX_CHAIN:
                seen.add(id(node))
                chain.append((node, link))
                cause = node.__cause__
                if cause is not None:
                    node, link = cause, _CAUSE
                elif node.__context__ is not None and not node.__suppress_context__:
                    node, link = node.__context__, _CONTEXT
                else:
                    node = None
            out: list[str] = []
            for node, link in reversed(chain):
                _format_one(node, out)
                if link:
                    out.append(link)
            text = "".join(out)
    except BaseException:
        try:
            text = "".join(traceback.format_tb(exc.__traceback__, limit=-_MAX_FRAMES))
        except BaseException:
            text = ""
        text += f"{qualified_name(type(exc))}: {safe_str(exc, 2048)}\n"
    # Scrubbed before it is capped, and capped without leaving a piece of a cut secret.
    return scrub.current().capped(text, limit, keep_tail=limit - limit // 8)


def _attr_value(value: Any, cap: int) -> AttrValue:
    if isinstance(value, bool | int | float) and not isinstance(value, Severity):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            return str(value)
        return value
    # Strings as they are, anything else by its repr with secret keys redacted at every
    # depth; scrubbed before capping, so no secret cut by the cap stays readable.
    return scrub.current().render(value, cap)


def _context_attributes(prefix: str, context: Mapping[str, Any], out: dict[str, AttrValue]) -> None:
    lim = STATE.limits
    scrubber = scrub.current()
    for i, (key, value) in enumerate(context.items()):
        if i >= lim.max_context_keys:
            out[prefix + "_truncated"] = len(context) - lim.max_context_keys
            break
        k = key if isinstance(key, str) else safe_str(key, 128)
        if scrubber.key_is_secret(k):
            out[prefix + k] = scrubber.replacement
        else:
            out[prefix + k] = _attr_value(value, lim.max_context_value)


def _span_name_for(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is not None:
        code = last.tb_frame.f_code
        name: str = getattr(code, "co_qualname", code.co_name)
        return name.rsplit("<locals>.", 1)[-1]
    return "faultlens.record_error"


def mark_span(span: Span, exc: BaseException, info: ErrorInfo | None = None) -> None:
    """Status ERROR and ``error.type`` on a span the exception escaped through."""
    etype = error_type(exc)
    if info is not None:
        desc = f"{info.code}: {info.message}" if info.code != etype else info.message
    else:
        desc = etype
    span.set_status(Status(StatusCode.ERROR, clean_text(desc, 256)))
    span.set_attribute("error.type", etype)


# -- the steps of recording one error, in order ------------------------------------------------


def _classify(exc: BaseException, stage: str | None, severity: Severity | None) -> ErrorInfo:
    """Classification with the scrubbed, capped message and the most specific stage: a
    FaultError's own (set where it was raised), then the caller's (record_error argument or
    the decorator's), then the enclosing capture()."""
    limit = STATE.limits.max_message
    message = scrub.current().capped(safe_str(exc, limit + scrub.MARGIN), limit)
    if isinstance(exc, FaultError) and exc.stage:
        stage = exc.stage
    elif stage is None:
        stage = current_scope().stage
    info = classify(exc, stage=stage, message=message)
    if severity is not None and severity is not info.severity:
        info = replace(info, severity=severity)
    return info


def _count(info: ErrorInfo) -> None:
    """Every error counts, rate-limited or not: the counter is what alerts key on."""
    labels: dict[str, str] = {
        "code": info.code,
        "category": str(info.category),
        "severity": info.severity.value,
    }
    if info.stage:
        labels["stage"] = info.stage
    try:
        errors_counter().add(1, labels)
    except Exception as e:
        internal_error("errors counter", e)


def _attributes(
    exc: BaseException, info: ErrorInfo, suppressed: int, extra_context: Mapping[str, Any] | None
) -> dict[str, AttrValue]:
    """The `exception` event's attributes, per the contract, every string scrubbed."""
    lim = STATE.limits
    attrs: dict[str, AttrValue] = {
        "exception.type": info.exception_type,
        "exception.message": info.message,
        "exception.stacktrace": format_stacktrace(exc, lim.max_stacktrace),  # scrubbed
        "faultlens.error.code": info.code,
        "faultlens.error.category": str(info.category),
        "faultlens.error.severity": info.severity.value,
        "faultlens.error.retryable": info.retryable,
        "faultlens.error.fingerprint": info.fingerprint,
        "faultlens.error.fingerprint_version": info.fingerprint_version,
    }
    if info.hint:
        attrs["faultlens.error.hint"] = info.hint
    if not info.known_code:
        attrs["faultlens.error.known_code"] = False
    if suppressed:
        attrs["faultlens.error.suppressed"] = suppressed
    if info.stage:
        attrs["faultlens.stage"] = info.stage
    context: Mapping[str, Any] = current_scope().context
    if extra_context:
        merged = dict(context)
        merged.update(extra_context)
        context = merged
    if context:
        _context_attributes("faultlens.context.", context, attrs)
    if isinstance(exc, FaultError) and exc.details:
        try:
            _context_attributes("faultlens.details.", exc.details, attrs)
        except Exception as e:
            internal_error("error details", e)
    if lim.resources:
        attrs.update(resources.snapshot())
    return attrs


def _process(event: ErrorEvent) -> ErrorEvent | None:
    """The user's processors, in order. One that raises is skipped (counted, logged once);
    one that returns None drops the event. What they add is scrubbed like the rest."""
    for processor in STATE.processors:
        try:
            result = processor(event)
        except Exception as e:
            internal_error(f"error processor {processor!r}", e)
            continue
        if result is None:
            count_dropped("filtered")
            return None
        event = result
    scrubber = scrub.current()
    limit = max(STATE.limits.max_context_value, STATE.limits.max_message)
    attrs = event.attributes
    for key, value in list(attrs.items()):
        if key == "exception.stacktrace" or isinstance(value, bool | int | float):
            continue  # the stack is scrubbed already and too long to scan twice
        if scrubber.key_is_secret(key.rsplit(".", 1)[-1]):
            attrs[key] = scrubber.replacement
        else:
            attrs[key] = _attr_value(value, limit)
    return event


def _publish(event: ErrorEvent) -> None:
    """The event onto its span, then to the sinks (journal, faultlens.testing)."""
    span = event.span
    span.add_event("exception", event.attributes, timestamp=event.timestamp_ns)
    sinks = STATE.sinks
    if not sinks:
        return
    ctx = span.get_span_context()
    record = ErrorRecord(
        info=event.info,
        attributes=MappingProxyType(event.attributes),
        timestamp_ns=event.timestamp_ns,
        trace_id=format(ctx.trace_id, "032x") if ctx.is_valid else None,
        span_id=format(ctx.span_id, "016x") if ctx.is_valid else None,
        span_name=getattr(span, "name", None),
        service=STATE.service_name,
        suppressed=event.suppressed,
    )
    for sink in sinks:
        try:
            sink(record)
        except Exception as e:
            internal_error(f"error sink {sink!r}", e)


def _emit(
    exc: BaseException,
    span: Span,
    stage: str | None,
    extra_context: Mapping[str, Any] | None,
    severity: Severity | None = None,
) -> ErrorInfo:
    info = _classify(exc, stage, severity)
    _set_mark(exc, info)
    _count(info)
    mark_span(span, exc, info)
    admitted, suppressed = _rate_limiter().admit(info.fingerprint)
    if not admitted:
        count_dropped("rate_limited")
        notify_suppressed(info)
        return info
    event = ErrorEvent(
        exception=exc,
        info=info,
        attributes=_attributes(exc, info, suppressed, extra_context),
        span=span,
        timestamp_ns=time.time_ns(),
        suppressed=suppressed,
    )
    if STATE.processors:
        processed = _process(event)
        if processed is None:
            return info
        event = processed
    _publish(event)
    return info


def _fallback_info(exc: object) -> ErrorInfo:
    return ErrorInfo(
        code="SYS_UNKNOWN_ERROR",
        category=Category.SYSTEM,
        severity=Severity.HIGH,
        retryable=False,
        hint="",
        fingerprint="0" * 16,
        exception_type=qualified_name(type(exc)),
        message=_fallback_message(exc),
    )


def _fallback_message(exc: object) -> str:
    try:
        return scrub.current().capped(safe_str(exc, 256 + scrub.MARGIN), 256)
    except Exception:
        return "<message withheld: it could not be scrubbed>"


def record_on_span(
    exc: BaseException,
    span: Span,
    *,
    stage: str | None = None,
    context: Mapping[str, Any] | None = None,
    severity: Severity | None = None,
) -> ErrorInfo | None:
    """Record ``exc`` on ``span`` unless it was recorded already (then only mark the span).

    ``severity`` overrides the catalog's for this occurrence (an uncaught exception that
    kills the process is critical whatever its code). Returns None for control-flow
    exceptions, which are not failures. Never raises.
    """
    try:
        if isinstance(exc, CONTROL_FLOW):
            return None
        prev = _get_mark(exc)
        if prev is not None:
            mark_span(span, exc, prev)
            return prev
        if not STATE.enabled:
            return None
        return _emit(exc, span, stage, context, severity)
    except Exception as e:
        internal_error("record_error", e)
        return None


def record_escaping(
    exc: BaseException,
    *,
    name: str,
    start_time: int,
    stage: str | None = None,
    attributes: Mapping[str, AttrValue] | None = None,
) -> None:
    """An exception escapes an errors-mode function or a capture() block: give the failing
    call its own span (child of the current one, started at the call's real start) so it
    shows in the trace, record the exception on it (or just mark it), and end it."""
    try:
        if isinstance(exc, CONTROL_FLOW) or not STATE.enabled:
            return
        span = get_tracer().start_span(name, start_time=start_time, attributes=attributes)
        try:
            record_on_span(exc, span, stage=stage)
        finally:
            span.end()
    except Exception as e:
        internal_error("record_escaping", e)


def record_error(
    exc: BaseException | None = None,
    *,
    stage: str | None = None,
    severity: Severity | str | None = None,
    **context: Any,
) -> ErrorInfo:
    """Record an exception on the current span (or a new one) and return its classification.

    Use it where you handle an error yourself but still want it seen::

        except TimeoutError as exc:
            info = faultlens.record_error(exc, stage="load", job_id=7)

    With no argument it records the exception being handled. ``severity`` overrides the
    catalog's for this occurrence. Never raises: anything faultlens cannot record is counted
    in ``faultlens.internal.dropped`` and logged once.
    """
    try:
        sev: Severity | None = None
        if severity is not None:
            try:
                sev = Severity.parse(severity)
            except ValueError as e:
                internal_error(f"record_error(severity=...): {e}")
        if exc is None:
            exc = sys.exc_info()[1]
            if exc is None:
                internal_error("record_error() called outside an except block with no exception")
                return _fallback_info(None)
        if not isinstance(exc, BaseException):
            internal_error(f"record_error() expects an exception, got {type(exc).__name__}")
            return _fallback_info(exc)
        if isinstance(exc, CONTROL_FLOW):
            return classify(exc, stage=stage)
        prev = _get_mark(exc)
        if prev is not None:
            current = trace.get_current_span()
            if current.is_recording():
                mark_span(current, exc, prev)
            return prev
        current = trace.get_current_span()
        if current.is_recording():
            info = record_on_span(exc, current, stage=stage, context=context, severity=sev)
            return info if info is not None else classify(exc, stage=stage)
        span = get_tracer().start_span(_span_name_for(exc))
        try:
            info = record_on_span(exc, span, stage=stage, context=context, severity=sev)
        finally:
            span.end()
        return info if info is not None else classify(exc, stage=stage)
    except Exception as e:
        internal_error("record_error", e)
        return _fallback_info(exc)
