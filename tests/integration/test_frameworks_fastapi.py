"""FastAPI under `faultlens run`, served by a real uvicorn, driven over HTTP, checked in the
journal, Jaeger and Prometheus: every 5xx is one classified exception event on its server
span, 404/422 are counted not recorded, envelopes carry the trace id Jaeger has, and a
breaker-open answer has Retry-After."""

from __future__ import annotations

import sys
import uuid

import pytest
import requests

from support.frameworks_servers import (
    BIN,
    Server,
    clean_env,
    codes,
    exception_logs,
    free_port,
    jaeger_tags,
    journal_records,
    server_spans,
    status_of,
)

pytestmark = pytest.mark.integration

# The app's helper `find` raises HTTPException(404) / abort(404): under `faultlens run` the
# import hook instruments it, and inside a request the integration decides (a 4xx answer is
# no error), so neither the journal nor faultlens.errors may show HTTP_* codes.

FAILURES = {"NET_CONNECTION_FAILED": 3, "EXE_CIRCUIT_OPEN": 1, "SYS_UNKNOWN_ERROR": 3}
HANDLED = {"HTTP_NOT_FOUND": 4, "VAL_REQUEST_INVALID": 2}


def drive(url: str) -> dict[str, list[requests.Response]]:
    """The traffic: as many answers of each kind as FAILURES/HANDLED say."""
    out: dict[str, list[requests.Response]] = {}
    # a connection per request: after an exception escapes the ASGI app uvicorn closes the
    # connection it answered on (with or without faultlens)
    s = requests
    out["ok"] = [s.get(f"{url}/items/1", timeout=10) for _ in range(3)]
    out["404"] = [s.get(f"{url}/items/99", timeout=10) for _ in range(4)]
    out["422"] = [
        s.post(f"{url}/orders", json={"item_id": 1, "quantity": 0}, timeout=10) for _ in range(2)
    ]
    out["price"] = [s.get(f"{url}/items/1/price", timeout=10) for _ in range(4)]
    out["bug"] = [s.get(f"{url}/items/2/restock-eta", timeout=10) for _ in range(3)]
    return out


@pytest.fixture(scope="module")
def shop(stack, tmp_path_factory):
    service = f"itest-fastapi-{uuid.uuid4().hex[:8]}"
    journal = tmp_path_factory.mktemp("journal")
    port = free_port()
    cmd = [
        sys.executable, "-m", "faultlens.cli", "run", "--service", service,
        "--endpoint", stack.otlp_grpc, "--journal", str(journal), "--",
        str(BIN / "uvicorn"), "--app-dir", "examples", "fastapi_service.app:app",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = clean_env(
        FAULTLENS_JOURNAL="true", OTEL_METRIC_EXPORT_INTERVAL="1000", OTEL_BSP_SCHEDULE_DELAY="200"
    )
    server = Server(cmd, env, port)
    try:
        server.wait_ready()
        answers = drive(server.url)
    finally:
        rc = server.stop()
    assert rc in (0, -15), server.output()
    return service, journal, answers


def test_the_answers_are_the_apps(shop):
    _, _, answers = shop
    assert [r.status_code for r in answers["ok"]] == [200] * 3
    assert [r.status_code for r in answers["404"]] == [404] * 4
    assert answers["404"][0].json() == {"detail": "no item 99"}  # FastAPI's own answer
    assert [r.status_code for r in answers["422"]] == [422] * 2
    assert [r.status_code for r in answers["price"]] == [502, 502, 502, 503]
    assert [r.status_code for r in answers["bug"]] == [500] * 3


def test_breaker_open_answer_has_retry_after(shop):
    _, _, answers = shop
    rejected = answers["price"][-1]
    assert rejected.json()["error"]["code"] == "EXE_CIRCUIT_OPEN"
    assert 1 <= int(rejected.headers["Retry-After"]) <= 30


def failures(counts):
    return {k: v for k, v in counts.items() if not k.startswith(("HTTP_", "VAL_REQUEST"))}


def by_code(results) -> dict[str, float]:
    return {x["metric"]["code"]: float(x["value"][1]) for x in results}


def test_the_journal_has_each_failure_once(shop):
    _, journal, _ = shop
    records = journal_records(journal)
    assert failures(codes(records)) == FAILURES
    bug = next(r for r in records if r["code"] == "SYS_UNKNOWN_ERROR")
    assert bug["context"]["http.route"] == "/items/{item_id}/restock-eta"
    assert bug["context"]["http.response.status_code"] == 500


def test_the_journal_has_no_4xx(shop):
    _, journal, _ = shop
    assert codes(journal_records(journal)) == FAILURES


def test_jaeger_every_5xx_has_one_exception_event_on_its_server_span(stack, shop):
    service, _, answers = shop
    total = sum(len(v) for v in answers.values())
    traces = stack.wait_for_traces(service, total, timeout=90)
    spans = server_spans(traces)
    failed = [s for s in spans if (status_of(s) or 0) >= 500]
    assert len(failed) == sum(FAILURES.values())
    for span in failed:
        (event,) = exception_logs(span)
        tags = jaeger_tags(span)
        assert tags["error.type"] == event["faultlens.error.code"]
        assert tags["http.route"] == event["faultlens.context.http.route"]
    for span in spans:
        if status_of(span) in (404, 422):
            assert exception_logs(span) == [], jaeger_tags(span)


def test_jaeger_has_the_trace_an_envelope_names(stack, shop):
    service, _, answers = shop
    envelope = answers["bug"][0].json()
    trace = stack.wait_for_trace(service, trace_id=envelope["meta"]["trace_id"], timeout=60)
    (server,) = [s for s in trace["spans"] if jaeger_tags(s).get("span.kind") == "server"]
    assert exception_logs(server)[0]["faultlens.error.code"] == envelope["error"]["code"]


def test_prometheus_counts_failures_by_code(stack, shop):
    service, _, _ = shop
    stack.prom_wait(
        f'sum by (code) (faultlens_errors_total{{job="{service}"}})',
        until=lambda r: failures(by_code(r)) == {k: float(v) for k, v in FAILURES.items()},
        timeout=90,
    )


def test_prometheus_counts_4xx_as_handled(stack, shop):
    service, _, _ = shop
    stack.prom_wait(
        f'sum by (code) (faultlens_http_handled_errors_total{{job="{service}"}})',
        until=lambda r: by_code(r) == {k: float(v) for k, v in HANDLED.items()},
        timeout=90,
    )


def test_prometheus_has_no_4xx_among_the_errors(stack, shop):
    service, _, _ = shop
    results = stack.prom_query(f'sum by (code) (faultlens_errors_total{{job="{service}"}})')
    assert by_code(results) == {k: float(v) for k, v in FAILURES.items()}
