"""Every shipped config file is valid for the very software (and version) that runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = REPO / "collector"
STACK_SH = REPO / "scripts" / "stack.sh"

RULE_FILES = sorted((COLLECTOR / "rules").glob("*.yml"))
RULE_TESTS = sorted((COLLECTOR / "rules" / "tests").glob("*.test.yml"))


def alerts() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_accepts_the_prometheus_config(tool, run):
    run(tool("promtool"), "check", "config", "collector/prometheus.yml")


def test_promtool_accepts_the_rules(tool, run):
    assert RULE_FILES
    run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))


def test_the_rules_pass_their_promtool_unit_tests(tool, run):
    assert RULE_TESTS
    out = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in out


def test_every_alert_has_a_severity_a_summary_and_a_unit_test():
    tested = "\n".join(p.read_text() for p in RULE_TESTS)
    assert len(alerts()) >= 13
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert f"alertname: {rule['alert']}\n" in tested, f"{rule['alert']} has no test case"


def test_amtool_accepts_the_alertmanager_config(tool, run):
    run(tool("amtool"), "check-config", "collector/alertmanager.yml")


def test_alertmanager_routes_every_severity_to_a_webhook():
    config = yaml.safe_load((COLLECTOR / "alertmanager.yml").read_text())
    routed = {m for r in config["route"]["routes"] for m in r["matchers"]}
    assert routed == {'severity="critical"', 'severity="warning"', 'severity="info"'}
    for receiver in config["receivers"]:
        assert receiver["webhook_configs"][0]["url"] == "http://127.0.0.1:9099/hook"


def test_the_collector_validates_its_config(tool, tmp_path, run):
    run(
        tool("collector"),
        "validate",
        "--config",
        "collector/otelcol.yaml",
        env={"FAULTLENS_COLLECTOR_STORAGE_DIR": str(tmp_path)},
    )


def test_the_collector_build_has_the_components_the_config_uses(tool, run):
    out = run(tool("collector"), "components")
    components = yaml.safe_load(out)
    names = {
        kind: {c["name"] for c in components[kind]}
        for kind in ("receivers", "processors", "exporters", "connectors", "extensions")
    }
    assert {"otlp"} <= names["receivers"]
    assert {"memory_limiter", "batch"} <= names["processors"]
    assert {"otlp_grpc", "prometheus"} <= names["exporters"]
    assert {"span_metrics"} <= names["connectors"]
    assert {"health_check", "file_storage"} <= names["extensions"]


def test_jaeger_validates_its_config(tool, run):
    run(tool("jaeger"), "validate", "--config", "collector/jaeger.yaml")


def pinned(name: str) -> str:
    """A version pinned in scripts/stack.sh, e.g. pinned("OTELCOL_VERSION")."""
    (version,) = re.findall(rf"^{name}=(\S+)$", STACK_SH.read_text(), re.M)
    return version


def test_the_builder_manifest_pins_one_release_everywhere():
    # One collector release: every core module at the core version (the builder's), every
    # contrib module at contrib's, and the distribution reports the contrib version.
    manifest = yaml.safe_load((COLLECTOR / "builder-config.yaml").read_text())
    core, contrib = pinned("OTELCOL_VERSION"), pinned("OTELCOL_CONTRIB_VERSION")
    assert contrib.split(".")[:2] == core.split(".")[:2], "core and contrib of different releases"
    modules = [
        entry["gomod"].split()
        for kind in ("receivers", "processors", "exporters", "connectors", "extensions")
        for entry in manifest[kind]
    ]
    assert modules
    for path, version in modules:
        if path.startswith("go.opentelemetry.io/collector/"):
            assert version == f"v{core}", path
        else:
            assert path.startswith("github.com/open-telemetry/opentelemetry-collector-contrib/")
            assert version == f"v{contrib}", path
    assert str(manifest["dist"]["version"]) == contrib


def test_the_built_binaries_are_the_pinned_releases(tool, run):
    # The cached builds are keyed by version; this catches a stale or mislabelled cache.
    assert run(tool("collector"), "--version").split()[-1] == pinned("OTELCOL_CONTRIB_VERSION")
    assert f'"gitVersion":"v{pinned("JAEGER_VERSION")}"' in run(tool("jaeger"), "version")


def test_jaeger_does_not_trace_itself_into_the_collector():
    # Jaeger's query service traces its own API calls over OTLP to localhost:4317 unless told
    # not to: those spans would land in the faultlens collector among the application's.
    config = yaml.safe_load((COLLECTOR / "jaeger.yaml").read_text())
    assert config["extensions"]["jaeger_query"]["enable_tracing"] is False


def test_the_persistent_queue_never_gives_up():
    config = yaml.safe_load((COLLECTOR / "otelcol.yaml").read_text())
    jaeger = config["exporters"]["otlp_grpc/jaeger"]
    assert jaeger["sending_queue"]["storage"] == "file_storage"
    assert jaeger["retry_on_failure"]["max_elapsed_time"] == 0
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["processors"][0] == "memory_limiter"


def test_dashboards_are_valid_and_use_the_provisioned_datasource():
    datasources = yaml.safe_load(
        (COLLECTOR / "grafana/provisioning/datasources/faultlens.yml").read_text()
    )["datasources"]
    uids = {d["uid"] for d in datasources}
    dashboards = [
        json.loads(p.read_text()) for p in sorted((COLLECTOR / "grafana/dashboards").glob("*.json"))
    ]
    assert len({d["uid"] for d in dashboards}) == len(dashboards) >= 2
    for dashboard in dashboards:
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert panel["targets"], panel["title"]


def test_nothing_binds_all_interfaces():
    paths = [REPO / "docker-compose.yml", STACK_SH, *COLLECTOR.rglob("*")]
    offenders = [
        str(p.relative_to(REPO))
        for p in paths
        if p.is_file()
        and (
            "0.0.0.0" in p.read_text(errors="replace")
            or re.search(r"(?m)endpoint:\s*[\"']?:\d", p.read_text(errors="replace"))
        )
    ]
    assert offenders == []


def test_the_stack_script_is_valid_bash(tool, run):
    run("bash", "-n", str(STACK_SH))
