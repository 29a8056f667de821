"""FastAPI: the contrib instrumentor's server span, with faultlens's classified errors on it.

::

    app = FastAPI()
    faultlens.integrations.fastapi.instrument_app(app)             # one call
    faultlens.integrations.fastapi.instrument_app(app, envelopes=True,
        policy=faultlens.integrations.HttpPolicy(failed_categories={"network"}))

``instrument_app`` applies ``opentelemetry-instrumentation-fastapi`` to the app (unless it is
instrumented already) and then faultlens's Starlette layer (``.starlette``). ``instrument()``
does the same for every FastAPI app: it extends the contrib instrumentor's per-app hook, so
apps the contrib instruments (``opentelemetry-instrument``, ``faultlens run``) get faultlens
too, without patching FastAPI itself.
"""

from __future__ import annotations

from typing import Any

from ..capture import internal_error
from . import starlette as _starlette
from ._http import HttpPolicy
from ._locks import ForkSafeLock
from ._providers import late_tracer_provider

__all__ = ["instrument", "instrument_app", "uninstrument"]

_lock = ForkSafeLock()
_installed: dict[str, Any] = {}


def instrument_app(
    app: Any,
    *,
    policy: HttpPolicy | None = None,
    envelopes: bool = False,
    **instrumentor_kwargs: Any,
) -> Any:
    """The contrib instrumentor (``instrumentor_kwargs`` go to it: ``tracer_provider``,
    ``excluded_urls``, ...) and faultlens on one FastAPI app. Idempotent."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        # no tracer_provider given: spans go where faultlens records at each request
        instrumentor_kwargs.setdefault("tracer_provider", late_tracer_provider())
        original = _installed.get("instrument_app")
        (original or FastAPIInstrumentor.instrument_app)(app, **instrumentor_kwargs)
    return _starlette.instrument_app(app, policy=policy, envelopes=envelopes)


def instrument(*, policy: HttpPolicy | None = None, envelopes: bool = False) -> bool:
    """Every FastAPI app the contrib instrumentor instruments gets faultlens as well, and the
    contrib instrumentor is switched on if it is not yet. Idempotent; never raises; returns
    whether FastAPI is now covered."""
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        return False
    try:
        with _lock:
            if "instrument_app" not in _installed:
                original = FastAPIInstrumentor.instrument_app

                def instrument_app_with_faultlens(app: Any, *args: Any, **kwargs: Any) -> Any:
                    result = original(app, *args, **kwargs)
                    try:
                        _starlette.instrument_app(app, policy=policy, envelopes=envelopes)
                    except Exception as e:  # an app already serving: only the contrib's span
                        internal_error("faultlens fastapi integration", e)
                    return result

                _installed["instrument_app"] = original
                FastAPIInstrumentor.instrument_app = staticmethod(  # type: ignore[method-assign]
                    instrument_app_with_faultlens
                )
        instrumentor = FastAPIInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=late_tracer_provider())
            _installed["contrib"] = True  # switched on by faultlens: uninstrument() undoes it
        return True
    except Exception as e:
        internal_error("faultlens fastapi integration", e)
        return False


def uninstrument() -> None:
    """Undo ``instrument()``: the contrib instrumentor, if ``instrument()`` switched it on
    (an application's own stays on), no longer gives new apps faultlens or its span (apps
    already built keep their middleware)."""
    with _lock:
        original = _installed.pop("instrument_app", None)
        ours = _installed.pop("contrib", False)
        if original is None and not ours:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        if original is not None:
            FastAPIInstrumentor.instrument_app = staticmethod(original)  # type: ignore[method-assign]
        if ours:
            FastAPIInstrumentor().uninstrument()
