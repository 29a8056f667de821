"""FastAPI/Starlette: an exception that escapes a view is recorded once, on the contrib
instrumentor's server span, classified; what the framework answers with a 4xx is counted,
not recorded; the app answers exactly as it would without faultlens."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

import faultlens
from faultlens.integrations import HttpPolicy, set_request_context
from faultlens.integrations import fastapi as fl_fastapi


class DependencyDown(faultlens.FaultError):
    code = "NET_CONNECTION_FAILED"


class Item(BaseModel):
    name: str
    price: float


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def get_item(item_id: int):
        if item_id == 0:
            raise HTTPException(status_code=404, detail="no such item")
        if item_id == 13:
            raise RuntimeError("bug: token=hunter2hunter2hunter2 in the message")
        return {"id": item_id}

    @app.post("/items")
    async def create(item: Item):
        return {"name": item.name}

    @app.get("/user/{uid}")
    async def user(uid: str):
        set_request_context(user_id=uid)
        raise KeyError(uid)

    @app.get("/down")
    async def down():
        raise DependencyDown("the registry is down")

    @app.exception_handler(DependencyDown)
    async def dependency_down(request, exc):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": "try later"}, status_code=503)

    return app


def client(web, *, envelopes: bool = False, policy: HttpPolicy | None = None) -> TestClient:
    app = make_app()
    fl_fastapi.instrument_app(app, envelopes=envelopes, policy=policy, **web.providers)
    return TestClient(app, raise_server_exceptions=False)


def test_a_bug_is_one_classified_event_on_the_server_span(web):
    c = client(web)
    assert c.get("/items/13").status_code == 500
    span = web.server_span("/items/{item_id}", 500)
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1  # the contrib's own record_exception is not a second one
    attrs = events[0].attributes
    assert attrs["exception.type"] == "RuntimeError"
    assert attrs["faultlens.error.code"] == "SYS_UNKNOWN_ERROR"
    assert attrs["faultlens.context.http.route"] == "/items/{item_id}"
    assert attrs["faultlens.context.http.request.method"] == "GET"
    assert attrs["faultlens.context.http.response.status_code"] == 500
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SYS_UNKNOWN_ERROR"
    # scrubbed everywhere: the event, and the status the contrib had set from str(exc)
    assert "hunter2" not in attrs["exception.message"]
    assert "hunter2" not in (span.status.description or "")
    # and no other span of the request carries an exception event
    assert len(web.exception_events()) == 1
    assert web.errors(code="SYS_UNKNOWN_ERROR") == 1
    assert len(web.cap.errors) == 1  # the journal's sink got it once


def test_404_and_422_are_counted_with_their_code_not_recorded(web):
    c = client(web)
    assert c.get("/items/0").status_code == 404
    assert c.post("/items", json={"name": 3}).status_code == 422
    assert c.get("/items/not-a-number").status_code == 422
    assert web.exception_events() == []
    assert web.errors() == 0
    assert web.handled(code="HTTP_NOT_FOUND", **{"http.response.status_code": 404}) == 1
    assert web.handled(code="VAL_REQUEST_INVALID", **{"http.route": "/items"}) == 1
    assert web.handled(code="VAL_REQUEST_INVALID", **{"http.route": "/items/{item_id}"}) == 1
    for span in web.server_spans():
        assert span.status.status_code is not StatusCode.ERROR


def test_an_exception_the_app_answers_with_5xx_is_a_failure(web):
    c = client(web)
    assert c.get("/down").status_code == 503
    span = web.server_span("/down", 503)
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["faultlens.error.code"] == "NET_CONNECTION_FAILED"
    assert event.attributes["faultlens.context.http.response.status_code"] == 503
    assert span.attributes["error.type"] == "NET_CONNECTION_FAILED"


def test_policy_by_category_and_by_status(web):
    policy = HttpPolicy(failed_status_codes={500}, failed_categories={"validation"})
    c = client(web, policy=policy)
    c.get("/down")  # 503, network: not in the failed statuses any more
    c.get("/items/0")  # 404 -> HTTP_NOT_FOUND, category validation: a failure by category
    codes = [e.attributes["faultlens.error.code"] for _, e in web.exception_events()]
    assert codes == ["HTTP_NOT_FOUND"]
    assert web.handled(code="NET_CONNECTION_FAILED") == 1


def test_request_context_from_the_app_is_on_the_event_and_the_journal_record(web):
    c = client(web)
    assert c.get("/user/u-42").status_code == 500
    (record,) = web.cap.errors
    assert record.attributes["faultlens.context.user_id"] == "u-42"
    assert record.attributes["faultlens.context.http.route"] == "/user/{uid}"


def test_errors_recorded_inside_the_request_carry_route_and_method(web):
    app = FastAPI()

    @app.get("/load/{name}")
    def load(name: str):
        try:
            raise FileNotFoundError(name)
        except FileNotFoundError as exc:
            faultlens.record_error(exc)
        return {"ok": True}

    fl_fastapi.instrument_app(app, **web.providers)
    assert TestClient(app).get("/load/x").status_code == 200
    (record,) = web.cap.errors
    assert record.attributes["faultlens.context.http.route"] == "/load/{name}"
    assert record.attributes["faultlens.context.http.request.method"] == "GET"


def test_the_app_answers_identically_with_and_without_faultlens(web):
    plain = make_app()
    FastAPIInstrumentor.instrument_app(plain, **web.providers)
    bare = TestClient(plain, raise_server_exceptions=False)
    ours = client(web)
    for method, url, body in [
        ("GET", "/items/1", None),
        ("GET", "/items/0", None),
        ("GET", "/items/13", None),
        ("GET", "/items/x", None),
        ("POST", "/items", {"name": "a", "price": 1}),
        ("POST", "/items", {"name": 1}),
        ("GET", "/down", None),
        ("GET", "/nowhere", None),
    ]:
        a = bare.request(method, url, json=body)
        b = ours.request(method, url, json=body)
        assert (a.status_code, a.content) == (b.status_code, b.content), url
        drop = {"content-length", "date"}
        assert {k: v for k, v in a.headers.items() if k not in drop} == {
            k: v for k, v in b.headers.items() if k not in drop
        }


def test_the_exception_still_reaches_the_server(web):
    c = TestClient(make_app())
    fl_fastapi.instrument_app(c.app, **web.providers)
    with pytest.raises(RuntimeError, match="bug"):
        c.get("/items/13")


def test_envelopes_carry_the_trace_id_and_a_status_from_the_category(web):
    c = client(web, envelopes=True)
    r = c.get("/items/13")
    assert r.status_code == 500
    body = r.json()
    assert body["ok"] is False and body["error"]["code"] == "SYS_UNKNOWN_ERROR"
    span = web.server_span("/items/{item_id}", 500)
    assert body["meta"]["trace_id"] == format(span.context.trace_id, "032x")
    assert "hunter2" not in json.dumps(body)


def test_envelope_for_an_open_breaker_is_503_with_retry_after(web):
    app = FastAPI()
    breaker = faultlens.CircuitBreaker("registry-h8", failure_threshold=1, open_timeout=30.0)

    @app.get("/pull")
    def pull():
        with breaker:
            raise ConnectionError("registry refused")

    fl_fastapi.instrument_app(app, envelopes=True, **web.providers)
    c = TestClient(app, raise_server_exceptions=False)
    first = c.get("/pull")
    assert first.status_code == 502 and first.json()["error"]["code"] == "NET_CONNECTION_FAILED"
    rejected = c.get("/pull")
    assert rejected.status_code == 503
    assert rejected.json()["error"]["code"] == "EXE_CIRCUIT_OPEN"
    assert 1 <= int(rejected.headers["Retry-After"]) <= 30


def test_instrument_app_is_idempotent(web):
    app = make_app()
    fl_fastapi.instrument_app(app, **web.providers)
    fl_fastapi.instrument_app(app, **web.providers)
    assert TestClient(app, raise_server_exceptions=False).get("/items/13").status_code == 500
    assert len(web.exception_events()) == 1


def test_instrument_covers_apps_the_contrib_instruments(web):
    fl_fastapi.instrument()
    try:
        import fastapi

        app = fastapi.FastAPI()  # the contrib's instrumented FastAPI class

        @app.get("/boom")
        def boom():
            raise LookupError("x")

        assert getattr(app, "_faultlens_instrumented", False)
        TestClient(app, raise_server_exceptions=False).get("/boom")
        assert web.errors(code="SYS_UNKNOWN_ERROR") == 1
    finally:
        fl_fastapi.uninstrument()
        FastAPIInstrumentor().uninstrument()


def test_without_a_server_span_failures_still_get_a_span_of_their_own(web):
    from starlette.applications import Starlette
    from starlette.routing import Route

    from faultlens.integrations import starlette as fl_starlette

    def boom(request):
        raise ZeroDivisionError("x")

    app = Starlette(routes=[Route("/boom", boom)])
    fl_starlette.instrument_app(app)
    assert TestClient(app, raise_server_exceptions=False).get("/boom").status_code == 500
    (record,) = web.cap.errors
    assert record.attributes["faultlens.context.http.route"] == "/boom"


def test_a_later_call_adds_envelopes_and_policy_to_an_app_instrumented_already(web):
    app = make_app()
    fl_fastapi.instrument_app(app, **web.providers)  # as faultlens run would
    fl_fastapi.instrument_app(app, envelopes=True, policy=HttpPolicy(failed_status_codes={500}))
    c = TestClient(app, raise_server_exceptions=False)
    assert c.get("/items/13").json()["error"]["code"] == "SYS_UNKNOWN_ERROR"
    c.get("/down")  # 503: no longer a failure by the new policy
    codes = [e.attributes["faultlens.error.code"] for _, e in web.exception_events()]
    assert codes == ["SYS_UNKNOWN_ERROR"]


def test_no_secret_in_a_query_string_reaches_the_server_span(web):
    c = client(web)
    secret = "hunter2hunter2hunter2"
    assert c.get(f"/items/1?password={secret}&page=2").status_code == 200
    assert c.get(f"/items/13?api_key={secret}").status_code == 500
    for span in web.server_spans():
        for value in span.attributes.values():
            assert secret not in str(value), dict(span.attributes)
        for event in span.events:
            assert secret not in str(dict(event.attributes))


def test_a_stream_that_breaks_after_a_200_started_is_a_failure(web):
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/export")
    def export():
        def rows():
            yield b"id,name\n"
            raise OSError("disk went away mid-export")

        return StreamingResponse(rows(), media_type="text/csv")

    fl_fastapi.instrument_app(app, **web.providers)
    with pytest.raises(OSError):
        TestClient(app).get("/export")
    (event,) = [e for _, e in web.exception_events()]
    assert event.attributes["exception.type"] == "OSError"
    assert event.attributes["faultlens.context.http.response.status_code"] == 200


def test_a_plain_starlette_app_gets_a_server_span_named_by_route(web):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from faultlens.integrations import starlette as fl_starlette

    def item(request):
        item_id = request.path_params["item_id"]
        if item_id == 0:
            raise StarletteHTTPException(404)
        if item_id == 13:
            raise RuntimeError("bug")
        return JSONResponse({"id": item_id})

    app = Starlette(routes=[Route("/items/{item_id:int}", item)])
    fl_starlette.instrument_app(app, **web.providers)
    c = TestClient(app, raise_server_exceptions=False)
    assert [c.get(u).status_code for u in ("/items/1", "/items/0", "/items/13", "/x")] == [
        200,
        404,
        500,
        404,
    ]
    names = sorted(s.name for s in web.server_spans())
    assert names == ["GET", *["GET /items/{item_id:int}"] * 3]
    span = web.server_span("/items/{item_id:int}", 500)
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["faultlens.context.http.route"] == "/items/{item_id:int}"
    assert span.attributes["error.type"] == "SYS_UNKNOWN_ERROR"
    assert web.handled(code="HTTP_NOT_FOUND") == 2


def test_starlette_instrument_covers_apps_created_afterwards(web):
    from starlette.applications import Starlette
    from starlette.routing import Route

    from faultlens.integrations import starlette as fl_starlette

    def boom(request):
        raise LookupError("x")

    fl_starlette.instrument()
    try:
        app = Starlette(routes=[Route("/boom", boom)])
        assert TestClient(app, raise_server_exceptions=False).get("/boom").status_code == 500
        assert web.errors(code="SYS_UNKNOWN_ERROR") == 1
    finally:
        fl_starlette.uninstrument()
    assert not getattr(Starlette(), "_faultlens_instrumented", False)


def test_concurrent_requests_keep_their_own_errors_and_routes(web):
    """Many requests in flight at once (one event loop, sync views in the threadpool): each
    failure lands on its own request's span with its own route, none leaks into another."""
    import asyncio

    import httpx

    app = FastAPI()

    @app.get("/a/{n}")
    async def a(n: int):
        await asyncio.sleep(0.001 * (n % 5))
        if n % 2:
            raise KeyError(f"a{n}")
        return {"n": n}

    @app.get("/b/{n}")
    def b(n: int):
        if n % 3 == 0:
            raise ValueError(f"b{n}")
        return {"n": n}

    fl_fastapi.instrument_app(app, **web.providers)

    async def main():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            urls = [f"/a/{n}" for n in range(40)] + [f"/b/{n}" for n in range(30)]
            return await asyncio.gather(*(client.get(u) for u in urls))

    answers = asyncio.run(main())
    assert sum(r.status_code == 500 for r in answers) == 20 + 10
    for span in web.server_spans():
        events = [e for e in span.events if e.name == "exception"]
        route = span.attributes["http.route"]
        if span.status.is_ok:
            assert events == []
            continue
        (event,) = events
        assert event.attributes["faultlens.context.http.route"] == route
        expected = "KeyError" if route == "/a/{n}" else "ValueError"
        assert event.attributes["exception.type"] == expected
