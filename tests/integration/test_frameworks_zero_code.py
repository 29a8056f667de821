"""Zero-code start: web apps with no faultlens code, served by uvicorn / gunicorn under
`faultlens run` with their module named, get their request errors recorded, and answer
exactly as they do without faultlens.

The issue's first report: a FastAPI app under `faultlens run` answered 500 to a bug and
faultlens recorded nothing at all (the route table holds the functions `@app.get` registered
before the import hook wrapped the module). The framework integrations do it from the
framework's side, switched on when the process imports the framework.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import requests

from support.frameworks_servers import BIN, Server, clean_env, codes, free_port, journal_records

pytestmark = pytest.mark.integration

FASTAPI_APP = textwrap.dedent(
    """
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/orders/{order_id}")
    def order(order_id: int):
        if order_id == 0:
            raise HTTPException(404, "no such order")
        return {"total": 100 / (order_id - 1)}   # a bug for order 1
    """
)

FLASK_APP = textwrap.dedent(
    """
    from flask import Flask, abort

    app = Flask(__name__)

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/orders/<int:order_id>")
    def order(order_id):
        if order_id == 0:
            abort(404)
        return {"total": 100 / (order_id - 1)}   # a bug for order 1
    """
)

REQUESTS = [("GET", "/orders/2"), ("GET", "/orders/0"), ("GET", "/orders/1"), ("GET", "/nope")]
VOLATILE_HEADERS = {"date", "server", "connection", "keep-alive"}


def serve(
    tmp_path: Path,
    server_cmd: list[str],
    under_faultlens: bool,
    journal: Path,
    modules: str = "plainapp",
):
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in server_cmd]
    if under_faultlens:
        cmd = [
            sys.executable, "-m", "faultlens.cli", "run", "--service", "itest-zero-code",
            "--modules", modules, "--journal", str(journal), "--", *cmd,
        ]  # fmt: skip
    server = Server(cmd, clean_env(), port, cwd=tmp_path)
    answers = []
    try:
        server.wait_ready()
        for method, path in REQUESTS:
            r = requests.request(method, server.url + path, timeout=10)
            headers = {k.lower(): v for k, v in r.headers.items()}
            answers.append(
                (
                    r.status_code,
                    r.content,
                    {k: v for k, v in headers.items() if k not in VOLATILE_HEADERS},
                )
            )
    finally:
        server.stop()
    return answers, server


@pytest.mark.parametrize(
    ("source", "server_cmd", "route"),
    [
        (
            FASTAPI_APP,
            [str(BIN / "uvicorn"), "plainapp:app", "--host", "127.0.0.1", "--port", "{port}"],
            "/orders/{order_id}",
        ),
        (
            FLASK_APP,
            [str(BIN / "gunicorn"), "--workers", "2", "--bind", "127.0.0.1:{port}", "plainapp:app"],
            "/orders/<int:order_id>",
        ),
    ],
    ids=["fastapi-uvicorn", "flask-gunicorn"],
)
def test_zero_code_records_the_bug_once_and_changes_no_answer(tmp_path, source, server_cmd, route):
    (tmp_path / "plainapp.py").write_text(source)
    journal = tmp_path / "journal"
    plain, _ = serve(tmp_path, server_cmd, False, tmp_path / "unused")
    ours, server = serve(tmp_path, server_cmd, True, journal)
    assert [a[0] for a in plain] == [200, 404, 500, 404]
    assert ours == plain  # same statuses, bodies and headers
    records = journal_records(journal)
    assert codes(records) == {"SYS_UNKNOWN_ERROR": 1}, server.output()
    assert records[0]["context"]["http.route"] == route
    assert records[0]["context"]["http.response.status_code"] == 500


DJANGO_FILES = {
    "plainsite/__init__.py": "",
    "plainsite/settings.py": """
        SECRET_KEY = "zero-code-test-only"
        DEBUG = False
        ALLOWED_HOSTS = ["*"]
        ROOT_URLCONF = "plainsite.urls"
        INSTALLED_APPS = []
        MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
        APPEND_SLASH = False
        """,
    "plainsite/urls.py": """
        from django.http import Http404, JsonResponse
        from django.urls import path

        def health(request):
            return JsonResponse({"ok": True})

        def order(request, order_id):
            if order_id == 0:
                raise Http404("no such order")
            return JsonResponse({"total": 100 / (order_id - 1)})   # a bug for order 1

        urlpatterns = [path("health", health), path("orders/<int:order_id>", order)]
        """,
    # the standard wsgi.py: Django is imported before the settings module is named
    "plainsite/wsgi.py": """
        import os
        from django.core.wsgi import get_wsgi_application
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plainsite.settings")
        application = get_wsgi_application()
        """,
}


def test_zero_code_django_under_gunicorn(tmp_path):
    for name, text in DJANGO_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    journal = tmp_path / "journal"
    cmd = [
        str(BIN / "gunicorn"), "--workers", "2", "--bind", "127.0.0.1:{port}",
        "plainsite.wsgi:application",
    ]  # fmt: skip
    plain, _ = serve(tmp_path, cmd, False, tmp_path / "unused", "plainsite.*")
    ours, server = serve(tmp_path, cmd, True, journal, "plainsite.*")
    assert [a[0] for a in plain] == [200, 404, 500, 404]
    assert ours == plain
    records = journal_records(journal)
    assert codes(records) == {"SYS_UNKNOWN_ERROR": 1}, server.output()
    assert records[0]["context"]["http.route"] == "orders/<int:order_id>"
