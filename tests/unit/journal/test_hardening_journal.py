"""The journal never loses a count and never leaks: rate-limited errors reach every local
total, bad lines are skipped and counted, files are owner-only, retention is by age and size.

Each test reads the journal back the way `faultlens stats`, the reports and the local
monitor do.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

import faultlens
from faultlens.journal import (
    JournalTail,
    _format,
    _writer,
    compute_stats,
    inspect_journal,
    journal_stats,
    list_files,
    occurrences,
    read_entries,
    read_records,
)
from unit.journal.journal_helpers import record, running_journal


def storm(n: int, message: str = "upstream refused", **context: Any) -> None:
    """n occurrences of one error (same place, same message: one fingerprint)."""
    for _ in range(n):
        record(ConnectionError(message), **context)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- 1. rate-limited errors reach every local total --------------------------------------------


def test_fifty_errors_under_rate_limit_five_read_fifty_everywhere(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=5)
    storm(50)
    faultlens.shutdown()  # the storm just ends: no later record carries the count

    assert len(list(read_records(str(journal_dir)))) == 5, "5 written in full"
    s = journal_stats(str(journal_dir))
    assert (s.total, s.suppressed, s.recorded) == (50, 45, 5)
    assert s.by_code == {"NET_CONNECTION_FAILED": 50}
    assert s.by_severity == {"high": 50}
    [top] = s.top
    assert (top.count, top.suppressed, top.message) == (50, 45, "upstream refused")
    assert sum(b.count for b in s.buckets) == 50
    assert sum(occurrences(e) for e in read_entries(str(journal_dir))) == 50


def test_the_tally_is_exact_on_disk_before_shutdown_and_takes_one_line(
    journal_dir: Path,
) -> None:
    # No flush, no shutdown: what a process that dies right now leaves behind.
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=5)
    storm(50)
    assert journal_stats(str(journal_dir)).total == 50
    storm(1000)
    assert journal_stats(str(journal_dir)).total == 1050
    tallies = [e for e in read_entries(str(journal_dir)) if e["kind"] == "suppressed"]
    assert len(tallies) == 1, "a storm costs one line, updated in place, not one per error"
    assert tallies[0]["open"] is True and tallies[0]["count"] == 1045
    faultlens.shutdown()
    [closed] = [e for e in read_entries(str(journal_dir)) if e["kind"] == "suppressed"]
    assert closed["open"] is False and closed["count"] == 1045


def test_the_local_monitor_sees_the_same_total_incrementally(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=5)
    tail = JournalTail(str(journal_dir))
    seen = 0
    for _ in range(4):
        storm(20)
        seen += sum(occurrences(e) for e in tail.poll())
        assert seen == journal_stats(str(journal_dir)).total
    faultlens.shutdown()
    seen += sum(occurrences(e) for e in tail.poll())
    assert seen == 80 == journal_stats(str(journal_dir)).total
    assert tail.poll() == [], "nothing is counted twice"


def test_a_new_tally_starts_when_severity_or_stage_changes(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=1)

    def fail(stage: str, severity: str | None = None) -> None:
        try:
            raise ValueError("bad row")
        except ValueError as exc:
            faultlens.record_error(exc, stage=stage, severity=severity)

    for _ in range(3):
        fail("load")
    for _ in range(2):
        fail("load", "critical")
    fail("score")
    faultlens.shutdown()
    s = journal_stats(str(journal_dir))
    assert s.total == 6
    assert s.by_severity == {"critical": 2, "medium": 4}
    assert s.by_stage == {"load": 5, "score": 1}


def test_open_tallies_are_bounded(journal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_writer, "MAX_SLOTS", 4)
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=1)
    writer = running_journal().writer
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
    for name in names:  # nine fingerprints, each rate-limited twice
        storm(3, f"no route to {name}")
        assert len(writer._slots) <= 4
    faultlens.shutdown()
    s = journal_stats(str(journal_dir))
    assert (s.total, s.suppressed, s.unique_fingerprints) == (27, 18, 9)


def test_what_faultlens_drops_shows_in_stats_and_inspect_journal(journal_dir: Path) -> None:
    # Journal-only mode: faultlens.internal.dropped has no backend; the journal carries it.
    def broken_processor(event: Any) -> Any:
        raise RuntimeError("a bug in the app's processor")

    faultlens.configure(
        service_name="svc", journal_path=str(journal_dir), processors=[broken_processor]
    )
    record(ValueError("still recorded"))
    faultlens.shutdown()

    s = journal_stats(str(journal_dir))
    assert s.total == 1 and s.dropped == {"internal_error": 1}
    assert any(sig.kind == "dropped" for sig in s.signals)
    health = inspect_journal(str(journal_dir))
    assert health.dropped == {"internal_error": 1}
    assert any("could not record 1 item" in p for p in health.problems)


# -- 2. bad values are corrupt lines, never a traceback ----------------------------------------


GOOD = {"ts": 1_700_000_000.5, "code": "VAL_INVALID_VALUE", "severity": "high"}


@pytest.mark.parametrize(
    "bad",
    [
        '{"ts": NaN, "code": "X"}',
        '{"ts": Infinity, "code": "X"}',
        '{"ts": -Infinity, "code": "X"}',
        '{"ts": 1e20, "code": "X"}',
        '{"ts": 1e400, "code": "X"}',
        '{"ts": -5, "code": "X"}',
        '{"ts": true, "code": "X"}',
        '{"ts": "1700000000", "code": "X"}',
        '{"ts": 1700000000, "code": 5}',
        '{"ts": 1700000000, "code": ""}',
        '{"ts": 1700000000, "code": "X", "suppressed": -1}',
        '{"ts": 1700000000, "code": "X", "suppressed": 2.5}',
        '{"ts": 1700000000, "code": "X", "suppressed": true}',
        '{"ts": 1700000000, "code": "X", "suppressed": 1e30}',
        '{"ts": 1700000000, "code": "X", "suppressed": NaN}',
        '{"ts": 1700000000, "code": "X", "severity": ["high"]}',
        '{"ts": 1700000000, "code": "X", "context": [1, 2]}',
        '{"ts": 1700000000, "code": "X", "message": {"a": 1}}',
        '{"ts": 1700000000, "code": "X", "kind": "mystery"}',
        '{"ts": 1700000000, "code": "X", "kind": "suppressed", "count": -3}',
        '{"ts": 1700000000, "code": "X", "kind": "suppressed", "count": Infinity}',
        '{"ts": 1700000000, "code": "X", "kind": "suppressed", "count": 2, "first_ts": NaN}',
        '{"ts": 1700000000, "kind": "dropped", "reason": "queue_full", "count": "3"}',
        "[1, 2, 3]",
        '"just a string"',
    ],
)
def test_a_value_out_of_range_or_of_the_wrong_type_is_a_skipped_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    f = tmp_path / "journal-h-1-1.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" + bad + "\n" + json.dumps({**GOOD, "ts": GOOD["ts"] + 1}))
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        entries = list(read_entries(str(tmp_path)))
        s = journal_stats(str(tmp_path), now=GOOD["ts"] + 10)
    assert [e["ts"] for e in entries] == [GOOD["ts"], GOOD["ts"] + 1]
    assert s.total == 2
    assert "skipped 1 corrupt or torn line" in caplog.text
    json.dumps(s.to_dict(), allow_nan=False)  # what `faultlens stats --json` prints is JSON
    assert inspect_journal(str(tmp_path)).bad_lines == 1


def test_compute_stats_ignores_bad_values_whoever_built_the_list() -> None:
    now = 1_700_000_000.0
    odd: list[dict[str, Any]] = [
        {"ts": now, "code": "X"},
        {"ts": math.nan, "code": "X"},
        {"ts": math.inf, "code": "X"},
        {"ts": 1e20, "code": "X"},
        {"ts": now, "code": "X", "suppressed": math.nan},
        {"ts": now, "code": "X", "kind": "suppressed", "count": 2, "first_ts": math.inf},
        {"ts": now, "code": "X", "kind": "suppressed", "count": 4},
    ]
    s = compute_stats(odd, now=now)
    assert s.total == 5 and s.suppressed == 4
    json.dumps(s.to_dict(), allow_nan=False)


def test_non_finite_context_values_are_written_as_strings(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir))
    record(ValueError("odd ratio"), ratio=math.nan, limit=math.inf)
    faultlens.shutdown()
    raw = next(journal_dir.iterdir()).read_text()
    json.loads(raw, parse_constant=lambda c: pytest.fail(f"{c} in the journal"))
    [rec] = read_records(str(journal_dir))
    assert rec["context"] == {"ratio": "nan", "limit": "inf"}


def test_a_line_over_the_size_limit_is_skipped_without_being_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faultlens.journal import _reader

    monkeypatch.setattr(_reader, "MAX_LINE", 1000)
    f = tmp_path / "journal-h-1-1.jsonl"
    huge = json.dumps({**GOOD, "message": "x" * 5000})
    f.write_text(json.dumps(GOOD) + "\n" + huge + "\n" + json.dumps({**GOOD, "code": "LAST"}))
    assert [e["code"] for e in read_entries(str(tmp_path))] == ["VAL_INVALID_VALUE", "LAST"]
    tail = JournalTail(str(tmp_path))
    assert [e["code"] for e in tail.poll()] == ["VAL_INVALID_VALUE"]  # last one: no newline


# -- 3. owner-only files ------------------------------------------------------------------------


@pytest.fixture
def umask() -> Any:
    def set_umask(value: int) -> None:
        os.umask(value)

    old = os.umask(0o022)
    os.umask(old)
    yield set_umask
    os.umask(old)


@pytest.mark.parametrize("value", [0o000, 0o022, 0o077])
def test_directory_0700_and_files_0600_whatever_the_umask(
    tmp_path: Path, umask: Any, value: int
) -> None:
    umask(value)
    journal = tmp_path / "state" / "journal"  # two levels faultlens creates
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text("faultlens:\n  journal:\n    max_bytes: 4096\n")
    faultlens.configure(
        service_name="svc", journal_path=str(journal), config_file=str(cfg), rate_limit=45
    )
    for i in range(40):  # several rotations...
        record(ValueError(f"secret-bearing message {i}"), i=i)
    storm(50)  # ... and a tally
    faultlens.shutdown()
    assert mode(journal) == 0o700 and mode(journal.parent) == 0o700
    files = list_files(str(journal))
    assert len(files) > 2, "rotated"
    assert {mode(f.path) for f in files} == {0o600}


def test_an_existing_directory_is_left_alone_with_a_warning(
    journal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal_dir.mkdir(mode=0o755)
    journal_dir.chmod(0o755)  # the user's own directory, open on purpose (or not)
    _writer._warned.clear()
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        faultlens.configure(service_name="svc", journal_path=str(journal_dir))
        record(ValueError("private anyway"))
        faultlens.shutdown()
    assert mode(journal_dir) == 0o755, "faultlens did not create it: not its to chmod"
    assert "chmod 700" in caplog.text
    assert {mode(f.path) for f in list_files(str(journal_dir))} == {0o600}
    health = inspect_journal(str(journal_dir))
    assert health.private is False and health.directory_mode == "0755"
    assert any("chmod 700" in p for p in health.problems)


def test_a_symlink_planted_at_the_journal_file_name_is_not_followed(journal_dir: Path) -> None:
    from faultlens.journal._files import file_name
    from faultlens.journal._format import hostname

    journal_dir.mkdir(mode=0o700)
    target = journal_dir.parent / "victim.txt"
    target.write_text("precious\n")
    (journal_dir / file_name(hostname(), os.getpid(), 1)).symlink_to(target)
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=0)
    record(ValueError("must not land in victim.txt"))
    faultlens.shutdown()
    assert target.read_text() == "precious\n"


# -- 5. retention by age and total size, never by process count ---------------------------------


def test_many_short_runs_keep_their_history(tmp_path: Path, journal_dir: Path) -> None:
    # Each run is its own process with its own file; a count of files deleted history.
    for run in range(15):
        pid = os.fork()
        if pid == 0:  # a short job
            code = 0
            try:
                faultlens.configure(service_name="nightly", journal_path=str(journal_dir))
                record(ValueError(f"run {run} failed"))
                faultlens.shutdown()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert len(list(read_records(str(journal_dir)))) == 15
    assert len(list_files(str(journal_dir))) == 15


def test_the_deprecated_max_files_becomes_a_size_budget_with_a_warning(
    tmp_path: Path, journal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text("faultlens:\n  journal:\n    max_files: 3\n    max_bytes: 4096\n")
    for f in range(6):  # six earlier runs of other processes, small files
        old = journal_dir / f"journal-otherhost-{100 + f}-1.jsonl"
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_text(json.dumps({**GOOD, "ts": time.time() - 100 + f}) + "\n")
    _writer._warned.clear()
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        faultlens.configure(service_name="svc", journal_path=str(journal_dir), config_file=str(cfg))
        record(ValueError("fresh"))
        faultlens.shutdown()
    assert "max_files is deprecated" in caplog.text and "12288" in caplog.text
    assert len(list(read_records(str(journal_dir)))) == 7, "a few KB: nothing is deleted"


def test_the_size_budget_deletes_the_oldest_files_first(journal_dir: Path) -> None:
    from faultlens.journal import prune

    journal_dir.mkdir()
    now = time.time()
    for f in range(5):
        p = journal_dir / f"journal-otherhost-{200 + f}-1.jsonl"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (now - 500 + f, now - 500 + f))
    deleted = prune(
        str(journal_dir), retention_days=14, max_total_bytes=2500, keep=None, host="me", now=now
    )
    assert sorted(Path(d).name for d in deleted) == [
        "journal-otherhost-200-1.jsonl",
        "journal-otherhost-201-1.jsonl",
        "journal-otherhost-202-1.jsonl",
    ]


# -- the line format is the contract H4's monitor and users' tools read -------------------------


def test_every_line_is_strict_json_and_a_tally_keeps_its_width() -> None:
    line, region = _format.tally_line(
        fingerprint="f" * 16,
        code="NET_CONNECTION_FAILED",
        category="network",
        severity="high",
        stage=None,
        service="svc",
        exception_type="ConnectionError",
        message="refused \udcff",
        first_ts=1_700_000_000.25,
        count=1,
        pid=42,
    )
    for count, ts, open_ in ((1, 1.0, True), (10**11, 99_999_999_999.0, False), (0, -1.0, True)):
        tail = _format.tally_region(count, ts, open_)
        assert len(tail) == _format.TALLY_REGION
        updated = line[:region] + tail + line[region + _format.TALLY_REGION :]
        doc = json.loads(updated)
        assert doc["count"] == count and doc["open"] is open_
        assert _format.validate(doc) is not None


def test_a_tally_is_updated_where_its_line_landed_even_if_the_file_is_shared(
    journal_dir: Path,
) -> None:
    # Two writers of one process on one directory append to the same file; the tally's
    # in-place updates must land on the tally, not on the other writer's line.
    from faultlens._config import JournalSettings
    from faultlens.journal import JournalWriter

    with faultlens.testing.capture() as cap:
        record(KeyError("from the other writer"))
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), rate_limit=1)
    storm(1)  # writer A opens the file
    other = JournalWriter(JournalSettings(path=str(journal_dir)))
    other.submit(cap.errors[0])  # appended behind A's back
    storm(30)  # A: one admitted earlier, 30 suppressed, one tally updated in place
    other.close()
    faultlens.shutdown()
    assert len(list_files(str(journal_dir))) == 1, "they did share the file"
    s = journal_stats(str(journal_dir))
    assert s.total == 32 and s.suppressed == 30 and s.recorded == 2
    assert inspect_journal(str(journal_dir)).bad_lines == 0


def test_fsync_always_does_not_turn_a_storm_into_a_storm_of_fsyncs(
    tmp_path: Path, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text("faultlens:\n  journal:\n    fsync: always\n")
    faultlens.configure(
        service_name="svc", journal_path=str(journal_dir), config_file=str(cfg), rate_limit=5
    )
    storm(5)
    assert len(synced) >= 5, "every record written in full is fsynced"
    before = len(synced)
    started = time.monotonic()
    storm(500)
    elapsed = time.monotonic() - started
    assert len(synced) - before <= 2 + elapsed / _writer.FSYNC_INTERVAL
    faultlens.shutdown()
    assert journal_stats(str(journal_dir)).total == 505


def test_a_journal_directory_removed_while_running_comes_back(
    journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setattr(_writer, "TICK", 0.02)
    faultlens.configure(service_name="svc", journal_path=str(journal_dir))
    record(ValueError("before"))
    shutil.rmtree(journal_dir)  # "clean up" while the app runs
    deadline = time.monotonic() + 5
    while running_journal().writer._fd is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    record(ValueError("after"))
    faultlens.shutdown()
    assert [r["message"] for r in read_records(str(journal_dir))] == ["after"]
    assert mode(journal_dir) == 0o700


def test_time_bounds_and_windows_that_are_not_numbers_are_refused_not_silent(
    tmp_path: Path,
) -> None:
    f = tmp_path / "journal-h-1-1.jsonl"
    f.write_text(json.dumps(GOOD) + "\n")
    assert len(list(read_entries(str(tmp_path), since=-math.inf, until=math.inf))) == 1
    assert list(read_entries(str(tmp_path), since=math.inf)) == []
    assert list(read_entries(str(tmp_path), since=10**400)) == []
    with pytest.raises(ValueError, match="since"):
        list(read_entries(str(tmp_path), since=math.nan))
    with pytest.raises(ValueError, match="now"):
        compute_stats([GOOD], now=math.inf)
    with pytest.raises(ValueError, match="recent_window"):
        compute_stats([GOOD], now=GOOD["ts"], recent_window=math.nan)
    s = compute_stats([GOOD], now=GOOD["ts"], bucket_seconds=math.inf)
    assert s.total == 1 and len(s.buckets) >= 1
