"""Resilience that reports its outcomes: retry, circuit breakers and recovery chains.

Each call through them ends in exactly one counted outcome (``faultlens.retry.calls``,
``faultlens.circuit_breaker.calls``, ``faultlens.recovery.actions``), with span events for
the failures in between. When several are combined, use ``resilient()``: recovery outermost,
then retry, then the breaker innermost (see ``_compose``).

Exported: the public API's classes and decorators, the types their hooks and results use,
and what the layers above use (configure() installs ``set_defaults``; ``label`` makes a
metric label of any text).
"""

from ._breaker import (
    BreakerStats,
    CircuitBreaker,
    CircuitOpenError,
    StateChange,
    StateListener,
    breakers,
    get_breaker,
)
from ._common import label
from ._compose import resilient
from ._defaults import ResilienceDefaults, defaults, set_defaults
from ._recovery import (
    Degrade,
    Degraded,
    Fallback,
    InterventionRequest,
    ManualIntervention,
    RecoveryContext,
    RecoveryManager,
    Restart,
    Strategy,
    recover,
)
from ._retry import Attempt, Retry, Retrying, retry, retrying
from ._telemetry import RETRY_OUTCOMES, count_retry_attempt, count_retry_outcome
from ._timing import SleepLog, no_sleep

__all__ = [
    "RETRY_OUTCOMES",
    "Attempt",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "Degrade",
    "Degraded",
    "Fallback",
    "InterventionRequest",
    "ManualIntervention",
    "RecoveryContext",
    "RecoveryManager",
    "ResilienceDefaults",
    "Restart",
    "Retry",
    "Retrying",
    "SleepLog",
    "StateChange",
    "StateListener",
    "Strategy",
    "breakers",
    "count_retry_attempt",
    "count_retry_outcome",
    "defaults",
    "get_breaker",
    "label",
    "no_sleep",
    "recover",
    "reset",
    "resilient",
    "retry",
    "retrying",
    "set_defaults",
]

# Public classes report the module users import them from (`exception.type`, reprs, pickle).
for _cls in (CircuitOpenError, Degraded):
    _cls.__module__ = "faultlens"
del _cls


def reset() -> None:
    """Forget breakers, local counts, the no-sleep switch and the configured defaults
    (faultlens.testing.reset())."""
    from . import _defaults, _telemetry, _timing

    _telemetry.reset()
    _timing.reset()
    _defaults.reset_defaults()
