"""The streamed CSV report (``faultlens report --format csv``): the same text as the in-memory
``render_report`` for the same journal, byte for byte, whatever the journal holds and however
large it is; written on two CPUs for a large journal (a forked child writes every other
window of rows) without ever losing a row to the child, leaving it behind or hanging on it;
in memory that does not grow with the rows' text.

The reference everywhere is ``render_report(stats, records, "csv")`` over
``read_entries``: every line through ``json.loads`` and the format's validation, held in a
list, sorted by time with ``csv.writer``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlens.journal import compute_stats, read_entries
from faultlens.reports import COLUMNS, _csv_stream, render_report, stream_report, write_report
from faultlens.reports._csv import csv_row, fast_row, row_cells

NOW = 1_796_000_000.0
HOUR = 3600.0


# -- journals to read -------------------------------------------------------------------------


def error(ts: float | int, i: int = 0, **fields: Any) -> dict[str, Any]:
    """An error line as the journal writes it (``fields`` replace or add to it; a value of
    ``...`` leaves the field out)."""
    line: dict[str, Any] = {
        "kind": "error",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts)),
        "ts": ts,
        "trace_id": f"{i:032x}",
        "span_id": f"{i:016x}",
        "span_name": "score.run",
        "service": "scorer",
        "code": ("VAL_INVALID_VALUE", "EXE_TIMEOUT", "NET_CONNECTION_FAILED")[i % 3],
        "category": ("validation", "execution", "network")[i % 3],
        "severity": ("medium", "high", "low")[i % 3],
        "retryable": i % 3 == 2,
        "fingerprint": f"{i % 97:016x}",
        "stage": ("ingest", "score", None)[i % 3],
        "context": {"job_id": f"job-{i}", "attempt": i % 4, "ratio": i / 7},
        "message": f"bad value {i} in column 'score'",
        "exception_type": "builtins.ValueError",
        "hint": "check the input value",
        "resources": {"memory.rss": 200_000_000 + i, "cpu.percent": 12.5},
        "stack": "Traceback (most recent call last):\n  ...\nValueError: bad value\n",
        "suppressed": i % 5,
        "pid": 4000 + i % 3,
        "host": "vm",
        "v": 2,
    }
    line.update(fields)
    return {k: v for k, v in line.items() if v is not ...}


def tally(ts: float, count: int = 3) -> dict[str, Any]:
    return {"kind": "suppressed", "ts": ts, "code": "EXE_TIMEOUT", "count": count}


def dropped(ts: float) -> dict[str, Any]:
    return {"kind": "dropped", "ts": ts, "reason": "queue_full", "count": 2}


def write_file(
    journal: Path, name: str, lines: list[dict[str, Any] | bytes], mtime: float = NOW
) -> Path:
    """A journal file of ``lines`` (a dict as compact JSON, bytes as they are), its mtime
    ``mtime`` (the journal reads files oldest first by mtime)."""
    journal.mkdir(parents=True, exist_ok=True)
    path = journal / name
    with open(path, "wb") as fh:
        for line in lines:
            raw = line if isinstance(line, bytes) else json.dumps(line, separators=(",", ":"))
            fh.write(raw if isinstance(raw, bytes) else raw.encode())
            fh.write(b"\n")
    os.utime(path, (mtime, mtime))
    return path


def generated(journal: Path, records: int, files: int = 5, seed: int = 7) -> Path:
    """``records`` error lines spread over ``files`` processes' files over a day, each file
    nearly in time order (as written), the files interleaved in time; a few tallies and
    dropped lines, repeated timestamps within and across files."""
    rng = random.Random(seed)
    per_file: list[list[dict[str, Any] | bytes]] = [[] for _ in range(files)]
    for i in range(records):
        ts = round(NOW - 24 * HOUR + i * (24 * HOUR / records) + rng.uniform(-30, 30), 6)
        if i % 50 == 0:
            ts = round(NOW - 12 * HOUR, 6)  # the same instant in every file
        per_file[i % files].append(error(ts, i))
        if i % 1000 == 0:
            per_file[i % files].append(tally(ts))
            per_file[(i + 1) % files].append(dropped(ts))
    for n, lines in enumerate(per_file):
        write_file(journal, f"journal-vm-{4000 + n}-0.jsonl", lines, NOW - n)
    return journal


def in_memory(journal: Path, since: float | None = None, until: float | None = None) -> str:
    """The reference: every line read and held, rendered in memory."""
    entries = list(read_entries(str(journal), since, until))
    records = [e for e in entries if e["kind"] == "error"]
    return render_report(compute_stats(entries, now=NOW), records, "csv")


def streamed(journal: Path, workers: int | None = None, **bounds: Any) -> str:
    return "".join(stream_report("csv", journal_path=str(journal), workers=workers, **bounds))


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of a few rows, so that a small journal is cut into many (and the child of
    the two-CPU path gets several)."""
    monkeypatch.setattr(_csv_stream, "WINDOW", 5)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More rows than ``PARALLEL_ROWS``: by default written on two CPUs."""
    journal = tmp_path_factory.mktemp("large") / "journal"
    return generated(journal, records=_csv_stream.PARALLEL_ROWS + 5_000)


# -- the same text as the in-memory report ---------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_a_small_journal_gives_the_in_memory_report(tmp_path: Path, workers: int) -> None:
    journal = generated(tmp_path / "journal", records=300)
    expected = in_memory(journal)
    assert expected.count("\r\n") == 301  # the header and every error line, in time order
    assert streamed(journal, workers=workers) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_a_small_journal_cut_into_many_windows_gives_the_in_memory_report(
    tmp_path: Path, workers: int, small_windows: None
) -> None:
    journal = generated(tmp_path / "journal", records=300)
    assert streamed(journal, workers=workers) == in_memory(journal)


@pytest.mark.parametrize("workers", [None, 1, 2])
def test_a_large_journal_gives_the_in_memory_report(large: Path, workers: int | None) -> None:
    """``None``: the default, on two CPUs when this process may fork (whichever way it goes,
    the text is the same)."""
    assert streamed(large, workers=workers) == in_memory(large)


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_from_more_files_than_are_kept_open_give_the_in_memory_report(
    tmp_path: Path, workers: int
) -> None:
    """100 processes' files written at the same time: every window holds rows of every
    file (more than ``_FILES`` kept open at once)."""
    journal = generated(tmp_path / "journal", records=3_000, files=100)
    assert len(os.listdir(journal)) == 100 > _csv_stream._FILES
    assert streamed(journal, workers=workers) == in_memory(journal)


def test_an_empty_or_missing_journal_gives_the_header_alone(tmp_path: Path) -> None:
    header = ",".join(COLUMNS) + "\r\n"
    (tmp_path / "empty").mkdir()
    for journal in (tmp_path / "empty", tmp_path / "missing"):
        for workers in (1, 2):
            assert streamed(journal, workers=workers) == in_memory(journal) == header


@pytest.mark.parametrize("workers", [1, 2])
def test_since_and_until_select_the_same_rows(
    large: Path, workers: int, small_windows: None
) -> None:
    since, until = NOW - 18 * HOUR, NOW - 6 * HOUR - 0.5
    expected = in_memory(large, since, until)
    assert 0 < expected.count("\r\n") - 1 < _csv_stream.PARALLEL_ROWS
    assert streamed(large, workers, since=since, until=until) == expected
    assert streamed(large, workers, since=NOW - 12 * HOUR) == in_memory(large, NOW - 12 * HOUR)
    assert streamed(large, workers, until=NOW - 12 * HOUR) == in_memory(
        large, None, NOW - 12 * HOUR
    )


# -- odd records ------------------------------------------------------------------------------

ODD_FIELDS: list[dict[str, Any]] = [
    {"message": "caf\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001f600"},  # non-ASCII, written as such
    {"message": 'say "hi", then\nleave\r\nnow'},
    {"message": "a, b, c", "hint": "one,two"},
    {"message": '=HYPERLINK("http://x")', "hint": "+1", "stage": "-x", "service": "@s"},
    {"message": "  =cmd|' /C calc'!A0", "span_name": "\tx", "host": "\rh"},
    {"message": " plain with a leading space", "hint": " "},
    {"message": "", "hint": "", "stage": ""},
    {"message": None, "hint": None, "stage": None, "retryable": None, "context": None},
    {"message": ..., "hint": ..., "context": ..., "trace_id": ..., "span_id": ..., "pid": ...},
    {"kind": ..., "time": ..., "suppressed": ..., "retryable": ..., "host": ...},
    {"message": "nul \x00 bell \x07 del \x7f line-sep \u2028 tab\tinside"},
    {"message": "lone \ud800 surrogate"},
    {"context": {}},
    {"context": {"z": 1, "a": [1, 2.5, None, True], "n": {"deep": {"er": "\u00e9"}}}},
    {"context": {"big": 10**30, "neg": -(10**20), "f": 1e-7, "g": 1.5e300, "t": 'x,"y"'}},
    {"context": {"k": "=1+1"}},
    {"pid": -5},
    {"pid": 0, "suppressed": 0},
    {"retryable": "yes"},  # not a bool: a damaged line, in neither report
    {"ts_int": True},  # an integer ts stays an integer in its cell
    {"time": "=now()", "fingerprint": "-12", "code": "+C", "category": "@c", "severity": " -s"},
    {"trace_id": "a,b", "span_id": 'q"q', "exception_type": "x\ny"},
    {"extra": {"ignored": True}, "another": [1, 2, 3]},
    {"message": "x" * 100_000},  # longer than a read-back span
]


def odd_lines(base_ts: float) -> list[dict[str, Any] | bytes]:
    lines: list[dict[str, Any] | bytes] = []
    for i, fields in enumerate(ODD_FIELDS):
        fields = dict(fields)
        ts: float | int = round(base_ts + i * 1.25, 6)
        if fields.pop("ts_int", False):
            ts = int(base_ts) + 1000
        lines.append(error(ts, i, **fields))
    return lines


DAMAGED: list[bytes] = [
    b'{"kind":"error","ts":1795999000.5,"code":"X","message":"torn',  # torn write
    b"not json at all",
    b"",
    b"   ",
    b'{"kind":"error","ts":NaN,"code":"X"}',
    b'{"kind":"error","ts":1e400,"code":"X"}',
    b'{"kind":"error","ts":1795999000.5,"code":""}',  # no code
    b'{"kind":"error","ts":1795999000.5,"code":"X","suppressed":-1}',
    b'{"kind":"error","ts":1795999000.5,"code":"X","message":5}',  # a number for a text
    b'{"kind":"error","ts":1795999000.5,"code":"X","context":[1]}',  # a list for a map
    b'{"kind":"error","ts":1795999000.5,"code":"X","retryable":1}',
    b'{"kind":"surprise","ts":1795999000.5,"code":"X"}',
    b"[1, 2, 3]",
    b"\xff\xfe garbage bytes",
]

# Valid lines written by hand, as other writers may write them.
HANDWRITTEN: list[bytes] = [
    b'{"ts":1795999100,"code":"BARE"}',  # the least an error line is: ts and code
    b'  {"ts": 1795999101.5, "code": "SPACED", "message": "x"}  ',
    b'{"ts":1795999102.25,"code":"CR","message":"crlf"}\r',
    b'{"ts":1795999103,"code":"ESC","message":"caf\\u00e9 \\"q\\" \\n \\t \\u0000"}',
    b'{"ts":1795999104,"code":"DUP","message":"first","message":"second"}',
    b'{"ts":1795999105,"code":"CTX","context":{"b":1,"a":{"y":[],"x":{}},"c":"\\u2603"}}',
    b'{"ts":1795999106,"code":"NUM","context":{"a":1E+2,"b":-0.0,"c":0.1,"d":123456789012345678}}',
    b'{"ts":1795999107,"code":"CONST","context":{"nan":NaN,"inf":Infinity}}',
    b'{"ts":1795999108,"code":"BIGCTX","context":{"n":1e400}}',
    b'{"ts":1795999109,"code":"ZERO","pid":-0,"suppressed":0}',
    b'{"ts":1795999110.0,"code":"FLOATTS"}',
    b'{"\\u0074s":1795999111,"code":"ESCAPED_KEY"}',
    b'{"ts":1795999112,"code":"UNICODE_RAW","message":"\xc3\xa9t\xc3\xa9"}',
    b'\xef\xbb\xbf{"ts":1795999113,"code":"BOM"}',
    b'{"ts":-0.0,"code":"NEGATIVE_ZERO"}',  # a time (0 <= -0.0) whose cell reads "-0.0"
    b'{"ts":0,"code":"EPOCH"}',
]


def odd_journal(journal: Path) -> Path:
    """Odd records, damaged lines and hand-written lines in three files whose times
    overlap (the oldest file by mtime holds the newest rows), with equal timestamps across
    files, tallies and dropped lines, and a last line without its newline."""
    base = NOW - 2 * HOUR
    a = odd_lines(base)
    b = [error(base + 0.0, 100), error(base + 2.5, 101), *DAMAGED, *HANDWRITTEN]
    c = [error(base + 1.25, 200), tally(base + 1), dropped(base + 2), *odd_lines(base - 30)]
    write_file(journal, "journal-vm-1-0.jsonl", a, NOW - 30)
    write_file(journal, "journal-vm-2-0.jsonl", b, NOW - 20)
    path = write_file(journal, "journal-vm-3-0.jsonl", c, NOW - 10)
    with open(path, "ab") as fh:  # a file still being written: its last line has no newline
        fh.write(json.dumps(error(base + 3, 300)).encode())
    os.utime(path, (NOW - 10, NOW - 10))
    return journal


@pytest.mark.parametrize("workers", [1, 2])
def test_odd_records_damaged_lines_and_files_out_of_time_order(
    tmp_path: Path, workers: int, small_windows: None
) -> None:
    journal = odd_journal(tmp_path / "journal")
    expected = in_memory(journal)
    rows = list(csv.reader(io.StringIO(expected)))
    assert len(rows) == 1 + 2 * len(ODD_FIELDS) + 4 + len(HANDWRITTEN) - 2  # retryable "yes"
    assert streamed(journal, workers=workers) == expected


@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                c: st.one_of(
                    st.none(), st.text(alphabet=st.sampled_from("ab =+-@\t\r\n\",'é\x00 "))
                )
                for c in COLUMNS
                if c not in ("ts", "retryable", "suppressed", "pid", "context")
            }
            | {
                "retryable": st.one_of(st.none(), st.booleans()),
                "suppressed": st.one_of(st.none(), st.integers(0, 10**12 - 1)),
                "pid": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                "context": st.one_of(
                    st.none(),
                    st.dictionaries(
                        st.text(max_size=3),
                        st.one_of(
                            st.none(),
                            st.booleans(),
                            st.integers(),
                            st.floats(allow_nan=False, allow_infinity=False),
                            st.text(max_size=5),
                        ),
                        max_size=4,
                    ),
                ),
            },
        ),
        max_size=6,
    ),
    st.floats(0, 253_402_300_799.0),
)
@settings(max_examples=300, deadline=None)
def test_a_row_from_the_line_bytes_is_the_row_from_the_whole_record(
    fields: list[dict[str, Any]], ts: float
) -> None:
    """``fast_row`` (the columns decoded straight from an ASCII line) writes what
    ``csv.writer`` writes for ``row_cells`` of the whole record (a well-typed line never
    needs the general path)."""
    for f in fields:
        record = {"ts": ts, "code": "C", **f}
        raw = json.dumps(record).encode()  # ASCII: non-ASCII as \\u escapes
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(row_cells(json.loads(raw)))
        assert csv_row(row_cells(json.loads(raw))) == buf.getvalue()
        assert fast_row(raw, ts) == buf.getvalue()


def test_the_fast_row_declines_a_line_that_is_not_the_one_the_first_pass_saw() -> None:
    raw = json.dumps(error(NOW, 1)).encode()
    assert fast_row(raw, NOW) is not None
    assert fast_row(raw, NOW + 1) is None  # another time: another line at that place
    assert fast_row(json.dumps(tally(NOW)).encode(), NOW) is None  # not an error line
    assert fast_row(b'{"ts":' + b"[" * 5000 + b"]" * 5000 + b"}", NOW) is None


# -- the child of the two-CPU path --------------------------------------------------------------


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the children the CSV report forks."""
    pids: list[int] = []
    start = _csv_stream._Child.__init__

    def remember(self: Any, *args: Any) -> None:
        start(self, *args)
        pids.append(self.pid)

    monkeypatch.setattr(_csv_stream._Child, "__init__", remember)
    return pids


def assert_reaped(pids: list[int]) -> None:
    assert pids and all(pid > 0 for pid in pids)
    for pid in pids:
        with pytest.raises(ChildProcessError):  # killed or exited, and reaped: no zombie
            os.waitpid(pid, os.WNOHANG)


def test_the_child_is_reaped_when_the_report_is_done(large: Path, children: list[int]) -> None:
    assert streamed(large, workers=2) == in_memory(large)
    assert_reaped(children)


def test_a_child_that_cannot_start_its_work_leaves_its_windows_to_this_process(
    large: Path, children: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: Any) -> None:
        raise RuntimeError("the child's work fails at once")

    monkeypatch.setattr(_csv_stream, "_child_main", fails)  # forked with the patch in place
    assert streamed(large, workers=2) == in_memory(large)
    assert_reaped(children)


@pytest.mark.parametrize("after", [0, 3])
def test_a_child_that_fails_half_way_leaves_the_rest_to_this_process(
    tmp_path: Path,
    children: list[int],
    monkeypatch: pytest.MonkeyPatch,
    small_windows: None,
    after: int,
) -> None:
    """The child writes ``after`` windows, then dies: what it sent is used, the rest is
    written here."""
    journal = generated(tmp_path / "journal", records=400)
    parent = os.getpid()
    real = _csv_stream._window_text
    written = [0]

    def dies_in_the_child(*args: Any) -> str:
        text = real(*args)
        if os.getpid() != parent:
            written[0] += 1
            if written[0] > after:
                raise SystemExit(3)
        return text

    monkeypatch.setattr(_csv_stream, "_window_text", dies_in_the_child)
    assert streamed(journal, workers=2) == in_memory(journal)
    assert_reaped(children)


def test_a_child_killed_while_it_writes_leaves_its_windows_to_this_process(
    large: Path, children: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    start = _csv_stream._Child.__init__

    def killed(self: Any, *args: Any) -> None:
        start(self, *args)
        os.kill(self.pid, signal.SIGKILL)

    monkeypatch.setattr(_csv_stream._Child, "__init__", killed)
    assert streamed(large, workers=2) == in_memory(large)
    assert_reaped(children)


@pytest.mark.parametrize(
    "sent",
    [
        _csv_stream._HEAD.pack(1000) + b"time,ts\r\n",  # a window cut short
        _csv_stream._HEAD.pack(-1) + b"x" * 100,  # a length that is none
        _csv_stream._HEAD.pack(4) + b"\xff\xfe\xfd\xfc",  # not UTF-8
        b"\x01\x02",  # not even a length
    ],
)
def test_a_child_that_sends_nonsense_is_not_believed(
    large: Path, children: list[int], monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    def nonsense(rows: Any, files: Any, fd: int) -> None:
        os.write(fd, sent)

    monkeypatch.setattr(_csv_stream, "_child_main", nonsense)
    assert streamed(large, workers=2) == in_memory(large)
    assert_reaped(children)


def test_a_child_that_hangs_is_given_up_on_after_the_stall_time(
    tmp_path: Path, children: list[int], monkeypatch: pytest.MonkeyPatch, small_windows: None
) -> None:
    """A child that sends nothing (stopped, stuck) for ``STALL`` seconds is killed and
    its windows are written here: the report never waits on it for ever."""
    journal = generated(tmp_path / "journal", records=200)
    monkeypatch.setattr(_csv_stream, "STALL", 0.2)
    monkeypatch.setattr(_csv_stream, "_child_main", lambda *args: time.sleep(3600))
    started = time.monotonic()
    assert streamed(journal, workers=2) == in_memory(journal)
    assert time.monotonic() - started < 10
    assert_reaped(children)


def test_a_report_abandoned_half_way_leaves_no_child_behind(
    large: Path, children: list[int]
) -> None:
    chunks = stream_report("csv", journal_path=str(large), workers=2)
    assert next(chunks).startswith("time,ts,")
    next(chunks), next(chunks)  # the child is at work (or blocked on a full pipe)
    chunks.close()
    assert_reaped(children)


def test_a_child_forked_while_other_threads_run_does_only_its_simple_work(
    large: Path, children: list[int]
) -> None:
    """Forced onto two CPUs (``workers=2``) while another thread is busy: the child only
    reads lines, formats rows and writes to its pipe (no logging, no locks another thread
    might hold), then leaves with ``os._exit``."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            json.dumps({"x": list(range(100))})

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        assert streamed(large, workers=2) == in_memory(large)
    finally:
        stop.set()
        thread.join()
    assert_reaped(children)


def test_by_default_a_threaded_process_or_a_small_journal_is_not_forked(
    large: Path, tmp_path: Path, children: list[int]
) -> None:
    small = generated(tmp_path / "small", records=500)
    assert streamed(small) == in_memory(small)
    assert children == []  # fewer rows than PARALLEL_ROWS: written here
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert streamed(large) == in_memory(large)
    finally:
        stop.set()
        thread.join()
    assert children == []  # another thread: fork is not safe


# -- memory -----------------------------------------------------------------------------------


def peak_mb(journal: Path) -> float:
    """Python's peak allocation (MB) while the CSV report is written to a file (on one CPU:
    a child's allocations are not this process's)."""
    tracemalloc.start()
    try:
        write_report(str(journal.parent / "r.csv"), "csv", journal_path=str(journal), since=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def test_memory_is_bounded_by_the_window_not_by_the_rows_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 rows (~33 MB of CSV) are written holding a window of rows at a time (about
    a megabyte of text) and 16 bytes a row for the order: four times the rows add the 16
    bytes a row, nothing else."""
    monkeypatch.setattr(_csv_stream, "PARALLEL_ROWS", 10**9)  # one process: all measured
    small = peak_mb(generated(tmp_path / "small" / "journal", records=25_000))
    big_journal = generated(tmp_path / "big" / "journal", records=100_000)
    big = peak_mb(big_journal)
    size = os.path.getsize(big_journal.parent / "r.csv") / 1e6
    assert size > 30
    assert big < 12, f"peak {big:.1f} MB for {size:.0f} MB of CSV"
    assert big - small < 75_000 * 16 * 2.5 / 1e6 + 1, (small, big)
