"""Flask apps: classified request errors on the WSGI server span.

::

    app = Flask(__name__)
    faultlens.integrations.flask.instrument_app(app)     # envelopes=True, policy=... as for FastAPI

The server span: if ``opentelemetry-instrumentation-flask`` instrumented the app, its span;
otherwise faultlens wraps ``app.wsgi_app`` in the WSGI instrumentor's
``OpenTelemetryMiddleware`` (the flask instrumentor is built on it; none of its releases
matches the SDK this package pins) and names the span ``METHOD rule`` with ``http.route``,
as the flask instrumentor does.

What Flask does with an exception decides what faultlens sees, through Flask's own signals
and the app's ``handle_user_exception``:

- ``abort(404)``, a ``werkzeug`` HTTP exception, or an exception the app's
  ``@errorhandler`` answers: noted as handled, with the response's status;
- an exception nothing handles: Flask answers 500 (and sends ``got_request_exception``):
  noted as unhandled.

The server span settles them when it ends (after the response body): failures recorded
once on it, the rest counted (``faultlens.integrations._http``). ``instrument()`` does this
for every Flask app created afterwards (what ``install_detected()`` calls).
"""

from __future__ import annotations

import functools
from typing import Any

from ..capture import internal_error, record_error, to_api_envelope
from ..errors import classify
from . import _server
from ._http import HttpPolicy, envelope_status
from ._locks import ForkSafeLock
from ._providers import late_tracer_provider

__all__ = ["instrument", "instrument_app", "uninstrument"]

_lock = ForkSafeLock()
_signals_connected = False
_installed: dict[str, Any] = {}


def _on_request_started(sender: Any, **_: Any) -> None:
    if not getattr(sender, "_faultlens_instrumented", False):
        return
    try:
        from flask import request

        url_rule = request.url_rule
        rule = url_rule.rule if url_rule is not None else None
        state = _server.begin(
            method=request.method,
            route=rule,
            policy=getattr(sender, "_faultlens_policy", None),
            query=bool(request.query_string),
        )
        if state is None:
            return
        if getattr(sender, "_faultlens_owns_span", False):
            # as the flask instrumentor names it; no route: the method alone (a scanner's
            # random paths must not become span names)
            state.span.update_name(f"{request.method} {rule}" if rule else request.method)
            if rule:
                state.span.set_attribute("http.route", rule)
        state.enter()
    except Exception as e:
        internal_error("faultlens flask request start", e)


def _on_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    if exception is None or not getattr(sender, "_faultlens_instrumented", False):
        return
    if _server.current() is not None:
        _server.note(exception, handled=False)
        return
    try:  # no recording server span: the failure gets a span of its own
        from flask import request

        context: dict[str, Any] = {"http.request.method": request.method}
        if request.url_rule is not None:
            context["http.route"] = request.url_rule.rule
        record_error(exception, **context)
    except Exception as e:
        internal_error("faultlens flask request error", e)


def _on_teardown(sender: Any, **_: Any) -> None:
    if not getattr(sender, "_faultlens_instrumented", False):
        return
    state = _server.current()
    if state is not None:
        state.leave()
        if state.settle_at_leave:
            state.settle()


def _connect_signals() -> None:
    global _signals_connected
    with _lock:
        if _signals_connected:
            return
        from flask import signals

        signals.request_started.connect(_on_request_started, weak=False)
        signals.got_request_exception.connect(_on_exception, weak=False)
        signals.request_tearing_down.connect(_on_teardown, weak=False)
        _signals_connected = True


def _observe_user_exceptions(app: Any) -> None:
    original = app.handle_user_exception

    @functools.wraps(original)
    def handle_user_exception(e: Exception) -> Any:
        rv = original(e)  # raises again what nothing handles: got_request_exception notes it
        _server.note(e, handled=True)
        return rv

    app.handle_user_exception = handle_user_exception


def _envelope(e: Exception) -> Any:
    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    if isinstance(e, HTTPException):
        return e  # Flask's own answer for abort(404) and friends
    try:
        status, headers = envelope_status(e, classify(e))
        return jsonify(to_api_envelope(e)), status, headers
    except Exception as err:
        internal_error("api envelope", err)
        return jsonify({"ok": False, "error": {"code": "SYS_UNKNOWN_ERROR"}}), 500


def instrument_app(
    app: Any,
    *,
    policy: HttpPolicy | None = None,
    envelopes: bool = False,
    **middleware_kwargs: Any,
) -> Any:
    """Classified request errors for one Flask app. ``middleware_kwargs`` go to the WSGI
    ``OpenTelemetryMiddleware`` (``tracer_provider``, ``meter_provider``, ...). Idempotent; a
    later call with a ``policy`` or ``envelopes=True`` (an app ``faultlens run`` instrumented
    already) sets them."""
    if getattr(app, "_faultlens_instrumented", False):
        # instrumented already (``faultlens run``): a later call sets what it asks for
        if policy is not None:
            app._faultlens_policy = policy
        if envelopes and not getattr(app, "_faultlens_envelopes", False):
            app.register_error_handler(Exception, _envelope)
            app._faultlens_envelopes = True
        return app
    _connect_signals()
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        # no tracer_provider given: spans go where faultlens records at the time of each
        # request (the middleware binds its tracer now, for the life of the app)
        middleware_kwargs.setdefault("tracer_provider", late_tracer_provider())
        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app, **middleware_kwargs)
        app._faultlens_owns_span = True
    _observe_user_exceptions(app)
    if envelopes:
        app.register_error_handler(Exception, _envelope)
    app._faultlens_envelopes = envelopes
    app._faultlens_policy = policy
    app._faultlens_instrumented = True
    return app


def instrument(*, policy: HttpPolicy | None = None, envelopes: bool = False) -> bool:
    """Every Flask app created from now on is instrumented as by ``instrument_app``.
    Idempotent; never raises; returns whether Flask is covered."""
    try:
        import flask
    except ImportError:
        return False
    try:
        with _lock:
            if "init" in _installed:
                return True
            original = flask.Flask.__init__

            @functools.wraps(original)
            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                try:
                    instrument_app(self, policy=policy, envelopes=envelopes)
                except Exception as e:
                    internal_error("faultlens flask integration", e)

            _installed["init"] = original
            flask.Flask.__init__ = __init__  # type: ignore[method-assign]
        return True
    except Exception as e:
        internal_error("faultlens flask integration", e)
        return False


def uninstrument() -> None:
    """Undo ``instrument()`` (apps created meanwhile stay instrumented)."""
    with _lock:
        original = _installed.pop("init", None)
        if original is not None:
            import flask

            flask.Flask.__init__ = original  # type: ignore[method-assign]
