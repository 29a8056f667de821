"""Starlette (and so FastAPI) apps: classified request errors on the server span.

``instrument_app(app)`` adds one pure-ASGI middleware (outermost of the app's own
middleware, inside Starlette's error middleware) and observes the app's exception handlers:

- an exception escaping the views (and the app's middleware added before it) is noted as
  unhandled; Starlette still answers 500 (or what the app's ``Exception`` handler answers)
  and still re-raises it to the server, exactly as without faultlens;
- an exception a handler turns into a response (``HTTPException(404)``,
  ``RequestValidationError`` → 422, the app's own handlers) is noted as handled;
- the server span (the ASGI instrumentor's) settles them when it ends: failures recorded
  once on it, the rest counted (``faultlens.integrations._http``).

``envelopes=True`` also answers unhandled exceptions with ``faultlens.to_api_envelope(exc)``
JSON (status from the error's category, ``Retry-After`` from an open breaker, the trace id
in ``meta``) instead of Starlette's plain "Internal Server Error".

The server span itself comes from the contrib instrumentor: the FastAPI instrumentor for
FastAPI apps (``faultlens.integrations.fastapi``), for a plain Starlette app the ASGI
instrumentor's ``OpenTelemetryMiddleware``, which ``instrument_app`` puts around the whole
stack. Without a recording span, failures are still recorded, on a span of their own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from ..capture import internal_error, record_error, to_api_envelope
from ..errors import classify
from . import _server
from ._http import HttpPolicy, envelope_status
from ._providers import late_tracer_provider

__all__ = [
    "FaultlensASGIMiddleware",
    "envelope_handler",
    "instrument",
    "instrument_app",
    "observe_handler",
    "uninstrument",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MARK = "__faultlens_observed__"


def _route_of(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else None


class FaultlensASGIMiddleware:
    """Notes the exceptions that escape the app for the request's server span."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        policy: HttpPolicy | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self._options = options if options is not None else {"policy": policy}

    @property
    def policy(self) -> HttpPolicy | None:
        policy: HttpPolicy | None = self._options.get("policy")
        return policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method") if isinstance(scope.get("method"), str) else None
        state = _server.begin(
            method=method, policy=self.policy, query=bool(scope.get("query_string"))
        )
        if state is None:  # no server span: failures get a span of their own
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                ctx: dict[str, Any] = {"http.request.method": method} if method else {}
                route = _route_of(scope)
                if route:
                    ctx["http.route"] = route
                record_error(exc, **ctx)
                raise
            return
        state.enter()
        observed_send = send
        if state.settle_at_leave:  # else the status is read from the span when it ends

            async def observed_send(message: Message) -> None:
                if message.get("type") == "http.response.start":
                    status = message.get("status")
                    if isinstance(status, int):
                        state.status = status
                await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception as exc:
            _server.note(exc, handled=False, state=state)
            if state.status is None:
                state.status = 500
            raise
        finally:
            if state.noted:
                state.set_route(_route_of(scope))
            state.leave()
            if state.settle_at_leave:
                state.settle()


def _is_async(handler: Any) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an async __call__ method
    )


def observe_handler(handler: Callable[..., Any]) -> Callable[..., Any]:
    """An exception handler that notes the exception it answers (same sync/async kind)."""
    if getattr(handler, _MARK, False):
        return handler
    if _is_async(handler):

        async def async_observed(request: Any, exc: BaseException) -> Any:
            _server.note(exc, handled=True)
            return await handler(request, exc)

        observed: Callable[..., Any] = async_observed
    else:

        def sync_observed(request: Any, exc: BaseException) -> Any:
            _server.note(exc, handled=True)
            return handler(request, exc)

        observed = sync_observed
    try:
        functools.update_wrapper(observed, handler)
    except Exception:
        pass
    setattr(observed, _MARK, True)
    return observed


def _observe_handlers(stack: Any, app: Any) -> None:
    """Observe the handlers that turn exceptions into responses: those of the stack's
    ``ExceptionMiddleware`` (Starlette's own ``HTTPException`` answer included, and every
    handler the app registered), found by following the middleware chain; else those the
    app registered. Not the 500/``Exception`` one: what reaches it escaped the views and is
    noted by the middleware."""
    try:
        from starlette.middleware.exceptions import ExceptionMiddleware

        node, depth = stack, 0
        while node is not None and depth < 64:
            if isinstance(node, ExceptionMiddleware):
                for name in ("_exception_handlers", "_status_handlers"):
                    handlers = getattr(node, name, None)
                    if isinstance(handlers, dict):
                        for key, handler in list(handlers.items()):
                            if callable(handler):
                                handlers[key] = observe_handler(handler)
                return
            node, depth = getattr(node, "app", None), depth + 1
        handlers = app.exception_handlers  # a middleware that hides its inner app
        for key, handler in list(handlers.items()):
            if key in (500, Exception) or not callable(handler):
                continue
            handlers[key] = observe_handler(handler)
    except Exception as e:
        internal_error("starlette exception handlers", e)


async def envelope_handler(request: Any, exc: Exception) -> Any:
    """``faultlens.to_api_envelope(exc)`` as JSON, with the status the error's category
    calls for (and ``Retry-After`` for an open breaker)."""
    from starlette.responses import JSONResponse

    try:
        status, headers = envelope_status(exc, classify(exc))
        body = to_api_envelope(exc)
    except Exception as e:  # never let the error page fail
        internal_error("api envelope", e)
        status, headers, body = 500, {}, {"ok": False, "error": {"code": "SYS_UNKNOWN_ERROR"}}
    return JSONResponse(body, status_code=status, headers=headers)


def _span_details(app: Any) -> Callable[[Scope], tuple[str, dict[str, Any]]]:
    """The ASGI instrumentor's span name and ``http.route`` from the app's route table (as
    the FastAPI instrumentor does): ``GET /items/{item_id}``, or the method alone when no
    route matches (a scanner's random paths do not become span names)."""
    from opentelemetry.instrumentation.asgi import get_default_span_details
    from starlette.routing import Match

    def details(scope: Scope) -> tuple[str, dict[str, Any]]:
        name, attributes = get_default_span_details(cast(dict[str, Any], scope))
        if scope.get("type") != "http":
            return name, attributes
        method = name.split(" ", 1)[0]
        try:
            for route in getattr(app, "routes", ()):
                match, _ = route.matches(scope)
                if match == Match.FULL:
                    path = getattr(route, "path", None)
                    if isinstance(path, str) and path:
                        return f"{method} {path}", {**attributes, "http.route": path}
                    break
        except Exception as e:
            internal_error("starlette route for the span name", e)
        return method, attributes

    return details


def instrument_app(
    app: Any,
    *,
    policy: HttpPolicy | None = None,
    envelopes: bool = False,
    **middleware_kwargs: Any,
) -> Any:
    """Classified request errors for a Starlette/FastAPI app. Call it before the app serves
    its first request (like ``add_middleware``). Idempotent; a later call with a ``policy``
    or ``envelopes=True`` (an app ``faultlens run`` instrumented already) sets them.

    An app no contrib instrumentor instrumented (a plain Starlette app: no release of the
    Starlette instrumentor matches the SDK) gets its server span from the ASGI instrumentor's
    ``OpenTelemetryMiddleware`` around the whole stack, named by route;
    ``middleware_kwargs`` go to it (``tracer_provider``, ``meter_provider``, ...)."""
    options: dict[str, Any] | None = getattr(app, "_faultlens_options", None)
    if options is not None:
        if policy is not None:
            options["policy"] = policy
        if envelopes and not options.get("envelopes"):
            app.add_exception_handler(Exception, envelope_handler)
            options["envelopes"] = True
        return app
    options = {"policy": policy, "envelopes": envelopes}
    app.add_middleware(FaultlensASGIMiddleware, options=options)
    if envelopes:
        app.add_exception_handler(Exception, envelope_handler)
    original_build = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        stack = original_build()
        _observe_handlers(stack, app)  # when the stack is built, every handler is registered
        if getattr(app, "_is_instrumented_by_opentelemetry", False):
            return stack  # the FastAPI instrumentor's span (its stack is built above)
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        # outermost, like the FastAPI instrumentor's: Starlette's 500 answer is inside the span
        kwargs = {
            "default_span_details": _span_details(app),
            # spans go where faultlens records at the time of each request
            "tracer_provider": late_tracer_provider(),
            **middleware_kwargs,
        }
        return OpenTelemetryMiddleware(stack, **kwargs)

    app.build_middleware_stack = build_middleware_stack
    app._faultlens_options = options
    app._faultlens_instrumented = True
    return app


_installed: dict[str, Any] = {}


def instrument(*, policy: HttpPolicy | None = None, envelopes: bool = False) -> bool:
    """Every Starlette app created from now on is instrumented as by ``instrument_app``
    (FastAPI apps are the FastAPI integration's). Idempotent; never raises; returns whether
    Starlette is covered."""
    try:
        from starlette.applications import Starlette
    except ImportError:
        return False
    try:
        if "init" in _installed:
            return True
        original = Starlette.__init__

        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            try:
                instrument_app(self, policy=policy, envelopes=envelopes)
            except Exception as e:
                internal_error("faultlens starlette integration", e)

        _installed["init"] = original
        Starlette.__init__ = __init__  # type: ignore[method-assign]
        return True
    except Exception as e:
        internal_error("faultlens starlette integration", e)
        return False


def uninstrument() -> None:
    """Undo ``instrument()`` (apps created meanwhile stay instrumented)."""
    original = _installed.pop("init", None)
    if original is not None:
        from starlette.applications import Starlette

        Starlette.__init__ = original  # type: ignore[method-assign]
