"""Django: a view's bug is one classified event on the Django instrumentor's server span;
``Http404`` and ``PermissionDenied`` are counted, not recorded; the answers are unchanged."""

from __future__ import annotations

import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
        SECRET_KEY="h8-unit-tests-only",
        INSTALLED_APPS=[],
        LOGGING_CONFIG=None,
    )
    import django

    django.setup()

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.test import Client
from django.urls import path
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.trace import StatusCode

from faultlens.integrations import django as fl_django
from faultlens.integrations import set_request_context


def item(request, item_id: int):
    if item_id == 0:
        raise Http404("no such item")
    if item_id == 3:
        raise PermissionDenied("not yours")
    if item_id == 13:
        set_request_context(user_id="u-9")
        raise RuntimeError("bug: secret=hunter2hunter2")
    return JsonResponse({"id": item_id})


urlpatterns = [path("items/<int:item_id>", item)]


@pytest.fixture
def django_web(web):
    assert fl_django.instrument(**web.providers)
    yield web
    DjangoInstrumentor().uninstrument()
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != fl_django.MIDDLEWARE]


def test_a_bug_is_one_classified_event_on_the_server_span(django_web):
    web = django_web
    assert Client(raise_request_exception=False).get("/items/13").status_code == 500
    span = web.server_span("items/<int:item_id>", 500)
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["faultlens.error.code"] == "SYS_UNKNOWN_ERROR"
    assert event.attributes["faultlens.context.http.route"] == "items/<int:item_id>"
    assert event.attributes["faultlens.context.user_id"] == "u-9"
    assert "hunter2" not in event.attributes["exception.message"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SYS_UNKNOWN_ERROR"
    assert len(web.exception_events()) == 1 and len(web.cap.errors) == 1


def test_http404_and_permission_denied_are_counted_not_recorded(django_web):
    web = django_web
    c = Client(raise_request_exception=False)
    assert c.get("/items/0").status_code == 404
    assert c.get("/items/3").status_code == 403
    assert c.get("/items/1").status_code == 200
    assert web.exception_events() == [] and web.errors() == 0
    assert web.handled(code="HTTP_NOT_FOUND", **{"http.response.status_code": 404}) == 1
    assert web.handled(code="HTTP_FORBIDDEN", **{"http.route": "items/<int:item_id>"}) == 1


def test_instrument_is_idempotent_and_the_middleware_is_innermost(django_web):
    assert fl_django.instrument()
    assert settings.MIDDLEWARE.count(fl_django.MIDDLEWARE) == 1
    assert settings.MIDDLEWARE[-1] == fl_django.MIDDLEWARE


def test_instrument_when_ready_waits_for_django_to_load_its_middleware(tmp_path):
    """A standard wsgi.py imports Django before it names its settings module: the
    integration switches on when Django builds its request handler, not before."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "site_settings.py").write_text(
        "SECRET_KEY = 'x'\nROOT_URLCONF = 'site_urls'\nALLOWED_HOSTS = ['*']\nMIDDLEWARE = []\n"
        "INSTALLED_APPS = []\n"
    )
    (tmp_path / "site_urls.py").write_text("urlpatterns = []\n")
    code = textwrap.dedent(
        """
        import os, faultlens.integrations as i
        from faultlens.integrations import django as d
        from django.core.wsgi import get_wsgi_application   # imported before the settings
        print(d.instrument_when_ready())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
        application = get_wsgi_application()
        from django.conf import settings
        print(settings.MIDDLEWARE[-1] == d.MIDDLEWARE, len(settings.MIDDLEWARE))
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "2"]  # armed; then the contrib's and ours


def test_envelopes_answer_unhandled_errors_and_leave_django_s_404(django_web):
    web = django_web
    assert fl_django.instrument(envelopes=True)  # a later call sets the option
    try:
        c = Client(raise_request_exception=False)
        r = c.get("/items/13")
        assert r.status_code == 500
        body = r.json()
        assert body["error"]["code"] == "SYS_UNKNOWN_ERROR"
        span = web.server_span("items/<int:item_id>", 500)
        assert body["meta"]["trace_id"] == format(span.context.trace_id, "032x")
        assert len(web.exception_events()) == 1
        assert c.get("/items/0").status_code == 404  # Django's own answer
        assert web.handled(code="HTTP_NOT_FOUND") == 1
    finally:
        fl_django.instrument(envelopes=False)
