"""The gateway topology's files (collector/gateway/) and the production Jaeger configs
(collector/jaeger-production/) are valid for the very builds that run them, and say what the
README promises: traces routed by trace ID, span metrics by service and computed before
sampling, every error trace kept, a persistent queue on every hop, ports of its own."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from support.ci import missing_component

REPO = Path(__file__).resolve().parents[2]
GATEWAY = REPO / "collector" / "gateway"
PRODUCTION = REPO / "collector" / "jaeger-production"
STACK_SH = REPO / "scripts" / "stack.sh"
AGENT = yaml.safe_load((GATEWAY / "agent.yaml").read_text())
GW = yaml.safe_load((GATEWAY / "gateway.yaml").read_text())
# Captured at import: the suite's autouse fixture strips FAULTLENS_* (FAULTLENS_CACHE_DIR says
# where the builds are) from the environment each test runs in.
ENV_AT_START = dict(os.environ)
ENV_DEFAULT = re.compile(r"\$\{env:([A-Z_]+):-([^}]*)\}")


def stack_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK_SH), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=ENV_AT_START | (env or {}),
    )


@pytest.fixture(scope="module")
def gateway_collector() -> str:
    proc = stack_sh("--topology", "gateway", "bin", "gateway-1")
    if proc.returncode != 0:
        missing_component(
            f"the gateway topology's collector is not built ({proc.stdout.strip()});"
            " run `make stack-deps`"
        )
    return proc.stdout.strip()


def pinned(name: str) -> str:
    (version,) = re.findall(rf"^{name}=(\S+)$", STACK_SH.read_text(), re.M)
    return version


# --- the build ---------------------------------------------------------------------------------
def test_its_manifest_pins_one_release_everywhere():
    manifest = yaml.safe_load((GATEWAY / "builder-config.yaml").read_text())
    release = pinned("OTELCOL_GATEWAY_VERSION")
    assert str(manifest["dist"]["version"]) == release
    for kind in ("receivers", "processors", "exporters", "connectors", "extensions"):
        for entry in manifest[kind]:
            path, version = entry["gomod"].split()
            assert version == f"v{release}", path


def test_the_built_binary_is_the_pinned_release(gateway_collector, run):
    assert run(gateway_collector, "--version").split()[-1] == pinned("OTELCOL_GATEWAY_VERSION")


@pytest.mark.parametrize(
    "configs", [["agent.yaml"], ["agent.yaml", "agent.dns.yaml"], ["gateway.yaml"]]
)
def test_the_collector_validates_each_tier(gateway_collector, run, tmp_path, configs):
    args = [arg for name in configs for arg in ("--config", str(GATEWAY / name))]
    run(
        gateway_collector,
        "validate",
        *args,
        env={
            "FAULTLENS_AGENT_STORAGE_DIR": str(tmp_path),
            "FAULTLENS_GATEWAY_STORAGE_DIR": str(tmp_path),
        },
    )


def test_a_failing_gateway_build_fails_deps_with_its_error(tmp_path):
    # Everything else cached (fake), Go failing: the gateway build's own error stops deps.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("prometheus", "promtool", "prometheus-alertmanager", "docker-compose"):
        (fake_bin / name).write_text("#!/bin/sh\nexit 0\n")
        (fake_bin / name).chmod(0o755)
    (fake_bin / "redis-server").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "redis-server").chmod(0o755)
    (fake_bin / "go").write_text('#!/bin/sh\necho "go: simulated failure of: $*" >&2\nexit 1\n')
    (fake_bin / "go").chmod(0o755)
    env = {
        "FAULTLENS_CACHE_DIR": str(tmp_path / "cache"),
        "FAULTLENS_STACK_DIR": str(tmp_path / "state"),
        "PATH": f"{fake_bin}:/usr/bin:/bin",
    }
    for name in ("collector", "jaeger"):
        binary = Path(stack_sh("bin", name, env=env).stdout.strip())
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\nexit 0\n")
        binary.chmod(0o755)
    proc = stack_sh("deps", env=env)
    assert proc.returncode == 1
    assert "installing ocb " + pinned("OTELCOL_GATEWAY_VERSION") in proc.stderr
    assert "simulated failure of: install go.opentelemetry.io/collector/cmd/builder" in proc.stderr
    assert stack_sh("--topology", "gateway", "bin", "agent-1", env=env).returncode == 1


# --- what the configs say ----------------------------------------------------------------------
def test_agents_route_traces_by_trace_id_and_span_metric_inputs_by_service():
    exporters = AGENT["exporters"]
    assert exporters["load_balancing/by_trace"]["routing_key"] == "traceID"
    assert exporters["load_balancing/by_service"]["routing_key"] == "service"
    pipelines = AGENT["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == [
        "load_balancing/by_trace",
        "load_balancing/by_service",
    ]
    assert pipelines["logs"]["exporters"] == ["load_balancing/by_trace"]
    assert pipelines["metrics"]["exporters"] == ["load_balancing/by_service"]


def test_gateways_compute_span_metrics_from_the_unsampled_service_routed_spans():
    pipelines = GW["service"]["pipelines"]
    sampled = pipelines["traces/sampling"]
    assert sampled["receivers"] == ["otlp/sampling"]
    assert "tail_sampling" in sampled["processors"]
    assert "span_metrics" not in sampled["exporters"]
    metrics_in = pipelines["traces/span_metrics"]
    assert metrics_in["receivers"] == ["otlp/metrics"]
    assert "tail_sampling" not in metrics_in["processors"]
    assert metrics_in["exporters"] == ["span_metrics"]
    assert set(pipelines["metrics"]["receivers"]) == {"otlp/metrics", "span_metrics"}
    assert pipelines["metrics"]["exporters"] == ["prometheus_remote_write"]


def test_tail_sampling_keeps_every_error_and_samples_the_rest():
    policies = {p["name"]: p for p in GW["processors"]["tail_sampling"]["policies"]}
    assert policies["errors"]["status_code"]["status_codes"] == ["ERROR"]
    code = policies["error-code"]["ottl_condition"]
    assert any("faultlens.error.code" in c for c in code["span"])
    assert any("faultlens.error.code" in c for c in code["spanevent"])
    critical = policies["critical"]["ottl_condition"]
    assert any('faultlens.error.severity"] == "critical"' in c for c in critical["spanevent"])
    rest = policies["the-rest"]
    assert rest["type"] == "probabilistic"
    assert rest["probabilistic"]["sampling_percentage"] == (
        "${env:FAULTLENS_GATEWAY_SAMPLING_PERCENTAGE:-10}"
    )
    # No policy limits the error policies (no rate_limiting/and/composite around them).
    assert {p["type"] for p in policies.values()} == {
        "status_code",
        "ottl_condition",
        "probabilistic",
    }


def test_every_hop_has_a_queue_that_never_gives_up():
    for name in ("load_balancing/by_trace", "load_balancing/by_service"):
        exporter = AGENT["exporters"][name]
        assert exporter["sending_queue"]["storage"] == "file_storage", name
        assert exporter["retry_on_failure"]["max_elapsed_time"] == 0, name
        per_gateway = exporter["protocol"]["otlp"]
        assert per_gateway["sending_queue"]["enabled"] is True, name
        assert per_gateway["retry_on_failure"]["max_elapsed_time"] == 0, name
    jaeger = GW["exporters"]["otlp_grpc/jaeger"]
    assert jaeger["sending_queue"]["storage"] == "file_storage"
    assert jaeger["retry_on_failure"]["max_elapsed_time"] == 0
    assert GW["exporters"]["prometheus_remote_write"]["retry_on_failure"]["max_elapsed_time"] == 0
    for config in (AGENT, GW):
        for pipeline in config["service"]["pipelines"].values():
            assert pipeline["processors"][0] == "memory_limiter"


def test_the_span_metrics_have_the_names_of_the_single_collector_stack():
    single = yaml.safe_load((REPO / "collector" / "otelcol.yaml").read_text())
    assert GW["connectors"]["span_metrics"] == single["connectors"]["span_metrics"]


def test_prometheus_accepts_the_topology_config(tool, run):
    run(tool("promtool"), "check", "config", "collector/gateway/prometheus.yml")


# --- ports -------------------------------------------------------------------------------------
DEFAULT_PORTS = {4317, 4318, 13133, 8888, 8889, 14317, 14318, 16685, 16686, 9090, 9093, 6379}
DEFAULT_PORTS |= {9428, 4319, 13134, 8890}  # VictoriaLogs; the log-metrics collector


def test_its_ports_are_its_own_and_agree_with_the_config_defaults():
    out = stack_sh("--topology", "gateway", "urls", env={"FAULTLENS_STACK_DIR": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    printed = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", out.stdout)}
    assert {4417, 4427, 13333, 13343, 26686, 19090, 19093} <= printed
    assert not printed & DEFAULT_PORTS
    # agent.yaml's default gateway lists are what stack.sh gives the agents.
    defaults = dict(ENV_DEFAULT.findall((GATEWAY / "agent.yaml").read_text()))
    assert defaults["FAULTLENS_GATEWAY_SAMPLING_ENDPOINTS"] == "[127.0.0.1:4517, 127.0.0.1:4527]"
    assert defaults["FAULTLENS_GATEWAY_METRICS_ENDPOINTS"] == "[127.0.0.1:4518, 127.0.0.1:4528]"
    targets = (GATEWAY / "targets/local/collector-telemetry.yml").read_text()
    assert all(f"127.0.0.1:{p}" in targets for p in (8988, 8998, 9088, 9098))


def test_an_unknown_topology_is_refused():
    proc = stack_sh("--topology", "mesh", "status")
    assert proc.returncode == 2
    assert "unknown topology: mesh" in proc.stderr


def test_render_writes_the_topology_prometheus_config(tmp_path):
    proc = stack_sh(
        "--topology",
        "gateway",
        "render",
        env={"FAULTLENS_STACK_DIR": str(tmp_path), "FAULTLENS_STACK_INTERVAL": "2s"},
    )
    assert proc.returncode == 0, proc.stderr
    rendered = (tmp_path / "prometheus" / "prometheus.yml").read_text()
    assert "remote-write-receiver" in rendered and "scrape_interval: 2s" in rendered
    targets = sorted(p.name for p in (tmp_path / "prometheus" / "targets").glob("*.yml"))
    assert targets == ["alertmanager.yml", "collector-telemetry.yml"]
    assert "19093" in (tmp_path / "prometheus" / "targets" / "alertmanager.yml").read_text()


# --- Jaeger with production storage (files only, not run here) --------------------------------
@pytest.mark.parametrize("config", ["jaeger-opensearch.yaml", "jaeger-cassandra.yaml"])
def test_jaeger_validates_the_production_storage_configs(tool, run, config):
    run(
        tool("jaeger"),
        "validate",
        "--config",
        str(PRODUCTION / config),
        env={"FAULTLENS_JAEGER_CASSANDRA_PASSWORD": "from-a-secret"},
    )


@pytest.mark.parametrize("config", ["jaeger-opensearch.yaml", "jaeger-cassandra.yaml"])
def test_the_production_configs_keep_no_secret_and_no_self_tracing(config):
    text = (PRODUCTION / config).read_text()
    parsed = yaml.safe_load(text)
    assert parsed["extensions"]["jaeger_query"]["enable_tracing"] is False
    assert not re.search(r"password:\s*(?!\$\{env:)\S", text), "a password written in the file"
    assert "insecure: false" in text


def test_metrics_reach_prometheus_in_order_and_a_late_sample_never_loses_a_request():
    # Prometheus rolls back a whole remote-write request with one out-of-order sample in it,
    # and the exporter drops a refused request: one sender per hop, and a window for late
    # samples (a restarted gateway receives the agents' queued snapshots at once).
    by_service = AGENT["exporters"]["load_balancing/by_service"]["protocol"]["otlp"]
    assert by_service["sending_queue"]["num_consumers"] == 1
    prw = GW["exporters"]["prometheus_remote_write"]
    assert prw["remote_write_queue"]["num_consumers"] == 1
    assert prw["max_batch_request_parallelism"] == 1
    prometheus = yaml.safe_load((GATEWAY / "prometheus.yml").read_text())
    assert prometheus["storage"]["tsdb"]["out_of_order_time_window"] == "30m"
