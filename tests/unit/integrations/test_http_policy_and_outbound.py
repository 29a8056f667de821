"""The HTTP policy and envelope statuses, outbound client spans, and zero-code detection."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

import faultlens
from faultlens.errors import classify
from faultlens.integrations import HttpPolicy, envelope_status, install_detected
from faultlens.integrations import httpx as fl_httpx
from faultlens.integrations import requests as fl_requests


def test_default_policy_5xx_and_unhandled_are_failures():
    p = HttpPolicy()
    bug = classify(RuntimeError("x"))
    assert p.is_failure(bug, 500, handled=False)
    assert p.is_failure(bug, None, handled=False)  # escaped, status unknown: the server's 500
    assert not p.is_failure(classify(LookupError()), 404, handled=True)
    assert not p.is_failure(bug, None, handled=True)
    # escaped after a 200 had started (a stream cut mid-way): a failure whatever the status
    assert p.is_failure(bug, 200, handled=False)
    # escaped, but an error handler answered 4xx (an envelope for a validation error): not one
    assert not p.is_failure(classify(ValueError()), 422, handled=False)


def test_policy_by_category_and_ignored_codes():
    p = HttpPolicy(failed_categories={"network"}, ignored_codes={"EXE_TIMEOUT"})
    assert p.is_failure(classify(ConnectionError()), 409, handled=True)
    assert not p.is_failure(classify(TimeoutError()), 504, handled=True)


@pytest.mark.parametrize("bad", [{"600"}, {99}, {True}])
def test_policy_refuses_what_is_not_a_status(bad):
    with pytest.raises(ValueError, match="failed_status_codes"):
        HttpPolicy(failed_status_codes=bad)


def test_policy_refuses_a_bare_string_for_categories():
    with pytest.raises(ValueError, match="failed_categories"):
        HttpPolicy(failed_categories="network")  # type: ignore[arg-type]


class WorkspaceNotFound(faultlens.FaultError):
    code = "WORKSPACE_NOT_FOUND"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ValueError("bad"), 422),
        (TimeoutError(), 504),
        (PermissionError(), 403),
        (ConnectionError(), 502),
        (RuntimeError(), 500),
        (faultlens.CircuitOpenError("db", 12.2), 503),
    ],
)
def test_envelope_status_from_the_category(exc, status):
    assert envelope_status(exc, classify(exc))[0] == status


def test_envelope_status_of_a_not_found_code_and_of_an_open_breaker():
    faultlens.catalog.register("WORKSPACE_NOT_FOUND", category="validation")
    exc = WorkspaceNotFound("no workspace")
    assert envelope_status(exc, classify(exc)) == (404, {})
    opened = faultlens.CircuitOpenError("db", 12.2)
    assert envelope_status(opened, classify(opened)) == (503, {"Retry-After": "13"})
    forced = faultlens.CircuitOpenError("db", None)  # forced open: no time to promise
    assert envelope_status(forced, classify(forced)) == (503, {})


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = int(self.path.strip("/") or 200)
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "3")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _client_spans(web):
    from opentelemetry.trace import SpanKind

    return [s for s in web.cap.spans if s.kind is SpanKind.CLIENT]


def test_httpx_client_spans_of_error_statuses_are_classified(web, server):
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    assert fl_httpx.instrument(tracer_provider=web.providers["tracer_provider"])
    try:
        with httpx.Client() as client:
            for status in (200, 503, 429, 404):
                client.get(f"{server}/{status}")
        with pytest.raises(httpx.ConnectError) as refused:
            httpx.get("http://127.0.0.1:9/")  # nothing listens on the discard port
    finally:
        HTTPXClientInstrumentor().uninstrument()
    codes = [s.attributes.get("faultlens.error.code") for s in _client_spans(web)]
    assert codes[:4] == [None, "NET_DEPENDENCY_ERROR", "NET_RATE_LIMITED", "NET_REQUEST_REJECTED"]
    rate_limited = _client_spans(web)[2]
    assert rate_limited.attributes["faultlens.retry_after"] == 3.0
    assert rate_limited.attributes["faultlens.error.retryable"] is True
    assert classify(refused.value).code == "NET_CONNECTION_FAILED"


def test_requests_client_spans_of_error_statuses_are_classified(web, server):
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    assert fl_requests.instrument(tracer_provider=web.providers["tracer_provider"])
    try:
        requests.get(f"{server}/502", timeout=5)
        with pytest.raises(requests.exceptions.ConnectionError) as refused:
            requests.get("http://127.0.0.1:9/", timeout=5)
    finally:
        RequestsInstrumentor().uninstrument()
    spans = _client_spans(web)
    assert spans[0].attributes["faultlens.error.code"] == "NET_DEPENDENCY_ERROR"
    assert classify(refused.value).code == "NET_CONNECTION_FAILED"


def test_retry_and_breaker_defaults_work_on_outbound_failures(server):
    calls = []

    @faultlens.retry(attempts=3, wait_initial=0.0, wait_max=0.0)
    def fetch():
        calls.append(1)
        r = httpx.get(f"{server}/503")
        r.raise_for_status()

    with faultlens.testing.no_sleep(), pytest.raises(httpx.HTTPStatusError):
        fetch()
    assert len(calls) == 3  # NET_DEPENDENCY_ERROR is retryable: retried by default


def test_install_detected_arms_lazily_and_activates_on_import():
    code = (
        "import sys, faultlens.integrations as i\n"
        "a = i.install_detected()\n"
        "loaded = [m for m in ('fastapi', 'flask', 'httpx', 'django') if m in sys.modules]\n"
        "print(sorted(a), loaded)\n"
        "import fastapi, flask\n"
        "print(getattr(fastapi.FastAPI(), '_faultlens_instrumented', False),"
        " getattr(flask.Flask('x'), '_faultlens_instrumented', False))\n"
        "b = i.install_detected(); assert i.install_detected() == b\n"
        "print(b['fastapi'], b['flask'], b['django'])\n"
        "import django.core.handlers.base\n"
        "conf = sys.modules.get('django.conf')\n"
        "print(i.install_detected()['django'], bool(conf and conf.settings.configured))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    armed, on_import, after, django = out.stdout.strip().splitlines()
    # nothing imported by arming: a process that never uses a framework pays nothing for it
    assert armed == "['django', 'fastapi', 'flask', 'httpx', 'requests', 'starlette'] []"
    assert on_import == "True True"
    assert after == "True True None"
    # without DJANGO_SETTINGS_MODULE yet (a wsgi.py names it after importing Django), the
    # Django integration waits for Django to load its middleware; it never configures
    # settings itself (the contrib instrumentor would configure empty ones)
    assert django == "True False"


def test_install_detected_never_raises_when_an_integration_fails(monkeypatch):
    import faultlens.integrations as integrations
    from faultlens.integrations import flask as fl_flask

    def broken(**_):
        raise RuntimeError("boom")

    integrations._reset_detected()
    monkeypatch.setattr(fl_flask, "instrument", broken)
    monkeypatch.setattr(integrations, "FRAMEWORKS", {"flask": (("flask",), "flask")})
    import flask  # noqa: F401 - imported already: activated at once

    assert install_detected() == {"flask": False}
    integrations._reset_detected()


def test_a_lock_held_at_fork_is_free_in_the_child():
    import os

    from faultlens.integrations._http import _lock

    with _lock:  # held by this thread while the process forks (a worker being forked)
        pid = os.fork()
        if pid == 0:  # the child: the integration's lock must be usable at once
            code = 1
            try:
                got = _lock._lock.acquire(timeout=2)
                code = 0 if got else 3
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
