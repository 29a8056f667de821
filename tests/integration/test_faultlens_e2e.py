"""faultlens itself against the real stack: the example pipeline, run under `faultlens run`
with no code changes for the exporter, lands in Jaeger with the contract attributes and the
service's resource, and in Prometheus as error, retry, breaker, recovery and span metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOMAIN_CODES = {
    "WORKSPACE_NOT_FOUND", "INVALID_PARAMS", "BAD_FORMAT", "MISMATCH", "MISSING_FILE",
    "IMAGE_NOT_FOUND", "CONTAINER_FAILED", "TIMEOUT_ERROR", "PERMISSION_DENIED",
    "UNHANDLED_ERROR", "LIST_ERROR", "LOAD_ERROR", "SUBMIT_ERROR",
}  # fmt: skip
EXPECTED_ERRORS = 34  # the pipeline with --jobs 40 --seed 7 is deterministic


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def pipeline_service(stack) -> str:
    service = f"itest-pipeline-{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable, "-m", "faultlens.cli", "run",
        "--service", service, "--endpoint", stack.otlp_grpc,
        "--", sys.executable, "examples/scoring_pipeline", "--jobs", "40", "--seed", "7",
    ]  # fmt: skip
    env = _clean_env(FAULTLENS_JOURNAL="false", OTEL_METRIC_EXPORT_INTERVAL="1000")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return service


@pytest.fixture(scope="module")
def web_service(stack) -> str:
    """The example Flask shop under `faultlens run` on a real gunicorn, asked for an item it
    does not have (404, ``abort`` in an instrumented helper) and sent an invalid order (400):
    answers the web integration counts in ``faultlens.http.handled_errors``, not as errors.
    A service of its own, so the pipeline's exact counts above stay the pipeline's."""
    from support.frameworks_servers import BIN, Server, clean_env, free_port

    service = f"itest-web-{uuid.uuid4().hex[:8]}"
    port = free_port()
    cmd = [
        sys.executable, "-m", "faultlens.cli", "run", "--service", service,
        "--endpoint", stack.otlp_grpc, "--",
        str(BIN / "gunicorn"), "--chdir", "examples", "--workers", "1",
        "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10", "flask_app.app:app",
    ]  # fmt: skip
    env = clean_env(FAULTLENS_JOURNAL="false", OTEL_METRIC_EXPORT_INTERVAL="1000")
    server = Server(cmd, env, port)
    try:
        server.wait_ready()
        statuses = [
            requests.get(f"{server.url}/items/99", timeout=10).status_code,
            requests.post(
                f"{server.url}/orders", json={"item_id": 1, "quantity": 0}, timeout=10
            ).status_code,
        ]
    finally:
        rc = server.stop()
    assert rc == 0, server.output()
    assert statuses == [404, 400], server.output()
    return service


def _fields(log: dict) -> dict:
    return {f["key"]: f["value"] for f in log.get("fields", [])}


def test_jaeger_has_the_exception_events_with_contract_attributes(stack, pipeline_service):
    traces = stack.wait_for_traces(pipeline_service, 5, timeout=60)
    events = []
    for t in traces:
        processes = t["processes"]
        for span in t["spans"]:
            for log in span.get("logs", []):
                fields = _fields(log)
                if fields.get("event") == "exception":
                    events.append((span, processes[span["processID"]], fields))
    assert events, "no exception events reached Jaeger"
    codes = {f["faultlens.error.code"] for _, _, f in events}
    assert codes <= DOMAIN_CODES | {"NET_CONNECTION_FAILED", "EXE_CIRCUIT_OPEN", "EXE_TIMEOUT"}
    assert codes & DOMAIN_CODES
    span, process, fields = events[0]
    for key in (
        "exception.type", "exception.message", "exception.stacktrace",
        "faultlens.error.code", "faultlens.error.category", "faultlens.error.severity",
        "faultlens.error.retryable", "faultlens.error.fingerprint",
        "faultlens.error.fingerprint_version", "faultlens.resource.memory.rss",
    ):  # fmt: skip
        assert key in fields, key
    tags = {t["key"]: t["value"] for t in span["tags"]}
    assert tags.get("otel.status_code") == "ERROR"
    assert "error.type" in tags
    resource = {t["key"]: t["value"] for t in process["tags"]}
    assert process["serviceName"] == pipeline_service
    assert "host.name" in resource and "process.pid" in resource
    assert resource.get("telemetry.distro.name") == "faultlens"


def test_prometheus_counts_every_error_by_code_category_and_severity(stack, pipeline_service):
    expr = f'sum(faultlens_errors_total{{job="{pipeline_service}"}})'
    series = stack.prom_wait(
        expr, until=lambda r: r and float(r[0]["value"][1]) >= EXPECTED_ERRORS, timeout=60
    )
    assert float(series[0]["value"][1]) == EXPECTED_ERRORS
    by = stack.prom_query(
        f'sum by (code, category, severity) (faultlens_errors_total{{job="{pipeline_service}"}})'
    )
    labels = [r["metric"] for r in by]
    assert all({"code", "category", "severity"} <= set(m) for m in labels)
    assert {m["code"] for m in labels} & DOMAIN_CODES


@pytest.mark.parametrize(
    "metric",
    [
        "faultlens_retry_calls_total",
        "faultlens_retry_attempts_total",
        "faultlens_circuit_breaker_calls_total",
        "faultlens_circuit_breaker_state",
        "faultlens_circuit_breaker_failure_ratio",
        "faultlens_circuit_breaker_transitions_total",
        "faultlens_retry_backoff_duration_seconds_bucket",
        "faultlens_recovery_actions_total",
        "faultlens_recovery_duration_seconds_bucket",
    ],
)
def test_resilience_outcomes_reach_prometheus(stack, pipeline_service, metric):
    stack.prom_wait(f'{metric}{{job="{pipeline_service}"}}', until=bool, timeout=60)


def test_spanmetrics_give_error_ratio_per_operation(stack, pipeline_service):
    stack.prom_wait(
        f'traces_span_metrics_calls_total{{service_name="{pipeline_service}",'
        f'status_code="STATUS_CODE_ERROR"}}',
        until=bool,
        timeout=60,
    )


def test_every_dashboard_panel_has_data_after_the_pipeline_ran(
    stack, pipeline_service, web_service
):
    """The dashboards are built for what faultlens emits: after one run of the example
    pipeline (errors, retries, a breaker, fallbacks) and a few requests the example web app
    answered with a 4xx, every panel shows data, except the ones that only fill when
    something goes wrong with the telemetry itself."""
    from integration.test_promql import dashboard_expressions

    # Failure-only telemetry, and baselines that need history from before this run.
    may_be_empty = re.compile(
        r"internal_dropped|send_failed|enqueue_failed|refused|queue_size|dropped|offset"
    )
    empty = []
    for name, expr in dashboard_expressions():
        expr = expr.replace('job=~".+"', f'job=~"{pipeline_service}|{web_service}"')
        if may_be_empty.search(expr):
            stack.prom_query(expr)
            continue
        try:  # rate windows need two scrapes of the run's final values
            stack.prom_wait(expr, until=bool, timeout=30)
        except AssertionError:
            empty.append(f"{name}: {expr}")
    assert not empty, "\n".join(empty)


# Last in the module: stopping the collector empties its Prometheus exporter, which the
# tests above read.
def test_collector_down_the_app_does_not_block_and_counts_what_it_lost(stack, tmp_path):
    """With the collector stopped, a faultlens app neither hangs beyond the export timeout
    nor crashes, and its drop counter accounts for every failure: the 200 failures share one
    fingerprint, so the rate limit admits the window's burst with a span each (spans that
    cannot be exported: ``export_failed``) and suppresses the rest, which get no span of
    their own (``rate_limited``). The app counts the spans its SDK ended itself."""
    script = tmp_path / "app.py"
    script.write_text(
        "import time, faultlens\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import SpanProcessor\n"
        "from faultlens.capture import dropped_counts\n"
        "faultlens.configure(service_name='itest-down', endpoint='"
        + stack.otlp_grpc
        + "', export_timeout=2, journal=False)\n"
        "class Ended(SpanProcessor):\n"
        "    n = 0\n"
        "    def on_end(self, span):\n"
        "        Ended.n += 1\n"
        "trace.get_tracer_provider().add_span_processor(Ended())\n"
        "@faultlens.instrument\n"
        "def fail(i):\n"
        "    raise ConnectionError(f'refused {i}')\n"
        "start = time.monotonic()\n"
        "for i in range(200):\n"
        "    try:\n"
        "        fail(i)\n"
        "    except ConnectionError:\n"
        "        pass\n"
        "record_s = time.monotonic() - start\n"
        "faultlens.shutdown(timeout=5)\n"
        "lost = dropped_counts()\n"
        "print(record_s, Ended.n, lost.get('export_failed', 0), lost.get('rate_limited', 0))\n"
    )
    stack.stop("collector")
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(script)], env=_clean_env(), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        total = time.monotonic() - started
    finally:
        stack.start("collector")
    assert proc.returncode == 0, proc.stderr
    record_s, spans, export_failed, rate_limited = proc.stdout.split()
    assert float(record_s) < 2.0, "recording never waits for the exporter"
    assert total < 30, "shutdown is bounded by its timeout"
    assert int(spans) > 0, "the failures before the rate limit get spans"
    assert int(spans) + int(rate_limited) == 200, "each failure has a span or is rate-limited"
    # export_failed also counts the failed metric exports (one per export, not per point)
    assert int(export_failed) >= int(spans), "every span that could not be exported is counted"
