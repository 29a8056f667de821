"""Flask: the same contract on the WSGI server span — a bug is one classified event on it,
``abort(404)`` is counted not recorded, an error handler's 5xx is a failure, and the app
answers exactly as without faultlens."""

from __future__ import annotations

import flask
from flask import Flask, abort
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.trace import StatusCode

import faultlens
from faultlens.integrations import HttpPolicy, set_request_context
from faultlens.integrations import flask as fl_flask


class DependencyDown(Exception):
    pass


def make_app() -> Flask:
    app = Flask("h8test")

    @app.get("/items/<int:item_id>")
    def item(item_id: int):
        if item_id == 0:
            abort(404)
        if item_id == 3:
            abort(403)
        if item_id == 13:
            set_request_context(user_id="u-7")
            raise RuntimeError("bug: password=hunter2hunter2")
        return {"id": item_id}

    @app.get("/down")
    def down():
        raise DependencyDown("registry down")

    @app.errorhandler(DependencyDown)
    def dependency_down(e):
        return {"detail": "later"}, 503

    return app


def get(app: Flask, url: str):
    # buffered: the response iterable is closed, so the WSGI span ends (as a server does)
    return app.test_client().get(url, buffered=True)


def instrumented(web, **kw) -> Flask:
    return fl_flask.instrument_app(make_app(), **kw, **web.providers)


def test_a_bug_is_one_classified_event_on_the_server_span(web):
    app = instrumented(web)
    assert get(app, "/items/13").status_code == 500
    span = web.server_span("/items/<int:item_id>", 500)
    assert span.name == "GET /items/<int:item_id>"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["faultlens.error.code"] == "SYS_UNKNOWN_ERROR"
    assert event.attributes["faultlens.context.http.route"] == "/items/<int:item_id>"
    assert event.attributes["faultlens.context.http.response.status_code"] == 500
    assert event.attributes["faultlens.context.user_id"] == "u-7"
    assert "hunter2" not in event.attributes["exception.message"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SYS_UNKNOWN_ERROR"
    assert len(web.exception_events()) == 1 and len(web.cap.errors) == 1


def test_abort_is_counted_with_its_code_not_recorded(web):
    app = instrumented(web)
    assert get(app, "/items/0").status_code == 404
    assert get(app, "/items/3").status_code == 403
    assert get(app, "/no/such/page").status_code == 404
    assert web.exception_events() == [] and web.errors() == 0
    assert web.handled(code="HTTP_NOT_FOUND", **{"http.route": "/items/<int:item_id>"}) == 1
    assert web.handled(code="HTTP_FORBIDDEN") == 1
    assert web.handled(code="HTTP_NOT_FOUND") == 2
    # an unmatched path does not become a span name
    assert any(s.name == "GET" for s in web.server_spans())


def test_an_error_handler_answering_5xx_is_a_failure(web):
    app = instrumented(web)
    assert get(app, "/down").status_code == 503
    span = web.server_span("/down", 503)
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith("DependencyDown")


def test_policy_applies(web):
    app = instrumented(web, policy=HttpPolicy(failed_status_codes=range(500, 503)))
    get(app, "/down")
    assert web.exception_events() == []
    assert web.handled(**{"http.response.status_code": 503}) == 1


def test_the_app_answers_identically_with_and_without_faultlens(web):
    plain = make_app()
    plain.wsgi_app = OpenTelemetryMiddleware(plain.wsgi_app, **web.providers)
    ours = instrumented(web)
    for url in ("/items/1", "/items/0", "/items/3", "/items/13", "/down", "/nowhere"):
        a, b = get(plain, url), get(ours, url)
        assert (a.status_code, a.data, a.headers.to_wsgi_list()) == (
            b.status_code,
            b.data,
            b.headers.to_wsgi_list(),
        ), url


def test_envelopes_with_the_trace_id(web):
    app = instrumented(web, envelopes=True)
    r = get(app, "/items/13")
    assert r.status_code == 500
    body = r.get_json()
    assert body["error"]["code"] == "SYS_UNKNOWN_ERROR"
    span = web.server_span("/items/<int:item_id>", 500)
    assert body["meta"]["trace_id"] == format(span.context.trace_id, "032x")
    # framework 4xx keep Flask's own answer
    assert get(app, "/items/0").status_code == 404
    assert len(web.exception_events()) == 1


def test_instrument_covers_every_app_created_afterwards(web):
    fl_flask.instrument()
    try:
        app = flask.Flask("later")

        @app.get("/boom")
        def boom():
            raise LookupError("x")

        assert get(app, "/boom").status_code == 500
        assert web.errors(code="SYS_UNKNOWN_ERROR") == 1
    finally:
        fl_flask.uninstrument()
    assert not getattr(flask.Flask("after"), "_faultlens_instrumented", False)


def test_propagated_exceptions_are_recorded_once_too(web):
    app = instrumented(web)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    try:
        get(app, "/items/13")
    except RuntimeError:
        pass
    assert len(web.exception_events()) == 1
    assert faultlens.testing is not None


def test_a_later_call_adds_envelopes_to_an_app_instrumented_already(web):
    app = instrumented(web)
    fl_flask.instrument_app(app, envelopes=True)
    assert get(app, "/items/13").get_json()["error"]["code"] == "SYS_UNKNOWN_ERROR"


def test_no_secret_in_a_query_string_reaches_the_server_span(web):
    app = instrumented(web)
    secret = "hunter2hunter2hunter2"
    assert get(app, f"/items/1?token={secret}").status_code == 200
    assert get(app, f"/items/13?password={secret}").status_code == 500
    for span in web.server_spans():
        assert secret not in str(dict(span.attributes))


def test_concurrent_requests_in_threads_keep_their_own_errors(web):
    from concurrent.futures import ThreadPoolExecutor

    app = Flask("h8threads")

    @app.get("/n/<int:n>")
    def n(n: int):
        if n % 2:
            raise KeyError(n)
        return {"n": n}

    fl_flask.instrument_app(app, **web.providers)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: get(app, f"/n/{i}").status_code, range(60)))
    assert statuses.count(500) == 30
    assert len(web.exception_events()) == 30
    for span in web.server_spans():
        events = [e for e in span.events if e.name == "exception"]
        assert len(events) == (1 if span.attributes["http.status_code"] == 500 else 0)


def test_a_hostile_exception_is_recorded_and_the_answer_unchanged(web):
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no str for you")

        def __repr__(self):
            raise RuntimeError("no repr either")

    app = Flask("h8hostile")

    @app.get("/x")
    def x():
        raise Hostile()

    fl_flask.instrument_app(app, **web.providers)
    assert get(app, "/x").status_code == 500
    (event,) = [e for _, e in web.exception_events()]
    assert event.attributes["exception.type"].endswith("Hostile")
