"""Inline SVG charts, drawn on the server side.

No JavaScript and no chart library: the report must open offline, from a mail attachment,
under a Content-Security-Policy that forbids scripts, and stay correct forever. Every text
that reaches the SVG is escaped here.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence

from ..journal import Bucket

__all__ = ["bar_chart", "timeline_chart"]

SEVERITIES = ("critical", "high", "medium", "low")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt_time(ts: float, bucket: float) -> str:
    try:
        t = time.gmtime(ts)
    except (OverflowError, OSError, ValueError):  # NaN or out of range: no label
        return ""
    if bucket >= 86400:
        return time.strftime("%m-%d", t)
    if bucket >= 3600:
        return time.strftime("%m-%d %H:%M", t)
    if bucket >= 60:
        return time.strftime("%H:%M", t)
    return time.strftime("%H:%M:%S", t)


def _nice_max(v: int) -> int:
    if v <= 5:
        return max(v, 1)
    mag = 10 ** (len(str(v)) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return int(m * mag)
    return v


def timeline_chart(buckets: Sequence[Bucket], bucket_seconds: float, *, title: str) -> str:
    """Errors per bucket, stacked by severity; spike buckets outlined."""
    width, height = 900, 240
    left, right, top, bottom = 44, 10, 10, 36
    pw, ph = width - left - right, height - top - bottom
    n = max(len(buckets), 1)
    peak = _nice_max(max((b.count for b in buckets), default=0))
    slot = pw / n
    bw = min(max(slot * 0.8, 1.0), 48.0)  # a few buckets: bars, not walls
    out = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + ph - ph * frac
        tick = round(peak * frac)
        out.append(
            f'<line class="axis" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i, b in enumerate(buckets):
        x = left + i * slot + (slot - bw) / 2
        y = top + ph
        label = f"{_fmt_time(b.start, bucket_seconds)} UTC: {b.count} error(s)"
        out.append(f'<g class="bucket" data-count="{b.count}"><title>{_e(label)}</title>')
        for sev, count in b.by_severity.items():
            if count <= 0:
                continue
            h = ph * count / peak
            y -= h
            cls = f"sev-{sev}" if sev in SEVERITIES else "sev-other"
            out.append(
                f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}"/>'
            )
        if b.spike:
            out.append(
                f'<rect class="spike" x="{x - 1:.1f}" y="{top:.1f}" width="{bw + 2:.1f}" '
                f'height="{ph:.1f}"/>'
            )
        out.append("</g>")
    ticks = min(n, 6)
    for k in range(ticks):
        i = round(k * (n - 1) / max(ticks - 1, 1)) if n > 1 else 0
        if i >= len(buckets):
            continue
        x = left + i * slot + slot / 2
        out.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{_e(_fmt_time(buckets[i].start, bucket_seconds))}</text>"
        )
    out.append(
        f'<text x="{width - right}" y="{height - 4}" text-anchor="end">'
        f"UTC, {_e(_dur(bucket_seconds))} per bar</text></svg>"
    )
    return "".join(out)


def bar_chart(
    items: Mapping[str, int] | Sequence[tuple[str, int]],
    *,
    title: str,
    css: Mapping[str, str] | None = None,
    label_width: int = 170,
    width: int = 440,
) -> str:
    """Horizontal bars, one per item, largest first as given."""
    rows = list(items.items()) if isinstance(items, Mapping) else list(items)
    row_h = 24
    height = max(len(rows), 1) * row_h + 8
    peak = max((v for _, v in rows), default=0) or 1
    pw = width - label_width - 50
    out = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>'
    ]
    if not rows:
        out.append('<text x="4" y="18">no errors</text>')
    for i, (name, value) in enumerate(rows):
        y = 4 + i * row_h
        w = max(pw * value / peak, 1.0)
        cls = (css or {}).get(name, "bar")
        limit = max(label_width // 7, 8)
        shown = name if len(name) <= limit else name[: limit - 1] + "\u2026"
        out.append(
            f'<g class="row" data-name="{_e(name)}" data-count="{value}">'
            f"<title>{_e(name)}: {value}</title>"
            f'<text class="label" x="{label_width - 6}" y="{y + 15}" text-anchor="end">'
            f"{_e(shown)}</text>"
            f'<rect class="{_e(cls)}" x="{label_width}" y="{y + 3}" width="{w:.1f}" '
            f'height="{row_h - 8}"/>'
            f'<text x="{label_width + w + 6:.1f}" y="{y + 15}">{value}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _dur(seconds: float) -> str:
    s = int(seconds)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n and s % n == 0:
            return f"{s // n} {unit}"
    return f"{s} s"
