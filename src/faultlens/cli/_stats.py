"""``faultlens stats``: what failed, how often, is it getting worse."""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ._common import Output, cell, journal_path, require_journal, table, with_progress
from ._parser import parse_duration


def _stats_payload(path: str, since_seconds: float, out: Output) -> dict[str, Any]:
    from ..journal import journal_stats

    require_journal(path)  # one streaming pass: memory bounded whatever the journal's size
    since = time.time() - since_seconds
    stats = journal_stats(path, since=since, progress=lambda it: with_progress(it, out))
    return stats_dict(stats, path, since_seconds)


def stats_dict(stats: Any, path: str, since_seconds: float) -> dict[str, Any]:
    payload = dict(stats.to_dict())
    payload.setdefault("journal", os.path.abspath(path))
    payload.setdefault("since_seconds", since_seconds)
    return payload


def render_stats(s: Mapping[str, Any], out: Output) -> None:
    """The text form of ``faultlens stats``: headline, top errors, breakdowns, trend."""
    trend = s.get("trend") or {}
    out.text(f"journal   {s.get('journal')}")
    line = f"errors    {s.get('total', 0)}, {s.get('unique_fingerprints', 0)} distinct"
    if s.get("suppressed"):
        line += f", {s['suppressed']} of them summarised by the rate limit"
    out.text(line)
    if s.get("dropped"):
        lost = ", ".join(f"{n} {reason}" for reason, n in s["dropped"].items())
        out.text(f"dropped   {lost} (faultlens could not record them)")
    if s.get("first_seen") and s.get("last_seen"):
        out.text(f"window    {_when(s['first_seen'])} .. {_when(s['last_seen'])}")
    top = [t for t in s.get("top") or [] if isinstance(t, Mapping)]
    if top:
        out.text()
        out.text("Top errors")
        table(
            [
                (t.get("count"), t.get("code"), t.get("severity"), t.get("stage"), t.get("message"))
                for t in top
            ],
            ("count", "code", "severity", "stage", "message"),
            out,
        )
    for key, title in (
        ("by_code", "code"),
        ("by_category", "category"),
        ("by_severity", "severity"),
        ("by_stage", "stage"),
    ):
        counts = s.get(key) or {}
        if counts:
            out.text()
            out.text(f"By {title}")
            table(list(counts.items()), (title, "count"), out)
    buckets = [b for b in s.get("buckets") or [] if isinstance(b, Mapping)]
    if buckets:
        out.text()
        width = cell(s.get("bucket_seconds"))
        plural = "s" if len(buckets) != 1 else ""
        out.text(
            f"Trend ({len(buckets)} bucket{plural} of {width}s): {trend.get('direction', 'flat')}"
        )
        out.text("  " + sparkline([float(b.get("count", 0)) for b in buckets]))
        out.text(
            f"  recent {cell(s.get('recent_rate_per_hour'))}/h vs baseline "
            f"{cell(s.get('baseline_rate_per_hour'))}/h" + ("  SPIKE" if s.get("spike") else "")
        )
    signals = [g for g in s.get("signals") or [] if isinstance(g, Mapping)]
    if signals:
        out.text()
        out.text("Signals")
        for g in signals:
            out.text(f"  [{g.get('severity')}] {g.get('summary')}")


def _when(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))
    except (TypeError, ValueError, OverflowError):
        return str(ts)


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    bars = "▁▂▃▄▅▆▇█"
    clean = [v if math.isfinite(v) and v > 0 else 0.0 for v in values]
    top = max(clean) or 1.0
    return "".join(bars[min(len(bars) - 1, int(v / top * (len(bars) - 1)))] for v in clean)


def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    since = parse_duration(args.since)
    payload = _stats_payload(journal_path(args.journal), since, out)
    out.data(payload)
    render_stats(payload, out)
    return 0
