"""Where the pipeline meets flaky dependencies: retries, a circuit breaker around the image
registry, and fallbacks (the registry mirror, a local spool for results).

Composition order, outermost first: recovery, retry, breaker. The breaker sees every
attempt, so a dead registry trips it after three refused connections; once it is open,
attempts are rejected at once with ``CircuitOpenError`` (not retried: retrying a rejection is
pointless), and recovery falls back to the mirror.
"""

from __future__ import annotations

import faultlens
from faultlens.resilience import CircuitBreaker, CircuitOpenError, recover, retry

from . import stages
from .errors import ListError, ScoringTimeout
from .world import Job, World

registry_breaker = CircuitBreaker(
    "image-registry",
    failure_threshold=3,
    open_timeout=60.0,
    half_open_max_calls=1,
    failure_on=ConnectionError,  # an unknown tag is the job's fault, not the registry's
)

_FAST = {"wait_initial": 0.001, "wait_max": 0.004}  # simulated services answer at once


@faultlens.capture(stage="pull")  # so a rejection recorded by recovery is staged too
@recover(fallbacks=[stages.pull_from_mirror], on=(CircuitOpenError, ConnectionError))
@retry(attempts=3, on=ConnectionError, **_FAST)
@registry_breaker
def pull_image(world: World, image: str) -> str:
    return stages.pull_from_registry(world, image)


@retry(attempts=3, on=ListError, **_FAST)
def list_workspaces(world: World) -> list[str]:
    return stages.list_workspaces(world)


@retry(attempts=2, on=ScoringTimeout, **_FAST)
def run_container(world: World, job: Job, digest: str) -> str:
    return stages.run_container(world, job, digest)


@recover(fallbacks=[stages.spool])
def submit(world: World, job: Job, result: dict[str, object]) -> str:
    return stages.submit(world, job, result)


def reset() -> None:
    """A fresh breaker for a new run (tests run the pipeline several times in one process)."""
    registry_breaker.reset()
