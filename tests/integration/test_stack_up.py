"""The local stack comes up healthy, on loopback only."""

from __future__ import annotations

import subprocess

import pytest
import requests

pytestmark = pytest.mark.integration


def test_every_component_answers_its_health_endpoint(stack):
    assert requests.get(stack.collector_health, timeout=5).status_code == 200
    services = requests.get(f"{stack.jaeger_query}/api/services", timeout=5)
    assert services.status_code == 200
    assert "data" in services.json()
    assert requests.get(f"{stack.prometheus}/-/ready", timeout=5).status_code == 200
    assert requests.get(f"{stack.alertmanager}/-/ready", timeout=5).status_code == 200


def test_prometheus_scrapes_both_collector_targets(stack):
    up = stack.prom_wait(
        'up{job=~"faultlens-collector|otelcol"}',
        until=lambda r: len(r) == 3 and all(s["value"][1] == "1" for s in r),
        timeout=30,
    )
    # otelcol: the collector's own telemetry (:8888) and the log-metrics collector's (:8890)
    assert {(s["metric"]["job"], s["metric"]["instance"]) for s in up} == {
        ("faultlens-collector", "127.0.0.1:8889"),
        ("otelcol", "127.0.0.1:8888"),
        ("otelcol", "127.0.0.1:8890"),
    }


def test_prometheus_loaded_every_shipped_rule_group_without_errors(stack):
    groups = requests.get(f"{stack.prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {g["name"] for g in groups}
    assert {"faultlens-errors", "faultlens-resilience", "faultlens-pipeline"} <= names
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] != "err", (rule["name"], rule.get("lastError"))


def test_prometheus_knows_alertmanager(stack):
    active = stack.prom_wait(
        "vector(1)",  # any query; the point is the poll below
        until=lambda _: bool(
            requests.get(f"{stack.prometheus}/api/v1/alertmanagers", timeout=5).json()["data"][
                "activeAlertmanagers"
            ]
        ),
        timeout=30,
    )
    assert active


def test_nothing_listens_beyond_loopback(stack):
    pids = {
        (stack.state_dir / "run" / f"{c}.pid").read_text().strip()
        for c in ("collector", "jaeger", "prometheus", "alertmanager")
    }
    sockets = subprocess.run(
        ["ss", "-Htlnp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    ours = [s for s in sockets if any(f"pid={pid}," in s for pid in pids)]
    assert ours, sockets
    for line in ours:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::1]:")), line
