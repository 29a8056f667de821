"""The two-tier topology of collector/gateway/, run for real: 2 agents, 2 gateways, Jaeger,
Prometheus (remote-write receiver) and Alertmanager on 127.0.0.1 (``scripts/stack.sh
--topology gateway``), fed by three processes whose spans of ONE trace go through BOTH
agents. What it guarantees (README "When one collector is not enough"):

* every trace that contains an error (status ERROR, a ``faultlens.error.code`` event, a
  critical event) arrives in Jaeger whole, each span once;
* the other traces arrive at the configured rate (50% here) within a binomial tolerance;
* span-metric call counts and ``faultlens_errors_total`` are exact: one writer per series,
  nothing counted twice across gateways;
* a gateway stopped for a while and restarted loses nothing: the agents keep its share.

Run it alone (fixed ports, one stack at a time):
    flock /tmp/faultlens-stack.lock .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/integration/test_gateway_topology.py
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from support.ci import missing_component

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
HOST = "127.0.0.1"
AGENT_1 = f"http://{HOST}:4417"
AGENT_2 = f"http://{HOST}:4427"
JAEGER = f"http://{HOST}:26686"
PROMETHEUS = f"http://{HOST}:19090"
GATEWAY_TELEMETRY = {
    "gateway-1": f"http://{HOST}:9088/metrics",
    "gateway-2": f"http://{HOST}:9098/metrics",
}
COMPONENTS = (
    "jaeger",
    "prometheus",
    "alertmanager",
    "gateway-1",
    "gateway-2",
    "agent-1",
    "agent-2",
)
SAMPLING_PERCENTAGE = 50
DECISION_WAIT_S = 5
ENV_AT_START = dict(os.environ)

FRONT = "gw-front"  # the root span of every trace, through agent-1
BACK = "gw-back"  # two child spans: "query" through agent-2, "charge" through agent-1
ERROR_KINDS = ("status", "code", "critical")


# --- the processes that send ---------------------------------------------------------------
# Run as `python -c SENDER <json>`: a real process per role, each with its own SDK, exporting
# OTLP/gRPC to its agent. All start emitting at the same moment (a barrier on stdin), so the
# spans of a trace reach the gateways well inside the tail-sampling decision wait.
SENDER = r"""
import json, sys, time
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode,
                                 TraceFlags)

args = json.loads(sys.argv[1])
role, plan = args["role"], args["plan"]

class PlannedRoots(IdGenerator):
    # The root spans get the planned (seeded) trace and span ids, in plan order.
    def __init__(self):
        self._ids = iter(plan)
        self._span = None
    def generate_trace_id(self):
        trace_id, span_id, _ = next(self._ids)
        self._span = span_id
        return trace_id
    def generate_span_id(self):
        return self._span

resource = Resource.create(
    {"service.name": args["service"], "service.instance.id": args["instance"]})
ids = PlannedRoots() if role == "front" else RandomIdGenerator()
tp = TracerProvider(resource=resource, id_generator=ids)
tp.add_span_processor(BatchSpanProcessor(
    OTLPSpanExporter(endpoint=args["endpoint"], insecure=True), schedule_delay_millis=200))
mp = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=args["endpoint"], insecure=True), export_interval_millis=500)])
errors = mp.get_meter("faultlens").create_counter("faultlens.errors", unit="{error}")
tracer = tp.get_tracer("faultlens.itest.gateway")

print("ready", flush=True)  # then wait for the word to start, given to all at once
sys.stdin.readline()
for trace_id, root_span_id, kind in plan:
    if role == "front":
        with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER):
            pass
        continue
    parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id, root_span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    name = "query" if role == "back-query" else "charge"
    with tracer.start_as_current_span(name, context=parent, record_exception=False,
                                      set_status_on_exception=False) as span:
        if name != "charge" or kind == "ok":
            continue
        if kind == "status":  # status ERROR only: no faultlens event
            span.set_status(Status(StatusCode.ERROR, "TimeoutError: upstream"))
            span.set_attribute("error.type", "TimeoutError")
            errors.add(1, {"code": "NET_TIMEOUT", "severity": "high"})
        elif kind == "code":  # a faultlens event only: the span's status stays UNSET
            span.add_event("exception", {"exception.type": "CardDeclined",
                "faultlens.error.code": "PAY_DECLINED", "faultlens.error.severity": "medium"})
            errors.add(1, {"code": "PAY_DECLINED", "severity": "medium"})
        elif kind == "critical":  # only the severity says it matters
            span.add_event("exception", {"exception.type": "LedgerCorrupt",
                "faultlens.error.severity": "critical"})
            errors.add(1, {"code": "DATA_CORRUPT", "severity": "critical"})
tp.force_flush(30_000)
mp.force_flush(30_000)
tp.shutdown()
mp.shutdown()
"""

ROLES = (("front", FRONT, AGENT_1), ("back-query", BACK, AGENT_2), ("back-charge", BACK, AGENT_1))


@dataclass(frozen=True)
class Planned:
    trace_id: int
    root_span_id: int
    kind: str  # "ok" or one of ERROR_KINDS

    @property
    def hex(self) -> str:
        return format(self.trace_id, "032x")


def make_plan(rng: random.Random, ok: int, status: int, code: int, critical: int) -> list[Planned]:
    kinds = ["ok"] * ok + ["status"] * status + ["code"] * code + ["critical"] * critical
    rng.shuffle(kinds)
    return [Planned(rng.getrandbits(128) or 1, rng.getrandbits(64) or 1, k) for k in kinds]


def send(plan: list[Planned]) -> None:
    """Three processes, spans of every trace through both agents; returns when all exited."""
    rows = [(p.trace_id, p.root_span_id, p.kind) for p in plan]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SENDER,
                json.dumps(
                    {
                        "role": role,
                        # a new process is a new instance (its counters start at 0)
                        "instance": f"{role}-{uuid.uuid4().hex[:8]}",
                        "service": service,
                        "endpoint": endpoint,
                        "plan": rows,
                    }
                ),
            ],
            env={k: v for k, v in ENV_AT_START.items() if not k.startswith("OTEL_")},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role, service, endpoint in ROLES
    ]
    # A barrier: all have imported the SDK and made their providers before any emits, so the
    # spans of a trace reach its gateway well inside the decision wait even on a slow machine.
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", "sender died"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, "a sender process failed"


# --- the stack ----------------------------------------------------------------------------------
class GatewayStack:
    def __init__(self, state: Path) -> None:
        self.env = {
            k: v for k, v in ENV_AT_START.items() if not k.startswith(("FAULTLENS_", "OTEL_"))
        } | {
            "FAULTLENS_STACK_TOPOLOGY": "gateway",
            "FAULTLENS_STACK_DIR": str(state),
            "FAULTLENS_STACK_INTERVAL": "2s",
            "FAULTLENS_SPANMETRICS_FLUSH_INTERVAL": "1s",
            "FAULTLENS_GATEWAY_SAMPLING_PERCENTAGE": str(SAMPLING_PERCENTAGE),
            "FAULTLENS_GATEWAY_DECISION_WAIT": f"{DECISION_WAIT_S}s",
        }
        if "FAULTLENS_CACHE_DIR" in ENV_AT_START:
            self.env["FAULTLENS_CACHE_DIR"] = ENV_AT_START["FAULTLENS_CACHE_DIR"]
        self.state = state

    def sh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(STACK_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"stack.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
                f"\nlogs: {self.state / 'logs'}"
            )
        return proc

    def prom(self, expr: str) -> float:
        body = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def wait_prom(self, expr: str, want: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while (got := self.prom(expr)) != want and time.monotonic() < deadline:
            time.sleep(0.5)
        if got != want:  # say which series hold what, for the failure message
            inner = expr.removeprefix("sum(").removesuffix(")")
            body = requests.get(
                f"{PROMETHEUS}/api/v1/query", params={"query": inner}, timeout=10
            ).json()
            series = [(r["metric"], r["value"][1]) for r in body["data"]["result"]]
            print(f"{expr} = {got}, want {want}; series: {series}")
        return got

    def traces(self) -> dict[str, list[dict[str, Any]]]:
        """trace id (32 hex) -> spans, for every trace with a span of FRONT."""
        resp = requests.get(
            f"{JAEGER}/api/traces",
            params={"service": FRONT, "limit": 5000, "lookback": "1h"},
            timeout=30,
        )
        if resp.status_code == 404:
            return {}
        resp.raise_for_status()
        return {t["traceID"].rjust(32, "0"): t["spans"] for t in resp.json()["data"] or []}

    def accepted(self, gateway: str, receiver: str) -> float:
        text = requests.get(GATEWAY_TELEMETRY[gateway], timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("otelcol_receiver_accepted_spans_total{")
            and f'receiver="{receiver}"' in line
        )


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    if shutil.which("curl") is None:
        missing_component("curl is needed by scripts/stack.sh")
    stack = GatewayStack(tmp_path_factory.mktemp("gateway-stack"))
    missing = [c for c in COMPONENTS if stack.sh("bin", c, check=False).returncode != 0]
    if missing:
        missing_component(
            f"gateway topology components not installed: {', '.join(missing)};"
            " run `make stack-deps`"
        )
    try:
        stack.sh("up")
        yield stack
    finally:
        stack.sh("down", check=False)


def within_binomial(n: int, p: float, got: int, z: float = 4.5) -> tuple[int, int]:
    """The range a Binomial(n, p) count falls in except with probability ~7e-6 (4.5 sigma)."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return math.floor(mean - z * sd), math.ceil(mean + z * sd)


def calls(service: str, status: str | None = None) -> str:
    status_sel = f', status_code="{status}"' if status else ""
    return f'sum(traces_span_metrics_calls_total{{service_name="{service}"{status_sel}}})'


def test_whole_error_traces_exact_counts_and_a_gateway_restart_loses_nothing(gw):
    rng = random.Random(20261201)
    first = make_plan(rng, ok=120, status=30, code=30, critical=20)
    second = make_plan(rng, ok=40, status=10, code=10, critical=5)

    # 1. 200 traces, every one through both agents.
    send(first)
    n1 = len(first)
    errors1 = sum(p.kind != "ok" for p in first)
    assert gw.wait_prom(calls(FRONT), n1) == n1
    assert gw.wait_prom(calls(BACK), 2 * n1) == 2 * n1
    assert gw.wait_prom(f'sum(faultlens_errors_total{{job="{BACK}"}})', errors1) == errors1

    # Both gateways take part: trace IDs spread over both sampling inputs.
    for name in GATEWAY_TELEMETRY:
        assert gw.accepted(name, "otlp/sampling") > 0, f"{name} got no trace to sample"
    # 2. Stop the gateway that writes span metrics (services are routed to one gateway each);
    #    while it is down, send 65 more traces. The agents keep its share.
    owner = max(GATEWAY_TELEMETRY, key=lambda g: gw.accepted(g, "otlp/metrics"))
    time.sleep(DECISION_WAIT_S + 2)  # its traces decided and handed to the Jaeger exporter
    gw.sh("stop", owner)
    try:
        send(second)
        time.sleep(DECISION_WAIT_S)  # the agents retry against the stopped gateway
    finally:
        gw.sh("start", owner)

    everything = first + second
    n = len(everything)
    errors = sum(p.kind != "ok" for p in everything)
    status_errors = sum(p.kind == "status" for p in everything)

    # 3. Exact counts: nothing lost while the gateway was down, nothing counted twice.
    assert gw.wait_prom(calls(FRONT), n, timeout=90) == n
    assert gw.wait_prom(calls(BACK), 2 * n) == 2 * n
    assert gw.wait_prom(calls(BACK, "STATUS_CODE_ERROR"), status_errors) == status_errors
    assert gw.wait_prom(f'sum(faultlens_errors_total{{job="{BACK}"}})', errors) == errors

    # 4. Every error trace whole in Jaeger (root + query + charge, each once).
    want_errors = {p.hex for p in everything if p.kind != "ok"}
    deadline = time.monotonic() + 60
    while not want_errors <= set(found := gw.traces()) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(DECISION_WAIT_S + 2)  # any late or duplicate span would arrive by now
    found = gw.traces()
    missing = want_errors - set(found)
    assert not missing, f"{len(missing)} error traces never arrived, e.g. {sorted(missing)[:3]}"
    planned = {p.hex: p for p in everything}
    assert set(found) <= set(planned), "traces that were never sent"
    for trace_id, spans in found.items():
        names = Counter(s["operationName"] for s in spans)
        assert names == Counter({"GET /checkout": 1, "query": 1, "charge": 1}), (
            f"trace {trace_id} ({planned[trace_id].kind}) arrived as {dict(names)}"
        )

    # 5. The rest: at the configured rate, within the binomial tolerance.
    ok_sent = sum(p.kind == "ok" for p in everything)
    ok_kept = sum(planned[t].kind == "ok" for t in found)
    low, high = within_binomial(ok_sent, SAMPLING_PERCENTAGE / 100, ok_kept)
    assert low <= ok_kept <= high, (
        f"{ok_kept} of {ok_sent} non-error traces kept, want {low}..{high}"
    )


def test_every_link_it_prints_answers_on_the_running_topology(gw):
    out = gw.sh("urls").stdout
    links = re.findall(r"https?://\S+", out)
    assert len(links) >= 6, out
    for link in links:
        resp = requests.get(link, timeout=10)
        assert resp.status_code == 200, f"{link} answered {resp.status_code}"
    assert "(not running)" not in out


def test_an_agent_with_the_dns_resolver_of_compose_reaches_the_gateways(gw, tmp_path):
    # agent.yaml + agent.dns.yaml as docker-compose.yml runs them, with the name given as an
    # address that resolves the same on every machine (compose resolves "gateways").
    binary = gw.sh("bin", "agent-1").stdout.strip()
    env = gw.env | {
        "FAULTLENS_AGENT_OTLP_GRPC_ENDPOINT": f"{HOST}:4437",
        "FAULTLENS_AGENT_OTLP_HTTP_ENDPOINT": f"{HOST}:4438",
        "FAULTLENS_AGENT_HEALTH_ENDPOINT": f"{HOST}:13253",
        "FAULTLENS_AGENT_TELEMETRY_PORT": "9008",
        "FAULTLENS_AGENT_STORAGE_DIR": str(tmp_path / "queue"),
        "FAULTLENS_GATEWAY_DNS_NAME": HOST,
    }
    log = (tmp_path / "agent-dns.log").open("w")
    agent = subprocess.Popen(
        [
            binary,
            "--config",
            str(REPO / "collector/gateway/agent.yaml"),
            "--config",
            str(REPO / "collector/gateway/agent.dns.yaml"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://{HOST}:13253/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert agent.poll() is None, (tmp_path / "agent-dns.log").read_text()
            assert time.monotonic() < deadline, "the DNS agent never became healthy"
            time.sleep(0.3)

        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.trace import Status, StatusCode

        # Its own service: the other test's Jaeger searches (by FRONT) never see it.
        provider = TracerProvider(resource=Resource.create({"service.name": "gw-dns"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{HOST}:4437", insecure=True))
        )
        with provider.get_tracer("faultlens.itest.dns").start_as_current_span("dns") as span:
            span.set_status(Status(StatusCode.ERROR, "through the DNS-resolved gateway"))
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()

        deadline = time.monotonic() + DECISION_WAIT_S + 30
        while requests.get(f"{JAEGER}/api/traces/{trace_id}", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the trace never reached Jaeger"
            time.sleep(1)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        log.close()
