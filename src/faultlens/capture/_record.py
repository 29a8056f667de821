"""record_error(): one exception -> one classified `exception` event, counted and bounded.

The pipeline for one error is a few small steps (classify, fingerprint, rate-limit, scrub,
snapshot resources, emit); every step is guarded so that instrumentation never raises into
user code. An exception is recorded once: the first span it is recorded on marks it, and
every later span it escapes through only gets status ERROR and ``error.type``. The marks live
outside the exception (``_marks.py``), so recording changes nothing the application can see.

Recording is resumable: the count in ``faultlens.errors`` comes first and happens once per
exception whatever fails after it; an event that fails part-way (out of stack deep in a
recursion, a hostile attribute, a broken exporter) leaves the exception unmarked, so the next
span it escapes through records it. An error raised at the recursion limit is recorded on a
fresh stack, never by raising the limit (``_stack.py``).

Exception groups are one failure: a group is counted once, as its most severe member, and
its members are then covered (re-raised alone, or in the smaller group ``except*`` leaves
behind, they are not counted again). A group whose members were all recorded already (each
failing task of an ``asyncio.TaskGroup`` recorded by its own instrumented function) adds no
count and no event: it only marks the spans it escapes through.
"""

from __future__ import annotations

import asyncio
import hashlib
import linecache
import logging
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from .. import resources, scrub
from ..errors import OWN_FILES as _OWN_FILES
from ..errors import (
    Category,
    ErrorInfo,
    FaultError,
    Severity,
    catalog,
    classify,
    clean_text,
    error_type,
    is_own_frame,
    qualified_name,
    safe_str,
)
from ._context import current_scope
from ._fork import ensure_fork_hook, on_fork_child
from ._marks import DONE, MARKS, Mark
from ._ratelimit import RateLimiter, notify_suppressed
from ._stack import on_fresh_stack, short_of_stack
from ._state import STATE
from ._telemetry import count_dropped, count_error, get_tracer, internal_error

__all__ = [
    "CONTROL_FLOW",
    "ITERATION_END",
    "PASS_THROUGH",
    "ErrorEvent",
    "RecordedError",
    "escaped",
    "is_control_flow",
    "mark_span",
    "passes_through",
    "record_error",
    "record_escaping",
    "record_on_span",
    "record_uncaught",
    "recorded_info",
]

_log = logging.getLogger("faultlens")

CONTROL_FLOW: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
)
# The end of an iteration, not a failure: StopIteration / StopAsyncIteration escaping a
# ``__next__``/``__anext__``, or a helper they call (which ``faultlens run`` may have wrapped).
# An explicit record_error() of one still records it, and one that ends the process is a crash.
ITERATION_END: tuple[type[BaseException], ...] = (StopIteration, StopAsyncIteration)
# What the wrappers (@instrument, capture(), auto-instrumentation) let through unrecorded.
PASS_THROUGH: tuple[type[BaseException], ...] = CONTROL_FLOW + ITERATION_END
AttrValue = str | bool | int | float
# Members of an exception group looked at (whether all were recorded already), and covered
# once the group is counted (each cover is a mark; the strong store holds at most 1024).
_MAX_GROUP_MEMBERS = 4096
_MAX_GROUP_COVER = 512


def is_control_flow(exc: BaseException) -> bool:
    """Interrupts, exits and cancellation end work on purpose: never failures, never retried."""
    return isinstance(exc, CONTROL_FLOW)


def _group_members(group: BaseExceptionGroup[BaseException]) -> tuple[list[BaseException], bool]:
    """The nested groups and leaves of ``group`` (bounded), and whether that is all of them."""
    out: list[BaseException] = []
    stack: list[BaseException] = list(group.exceptions)
    seen = {id(group)}
    while stack:
        if len(out) >= _MAX_GROUP_MEMBERS:
            return out, False
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        out.append(exc)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
    return out, True


def passes_through(
    exc: BaseException, skip: tuple[type[BaseException], ...] = PASS_THROUGH
) -> bool:
    """Whether ``exc`` goes through a wrapper unrecorded: an instance of ``skip``, or an
    exception group made only of such (a group of cancellations is no failure either)."""
    if isinstance(exc, skip):
        return True
    if not isinstance(exc, BaseExceptionGroup):
        return False
    try:
        members, complete = _group_members(exc)
    except Exception:
        return False
    leaves = [m for m in members if not isinstance(m, BaseExceptionGroup)]
    return complete and bool(leaves) and all(isinstance(m, skip) for m in leaves)


@dataclass(frozen=True, slots=True)
class RecordedError:
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


# -- "recorded once" marks (kept outside the exception: see _marks.py) -------------------------


def recorded_info(exc: BaseException) -> ErrorInfo | None:
    """The ErrorInfo an exception was recorded with, if it was."""
    mark = MARKS.get(exc)
    return mark.info if mark is not None and mark.counted else None


# -- the pipeline ------------------------------------------------------------------------------

_limiter: RateLimiter | None = None
_limiter_key: tuple[int, float, int] | None = None


_limiter_limits: Any = None  # the Limits object the limiter was last checked against


def _rate_limiter() -> RateLimiter:
    global _limiter, _limiter_key, _limiter_limits
    lim = STATE.limits
    if lim is _limiter_limits and _limiter is not None:
        return _limiter  # the same (frozen) Limits: nothing to compare
    key = (lim.rate_limit_burst, lim.rate_limit_window, lim.max_fingerprints)
    if _limiter is None or _limiter_key != key:
        ensure_fork_hook()
        _limiter = RateLimiter(*key)
        _limiter_key = key
    _limiter_limits = lim
    return _limiter


def reset_rate_limiter() -> None:
    global _limiter
    _limiter = None


# In a forked child: a fresh limiter (its lock may be held by a thread that is not there,
# and the parent's suppressed counts are the parent's to report).
on_fork_child(reset_rate_limiter)


_MAX_FRAMES = 64
_MAX_CHAIN = 8
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


# The formatted frames of one traceback, per chain of code locations: (scrubber, code and
# line of each frame) -> (the scrubber and code objects, kept alive so no id in the key is
# reused while the entry lives; the text as formatted; the same text scrubbed). A storm of
# one error, or a hot failing endpoint, formats and scrubs its stack once.
_BLOCKS: dict[tuple[Any, ...], tuple[tuple[Any, ...], str, str]] = {}
_MAX_BLOCKS = 512
# The "Type: message" line of recent exceptions: (scrubber, type, message) -> as formatted
# and scrubbed (the message is read every time; formatting and scrubbing it happen once).
_LINES: dict[tuple[Any, ...], tuple[Any, str, str]] = {}
_MAX_BLOCK_FRAMES = 256  # deeper tracebacks are formatted without the cache
_MAX_BLOCK_CHARS = 2_000_000  # memory bound of the cache whatever the stacks' depth
_blocks_chars = 0


def _frames_block(exc: BaseException, scrubber: scrub.Scrubber) -> tuple[str, str]:
    """The "Traceback ..." part of ``exc``'s formatted stack (faultlens's own frames left
    out, the innermost ``_MAX_FRAMES`` kept), as formatted and as scrubbed."""
    # The key: each frame's code object and line (not its last instruction alone: a
    # traceback made with types.TracebackType carries any line), faultlens's own frames
    # included (left out of the text below), so that a hit walks the chain only once.
    ids: list[Any] = [id(scrubber)]
    append = ids.append
    tb = exc.__traceback__
    room = _MAX_BLOCK_FRAMES
    while tb is not None and room:
        append(id(tb.tb_frame.f_code))
        append(tb.tb_lineno)
        tb = tb.tb_next
        room -= 1
    key: tuple[Any, ...] | None = None
    if tb is None:
        key = tuple(ids)
        hit = _BLOCKS.get(key)
        if hit is not None:
            return hit[1], hit[2]
    frames = []
    every = []
    own = _OWN_FILES
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        every.append(code)
        # faultlens's own frames (the wrappers) are not part of the application's traceback.
        mine = own.get(code.co_filename)
        if mine is None:
            mine = is_own_frame(code.co_filename)
        if not mine:
            frames.append(tb)
        tb = tb.tb_next
    if key is not None and ids[1::2] != [id(c) for c in every]:
        key = None  # the chain changed meanwhile (a traceback's tb_next is writable)
    if not frames:
        return "", ""
    out = ["Traceback (most recent call last):\n"]
    shown = frames
    if len(frames) > _MAX_FRAMES:
        out.append(f"  ... {len(frames) - _MAX_FRAMES} outer frames omitted ...\n")
        shown = frames[-_MAX_FRAMES:]
    for t in shown:
        code = t.tb_frame.f_code
        lineno = t.tb_lineno
        out.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
        line = linecache.getline(code.co_filename, lineno).strip() if lineno else ""
        if line:
            out.append(f"    {line}\n")
    raw = "".join(out)
    clean = scrubber.text(raw)
    if not clean.isascii():
        clean = clean_text(clean, len(clean))
    if key is not None:
        global _blocks_chars
        size = len(raw) + len(clean)
        if len(_BLOCKS) >= _MAX_BLOCKS or _blocks_chars + size > _MAX_BLOCK_CHARS:
            _BLOCKS.clear()
            _blocks_chars = 0
        # The scrubber and code objects kept alive: no id in the key can be reused meanwhile.
        _BLOCKS[key] = ((scrubber, *every), raw, clean)
        _blocks_chars += size
    return raw, clean


def _format_one(
    exc: BaseException, raw: list[str], clean: list[str], scrubber: scrub.Scrubber
) -> None:
    """One exception of the chain: its frames, then ``Type: message``; appended as
    formatted to ``raw`` and, scrubbed piece by piece, to ``clean``."""
    block, block_clean = _frames_block(exc, scrubber)
    if block:
        raw.append(block)
        clean.append(block_clean)
    text = safe_str(exc, 2048 + scrub.MARGIN)
    key = (id(scrubber), type(exc), text) if len(text) <= _MAX_CACHED_MESSAGE else None
    hit = _LINES.get(key) if key is not None else None
    if hit is not None:
        raw.append(hit[1])
        clean.append(hit[2])
        return
    message = scrubber.capped(text, 2048)
    name = qualified_name(type(exc))
    line = f"{name}: {message}\n" if message else f"{name}\n"
    line_clean = scrubber.text(line)  # "Type: message" can read as a key=value pair
    raw.append(line)
    clean.append(line_clean)
    if key is not None:
        if len(_LINES) >= _MAX_BLOCKS:
            _LINES.clear()
        _LINES[key] = (scrubber, line, line_clean)  # the scrubber kept: its id stays unique


def _drop_own_frames(te: traceback.TracebackException, seen: set[int]) -> None:
    """faultlens's frames out of a formatted group's traceback, members and chain included."""
    if id(te) in seen or len(seen) > 256:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not is_own_frame(f.filename)]
    )
    for sub in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if sub is not None:
            _drop_own_frames(sub, seen)


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
            _drop_own_frames(te, set())
            text = "".join(te.format(chain=True))
        else:
            chain: list[tuple[BaseException, str]] = []
            seen: set[int] = set()
            node: BaseException | None = exc
            link = ""
            if exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__):
                chain.append((exc, ""))  # the usual case: no chain to follow
                node = None
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
            scrubber = scrub.current()
            raw: list[str] = []
            clean: list[str] = []
            for node, link in reversed(chain):
                _format_one(node, raw, clean, scrubber)
                if link:
                    raw.append(link)
                    clean.append(link)
            # Scrubbed piece by piece (each frame block once per code location, cached):
            # returned as it is when it fits; a longer one is scrubbed and capped whole.
            text = "".join(clean)
            if len(text) <= limit:
                return text
            text = "".join(raw)
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
        k = clean_text(key, 128) if isinstance(key, str) else safe_str(key, 128)
        if scrubber.key_is_secret(k):
            out[prefix + k] = scrubber.replacement
        else:
            out[prefix + k] = _attr_value(value, lim.max_context_value)


def _span_name_for(exc: BaseException) -> str:
    """The innermost application frame's function (a faultlens frame, such as the breaker
    raising CircuitOpenError, only if there is nothing else)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        if last is None or not is_own_frame(tb.tb_frame.f_code.co_filename):
            last = tb
        tb = tb.tb_next
    if last is not None:
        code = last.tb_frame.f_code
        name: str = getattr(code, "co_qualname", code.co_name)
        return clean_text(name.rsplit("<locals>.", 1)[-1], 256)
    return "faultlens.record_error"


def mark_span(span: Span, exc: BaseException, info: ErrorInfo | None = None) -> None:
    """Status ERROR and ``error.type`` on a span the exception escaped through."""
    etype = error_type(exc)
    _set_error_status(span, etype, info)
    span.set_attribute("error.type", clean_text(etype, 256))


# The ERROR status of recent classifications (a Status is immutable, so spans may share
# one): id of the info -> (the info, kept alive so its id stays unique; the error type; the
# status).
_STATUSES: dict[int, tuple[ErrorInfo, str, Status]] = {}


def _set_error_status(span: Span, etype: str, info: ErrorInfo | None) -> None:
    if info is None:
        span.set_status(Status(StatusCode.ERROR, clean_text(etype, 256)))
        return
    hit = _STATUSES.get(id(info))
    if hit is None or hit[0] is not info or hit[1] != etype:
        desc = f"{info.code}: {info.message}" if info.code != etype else info.message
        hit = (info, etype, Status(StatusCode.ERROR, clean_text(desc, 256)))
        if len(_STATUSES) >= _MAX_INFOS:
            _STATUSES.clear()
        _STATUSES[id(info)] = hit
    span.set_status(hit[2])


# -- the steps of recording one error, in order ------------------------------------------------


# Classifications of recent errors, by everything an ErrorInfo is computed from: the
# exception type, a FaultError's code, the traceback's chain of code objects (what the
# fingerprint's prefix is made of: see errors/_fingerprint.py), the raw message, the stage and
# severity override, the message cap, the scrubber, the catalog entry the code resolves to
# and a FaultError's own hint. A storm of one error, or a hot failing endpoint with a constant
# message, classifies, scrubs and fingerprints it once. The code is looked up on every call
# (a catalog predicate may read anything of the exception, its message too), so the entry
# the key holds is the one in force for this exception. The type, code objects, scrubber
# and catalog entry are kept alive by the entry, so their ids in the key stay unique.
_INFOS: dict[tuple[Any, ...], tuple[Any, ErrorInfo]] = {}
_MAX_INFOS = 1024
_MAX_CACHED_MESSAGE = 512
_MAX_KEY_FRAMES = 256  # deeper tracebacks are classified without the cache
_KEY_HEAD = 9  # the items of a key before the code objects' ids


def _classify(exc: BaseException, stage: str | None, severity: Severity | None) -> ErrorInfo:
    """Classification with the scrubbed, capped message and the most specific stage: a
    FaultError's own (set where it was raised), then the caller's (record_error argument or
    the decorator's), then the enclosing capture()."""
    limit = STATE.limits.max_message
    raw = safe_str(exc, limit + scrub.MARGIN)
    fault = exc if isinstance(exc, FaultError) else None
    if fault is not None and fault.stage:
        stage = fault.stage
    elif stage is None:
        stage = current_scope().stage
    scrubber = scrub.current()
    key: tuple[Any, ...] | None = None
    spec: Any = None
    if len(raw) <= _MAX_CACHED_MESSAGE and not isinstance(exc, BaseExceptionGroup):
        hint = fault._hint if fault is not None else None
        fcode = fault.code if fault is not None else None
        if (
            (hint is None or type(hint) is str)
            and (stage is None or type(stage) is str)
            and (fcode is None or (type(fcode) is str and len(fcode) <= 256))
        ):
            # code_for(exc), without the call: the code of a FaultError is its own.
            code = fcode if fault is not None else catalog.match(exc)
            spec, _ = catalog.resolve(code)  # type: ignore[arg-type]  # as code_for's
            # What the fingerprint's prefix is computed from, walked here once (not once
            # more for a prefix cache): the type, the code, each frame's code object.
            ids: list[Any] = [
                raw,
                stage,
                severity,
                limit,
                id(scrubber),
                id(spec),
                hint,
                fcode,
                id(type(exc)),
            ]
            try:
                node = exc.__traceback__
                append = ids.append
                room = _MAX_KEY_FRAMES
                while node is not None:
                    append(id(node.tb_frame.f_code))
                    node = node.tb_next
                    room -= 1
                    if not room:  # deeper tracebacks are classified without the cache
                        ids = []
                        break
            except Exception:  # a hostile ``__traceback__``: classified uncached
                ids = []
            if ids:
                key = tuple(ids)
                hit = _INFOS.get(key)
                if hit is not None:
                    return hit[1]
    message = scrubber.capped(raw, limit)
    info = classify(exc, stage=stage, message=message)
    if severity is not None and severity is not info.severity:
        info = replace(info, severity=severity)
    info = _clean_info(info)
    if key is not None:
        # The code objects of the key's ids, kept alive with the entry (walked again only
        # here, on a miss; cached only if the chain is still the one the key was made of).
        codes: list[Any] = []
        node = exc.__traceback__
        while node is not None and len(codes) < _MAX_KEY_FRAMES:
            codes.append(node.tb_frame.f_code)
            node = node.tb_next
        if [id(c) for c in codes] == list(key[_KEY_HEAD:]):
            if len(_INFOS) >= _MAX_INFOS:
                _INFOS.clear()
            _INFOS[key] = ((scrubber, spec, type(exc), codes), info)
    return info


# Caps for the strings of an ErrorInfo that become labels and attributes.
_CLEAN_CAPS = (("code", 256), ("exception_type", 512), ("stage", 256), ("hint", 1024))


def _clean_info(info: ErrorInfo) -> ErrorInfo:
    """Every string of ``info`` as valid, capped UTF-8: a code, a class qualname or a stage
    with lone surrogates would break the OTLP encoder and Prometheus labels."""
    changes: dict[str, str] = {}
    for name, cap in _CLEAN_CAPS:
        value = getattr(info, name)
        if isinstance(value, str) and not (
            type(value) is str and value.isascii() and len(value) <= cap
        ):
            changes[name] = clean_text(value, cap)
    return replace(info, **changes) if changes else info  # type: ignore[arg-type]


def _classify_safely(exc: BaseException, stage: str | None, severity: Severity | None) -> ErrorInfo:
    """Classify, or when the exception defeats classification (a hostile attribute), fall
    back to its type alone: an error is counted in every case."""
    try:
        return _classify(exc, stage, severity)
    except RecursionError:
        raise  # out of stack: recorded again on a fresh stack (_stack.py)
    except Exception as e:
        return _unclassifiable(exc, stage, severity, e)


def _unclassifiable(
    exc: BaseException, stage: str | None, severity: Severity | None, error: Exception
) -> ErrorInfo:
    internal_error("classify", error)
    info = _fallback_info(exc)
    if isinstance(stage, str):
        info = replace(info, stage=stage)
    if severity is not None:
        info = replace(info, severity=severity)
    return _clean_info(info)


# The ``faultlens.errors`` labels of an ErrorInfo, per ErrorInfo (classifications are
# cached, so a storm's errors share one): id -> (the info, kept alive so its id stays unique;
# code, category, severity, stage).
_LABELS: dict[int, tuple[ErrorInfo, tuple[str, str, str, str | None]]] = {}


def _labels(info: ErrorInfo) -> tuple[str, str, str, str | None]:
    category = info.category
    if not (type(category) is str and category.isascii() and len(category) <= 128):
        category = clean_text(str(category), 128)
    return (info.code, category, str(info.severity), info.stage or None)


def _count(info: ErrorInfo) -> None:
    """Every error counts, rate-limited or not: the counter is what alerts key on."""
    try:
        hit = _LABELS.get(id(info))
        if hit is None or hit[0] is not info:
            hit = (info, _labels(info))
            if len(_LABELS) >= _MAX_INFOS:
                _LABELS.clear()
            _LABELS[id(info)] = hit
        count_error(*hit[1])
    except RecursionError:
        raise  # out of stack: counted again on a fresh stack (_stack.py)
    except Exception as e:
        internal_error("errors counter", e)


# The attributes an ErrorInfo alone decides, per ErrorInfo (classifications are cached, so
# a storm's errors share one): id -> (the info, kept alive so its id stays unique; the dict).
_STATIC: dict[int, tuple[ErrorInfo, dict[str, AttrValue]]] = {}


def _info_attributes(info: ErrorInfo) -> dict[str, AttrValue]:
    attrs: dict[str, AttrValue] = {
        "exception.type": info.exception_type,
        "exception.message": info.message,
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
    if info.stage:
        attrs["faultlens.stage"] = info.stage
    return attrs


def _attributes(
    exc: BaseException, info: ErrorInfo, suppressed: int, extra_context: Mapping[str, Any] | None
) -> dict[str, AttrValue]:
    """The `exception` event's attributes, per the contract, every string scrubbed."""
    lim = STATE.limits
    static = _STATIC.get(id(info))
    if static is None or static[0] is not info:
        static = (info, _info_attributes(info))
        if len(_STATIC) >= _MAX_INFOS:
            _STATIC.clear()
        _STATIC[id(info)] = static
    attrs: dict[str, AttrValue] = {
        "exception.stacktrace": format_stacktrace(exc, lim.max_stacktrace),  # scrubbed
        **static[1],
    }
    if suppressed:
        attrs["faultlens.error.suppressed"] = suppressed
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
        if not isinstance(result, ErrorEvent) or not isinstance(result.attributes, dict):
            internal_error(f"error processor {processor!r} returned {type(result).__name__}")
            continue
        event = result
    scrubber = scrub.current()
    limit = max(STATE.limits.max_context_value, STATE.limits.max_message)
    attrs = event.attributes
    for key, value in list(attrs.items()):
        if type(key) is not str or not key.isascii():  # what a processor added: clean keys too
            del attrs[key]
            key = clean_text(key, 256) if isinstance(key, str) else safe_str(key, 256)
            attrs[key] = value
        if key == "exception.stacktrace" or isinstance(value, bool | int | float):
            continue  # the stack is scrubbed already and too long to scan twice
        if scrubber.key_is_secret(key.rsplit(".", 1)[-1]):
            attrs[key] = scrubber.replacement
        else:
            attrs[key] = _attr_value(value, limit)
    return event


def _signal(
    span: Span, exc: BaseException, attributes: dict[str, AttrValue], timestamp_ns: int
) -> None:
    """The error as the configured exceptions signal: the ``exception`` span event, a log
    record in the span's context, or both (``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``)."""
    if STATE.span_events:
        span.add_event("exception", attributes, timestamp=timestamp_ns)
    logs = STATE.exception_logs
    if logs is not None:
        logs(span, exc, attributes, timestamp_ns)


def _publish(event: ErrorEvent) -> None:
    """The event onto its span, then to the sinks (journal, faultlens.testing). The sinks'
    record is built first: once the event is on the span, nothing can fail before the sinks
    get it (and a retry could not add the event twice)."""
    span = event.span
    sinks = STATE.sinks
    record: RecordedError | None = None
    if sinks:
        ctx = span.get_span_context()
        record = RecordedError(
            info=event.info,
            attributes=MappingProxyType(event.attributes),
            timestamp_ns=event.timestamp_ns,
            trace_id=format(ctx.trace_id, "032x") if ctx.is_valid else None,
            span_id=format(ctx.span_id, "016x") if ctx.is_valid else None,
            span_name=clean_text(str(getattr(span, "name", "") or ""), 256) or None,
            service=STATE.service_name,
            suppressed=event.suppressed,
        )
    _signal(span, event.exception, event.attributes, event.timestamp_ns)
    if record is None:
        return
    for sink in sinks:
        try:
            sink(record)
        except Exception as e:
            internal_error(f"error sink {sink!r}", e)


def _new_mark(exc: BaseException, stage: str | None, severity: Severity | None) -> Mark:
    """The mark of an exception seen for the first time (another thread may win the race:
    then its mark is returned)."""
    if isinstance(exc, BaseExceptionGroup) and _members_recorded(exc):
        return MARKS.add(exc, Mark(None, covered=True))
    return MARKS.add(exc, Mark(_classify_safely(exc, stage, severity)))


def _members_recorded(group: BaseExceptionGroup[BaseException]) -> bool:
    """Every failure in ``group`` was recorded already (or is covered by the group it was
    split from by ``except*``): the group itself is then no new failure."""
    members, complete = _group_members(group)
    if not complete:
        return False
    leaves = [m for m in members if not isinstance(m, BaseExceptionGroup)]
    for leaf in leaves:
        if isinstance(leaf, CONTROL_FLOW):
            continue
        mark = MARKS.get(leaf)
        if mark is None or not mark.counted:
            return False
    return bool(leaves)


def _cover_members(group: BaseExceptionGroup[BaseException]) -> None:
    """The group was counted: its members are part of that one failure."""
    members, _ = _group_members(group)
    for member in members[:_MAX_GROUP_COVER]:
        if MARKS.get(member) is None:
            MARKS.add(member, Mark(None, covered=True))


def _new_owned_mark(exc: BaseException, stage: str | None) -> tuple[Mark, bool]:
    """Like :func:`_new_mark`, with both steps already claimed by the caller when its mark
    is the one stored (the second value): it must then finish or release both."""
    if isinstance(exc, BaseExceptionGroup) and _members_recorded(exc):
        return MARKS.add(exc, Mark(None, covered=True)), False
    mine = Mark(_classify_safely(exc, stage, None), False, True)  # claimed
    mark = MARKS.add(exc, mine)
    return mark, mark is mine


def _ensure_counted(exc: BaseException, mark: Mark, owned: bool = False) -> None:
    """Count the error in ``faultlens.errors``, once per exception, before anything that
    could fail (a span, the event): the count is what alerts key on. ``owned``: the step
    is claimed already."""
    if not owned and not MARKS.claim(mark, "count"):
        return
    try:
        if mark.info is not None:
            _count(mark.info)
        if isinstance(exc, BaseExceptionGroup):
            _cover_members(exc)
    except BaseException:
        MARKS.release(mark, "count")
        raise
    mark.count = DONE  # MARKS.finish(mark, "count"), without the call


def _emit(
    exc: BaseException,
    span: Span,
    mark: Mark,
    extra_context: Mapping[str, Any] | None,
    owned: bool = False,
) -> ErrorInfo | None:
    """The ``exception`` event of a counted error, onto ``span``: emitted, rate-limited or
    filtered, decided once. A failure part-way leaves it to the next span. ``owned``: the
    event step is claimed already (a mark this recorder made)."""
    info = mark.info
    if info is None:
        return info
    if not owned and not MARKS.claim(mark, "event"):
        return info
    try:
        if mark.admission is None:
            mark.admission = _rate_limiter().admit(info.fingerprint)
        admitted, suppressed = mark.admission
        if not admitted:
            count_dropped("rate_limited")
            notify_suppressed(info)  # the journal's exact tally of what is not written in full
            MARKS.finish(mark, "event")
            return info
        attributes = _attributes(exc, info, suppressed, extra_context)
        if not STATE.processors and not STATE.sinks:
            # Nobody else sees the event: straight onto the span (what _publish does).
            _signal(span, exc, attributes, time.time_ns())
            MARKS.finish(mark, "event")
            return info
        event = ErrorEvent(
            exception=exc,
            info=info,
            attributes=attributes,
            span=span,
            timestamp_ns=time.time_ns(),
            suppressed=suppressed,
        )
        if STATE.processors:
            processed = _process(event)
            if processed is None:
                MARKS.finish(mark, "event")
                return info
            event = processed
        _publish(event)
    except BaseException:
        MARKS.release(mark, "event")
        raise
    MARKS.finish(mark, "event")
    return info


def _suppressed(mark: Mark, owned: bool = False) -> bool:
    """The rate limit, decided before an errors-mode span is made: an error suppressed by it
    (counted in ``faultlens.errors`` and ``faultlens.internal.dropped{reason=rate_limited}``,
    tallied by the sinks) gets no span of its own. That span would carry no event, only
    repeat what the window's first ``burst`` spans of the fingerprint show, and cost as much
    as the rest of the error: a storm must not multiply it. The trace stays honest: every span
    the exception escapes through (a traced function's, a server span) still gets status
    ERROR and ``error.type``, and the next recorded event carries the suppressed count.
    ``owned``: the event step is claimed already (a mark this recorder made); when the
    error is admitted, it stays claimed for the caller's :func:`_emit`."""
    info = mark.info
    if info is None or (mark.admission is not None and mark.admission[0]):
        return False
    if mark.admission is None:
        limiter = _rate_limiter()
        if limiter.burst <= 0:  # no limit (rate_limit=0): every error is admitted
            mark.admission = (True, 0)
            return False
        if not owned and not MARKS.claim(mark, "event"):
            return False  # decided elsewhere (another thread) or already done
        try:
            mark.admission = admission = limiter.admit(info.fingerprint)
            if not admission[0]:
                count_dropped("rate_limited")
                if STATE.sinks:
                    notify_suppressed(info)  # the journal's exact tally of what is not written
                mark.event = DONE  # MARKS.finish(mark, "event"), without the call
                return True
        except BaseException:
            MARKS.release(mark, "event")
            raise
        if not owned:
            MARKS.release(mark, "event")  # admitted: the event is emitted on the span, below
        return False
    return not mark.admission[0]


def _count_and_admit(exc: BaseException, mark: Mark) -> bool:
    """:func:`_ensure_counted` then :func:`_suppressed`, for a mark this recorder made (both
    steps claimed, nothing decided yet) in one call: every failure of an instrumented
    function takes this path, and in a storm most end here. True: suppressed (counted,
    tallied as dropped, its event decided); False: admitted, the event step still claimed.
    A failure part-way leaves the step it was in claimed, for the caller to release."""
    info = mark.info
    if info is None:  # pragma: no cover - a mark made for a covered group is never owned
        _ensure_counted(exc, mark, True)
        return False
    try:  # _count(info), inlined
        hit = _LABELS.get(id(info))
        if hit is None or hit[0] is not info:
            hit = (info, _labels(info))
            if len(_LABELS) >= _MAX_INFOS:
                _LABELS.clear()
            _LABELS[id(info)] = hit
        count_error(*hit[1])
    except RecursionError:
        raise  # out of stack: counted again on a fresh stack (_stack.py)
    except Exception as e:
        internal_error("errors counter", e)
    if isinstance(exc, BaseExceptionGroup):
        _cover_members(exc)
    mark.count = DONE
    limiter = _limiter
    if limiter is None or STATE.limits is not _limiter_limits:
        limiter = _rate_limiter()
    if limiter.burst <= 0:  # no limit (rate_limit=0): every error is admitted
        mark.admission = _ADMITTED
        return False
    mark.admission = admission = limiter.admit(info.fingerprint)
    if admission[0]:
        return False
    count_dropped("rate_limited")
    if STATE.sinks:
        notify_suppressed(info)  # the journal's exact tally of what is not written
    mark.event = DONE
    return True


_ADMITTED = (True, 0)


def _record(
    exc: BaseException,
    span: Span,
    stage: str | None,
    context: Mapping[str, Any] | None,
    severity: Severity | None,
    skip: tuple[type[BaseException], ...],
) -> ErrorInfo | None:
    if passes_through(exc, skip):
        return None
    mark = MARKS.get(exc)
    if mark is None:
        if not STATE.enabled:
            return None
        mark = _new_mark(exc, stage, severity)
    _ensure_counted(exc, mark)
    mark_span(span, exc, mark.info)
    if mark.done or not STATE.enabled:
        return mark.info
    return _emit(exc, span, mark, context)


def _guarded(where: str, step: Callable[..., Any], *args: Any) -> Any:
    """Run a recording step; never raise. Close to the recursion limit, or out of stack
    part-way (an error raised deep in a recursion, often a RecursionError itself), it runs
    on a fresh stack instead, never with a raised limit (``_stack.py``): the marks make that
    run finish what the first left undone, nothing twice."""
    try:
        if short_of_stack():
            return on_fresh_stack(where, step, args)
        return step(*args)
    except RecursionError:
        pass
    except Exception as e:
        internal_error(where, e)
        return None
    try:
        return on_fresh_stack(where, step, args)
    except RecursionError:
        return None  # not even the stack to hand it off: the next span out records it


def _fallback_info(exc: object) -> ErrorInfo:
    """What is known of an exception that defeated classification: its type."""
    name = qualified_name(type(exc))
    return ErrorInfo(
        code="SYS_UNKNOWN_ERROR",
        category=Category.SYSTEM,
        severity=Severity.HIGH,
        retryable=False,
        hint="",
        # One group per type (not one for every unclassifiable error of any type).
        fingerprint=hashlib.blake2b(f"fallback\x1f{name}".encode(), digest_size=8).hexdigest(),
        exception_type=name,
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
    skip: tuple[type[BaseException], ...] = CONTROL_FLOW,
) -> ErrorInfo | None:
    """Record ``exc`` on ``span`` unless it was recorded already (then only mark the span).

    ``severity`` overrides the catalog's for this occurrence (an uncaught exception that
    kills the process is critical whatever its code). ``skip``: exceptions that are no
    failure here (control flow by default; wrappers add the end of iteration and their
    ``ignore=``). Returns None for those, and for a group whose members were all recorded
    already. Never raises.
    """
    result: ErrorInfo | None = _guarded(
        "record_error", _record, exc, span, stage, context, severity, skip
    )
    return result


def _escaping(
    exc: BaseException,
    name: str,
    start_time: int,
    stage: str | None,
    attributes: Mapping[str, AttrValue] | None,
    skip: tuple[type[BaseException], ...],
) -> None:
    if not STATE.enabled or isinstance(exc, skip):
        return
    if isinstance(exc, BaseExceptionGroup):
        if passes_through(exc, skip):
            return
        mark = MARKS.get(exc)
        owned = False
        if mark is None:
            mark, owned = _new_owned_mark(exc, stage)
    else:
        mark = MARKS.get(exc)
        owned = False
        if mark is None:
            # _new_owned_mark(exc, stage), inlined: the path of every failure.
            try:
                info = _classify(exc, stage, None)
            except RecursionError:
                raise  # out of stack: recorded again on a fresh stack (_stack.py)
            except Exception as e:
                info = _unclassifiable(exc, stage, None, e)
            mine = Mark(info, False, True)  # claimed
            mark = MARKS.add(exc, mine)
            owned = mark is mine
    try:
        # Counted before the span exists: a tracer that fails costs the event, never the
        # count.
        if not owned:
            _ensure_counted(exc, mark)
            if _suppressed(mark):
                return
        elif _count_and_admit(exc, mark):
            return  # suppressed by the rate limit
    except BaseException:
        if owned:  # a step left half-done is the next span's to complete
            MARKS.release(mark, "count")
            MARKS.release(mark, "event")
        raise
    # Owned and admitted, the event step is still claimed: emitted below, or released on
    # any failure (a tracer that raises too) for the next span the exception escapes through.
    try:
        # The span is ours: ``error.type`` goes in with its start attributes (cheaper than a
        # set_attribute afterwards), then the status; what mark_span does.
        etype = error_type(exc)
        span_attrs: dict[str, AttrValue] = dict(attributes) if attributes else {}
        span_attrs["error.type"] = clean_text(etype, 256)
        span = get_tracer().start_span(
            clean_text(name, 256), start_time=start_time, attributes=span_attrs
        )
        try:
            # What _record does once the exception is marked and counted (done above).
            _set_error_status(span, etype, mark.info)
            if not STATE.enabled:
                if owned:
                    MARKS.release(mark, "event")
            elif owned:
                _emit(exc, span, mark, None, owned=True)
            elif not mark.done:
                _emit(exc, span, mark, None)
        finally:
            span.end()
    except BaseException:
        if owned:
            MARKS.release(mark, "event")  # a no-op once the event was decided
        raise


def record_escaping(
    exc: BaseException,
    *,
    name: str,
    start_time: int,
    stage: str | None = None,
    attributes: Mapping[str, AttrValue] | None = None,
    skip: tuple[type[BaseException], ...] = PASS_THROUGH,
) -> None:
    """An exception escapes an errors-mode function or a capture() block: give the failing
    call its own span (child of the current one, started at the call's real start) so it
    shows in the trace, record the exception on it (or just mark it), and end it. Never
    raises."""
    _guarded("record_escaping", _escaping, exc, name, start_time, stage, attributes, skip)


def escaped(
    exc: BaseException,
    name: str,
    start_time: int,
    stage: str | None,
    skip: tuple[type[BaseException], ...],
) -> None:
    """:func:`record_escaping` with positional arguments and no span attributes: the call
    the @instrument wrappers make on their failure path (the cheapest way in: what
    :func:`_guarded` does, without its frame and argument tuple)."""
    try:
        if not short_of_stack():
            _escaping(exc, name, start_time, stage, None, skip)
            return
        on_fresh_stack("record_escaping", _escaping, (exc, name, start_time, stage, None, skip))
        return
    except RecursionError:
        pass
    except Exception as e:
        internal_error("record_escaping", e)
        return
    try:
        on_fresh_stack("record_escaping", _escaping, (exc, name, start_time, stage, None, skip))
    except RecursionError:
        pass  # not even the stack to hand it off: the next span out records it


def reset_caches() -> None:
    """Forget the hot path's caches (formatted stacks, classifications, the attributes,
    ``faultlens.errors`` labels and span status of an ErrorInfo). They never change what is
    recorded (every key holds what its result depends on); this only frees their memory."""
    global _blocks_chars
    _BLOCKS.clear()
    _blocks_chars = 0
    _LINES.clear()
    _INFOS.clear()
    _STATIC.clear()
    _LABELS.clear()
    _STATUSES.clear()


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
        current = trace.get_current_span()
        if current.is_recording():
            info = record_on_span(exc, current, stage=stage, context=context, severity=sev)
            return info if info is not None else _info_of(exc, stage)
        mark = MARKS.get(exc)
        if mark is not None and mark.done:
            return mark.info or _info_of(exc, stage)  # recorded; no span here to mark
        info = _guarded("record_error", _record_on_new_span, exc, stage, context, sev)
        return info if info is not None else _info_of(exc, stage)
    except Exception as e:
        internal_error("record_error", e)
        return _fallback_info(exc)


def _record_on_new_span(
    exc: BaseException,
    stage: str | None,
    context: Mapping[str, Any] | None,
    severity: Severity | None,
) -> ErrorInfo | None:
    mark = MARKS.get(exc)
    if mark is None:
        if not STATE.enabled:
            return None
        mark = _new_mark(exc, stage, severity)
    _ensure_counted(exc, mark)  # before the span: a tracer that fails costs only the event
    span = get_tracer().start_span(_span_name_for(exc))
    try:
        return _record(exc, span, stage, context, severity, CONTROL_FLOW)
    finally:
        span.end()


def _info_of(exc: BaseException, stage: str | None) -> ErrorInfo:
    """What record_error returns for an exception it did not (or not itself) record."""
    info = recorded_info(exc)
    if info is not None:
        return info
    try:
        return _clean_info(classify(exc, stage=stage))
    except Exception:
        return _fallback_info(exc)


# -- the crash record (the uncaught-exception hooks of faultlens.auto) --------------------------


def record_uncaught(exc: BaseException, **context: Any) -> ErrorInfo | None:
    """Record ``exc`` as a crash: it ended the process (or a thread, or reached an asyncio
    loop's exception handler). Severity ``critical`` and context ``uncaught=True`` whatever
    the code's usual severity, so that critical alerts fire for crashes.

    An exception recorded before, on its way out of an instrumented function, keeps that
    record (the failure where it happened, with its catalog severity) and the crash is added
    as a record of its own, on its own span: a counter cannot be corrected after the fact
    and the journal is append-only, so such a crash counts once under its catalog severity
    and once as ``critical``. A crash record is never rate-limited away. Control-flow
    exceptions are no crash (None). Never raises.
    """
    result: ErrorInfo | None = _guarded(
        "record_uncaught", _record_crash, exc, {**context, "uncaught": True}
    )
    return result


def _record_crash(exc: BaseException, context: Mapping[str, Any]) -> ErrorInfo | None:
    if passes_through(exc, CONTROL_FLOW) or not STATE.enabled:
        return None
    mark = MARKS.get(exc)
    if mark is None:  # the usual case: nothing recorded it on its way out
        return _record_on_new_span(exc, None, context, Severity.CRITICAL)
    if mark.info is None:  # a group whose members were recorded: the group is the crash
        info = _classify_safely(exc, None, Severity.CRITICAL)
    else:
        info = replace(mark.info, severity=Severity.CRITICAL)
    crash = Mark(info)  # the crash's own mark, not stored: the exception keeps its record
    crash.admission = (True, 0)
    _count(info)
    MARKS.finish(crash, "count")
    span = get_tracer().start_span(_span_name_for(exc))
    try:
        mark_span(span, exc, info)
        return _emit(exc, span, crash, context)
    finally:
        span.end()
