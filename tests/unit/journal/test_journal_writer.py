"""The journal writer: every recorded error lands exactly once, as one JSON line.

These tests go through the real pipeline (configure -> record_error / @instrument ->
shutdown) and read the files back, the way `faultlens stats` does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import faultlens
from faultlens._config import JournalSettings
from faultlens.capture import dropped_counts
from faultlens.journal import FIELDS, JournalWriter, list_files, read_records
from unit.journal.journal_helpers import record, running_journal


def configure_with(tmp_path: Path, journal_dir: Path, yaml_journal: str = "", **kw: object) -> None:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text("faultlens:\n  journal:\n" + (yaml_journal or "    fsync: batch\n"))
    faultlens.configure(
        service_name="journal-test", journal_path=str(journal_dir), config_file=str(cfg), **kw
    )


def test_each_recorded_error_lands_in_the_journal_exactly_once(journal_dir: Path) -> None:
    faultlens.configure(service_name="scorer", journal_path=str(journal_dir))

    @faultlens.instrument
    def inner(path: str) -> None:
        open(path)  # noqa: SIM115 - the failure is the point

    @faultlens.instrument(mode="traced", stage="loading")
    def outer(path: str) -> None:
        inner(path)

    for i in range(3):
        record(ValueError(f"bad value {i}"), stage="parse", job_id=i)
    with pytest.raises(FileNotFoundError):
        outer("/no/such/file")  # passes through two wrapped frames: still one record
    faultlens.shutdown()

    records = list(read_records(str(journal_dir)))
    assert [r["code"] for r in records] == ["VAL_INVALID_VALUE"] * 3 + ["VAL_FILE_NOT_FOUND"]
    assert [r["context"].get("job_id") for r in records[:3]] == [0, 1, 2]
    assert {r["service"] for r in records} == {"scorer"}


def test_a_line_carries_the_documented_fields(journal_dir: Path) -> None:
    faultlens.configure(service_name="media", journal_path=str(journal_dir))
    with faultlens.capture(stage="render", video_hash="abc123"):
        info = record(TimeoutError("ffmpeg took 31 s"))
    faultlens.shutdown()

    [line] = list(read_records(str(journal_dir)))
    assert set(FIELDS) <= set(line)
    assert line["code"] == info.code == "EXE_TIMEOUT"
    assert line["category"] == "execution"
    assert line["retryable"] is True
    assert line["fingerprint"] == info.fingerprint
    assert line["stage"] == "render"
    assert line["context"] == {"video_hash": "abc123"}  # the faultlens.context. prefix is gone
    assert line["message"] == "ffmpeg took 31 s"
    assert line["exception_type"] == "TimeoutError"
    assert "memory.rss" in line["resources"]  # the resource snapshot, prefix gone
    assert "TimeoutError: ffmpeg took 31 s" in line["stack"]
    assert line["time"].endswith("Z") and line["time"][:4] == time.strftime("%Y", time.gmtime())
    assert abs(line["ts"] - time.time()) < 60
    assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16
    assert line["pid"] == os.getpid() and line["host"]
    assert line["suppressed"] == 0


def test_secrets_in_messages_are_scrubbed_before_they_reach_the_disk(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir))
    record(ConnectionError("GET https://bob:hunter2@api.example.com failed"), password="p4ss")
    faultlens.shutdown()
    text = "".join(p.read_text() for p in journal_dir.iterdir())
    assert "hunter2" not in text and "p4ss" not in text


def test_a_record_is_in_the_file_before_record_error_returns(journal_dir: Path) -> None:
    # Write-through: an abrupt end right after (os._exit, SIGKILL, a pool's terminate())
    # loses nothing that was recorded.
    faultlens.configure(service_name="svc", journal_path=str(journal_dir))
    record(ValueError("written at once"))
    assert [r["message"] for r in read_records(str(journal_dir))] == ["written at once"]


def test_files_rotate_at_max_bytes_and_nothing_is_lost(tmp_path: Path, journal_dir: Path) -> None:
    configure_with(tmp_path, journal_dir, "    max_bytes: 4096\n    max_files: 100\n")
    for i in range(60):
        record(ValueError(f"rotating {i}"), i=i)
    faultlens.shutdown()

    files = list_files(str(journal_dir))
    assert len(files) > 3
    assert all(f.size <= 4096 for f in files)
    assert sorted({f.n for f in files}) == list(range(1, len(files) + 1))
    assert sorted(r["context"]["i"] for r in read_records(str(journal_dir))) == list(range(60))


def test_retention_by_total_size_keeps_the_newest_records(
    tmp_path: Path, journal_dir: Path
) -> None:
    # Retention used to count files (max_files); it is by total size now (and by age).
    configure_with(
        tmp_path,
        journal_dir,
        "    max_bytes: 4096\n    max_total_bytes: 12288\n",
        rate_limit=10_000,
    )
    for i in range(120):
        record(ValueError(f"kept or not {i}"), i=i)
    faultlens.shutdown()

    files = list_files(str(journal_dir))
    assert sum(f.size for f in files) <= 12288
    kept = sorted(r["context"]["i"] for r in read_records(str(journal_dir)))
    assert kept == list(range(kept[0], 120)), "the newest records survive, contiguously"
    assert kept[0] > 0, "older files were deleted"


def test_retention_by_days_deletes_old_files_of_any_process(
    tmp_path: Path, journal_dir: Path
) -> None:
    journal_dir.mkdir(parents=True)
    old = journal_dir / "journal-otherhost-4242-1.jsonl"
    old.write_text('{"ts": 1.0, "code": "X"}\n')
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    unrelated = journal_dir / "notes.txt"
    unrelated.write_text("not a journal file")

    configure_with(tmp_path, journal_dir, "    retention_days: 7\n")
    record(ValueError("fresh"))
    faultlens.shutdown()

    assert not old.exists()
    assert unrelated.exists(), "only journal-*.jsonl files are ever deleted"
    assert [r["message"] for r in read_records(str(journal_dir))] == ["fresh"]


@pytest.mark.parametrize(("policy", "expect_fsync"), [("always", True), ("never", False)])
def test_fsync_policy_is_honoured(
    tmp_path: Path,
    journal_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    expect_fsync: bool,
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    configure_with(tmp_path, journal_dir, f"    fsync: {policy}\n")
    record(ValueError("durable?"))
    assert running_journal().flush(5.0)
    assert bool(synced) is expect_fsync
    faultlens.shutdown()


def test_a_write_stuck_in_the_kernel_never_blocks_other_threads_for_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another thread's write is stuck (a hung network filesystem): recording threads wait
    # at most LOCK_WAIT, leave their records pending (bounded: the rest is dropped and
    # counted), and the stuck writer writes the pending ones once it gets through.
    import threading

    from faultlens.journal import _writer

    monkeypatch.setattr(_writer, "LOCK_WAIT", 0.01)
    writer = JournalWriter(JournalSettings(path=str(tmp_path / "j")), max_queue=5)
    with faultlens.testing.capture() as cap:
        for i in range(20):
            record(ValueError(f"storm {i}"))
    stuck = threading.Event()
    release = threading.Event()
    real_write = os.write

    def slow_write(fd: int, data: bytes) -> int:
        if threading.current_thread().name == "stuck":
            stuck.set()
            release.wait(10)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", slow_write)
    t = threading.Thread(target=writer.submit, args=(cap.errors[0],), name="stuck")
    t.start()
    assert stuck.wait(5)
    started = time.perf_counter()
    for rec in cap.errors[1:]:
        writer.submit(rec)
    assert time.perf_counter() - started < 2.0, "recording threads do not queue behind it"
    assert dropped_counts().get("queue_full") == 14
    release.set()
    t.join(5)
    writer.close(5.0)
    assert len(list(read_records(str(tmp_path / "j")))) == 6


def test_an_unserialisable_context_value_still_writes_the_line(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir))

    class Weird:
        def __repr__(self) -> str:
            return "<weird \udcff>"

    record(ValueError("odd context \x00 and \u2603"), obj=Weird(), n=10**30)
    faultlens.shutdown()
    [line] = list(read_records(str(journal_dir)))
    assert "\u2603" in line["message"]
    raw = next(journal_dir.iterdir()).read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    json.loads(raw)


def test_journal_is_the_default_only_without_an_exporter(journal_dir: Path) -> None:
    faultlens.configure(service_name="svc", journal_path=str(journal_dir), exporter="console")
    record(ValueError("goes to the console exporter only"))
    faultlens.shutdown()
    assert not journal_dir.exists()

    faultlens.configure(
        service_name="svc", journal_path=str(journal_dir), exporter="console", journal=True
    )
    record(ValueError("and to the journal when asked"))
    faultlens.shutdown()
    assert len(list(read_records(str(journal_dir)))) == 1
