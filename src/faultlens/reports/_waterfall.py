"""Trace waterfalls in the HTML report: each top error's sample trace, fetched from
Jaeger's HTTP query API and drawn as HTML/CSS, so the self-contained report shows the
trace around the error without any UI.

- **Bounded**: at most ``MAX_TRACES`` traces, each request with a short timeout, all of
  them within a total deadline, at most ``MAX_BYTES`` read per trace and ``MAX_ROWS``
  spans drawn. A report never hangs on Jaeger and never fails because of it: a trace that
  cannot be had is shown as "trace not available: <reason>" and counted.
- **Safe**: span names, services and event fields come from whoever sent the spans. Each
  is scrubbed (``scrub_text``), capped and HTML-escaped; positions and widths are numbers
  computed here. Nothing external is loaded (the report's CSP forbids it anyway).
- **No credentials in the report**: ``https://user:pass@jaeger/`` sends ``user:pass`` as
  basic auth; the page only ever shows ``jaeger_base`` (no userinfo). Redirects are not
  followed, so the credentials never go to another host.
"""

from __future__ import annotations

import base64
import html
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..scrub import scrub_text

__all__ = [
    "MAX_BYTES",
    "MAX_ROWS",
    "MAX_TRACES",
    "REQUEST_TIMEOUT",
    "TOTAL_DEADLINE",
    "Waterfall",
    "fetch_traces",
    "parse_trace",
    "render_waterfall",
    "trace_ids_to_fetch",
    "waterfall_summary",
]

MAX_TRACES = 10  # top errors whose trace is embedded
REQUEST_TIMEOUT = 3.0  # seconds, each request (connect, and each read)
TOTAL_DEADLINE = 12.0  # seconds, all requests together
MAX_BYTES = 8 * 1024 * 1024  # read per trace
MAX_ROWS = 200  # spans drawn per trace (the exception's span is always among them)
_NAME_MAX = 160
_TEXT_MAX = 400
_GRACE = 0.25  # seconds past the deadline to collect the answer being parsed
_DEPTH_MAX = 24  # indentation levels drawn (deeper spans are drawn at this depth)
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class Event:
    offset_us: int  # from the trace's start
    name: str
    text: str
    exception: bool


@dataclass(frozen=True, slots=True)
class Span:
    span_id: str
    name: str
    service: str
    start_us: int  # from the trace's start
    duration_us: int
    depth: int
    error: bool
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Waterfall:
    trace_id: str
    duration_us: int
    spans: tuple[Span, ...]  # depth-first, children by start time
    total_spans: int


Result = Waterfall | str  # a waterfall, or why there is none


def trace_ids_to_fetch(trace_ids: Iterable[object], limit: int = MAX_TRACES) -> list[str]:
    """The distinct well-formed trace ids among ``trace_ids``, in order, at most ``limit``."""
    out: list[str] = []
    for tid in trace_ids:
        if isinstance(tid, str) and _TRACE_ID.match(tid) and tid not in out:
            out.append(tid)
            if len(out) >= limit:
                break
    return out


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the basic-auth header elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _api(jaeger_url: str) -> tuple[str, str | None] | None:
    """``(base URL for the API, Authorization header or None)``; None for a URL that is
    not http(s)."""
    try:
        parts = urlsplit(jaeger_url.strip())
        userinfo, _, host = parts.netloc.rpartition("@")
    except (ValueError, AttributeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    auth = None
    if userinfo:
        user, _, password = userinfo.partition(":")
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
        auth = f"Basic {token}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/"), auth


def fetch_traces(
    jaeger_url: str,
    trace_ids: Iterable[str | None],
    *,
    timeout: float = REQUEST_TIMEOUT,
    deadline: float = TOTAL_DEADLINE,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Result]:
    """``GET {jaeger_url}/api/traces/{id}`` for each id: ``{id: Waterfall or reason}``.
    Never raises; ``timeout`` bounds each connect and read, ``deadline`` all of it (ids
    not reached in time get "deadline exceeded"). The requests run on a daemon thread
    the caller waits for at most ``deadline`` (plus a moment): what a socket timeout does
    not bound (a hung DNS resolver) cannot hold the report either."""
    ids = trace_ids_to_fetch(trace_ids, limit=MAX_TRACES)
    api = _api(jaeger_url) if isinstance(jaeger_url, str) else None
    if api is None:
        return {tid: "the Jaeger URL is not an http(s) URL" for tid in ids}
    base, auth = api
    opener = urllib.request.build_opener(_NoRedirect)
    end = clock() + max(deadline, 0.0)
    done: dict[str, Result] = {}
    lock = threading.Lock()

    def work() -> None:
        for tid in ids:
            left = end - clock()
            if left <= 0:
                return
            try:
                url = f"{base}/api/traces/{quote(tid)}"
                body = _get(opener, url, auth, min(timeout, left), end, clock)
                got: Result = parse_trace(_json(body), tid)
            except Exception as exc:  # any failure is a reason shown, never raised
                got = _reason(exc)
            with lock:
                done[tid] = got

    worker = threading.Thread(target=work, name="faultlens-report-traces", daemon=True)
    worker.start()
    worker.join(max(deadline, 0.0) + _GRACE)
    with lock:
        return {tid: done.get(tid, "deadline exceeded") for tid in ids}


def _get(
    opener: urllib.request.OpenerDirector,
    url: str,
    auth: str | None,
    timeout: float,
    end: float,
    clock: Callable[[], float],
) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if auth:
        req.add_unredirected_header("Authorization", auth)
    with opener.open(req, timeout=timeout) as resp:
        chunks: list[bytes] = []
        size = 0
        while True:
            if clock() > end:
                raise TimeoutError("deadline exceeded")
            chunk = resp.read1(65536)  # what has arrived: read() waits for all 64 KiB
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BYTES:
                raise _Unavailable(f"trace larger than {MAX_BYTES // (1024 * 1024)} MiB")
            chunks.append(chunk)


class _Unavailable(Exception):
    pass


def _json(body: bytes) -> Any:
    """The answer decoded, or ``_Unavailable`` saying it is not JSON (checked here, not by
    the decoder's exception class, which an application reloading ``json`` can replace)."""
    try:
        return json.loads(body)
    except ValueError:
        raise _Unavailable("Jaeger's answer is not JSON") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}" + (" (trace not found)" if exc.code == 404 else "")
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return _reason(inner)
        return scrub_text(str(inner))[:200]
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out" if str(exc) != "deadline exceeded" else "deadline exceeded"
    if isinstance(exc, (_Unavailable, ValueError)):
        return scrub_text(str(exc))[:200]
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return scrub_text(exc.strerror or type(exc).__name__)[:200]
    return type(exc).__name__


def _text(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)[:limit]
    text = scrub_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    try:
        return max(int(value), 0)
    except (OverflowError, ValueError):
        return 0


def _kv(items: object) -> dict[str, object]:
    out: dict[str, object] = {}
    if isinstance(items, list):
        for kv in items:
            if isinstance(kv, Mapping) and isinstance(kv.get("key"), str):
                out[kv["key"]] = kv.get("value")
    return out


def parse_trace(doc: object, trace_id: str) -> Waterfall:
    """A Jaeger ``/api/traces/{id}`` answer as a ``Waterfall``; ``ValueError`` (with the
    reason) when it holds no such trace."""
    if not isinstance(doc, Mapping):
        raise ValueError("unexpected answer from Jaeger")
    data = doc.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            raise ValueError(_text(errors[0].get("msg", "trace not found"), 200))
        raise ValueError("trace not found")
    trace = data[0]
    raw = trace.get("spans")
    if not isinstance(raw, list) or not raw:
        raise ValueError("the trace has no spans")
    processes = trace.get("processes") if isinstance(trace.get("processes"), Mapping) else {}
    assert isinstance(processes, Mapping)

    spans: dict[str, Mapping[str, Any]] = {}
    for s in raw:
        if isinstance(s, Mapping) and isinstance(s.get("spanID"), str) and s["spanID"]:
            spans.setdefault(s["spanID"], s)
    if not spans:
        raise ValueError("the trace has no spans")
    t0 = min(_int(s.get("startTime")) for s in spans.values())
    t1 = max(_int(s.get("startTime")) + _int(s.get("duration")) for s in spans.values())

    def parent(s: Mapping[str, Any]) -> str | None:
        refs = s.get("references")
        if not isinstance(refs, list):
            return None
        ids = [
            r.get("spanID")
            for r in sorted(
                (r for r in refs if isinstance(r, Mapping)),
                key=lambda r: r.get("refType") != "CHILD_OF",
            )
        ]
        for pid in ids:
            if isinstance(pid, str) and pid in spans and pid != s.get("spanID"):
                return pid
        return None

    children: dict[str | None, list[str]] = {}
    for sid, s in spans.items():
        children.setdefault(parent(s), []).append(sid)
    for kids in children.values():
        kids.sort(key=lambda k: (_int(spans[k].get("startTime")), k))

    order: list[tuple[str, int]] = []
    seen: set[str] = set()
    roots = list(children.get(None, []))
    # A cycle of references has no root: its spans are drawn as roots, after the others.
    roots += sorted(
        (sid for sid in spans if sid not in roots), key=lambda k: _int(spans[k].get("startTime"))
    )
    for root in roots:
        stack = [(root, 0)]
        while stack:
            sid, depth = stack.pop()
            if sid in seen:
                continue
            seen.add(sid)
            order.append((sid, depth))
            stack.extend((k, depth + 1) for k in reversed(children.get(sid, [])))

    out: list[Span] = []
    for sid, depth in order:
        s = spans[sid]
        tags = _kv(s.get("tags"))
        events = []
        logs = s.get("logs")
        for log in logs if isinstance(logs, list) else []:
            if not isinstance(log, Mapping):
                continue
            fields = _kv(log.get("fields"))
            name = fields.get("event")
            exc = name == "exception" or "exception.type" in fields
            if exc:
                text = f"{fields.get('exception.type', '')}: {fields.get('exception.message', '')}"
            else:
                text = ", ".join(f"{k}={v}" for k, v in fields.items() if k != "event")
            events.append(
                Event(
                    offset_us=max(_int(log.get("timestamp")) - t0, 0),
                    name=_text(name if name is not None else "log", _NAME_MAX),
                    text=_text(text, _TEXT_MAX),
                    exception=exc,
                )
            )
        proc = processes.get(s.get("processID"))
        service = proc.get("serviceName") if isinstance(proc, Mapping) else None
        error = (
            tags.get("error") in (True, "true")
            or str(tags.get("otel.status_code", "")).upper() == "ERROR"
            or any(e.exception for e in events)
        )
        out.append(
            Span(
                span_id=_text(sid, 32),
                name=_text(s.get("operationName", ""), _NAME_MAX),
                service=_text(service or "", _NAME_MAX),
                start_us=_int(s.get("startTime")) - t0,
                duration_us=_int(s.get("duration")),
                depth=depth,
                error=error,
                events=tuple(events),
            )
        )
    return Waterfall(
        trace_id=trace_id, duration_us=max(t1 - t0, 1), spans=tuple(out), total_spans=len(out)
    )


def _dur(us: int) -> str:
    if us < 1000:
        return f"{us} \u00b5s"
    if us < 1_000_000:
        return f"{us / 1000:.3g} ms"
    return f"{us / 1_000_000:.3g} s"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(us: int, total: int) -> str:
    return f"{min(max(100.0 * us / total, 0.0), 100.0):.3f}"


def _rows(w: Waterfall, span_id: str | None) -> list[Span]:
    """The spans drawn: the first ``MAX_ROWS``, plus the exception's span when later."""
    rows = list(w.spans[:MAX_ROWS])
    if len(w.spans) > MAX_ROWS:
        keep = [
            s
            for s in w.spans[MAX_ROWS:]
            if s.span_id == span_id or any(e.exception for e in s.events)
        ][:5]
        rows.extend(keep)
    return rows


def render_waterfall(result: Result, *, span_id: str | None = None, link: str | None = None) -> str:
    """The waterfall of one trace as HTML (or "trace not available: <reason>"). The error's
    span (``span_id``, else the spans with an exception event) is highlighted, the event
    marked where it happened; error spans are red."""
    if isinstance(result, str):
        return f'<p class="wf-missing muted">trace not available: {_e(result)}</p>'
    w = result
    total = w.duration_us
    focus = {s.span_id for s in w.spans if s.span_id == span_id}
    if not focus:
        focus = {s.span_id for s in w.spans if any(e.exception for e in s.events)}
    rows = _rows(w, span_id)
    ticks = "".join(
        f'<span style="left:{q * 25}%">{_e(_dur(total * q // 4))}</span>' for q in range(5)
    )
    out = [
        f'<div class="waterfall" data-trace-id="{_e(w.trace_id)}" data-spans="{w.total_spans}">',
        f'<div class="wf-head"><span class="wf-name">{w.total_spans} spans &middot; '
        f"{_e(_dur(total))}"
        + (
            f' &middot; <a href="{_e(link)}" target="_blank" rel="noopener noreferrer">'
            "open in Jaeger</a>"
            if link
            else ""
        )
        + '</span><span class="wf-dur"></span>'
        f'<span class="wf-track wf-axis">{ticks}</span></div>',
    ]
    for i, s in enumerate(rows):
        if i == MAX_ROWS:
            out.append(
                f'<div class="wf-more muted">\u2026 {w.total_spans - MAX_ROWS} more spans '
                "not drawn</div>"
            )
        out.append(_row(s, total, s.span_id in focus))
    if len(rows) == MAX_ROWS and w.total_spans > MAX_ROWS:
        out.append(
            f'<div class="wf-more muted">\u2026 {w.total_spans - MAX_ROWS} more spans '
            "not drawn</div>"
        )
    out.append("</div>")
    return "".join(out)


def _row(s: Span, total: int, focus: bool) -> str:
    cls = "wf-row" + (" wf-error" if s.error else "") + (" wf-focus" if focus else "")
    marks = []
    for ev in s.events:
        kind = "wf-exc" if ev.exception else "wf-log"
        marks.append(
            f'<i class="{kind}" style="left:{_pct(ev.offset_us, total)}%" '
            f'title="{_e(ev.name)} at {_e(_dur(ev.offset_us))}: {_e(ev.text)}"></i>'
        )
    exc_text = next((ev.text for ev in s.events if ev.exception), None)
    row = (
        f'<div class="{cls}" data-span-id="{_e(s.span_id)}">'
        f'<span class="wf-name" style="padding-left:{min(s.depth, _DEPTH_MAX) * 12 + 4}px" '
        f'title="{_e(s.service)}: {_e(s.name)}"><b>{_e(s.service)}</b> {_e(s.name)}</span>'
        f'<span class="wf-dur">{_e(_dur(s.duration_us))}</span>'
        f'<span class="wf-track"><span class="wf-bar" style="left:{_pct(s.start_us, total)}%;'
        f'width:{_pct(s.duration_us, total)}%"></span>{"".join(marks)}</span>'
        "</div>"
    )
    if focus and exc_text is not None:
        row += f'<div class="wf-exc-text">{_e(exc_text)}</div>'
    return row


def waterfall_summary(results: Mapping[str, Result]) -> tuple[int, int]:
    """``(embedded, not available)``."""
    ok = sum(1 for r in results.values() if isinstance(r, Waterfall))
    return ok, len(results) - ok
