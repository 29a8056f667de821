"""Outbound HTTP: the client span of a response with an error status carries its class.

The httpx and requests instrumentors make a client span per request and set
``http.response.status_code`` and, for 4xx/5xx, status ERROR. faultlens adds what the status
means for the caller, with the same codes ``raise_for_status()`` would classify into (the
library rules): ``faultlens.error.code`` (``NET_DEPENDENCY_ERROR`` for 5xx,
``NET_RATE_LIMITED`` for 429, ``NET_REQUEST_REJECTED`` for other 4xx),
``faultlens.error.retryable`` and, when the dependency sent one, ``faultlens.retry_after``
(seconds). Transport failures (refused, timeouts) propagate as exceptions and are classified
where they are recorded, by the same rules; so ``@retry`` and ``CircuitBreaker`` work on them
with their defaults.
"""

from __future__ import annotations

from typing import Any

from ..capture import internal_error
from ..errors import catalog

__all__ = ["ClientInstrumentation", "annotate_client_span", "code_for_status"]


def code_for_status(status: int) -> str | None:
    if status == 429:
        return "NET_RATE_LIMITED"
    if 500 <= status <= 599:
        return "NET_DEPENDENCY_ERROR"
    if 400 <= status <= 499:
        return "NET_REQUEST_REJECTED"
    return None


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        text = str(value).strip()
        return float(text) if text.isdigit() else None
    except Exception:
        return None


def annotate_client_span(span: Any, status: Any, headers: Any = None) -> None:
    """Classification attributes on a client span for an error status. Never raises."""
    try:
        if not isinstance(status, int) or isinstance(status, bool) or not span.is_recording():
            return
        code = code_for_status(status)
        if code is None:
            return
        spec = catalog.get(code)
        span.set_attribute("faultlens.error.code", code)
        if spec is not None:
            span.set_attribute("faultlens.error.retryable", spec.retryable)
        after = _retry_after(headers)
        if after is not None:
            span.set_attribute("faultlens.retry_after", after)
    except Exception as e:
        internal_error("outbound http span", e)


class ClientInstrumentation:
    """Switching one contrib HTTP-client instrumentor on and off for faultlens.

    ``instrument()`` gives the instrumentor faultlens's response hooks and a tracer provider
    resolved at each call (client spans go where faultlens records), unless the caller
    passes their own; it is idempotent and never raises. ``uninstrument()`` switches the
    instrumentor off only if faultlens switched it on, so an application's own
    instrumentation stays."""

    def __init__(self, module: str, class_name: str, label: str, hooks: dict[str, Any]) -> None:
        self._module = module
        self._class_name = class_name
        self._label = label
        self._hooks = hooks
        self._ours = False

    def _instrumentor(self) -> Any:
        import importlib

        return getattr(importlib.import_module(self._module), self._class_name)()

    def instrument(self, instrumentor_kwargs: dict[str, Any]) -> bool:
        from ._providers import late_tracer_provider

        try:
            instrumentor = self._instrumentor()
        except ImportError:
            return False
        except Exception as e:
            internal_error(self._label, e)
            return False
        try:
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor_kwargs.setdefault("tracer_provider", late_tracer_provider())
                for name, hook in self._hooks.items():
                    instrumentor_kwargs.setdefault(name, hook)
                instrumentor.instrument(**instrumentor_kwargs)
                self._ours = True
            return True
        except Exception as e:
            internal_error(self._label, e)
            return False

    def uninstrument(self) -> None:
        if not self._ours:
            return
        self._ours = False
        try:
            self._instrumentor().uninstrument()
        except Exception as e:
            internal_error(self._label, e)
