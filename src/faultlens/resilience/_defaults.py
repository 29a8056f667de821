"""The defaults retry, breakers and recovery use for every argument a decorator leaves unset.

One frozen object holds them, and it is the only place their values are written: the
configuration schema (``error_handling.retry``/``recovery`` in faultlens.yaml) takes its own
defaults from ``ResilienceDefaults()``, so that with no faultlens.yaml, variable or argument
changing them, a ``Retry()`` or ``CircuitBreaker()`` behaves the same before and after
``faultlens.configure()``.

``configure()`` installs the configured values with ``set_defaults()``; ``shutdown()`` and
``faultlens.testing.reset()`` put the built-in ones back (``reset_defaults()``).

Which values apply to a decorator made before ``configure()`` (at import, typically): an
argument passed explicitly always wins and never changes; an argument left unset is read
from the defaults installed *when the call runs*, so a faultlens.yaml read by a later
``configure()`` applies to decorators created before it. The lookup is cached per
configuration generation: the hot path pays one integer comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..capture._state import STATE
from ..errors import ConfigError
from ._common import check_number

__all__ = ["ResilienceDefaults", "defaults", "reset_defaults", "set_defaults"]


@dataclass(frozen=True, slots=True)
class ResilienceDefaults:
    """What an unset argument of ``retry()``/``Retry``, ``CircuitBreaker`` or ``recover()``
    means. Built-in values below; ``configure()`` installs the configured ones."""

    attempts: int = 3  # error_handling.retry.max_retries + 1
    wait_initial: float = 0.1  # error_handling.retry.base_delay, seconds
    wait_max: float = 5.0  # error_handling.retry.max_delay, seconds
    wait_exp_base: float = 2.0  # error_handling.retry.exponential_backoff (false: 1)
    wait_jitter: bool = True  # error_handling.retry.jitter
    failure_threshold: int = 5  # error_handling.recovery.circuit_breaker.failure_threshold
    open_timeout: float = 30.0  # error_handling.recovery.circuit_breaker.timeout, seconds
    recovery_enabled: bool = True  # error_handling.recovery.enabled

    def __post_init__(self) -> None:
        # The configuration loader checks every value against the same bounds and names the
        # faultlens.yaml key; this keeps a hand-built object from reaching a sleep or a
        # clock with a value that would make it raise.
        check_number(self.attempts, "attempts", minimum=1, integer=True)
        check_number(self.wait_initial, "wait_initial")
        check_number(self.wait_max, "wait_max")
        if self.wait_max < self.wait_initial:
            raise ConfigError(
                f"must be >= wait_initial ({self.wait_initial:g}), got {self.wait_max:g}",
                key="wait_max",
            )
        check_number(self.wait_exp_base, "wait_exp_base", minimum=1)
        for name in ("wait_jitter", "recovery_enabled"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"must be True or False, got {getattr(self, name)!r}", key=name)
        check_number(self.failure_threshold, "failure_threshold", minimum=1, integer=True)
        check_number(self.open_timeout, "open_timeout")


BUILT_IN = ResilienceDefaults()
_current = BUILT_IN


def defaults() -> ResilienceDefaults:
    """The defaults in force now (the built-in ones until ``configure()`` installs others)."""
    return _current


def set_defaults(value: ResilienceDefaults | None) -> None:
    """Install ``value`` (None: the built-in defaults). Policies and breakers re-read their
    unset arguments at their next call."""
    global _current
    if value is not None and not isinstance(value, ResilienceDefaults):
        raise TypeError(f"expected ResilienceDefaults, got {type(value).__name__}")
    new = BUILT_IN if value is None else value
    if new == _current:
        return
    _current = new
    STATE.bump()  # after the assignment: a reader that sees the new generation sees `new`


def reset_defaults() -> None:
    """Back to the built-in defaults (``shutdown()``, ``faultlens.testing.reset()``)."""
    set_defaults(None)
