"""The links printed after `make stack-demo` (`scripts/stack.sh urls SERVICE`) work on the
stack that is running: each http:// URL answers 200 with what its line promises, none is a
placeholder page, and the text says where the UIs this build lacks come from."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

pytestmark = pytest.mark.integration

URL = re.compile(r"https?://[^\s)]+")
# What the module-built Jaeger and Debian's Alertmanager answer where a UI would be.
PLACEHOLDERS = ("This is not the Jaeger UI", "does not include a web")


def printed_links(text: str) -> dict[str, str]:
    """label -> URL, for each line of `stack.sh urls` that holds a URL."""
    return {
        line.strip().split("  ")[0]: found.group(0)
        for line in text.splitlines()
        if (found := URL.search(line))
    }


@pytest.fixture
def service_with_an_error(stack, otel_app, unique_service):
    app = otel_app(unique_service)
    trace_id = app.failing_operation(code="VAL_FILE_NOT_FOUND", category="validation")
    app.flush()
    stack.wait_for_trace(unique_service, trace_id)
    stack.prom_wait(
        f'faultlens_errors_total{{job="{unique_service}"}}', until=lambda r: len(r) > 0, timeout=60
    )
    return unique_service, trace_id


def test_every_printed_link_answers_200_and_none_is_a_placeholder(stack, service_with_an_error):
    service, _ = service_with_an_error
    out = stack.sh("urls", service)
    urls = URL.findall(out)
    assert len(urls) >= 9, out
    for url in urls:
        resp = requests.get(url, timeout=10, allow_redirects=False)
        assert resp.status_code == 200, f"{url} answered {resp.status_code}"
        assert not any(p in resp.text for p in PLACEHOLDERS), f"{url} is a placeholder page"
    assert "(not running)" not in out


def test_the_service_links_show_its_trace_and_its_errors(stack, service_with_an_error):
    service, trace_id = service_with_an_error
    links = printed_links(stack.sh("urls", service))

    traces = requests.get(links["traces (JSON)"], timeout=10).json()["data"]
    assert trace_id in {t["traceID"] for t in traces}

    # The Prometheus page of the errors link, and its query run through the API.
    errors = urlsplit(links["errors by code"])
    page = requests.get(links["errors by code"], timeout=10)
    assert "<title>Prometheus" in page.text
    (expr,) = parse_qs(errors.query)["g0.expr"]
    series = stack.prom_query(expr)
    assert [(s["metric"]["code"], s["metric"]["category"]) for s in series] == [
        ("VAL_FILE_NOT_FOUND", "validation")
    ]


def test_prometheus_links_point_at_the_ui_this_prometheus_serves(stack):
    links = printed_links(stack.sh("urls"))
    for label in ("Prometheus", "Prometheus alerts"):
        page = requests.get(links[label], timeout=10, allow_redirects=False)
        assert page.status_code == 200
        assert "<title>Prometheus" in page.text, label


def test_the_text_says_where_the_missing_uis_come_from(stack):
    out = stack.sh("urls")
    # Jaeger's root (its placeholder page here) is not offered as a UI ...
    assert not re.search(rf"{re.escape(stack.jaeger_query)}/?(\s|$)", out)
    assert "/api/" in printed_links(out)["Jaeger API"]
    # ... and the text says what gives the UIs.
    assert "docker compose" in out
    assert "no web UI" in out
