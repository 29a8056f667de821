"""The simulated outside world: workspace storage, image registry, container runtime and the
results API. Seeded, in memory, instant; the failures are the ones real pipelines meet.

Each job draws a *scenario* that decides which part of the world misbehaves for it, so a
seed fixes every error of a run. The registry also has an outage: from ``outage_from`` on
(a job index) it refuses every connection, which is what trips the circuit breaker.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field

# This module stands in for third-party services (storage, registry, container runtime),
# which live in site-packages and are never auto-instrumented; this flag tells
# `faultlens run` to treat it the same way, so both ways of running count the same errors.
__faultlens_auto__ = False

SCENARIOS: dict[str, int] = {  # scenario -> weight
    "ok": 12,
    "workspace_missing": 2,
    "bad_manifest": 1,
    "missing_file": 2,
    "storage_io": 1,
    "invalid_params": 2,
    "mismatch": 1,
    "unknown_image": 1,
    "flaky_registry": 2,
    "container_crash": 2,
    "slow": 2,
    "output_readonly": 1,
    "scorer_bug": 1,
    "results_api_down": 2,
}

IMAGES = ("scorer:1.4", "scorer:1.5", "scorer-gpu:2.0")
MIRRORED = frozenset({"scorer:1.4", "scorer:1.5"})


@dataclass(frozen=True)
class Job:
    id: int
    workspace: str
    image: str
    scenario: str
    params: dict[str, object]
    timeout_s: float = 30.0


@dataclass
class World:
    """Everything the pipeline talks to, decided up front from the seed."""

    jobs: list[Job]
    files: dict[str, dict[str, str]]  # workspace -> file name -> content
    outage_from: int
    current_job: int = 0
    list_failures: int = 1  # the first listing fails (a storage hiccup), the retry works
    flaky_left: dict[int, int] = field(default_factory=dict)  # job id -> failures to come
    slow_attempts: dict[int, int] = field(default_factory=dict)
    spooled: list[dict[str, object]] = field(default_factory=list)
    submitted: list[dict[str, object]] = field(default_factory=list)

    # -- storage ------------------------------------------------------------------------

    def list_workspaces(self) -> list[str]:
        if self.list_failures > 0:
            self.list_failures -= 1
            raise ConnectionResetError("storage service closed the connection while listing")
        return sorted(self.files)

    def read(self, workspace: str, name: str) -> str:
        job = self.jobs[self.current_job]
        if job.scenario == "storage_io" and name == "manifest.json":
            raise OSError(5, "Input/output error", f"/data/{workspace}/{name}")
        try:
            return self.files[workspace][name]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", name) from None

    # -- registry -------------------------------------------------------------------------

    def registry_pull(self, image: str) -> str:
        job = self.jobs[self.current_job]
        if self.current_job >= self.outage_from:
            raise ConnectionRefusedError(f"registry.internal:5000 refused the pull of {image}")
        if self.flaky_left.get(job.id, 0) > 0:
            self.flaky_left[job.id] -= 1
            raise ConnectionResetError("registry.internal:5000 reset the connection")
        if image not in IMAGES:
            raise LookupError(image)
        return f"sha256:{zlib.crc32(image.encode()):08x}"

    def mirror_pull(self, image: str) -> str:
        if image not in MIRRORED:
            raise LookupError(image)
        return f"sha256:{zlib.crc32(image.encode()):08x}"

    # -- containers -----------------------------------------------------------------------

    def run_container(self, job: Job, digest: str) -> tuple[int, float, str]:
        """(exit status, seconds it ran, output)."""
        if job.scenario == "container_crash":
            return 137, 3.0, "Traceback ...\nMemoryError: cannot allocate tensor"
        if job.scenario == "slow":
            attempt = self.slow_attempts.get(job.id, 0) + 1
            self.slow_attempts[job.id] = attempt
            # one slow job makes it on its second try; the other never does
            if job.id % 2 == 0 and attempt >= 2:
                return 0, 12.0, json.dumps({"tp": 40, "fp": 10, "fn": 5})
            return 0, job.timeout_s + 5.0, ""
        if job.scenario == "scorer_bug":
            return 0, 2.0, json.dumps({"tp": 0, "fp": 0, "fn": 0})
        return 0, 4.0, json.dumps({"tp": 80 + job.id, "fp": 7, "fn": 3})

    def output_writable(self, job: Job) -> bool:
        return job.scenario != "output_readonly"

    # -- results API ----------------------------------------------------------------------

    def submit(self, job: Job, result: dict[str, object]) -> None:
        if job.scenario == "results_api_down":
            raise ConnectionAbortedError("results-api:8443 closed the connection (HTTP 503)")
        self.submitted.append(result)


def build(jobs: int, seed: int) -> World:
    """A world of ``jobs`` jobs whose failures are fixed by ``seed``."""
    rng = random.Random(seed)
    names, weights = zip(*SCENARIOS.items(), strict=True)
    out: list[Job] = []
    files: dict[str, dict[str, str]] = {}
    # Every scenario once, in a seeded order, then weighted draws: even a short run shows
    # every kind of failure.
    first = list(names)
    rng.shuffle(first)
    for i in range(jobs):
        scenario = first[i] if i < len(first) else rng.choices(names, weights)[0]
        workspace = f"ws-{seed}-{i:03d}"
        image = "scorer:9.9" if scenario == "unknown_image" else IMAGES[i % len(IMAGES)]
        params: dict[str, object] = {"metric": "f1", "threshold": 0.5}
        if scenario == "invalid_params":
            params = {"metric": "f1", "threshold": 1.7}
        manifest = {"dataset": "reviews-2024", "model": "sentiment", "task": "classification"}
        if scenario == "mismatch":
            manifest["task"] = "regression"
        ws_files = {
            "manifest.json": json.dumps(manifest),
            "predictions.csv": "id,label\n1,pos\n",
        }
        if scenario == "bad_manifest":
            ws_files["manifest.json"] = "dataset: reviews-2024\nmodel: sentiment\n"
        if scenario == "missing_file":
            del ws_files["predictions.csv"]
        if scenario != "workspace_missing":
            files[workspace] = ws_files
        out.append(Job(i, workspace, image, scenario, params))
    world = World(jobs=out, files=files, outage_from=max(jobs - max(jobs // 8, 4), 0))
    world.flaky_left = {j.id: 1 for j in out if j.scenario == "flaky_registry"}
    return world
