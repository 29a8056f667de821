"""docker-compose.yml runs the same stack as scripts/stack.sh: it mounts the very files in
collector/, publishes the same ports (on 127.0.0.1 only) and pins the same versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = REPO / "collector"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_DEFAULT = re.compile(r"\$\{env:(FAULTLENS_[A-Z_]+):-([^}]*)\}")


def mounts(service: str) -> dict[str, str]:
    """host path (relative to the repo) -> container path, for bind mounts."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[str(Path(source))] = target
    return found


def published(service: str) -> dict[int, str]:
    """container port -> host address it is published on."""
    found = {}
    for port in SERVICES[service].get("ports", []):
        host, host_port, container_port = str(port).split(":")
        assert host_port == container_port, port
        found[int(container_port)] = host
    return found


def test_docker_compose_accepts_the_file(tool, run):
    run(tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q")


def test_every_published_port_is_bound_to_loopback():
    for name in SERVICES:
        for port, host in published(name).items():
            assert host == "127.0.0.1", f"{name} publishes {port} on {host}"


@pytest.mark.parametrize(
    ("service", "files"),
    [
        ("collector", ["collector/otelcol.yaml"]),
        ("jaeger", ["collector/jaeger.yaml"]),
        ("logmetrics", ["collector/logmetrics/logmetrics.yaml"]),
        (
            "prometheus",
            ["collector/prometheus.yml", "collector/rules", "collector/targets/compose"],
        ),
        ("alertmanager", ["collector/alertmanager.yml"]),
        (
            "grafana",
            [
                "collector/grafana/provisioning/datasources",
                "collector/grafana/provisioning/dashboards",
                "collector/grafana/dashboards",
            ],
        ),
    ],
)
def test_each_service_mounts_the_files_the_local_stack_uses(service, files):
    mounted = mounts(service)
    for path in files:
        assert path in mounted, f"{service} does not mount {path}"
        assert (REPO / path).exists(), path
    # and its command reads the mounted config file
    command = " ".join(SERVICES[service].get("command", []))
    for path, target in mounted.items():
        if path.endswith((".yaml", ".yml")):
            assert target in command, f"{service} mounts {path} at {target} but does not use it"


def test_prometheus_targets_match_between_local_and_compose():
    local = sorted(p.name for p in (COLLECTOR / "targets/local").glob("*.yml"))
    compose = sorted(p.name for p in (COLLECTOR / "targets/compose").glob("*.yml"))
    assert local == compose
    for name in local:
        here = yaml.safe_load((COLLECTOR / "targets/local" / name).read_text())
        there = yaml.safe_load((COLLECTOR / "targets/compose" / name).read_text())
        ports_here = [t.split(":")[1] for g in here for t in g["targets"]]
        ports_there = [t.split(":")[1] for g in there for t in g["targets"]]
        assert ports_here == ports_there, name
        assert all(t.startswith("127.0.0.1:") for g in here for t in g["targets"])


@pytest.mark.parametrize(
    ("service", "config"),
    [
        ("collector", "otelcol.yaml"),
        ("jaeger", "jaeger.yaml"),
        ("logmetrics", "logmetrics/logmetrics.yaml"),
    ],
)
def test_compose_overrides_every_address_with_the_same_port(service, config):
    # The config files default to 127.0.0.1:<port>; compose must swap only the host.
    defaults = dict(ENV_DEFAULT.findall((COLLECTOR / config).read_text()))
    env = SERVICES[service]["environment"]
    addresses = {k: v for k, v in defaults.items() if re.fullmatch(r"127\.0\.0\.1:\d+", v)}
    assert addresses
    for var, default in addresses.items():
        assert var in env, f"{service}: {var} (default {default}) not set in compose"
        assert env[var].split(":")[1] == default.split(":")[1], var


def test_published_ports_are_the_ports_of_the_design():
    assert set(published("collector")) == {4317, 4318, 13133, 8888, 8889}
    assert set(published("jaeger")) == {16686}
    assert set(published("prometheus")) == {9090}
    assert set(published("alertmanager")) == {9093}
    assert set(published("grafana")) == {3000}
    assert set(published("victorialogs")) == {9428}
    assert not published("logmetrics"), "only the collector talks to the log counter"
    assert "8888" in SERVICES["collector"]["environment"]["FAULTLENS_COLLECTOR_TELEMETRY_PORT"]


def test_images_pin_the_versions_of_the_local_stack():
    script = (REPO / "scripts/stack.sh").read_text()
    # The contrib image carries the contrib release (built on the same core release).
    otelcol = re.search(r"^OTELCOL_CONTRIB_VERSION=(\S+)$", script, re.M).group(1)
    jaeger = re.search(r"^JAEGER_VERSION=(\S+)$", script, re.M).group(1)
    assert SERVICES["collector"]["image"] == f"otel/opentelemetry-collector-contrib:{otelcol}"
    assert SERVICES["jaeger"]["image"] == f"jaegertracing/jaeger:{jaeger}"
    victorialogs = re.search(r"^VICTORIALOGS_VERSION=(\S+)$", script, re.M).group(1)
    assert SERVICES["victorialogs"]["image"] == f"victoriametrics/victoria-logs:v{victorialogs}"
    # The log counter runs the release of its local build (collector/logmetrics/).
    counter = re.search(r"^OTELCOL_LOGMETRICS_VERSION=(\S+)$", script, re.M).group(1)
    assert SERVICES["logmetrics"]["image"] == f"otel/opentelemetry-collector-contrib:{counter}"


def test_victorialogs_runs_as_the_local_stack_runs_it():
    # The same flags as start_one in scripts/stack.sh, the address and data path aside.
    script = (REPO / "scripts/stack.sh").read_text()
    local = script.split("    victorialogs)\n", 1)[1].split(";;", 1)[0]
    flags = SERVICES["victorialogs"]["command"]
    assert "-httpListenAddr=victorialogs:9428" in flags
    assert '-httpListenAddr="$HOST:9428"' in local
    retention = [f for f in flags if f.startswith("-retentionPeriod=")]
    assert retention == ["-retentionPeriod=7d"] and "-retentionPeriod=7d" in local
    (data,) = [f.split("=", 1)[1] for f in flags if f.startswith("-storageDataPath=")]
    assert any(v.endswith(f":{data}") for v in SERVICES["victorialogs"]["volumes"])


def test_the_collector_writes_logs_to_victorialogs_and_the_log_counter_writes_back():
    env = SERVICES["collector"]["environment"]
    assert env["FAULTLENS_VICTORIALOGS_ENDPOINT"] == "victorialogs:9428"
    assert env["FAULTLENS_LOGMETRICS_OTLP_ENDPOINT"] == "logmetrics:4319"
    assert {"victorialogs", "logmetrics"} <= set(SERVICES["collector"]["depends_on"])
    counter = SERVICES["logmetrics"]["environment"]
    assert counter["FAULTLENS_COLLECTOR_OTLP_ENDPOINT"] == "collector:4317"
    for var, value in counter.items():
        if var.startswith("FAULTLENS_LOGMETRICS_") and var.endswith("_ENDPOINT"):
            assert value.startswith("logmetrics:"), (var, value)
    assert "collector" not in SERVICES["logmetrics"].get("depends_on", [])  # no start cycle


def test_the_example_app_sends_to_the_collector():
    env = SERVICES["app"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"
    assert "collector" in SERVICES["app"]["depends_on"]


# --- the gateway topology (profile "gateway", collector/gateway/) ---------------------------
GATEWAY = REPO / "collector" / "gateway"
GATEWAY_SERVICES = [name for name, s in SERVICES.items() if "gateway" in s.get("profiles", [])]


def test_the_gateway_profile_is_accepted_by_docker_compose(tool, run):
    run(tool("docker-compose"), "-f", "docker-compose.yml", "--profile", "gateway", "config", "-q")


def test_the_gateway_topology_is_a_profile_of_its_own():
    assert sorted(GATEWAY_SERVICES) == [
        "agent-1",
        "agent-2",
        "gateway-1",
        "gateway-2",
        "gw-alertmanager",
        "gw-jaeger",
        "gw-prometheus",
    ]
    # `docker compose up` without the profile starts the single-collector stack only.
    assert all(not SERVICES[s].get("profiles") for s in SERVICES if s not in GATEWAY_SERVICES)


@pytest.mark.parametrize(
    ("service", "files"),
    [
        ("agent-1", ["collector/gateway/agent.yaml", "collector/gateway/agent.dns.yaml"]),
        ("agent-2", ["collector/gateway/agent.yaml", "collector/gateway/agent.dns.yaml"]),
        ("gateway-1", ["collector/gateway/gateway.yaml"]),
        ("gateway-2", ["collector/gateway/gateway.yaml"]),
        ("gw-jaeger", ["collector/jaeger.yaml"]),
        (
            "gw-prometheus",
            [
                "collector/gateway/prometheus.yml",
                "collector/rules",
                "collector/gateway/targets/compose",
            ],
        ),
        ("gw-alertmanager", ["collector/alertmanager.yml"]),
    ],
)
def test_each_gateway_service_mounts_and_uses_the_files_of_the_local_topology(service, files):
    test_each_service_mounts_the_files_the_local_stack_uses(service, files)


def test_gateway_prometheus_targets_match_between_local_and_compose():
    local = sorted(p.name for p in (GATEWAY / "targets/local").glob("*.yml"))
    compose = sorted(p.name for p in (GATEWAY / "targets/compose").glob("*.yml"))
    assert local == compose == ["alertmanager.yml", "collector-telemetry.yml"]
    here = yaml.safe_load((GATEWAY / "targets/local/alertmanager.yml").read_text())
    there = yaml.safe_load((GATEWAY / "targets/compose/alertmanager.yml").read_text())
    assert [t.split(":")[1] for g in here for t in g["targets"]] == ["19093"]
    assert [t.split(":")[1] for g in there for t in g["targets"]] == ["19093"]


@pytest.mark.parametrize(
    ("service", "config"), [("agent-1", "agent.yaml"), ("gateway-1", "gateway.yaml")]
)
def test_compose_gives_the_first_agent_and_gateway_the_ports_of_the_config_defaults(
    service, config
):
    defaults = dict(ENV_DEFAULT.findall((GATEWAY / config).read_text()))
    env = SERVICES[service]["environment"]
    addresses = {k: v for k, v in defaults.items() if re.fullmatch(r"127\.0\.0\.1:\d+", v)}
    assert addresses
    for var, default in addresses.items():
        # its own addresses on its hostname; where it sends, on the receiver's
        host = "gw-jaeger" if var == "FAULTLENS_JAEGER_OTLP_ENDPOINT" else service
        assert env[var] == f"{host}:{default.split(':')[1]}", var


def test_each_collector_of_the_topology_binds_its_own_hostname():
    for name in ("agent-1", "agent-2", "gateway-1", "gateway-2"):
        env = SERVICES[name]["environment"]
        assert SERVICES[name]["hostname"] == name
        for var, value in env.items():
            if var.endswith("_ENDPOINT") and "JAEGER" not in var:
                assert value.startswith(f"{name}:"), (name, var, value)


def test_the_agents_find_every_gateway_by_one_dns_name():
    for agent in ("agent-1", "agent-2"):
        name = SERVICES[agent]["environment"]["FAULTLENS_GATEWAY_DNS_NAME"]
        assert "--config=/etc/otelcol/agent.dns.yaml" in SERVICES[agent]["command"]
        for gateway in ("gateway-1", "gateway-2"):
            assert name in SERVICES[gateway]["networks"]["default"]["aliases"]
    # With DNS every gateway must listen on the ports the resolver is told.
    dns = yaml.safe_load((GATEWAY / "agent.dns.yaml").read_text())["exporters"]
    ports = {e["resolver"]["dns"]["port"] for e in dns.values()}
    for gateway in ("gateway-1", "gateway-2"):
        env = SERVICES[gateway]["environment"]
        listening = {
            env["FAULTLENS_GATEWAY_SAMPLING_ENDPOINT"].split(":")[1],
            env["FAULTLENS_GATEWAY_METRICS_ENDPOINT"].split(":")[1],
        }
        assert listening == ports
        assert "ports" not in SERVICES[gateway], "gateways are reached through the agents only"


def test_the_gateway_topology_publishes_the_local_ports_and_none_of_the_stack():
    gateway_ports = {p for s in GATEWAY_SERVICES for p in published(s)}
    assert gateway_ports == {4417, 4418, 4427, 4428, 26686, 19090, 19093}
    stack_ports = {p for s in SERVICES if s not in GATEWAY_SERVICES for p in published(s)}
    assert not gateway_ports & stack_ports


def test_the_gateway_images_pin_the_release_of_the_local_topology():
    script = (REPO / "scripts/stack.sh").read_text()
    version = re.search(r"^OTELCOL_GATEWAY_VERSION=(\S+)$", script, re.M).group(1)
    manifest = yaml.safe_load((GATEWAY / "builder-config.yaml").read_text())
    assert str(manifest["dist"]["version"]) == version
    for name in ("agent-1", "agent-2", "gateway-1", "gateway-2"):
        assert SERVICES[name]["image"] == f"otel/opentelemetry-collector-contrib:{version}"
    jaeger = re.search(r"^JAEGER_VERSION=(\S+)$", script, re.M).group(1)
    assert SERVICES["gw-jaeger"]["image"] == f"jaegertracing/jaeger:{jaeger}"
    assert "--web.enable-remote-write-receiver" in SERVICES["gw-prometheus"]["command"]
