"""The job loop: every job goes through load, validate, pull, run, score and submit inside a
``faultlens.capture`` scope, so every error recorded for it carries the job's id and
workspace. A failed job is counted by code and the loop goes on, as a batch scorer must.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import faultlens

from . import resilience, stages
from .errors import load_catalog
from .world import Job, World, build


@dataclass
class Summary:
    jobs: int = 0
    succeeded: int = 0
    spooled: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # code -> jobs

    def lines(self) -> list[str]:
        out = [
            f"scored {self.succeeded}/{self.jobs} jobs "
            f"({self.spooled} results spooled for resend, {sum(self.failed.values())} failed)"
        ]
        out += [f"  {count:3d} x {code}" for code, count in self.failed.most_common()]
        return out


def run_job(world: World, job: Job, known: set[str]) -> str:
    manifest = stages.load_workspace(world, job, known)
    stages.validate(job, manifest)
    digest = resilience.pull_image(world, job.image)
    output = resilience.run_container(world, job, digest)
    result = stages.score(job, output)
    return resilience.submit(world, job, result)


def run(jobs: int = 40, seed: int = 7) -> Summary:
    """Score ``jobs`` simulated jobs; the same seed always fails the same way."""
    load_catalog()
    resilience.reset()
    world = build(jobs, seed)
    known = set(resilience.list_workspaces(world))
    summary = Summary(jobs=jobs)
    for job in world.jobs:
        world.current_job = job.id
        with faultlens.capture(job_id=job.id, workspace=job.workspace, image=job.image):
            try:
                outcome = run_job(world, job, known)
            except Exception as exc:  # recorded already, where it was raised
                summary.failed[faultlens.classify(exc).code] += 1
                continue
        summary.succeeded += 1
        summary.spooled += outcome == "spooled"
    return summary
