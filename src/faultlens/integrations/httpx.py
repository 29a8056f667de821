"""httpx: client spans from ``opentelemetry-instrumentation-httpx``, with error statuses
classified (see ``faultlens.integrations._outbound``); httpx's exceptions are classified by
the built-in library rules (``ConnectError`` → ``NET_CONNECTION_FAILED``, timeouts →
``EXE_TIMEOUT``, ``HTTPStatusError`` by status, 429 → ``NET_RATE_LIMITED``)."""

from __future__ import annotations

from typing import Any

from ._outbound import ClientInstrumentation, annotate_client_span

__all__ = ["instrument", "response_hook", "uninstrument"]


def response_hook(span: Any, request: Any, response: Any) -> None:
    """The instrumentor's response hook (``ResponseInfo(status_code, headers, ...)``)."""
    annotate_client_span(
        span, getattr(response, "status_code", None), getattr(response, "headers", None)
    )


async def async_response_hook(span: Any, request: Any, response: Any) -> None:
    response_hook(span, request, response)


_CLIENT = ClientInstrumentation(
    "opentelemetry.instrumentation.httpx",
    "HTTPXClientInstrumentor",
    "faultlens httpx integration",
    {"response_hook": response_hook, "async_response_hook": async_response_hook},
)


def instrument(**instrumentor_kwargs: Any) -> bool:
    """Instrument every httpx client (the contrib's ``instrument()``), with faultlens's
    response hooks unless you pass your own. Idempotent; never raises."""
    return _CLIENT.instrument(instrumentor_kwargs)


def uninstrument() -> None:
    """Undo ``instrument()``: the contrib instrumentor is switched off if ``instrument()``
    switched it on (an application's own instrumentation stays). Never raises."""
    _CLIENT.uninstrument()
