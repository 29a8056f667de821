"""examples/celery_worker on the stack: the scoring jobs as Celery tasks on the stack's Redis,
the worker under `faultlens run` (prefork, 2 processes), what `make stack-demo` runs.

The example knows what it must record (``tasks.expected_outcomes``): the journal must show
exactly that, and Prometheus (through the collector) every code of it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from support.ci import missing_component

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "celery_worker"
REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis(stack) -> str:
    found = subprocess.run(
        [str(REPO / "scripts" / "stack.sh"), "bin", "redis"],
        env=stack.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        missing_component(
            f"redis-server is not installed ({found.stdout.strip()}); run `make stack-deps`"
        )
    stack.sh("start", "redis")
    import redis as redis_client

    client = redis_client.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


def expected(jobs: int) -> dict:
    sys.path.insert(0, str(REPO / "examples"))
    try:
        return importlib.import_module("celery_worker.tasks").expected_outcomes(jobs)
    finally:
        sys.path.remove(str(REPO / "examples"))


def test_the_celery_example_records_exactly_what_it_should(tmp_path, stack, redis):
    service = f"itest-example-{uuid.uuid4().hex[:8]}"
    journal = tmp_path / "journal"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--jobs",
            "12",
            "--broker",
            redis,
            "--endpoint",
            stack.otlp_grpc,
            "--service",
            service,
            "--journal",
            str(journal),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = expected(12)

    occurrences: Counter[str] = Counter()
    for path in journal.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("service") != service:
                continue
            if entry.get("kind", "error") == "error":
                occurrences[entry["code"]] += 1 + int(entry.get("suppressed", 0))
            elif entry["kind"] == "suppressed":
                occurrences[entry["code"]] += int(entry["count"])
    assert dict(occurrences) == want["errors"]

    # Prometheus has every code, through the collector. Not the exact counts: the batch
    # crashes a pool process on purpose, and a process that dies takes with it what it had
    # counted since its last export (the journal, written through, has everything). Exact
    # Prometheus counts from a prefork worker: test_celery_worker.py.
    codes = {(k,) for k in want["errors"]}
    stack.prom_wait(
        f'sum by (code) (faultlens_errors_total{{job="{service}"}})',
        until=lambda r: {(x["metric"]["code"],) for x in r} == codes,
        timeout=60,
    )
    stack.prom_wait(
        f'sum by (operation) (faultlens_retry_attempts_total{{job="{service}"}})',
        until=lambda r: {x["metric"]["operation"] for x in r} >= {"scoring.pull_image"},
        timeout=60,
    )
