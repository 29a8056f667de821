"""The pipeline's stages. Each is instrumented with its stage name, so an error escaping it
is recorded once, classified, with the stage and the job's context; low-level exceptions are
turned into the pipeline's own codes where they happen, keeping the original as the cause.
"""

from __future__ import annotations

import json

import faultlens

from .errors import (
    BadFormat,
    ContainerFailed,
    ImageNotFound,
    InvalidParams,
    ListError,
    LoadError,
    Mismatch,
    MissingFile,
    PermissionDenied,
    ScoringTimeout,
    SubmitError,
    UnhandledError,
    WorkspaceNotFound,
)
from .world import Job, World

REQUIRED_FILES = ("manifest.json", "predictions.csv")
METRICS = frozenset({"f1", "precision", "recall"})


@faultlens.instrument(stage="list")
def list_workspaces(world: World) -> list[str]:
    try:
        return world.list_workspaces()
    except ConnectionError as exc:
        raise ListError("listing workspaces failed", cause=exc) from exc


@faultlens.instrument(stage="load")
def load_workspace(world: World, job: Job, known: set[str]) -> dict[str, str]:
    if job.workspace not in known:
        raise WorkspaceNotFound(
            f"workspace {job.workspace} does not exist", details={"workspace": job.workspace}
        )
    files: dict[str, str] = {}
    for name in REQUIRED_FILES:
        try:
            files[name] = world.read(job.workspace, name)
        except FileNotFoundError as exc:
            raise MissingFile(
                f"{name} is missing from workspace {job.workspace}",
                details={"file": name, "workspace": job.workspace},
                cause=exc,
            ) from exc
        except OSError as exc:
            raise LoadError(
                f"reading {name} failed: {exc.strerror}",
                details={"file": name, "errno": exc.errno},
                cause=exc,
            ) from exc
    try:
        manifest = json.loads(files["manifest.json"])
    except ValueError as exc:
        raise BadFormat(
            "manifest.json is not valid JSON", details={"file": "manifest.json"}, cause=exc
        ) from exc
    return {k: str(v) for k, v in manifest.items()}


@faultlens.instrument(stage="validate")
def validate(job: Job, manifest: dict[str, str]) -> None:
    threshold = job.params.get("threshold")
    if not isinstance(threshold, float) or not 0.0 <= threshold <= 1.0:
        raise InvalidParams(
            f"threshold must be within 0..1, got {threshold}", details={"param": "threshold"}
        )
    if job.params.get("metric") not in METRICS:
        raise InvalidParams(f"unknown metric {job.params.get('metric')!r}")
    if manifest.get("task") != "classification":
        raise Mismatch(
            f"model {manifest.get('model')} is for classification but the dataset is for "
            f"{manifest.get('task')}",
            details={"model": manifest.get("model"), "task": manifest.get("task")},
        )


@faultlens.instrument(stage="pull")
def pull_from_registry(world: World, image: str) -> str:
    try:
        return world.registry_pull(image)
    except LookupError as exc:
        raise ImageNotFound(f"image {image} is not in the registry", cause=exc) from exc


@faultlens.instrument(stage="pull")
def pull_from_mirror(world: World, image: str) -> str:
    try:
        return world.mirror_pull(image)
    except LookupError as exc:
        raise ImageNotFound(
            f"image {image} is in neither the registry (unreachable) nor the mirror",
            details={"image": image},
            cause=exc,
        ) from exc


@faultlens.instrument(stage="run")
def run_container(world: World, job: Job, digest: str) -> str:
    if not world.output_writable(job):
        raise PermissionDenied(
            f"cannot write to /results/{job.workspace}", details={"path": f"/results/{job.id}"}
        )
    status, seconds, output = world.run_container(job, digest)
    if seconds > job.timeout_s:
        raise ScoringTimeout(
            f"container ran {seconds:.0f}s, over the {job.timeout_s:.0f}s limit",
            details={"limit_s": job.timeout_s},
        )
    if status != 0:
        raise ContainerFailed(
            f"container exited with status {status}",
            details={"status": status, "log_tail": output[-200:]},
        )
    return output


@faultlens.instrument(stage="score")
def score(job: Job, output: str) -> dict[str, object]:
    try:
        counts = json.loads(output)
        precision = counts["tp"] / (counts["tp"] + counts["fp"])
        recall = counts["tp"] / (counts["tp"] + counts["fn"])
        f1 = 2 * precision * recall / (precision + recall)
    except Exception as exc:  # a bug in the scorer, not in the job
        raise UnhandledError(f"scoring job {job.id} crashed: {exc!r}", cause=exc) from exc
    return {"job": job.id, "f1": round(f1, 4)}


@faultlens.instrument(stage="submit")
def submit(world: World, job: Job, result: dict[str, object]) -> str:
    try:
        world.submit(job, result)
    except ConnectionError as exc:
        raise SubmitError("the results API dropped the submission", cause=exc) from exc
    return "submitted"


def spool(world: World, job: Job, result: dict[str, object]) -> str:
    """The fallback for ``submit``: keep the result locally, to be resent later."""
    world.spooled.append(result)
    return "spooled"
