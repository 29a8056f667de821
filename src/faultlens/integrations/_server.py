"""One request's server span, as faultlens sees it: the framework-independent core.

The contrib instrumentor (FastAPI/ASGI, WSGI, Django) owns the server span. A framework
integration tells this module what happened during the request:

- ``begin(span, ...)`` when the request enters the application (the span is current);
- ``note(exc, handled=...)`` for each exception that escaped a view unhandled, or that a
  handler turned into a response;

and the decision is taken when the span ends, once the response status is known: each noted
exception is a failure or not by the ``HttpPolicy``; a failure is recorded **once, on the
server span** (``record_on_span``: the contract's attributes plus the request's route, method
and status as ``faultlens.context.http.*``, the span's status ERROR and ``error.type`` = the
faultlens code); anything else is counted in ``faultlens.http.handled_errors``.

Why at span end, and why the span's ``record_exception``/``end`` are wrapped (on that one
span object, for that one request): the contrib instrumentors record every escaping
exception themselves (``use_span(record_exception=True)``, FastAPI's exception middleware,
Django's ``activation.__exit__``), with the raw, unscrubbed message, and set status and
``error.type`` after any code inside the request could. faultlens must have the last word on
the span and be its only ``exception`` event, so the contrib's own recording of an exception
faultlens took charge of is skipped, and faultlens records just before the span really ends.
Exceptions faultlens did not take charge of (an app's explicit ``record_exception`` of
something else) go through unchanged. The wrapping happens when the first exception is
noted, so a request that succeeds pays for none of it. A span that cannot be wrapped (not the
SDK's) is settled by the integration when the request leaves the app (``settle()``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from .. import scrub
from ..capture import capture, internal_error, passes_through, record_error, record_on_span
from ..errors import classify, clean_text
from ._http import DEFAULT_POLICY, HttpPolicy, count_handled

__all__ = ["RequestState", "begin", "current", "note", "set_request_context"]

_CURRENT: ContextVar[RequestState | None] = ContextVar("faultlens_request", default=None)
_STATE_ATTR = "_faultlens_request"  # on the span object, beside the wrapped methods

# The request scopes, one per (route template, method): reused, since a capture object may
# be entered from many threads and tasks at once (each entry independent).
_SCOPES: dict[tuple[str | None, str | None], capture] = {}
_MAX_SCOPES = 2048

# Span attributes that may hold a query string or credentials: scrubbed before the span ends.
_URL_KEYS = ("http.target", "http.url", "url.query", "url.full")


class RequestState:
    """What faultlens knows about one request while it runs."""

    __slots__ = (
        "__weakref__",
        "_scope",
        "_token",
        "context",
        "guardable",
        "guarded",
        "method",
        "noted",
        "policy",
        "route",
        "settled",
        "span",
        "status",
    )

    def __init__(
        self, span: Span, method: str | None, route: str | None, policy: HttpPolicy
    ) -> None:
        self.span = span
        self.method = method
        self.route = route
        self.policy = policy
        self.status: int | None = None
        self.noted: list[tuple[BaseException, bool]] = []
        self.context: dict[str, Any] = {}
        self.settled = False
        self.guardable = False
        self.guarded = False
        self._scope: capture | None = None
        self._token: Token[RequestState | None] | None = None

    # -- the request's context for everything recorded during it ----------------------------

    def request_context(self) -> dict[str, Any]:
        ctx: dict[str, Any] = {}
        if self.route:
            ctx["http.route"] = self.route
        if self.method:
            ctx["http.request.method"] = self.method
        return ctx

    def enter(self) -> None:
        """Make this the current request (for ``set_request_context``) and give every error
        recorded during it (``capture()`` blocks, ``record_error``, ``@instrument``) the route
        and method. Pair with ``leave()`` in the same context."""
        try:
            self._token = _CURRENT.set(self)
            key = (self.route, self.method)
            scope = _SCOPES.get(key)
            if scope is None:
                scope = capture(**self.request_context())
                if len(_SCOPES) < _MAX_SCOPES:  # route templates x methods: a few hundred
                    _SCOPES[key] = scope
            scope.__enter__()  # one capture object may be entered by many requests at once
            self._scope = scope
        except Exception as e:
            internal_error("request scope", e)

    def leave(self) -> None:
        try:
            if self._scope is not None:
                scope, self._scope = self._scope, None
                scope.__exit__(None, None, None)  # leave the scope; never records here
            if self._token is not None:
                token, self._token = self._token, None
                _CURRENT.reset(token)
        except Exception as e:
            internal_error("request scope", e)

    def set_route(self, route: str | None) -> None:
        if route and route != self.route:
            self.route = route

    @property
    def settle_at_leave(self) -> bool:
        """The integration settles when the request leaves the app: the span's ``end``
        cannot be wrapped, so the decision cannot wait for it."""
        return not self.guardable

    # -- the decision, once the status is known ------------------------------------------------

    def settle(self) -> None:
        """Record or count what was noted; idempotent. Runs just before the span ends."""
        if self.settled:
            return
        self.settled = True
        span = self.span
        if not self.noted:  # the common case: a request without an exception
            return
        attrs = _attributes(span)
        status = self.status
        for key in ("http.response.status_code", "http.status_code"):
            value = attrs.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                status = value
                break
        route = self.route or _str(attrs.get("http.route"))
        method = self.method or _str(attrs.get("http.request.method") or attrs.get("http.method"))
        seen: set[int] = set()
        for exc, handled in self.noted:
            if id(exc) in seen or passes_through(exc):
                continue
            seen.add(id(exc))
            try:
                info = classify(exc)
            except Exception as e:
                internal_error("request error classification", e)
                continue
            if not self.policy.is_failure(info, status, handled=handled):
                count_handled(info, route, method, status)
                continue
            context: dict[str, Any] = {}
            if route:
                context["http.route"] = route
            if method:
                context["http.request.method"] = method
            context["http.response.status_code"] = status if status is not None else 500
            context.update(self.context)
            if span.is_recording():
                recorded = record_on_span(exc, span, context=context)
                code = recorded.code if recorded is not None else info.code
                try:
                    span.set_attribute("error.type", clean_text(code, 256))
                except Exception as e:
                    internal_error("server span error.type", e)
            else:
                record_error(exc, **context)


def _attributes(span: Span) -> Mapping[str, Any]:
    try:
        attrs = getattr(span, "attributes", None)
        return attrs if isinstance(attrs, Mapping) else {}
    except Exception:
        return {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _scrub_url_attributes(span: Span, attrs: Mapping[str, Any]) -> None:
    """Secrets in a URL's query string or userinfo never leave on the server span."""
    try:
        for key in _URL_KEYS:
            value = attrs.get(key)
            # only a query string or userinfo can hold a secret: a bare path is left alone
            if isinstance(value, str) and ("?" in value or "@" in value):
                cleaned = scrub.current().text(value)
                if cleaned != value:
                    span.set_attribute(key, cleaned)
    except Exception as e:
        internal_error("server span url scrub", e)


def _guard(state: RequestState) -> bool:
    """Wrap this span object's ``record_exception`` and ``end`` (see the module docstring)."""
    span = state.span
    try:
        original_record: Callable[..., Any] = span.record_exception
        original_end: Callable[..., Any] = span.end
    except Exception:
        return False

    def record_exception(exception: BaseException, *args: Any, **kwargs: Any) -> Any:
        if any(exception is exc for exc, _ in state.noted):
            return None  # faultlens records it (or counts it) when the span ends
        return original_record(exception, *args, **kwargs)

    def end(*args: Any, **kwargs: Any) -> Any:
        try:
            state.settle()
        except Exception as e:
            internal_error("request settle", e)
        return original_end(*args, **kwargs)

    try:
        span.record_exception = record_exception  # type: ignore[method-assign]
        span.end = end  # type: ignore[method-assign]
    except Exception:
        return False
    return True


def begin(
    span: Span | None = None,
    *,
    method: str | None = None,
    route: str | None = None,
    policy: HttpPolicy | None = None,
    query: bool = True,
) -> RequestState | None:
    """Take charge of the request whose server span is ``span`` (default: the current span).
    ``route``: the route template if the integration knows it (else the span's
    ``http.route``, if the instrumentor set it already); ``query``: whether the request had
    a query string (the span's URL attributes are scrubbed only then). Returns the state, or
    None when there is no recording span (then nothing is recorded on a server span: errors
    go through ``record_error`` on a span of their own). Never raises."""
    try:
        span = span if span is not None else trace.get_current_span()
        if not span.is_recording():
            return None
        existing = getattr(span, _STATE_ATTR, None)
        if isinstance(existing, RequestState):
            existing.set_route(route)
            return existing
        attrs: Mapping[str, Any] | None = None
        if route is None:
            attrs = _attributes(span)
            route = _str(attrs.get("http.route"))
        state = RequestState(span, method, route, policy or DEFAULT_POLICY)
        # Wrapped only once an exception is noted: a request that succeeds costs no wrapper.
        state.guardable = hasattr(span, "__dict__")
        if query:
            _scrub_url_attributes(span, attrs if attrs is not None else _attributes(span))
        return state
    except Exception as e:
        internal_error("request begin", e)
        return None


def current() -> RequestState | None:
    """The request being handled here: the one entered in this context, else the one whose
    server span is current."""
    state = _CURRENT.get()
    if state is not None:
        return state
    try:
        found = getattr(trace.get_current_span(), _STATE_ATTR, None)
        return found if isinstance(found, RequestState) else None
    except Exception:
        return None


def note(exc: BaseException, *, handled: bool, state: RequestState | None = None) -> None:
    """An exception escaped a view (``handled=False``) or a handler turned it into the
    response (``handled=True``). Never raises."""
    try:
        state = state or current()
        if state is None or state.settled:
            return
        if not any(exc is e for e, _ in state.noted):
            state.noted.append((exc, handled))
        if state.guardable and not state.guarded:
            state.guarded = _guard(state)
            if state.guarded:
                setattr(state.span, _STATE_ATTR, state)
            else:
                state.guardable = False  # settled when the request leaves the app
    except Exception as e:
        internal_error("request note", e)


def set_request_context(**values: Any) -> None:
    """Add context (a user id, a tenant) to the current request: it goes on the failure
    recorded on the server span and into the journal, scrubbed like all context. Outside a
    request it does nothing. Never raises."""
    try:
        state = current()
        if state is not None:
            state.context.update(values)
    except Exception as e:
        internal_error("set_request_context", e)
