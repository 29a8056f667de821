"""The value types of the error model: categories, severities, code specs and ErrorInfo."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Category", "CodeSpec", "ErrorInfo", "Severity"]


class Category(StrEnum):
    """Where a failure comes from; drives routing and dashboards.

    A str enum so that ``info.category == "validation"`` works and the value lands in OTel
    attributes as a plain string. Catalogs may declare further categories; those travel as
    plain strings, which is why ``ErrorInfo.category`` is typed ``str``.
    """

    VALIDATION = "validation"
    EXECUTION = "execution"
    RESOURCE = "resource"
    NETWORK = "network"
    SYSTEM = "system"


class Severity(StrEnum):
    """How urgently a failure needs a human; ordered from most to least urgent."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical ... 3 for low, so that ``min()`` picks the most urgent."""
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: object) -> Severity:
        """Accept a Severity or its name/value in any case ("HIGH", "high")."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        allowed = ", ".join(s.value for s in cls)
        raise ValueError(f"unknown severity {value!r}; use one of: {allowed}")


_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


@dataclass(frozen=True, slots=True)
class CodeSpec:
    """One catalog entry: what a code means and what to do about it."""

    code: str
    category: str
    severity: Severity
    retryable: bool = False
    hint: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The classification of one exception: what every signal faultlens emits is built from.

    ``fingerprint`` groups "the same error" across occurrences (see ``fingerprint()``);
    ``message`` is already scrubbed and capped when it comes from ``record_error()``.
    """

    code: str
    category: str
    severity: Severity
    retryable: bool
    hint: str
    fingerprint: str
    fingerprint_version: int = 1
    exception_type: str = ""
    message: str = ""
    stage: str | None = None
    known_code: bool = True
