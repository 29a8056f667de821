"""requests: client spans from ``opentelemetry-instrumentation-requests``, with error
statuses classified (see ``faultlens.integrations._outbound``); requests' and urllib3's
exceptions are classified by the built-in library rules (``ConnectionError`` →
``NET_CONNECTION_FAILED``, ``Timeout``/``ConnectTimeout`` → ``EXE_TIMEOUT``, ``HTTPError``
by status, ``SSLError`` → ``NET_TLS_FAILED``)."""

from __future__ import annotations

from typing import Any

from ..capture import internal_error
from ._outbound import annotate_client_span
from ._providers import late_tracer_provider

__all__ = ["instrument", "response_hook", "uninstrument"]


def response_hook(span: Any, request: Any, response: Any) -> None:
    """The instrumentor's response hook (a ``requests.Response``)."""
    annotate_client_span(
        span, getattr(response, "status_code", None), getattr(response, "headers", None)
    )


def instrument(**instrumentor_kwargs: Any) -> bool:
    """Instrument requests (the contrib's ``instrument()``), with faultlens's response hook
    unless you pass your own. Idempotent; never raises."""
    try:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
    except ImportError:
        return False
    try:
        instrumentor = RequestsInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            # no tracer_provider given: client spans go where faultlens records at each call
            instrumentor_kwargs.setdefault("tracer_provider", late_tracer_provider())
            instrumentor_kwargs.setdefault("response_hook", response_hook)
            instrumentor.instrument(**instrumentor_kwargs)
            _ours.append(True)  # switched on by faultlens: uninstrument() undoes it
        return True
    except Exception as e:
        internal_error("faultlens requests integration", e)
        return False


_ours: list[bool] = []  # non-empty: faultlens's instrument() instrumented the client


def uninstrument() -> None:
    """Undo ``instrument()``: the contrib instrumentor is switched off if ``instrument()``
    switched it on (an application's own instrumentation stays). Never raises."""
    if not _ours:
        return
    _ours.clear()
    try:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().uninstrument()
    except Exception as e:
        internal_error("faultlens requests integration", e)
