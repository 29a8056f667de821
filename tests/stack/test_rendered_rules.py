"""`faultlens rules`: faultlens.yaml's thresholds become Prometheus rules that promtool
accepts and that fire exactly when the local monitor would (more than `count` in `window`)."""

from __future__ import annotations

import textwrap

from faultlens.cli import main

CONFIG = """
error_handling:
  monitoring:
    alert_thresholds:
      error_frequency:
        "execution:EXE_TIMEOUT": {window: 300, count: 10}
        "network:NET_CONNECTION_FAILED": {window: 60, count: 3}
    anomaly_threshold: {frequency: 100}
"""

UNIT_TEST = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # 11 timeouts in 5 minutes: more than 10 -> fires
      - series: 'faultlens_errors_total{job="scorer",code="EXE_TIMEOUT",category="execution",severity="medium"}'
        values: '0 0 3 6 9 11 11'
      # exactly 10 in 5 minutes for another service: not more than 10 -> silent
      - series: 'faultlens_errors_total{job="other",code="EXE_TIMEOUT",category="execution",severity="medium"}'
        values: '0 0 2 4 6 8 10'
    alert_rule_test:
      - eval_time: 6m
        alertname: FaultlensErrorFrequency
        exp_alerts:
          - exp_labels: {severity: warning, threshold: "execution:EXE_TIMEOUT", job: scorer,
                         category: execution, code: EXE_TIMEOUT}
            exp_annotations:
              summary: "scorer: more than 10 EXE_TIMEOUT errors (execution) within 300s"
              description: 'From error_handling.monitoring.alert_thresholds.error_frequency."execution:EXE_TIMEOUT" in faultlens.yaml.'
  - interval: 1m
    input_series:
      # 3 per minute for an hour = 180/h > 100/h
      - series: 'faultlens_errors_total{job="noisy",code="X",category="system",severity="low"}'
        values: '0+3x70'
    alert_rule_test:
      - eval_time: 65m
        alertname: FaultlensErrorAnomaly
        exp_alerts:
          - exp_labels: {severity: warning, job: noisy}
            exp_annotations:
              summary: "noisy: 180 errors/h, over 100/h"
              description: From error_handling.monitoring.anomaly_threshold.frequency.
"""


def test_rendered_threshold_rules_pass_promtool_check_and_unit_tests(tmp_path, tool, run):
    (tmp_path / "faultlens.yaml").write_text(CONFIG)
    rules = tmp_path / "rules.yml"
    assert main(["rules", "--config", str(tmp_path / "faultlens.yaml"), "-o", str(rules)]) == 0
    (tmp_path / "rules.test.yml").write_text(textwrap.dedent(UNIT_TEST))
    promtool = tool("promtool")
    run(promtool, "check", "rules", str(rules))
    run(promtool, "test", "rules", str(tmp_path / "rules.test.yml"), cwd=tmp_path)
