"""Every PromQL expression we ship (alert rules, recording rules, dashboards) is valid
against the real Prometheus, and the dashboards show data once an app has reported errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${job}": ".+",
    "$job": ".+",
}


def rule_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted((COLLECTOR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((rule.get("alert") or rule["record"], rule["expr"]))
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted((COLLECTOR / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(var, value)
                found.append((f"{path.stem}: {panel['title']} [{target['refId']}]", expr))
    return found


def test_the_files_hold_expressions_to_check():
    assert len(rule_expressions()) >= 15
    assert len(dashboard_expressions()) >= 20


@pytest.mark.parametrize(
    ("name", "expr"),
    rule_expressions() + dashboard_expressions(),
    ids=lambda v: v if isinstance(v, str) and len(v) < 80 else None,
)
def test_expression_is_accepted_by_prometheus(stack, name, expr):
    assert "$" not in expr, f"{name}: unsubstituted Grafana variable in {expr!r}"
    stack.prom_query(expr)  # raises with Prometheus' error message on a bad expression


# Metrics that exist as soon as an app has reported errors through the collector (the
# resilience ones appear only once an app uses retry/breaker/recovery).
PRESENT_AFTER_ERRORS = re.compile(
    r"faultlens_errors_total|traces_span_metrics_|otelcol_receiver_accepted_spans_total"
    r"|otelcol_exporter_sent_spans_total|otelcol_exporter_queue_|\bup\{"
)


def test_dashboards_show_data_after_an_app_reported_errors(stack, otel_app, unique_service):
    app = otel_app(unique_service)
    for i in range(5):
        app.failing_operation("load", stage="load")
        app.failing_operation(
            "score",
            code="EXE_TIMEOUT",
            category="execution",
            severity="medium",
            stage=f"scoring-{i % 2}",
        )
    app.flush()
    stack.prom_wait(f'faultlens_errors_total{{job="{unique_service}"}}', timeout=30)
    stack.prom_wait(
        f'traces_span_metrics_calls_total{{service_name="{unique_service}"}}', timeout=30
    )

    to_check = [
        (name, expr)
        for name, expr in dashboard_expressions()
        if PRESENT_AFTER_ERRORS.search(expr) and "offset" not in expr
    ]
    assert len(to_check) >= 10
    for name, expr in to_check:
        assert stack.prom_wait(expr, timeout=20), f"{name}: no data for {expr!r}"

    recorded = stack.prom_wait(
        f'job_code:faultlens_errors:rate5m{{job="{unique_service}"}}', timeout=30
    )
    assert {s["metric"]["code"] for s in recorded} == {"VAL_FILE_NOT_FOUND", "EXE_TIMEOUT"}
