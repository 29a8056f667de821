"""Integrations switched on before the provider faultlens records through exists (or while
another was current) still deliver their spans to it: the contrib instrumentors bind a tracer
once, at instrument time, so faultlens hands them a provider that resolves at each span. And
switching the integrations off (``uninstall_detected()``, the instrumentor's
``uninstrument()``, ``faultlens.testing.reset()``) leaves no app of a later test instrumented."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import flask
import pytest
from opentelemetry.trace import SpanKind

import faultlens
import faultlens.integrations
from faultlens.integrations import flask as fl_flask
from faultlens.integrations import requests as fl_requests


def make_app() -> flask.Flask:
    app = flask.Flask("providers")

    @app.get("/boom")
    def boom():
        raise RuntimeError("bug")

    return app


def boom(app: flask.Flask) -> None:
    assert app.test_client().get("/boom", buffered=True).status_code == 500


def server_spans(cap):
    return [s for s in cap.spans if s.kind is SpanKind.SERVER]


def test_an_app_instrumented_before_capture_reports_into_each_capture():
    app = fl_flask.instrument_app(make_app())  # no provider passed, none set yet
    for _ in range(2):  # a second capture: a new provider, the first one shut down
        with faultlens.testing.capture() as cap:
            boom(app)
        (span,) = server_spans(cap)
        assert span.name == "GET /boom"
        assert [e.attributes["faultlens.error.code"] for _, e in cap.events()] == [
            "SYS_UNKNOWN_ERROR"
        ]


def test_outside_faultlens_the_spans_go_to_the_applications_provider(app_otel):
    app = fl_flask.instrument_app(make_app())
    boom(app)
    assert [s.name for s in app_otel.spans if s.kind is SpanKind.SERVER] == ["GET /boom"]


def test_configure_shutdown_configure_keeps_the_integration_reporting(tmp_path):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from faultlens.capture._state import STATE

    app = fl_flask.instrument_app(make_app())
    for round_ in range(2):
        faultlens.configure(service_name=f"svc{round_}", exporter="none")
        exporter = InMemorySpanExporter()
        provider = STATE.tracer_provider
        assert provider is not None
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        boom(app)
        assert [s.name for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER] == [
            "GET /boom"
        ], round_
        faultlens.shutdown()


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_client_instrumented_before_capture_reports_into_it(server_url):
    import requests

    assert fl_requests.instrument()
    try:
        with faultlens.testing.capture() as cap:
            assert requests.get(server_url, timeout=5).status_code == 503
        (span,) = [s for s in cap.spans if s.kind is SpanKind.CLIENT]
        assert span.attributes["faultlens.error.code"] == "NET_DEPENDENCY_ERROR"
    finally:
        fl_requests.uninstrument()


def test_uninstrument_leaves_an_applications_own_instrumentation_on():
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().instrument()
    try:
        assert fl_requests.instrument()  # on already: nothing to do
        fl_requests.uninstrument()
        assert RequestsInstrumentor().is_instrumented_by_opentelemetry
    finally:
        RequestsInstrumentor().uninstrument()


@pytest.mark.parametrize("how", ["uninstall_detected", "instrumentor", "testing_reset"])
def test_switching_the_detected_integrations_off_leaves_new_apps_alone(how):
    if how == "instrumentor":
        from faultlens.auto._instrumentor import FaultlensInstrumentor

        instrumentor = FaultlensInstrumentor()
        instrumentor.instrument()
        off = instrumentor.uninstrument
    else:
        faultlens.integrations.install_detected()
        off = (
            faultlens.integrations.uninstall_detected
            if how == "uninstall_detected"
            else faultlens.testing.reset
        )
    assert getattr(make_app(), "_faultlens_instrumented", False)  # flask is imported: on
    off()
    assert not getattr(make_app(), "_faultlens_instrumented", False)
    # and on again, afresh
    assert faultlens.integrations.install_detected()["flask"] is True
    assert getattr(make_app(), "_faultlens_instrumented", False)
    faultlens.integrations.uninstall_detected()
