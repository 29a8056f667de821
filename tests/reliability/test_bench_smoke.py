"""CI runs a short smoke of the benchmarks: every group runs and reports its ratios. Timing
is not gated here (CI machines are noisy); `make bench` prints the real table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_groups_run_and_write_results(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--only", "core,resilience,storm",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    groups = {row["group"] for row in doc["rows"]}
    assert {"instrument", "record", "retry", "breaker", "storm"} <= groups, groups
    assert doc["errors"] == {}
    for row in doc["rows"]:
        if row["anchor"]:
            assert row["ratio"] > 0
    assert "ratio" in proc.stdout and "goal" in proc.stdout
