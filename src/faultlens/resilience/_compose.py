"""resilient(): retry, circuit breaker and recovery combined in the one documented order.

The order, outermost first, is the one resilience4j uses::

    recovery( retry( breaker( your function ) ) )

- The **breaker** is innermost, so it sees every single attempt: each failed attempt counts
  toward opening it, and once it is open an attempt is rejected without touching the
  dependency.
- **Retry** wraps the breaker, so a transient failure is retried; by default here it does
  *not* retry ``CircuitOpenError``: an open breaker means "stop calling for now", so the
  call goes straight on to recovery instead of waiting out backoff against a known outage.
  (Pass your own ``Retry`` to decide otherwise.)
- **Recovery** is outermost: fallbacks and degradation answer only once retrying has
  given up (exhausted, non-retryable, or rejected by the open breaker).

What ``faultlens.errors`` counts: every failure of the dependency once. Recovery records the
exception the call finally ends with (``EXE_CIRCUIT_OPEN`` once the breaker is open), and
the retry layer records each failure it swallows (every failed attempt but the last), so the
``NET_CONNECTION_FAILED`` (say) that opened the breaker are counted as such, not only as
retry attempts. A rejection by the open breaker is not a failure of the dependency: it is
counted in ``faultlens.circuit_breaker.calls{outcome="rejected"}`` and, when it is how the
call ends, once as ``EXE_CIRCUIT_OPEN``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import ConfigError
from ._breaker import CircuitBreaker, CircuitOpenError, get_breaker
from ._common import catalog_retryable
from ._recovery import Fallback, RecoveryManager
from ._retry import Retry

__all__ = ["resilient"]

F = TypeVar("F", bound=Callable[..., Any])


def retryable_unless_open(exc: BaseException) -> bool:
    """The default ``on=`` of retry inside ``resilient()``: catalog-retryable errors, except
    an open breaker's rejection."""
    return not isinstance(exc, CircuitOpenError) and catalog_retryable(exc)


def _retry_policy(spec: Any) -> Retry | None:
    if spec is None or spec is False:
        return None
    if isinstance(spec, Retry):
        return spec
    if spec is True:
        return Retry(on=retryable_unless_open)
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        kwargs.setdefault("on", retryable_unless_open)
        return Retry(**kwargs)
    raise ConfigError(
        f"expected faultlens.retry(...), a dict of retry arguments, True or None, got {spec!r}",
        key="retry",
    )


def _breaker(spec: Any) -> CircuitBreaker | None:
    if spec is None:
        return None
    if isinstance(spec, CircuitBreaker):
        return spec
    if isinstance(spec, str):
        return get_breaker(spec)
    raise ConfigError(
        f"expected a CircuitBreaker, a breaker name or None, got {spec!r}", key="breaker"
    )


def resilient(
    func: Callable[..., Any] | None = None,
    /,
    *,
    retry: Retry | Mapping[str, Any] | bool | None = None,
    breaker: CircuitBreaker | str | None = None,
    fallbacks: Sequence[Any] | None = None,
    recovery: RecoveryManager | None = None,
) -> Any:
    """Apply recovery, retry and a circuit breaker in the documented order (see module docs).

    ::

        @faultlens.resilient(
            retry=dict(attempts=3, wait_initial=0.2),
            breaker=faultlens.CircuitBreaker("scores-db", failure_threshold=5),
            fallbacks=[from_cache, lambda job: None],
        )
        def load_scores(job): ...

    ``retry`` is a ``faultlens.retry(...)`` policy, a dict of its arguments, or True for the
    defaults; ``breaker`` a ``CircuitBreaker`` or the name of a registered one;
    ``fallbacks`` a fallback chain and/or ``recovery`` a ``RecoveryManager`` (the fallbacks
    run after the manager's own strategies).
    """
    policy = _retry_policy(retry)
    guard = _breaker(breaker)
    manager = recovery
    if fallbacks is not None:
        if isinstance(fallbacks, str | bytes) or not isinstance(fallbacks, Sequence):
            raise ConfigError(f"must be a list of fallbacks, got {fallbacks!r}", key="fallbacks")
        extra = Fallback(*fallbacks)
        if manager is None:
            manager = RecoveryManager([extra])
        else:
            manager = RecoveryManager(
                [*manager.given, extra], on=manager.on_spec, operation=manager.operation
            )
    if recovery is not None and not isinstance(recovery, RecoveryManager):
        raise ConfigError(f"expected a RecoveryManager, got {recovery!r}", key="recovery")

    def apply(f: F) -> F:
        wrapped: Any = f
        if guard is not None:
            wrapped = guard(wrapped)
        if policy is not None:
            wrapped = policy._decorate(wrapped, record=True)
        if manager is not None:
            wrapped = manager(wrapped)
        return wrapped  # type: ignore[no-any-return]

    if func is not None:
        return apply(func)
    return apply
