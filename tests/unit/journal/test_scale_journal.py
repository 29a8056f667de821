"""The journal at scale: `faultlens stats` and `faultlens report` over a generated week of a
busy service (real stacks and context, rate-limit tallies, dropped lines, several
processes' rotated files) count exactly what a naive reading counts, in one streaming
pass whose memory does not grow with the journal. No timing gates here: the speed is
measured by benchmarks/bench_journal.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from faultlens.journal import (
    ReadReport,
    _scan,
    compute_stats,
    inspect_journal,
    journal_stats,
    parse_line,
    read_entries,
)
from faultlens.journal._format import MAX_COUNT
from faultlens.journal._scan import JournalScan, parse_view
from faultlens.reports import render_report, stream_report, write_report

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_journal import measure  # noqa: E402
from journal_data import write_journal  # noqa: E402

NOW = 1_796_000_000.0
DAY = 86400.0


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 error records over a week, ~34 MB in 6 rotated files of 3 processes."""
    d = tmp_path_factory.mktemp("week") / "journal"
    write_journal(str(d), records=20_000, now=NOW, hosts=1, pids_per_host=3, max_bytes=6 << 20)
    return d


def naive(path: Path, since: float) -> dict[str, Any]:
    """The reference: every line through json.loads and the format's own validation,
    held in a list, counted with Counters."""
    entries = []
    for name in sorted(os.listdir(path)):
        for raw in (path / name).read_bytes().splitlines():
            e = parse_line(raw)
            if e is not None and e["ts"] >= since:
                entries.append(e)
    by_code: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    by_fp: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    total = suppressed = recorded = 0
    last: dict[str, float] = {}
    for e in entries:
        if e["kind"] == "dropped":
            dropped[e["reason"]] += e["count"]
            continue
        n = 1 + e.get("suppressed", 0) if e["kind"] == "error" else e["count"]
        if n == 0:
            continue
        total += n
        suppressed += n - 1 if e["kind"] == "error" else n
        recorded += e["kind"] == "error"
        by_code[e["code"]] += n
        by_severity[e["severity"]] += n
        by_fp[e["fingerprint"]] += n
        last[e["fingerprint"]] = max(last.get(e["fingerprint"], 0.0), e["ts"])
    return {
        "entries": entries,
        "total": total,
        "suppressed": suppressed,
        "recorded": recorded,
        "by_code": dict(by_code),
        "by_severity": dict(by_severity),
        "by_fp": dict(by_fp),
        "last": last,
        "dropped": dict(dropped),
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_stats_over_a_generated_week_count_what_a_naive_reading_counts(
    week: Path, workers: int
) -> None:
    since = NOW - 7 * DAY + 3600.0  # the first hour falls out of the window
    ref = naive(week, since)
    stats = journal_stats(str(week), since=since, now=NOW, workers=workers)

    assert stats.total == ref["total"] > 20_000  # the tallies' counts are in it
    assert stats.suppressed == ref["suppressed"] > 0
    assert stats.recorded == ref["recorded"]
    assert stats.by_code == dict(sorted(ref["by_code"].items(), key=lambda kv: (-kv[1], kv[0])))
    assert Counter(stats.by_severity) == Counter(ref["by_severity"])
    assert stats.dropped == ref["dropped"] and sum(stats.dropped.values()) > 0
    assert stats.unique_fingerprints == len(ref["by_fp"])
    for top in stats.top:
        assert top.count == ref["by_fp"][top.fingerprint]
        assert top.last_seen == ref["last"][top.fingerprint]
        assert top.stack.startswith("Traceback"), "the sample is re-read whole"
    assert sum(b.count for b in stats.buckets) == stats.total

    # and everything else equals the list-based computation over read_entries
    in_memory = compute_stats(list(read_entries(str(week), since=since)), now=NOW)
    assert stats == in_memory


@pytest.mark.parametrize("fmt", ["json", "csv", "html"])
@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_reports_are_the_in_memory_reports_byte_for_byte(
    week: Path, fmt: str, workers: int
) -> None:
    entries = list(read_entries(str(week)))
    records = [e for e in entries if e["kind"] == "error"]
    expected = render_report(compute_stats(entries, now=NOW), records, fmt)
    streamed = "".join(stream_report(fmt, journal_path=str(week), now=NOW, workers=workers))
    assert streamed == expected


def rss_mb_of(argv: list[str]) -> float:
    """Peak RSS (MB) of a child process and the processes it forks, measured from a small
    process (bench_journal.measure: Linux counts the forking process's peak in a child's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    return measure(argv, env)[1]


def test_memory_does_not_grow_with_the_journal(week: Path, tmp_path: Path) -> None:
    """Four times the journal (the same week written by four times the processes): the
    peak RSS of stats and of the HTML and CSV reports stays where it was, well under
    100 MB."""
    big = tmp_path / "big"
    big.mkdir()
    for name in os.listdir(week):
        for copy in range(4):
            m = re.fullmatch(r"journal-(.+)-(\d+)-(\d+)\.jsonl", name)
            assert m is not None
            shutil.copy(week / name, big / f"journal-{m[1]}-{copy}{m[2]}-{m[3]}.jsonl")
    assert len(os.listdir(big)) == 4 * len(os.listdir(week))
    fl = [sys.executable, "-m", "faultlens.cli"]
    for cmd in (
        ["stats", "--since", "30d"],
        ["report", "--format", "html", "--since", "30d", "-o", str(tmp_path / "r.html")],
        ["report", "--format", "csv", "--since", "30d", "-o", str(tmp_path / "r.csv")],
    ):
        small_mb = rss_mb_of([*fl, *cmd, "--journal", str(week)])
        big_mb = rss_mb_of([*fl, *cmd, "--journal", str(big)])
        assert big_mb < 100, (cmd, big_mb)
        assert big_mb - small_mb < 15, (cmd, small_mb, big_mb)


# -- the fast decoder's verdict is the standard decoder's, line by line -----------------------

GOOD_ERROR = {
    "kind": "error",
    "ts": NOW,
    "code": "VAL_INVALID_VALUE",
    "category": "validation",
    "severity": "high",
    "fingerprint": "abc",
    "stage": "load",
    "service": "svc",
    "message": "bad value",
    "stack": "Traceback ...\nValueError: bad value\n",
    "context": {"job": 1},
    "resources": {"memory.rss": 1},
    "suppressed": 0,
    "retryable": False,
    "pid": 7,
    "v": 2,
}
GOOD_TALLY = {
    "kind": "suppressed",
    "ts": NOW,
    "first_ts": NOW - 5,
    "code": "VAL_INVALID_VALUE",
    "severity": "high",
    "fingerprint": "abc",
    "count": 45,
    "open": False,
}


def variant(base: dict[str, Any], **changes: Any) -> bytes:
    d = dict(base)
    for k, v in changes.items():
        if v is KeyError:
            d.pop(k, None)
        else:
            d[k] = v
    return json.dumps(d).encode()


LINES = [
    variant(GOOD_ERROR),
    variant(GOOD_TALLY),
    b'{"kind": "dropped", "ts": 1796000000, "reason": "queue_full", "count": 3}',
    variant(GOOD_ERROR, kind=KeyError),  # schema 1: no kind
    variant(GOOD_ERROR, message="caf\u00e9 \u2603"),  # non-ASCII (json.dumps escapes it)
    json.dumps(GOOD_ERROR, ensure_ascii=False).replace("bad value", "caf\u00e9").encode(),
    variant(GOOD_ERROR, ts=True),
    variant(GOOD_ERROR, ts=1e20),
    variant(GOOD_ERROR, ts=-1),
    variant(GOOD_ERROR, ts="1796000000"),
    variant(GOOD_ERROR, ts=KeyError),
    variant(GOOD_ERROR, code=""),
    variant(GOOD_ERROR, code=7),
    variant(GOOD_ERROR, suppressed=1.0),
    variant(GOOD_ERROR, suppressed=-1),
    variant(GOOD_ERROR, suppressed=MAX_COUNT + 1),
    variant(GOOD_ERROR, retryable="yes"),
    variant(GOOD_ERROR, pid=True),
    variant(GOOD_ERROR, stack=17),
    variant(GOOD_ERROR, context=[1, 2]),
    variant(GOOD_ERROR, resources="x"),
    variant(GOOD_ERROR, kind=None),
    variant(GOOD_ERROR, kind="other"),
    variant(GOOD_TALLY, open=None),
    variant(GOOD_TALLY, count=KeyError),
    variant(GOOD_TALLY, first_ts=1e20),
    variant(GOOD_TALLY, retryable="yes"),  # only an error line's retryable is checked
    variant(GOOD_TALLY, suppressed="x"),  # only an error line's suppressed is checked
    b'{"ts": NaN, "code": "X"}',
    b'{"ts": Infinity, "code": "X"}',
    b'{"ts": 1e400, "code": "X"}',
    b'{"ts": 1796000000, "code": "X", "context": {"ratio": NaN}}',  # read as the string
    b'{"ts": 1796000000, "code": "X", "message": "\\ud800"}',  # a lone surrogate escape
    b'{"ts": 1796000000, "code": "X", "stack": "a\\qb"}',  # an invalid escape
    b'{"ts": 1796000000, "code": "X", "stack": "a\xffb"}',  # not UTF-8
    b'\xef\xbb\xbf{"ts": 1796000000, "code": "X"}',  # a byte-order mark
    b'{"ts": 1796000000, "code": "X", "ts": 5}',  # a repeated key: the last one counts
    b'{"ts": 1796000000, "code": "X"} trailing',
    b'{"ts": 1796000000, "code": "X", "context": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"[1, 2]",
    b'{"ts": 1796000000, "co',  # torn
    b"\x00\x00\x00",
]


@pytest.mark.parametrize("raw", LINES, ids=range(len(LINES)))
def test_the_fast_path_judges_every_line_as_parse_line_does(raw: bytes) -> None:
    slow = parse_line(raw)
    fast = parse_view(raw)
    assert (fast is None) == (slow is None)
    if slow is not None:
        for name in ("kind", "code", "severity", "fingerprint", "suppressed", "count"):
            assert getattr(fast, name) == slow.get(name), name
        assert fast.ts == float(slow["ts"])


def test_a_scan_counts_and_warns_about_damaged_lines_as_read_entries_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "journal-h-1-0.jsonl"
    overlong = b'{"ts": 1796000000, "code": "X", "message": "' + b"x" * (2 << 20) + b'"}'
    f.write_bytes(b"\n".join([*LINES, overlong, b"", b"   ", variant(GOOD_ERROR)]) + b"\n")
    slow_report, fast_report = ReadReport(), ReadReport()
    slow = list(read_entries(str(tmp_path), report=slow_report))
    caplog.clear()
    fast = list(JournalScan(str(tmp_path), report=fast_report))
    assert len(fast) == len(slow)
    assert fast_report.bad_lines == slow_report.bad_lines == {str(f): slow_report.bad}
    assert [m for m in caplog.messages if "corrupt or torn" in m] == [
        f"faultlens: skipped {slow_report.bad} corrupt or torn lines in journal file {f}"
    ]


def test_a_line_over_the_limit_is_skipped_without_being_held(tmp_path: Path) -> None:
    f = tmp_path / "journal-h-1-0.jsonl"
    with open(f, "wb") as fh:
        fh.write(variant(GOOD_ERROR) + b"\n")
        fh.write(b'{"ts": 1796000000, "code": "X", "message": "')
        for _ in range(40):  # 40 MiB in one line, no newline until the end
            fh.write(b"y" * (1 << 20))
        fh.write(b'"}\n' + variant(GOOD_TALLY) + b"\n")
    report = ReadReport()
    kinds = [v.kind for v, _ in JournalScan(str(tmp_path), report=report)]
    assert kinds == ["error", "suppressed"] and report.bad == 1


# -- what the first pass counted is what the report lists ----------------------------------------


def test_a_json_report_lists_the_records_its_totals_counted_while_the_journal_grows(
    tmp_path: Path,
) -> None:
    j = tmp_path / "journal"
    write_journal(str(j), records=500, now=NOW, hosts=1, pids_per_host=1)
    (path,) = [j / n for n in os.listdir(j)]

    def grows_after_the_first_pass(entries: Any) -> Any:
        yield from entries
        with open(path, "ab") as fh:  # the service writes on meanwhile
            fh.write(variant(GOOD_ERROR) * 1 + b"\n")

    doc = json.loads(
        "".join(stream_report("json", journal_path=str(j), progress=grows_after_the_first_pass))
    )
    assert len(doc["records"]) == doc["stats"]["recorded"] == 500


def test_a_child_that_fails_is_replaced_by_reading_its_files_here(
    week: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = journal_stats(str(week), now=NOW, workers=1)
    monkeypatch.setattr(_scan._Child, "collect", lambda self: (self.abandon(), None)[1])
    assert journal_stats(str(week), now=NOW, workers=2) == expected


# -- the timeline is exact whatever its resolution ---------------------------------------------


def naive_buckets(ts_list: list[float], b: float, begin: float, end: float) -> list[int]:
    origin = math.floor(begin / b) * b
    counts = [0] * (int((end - origin) // b) + 1)
    for ts in ts_list:
        counts[min(max(int((ts - origin) // b), 0), len(counts) - 1)] += 1
    return counts


@pytest.mark.parametrize("span", [50.0, 3 * 3600.0, 2 * DAY + 7.5, 9 * DAY, 400 * DAY, 5000 * DAY])
def test_the_timeline_buckets_equal_a_naive_bucketing(span: float) -> None:
    # more distinct seconds than the finest bins hold, so the timeline coarsens on the way
    n = 20_000
    ts_list = [NOW - span + span * i / n + (i % 7) * 0.001 for i in range(n)]
    recs = [{"ts": t, "code": "X", "severity": "high"} for t in ts_list]
    s = compute_stats(recs, now=NOW)
    expected = naive_buckets(ts_list, s.bucket_seconds, min(ts_list), max(NOW, max(ts_list)))
    assert [b.count for b in s.buckets] == expected
    assert len(s.buckets) <= 61


def test_an_explicit_bucket_size_is_exact_too() -> None:
    ts_list = [NOW - 3600 + i * 0.7 for i in range(5000)]
    recs = [{"ts": t, "code": "X"} for t in ts_list]
    for b in (1.0, 7.0, 600.0):
        s = compute_stats(recs, now=NOW, bucket_seconds=b)
        assert s.bucket_seconds == b
        assert [x.count for x in s.buckets] == naive_buckets(ts_list, b, min(ts_list), NOW)


# -- files not named like journal files are said, not silently skipped -------------------------


def test_files_not_named_like_journal_files_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = tmp_path / "journal"
    j.mkdir()
    line = variant(GOOD_ERROR) + b"\n"
    (j / "journal-h-1-0.jsonl").write_bytes(line)
    (j / "journal-h-1-0.jsonl.bak").write_bytes(line)  # a renamed rotation
    (j / "errors.jsonl").write_bytes(line)  # copied in by hand
    (j / "README.txt").write_text("notes\n")  # not journal-like: not listed
    (j / ".faultlens-demo").write_text("")  # hidden: not listed
    names = ["errors.jsonl", "journal-h-1-0.jsonl.bak"]

    stats = journal_stats(str(j), now=NOW)
    assert stats.total == 1 and stats.ignored_files == names
    assert any("ignored 2 files" in m and "errors.jsonl" in m for m in caplog.messages)

    health = inspect_journal(str(j))
    assert health.ignored_files == names
    assert any("not named like journal files" in p for p in health.problems)

    doc = json.loads(
        Path(
            write_report(str(tmp_path / "r.json"), "json", journal_path=str(j), since=None)
        ).read_text()
    )
    assert doc["stats"]["ignored_files"] == names

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    out = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "stats", "--journal", str(j)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert "ignored 2 files in" in out.stderr and "journal-h-1-0.jsonl.bak" in out.stderr


def test_a_report_that_fails_while_reading_leaves_the_previous_report_as_it_was(
    week: Path, tmp_path: Path
) -> None:
    """Streaming does not weaken the atomic write: the journal is read before the output is
    opened, so a failure meanwhile leaves the old file and no temporary file behind."""
    out = tmp_path / "r.csv"
    out.write_text("the previous report\n")

    def interrupted(entries: Any) -> Any:
        for i, e in enumerate(entries):
            if i == 1000:
                raise KeyboardInterrupt
            yield e

    for fmt in ("csv", "html", "json"):
        with pytest.raises(KeyboardInterrupt):
            write_report(str(out), fmt, journal_path=str(week), since=None, progress=interrupted)
        assert out.read_text() == "the previous report\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_an_interrupted_parallel_read_leaves_no_child_behind(
    week: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    children: list[int] = []
    start = _scan._Child.__init__

    def remember(self: Any, *args: Any) -> None:
        start(self, *args)
        children.append(self.pid)

    monkeypatch.setattr(_scan._Child, "__init__", remember)

    def interrupted(entries: Any) -> Any:
        for i, e in enumerate(entries):
            if i == 1000:
                raise KeyboardInterrupt
            yield e

    with pytest.raises(KeyboardInterrupt):
        "".join(stream_report("html", journal_path=str(week), workers=2, progress=interrupted))
    assert len(children) == 1 and children[0] > 0
    with pytest.raises(ChildProcessError):  # killed and reaped: not even a zombie left
        os.waitpid(children[0], os.WNOHANG)
