"""The pipeline's jobs as Celery tasks. No faultlens code: ``faultlens run`` does it all.

- ``scoring.validate``: a job whose parameters are wrong fails with the catalog's
  ``INVALID_PARAMS`` / ``WORKSPACE_NOT_FOUND`` (recorded, counted per code);
- ``scoring.pull_image``: the image registry refuses some connections: retried by Celery
  (``autoretry_for=(ConnectionError,)``), each retry a ``faultlens.retry.attempts`` point, not
  an error; a job the registry refuses every time exhausts its retries (one error);
- ``scoring.score``: scores the job; one job's scorer crashes its pool process (the worker's
  main process records ``WorkerLostError``, critical);
- ``scoring.publish``: the result store declines duplicates, an expected outcome
  (``throws``), never an error.

Which job does what is decided by its number, so every run has the same outcomes
(``expected_outcomes()``).
"""

from __future__ import annotations

import os

from celery import Celery
from scoring_pipeline.errors import InvalidParams, WorkspaceNotFound, load_catalog

BROKER = os.environ.get("CELERY_WORKER_BROKER", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("CELERY_WORKER_QUEUE", "scoring")

load_catalog()
app = Celery("scoring", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)

REFUSALS = {1: 1, 4: 2, 7: 9}  # job -> how many times the registry refuses it (9: always)
CRASHING_JOB = 5


class AlreadyPublished(Exception):
    """The result store has this job's result already: nothing to do."""


@app.task(name="scoring.validate")
def validate(job: int) -> dict[str, int]:
    if job % 6 == 3:
        raise InvalidParams(f"job {job}: threshold 1.5 is outside 0..1", stage="validate")
    if job % 8 == 2:
        raise WorkspaceNotFound(f"job {job}: no workspace at /data/w{job}", stage="validate")
    return {"job": job}


@app.task(
    name="scoring.pull_image",
    bind=True,
    autoretry_for=(ConnectionError,),
    max_retries=3,
    retry_backoff=False,
    default_retry_delay=0.2,
)
def pull_image(self, job: int) -> str:
    if self.request.retries < REFUSALS.get(job, 0):
        raise ConnectionError(f"registry refused the connection for job {job}")
    return f"scorer:1.{job}"


@app.task(name="scoring.score")
def score(job: int) -> float:
    if job == CRASHING_JOB:
        os._exit(70)  # the scorer's native code aborts: the pool process dies under the task
    return round(0.5 + job / 100, 3)


@app.task(name="scoring.publish", throws=(AlreadyPublished,))
def publish(job: int) -> str:
    if job % 4 == 0:
        raise AlreadyPublished(f"job {job} is published already")
    return f"published {job}"


TASKS = ("scoring.validate", "scoring.pull_image", "scoring.score", "scoring.publish")


def expected_outcomes(jobs: int) -> dict[str, dict[str, int]]:
    """What a batch of ``jobs`` jobs (each sent to every task) must record: errors by code,
    and each task's runs by retry outcome."""
    errors: dict[str, int] = {}
    outcomes: dict[str, dict[str, int]] = {name: {} for name in TASKS}

    def bump(table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    for job in range(jobs):
        if job % 6 == 3:
            bump(errors, "INVALID_PARAMS")
            bump(outcomes["scoring.validate"], "non_retryable")
        elif job % 8 == 2:
            bump(errors, "WORKSPACE_NOT_FOUND")
            bump(outcomes["scoring.validate"], "non_retryable")
        else:
            bump(outcomes["scoring.validate"], "success_first_attempt")
        refusals = REFUSALS.get(job, 0)
        if refusals > 3:
            bump(errors, "NET_CONNECTION_FAILED")
            bump(outcomes["scoring.pull_image"], "exhausted")
        else:
            bump(
                outcomes["scoring.pull_image"],
                "success_after_retry" if refusals else "success_first_attempt",
            )
        if job == CRASHING_JOB:
            bump(errors, "EXE_WORKER_LOST")  # WorkerLostError, critical
            bump(outcomes["scoring.score"], "non_retryable")
        else:
            bump(outcomes["scoring.score"], "success_first_attempt")
        bump(
            outcomes["scoring.publish"],
            "non_retryable" if job % 4 == 0 else "success_first_attempt",
        )
    return {"errors": errors, **outcomes}
