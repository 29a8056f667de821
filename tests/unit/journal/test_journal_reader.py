"""Reading the journal back: damaged lines are skipped with one warning, never fatal."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from faultlens.journal import JournalTail, read_records


def line(ts: float, code: str = "VAL_INVALID_VALUE", **extra: object) -> str:
    return json.dumps({"ts": ts, "code": code, **extra}) + "\n"


def test_a_corrupt_line_is_skipped_with_one_warning_naming_file_and_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "journal-h-1-1.jsonl"
    f.write_text(
        line(1.0) + "{not json at all\n" + line(2.0) + '{"ts": "x", "code": 1}\n'
        "\x00\x00garbage\n" + line(3.0)
    )
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        got = [r["ts"] for r in read_records(str(tmp_path))]
    assert got == [1.0, 2.0, 3.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3 corrupt or torn lines" in warnings[0] and str(f) in warnings[0]


def test_a_torn_last_line_is_skipped_but_a_complete_unterminated_one_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torn = tmp_path / "journal-h-1-1.jsonl"
    torn.write_text(line(1.0) + '{"ts": 2.0, "code": "EXE_TI')  # the process died mid-write
    growing = tmp_path / "journal-h-2-1.jsonl"
    growing.write_text(line(3.0) + line(4.0).rstrip("\n"))  # newest line, newline pending
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        got = sorted(r["ts"] for r in read_records(str(tmp_path)))
    assert got == [1.0, 3.0, 4.0]
    assert "skipped 1 corrupt or torn line in" in caplog.text and str(torn) in caplog.text


def test_since_and_until_select_a_window_and_old_files_are_not_even_opened(
    tmp_path: Path,
) -> None:
    import os

    old = tmp_path / "journal-h-1-1.jsonl"
    old.write_text(line(100.0) + line(200.0))
    os.utime(old, (200.0, 200.0))
    new = tmp_path / "journal-h-2-1.jsonl"
    new.write_text(line(1000.0) + line(2000.0) + line(3000.0))
    assert [r["ts"] for r in read_records(str(tmp_path), since=500.0)] == [1000.0, 2000.0, 3000.0]
    assert [r["ts"] for r in read_records(str(tmp_path), since=1500, until=2500)] == [2000.0]
    old.write_text("corrupt, but never read: its mtime says it is too old\n")
    os.utime(old, (200.0, 200.0))
    assert len(list(read_records(str(tmp_path), since=500.0))) == 3


def test_a_single_file_and_a_missing_path_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "export.jsonl"
    f.write_text(line(1.0) + line(2.0))
    assert len(list(read_records(str(f)))) == 2
    assert list(read_records(str(tmp_path / "nope"))) == []


def test_other_files_in_the_directory_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "journal-h-1-1.jsonl").write_text(line(1.0))
    (tmp_path / "README.txt").write_text("hello\n")
    (tmp_path / "journal-h-1-1.jsonl.bak").write_text(line(9.0))
    assert [r["ts"] for r in read_records(str(tmp_path))] == [1.0]


def test_tail_returns_only_new_complete_lines_across_files(tmp_path: Path) -> None:
    tail = JournalTail(str(tmp_path))
    assert tail.poll() == []
    a = tmp_path / "journal-h-1-1.jsonl"
    a.write_text(line(1.0) + line(2.0))
    assert [r["ts"] for r in tail.poll()] == [1.0, 2.0]
    assert tail.poll() == []
    with a.open("a") as fh:
        fh.write(line(3.0) + '{"ts": 4.0, "co')  # the last line is still being written
    assert [r["ts"] for r in tail.poll()] == [3.0]
    with a.open("a") as fh:
        fh.write('de": "X"}\n')
    (tmp_path / "journal-h-1-2.jsonl").write_text(line(5.0))  # rotated
    assert sorted(r["ts"] for r in tail.poll()) == [4.0, 5.0]
