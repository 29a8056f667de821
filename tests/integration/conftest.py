"""The real stack for integration tests: collector, Jaeger, VictoriaLogs, the log-metrics
collector, Prometheus and Alertmanager.

Session fixtures start the stack with ``scripts/stack.sh`` on 127.0.0.1, with its state
(rendered configs, data, logs, pids) in a pytest temp dir, and stop it at the end. Nothing
is mocked. The components must have been built/installed by ``make stack-deps``; when one
is missing the tests fail under ``CI=true`` (naming that target) and skip otherwise.

Fixtures
--------
``stack`` (session) -> :class:`Stack`
    Addresses: ``otlp_grpc`` ("http://127.0.0.1:4317"), ``otlp_http``
    ("http://127.0.0.1:4318"), ``collector_health``, ``collector_metrics`` (its Prometheus
    exporter, :8889), ``collector_telemetry`` (its own metrics, :8888), ``jaeger_query``
    ("http://127.0.0.1:16686"), ``victorialogs`` ("http://127.0.0.1:9428"), ``prometheus``,
    ``alertmanager``; ``state_dir``;
    ``interval`` (Prometheus scrape/evaluation interval in seconds, 2 here).
    Helpers:
      ``prom_query(expr)`` -> list of result dicts (raises on a PromQL error);
      ``prom_wait(expr, until=..., timeout=...)`` polls until ``until(results)`` is true;
      ``wait_for_trace(service, trace_id=None, timeout=...)`` -> Jaeger trace JSON
      (``/api/traces``: spans with ``logs`` = events, ``processes`` = resources);
      ``wait_for_traces(service, count, timeout=...)`` -> list of traces;
      ``collector_counter(name)`` -> summed value of a collector self-metric;
      ``prom_alerts()``, ``wait_for_alert(name, **labels)`` (Prometheus),
      ``wait_for_alertmanager(name, **labels)``;
      ``add_rules(name, text)`` / ``remove_rules(name)``: extra rule file + reload;
      ``logsql(query, limit=...)`` -> VictoriaLogs records (dicts) matching a LogsQL query;
      ``wait_for_logs(query, count=1, timeout=...)`` polls until that many match;
      ``stop(component)``, ``start(component)``, ``restart(component)`` for
      "collector", "jaeger", "victorialogs", "logmetrics", "prometheus", "alertmanager"
      (start waits until healthy).
    ``webhook``: the :class:`WebhookReceiver` Alertmanager posts to.

``webhook`` (session) -> :class:`WebhookReceiver`
    A tiny HTTP server on 127.0.0.1 owned by the tests; ``payloads`` (list of dicts) and
    ``wait_for(predicate, timeout)``.

``otel_app`` (function) -> factory ``otel_app(service_name, **kw)`` -> :class:`PlainOtelApp`
    The plain OpenTelemetry SDK (no faultlens) exporting OTLP/gRPC to the stack: ``tracer``,
    ``meter``, ``record_error(span, code=..., ...)`` (the DESIGN.md event shape),
    ``errors_counter`` (``faultlens.errors``), ``flush()``. Shut down after the test.

Tests needing a fresh service name use ``unique_service`` (function): "itest-<hex>".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from support.ci import missing_component

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
COMPONENTS = (
    "collector",
    "jaeger",
    "victorialogs",
    "logmetrics",
    "prometheus",
    "alertmanager",
    "redis",
)
INTERVAL_S = 2
HOST = "127.0.0.1"
# Captured at import: the suite's autouse fixture strips FAULTLENS_*/OTEL_* from the
# environment of each test (FAULTLENS_CACHE_DIR says where the builds are).
ENV_AT_START = dict(os.environ)


def _binaries_missing() -> list[str]:
    missing = []
    for name in COMPONENTS:
        proc = subprocess.run(
            [str(STACK_SH), "bin", name],
            capture_output=True,
            text=True,
            check=False,
            env=ENV_AT_START,
        )
        if proc.returncode != 0:
            missing.append(f"{name} ({proc.stdout.strip()})")
    return missing


# --- the webhook receiver -------------------------------------------------------------------
class WebhookReceiver:
    """Collects the JSON bodies Alertmanager POSTs; the tests own it, nothing is faked."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    receiver.payloads.append(json.loads(body or b"{}"))
                    receiver._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for payload in self.payloads:
                    if predicate(payload):
                        return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no matching webhook call within {timeout}s; got {self.payloads!r}"
                    )
                self._cond.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the stack ----------------------------------------------------------------------------------
def _poll(fn: Callable[[], Any], until: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
            if until(last):
                return last
        except requests.RequestException as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(0.5)


@dataclass
class Stack:
    state_dir: Path
    webhook: WebhookReceiver
    env: dict[str, str]
    otlp_grpc: str = f"http://{HOST}:4317"
    otlp_http: str = f"http://{HOST}:4318"
    collector_health: str = f"http://{HOST}:13133/"
    collector_metrics: str = f"http://{HOST}:8889/metrics"
    collector_telemetry: str = f"http://{HOST}:8888/metrics"
    jaeger_query: str = f"http://{HOST}:16686"
    victorialogs: str = f"http://{HOST}:9428"
    prometheus: str = f"http://{HOST}:9090"
    alertmanager: str = f"http://{HOST}:9093"
    interval: float = INTERVAL_S
    _extra_rules: set[str] = field(default_factory=set)

    # processes
    def sh(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [str(STACK_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"stack.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
                f"\nlogs: {self.state_dir / 'logs'}"
            )
        return proc.stdout

    def stop(self, component: str) -> None:
        self.sh("stop", component)

    def start(self, component: str) -> None:
        self.sh("start", component)

    def restart(self, component: str) -> None:
        self.sh("restart", component)

    def log(self, component: str) -> str:
        return (self.state_dir / "logs" / f"{component}.log").read_text(errors="replace")

    # Prometheus
    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        if body.get("status") != "success":
            raise AssertionError(f"PromQL {expr!r} failed: {body.get('error')}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def prom_wait(
        self,
        expr: str,
        until: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 60,
    ) -> list[dict[str, Any]]:
        return _poll(lambda: self.prom_query(expr), until, timeout, f"PromQL {expr!r}")

    def prom_alerts(self) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.prometheus}/api/v1/alerts", timeout=10)
        return list(resp.json()["data"]["alerts"])

    def wait_for_alert(
        self, name: str, state: str = "firing", timeout: float = 90, **labels: str
    ) -> dict[str, Any]:
        def matching(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                a
                for a in alerts
                if a["labels"].get("alertname") == name
                and a["state"] == state
                and all(a["labels"].get(k) == v for k, v in labels.items())
            ]

        return matching(_poll(self.prom_alerts, matching, timeout, f"alert {name} {labels}"))[0]

    def wait_for_alertmanager(self, name: str, timeout: float = 60, **labels: str) -> dict:
        def fetch() -> list[dict[str, Any]]:
            resp = requests.get(f"{self.alertmanager}/api/v2/alerts", timeout=10)
            return [
                a
                for a in resp.json()
                if a["labels"].get("alertname") == name
                and all(a["labels"].get(k) == v for k, v in labels.items())
            ]

        return _poll(fetch, bool, timeout, f"Alertmanager alert {name} {labels}")[0]

    def add_rules(self, name: str, text: str) -> None:
        """Add a rules file (YAML text) next to the shipped ones and reload Prometheus."""
        (self.state_dir / "prometheus" / "rules" / f"{name}.yml").write_text(text)
        self._extra_rules.add(name)
        self._reload_prometheus()

    def remove_rules(self, name: str) -> None:
        (self.state_dir / "prometheus" / "rules" / f"{name}.yml").unlink(missing_ok=True)
        self._extra_rules.discard(name)
        self._reload_prometheus()

    def _reload_prometheus(self) -> None:
        resp = requests.post(f"{self.prometheus}/-/reload", timeout=10)
        assert resp.status_code == 200, resp.text

    # Jaeger
    def jaeger_get(self, path: str, **params: Any) -> dict[str, Any]:
        resp = requests.get(f"{self.jaeger_query}{path}", params=params, timeout=10)
        if resp.status_code == 404:
            return {"data": []}
        resp.raise_for_status()
        return dict(resp.json())

    def wait_for_trace(
        self, service: str, trace_id: str | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        if trace_id is not None:
            body = _poll(
                lambda: self.jaeger_get(f"/api/traces/{trace_id}"),
                lambda b: bool(b.get("data")),
                timeout,
                f"trace {trace_id} of {service}",
            )
            return dict(body["data"][0])
        return self.wait_for_traces(service, 1, timeout=timeout)[0]

    def find_traces(self, service: str, limit: int = 1000) -> list[dict[str, Any]]:
        body = self.jaeger_get("/api/traces", service=service, limit=limit, lookback="1h")
        return list(body.get("data") or [])

    def wait_for_traces(
        self, service: str, count: int, timeout: float = 30
    ) -> list[dict[str, Any]]:
        return _poll(
            lambda: self.find_traces(service),
            lambda traces: len(traces) >= count,
            timeout,
            f"{count} traces of {service}",
        )

    # VictoriaLogs
    def logsql(self, query: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Records matching a LogsQL query (one JSON object a line in the answer)."""
        resp = requests.post(
            f"{self.victorialogs}/select/logsql/query",
            data={"query": query, "limit": str(limit)},
            timeout=10,
        )
        if resp.status_code != 200:
            raise AssertionError(f"LogsQL {query!r} failed ({resp.status_code}): {resp.text}")
        return [json.loads(line) for line in resp.text.splitlines() if line.strip()]

    def wait_for_logs(
        self, query: str, count: int = 1, timeout: float = 30
    ) -> list[dict[str, Any]]:
        return _poll(
            lambda: self.logsql(query),
            lambda records: len(records) >= count,
            timeout,
            f"{count} log records matching LogsQL {query!r}",
        )

    # the collector's own telemetry
    def collector_counter(self, name: str, **labels: str) -> float:
        text = requests.get(self.collector_telemetry, timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def stack(webhook: WebhookReceiver) -> Iterator[Stack]:
    if shutil.which("curl") is None:
        missing_component("curl is needed by scripts/stack.sh")
    missing = _binaries_missing()
    if missing:
        missing_component(
            "stack components not installed: " + ", ".join(missing) + "; run `make stack-deps`"
        )
    # Not under pytest's basetemp: pytest deletes all but the newest three of those, also
    # while this session runs if other pytest runs start meanwhile, and a state dir deleted
    # under a running stack leaves `stack.sh down` without its pid files: the components
    # would outlive the session and hold their fixed ports.
    state = Path(tempfile.mkdtemp(prefix="faultlens-stack-"))
    env = {k: v for k, v in ENV_AT_START.items() if not k.startswith(("FAULTLENS_", "OTEL_"))} | {
        "FAULTLENS_STACK_DIR": str(state),
        "FAULTLENS_STACK_INTERVAL": f"{INTERVAL_S}s",
        "FAULTLENS_SPANMETRICS_FLUSH_INTERVAL": f"{INTERVAL_S}s",
        "FAULTLENS_ALERT_WEBHOOK_URL": webhook.url,
    }
    if "FAULTLENS_CACHE_DIR" in ENV_AT_START:
        env["FAULTLENS_CACHE_DIR"] = ENV_AT_START["FAULTLENS_CACHE_DIR"]
    stack = Stack(state_dir=state, webhook=webhook, env=env)
    try:
        stack.sh("up")
    except AssertionError:
        subprocess.run([str(STACK_SH), "down"], env=env, check=False, capture_output=True)
        raise
    try:
        yield stack
    finally:
        subprocess.run([str(STACK_SH), "down"], env=env, check=False, capture_output=True)
        for data in (
            "prometheus/data",
            "alertmanager/data",
            "collector/file_storage",
            "victorialogs/data",
            "logmetrics/file_storage",
            "redis",
        ):
            shutil.rmtree(state / data, ignore_errors=True)  # the logs stay, for a failure


@pytest.fixture
def unique_service() -> str:
    return f"itest-{uuid.uuid4().hex[:10]}"


# --- a plain OpenTelemetry app ------------------------------------------------------------------
class PlainOtelApp:
    """An app instrumented with the plain OpenTelemetry SDK, shaped per DESIGN.md."""

    def __init__(
        self,
        service_name: str,
        endpoint: str,
        *,
        export_timeout: float = 10,
        metric_interval_ms: int = 1000,
        resource: dict[str, str] | None = None,
    ) -> None:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.resource = Resource.create(
            {
                "service.name": service_name,
                "service.version": "9.9.9",
                "deployment.environment.name": "integration",
                **(resource or {}),
            }
        )
        self.span_exporter = OTLPSpanExporter(
            endpoint=endpoint, insecure=True, timeout=export_timeout
        )
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(self.span_exporter, schedule_delay_millis=200)
        )
        self.metric_reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=export_timeout),
            export_interval_millis=metric_interval_ms,
        )
        self.meter_provider = MeterProvider(
            resource=self.resource, metric_readers=[self.metric_reader]
        )
        self.tracer = self.tracer_provider.get_tracer("faultlens.itest")
        self.meter = self.meter_provider.get_meter("faultlens")
        self.errors_counter = self.meter.create_counter(
            "faultlens.errors", unit="{error}", description="errors recorded by faultlens"
        )

    def record_error(
        self,
        span: Any,
        *,
        exc_type: str = "FileNotFoundError",
        message: str = "missing.txt",
        code: str = "VAL_FILE_NOT_FOUND",
        category: str = "validation",
        severity: str = "high",
        stage: str = "load",
        count: bool = True,
    ) -> None:
        """What faultlens does on an error: event + status + error.type + counter."""
        from opentelemetry.trace import Status, StatusCode

        span.add_event(
            "exception",
            {
                "exception.type": exc_type,
                "exception.message": message,
                "exception.stacktrace": f"Traceback (most recent call last):\n{exc_type}",
                "faultlens.error.code": code,
                "faultlens.error.category": category,
                "faultlens.error.severity": severity,
                "faultlens.error.retryable": False,
                "faultlens.error.fingerprint": "0123456789abcdef",
                "faultlens.error.fingerprint_version": 1,
                "faultlens.stage": stage,
                "faultlens.context.job_id": "7",
                "faultlens.resource.memory.rss": 123456789,
            },
        )
        span.set_status(Status(StatusCode.ERROR, f"{exc_type}: {message}"))
        span.set_attribute("error.type", exc_type)
        if count:
            self.errors_counter.add(
                1, {"code": code, "category": category, "severity": severity, "stage": stage}
            )

    def failing_operation(self, name: str = "load", **error: Any) -> str:
        """One traced operation that fails; returns its trace id (hex)."""
        with self.tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            self.record_error(span, **error)
            return format(span.get_span_context().trace_id, "032x")

    def flush(self, timeout_ms: int = 10_000) -> None:
        self.tracer_provider.force_flush(timeout_ms)
        self.meter_provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel_app(stack: Stack) -> Iterator[Callable[..., PlainOtelApp]]:
    apps: list[PlainOtelApp] = []

    def make(service_name: str, **kw: Any) -> PlainOtelApp:
        kw.setdefault("endpoint", stack.otlp_grpc)
        app = PlainOtelApp(service_name, **kw)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown()
