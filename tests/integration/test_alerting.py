"""An error burst travels the whole alerting path: the collector's exporter, a Prometheus
rule, Alertmanager's severity route, and a webhook receiver owned by the test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "collector" / "rules" / "faultlens-alerts.yml"


def shipped_rule(alert: str) -> dict:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                return rule
    raise LookupError(alert)


def test_a_critical_error_burst_reaches_the_webhook_through_the_critical_route(
    stack, otel_app, unique_service
):
    app = otel_app(unique_service)
    for _ in range(5):
        app.failing_operation(
            "render",
            exc_type="MemoryError",
            message="",
            code="RES_INSUFFICIENT_MEMORY",
            category="resource",
            severity="critical",
            stage="render",
        )
    app.flush()

    # FaultlensCriticalError has no `for:`: the shipped rule fires on the next evaluation.
    alert = stack.wait_for_alert("FaultlensCriticalError", job=unique_service, timeout=60)
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["code"] == "RES_INSUFFICIENT_MEMORY"

    in_am = stack.wait_for_alertmanager("FaultlensCriticalError", job=unique_service)
    assert in_am["receivers"][0]["name"] == "webhook-critical"

    payload = stack.webhook.wait_for(
        lambda p: any(
            a["labels"].get("alertname") == "FaultlensCriticalError"
            and a["labels"].get("job") == unique_service
            for a in p.get("alerts", [])
        ),
        timeout=60,
    )
    assert payload["receiver"] == "webhook-critical"
    assert payload["status"] == "firing"
    (sent,) = [a for a in payload["alerts"] if a["labels"].get("job") == unique_service]
    assert sent["labels"]["category"] == "resource"
    assert "critical error RES_INSUFFICIENT_MEMORY" in sent["annotations"]["summary"]


def test_the_error_rate_rule_fires_on_a_burst(stack, otel_app, unique_service):
    # The shipped rule waits 5 minutes (`for: 5m`); the test evaluates the very same
    # expression with `for: 0s` under a test-only group.
    rule = shipped_rule("FaultlensErrorRateHigh")
    override = {
        "groups": [
            {
                "name": "itest-error-rate",
                "rules": [
                    {
                        "alert": rule["alert"],
                        "expr": rule["expr"],
                        "for": "0s",
                        "labels": {**rule["labels"], "itest": "override"},
                        "annotations": rule["annotations"],
                    }
                ],
            }
        ]
    }
    stack.add_rules("itest-error-rate", yaml.safe_dump(override))
    try:
        app = otel_app(unique_service)
        # > 0.1/s over 5 minutes means more than 30 errors; spread them over several scrapes
        # (a counter's first sample is its baseline, not an increase).
        for _ in range(10):
            for _ in range(20):
                app.errors_counter.add(
                    1,
                    {
                        "code": "EXE_TIMEOUT",
                        "category": "execution",
                        "severity": "high",
                        "stage": "score",
                    },
                )
            app.flush()
            time.sleep(stack.interval / 2)

        alert = stack.wait_for_alert(
            "FaultlensErrorRateHigh", job=unique_service, itest="override", timeout=60
        )
        assert alert["labels"]["code"] == "EXE_TIMEOUT"
        assert alert["labels"]["severity"] == "warning"
        in_am = stack.wait_for_alertmanager("FaultlensErrorRateHigh", job=unique_service)
        assert in_am["receivers"][0]["name"] == "webhook"
    finally:
        stack.remove_rules("itest-error-rate")
