"""The scoring pipeline: the domain catalog, every code exercised, deterministic counts, and
the same numbers whether it runs on its own or under `faultlens run`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import yaml

import faultlens
from unit.examples.example_helpers import EXAMPLES, clean_env, faultlens_cli, stats

# What seed 7 with 40 jobs records: each error once, where it was raised.
EXPECTED = {
    "TIMEOUT_ERROR": 5,  # 3 slow jobs: one passes on its retry, two time out twice
    "NET_CONNECTION_FAILED": 4,  # a flaky pull retried, then the registry outage trips the breaker
    "WORKSPACE_NOT_FOUND": 4,
    "INVALID_PARAMS": 3,
    "MISMATCH": 3,
    "SUBMIT_ERROR": 3,  # recovered: spooled for resend, still recorded
    "EXE_CIRCUIT_OPEN": 2,  # rejected by the open breaker, recorded by the recovery
    "IMAGE_NOT_FOUND": 2,
    "LOAD_ERROR": 2,
    "BAD_FORMAT": 1,
    "CONTAINER_FAILED": 1,
    "LIST_ERROR": 1,  # the first listing fails, the retry works
    "MISSING_FILE": 1,
    "PERMISSION_DENIED": 1,
    "UNHANDLED_ERROR": 1,
}
DOMAIN_CODES = {
    "WORKSPACE_NOT_FOUND": "validation",
    "INVALID_PARAMS": "validation",
    "BAD_FORMAT": "validation",
    "MISMATCH": "validation",
    "MISSING_FILE": "validation",
    "IMAGE_NOT_FOUND": "execution",
    "CONTAINER_FAILED": "execution",
    "TIMEOUT_ERROR": "execution",
    "PERMISSION_DENIED": "execution",
    "UNHANDLED_ERROR": "system",
    "LIST_ERROR": "system",
    "LOAD_ERROR": "system",
    "SUBMIT_ERROR": "system",
}


def test_the_catalog_defines_every_domain_code_with_a_hint_and_an_exception():
    from scoring_pipeline import errors

    doc = yaml.safe_load((EXAMPLES / "scoring_pipeline" / "codes.yaml").read_text())
    assert {c: v["category"] for c, v in doc["codes"].items()} == DOMAIN_CODES
    assert all(len(v["hint"]) > 30 for v in doc["codes"].values())
    declared = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, faultlens.FaultError) and cls.code
    }
    assert declared == set(DOMAIN_CODES)


def test_a_seeded_run_records_every_code_a_known_number_of_times():
    from scoring_pipeline.pipeline import run

    with faultlens.testing.capture() as cap:
        summary = run(jobs=40, seed=7)
    assert Counter(e.info.code for e in cap.errors) == EXPECTED
    categories = {e.info.code: str(e.info.category) for e in cap.errors}
    assert {c: categories[c] for c in DOMAIN_CODES} == DOMAIN_CODES  # classified by the catalog
    assert summary.succeeded == 20 and summary.spooled == 3
    stages = Counter(e.info.stage for e in cap.errors)
    assert stages == {
        "load": 8,
        "pull": 8,
        "run": 7,
        "validate": 6,
        "submit": 3,
        "list": 1,
        "score": 1,
    }
    errors_by_job = [e for e in cap.errors if "faultlens.context.job_id" in e.attributes]
    assert len(errors_by_job) == sum(EXPECTED.values()) - 1  # all but the listing


def test_the_breaker_opens_on_the_registry_outage_and_the_mirror_takes_over():
    from scoring_pipeline import resilience
    from scoring_pipeline.pipeline import run

    with faultlens.testing.capture() as cap:
        run(jobs=40, seed=7)
    assert resilience.registry_breaker.state == "open"
    assert cap.counter("faultlens.circuit_breaker.transitions", to="open") == 1
    assert cap.counter("faultlens.recovery.actions", outcome="recovered") >= 3


def test_the_same_counts_under_faultlens_run(tmp_path):
    journal = tmp_path / "journal"
    proc = faultlens_cli(
        "run", "--journal", str(journal), "--", "python", str(EXAMPLES / "scoring_pipeline")
    )
    assert proc.returncode == 0, proc.stderr
    assert stats(journal)["by_code"] == EXPECTED


def test_it_runs_on_its_own_too(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "scoring_pipeline"), "--jobs", "14"],
        env={**clean_env(), "FAULTLENS_JOURNAL_PATH": str(tmp_path / "j")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("scored ")
