"""What a user reads — `faultlens report` and `faultlens stats` — counts every error the
journal holds, rate-limited ones included, and survives any line the journal holds."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import faultlens
from faultlens.reports import write_report
from unit.journal.journal_helpers import record

REPO = Path(__file__).resolve().parents[3]


def storm_journal(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=5)
    for _ in range(50):
        record(ConnectionError("upstream refused"))
    faultlens.shutdown()


def test_reports_count_the_summarised_occurrences(tmp_path: Path, journal_dir: Path) -> None:
    storm_journal(journal_dir)
    out = write_report(str(tmp_path / "r.json"), "json", journal_path=str(journal_dir), since=None)
    doc = json.loads(Path(out).read_text())
    assert (doc["stats"]["total"], doc["stats"]["suppressed"]) == (50, 45)
    assert doc["stats"]["top"][0]["count"] == 50
    assert len(doc["records"]) == 5 and {r["kind"] for r in doc["records"]} == {"error"}

    out = write_report(str(tmp_path / "r.csv"), "csv", journal_path=str(journal_dir), since=None)
    rows = list(csv.DictReader(io.StringIO(Path(out).read_text())))
    assert len(rows) == 5, "one row per error written in full"

    out = write_report(str(tmp_path / "r.html"), "html", journal_path=str(journal_dir), since=None)
    assert ">45<" in Path(out).read_text().replace(" ", "")  # the summary's suppressed cell


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "faultlens.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e20", "1e400", "true"])
def test_stats_and_report_skip_a_line_with_an_impossible_ts(
    tmp_path: Path, journal_dir: Path, bad: str
) -> None:
    storm_journal(journal_dir)
    (journal_dir / "journal-edited-1-1.jsonl").write_text(
        '{"ts": ' + bad + ', "code": "VAL_INVALID_VALUE", "severity": "high"}\n'
    )
    stats = cli("--json", "stats", "--journal", str(journal_dir))
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)["data"]
    assert (data["total"], data["suppressed"]) == (50, 45)
    assert "skipped 1 corrupt or torn line" in stats.stderr

    text = cli("stats", "--journal", str(journal_dir))
    assert text.returncode == 0, text.stderr
    assert "50" in text.stdout and "45 of them summarised" in text.stdout

    report = cli("report", "--journal", str(journal_dir), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
