"""Zero-code start on an app with no faultlens import: `faultlens run` alone gets its errors
classified, journaled and counted, once each, and a SIGTERM loses none of them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from unit.examples.example_helpers import EXAMPLES, clean_env, faultlens_cli, stats

APP = str(EXAMPLES / "plain_app" / "app.py")


def test_the_plain_app_really_has_no_faultlens_import():
    sources = [p.read_text() for p in (EXAMPLES / "plain_app").rglob("*.py")]
    imports = re.compile(r"^\s*(import|from)\s+faultlens", re.MULTILINE)
    assert sources and not any(imports.search(s) for s in sources)


def test_faultlens_run_journals_classified_errors_with_the_right_counts(tmp_path):
    journal = tmp_path / "journal"
    proc = faultlens_cli(
        "run", "--modules", "plain_app*", "--journal", str(journal), "--", "python", APP
    )
    assert proc.returncode == 0, proc.stderr
    assert "outcomes ConnectionError=2 FileNotFoundError=2 PermissionError=1" in proc.stdout
    s = stats(journal)
    # 9 failed orders, each recorded once although it crossed 3 to 4 wrapped frames
    assert s["total"] == 9
    assert s["by_code"] == {
        "VAL_INVALID_VALUE": 3,
        "NET_CONNECTION_FAILED": 2,
        "VAL_FILE_NOT_FOUND": 2,
        "EXE_PERMISSION_DENIED": 1,
        "SYS_UNKNOWN_ERROR": 1,
    }
    assert s["by_category"] == {"validation": 5, "network": 2, "execution": 1, "system": 1}


def test_an_uncaught_crash_is_journaled_and_the_exit_is_unchanged(tmp_path):
    journal = tmp_path / "journal"
    proc = faultlens_cli(
        "run", "--modules", "plain_app*", "--journal", str(journal), "--", "python", APP, "--crash"
    )
    assert proc.returncode == 1
    assert "FileNotFoundError: order file orders/A-404.json" in proc.stderr  # traceback kept
    s = stats(journal)
    # 9 handled failures; the crash's FileNotFoundError where it escaped the instrumented
    # function (its catalog severity), and the crash itself, a record of its own: critical
    assert s["total"] == 11 and s["by_code"]["VAL_FILE_NOT_FOUND"] == 4
    assert s["by_severity"]["critical"] == 1


def test_sigterm_mid_run_loses_no_error_recorded_before_it(tmp_path):
    journal = tmp_path / "journal"
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "faultlens.cli", "run", "--modules", "plain_app*"),
            *("--journal", str(journal), "--", "python", APP, "--forever"),
        ],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported = 0
    deadline = time.monotonic() + 30
    while reported < 25 and time.monotonic() < deadline:
        if child.stdout.readline().startswith("error "):
            reported += 1  # printed after the error was recorded
    child.send_signal(signal.SIGTERM)
    rest, _ = child.communicate(timeout=30)
    reported += sum(line.startswith("error ") for line in rest.splitlines())
    assert child.returncode == -signal.SIGTERM  # still ends as killed by SIGTERM
    total = stats(journal)["total"]
    # every error reported before the signal is in the journal (at most one more was being
    # recorded when the signal arrived)
    assert reported >= 25
    assert reported <= total <= reported + 1
