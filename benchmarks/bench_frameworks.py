"""Framework integrations: a hello-world request through the contrib instrumentor alone vs
with faultlens added (goal: <= 1.05x the instrumentor's cost).

Requests are driven in process (an ASGI call per request for FastAPI, a WSGI call for
Flask), so the numbers are the stack's own cost without a socket's noise; both sides use the
same SDK provider, exporting to a discarding exporter. The two apps of a row are measured in
interleaved rounds (see _harness.compare).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from _harness import compare, row

GOAL = 1.05


def _providers() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(Discard()))
    return tp, MeterProvider(metric_readers=[InMemoryMetricReader()])


def _fastapi_rows(quick: bool, tp: Any, mp: Any) -> list[dict[str, Any]]:
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    from faultlens.integrations import fastapi as fl_fastapi

    def make() -> FastAPI:
        app = FastAPI()

        @app.get("/hello")
        async def hello() -> dict[str, str]:
            return {"hello": "world"}

        return app

    contrib = make()
    FastAPIInstrumentor.instrument_app(contrib, tracer_provider=tp, meter_provider=mp)
    ours = make()
    fl_fastapi.instrument_app(ours, tracer_provider=tp, meter_provider=mp)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/hello", "raw_path": b"/hello", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    def call(app: Any) -> Any:
        return lambda: loop.run_until_complete(app(dict(scope), receive, send))

    n = 300 if quick else 3000
    t_contrib, t_ours = compare(call(contrib), call(ours), number=n, repeat=5, warmup=50)
    loop.close()
    return [
        row(
            "frameworks",
            "FastAPI hello-world request",
            t_ours,
            "contrib instrumentor alone",
            t_contrib,
            f"<= {GOAL}x",
            t_ours <= GOAL * t_contrib,
        )
    ]


def _flask_rows(quick: bool, tp: Any, mp: Any) -> list[dict[str, Any]]:
    from flask import Flask
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    from faultlens.integrations import flask as fl_flask

    def make() -> Flask:
        app = Flask("bench")

        @app.get("/hello")
        def hello() -> dict[str, str]:
            return {"hello": "world"}

        return app

    contrib = make()
    contrib.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
        contrib.wsgi_app, tracer_provider=tp, meter_provider=mp
    )

    @contrib.before_request
    def name_the_span() -> None:
        # what opentelemetry-instrumentation-flask adds to the WSGI span (no release of it
        # matches the SDK; faultlens's Flask integration does this naming in its place)
        from flask import request
        from opentelemetry import trace

        span = trace.get_current_span()
        if request.url_rule is not None:
            span.update_name(f"{request.method} {request.url_rule.rule}")
            span.set_attribute("http.route", request.url_rule.rule)

    ours = fl_flask.instrument_app(make(), tracer_provider=tp, meter_provider=mp)

    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/hello", "QUERY_STRING": "", "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "HTTP_HOST": "bench", "REMOTE_ADDR": "127.0.0.1",
    }  # fmt: skip

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return lambda data: None

    def call(app: Any) -> Any:
        def one() -> None:
            body = app(dict(environ), start_response)
            for _ in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

        return one

    n = 500 if quick else 5000
    t_contrib, t_ours = compare(call(contrib), call(ours), number=n, repeat=5, warmup=50)
    return [
        row(
            "frameworks",
            "Flask hello-world request",
            t_ours,
            "WSGI instrumentor + route naming",
            t_contrib,
            f"<= {GOAL}x",
            t_ours <= GOAL * t_contrib,
        )
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    tp, mp = _providers()
    return _fastapi_rows(quick, tp, mp) + _flask_rows(quick, tp, mp)


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
