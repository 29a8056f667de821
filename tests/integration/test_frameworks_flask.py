"""Flask under `faultlens run`, served by a real gunicorn with 2 prefork workers, driven over
HTTP: each worker records its own failures once on its server spans, Prometheus sums them per
code across the workers, 404/400 are counted not recorded, and the breaker's rejection (per
worker: each process has its own breaker) answers 503 with Retry-After."""

from __future__ import annotations

import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

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

WORKERS = 2


@pytest.fixture(scope="module")
def shop(stack, tmp_path_factory):
    service = f"itest-flask-{uuid.uuid4().hex[:8]}"
    journal = tmp_path_factory.mktemp("journal")
    port = free_port()
    cmd = [
        sys.executable, "-m", "faultlens.cli", "run", "--service", service,
        "--endpoint", stack.otlp_grpc, "--journal", str(journal), "--",
        str(BIN / "gunicorn"), "--chdir", "examples", "--workers", str(WORKERS),
        "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10", "flask_app.app:app",
    ]  # fmt: skip
    env = clean_env(
        FAULTLENS_JOURNAL="true", OTEL_METRIC_EXPORT_INTERVAL="1000", OTEL_BSP_SCHEDULE_DELAY="200"
    )
    server = Server(cmd, env, port)
    answers: dict[str, list[requests.Response]] = {}
    try:
        server.wait_ready()
        get = requests.get
        answers["ok"] = [get(f"{server.url}/items/1", timeout=10) for _ in range(4)]
        answers["404"] = [get(f"{server.url}/items/99", timeout=10) for _ in range(6)]
        answers["400"] = [
            requests.post(f"{server.url}/orders", json={"item_id": 1, "quantity": 0}, timeout=10)
            for _ in range(4)
        ]
        # concurrent, so that both workers (one request at a time each) serve some of them;
        # the kernel may still hand a fast handler's connections to one worker, so batches go
        # on until the (write-through) journal shows both workers' failures
        answers["bug"] = []
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):
                answers["bug"] += pool.map(
                    lambda _: get(f"{server.url}/items/2/restock-eta", timeout=10), range(12)
                )
                if len(_pids_of(journal, "SYS_UNKNOWN_ERROR")) >= WORKERS:
                    break
        # each worker's breaker opens after 3 failures: 8 calls give 6 x 502 then 503s
        answers["price"] = [get(f"{server.url}/items/1/price", timeout=10) for _ in range(8)]
    finally:
        rc = server.stop()
    assert rc == 0, server.output()
    return service, journal, answers


def test_the_answers_are_the_apps(shop):
    _, _, answers = shop
    assert {r.status_code for r in answers["ok"]} == {200}
    assert {r.status_code for r in answers["404"]} == {404}
    assert {r.status_code for r in answers["400"]} == {400}
    assert answers["400"][0].json()["detail"].startswith("quantity must be")
    assert {r.status_code for r in answers["bug"]} == {500}
    assert all(r.json()["error"]["code"] == "SYS_UNKNOWN_ERROR" for r in answers["bug"])
    statuses = [r.status_code for r in answers["price"]]
    assert set(statuses) <= {502, 503} and 502 in statuses


def test_breaker_open_answers_have_retry_after(shop):
    _, _, answers = shop
    rejected = [r for r in answers["price"] if r.status_code == 503]
    for r in rejected:
        assert r.json()["error"]["code"] == "EXE_CIRCUIT_OPEN"
        assert 1 <= int(r.headers["Retry-After"]) <= 30


def _pids_of(journal, code: str) -> set[int]:
    return {r["pid"] for r in journal_records(journal) if r["code"] == code}


def _expected(answers) -> dict[str, int]:
    price = [r.status_code for r in answers["price"]]
    return {
        "SYS_UNKNOWN_ERROR": len(answers["bug"]),
        "NET_CONNECTION_FAILED": price.count(502),
        **({"EXE_CIRCUIT_OPEN": price.count(503)} if 503 in price else {}),
    }


def failures(counts):
    return {k: v for k, v in counts.items() if not k.startswith(("HTTP_", "VAL_REQUEST"))}


def by_code(results) -> dict[str, float]:
    return {x["metric"]["code"]: float(x["value"][1]) for x in results}


def test_the_journal_has_each_failure_once_from_both_workers(shop):
    _, journal, answers = shop
    records = journal_records(journal)
    assert failures(codes(records)) == _expected(answers)
    assert len({r["pid"] for r in records}) == WORKERS  # both workers served failures
    bug = next(r for r in records if r["code"] == "SYS_UNKNOWN_ERROR")
    assert bug["context"]["http.route"] == "/items/<int:item_id>/restock-eta"


def test_jaeger_every_5xx_has_one_exception_event_on_its_server_span(stack, shop):
    service, _, answers = shop
    total = sum(len(v) for v in answers.values())
    traces = stack.wait_for_traces(service, total, timeout=90)
    spans = server_spans(traces)
    failed = [s for s in spans if (status_of(s) or 0) >= 500]
    assert len(failed) == sum(_expected(answers).values())
    for span in failed:
        (event,) = exception_logs(span)
        tags = jaeger_tags(span)
        assert tags["error.type"] == event["faultlens.error.code"]
        assert tags["http.route"] == event["faultlens.context.http.route"]
    assert all(exception_logs(s) == [] for s in spans if status_of(s) in (400, 404))


def test_the_journal_has_no_4xx(shop):
    _, journal, answers = shop
    assert codes(journal_records(journal)) == _expected(answers)


def test_prometheus_sums_each_code_across_the_workers(stack, shop):
    service, _, answers = shop
    want = {k: float(v) for k, v in _expected(answers).items()}
    stack.prom_wait(
        f'sum by (code) (faultlens_errors_total{{job="{service}"}})',
        until=lambda r: failures(by_code(r)) == want,
        timeout=90,
    )
    handled = {"HTTP_NOT_FOUND": 6.0, "VAL_REQUEST_INVALID": 4.0}
    stack.prom_wait(
        f'sum by (code) (faultlens_http_handled_errors_total{{job="{service}"}})',
        until=lambda r: by_code(r) == handled,
        timeout=90,
    )


def test_prometheus_has_no_4xx_among_the_errors(stack, shop):
    service, _, answers = shop
    results = stack.prom_query(f'sum by (code) (faultlens_errors_total{{job="{service}"}})')
    assert by_code(results) == {k: float(v) for k, v in _expected(answers).items()}
