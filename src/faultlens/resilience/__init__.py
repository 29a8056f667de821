"""Resilience that reports its outcomes: retry, circuit breakers and recovery chains.

Each call through them ends in exactly one counted outcome (``faultlens.retry.calls``,
``faultlens.circuit_breaker.calls``, ``faultlens.recovery.actions``), with span events for
the failures in between. When several are combined, use ``resilient()``: recovery outermost,
then retry, then the breaker innermost (see ``_compose``).
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
from ._compose import resilient, retryable_unless_open
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
from ._timing import SleepLog, no_sleep

__all__ = [
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
    "defaults",
    "get_breaker",
    "no_sleep",
    "recover",
    "reset",
    "resilient",
    "retry",
    "retryable_unless_open",
    "retrying",
    "set_defaults",
]


def reset() -> None:
    """Forget breakers, local counts, the no-sleep switch and the configured defaults
    (faultlens.testing.reset())."""
    from . import _defaults, _telemetry, _timing

    _telemetry.reset()
    _timing.reset()
    _defaults.reset_defaults()
