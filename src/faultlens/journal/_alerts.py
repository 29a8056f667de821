"""The Alert value: what the local monitor found and the channels deliver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Severity
from ._format import iso_time

__all__ = ["Alert", "alert_key"]


def alert_key(name: str, labels: dict[str, str] | None = None) -> str:
    """The identity of an alert across evaluations and processes: its name and labels."""
    return name + "".join(f"|{k}={v}" for k, v in sorted((labels or {}).items()))


@dataclass(frozen=True, slots=True)
class Alert:
    """One firing condition. ``key`` identifies it across evaluations (for de-duplication);
    ``labels`` are the low-cardinality facts (code, category) a receiver routes on."""

    name: str  # ErrorFrequency | ErrorAnomaly | CriticalError
    severity: Severity
    summary: str
    value: float
    threshold: float
    window: float
    at: float
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return alert_key(self.name, self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity.value,
            "summary": self.summary,
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "at": self.at,
            "time": iso_time(self.at),
        }
