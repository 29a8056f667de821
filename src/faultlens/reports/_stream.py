"""Reports over a journal of any size, streamed: memory bounded by the distinct errors and
the rows an HTML page shows, never by the journal.

- **HTML**: one pass (``JournalScan`` + ``StatsAccumulator``) that also keeps the
  ``MAX_ROWS`` newest error rows as file offsets; those rows (and the top errors'
  samples) are re-read at the end.
- **CSV**: one pass keeps each error record's time and offset (16 bytes a record), sorts
  them, and writes the rows in time order, re-reading each line as it is written, on two
  CPUs for a large journal (``_csv_stream``).
- **JSON**: the statistics pass, then the records streamed from a second pass over the
  same bytes (``JournalScan.records``: a journal that grows meanwhile does not add rows
  the totals did not count).

The text is the same as ``render_report`` gives for the same stats and records.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..journal import KIND_ERROR, JournalScan, LineReader, ReadReport, Stats, StatsAccumulator
from ._csv_stream import csv_merge, csv_pass, csv_text

__all__ = ["stream_report"]

Progress = Callable[[Iterable[Any]], Iterable[Any]]


def stream_report(
    fmt: str,
    *,
    journal_path: str,
    since: float | None = None,
    until: float | None = None,
    jaeger_url: str | None = None,
    title: str = "faultlens error report",
    now: float | None = None,
    report: ReadReport | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    embed_traces: bool = False,
) -> Iterator[str]:
    """The report on the journal at ``journal_path`` as chunks of text (nothing is read
    before the first chunk is asked for). ``now`` anchors the statistics' windows (the
    clock by default); ``progress`` wraps the first pass's stream of entries; ``workers``
    as for ``JournalScan.split`` (a large journal is read on two CPUs). ``embed_traces``
    (HTML, with ``jaeger_url``): the top errors' sample traces are fetched from Jaeger's
    API and drawn in the page (bounded in time and size; a failure is shown, not raised)."""
    fmt = fmt.lower()
    if fmt not in ("csv", "html", "json"):
        raise ValueError(f"unknown report format {fmt!r}")
    now = time.time() if now is None else float(now)
    scan = JournalScan(journal_path, since, until, report=report)
    wrap = None if progress is None else (lambda it: iter(progress(it)))
    if fmt == "csv":
        rows = scan.split(csv_pass, csv_merge, workers=workers, wrap=wrap)
        yield from csv_text(scan, rows, workers=workers)
    elif fmt == "html":
        found = scan.split(lambda it: _html_pass(it, now), _html_merge, workers=workers, wrap=wrap)
        yield from _html(scan, found, jaeger_url=jaeger_url, title=title, embed_traces=embed_traces)
    else:
        acc = scan.split(
            lambda it: _stats_pass(it, now), StatsAccumulator.merge, workers=workers, wrap=wrap
        )
        yield from _json(scan, acc, jaeger_url=jaeger_url, title=title)


def _finish(scan: JournalScan, acc: StatsAccumulator) -> Stats:
    from dataclasses import replace

    reader = LineReader(scan.files)
    try:
        stats = acc.finish(reader.record)
    finally:
        reader.close()
    return replace(stats, ignored_files=list(scan.ignored))


Entries = Iterator[tuple[Any, int]]
_Found = tuple[StatsAccumulator, list[tuple[float, int]], int]


def _stats_pass(entries: Entries, now: float) -> StatsAccumulator:
    acc = StatsAccumulator(now=now)
    add = acc.add
    for view, ref in entries:
        add(view, ref, ref)
    return acc


def _html_pass(entries: Entries, now: float) -> _Found:
    """The statistics, the ``MAX_ROWS`` newest error rows (as ``(ts, ref)``: ``ref`` is
    also the read order, which breaks ties as a stable sort would) and the error count."""
    from ._html import MAX_ROWS  # the HTML page's modules load only for it

    acc = StatsAccumulator(now=now)
    add = acc.add
    newest: list[tuple[float, int]] = []  # a min-heap of the newest rows
    push, replace_min = heapq.heappush, heapq.heappushpop
    floor = -1.0  # the oldest row kept, once MAX_ROWS are: a row must be as new to enter
    n = 0
    for view, ref in entries:
        add(view, ref, ref)
        if view.kind == KIND_ERROR:
            n += 1
            ts = view.ts
            # ``ref`` grows in read order, so a row as new as the oldest kept is newer
            if ts >= floor:
                if n <= MAX_ROWS:
                    push(newest, (ts, ref))
                    if n == MAX_ROWS:
                        floor = newest[0][0]
                else:
                    replace_min(newest, (ts, ref))
                    floor = newest[0][0]
    return acc, newest, n


def _html_merge(older: _Found, newer: _Found) -> _Found:
    from ._html import MAX_ROWS

    rows = heapq.nlargest(MAX_ROWS, older[1] + newer[1])
    return older[0].merge(newer[0]), rows, older[2] + newer[2]


def _html(
    scan: JournalScan,
    found: _Found,
    *,
    jaeger_url: str | None,
    title: str,
    embed_traces: bool = False,
) -> Iterator[str]:
    from ._html import render_html
    from ._waterfall import fetch_traces

    acc, newest, n = found
    stats = _finish(scan, acc)
    traces = (
        fetch_traces(jaeger_url, (t.trace_id for t in stats.top))
        if embed_traces and jaeger_url
        else None
    )
    reader = LineReader(scan.files)
    try:
        rows = []
        for ts, ref in sorted(newest, reverse=True):
            rec = reader.record(ref, ts)
            if rec is not None:
                rows.append(rec)
    finally:
        reader.close()
    yield render_html(
        stats, rows, jaeger_url=jaeger_url, title=title, total_records=n, traces=traces
    )


def finite_json(value: Any, depth: int = 0) -> Any:
    """``value`` with NaN and infinities as null: ``json.dumps`` would write ``NaN``, which is
    not JSON, and a journal line from elsewhere may carry one."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 32:
        return str(value)
    if isinstance(value, Mapping):
        return {k: finite_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v, depth + 1) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(
        finite_json(value), indent=2, ensure_ascii=False, default=str, allow_nan=False
    )


def _json(
    scan: JournalScan, acc: StatsAccumulator, *, jaeger_url: str | None, title: str
) -> Iterator[str]:
    from ._html import jaeger_base

    stats = _finish(scan, acc)
    head = {
        "title": title,
        "generated_at": stats.now,
        "jaeger_url": jaeger_base(jaeger_url),
        "stats": stats.to_dict(),
    }
    # json.dumps(doc, indent=2) with "records" last, written record by record.
    text = _dumps(head)
    yield text[:-2] + ',\n  "records": ['
    first = True
    batch: list[str] = []
    for rec in scan.records():
        body = _dumps(rec).replace("\n", "\n    ")
        batch.append(("\n    " if first else ",\n    ") + body)
        first = False
        if len(batch) >= 256:
            yield "".join(batch)
            batch.clear()
    batch.append("]\n}\n" if first else "\n  ]\n}\n")
    yield "".join(batch)
