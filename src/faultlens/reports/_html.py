"""The HTML report: one self-contained file, safe to open and to send around.

Self-contained: the CSS is inlined and the charts are inline SVG, so it opens offline and
fetches nothing. Safe: every value from the journal (messages, context, stacks — all of it
attacker-influenced) is HTML-escaped, and a Content-Security-Policy forbids scripts and any
external load, so even a mistake in escaping could not run code. Links to Jaeger are built
only from an http(s) base URL and a hex trace id, and never carry the URL's credentials
(``https://user:pass@jaeger/`` links to ``https://jaeger/``; the browser asks for them).
"""

from __future__ import annotations

import html
import importlib.resources
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from .._version import __version__
from ..journal import Stats, TopError
from ..scrub import scrub_text
from ._svg import SEVERITIES, bar_chart, timeline_chart
from ._waterfall import Result, render_waterfall, waterfall_summary

__all__ = ["MAX_ROWS", "jaeger_base", "render_html", "trace_link"]

MAX_ROWS = 1000  # newest error rows shown; the counts and charts always cover everything
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _css() -> str:
    try:
        return (importlib.resources.files("faultlens.reports") / "report.css").read_text("utf-8")
    except (OSError, ModuleNotFoundError):  # a broken install still gets a readable report
        return "body{font-family:sans-serif}"


def trace_link(jaeger_url: str | None, trace_id: object) -> str | None:
    """``{jaeger_url}/trace/{trace_id}`` when both are sane, else None. The link never
    carries credentials: userinfo, query and fragment of ``jaeger_url`` are dropped."""
    if not jaeger_url or not isinstance(trace_id, str) or not _TRACE_ID.match(trace_id):
        return None
    base = jaeger_base(jaeger_url)
    if base is None:
        return None
    return f"{base}/trace/{quote(trace_id)}"


def jaeger_base(jaeger_url: str | None) -> str | None:
    """The Jaeger UI base URL fit to print and link to: http(s) only, without credentials,
    query or fragment, without a trailing slash; None when it is not such a URL."""
    if not jaeger_url or not isinstance(jaeger_url, str):
        return None
    try:
        parts = urlsplit(jaeger_url.strip())
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    # a link: the path stays as it is (only userinfo, query and fragment go)
    path = scrub_text(parts.path)
    return f"{parts.scheme}://{host}{path}".rstrip("/")


def _when(ts: object) -> str:
    """A UTC time, or "" for anything that is not a representable epoch time (a journal
    line from elsewhere may carry NaN or 1e20: the report still renders)."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return ""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts))) + " UTC"
    except (OverflowError, OSError, ValueError):
        return ""


def _sev(s: object) -> str:
    name = str(s or "")
    cls = name if name in SEVERITIES else ""
    return f'<span class="sev {cls}">{_e(name)}</span>'


def _trace_cell(jaeger_url: str | None, trace_id: object) -> str:
    link = trace_link(jaeger_url, trace_id)
    if link:
        return (
            f'<a class="trace" href="{_e(link)}" target="_blank" rel="noopener noreferrer">'
            f"{_e(str(trace_id)[:16])}\u2026</a>"
        )
    return f'<code class="muted">{_e(str(trace_id)[:16])}</code>' if trace_id else ""


def _counts_table(title: str, counts: Mapping[str, int], total: int) -> str:
    rows = "".join(
        f'<tr><td>{_e(k)}</td><td class="n">{v}</td>'
        f'<td class="n">{(100.0 * v / total if total else 0):.1f}%</td></tr>'
        for k, v in counts.items()
    )
    return (
        f"<table><thead><tr><th>{_e(title)}</th><th>errors</th><th>share</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _top_section(
    top: Sequence[TopError],
    jaeger_url: str | None,
    traces: Mapping[str, Result] | None = None,
) -> str:
    if not top:
        return '<p class="muted">No errors in this window.</p>'
    chart = bar_chart(
        [(f"{t.code} {t.fingerprint[:8]}", t.count) for t in top],
        title="Top fingerprints",
        label_width=300,
        width=900,
    )
    rows = []
    for i, t in enumerate(top, 1):
        rows.append(
            f'<tr class="top-error" data-fingerprint="{_e(t.fingerprint)}">'
            f'<td class="n">{i}</td><td><code>{_e(t.code)}</code><br>'
            f'<span class="muted">{_e(t.category)}</span></td>'
            f"<td>{_sev(t.severity)}</td>"
            f'<td class="n">{t.count}</td>'
            f"<td>{_e(_when(t.first_seen))}<br>{_e(_when(t.last_seen))}</td>"
            f'<td class="msg"><b>{_e(t.exception_type)}</b>: {_e(t.message)}'
            + (f'<br><span class="muted">hint: {_e(t.hint)}</span>' if t.hint else "")
            + f"<details><summary>sample stack</summary><pre>{_e(t.stack)}</pre></details></td>"
            f"<td><code>{_e(t.fingerprint)}</code><br>{_trace_cell(jaeger_url, t.trace_id)}</td>"
            "</tr>"
        )
        if traces is not None and t.trace_id is not None and t.trace_id in traces:
            wf = render_waterfall(
                traces[t.trace_id], span_id=t.span_id, link=trace_link(jaeger_url, t.trace_id)
            )
            rows.append(
                f'<tr class="waterfall-row"><td></td><td colspan="6">'
                f"<details open><summary>trace around this error</summary>{wf}</details>"
                "</td></tr>"
            )
    return (
        f'<figure id="chart-top" data-chart="top"><figcaption>Top fingerprints</figcaption>'
        f"{chart}</figure>"
        "<table><thead><tr><th>#</th><th>code</th><th>severity</th><th>count</th>"
        "<th>first / last seen</th><th>message</th><th>fingerprint / trace</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _records_section(
    records: Sequence[Mapping[str, Any]], jaeger_url: str | None, total: int | None = None
) -> str:
    if total is None:
        newest = sorted(
            records,
            key=lambda r: float(r["ts"]) if isinstance(r.get("ts"), (int, float)) else 0.0,
        )[::-1][:MAX_ROWS]
        total = len(records)
    else:  # already the newest rows, newest first (a streamed report)
        newest = list(records[:MAX_ROWS])
    note = (
        f'<p class="muted">Showing the newest {len(newest)} of {total} errors.</p>'
        if total > len(newest)
        else ""
    )
    rows = []
    for r in newest:
        ctx = r.get("context")
        ctx_text = ", ".join(f"{k}={v}" for k, v in ctx.items()) if isinstance(ctx, Mapping) else ""
        rows.append(
            '<tr class="error-row">'
            f"<td>{_e(_when(r.get('ts')))}</td><td>{_e(r.get('service'))}</td>"
            f"<td><code>{_e(r.get('code'))}</code></td><td>{_sev(r.get('severity'))}</td>"
            f"<td>{_e(r.get('stage') or '')}</td>"
            f'<td class="msg">{_e(r.get("message"))}'
            + (f'<br><span class="muted">{_e(ctx_text)}</span>' if ctx_text else "")
            + f"</td><td>{_trace_cell(jaeger_url, r.get('trace_id'))}</td></tr>"
        )
    return (
        note + "<table><thead><tr><th>time</th><th>service</th><th>code</th><th>severity</th>"
        "<th>stage</th><th>message / context</th><th>trace</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(
    stats: Stats,
    records: Sequence[Mapping[str, Any]],
    *,
    jaeger_url: str | None = None,
    title: str = "faultlens error report",
    total_records: int | None = None,
    traces: Mapping[str, Result] | None = None,
) -> str:
    """The page. ``records`` are the error records, or — with ``total_records``, the
    number of them — already just the rows to show, newest first. ``traces``: the top
    errors' sample traces fetched from Jaeger (``fetch_traces``), drawn as waterfalls."""
    legend = "".join(
        f'<span><i class="sev-{s}" style="background:var(--{s})"></i>{s}</span>' for s in SEVERITIES
    )
    window = (
        f"{_when(stats.first_seen)} \u2013 {_when(stats.last_seen)}"
        if stats.first_seen is not None
        else "no errors recorded"
    )
    cards = [
        ("errors", str(stats.total)),
        ("fingerprints", str(stats.unique_fingerprints)),
        ("suppressed", str(stats.suppressed)),
        (f"last {int(stats.recent_window // 60)} min", f"{stats.recent_rate_per_hour:.0f}/h"),
        ("trend", stats.trend.direction),
        ("critical (recent)", str(stats.critical_recent)),
    ]
    cards_html = "".join(
        f'<div class="card"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>'
        for k, v in cards
    )
    signals = "".join(
        f'<li class="signal {_e(s.severity)}" data-kind="{_e(s.kind)}">{_e(s.summary)}</li>'
        for s in stats.signals
    )
    sev_css = {s: f"sev-{s}" for s in SEVERITIES}
    jaeger_shown = jaeger_base(jaeger_url)
    jaeger_note = (
        f'<p class="meta">Traces link to Jaeger at {_e(jaeger_shown)}.</p>' if jaeger_shown else ""
    )
    if traces:
        shown, missing = waterfall_summary(traces)
        jaeger_note += (
            f'<p class="meta" id="trace-embeds" data-embedded="{shown}" data-missing="{missing}">'
            f"Sample traces of the top errors embedded from Jaeger: {shown} of {len(traces)}"
            + (f" ({missing} not available)" if missing else "")
            + ".</p>"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="faultlens {_e(__version__)}">
<title>{_e(title)}</title>
<style>{_css()}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="meta">Generated {_e(_when(stats.now))} &middot; errors from {_e(window)}
&middot; services: {_e(", ".join(stats.by_service) or "none")}</p>
{jaeger_note}
</header>
<section id="summary"><div class="cards">{cards_html}</div>
<ul class="signals">{signals}</ul></section>
<h2>Errors over time</h2>
<figure id="chart-timeline" data-chart="timeline">
<figcaption>Errors per {_e(_bucket_name(stats.bucket_seconds))}
(spikes outlined in red)</figcaption>
{timeline_chart(stats.buckets, stats.bucket_seconds, title="Errors over time")}
<div class="legend">{legend}</div>
</figure>
<div class="grid">
<figure id="chart-category" data-chart="category"><figcaption>By category</figcaption>
{bar_chart(stats.by_category, title="Errors by category")}</figure>
<figure id="chart-severity" data-chart="severity"><figcaption>By severity</figcaption>
{bar_chart(stats.by_severity, title="Errors by severity", css=sev_css)}</figure>
</div>
<h2>Top errors</h2>
{_top_section(stats.top, jaeger_url, traces)}
<h2>Breakdowns</h2>
<div class="grid">
{_counts_table("code", stats.by_code, stats.total)}
{_counts_table("stage", stats.by_stage, stats.total)}
{_counts_table("service", stats.by_service, stats.total)}
</div>
<h2>Errors</h2>
<section id="errors">{_records_section(records, jaeger_url, total_records)}</section>
<footer>faultlens {_e(__version__)} &middot; times in UTC &middot; this file is self-contained
and loads nothing from the network.</footer>
</body>
</html>
"""


def _bucket_name(seconds: float) -> str:
    s = int(seconds)
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= n and s % n == 0:
            k = s // n
            return unit if k == 1 else f"{k} {unit}s"
    return "second" if s == 1 else f"{s} seconds"
