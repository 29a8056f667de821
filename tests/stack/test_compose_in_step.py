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
    ("service", "config"), [("collector", "otelcol.yaml"), ("jaeger", "jaeger.yaml")]
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
    assert "8888" in SERVICES["collector"]["environment"]["FAULTLENS_COLLECTOR_TELEMETRY_PORT"]


def test_images_pin_the_versions_of_the_local_stack():
    script = (REPO / "scripts/stack.sh").read_text()
    # The contrib image carries the contrib release (built on the same core release).
    otelcol = re.search(r"^OTELCOL_CONTRIB_VERSION=(\S+)$", script, re.M).group(1)
    jaeger = re.search(r"^JAEGER_VERSION=(\S+)$", script, re.M).group(1)
    assert SERVICES["collector"]["image"] == f"otel/opentelemetry-collector-contrib:{otelcol}"
    assert SERVICES["jaeger"]["image"] == f"jaegertracing/jaeger:{jaeger}"


def test_the_example_app_sends_to_the_collector():
    env = SERVICES["app"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"
    assert "collector" in SERVICES["app"]["depends_on"]
