"""Django: classified request errors on ``opentelemetry-instrumentation-django``'s span.

::

    # settings.py is read by then, e.g. in wsgi.py / manage.py before the application loads
    faultlens.integrations.django.instrument()

(``envelopes=True``: unhandled exceptions answered with ``faultlens.to_api_envelope`` JSON
instead of Django's 500 page; its 404/403/400 answers stay Django's) or list the middleware
yourself, innermost (last), with the contrib's instrumentor on::

    MIDDLEWARE = [..., "faultlens.integrations.django.FaultlensMiddleware"]

Django turns every exception a view raises into a response (``Http404`` → 404,
``PermissionDenied`` → 403, ``SuspiciousOperation`` → 400, anything else → 500 and the
``got_request_exception`` signal). The middleware notes each one (``process_exception``, and
the signal for exceptions raised outside views); the server span settles them when the
contrib's middleware ends it, with the response's status: failures recorded once on it, the
rest counted (``faultlens.integrations._http``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..capture import internal_error, to_api_envelope
from ..errors import classify, is_http_answer
from . import _server
from ._http import HttpPolicy, envelope_status
from ._locks import ForkSafeLock
from ._providers import late_tracer_provider

__all__ = ["MIDDLEWARE", "FaultlensMiddleware", "instrument", "instrument_when_ready"]

MIDDLEWARE = "faultlens.integrations.django.FaultlensMiddleware"

_lock = ForkSafeLock()
_policy: HttpPolicy | None = None
_options: dict[str, Any] = {}


def _envelope(exc: Exception) -> Any:
    from django.http import JsonResponse

    try:
        status, headers = envelope_status(exc, classify(exc))
        response = JsonResponse(to_api_envelope(exc), status=status)
        for key, value in headers.items():
            response[key] = value
        return response
    except Exception as e:
        internal_error("api envelope", e)
        return None  # Django's own error view answers


_signal_connected = False


def _on_exception(sender: Any, request: Any = None, **_: Any) -> None:
    import sys

    exc = sys.exc_info()[1]
    if exc is not None:
        _server.note(exc, handled=False)


class FaultlensMiddleware:
    """Notes the exceptions of each request for its server span (sync and async views)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        _connect_signal()

    def __call__(self, request: Any) -> Any:
        meta = getattr(request, "META", None) or {}
        state = _server.begin(
            method=getattr(request, "method", None),
            policy=_policy,
            query=bool(meta.get("QUERY_STRING")),
        )
        if state is None:
            return self.get_response(request)
        state.enter()
        try:
            return self.get_response(request)
        finally:
            try:
                match = getattr(request, "resolver_match", None)
                route = getattr(match, "route", None)
                if isinstance(route, str) and route:
                    state.set_route(route)
            except Exception as e:
                internal_error("django route", e)
            state.leave()
            if state.settle_at_leave:
                state.settle()

    def process_exception(self, request: Any, exception: Exception) -> Any:
        _server.note(exception, handled=False)
        if _options.get("envelopes") and not is_http_answer(exception):
            return _envelope(exception)
        return None  # Django answers as without faultlens (its 404/403/400/500 views)


def _connect_signal() -> None:
    global _signal_connected
    with _lock:
        if _signal_connected:
            return
        from django.core.signals import got_request_exception

        got_request_exception.connect(_on_exception, weak=False, dispatch_uid="faultlens")
        _signal_connected = True


def _settings_ready() -> bool:
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        return True
    try:
        from django.conf import settings

        return bool(settings.configured)
    except Exception:
        return False


_deferred: dict[str, Any] = {}


def instrument_when_ready(*, policy: HttpPolicy | None = None, envelopes: bool = False) -> bool:
    """``instrument()`` now if the settings are known, else just before Django loads its
    middleware (the first request handler it builds: a ``wsgi.py`` names its settings module
    only after importing Django). What ``install_detected()`` calls. Never raises."""
    if _settings_ready():
        return instrument(policy=policy, envelopes=envelopes)
    try:
        from django.core.handlers.base import BaseHandler

        with _lock:
            if "load_middleware" in _deferred:
                return True
            original = BaseHandler.load_middleware

            def load_middleware(self: Any, *args: Any, **kwargs: Any) -> Any:
                with _lock:
                    if BaseHandler.load_middleware is load_middleware:
                        BaseHandler.load_middleware = original  # type: ignore[method-assign]
                        _deferred.pop("load_middleware", None)
                        instrument(policy=policy, envelopes=envelopes)
                return original(self, *args, **kwargs)

            _deferred["load_middleware"] = original
            BaseHandler.load_middleware = load_middleware  # type: ignore[method-assign]
        return True
    except Exception as e:
        internal_error("faultlens django integration", e)
        return False


def instrument(
    *, policy: HttpPolicy | None = None, envelopes: bool = False, **instrumentor_kwargs: Any
) -> bool:
    """The contrib's Django instrumentor (unless on already) and faultlens's middleware,
    innermost. Needs the settings module (``DJANGO_SETTINGS_MODULE``): without it nothing is
    done (the contrib would configure empty settings; see ``instrument_when_ready``).
    Idempotent for the instrumentor and the middleware; each call sets ``policy`` and
    ``envelopes`` for the process. Never raises."""
    global _policy
    if not _settings_ready():
        return False
    try:
        from django.conf import settings
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        _policy = policy
        _options["envelopes"] = envelopes
        instrumentor = DjangoInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            # no tracer_provider given: spans go where faultlens records at each request
            instrumentor_kwargs.setdefault("tracer_provider", late_tracer_provider())
            instrumentor.instrument(**instrumentor_kwargs)
        middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
        if MIDDLEWARE not in middleware:
            middleware.append(MIDDLEWARE)
            settings.MIDDLEWARE = middleware
        return True
    except Exception as e:
        internal_error("faultlens django integration", e)
        return False
