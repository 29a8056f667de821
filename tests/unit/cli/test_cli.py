"""The faultlens command: each subcommand's text and --json output, and how it fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from faultlens.cli import main, parse_duration

REPO = Path(__file__).resolve().parents[3]
PLAIN_APP = REPO / "examples" / "plain_app" / "app.py"
CODES = REPO / "examples" / "scoring_pipeline" / "codes.yaml"


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    """A journal written by a real app run under `faultlens run` (9 errors)."""
    path = tmp_path_factory.mktemp("cli") / "journal"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "faultlens.cli",
            "run",
            "--modules",
            "plain_app*",
            "--journal",
            str(path),
            "--",
            "python",
            str(PLAIN_APP),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("24h", 86400), ("7d", 604800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0m", "3 fortnights"])
def test_bad_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="30m, 24h, 7d"):
        parse_duration(text)


def test_bad_input_exits_2_with_the_cli_envelope(capsys):
    code, body = run_json(capsys, "stats", "--since", "yesterday")
    assert code == 2
    assert body["status"] == "error"
    assert body["error"]["code"] == "VAL_INVALID_VALUE"
    assert "--since" in body["error"]["message"]
    assert "timestamp" in body


def test_unknown_options_are_bad_input_too(capsys):
    assert main(["stats", "--frobnicate"]) == 2
    assert "faultlens:" in capsys.readouterr().err


def test_a_missing_journal_is_a_failure_with_the_way_out(capsys, tmp_path):
    code, body = run_json(capsys, "stats", "--journal", str(tmp_path / "none"))
    assert code == 1
    assert body["error"]["code"] == "VAL_FILE_NOT_FOUND"
    assert "faultlens run" in body["error"]["message"]


def test_stats_json_counts_the_journal(capsys, journal):
    code, body = run_json(capsys, "stats", "--journal", str(journal), "--since", "1h")
    assert code == 0 and body["status"] == "ok"
    assert body["data"]["total"] == 9
    assert body["data"]["by_category"] == {
        "validation": 5,
        "network": 2,
        "execution": 1,
        "system": 1,
    }


def test_stats_text_shows_the_tables(capsys, journal):
    assert main(["stats", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    for heading in ("Top errors", "By code", "By category", "By severity", "By stage", "Trend"):
        assert heading in out
    assert "VAL_INVALID_VALUE" in out


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_report_writes_the_file_and_says_where(capsys, journal, tmp_path, fmt):
    target = tmp_path / f"r.{fmt}"
    code, body = run_json(
        capsys, "report", "--format", fmt, "--journal", str(journal), "-o", str(target)
    )
    assert code == 0 and body["data"]["path"] == str(target)
    assert target.stat().st_size > 0


def test_codes_lists_builtins_and_a_user_catalog_with_hints(capsys):
    code, body = run_json(capsys, "codes", "--catalog", str(CODES))
    assert code == 0
    codes = {c["code"]: c for c in body["data"]["codes"]}
    assert codes["VAL_FILE_NOT_FOUND"]["source"] == "built-in"
    assert codes["WORKSPACE_NOT_FOUND"]["category"] == "validation"
    assert "workspace" in codes["WORKSPACE_NOT_FOUND"]["hint"]
    main(["codes", "--category", "network"])
    out = capsys.readouterr().out
    assert "NET_CONNECTION_FAILED" in out and "VAL_FILE_NOT_FOUND" not in out


def test_codes_with_a_broken_catalog_names_the_file(capsys, tmp_path):
    bad = tmp_path / "codes.yaml"
    bad.write_text("codes:\n  X: {category: nonsense}\n")
    code, body = run_json(capsys, "codes", "--catalog", str(bad))
    assert code == 2 and str(bad) in body["error"]["message"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_reports_each_check_with_a_fix(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FAULTLENS_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    # A closed health port too: the bundled stack may be running on :13133 meanwhile.
    health = f"http://127.0.0.1:{_closed_port()}/"
    code, body = run_json(
        capsys,
        "doctor",
        "--journal",
        str(tmp_path / "j"),
        "--timeout",
        "0.5",
        "--health-url",
        health,
    )
    checks = {c["name"]: c for c in body["data"]["checks"]}
    assert code == 1 and body["data"]["ok"] is False
    assert checks["config"]["status"] == "ok"
    assert checks["endpoint"]["status"] == "fail" and "collector" in checks["endpoint"]["fix"]
    assert checks["collector health"]["status"] == "warn"
    assert checks["journal"]["status"] == "ok"
    assert checks["psutil"]["status"] in ("ok", "warn")


def test_doctor_without_a_collector_is_healthy(capsys, tmp_path):
    code, body = run_json(capsys, "doctor", "--journal", str(tmp_path / "j"))
    assert code == 0, body
    assert {c["name"]: c["status"] for c in body["data"]["checks"]}["endpoint"] == "skip"


@pytest.mark.parametrize(
    ("opt_in", "said"),
    [
        (None, "exceptions as span events"),
        ("logs", "exceptions as log records to http://logs.example:4318/v1/logs"),
        ("logs/dup", "exceptions as span events and log records to http://logs.example"),
    ],
)
def test_doctor_says_how_exceptions_are_signalled_and_where_log_records_go(
    capsys, tmp_path, monkeypatch, opt_in, said
):
    monkeypatch.setenv("FAULTLENS_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs.example:4318/v1/logs")
    if opt_in:
        monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", opt_in)
    _, body = run_json(capsys, "doctor", "--journal", str(tmp_path / "j"), "--timeout", "0.2")
    config = body["data"]["checks"][0]
    assert config["status"] == "ok" and said in config["detail"]
    assert ("logs.example" in config["detail"]) == bool(opt_in)  # span mode sends no records


def test_doctor_catches_a_broken_config_file(capsys, tmp_path, monkeypatch):
    (tmp_path / "faultlens.yaml").write_text("error_handling:\n  retry: {max_retries: -3}\n")
    monkeypatch.chdir(tmp_path)
    code, body = run_json(capsys, "doctor")
    config = body["data"]["checks"][0]
    assert code == 1 and config["status"] == "fail" and "max_retries" in config["detail"]


def test_version(capsys):
    code, body = run_json(capsys, "version")
    assert code == 0 and body["data"]["faultlens"]


def test_run_without_a_command_is_bad_input(capsys):
    assert main(["run", "--service", "x"]) == 2
    assert "after `--`" in capsys.readouterr().err


def test_run_passes_the_options_to_the_child(tmp_path, capfd):
    code = main(
        [
            *("run", "--no-exec", "--service", "scorer", "--modules", "a.*,b"),
            *("--journal", str(tmp_path / "j"), "--"),
            *("python", "-c", "import os; print(os.environ['FAULTLENS_AUTO_MODULES'])"),
        ]
    )
    assert code == 0
    assert capfd.readouterr().out.strip() == "a.*,b"


def test_run_reports_the_childs_exit_code(tmp_path):
    assert main(["run", "--no-exec", "--", "python", "-c", "raise SystemExit(3)"]) == 3


def test_demo_runs_the_pipeline_and_ends_with_the_report_path(capsys, tmp_path):
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--jobs", "16"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline: scored ")
    assert "By code" in out
    last = out.strip().splitlines()[-1]
    assert last == f"report: {tmp_path / 'demo' / 'report.html'}"
    assert (tmp_path / "demo" / "report.html").stat().st_size > 1000
