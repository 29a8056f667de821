"""Web framework and HTTP client integrations, on the OpenTelemetry contrib instrumentors.

One call per framework (each an optional extra: ``pip install 'faultlens[fastapi]'``)::

    faultlens.integrations.fastapi.instrument_app(app)     # FastAPI (Starlette: .starlette)
    faultlens.integrations.flask.instrument_app(app)       # Flask
    faultlens.integrations.django.instrument()             # Django (before settings load)
    faultlens.integrations.httpx.instrument()              # outbound httpx / requests
    faultlens.integrations.requests.instrument()

or none at all: ``install_detected()`` (what ``faultlens run`` and the ``faultlens``
OpenTelemetry instrumentor call) switches on the integration of every framework and client
that is installed. An exception that escapes a view is recorded once, on the request's server
span, classified; what the framework answers with a 4xx is counted, not recorded (the policy
is ``HttpPolicy``); ``set_request_context(user_id=...)`` adds context to the request's error.

This package imports no framework until one is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from typing import Any

from ._http import HttpPolicy, envelope_status
from ._server import set_request_context

__all__ = [
    "FRAMEWORKS",
    "HttpPolicy",
    "envelope_status",
    "install_detected",
    "set_request_context",
]

_log = logging.getLogger("faultlens")

# integration module -> the distributions it needs (a top-level module each)
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "fastapi": ("fastapi", "opentelemetry.instrumentation.fastapi"),
    "flask": ("flask", "opentelemetry.instrumentation.wsgi"),
    "django": ("django", "opentelemetry.instrumentation.django"),
    "httpx": ("httpx", "opentelemetry.instrumentation.httpx"),
    "requests": ("requests", "opentelemetry.instrumentation.requests"),
}

_lock = threading.Lock()
_active: dict[str, bool] = {}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_detected(**options: Any) -> dict[str, bool]:
    """Switch on the integration of every installed framework/client whose contrib
    instrumentor is installed too; ``options`` (``policy``, ``envelopes``) go to the
    frameworks'. Idempotent (a second call changes nothing) and never raises. Returns
    {integration: active}. Does not import a framework that is not installed."""
    result: dict[str, bool] = {}
    with _lock:
        for name, needs in FRAMEWORKS.items():
            if name in _active:
                result[name] = _active[name]
                continue
            if not all(_installed(m) for m in needs):
                continue
            try:
                module = importlib.import_module(f"{__name__}.{name}")
                if name in ("fastapi", "flask"):
                    kwargs = options
                elif name == "django":  # no envelope option: Django's error views answer
                    kwargs = {k: v for k, v in options.items() if k == "policy"}
                else:
                    kwargs = {}
                ok = bool(module.instrument(**kwargs))
            except Exception as e:  # an integration that fails costs only itself
                _log.warning("faultlens: the %s integration could not start: %r", name, e)
                ok = False
            _active[name] = ok
            result[name] = ok
    return result


def _reset_detected() -> None:
    """For tests: forget what install_detected() did (the integrations stay installed)."""
    with _lock:
        _active.clear()
