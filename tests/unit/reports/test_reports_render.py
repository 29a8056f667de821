"""Reports: JSON (stats + records), CSV (one row per error, formula-safe), HTML (one
self-contained, escaped file)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import faultlens
from faultlens.journal import compute_stats, read_records
from faultlens.reports import neutralise, render_report, trace_link, write_report

NOW = 1_700_002_800.0
TRACE = "0af7651916cd43dd8448eb211c80319c"


def rec(i: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "time": "2023-11-14T23:00:00.000Z",
        "ts": NOW - 600 + i,
        "trace_id": TRACE,
        "span_id": "b7ad6b7169203331",
        "span_name": "score",
        "service": "scorer",
        "code": "EXE_TIMEOUT",
        "category": "execution",
        "severity": "medium",
        "retryable": True,
        "fingerprint": "9f2c00aa11bb22cc",
        "stage": "scoring",
        "context": {"job_id": i},
        "message": f"took too long {i}",
        "exception_type": "TimeoutError",
        "hint": "raise the timeout",
        "resources": {"memory.rss": 1},
        "stack": "Traceback (most recent call last):\nTimeoutError: took too long\n",
        "suppressed": 0,
        "pid": 1,
        "host": "h",
    }
    base.update(kw)
    return base


HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def records() -> list[dict[str, Any]]:
    return [
        rec(0),
        rec(1, code="NET_CONNECTION_FAILED", category="network", severity="high"),
        rec(2, message=HOSTILE, context={"<b>key</b>": "\"quoted\" & 'single'"}),
        rec(3, message='=HYPERLINK("http://evil","x")', trace_id="not-a-trace-id"),
    ]


def stats() -> Any:
    return compute_stats(records(), now=NOW)


def test_json_report_is_stats_plus_records() -> None:
    doc = json.loads(render_report(stats(), records(), "json", jaeger_url="http://j:16686"))
    assert doc["stats"]["total"] == 4
    assert doc["stats"]["by_code"] == {"EXE_TIMEOUT": 3, "NET_CONNECTION_FAILED": 1}
    assert len(doc["records"]) == 4 and doc["jaeger_url"] == "http://j:16686"


def test_csv_has_one_row_per_error_and_neutralises_formulas() -> None:
    text = render_report(stats(), records(), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    assert rows[3]["message"] == '\'=HYPERLINK("http://evil","x")'
    assert rows[0]["context"] == '{"job_id": 0}'
    assert rows[0]["retryable"] == "true"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_neutralised(start: str) -> None:
    assert neutralise(f"{start}cmd|' /C calc'!A0") == f"'{start}cmd|' /C calc'!A0"
    text = render_report(stats(), [rec(0, message=f"{start}1+1", stage=f"{start}x")], "csv")
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["message"] == f"'{start}1+1" and row["stage"] == f"'{start}x"


def test_plain_cells_are_left_alone() -> None:
    assert neutralise("took 3 s") == "took 3 s" and neutralise("") == ""


def test_html_escapes_everything_from_the_journal() -> None:
    page = render_report(stats(), records(), "html", jaeger_url="http://127.0.0.1:16686")
    assert "<script" not in page.lower(), "no script element, not even ours"
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;b&gt;key&lt;/b&gt;" in page
    assert "&quot;quoted&quot; &amp; &#x27;single&#x27;" in page


def test_html_is_self_contained() -> None:
    page = render_report(stats(), records(), "html", jaeger_url="http://127.0.0.1:16686")
    assert "<link" not in page.lower()
    assert not re.search(r"<[^>]*\bsrc\s*=", page), "no tag loads anything"
    assert "@import" not in page and "url(" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp and "default-src 'none'" in html.unescape(csp.group(1))
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("http://127.0.0.1:16686/trace/") for h in hrefs)
    for chart in ("timeline", "category", "severity", "top"):
        assert f'id="chart-{chart}"' in page


def test_jaeger_links_only_for_real_trace_ids_and_http_urls() -> None:
    assert trace_link("http://127.0.0.1:16686/", TRACE) == f"http://127.0.0.1:16686/trace/{TRACE}"
    assert trace_link("http://127.0.0.1:16686", "not-a-trace-id") is None
    assert trace_link("javascript:alert(1)//", TRACE) is None
    assert trace_link(None, TRACE) is None
    page = render_report(stats(), records(), "html")
    assert "/trace/" not in page, "no Jaeger URL configured: no links"


def test_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="json, csv, html"):
        render_report(stats(), [], "pdf")


def test_write_report_reads_the_journal_and_writes_atomically(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    faultlens.configure(service_name="svc", journal_path=str(journal))
    for i in range(3):
        try:
            raise ValueError(f"bad {i}")
        except ValueError as exc:
            faultlens.record_error(exc)
    faultlens.shutdown()

    out = write_report(str(tmp_path / "r.json"), "json", journal_path=str(journal), since=None)
    assert out == str(tmp_path / "r.json")
    assert json.loads(Path(out).read_text())["stats"]["total"] == 3
    into_dir = write_report(str(tmp_path), "csv", journal_path=str(journal), since=None)
    assert into_dir == str(tmp_path / "faultlens-report.csv")
    future = write_report(str(tmp_path / "f.json"), "json", journal_path=str(journal), since=9e9)
    assert json.loads(Path(future).read_text())["stats"]["total"] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".faultlens-report")] == []
    assert len(list(read_records(str(journal)))) == 3


def test_an_empty_journal_still_renders_every_format() -> None:
    empty = compute_stats([], now=NOW)
    for fmt in ("json", "csv", "html"):
        assert render_report(empty, [], fmt)
