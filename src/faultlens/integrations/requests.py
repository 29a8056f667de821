"""requests: client spans from ``opentelemetry-instrumentation-requests``, with error
statuses classified (see ``faultlens.integrations._outbound``); requests' and urllib3's
exceptions are classified by the built-in library rules (``ConnectionError`` →
``NET_CONNECTION_FAILED``, ``Timeout``/``ConnectTimeout`` → ``EXE_TIMEOUT``, ``HTTPError``
by status, ``SSLError`` → ``NET_TLS_FAILED``)."""

from __future__ import annotations

from typing import Any

from ._outbound import ClientInstrumentation, annotate_client_span

__all__ = ["instrument", "response_hook", "uninstrument"]


def response_hook(span: Any, request: Any, response: Any) -> None:
    """The instrumentor's response hook (a ``requests.Response``)."""
    annotate_client_span(
        span, getattr(response, "status_code", None), getattr(response, "headers", None)
    )


_CLIENT = ClientInstrumentation(
    "opentelemetry.instrumentation.requests",
    "RequestsInstrumentor",
    "faultlens requests integration",
    {"response_hook": response_hook},
)


def instrument(**instrumentor_kwargs: Any) -> bool:
    """Instrument requests (the contrib's ``instrument()``), with faultlens's response hook
    unless you pass your own. Idempotent; never raises."""
    return _CLIENT.instrument(instrumentor_kwargs)


def uninstrument() -> None:
    """Undo ``instrument()``: the contrib instrumentor is switched off if ``instrument()``
    switched it on (an application's own instrumentation stays). Never raises."""
    _CLIENT.uninstrument()
