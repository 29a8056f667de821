"""The logs side of the stack: the collector's `logs` pipeline ends in VictoriaLogs (the
logs backend) and in the log-metrics collector, which counts exception log records into
faultlens.exception.logs with the labels of faultlens.errors. Each file is checked by the
very build that runs it; the builds are the pinned releases, cached by a key that changes
with their manifests; every address is on 127.0.0.1 and none clashes with another."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
# Captured at import: the suite's autouse fixture strips FAULTLENS_* (FAULTLENS_CACHE_DIR says
# where the builds are) from the environment each test runs in.
ENV_AT_START = dict(os.environ)
COLLECTOR = REPO / "collector"
LOGMETRICS = COLLECTOR / "logmetrics"
MAIN = yaml.safe_load((COLLECTOR / "otelcol.yaml").read_text())
COUNTER = yaml.safe_load((LOGMETRICS / "logmetrics.yaml").read_text())
ENV_DEFAULT = re.compile(r"\$\{env:(FAULTLENS_[A-Z_]+):-([^}]*)\}")


def pinned(name: str) -> str:
    (version,) = re.findall(rf"^{name}=(\S+)$", STACK_SH.read_text(), re.M)
    return version


def stack_sh(*args: str) -> str:
    proc = subprocess.run(
        ["bash", str(STACK_SH), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=ENV_AT_START | {"FAULTLENS_STACK_DIR": "/nonexistent"},
    )
    assert proc.returncode in (0, 1, 3), proc.stderr
    return proc.stdout


# --- the collector's logs pipeline ----------------------------------------------------------


def test_the_logs_pipeline_goes_to_victorialogs_and_to_the_log_counter():
    logs = MAIN["service"]["pipelines"]["logs"]
    assert logs == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["otlp_http/victorialogs", "otlp_grpc/logmetrics"],
    }


def test_log_records_reach_victorialogs_at_its_otlp_path_and_wait_on_disk_while_it_is_down():
    exporter = MAIN["exporters"]["otlp_http/victorialogs"]
    assert exporter["logs_endpoint"] == (
        "http://${env:FAULTLENS_VICTORIALOGS_ENDPOINT:-127.0.0.1:9428}/insert/opentelemetry/v1/logs"
    )
    assert exporter["encoding"] == "proto"  # VictoriaLogs refuses OTLP JSON
    for name in ("otlp_http/victorialogs", "otlp_grpc/logmetrics"):
        queued = MAIN["exporters"][name]
        assert queued["sending_queue"]["storage"] == "file_storage", name
        assert queued["retry_on_failure"]["max_elapsed_time"] == 0, name


def test_victorialogs_indexes_streams_by_service_and_event_not_by_process():
    # Stream fields are VictoriaLogs' index ({...} in a query); a pid or host name among
    # them would start a new stream at every restart.
    headers = MAIN["exporters"]["otlp_http/victorialogs"]["headers"]
    assert headers["VL-Stream-Fields"].split(",") == [
        "service.name",
        "deployment.environment.name",
        "event_name",
    ]


def test_the_collector_build_has_the_otlp_http_exporter(tool, run):
    exporters = {
        c["name"] for c in yaml.safe_load(run(tool("collector"), "components"))["exporters"]
    }
    assert "otlp_http" in exporters


# --- the log-metrics collector --------------------------------------------------------------


def test_the_log_metrics_collector_validates_its_config(tool, tmp_path, run):
    run(
        tool("logmetrics"),
        "validate",
        "--config",
        "collector/logmetrics/logmetrics.yaml",
        env={"FAULTLENS_LOGMETRICS_STORAGE_DIR": str(tmp_path)},
    )


def test_the_log_metrics_build_has_the_components_its_config_uses(tool, run):
    components = yaml.safe_load(run(tool("logmetrics"), "components"))
    kinds = ("receivers", "processors", "exporters", "connectors", "extensions")
    names = {kind: {c["name"] for c in components[kind]} for kind in kinds}
    assert "otlp" in names["receivers"]
    assert {"memory_limiter", "batch", "transform", "delta_to_cumulative"} <= names["processors"]
    assert "count" in names["connectors"]
    assert "otlp_grpc" in names["exporters"]
    assert {"health_check", "file_storage"} <= names["extensions"]


def test_exception_records_are_counted_by_event_name_or_exception_type():
    (metric,) = COUNTER["connectors"]["count"]["logs"].items()
    name, spec = metric
    assert name == "faultlens.exception.logs"
    assert spec["conditions"] == [
        'event_name == "exception"',
        'attributes["exception.type"] != nil',
    ]
    # Only low-cardinality attributes become labels; a record without them still counts.
    assert spec["attributes"] == [
        {"key": "faultlens.error.code", "default_value": ""},
        {"key": "faultlens.error.category", "default_value": ""},
        {"key": "faultlens.error.severity", "default_value": ""},
    ]


def test_the_counts_carry_the_labels_of_faultlens_errors_and_go_back_to_the_collector():
    statements = COUNTER["processors"]["transform/labels"]["metric_statements"][0]["statements"]
    for label in ("code", "category", "severity"):
        assert (
            f'set(datapoint.attributes["{label}"], datapoint.attributes["faultlens.error.{label}"])'
            in statements
        )
    assert (
        statements[-1] == 'delete_matching_keys(datapoint.attributes, "^faultlens\\\\.error\\\\.")'
    )
    pipelines = COUNTER["service"]["pipelines"]
    assert pipelines["logs"]["exporters"] == ["count"]
    assert pipelines["metrics"]["receivers"] == ["count"]
    # deltas summed into one cumulative counter before they leave, as Prometheus counts
    assert pipelines["metrics"]["processors"] == [
        "memory_limiter",
        "transform/labels",
        "delta_to_cumulative",
        "batch",
    ]
    back = COUNTER["exporters"]["otlp_grpc/collector"]
    assert back["endpoint"] == "${env:FAULTLENS_COLLECTOR_OTLP_ENDPOINT:-127.0.0.1:4317}"
    assert back["sending_queue"]["storage"] == "file_storage"
    assert back["retry_on_failure"]["max_elapsed_time"] == 0


def test_the_log_metrics_manifest_pins_one_release_everywhere():
    manifest = yaml.safe_load((LOGMETRICS / "builder-config.yaml").read_text())
    release = pinned("OTELCOL_LOGMETRICS_VERSION")
    assert str(manifest["dist"]["version"]) == release
    modules = [
        entry["gomod"].split()
        for kind in ("receivers", "processors", "exporters", "connectors", "extensions")
        for entry in manifest[kind]
    ]
    assert modules
    assert all(version == f"v{release}" for _, version in modules), modules


# --- the builds: pinned releases, cached by version and manifest ----------------------------


def test_the_builds_are_the_pinned_releases(tool, run):
    version = run(tool("victorialogs"), "-version").strip()
    assert version == f"victoria-logs-v{pinned('VICTORIALOGS_VERSION')}"
    assert run(tool("logmetrics"), "--version").split()[-1] == pinned("OTELCOL_LOGMETRICS_VERSION")


def manifest_key(path: Path) -> str:
    """What scripts/stack.sh keys an ocb build by: the manifest without its comment lines."""
    kept = [
        line for line in path.read_text().splitlines(keepends=True) if not re.match(r"\s*#", line)
    ]
    return hashlib.sha256("".join(kept).encode()).hexdigest()[:10]


def test_a_changed_manifest_is_a_new_cache_entry_so_an_old_build_is_never_reused():
    collector = Path(stack_sh("bin", "collector").strip())
    cache = collector.parent.parent
    main_key = manifest_key(COLLECTOR / "builder-config.yaml")
    assert collector == (
        cache / f"otelcol-{pinned('OTELCOL_CONTRIB_VERSION')}-{main_key}" / "otelcol-faultlens"
    )
    counter_key = manifest_key(LOGMETRICS / "builder-config.yaml")
    release = pinned("OTELCOL_LOGMETRICS_VERSION")
    assert Path(stack_sh("bin", "logmetrics").strip()) == (
        cache / f"otelcol-logmetrics-{release}-{counter_key}" / "otelcol-faultlens-logmetrics"
    )
    assert Path(stack_sh("bin", "victorialogs").strip()) == (
        cache / f"victorialogs-{pinned('VICTORIALOGS_VERSION')}" / "victoria-logs"
    )


# --- addresses ------------------------------------------------------------------------------


def test_every_address_is_loopback_and_the_two_collectors_agree_on_each_other():
    main = dict(ENV_DEFAULT.findall((COLLECTOR / "otelcol.yaml").read_text()))
    counter = dict(ENV_DEFAULT.findall((LOGMETRICS / "logmetrics.yaml").read_text()))
    assert main["FAULTLENS_VICTORIALOGS_ENDPOINT"] == "127.0.0.1:9428"
    # where the collector sends logs is where the counter listens, and back
    assert (
        main["FAULTLENS_LOGMETRICS_OTLP_ENDPOINT"] == counter["FAULTLENS_LOGMETRICS_OTLP_ENDPOINT"]
    )
    assert counter["FAULTLENS_COLLECTOR_OTLP_ENDPOINT"] == main["FAULTLENS_OTLP_GRPC_ENDPOINT"]
    addresses = [v for v in counter.values() if ":" in v]
    assert addresses and all(v.startswith("127.0.0.1:") for v in addresses)
    assert counter["FAULTLENS_LOGMETRICS_TELEMETRY_HOST"] == "127.0.0.1"


def test_the_new_ports_are_the_ones_stack_sh_checks_and_clash_with_no_other():
    script = STACK_SH.read_text()
    assert 'default:victorialogs) echo "9428" ;;' in script
    assert 'default:logmetrics) echo "4319 13134 8890" ;;' in script
    counter = dict(ENV_DEFAULT.findall((LOGMETRICS / "logmetrics.yaml").read_text()))
    ports = {
        int(counter["FAULTLENS_LOGMETRICS_OTLP_ENDPOINT"].split(":")[1]),
        int(counter["FAULTLENS_LOGMETRICS_HEALTH_ENDPOINT"].split(":")[1]),
        int(counter["FAULTLENS_LOGMETRICS_TELEMETRY_PORT"]),
    }
    assert ports == {4319, 13134, 8890}
    others = re.findall(r'default:(?!victorialogs|logmetrics)\w+\) echo "([\d ]+)"', script)
    taken = {int(p) for group in others for p in group.split()}
    assert taken and not (ports | {9428}) & taken


def test_status_lists_the_logs_backend_and_the_log_counter():
    out = stack_sh("status")
    assert "victorialogs stopped" in out.splitlines()
    assert "logmetrics stopped" in out.splitlines()


def test_prometheus_scrapes_the_log_counters_own_telemetry():
    local = yaml.safe_load((COLLECTOR / "targets/local/collector-telemetry.yml").read_text())
    assert "127.0.0.1:8890" in local[0]["targets"]
