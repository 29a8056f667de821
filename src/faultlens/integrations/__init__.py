"""Web framework and HTTP client integrations, on the OpenTelemetry contrib instrumentors.

One call per framework (each an optional extra: ``pip install 'faultlens[fastapi]'``)::

    faultlens.integrations.fastapi.instrument_app(app)     # FastAPI (Starlette: .starlette)
    faultlens.integrations.flask.instrument_app(app)       # Flask
    faultlens.integrations.django.instrument()             # Django (wsgi.py, before the app)
    faultlens.integrations.httpx.instrument()              # outbound httpx / requests
    faultlens.integrations.requests.instrument()

or none at all: ``install_detected()`` (for ``faultlens run`` and the ``faultlens``
OpenTelemetry instrumentor) switches on the integration of every installed framework and
client when the process imports it. An exception that escapes a view is recorded once, on
the request's server span, classified; what the framework answers with a 4xx is counted, not
recorded (the policy is ``HttpPolicy``); ``set_request_context(user_id=...)`` adds context
to the request's error.

This package imports no framework until one is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from typing import Any

from ._http import HttpPolicy, envelope_status
from ._locks import ForkSafeLock
from ._server import _CURRENT as ACTIVE_REQUEST  # auto: its wrappers defer to the request
from ._server import set_request_context

__all__ = [
    "ACTIVE_REQUEST",
    "FRAMEWORKS",
    "HttpPolicy",
    "envelope_status",
    "install_detected",
    "set_request_context",
    "uninstall_detected",
]

_log = logging.getLogger("faultlens")

# integration -> (the modules it needs installed, the module whose import activates it).
# Django activates when its request handlers are imported (by wsgi.py, asgi.py, runserver):
# by then django.conf is complete and DJANGO_SETTINGS_MODULE is set.
FRAMEWORKS: dict[str, tuple[tuple[str, ...], str]] = {
    "fastapi": (("fastapi", "opentelemetry.instrumentation.fastapi"), "fastapi"),
    "starlette": (("starlette", "opentelemetry.instrumentation.asgi"), "starlette.applications"),
    "flask": (("flask", "opentelemetry.instrumentation.wsgi"), "flask"),
    "django": (("django", "opentelemetry.instrumentation.django"), "django.core.handlers.base"),
    "httpx": (("httpx", "opentelemetry.instrumentation.httpx"), "httpx"),
    "requests": (("requests", "opentelemetry.instrumentation.requests"), "requests"),
}

_lock = ForkSafeLock(reentrant=True)
_state: dict[str, bool | None] = {}  # None: armed, waiting for the framework's import
# wrapt's post-import hooks cannot be taken back: a hook armed before the last
# uninstall_detected() (an older epoch) does nothing when its framework is imported.
_epoch = 0


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _activate(name: str, options: dict[str, Any]) -> bool:
    """Switch one integration on; never raises (an integration that fails costs only
    itself, with one warning)."""
    with _lock:
        done = _state.get(name)
        if done is not None:
            return done
        try:
            module = importlib.import_module(f"{__name__}.{name}")
            kwargs = options if name in ("fastapi", "starlette", "flask", "django") else {}
            start = module.instrument_when_ready if name == "django" else module.instrument
            ok = bool(start(**kwargs))
        except Exception as e:
            _log.warning("faultlens: the %s integration could not start: %r", name, e)
            ok = False
        _state[name] = ok
        return ok


def _hook(name: str, options: dict[str, Any]) -> Callable[[Any], None]:
    armed = _epoch

    def on_import(_module: Any) -> None:
        with _lock:
            if armed != _epoch:
                return  # disarmed by uninstall_detected()
        _activate(name, options)

    return on_import


def install_detected(**options: Any) -> dict[str, bool | None]:
    """Switch on the integration of every installed framework/client whose contrib
    instrumentor is installed too. A framework the process has imported already is switched
    on now; the others when (and only if) the process imports them, so a process that never
    uses Django pays nothing for it being installed. ``options`` (``policy``, ``envelopes``)
    go to the frameworks' integrations.

    Returns {integration: True (on), False (failed, or nothing to do: Django without
    settings), None (armed, waiting for the import)}. Idempotent: a second call changes
    nothing. Never raises; imports no framework itself.
    """
    import wrapt

    result: dict[str, bool | None] = {}
    with _lock:
        for name, (needs, trigger) in FRAMEWORKS.items():
            if name in _state:
                result[name] = _state[name]
                continue
            if not all(_installed(m) for m in needs):
                continue
            _state[name] = None
            try:
                # called at once if the module is imported already, else right after its
                # import completes (before the importer gets the module back)
                wrapt.register_post_import_hook(_hook(name, options), trigger)
            except Exception as e:
                _log.warning("faultlens: the %s integration could not be armed: %r", name, e)
                _state[name] = False
            result[name] = _state[name]
    return result


def uninstall_detected() -> None:
    """Undo ``install_detected()``: each integration it switched on is switched off (its
    ``uninstrument()``: Flask and Starlette apps created from now on and the FastAPI
    instrumentor's new apps are no longer given faultlens, httpx and requests are
    uninstrumented; apps built meanwhile keep their middleware), and the hooks still waiting
    for a framework's import do nothing. A later ``install_detected()`` starts afresh.
    Never raises.

    What ``FaultlensInstrumentor().uninstrument()`` and ``faultlens.testing.reset()`` call,
    so an integration switched on in one test does not instrument the apps of the next."""
    global _epoch
    with _lock:
        activated = [name for name, on in _state.items() if on]
        _state.clear()
        _epoch += 1
    for name in activated:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
            stop = getattr(module, "uninstrument", None)
            if stop is not None:
                stop()
        except Exception as e:
            _log.warning("faultlens: the %s integration could not be switched off: %r", name, e)


def _reset_detected() -> None:
    """For tests: forget what install_detected() did (installed integrations stay; the
    hooks still armed do nothing)."""
    global _epoch
    with _lock:
        _state.clear()
        _epoch += 1
