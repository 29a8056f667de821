"""Local alerts in a fleet: one crossing, one notification, however many processes share the
journal; memory that does not grow with the errors; paths resolved once.

Real processes (multiprocessing spawn, separate interpreters), a real webhook server on
127.0.0.1 (conftest), real journal files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import faultlens
from faultlens._config import (
    AlertThresholds,
    FrequencyThreshold,
    MonitoringSettings,
    NotificationSettings,
)
from faultlens.journal import LocalMonitor
from faultlens.journal._ledger import STATE_FILE
from faultlens.journal._window import JournalFollower
from unit.journal.conftest import Webhook
from unit.journal.journal_helpers import record, running_journal

SRC = str(Path(faultlens.__file__).resolve().parents[1])


def fleet_config(tmp_path: Path, journal: Path | str, url: str, interval: float = 0.1) -> str:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text(
        f"""
error_handling:
  monitoring:
    interval: {interval}
    alert_thresholds:
      error_frequency:
        "network:NET_CONNECTION_FAILED": {{window: 300, count: 2}}
  notifications:
    channels:
      - {{type: webhook, url: "{url}"}}
faultlens:
  journal: {{path: "{journal}"}}
"""
    )
    return str(cfg)


def spawn_worker(config: str, errors: int, linger: float) -> None:
    """A pool worker as an application writes it: configure, fail, keep running a while."""
    faultlens.configure(service_name="fleet", config_file=config)
    for i in range(errors):
        try:
            raise ConnectionError(f"registry refused {i}")
        except ConnectionError as exc:
            faultlens.record_error(exc)
    time.sleep(linger)  # several monitor intervals while the others watch the same journal
    faultlens.shutdown()


def test_one_crossing_is_notified_once_by_a_spawn_pool_sharing_the_journal(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    config = fleet_config(tmp_path, journal_dir, webhook.url)
    faultlens.configure(service_name="fleet", config_file=config)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=spawn_worker, args=(config, 2, 1.5)) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(2):
        record(ConnectionError(f"refused {i}"))
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    faultlens.shutdown()
    time.sleep(0.5)  # anything late would have arrived by now

    # Four processes, each watching the journal at 0.1 s and checking once more at exit,
    # all seeing the same 8 errors: one notification.
    alerts = webhook.alerts()
    assert [a["name"] for a in alerts] == ["ErrorFrequency"], alerts
    assert alerts[0]["labels"]["code"] == "NET_CONNECTION_FAILED"
    assert len(webhook.posts) == 1


POOL_APP = """
import multiprocessing, time
import faultlens

def work(i):
    try:
        raise ConnectionError(f"refused {i}")
    except ConnectionError as exc:
        faultlens.record_error(exc)
    time.sleep(0.5)

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(work, range(6))
    time.sleep(0.5)
"""


def test_one_crossing_under_faultlens_run_with_a_spawn_pool_is_notified_once(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    # Parent, pool workers and the resource tracker all run under `faultlens run`.
    (tmp_path / "faultlens.yaml").write_text(
        Path(fleet_config(tmp_path, journal_dir, webhook.url)).read_text()
    )
    (tmp_path / "app.py").write_text(POOL_APP)
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "faultlens.cli", "run", "--service", "pool", "--"]
    out = subprocess.run(
        [*cmd, sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    time.sleep(0.5)
    assert [a["name"] for a in webhook.alerts()] == ["ErrorFrequency"], webhook.alerts()


RUN = """
import sys, faultlens
faultlens.configure(service_name="job", config_file=sys.argv[1])
for i in range(int(sys.argv[2])):
    try:
        raise ConnectionError(f"refused {i}")
    except ConnectionError as exc:
        faultlens.record_error(exc)
"""


def run_job(config: str, errors: int, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run(
        [sys.executable, "-c", RUN, config, str(errors)], cwd=cwd, env=env, check=True, timeout=60
    )


def test_a_later_run_over_the_same_journal_does_not_resend_the_previous_runs_alert(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    config = fleet_config(tmp_path, journal_dir, webhook.url, interval=60)
    run_job(config, 3, tmp_path)  # crosses the threshold: notified at exit
    assert len(webhook.wait(1)) == 1

    run_job(config, 0, tmp_path)  # a healthy run: the old errors are still in the window
    run_job(config, 1, tmp_path)  # one more error: the same crossing, still firing
    time.sleep(0.3)
    assert len(webhook.posts) == 1, webhook.alerts()

    state = json.loads((journal_dir / STATE_FILE).read_text())
    assert list(state["alerts"]) == ["ErrorFrequency|category=network|code=NET_CONNECTION_FAILED"]
    assert (journal_dir / STATE_FILE).stat().st_mode & 0o777 == 0o600


# -- the rules over time, two monitors standing for two processes ------------------------------

T0 = 1_700_000_000.0
KEY = "ErrorFrequency|category=network|code=NET_CONNECTION_FAILED"


def write_lines(journal: Path, name: str, records: list[dict[str, Any]]) -> None:
    journal.mkdir(mode=0o700, exist_ok=True)
    with open(journal / name, "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def err(ts: float, severity: str = "high", **extra: Any) -> dict[str, Any]:
    return {
        "ts": ts,
        "code": "NET_CONNECTION_FAILED",
        "category": "network",
        "severity": severity,
        "message": "refused",
        **extra,
    }


def watcher(journal: Path, *, repeat: float = 3600.0) -> LocalMonitor:
    return LocalMonitor(
        MonitoringSettings(
            interval=60,
            alert_thresholds=AlertThresholds(
                (FrequencyThreshold("network", "NET_CONNECTION_FAILED", window=300, count=2),)
            ),
        ),
        NotificationSettings(channels=()),
        journal_path=str(journal),
        repeat_interval=repeat,
    )


def keys(alerts: list[Any]) -> list[str]:
    return [a.key for a in alerts]


def test_a_crossing_is_claimed_by_one_process_and_a_new_crossing_after_it_cleared_again(
    journal_dir: Path,
) -> None:
    write_lines(journal_dir, "journal-h-1-1.jsonl", [err(T0 + i) for i in range(3)])
    a, b = watcher(journal_dir), watcher(journal_dir)
    assert keys(a.check(now=T0 + 10)) == [KEY], "the first to see it notifies"
    assert b.check(now=T0 + 11) == [], "the other process sees it claimed"
    assert a.check(now=T0 + 70) == [], "still firing: the same crossing"

    write_lines(journal_dir, "journal-h-2-1.jsonl", [err(T0 + 80)])
    assert b.check(now=T0 + 90) == [], "more errors in the same crossing: no new notification"

    assert b.check(now=T0 + 400) == [], "the window moved past the errors: cleared"
    write_lines(journal_dir, "journal-h-2-1.jsonl", [err(T0 + 500 + i) for i in range(3)])
    assert keys(a.check(now=T0 + 510)) == [KEY], "a new crossing after it cleared"
    assert b.check(now=T0 + 511) == []


def test_a_still_firing_alert_is_repeated_only_with_new_errors_after_the_repeat_interval(
    journal_dir: Path,
) -> None:
    write_lines(journal_dir, "journal-h-1-1.jsonl", [err(T0 + i) for i in range(3)])
    a, b = watcher(journal_dir, repeat=100), watcher(journal_dir, repeat=100)
    assert keys(a.check(now=T0 + 5)) == [KEY]
    assert b.check(now=T0 + 120) == [], "repeat interval over, but no newer errors"
    write_lines(journal_dir, "journal-h-1-1.jsonl", [err(T0 + 130)])
    assert keys(b.check(now=T0 + 140)) == [KEY], "a reminder: still firing, new errors"
    assert a.check(now=T0 + 141) == []


def test_without_a_shared_state_file_a_process_still_notifies_once_per_crossing(
    tmp_path: Path,
) -> None:
    m = watcher(tmp_path / "missing")  # no journal directory: in-process state only
    m.window.extend([err(time.time() - i) for i in range(3)], time.time())  # in memory only
    assert keys(m.check()) == [KEY]
    assert m.check() == []


# -- counts -----------------------------------------------------------------------------------


def test_rate_limited_errors_count_towards_the_thresholds(journal_dir: Path) -> None:
    m = watcher(journal_dir)
    # Schema 1 carried the suppressed occurrences on the next error line.
    [alert] = m.evaluate([err(T0, suppressed=2)], T0 + 1)
    assert alert.value == 3

    # Schema 2 writes tally lines, whose count the writer updates in place while open.
    write_lines(journal_dir, "journal-h-1-1.jsonl", [err(T0)])
    tally = err(T0 + 2, kind="suppressed", count=1, first_ts=T0 + 2, open=True)
    line = json.dumps(tally).replace("true}", "true }").encode()  # fixed width, as written
    path = journal_dir / "journal-h-2-1.jsonl"
    path.write_bytes(line + b"\n")
    assert m.check(now=T0 + 3) == [], "1 error + 1 suppressed is not more than 2"
    grown = line.replace(b'"count": 1,', b'"count": 9,').replace(b"true }", b"false}")
    assert len(grown) == len(line)
    with open(path, "r+b") as fh:  # the writer bumps the open tally in place, and closes it
        fh.write(grown)
    [alert] = m.check(now=T0 + 4)
    assert alert.value == 1 + 9, "every occurrence, as faultlens.errors counts them"

    dropped = {"kind": "dropped", "ts": T0 + 5, "reason": "export_failed", "count": 50}
    assert m.evaluate([err(T0), dropped], T0 + 6) == [], "lost telemetry is not an error"


def test_local_alerts_count_rate_limited_errors_like_prometheus_does(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    faultlens.configure(
        service_name="svc",
        config_file=fleet_config(tmp_path, journal_dir, webhook.url, 60),
        rate_limit=5,
    )
    for _ in range(50):
        record(ConnectionError("registry refused"))  # one fingerprint: 5 written, 45 tallied
    faultlens.shutdown()
    [alert] = webhook.alerts()
    assert alert["value"] == 50, alert["summary"]


# -- memory and start-up -------------------------------------------------------------------------


def storm(journal: Path, n: int, start: float) -> int:
    """``n`` distinct errors as the writer lays them out (about 1.4 KB a line)."""
    journal.mkdir(mode=0o700, exist_ok=True)
    stack = "Traceback (most recent call last):\n" + '  File "app.py", line 1, in f\n' * 30
    with open(journal / "journal-h-9-1.jsonl", "w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        **err(start + i * 0.05),
                        "fingerprint": f"{i:032x}",
                        "message": f"refused by replica {i} " + "x" * 200,
                        "context": {"job": i},
                        "stack": stack,
                    }
                )
                + "\n"
            )
    return (journal / "journal-h-9-1.jsonl").stat().st_size


def test_the_monitor_keeps_counters_not_records(journal_dir: Path) -> None:
    now = time.time()
    size = storm(journal_dir, 20_000, now - 1_000)  # all of it within the hour
    assert size > 25_000_000
    m = LocalMonitor(
        MonitoringSettings(
            interval=60,
            alert_thresholds=AlertThresholds(
                (FrequencyThreshold("network", "NET_CONNECTION_FAILED", window=300, count=2),)
            ),
            anomaly_frequency=1_000,  # errors per hour: the monitor reads the whole hour
        ),
        NotificationSettings(channels=()),
        journal_path=str(journal_dir),
    )
    tracemalloc.start()
    try:
        alerts = {a.name: a for a in m.check(now=now)}
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert alerts["ErrorAnomaly"].value >= 19_990, "every error of the hour was counted"
    # The last 300 s of errors 50 ms apart, to within the 1 s bucket at the window's edge.
    assert 5_980 <= alerts["ErrorFrequency"].value <= 6_000
    assert peak < 8_000_000, f"{peak / 1e6:.1f} MB while reading {size / 1e6:.0f} MB"
    assert retained < 1_000_000, f"{retained / 1e6:.1f} MB kept after the check"


def test_the_journal_is_read_incrementally_never_again_from_the_start(journal_dir: Path) -> None:
    now = time.time()
    storm(journal_dir, 2_000, now - 50)
    follower = JournalFollower(str(journal_dir), since=now - 3600)
    seen: list[dict[str, Any]] = []
    assert follower.poll(seen.append)
    assert len(seen) == 2_000
    assert follower.poll(seen.append) and len(seen) == 2_000, "nothing new, nothing read"
    write_lines(journal_dir, "journal-h-9-1.jsonl", [err(now), err(now + 1)])
    with open(journal_dir / "journal-h-9-1.jsonl", "a") as fh:
        fh.write('{"ts": 1, "code": "HALF')  # a line still being written
    follower.poll(seen.append)
    assert len(seen) == 2_002


def test_starting_over_a_large_old_journal_reads_only_its_recent_end(journal_dir: Path) -> None:
    now = time.time()
    storm(journal_dir, 20_000, now - 20_000 * 0.05 - 7200)  # all but none within the hour
    write_lines(journal_dir, "journal-h-9-1.jsonl", [err(now - 10 + i) for i in range(3)])
    m = watcher(journal_dir)
    t0 = time.perf_counter()
    [alert] = m.check(now=now)
    elapsed = time.perf_counter() - t0
    assert alert.value == 3
    assert elapsed < 0.2, f"{elapsed:.3f}s to skip 28 MB of history"


def test_configure_over_a_large_journal_does_not_stall_the_application(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    storm(journal_dir, 20_000, time.time() - 900)
    t0 = time.perf_counter()
    faultlens.configure(
        service_name="svc", config_file=fleet_config(tmp_path, journal_dir, webhook.url, 60)
    )
    assert time.perf_counter() - t0 < 0.5, "the catch-up happens on the monitor's thread"
    t0 = time.perf_counter()
    faultlens.shutdown()  # a short job: the last check never re-reads the whole journal
    assert time.perf_counter() - t0 < 2.5


# -- paths ---------------------------------------------------------------------------------------


def test_alerts_fire_after_the_application_changes_directory(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    monkeypatch.chdir(app)
    faultlens.configure(
        service_name="svc", config_file=fleet_config(tmp_path, "journal", webhook.url, 60)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)  # what a daemon or a build step does
    for i in range(3):
        record(ConnectionError(f"refused {i}"))
    journal = running_journal()
    journal.flush()
    assert journal.monitor is not None
    assert [a.name for a in journal.monitor.check()] == ["ErrorFrequency"]
    assert (app / "journal").is_dir() and not (elsewhere / "journal").exists()
    faultlens.shutdown()
    assert len(webhook.wait(1)) == 1
