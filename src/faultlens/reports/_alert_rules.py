"""The thresholds of ``faultlens.yaml`` rendered as Prometheus alerting rules.

One file defines alerting everywhere: the local monitor evaluates
``error_handling.monitoring`` over the journal, and ``faultlens rules`` turns the same
thresholds into a rule file for the bundled Prometheus, with the same meaning (an alert
fires on *more than* ``count`` errors within ``window`` seconds).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .._config import MonitoringSettings

__all__ = ["render_alert_rules"]

_LABEL_VALUE = re.compile(r'^[^"\\\n]*$')


def _quote(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{value}"'


def _duration(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(seconds * 1000)}ms"


def render_alert_rules(
    monitoring: MonitoringSettings, *, group: str = "faultlens-thresholds", job: str | None = None
) -> str:
    """A Prometheus rule file (YAML text) for the error-frequency and anomaly thresholds.

    ``job`` limits the rules to one service (its ``service.name``); by default they apply to
    every service, grouped by ``job``.
    """
    selector = f"job={_quote(job)}" if job else ""
    rules: list[dict[str, Any]] = []
    for t in monitoring.alert_thresholds.error_frequency:
        labels = ",".join(
            p for p in (selector, f"category={_quote(t.category)}", f"code={_quote(t.code)}") if p
        )
        rules.append(
            {
                "alert": "FaultlensErrorFrequency",
                "expr": (
                    f"sum by (job, category, code) "
                    f"(increase(faultlens_errors_total{{{labels}}}[{_duration(t.window)}])) "
                    f"> {t.count}"
                ),
                "labels": {"severity": "warning", "threshold": t.key},
                "annotations": {
                    "summary": (
                        f"{{{{ $labels.job }}}}: more than {t.count} {t.code} errors "
                        f"({t.category}) within {_duration(t.window)}"
                    ),
                    "description": "From error_handling.monitoring.alert_thresholds."
                    f'error_frequency."{t.key}" in faultlens.yaml.',
                },
            }
        )
    if monitoring.anomaly_frequency is not None:
        inner = f"{{{selector}}}" if selector else ""
        rules.append(
            {
                "alert": "FaultlensErrorAnomaly",
                "expr": (
                    f"sum by (job) (rate(faultlens_errors_total{inner}[1h])) * 3600 "
                    f"> {monitoring.anomaly_frequency:g}"
                ),
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": (
                        "{{ $labels.job }}: {{ $value | humanize }} errors/h, over "
                        f"{monitoring.anomaly_frequency:g}/h"
                    ),
                    "description": "From error_handling.monitoring.anomaly_threshold.frequency.",
                },
            }
        )
    doc = {"groups": [{"name": group, "rules": rules}]}
    header = "# Rendered by `faultlens rules` from faultlens.yaml; edit the YAML, not this file.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)
