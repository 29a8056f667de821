"""Statistics over journal records: what is failing, how often, since when, getting worse?

The same questions the Prometheus rules ask, answered from the journal for people with no
Prometheus: the error rate over a recent window against a baseline (spike), a code never
seen before (new code), critical errors, and the trend of the rate over time.

Pure functions over plain dicts (the journal's JSON lines), so the CLI, the reports, the
local monitor and tests all compute the same numbers.

Every total counts occurrences, rate-limited ones included: an error line counts
1 + its ``suppressed``, a ``suppressed`` tally counts its ``count`` (``_format.occurrences``),
so 50 identical errors under ``rate_limit=5`` read "50 errors, 45 of them summarised"
(``total`` 50, ``suppressed`` 45, ``recorded`` 5), like ``faultlens.errors`` in Prometheus.
``dropped`` lines (what faultlens itself lost) are summed by reason in ``dropped`` and raise
a ``dropped`` signal. Lines that fail ``_format.entry_kind`` (a NaN or out-of-range ``ts``,
a mistyped field) are ignored, whoever built the list.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ._format import KIND_DROPPED, KIND_ERROR, entry_kind, occurrences, summarised, valid_ts

__all__ = [
    "RECENT_WINDOW",
    "SPIKE_FACTOR",
    "SPIKE_MIN_COUNT",
    "Bucket",
    "Signal",
    "Stats",
    "TopError",
    "Trend",
    "compute_stats",
    "journal_stats",
]

RECENT_WINDOW = 300.0  # s: "now", like rate(...[5m]) in the Prometheus rules
SPIKE_FACTOR = 3.0  # a recent rate this many times the baseline rate is a spike
SPIKE_MIN_COUNT = 5  # and at least this many errors: two errors are not a spike
TREND_THRESHOLD = 0.5  # relative change of the fitted rate over the window for rising/falling
MAX_BUCKETS = 60
_NICE_BUCKETS = (
    1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800,
)  # fmt: skip
_SEVERITY_ORDER = ("critical", "high", "medium", "low")
NO_STAGE = "(none)"


@dataclass(frozen=True, slots=True)
class TopError:
    """One fingerprint ("the same error") with its count and its newest occurrence."""

    fingerprint: str
    code: str
    category: str
    severity: str
    count: int  # occurrences, rate-limited ones included
    suppressed: int  # of which summarised by the rate limiter
    first_seen: float
    last_seen: float
    message: str
    exception_type: str
    stage: str | None
    service: str | None
    stack: str
    hint: str | None
    trace_id: str | None
    span_id: str | None


@dataclass(frozen=True, slots=True)
class Bucket:
    start: float
    count: int
    by_severity: dict[str, int]
    spike: bool = False


@dataclass(frozen=True, slots=True)
class Trend:
    """Least-squares slope of the hourly error rate across the buckets."""

    direction: str  # rising | falling | flat
    slope_per_hour: float  # change of the rate (errors/hour) per hour
    change: float  # relative change of the fitted rate over the window (0.5 = +50 %)
    points: int


@dataclass(frozen=True, slots=True)
class Signal:
    """Something alert-worthy, in the words of the Prometheus rules."""

    kind: str  # spike | new_code | critical | rising | rate | dropped
    severity: str
    summary: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    now: float
    total: int  # errors that happened, rate-limited ones included
    suppressed: int  # of which summarised by the rate limiter (tallies), not written in full
    unique_fingerprints: int
    first_seen: float | None
    last_seen: float | None
    by_code: dict[str, int]
    by_category: dict[str, int]
    by_severity: dict[str, int]
    by_stage: dict[str, int]
    by_service: dict[str, int]
    top: list[TopError]
    bucket_seconds: float
    buckets: list[Bucket]
    trend: Trend
    recent_window: float
    baseline_window: float
    recent_count: int
    recent_rate_per_hour: float
    baseline_rate_per_hour: float
    spike: bool
    spikes: list[Bucket]
    new_codes: list[dict[str, Any]]
    critical_recent: int
    signals: list[Signal] = field(default_factory=list)
    recorded: int = 0  # error lines written in full; total - suppressed
    dropped: dict[str, int] = field(default_factory=dict)  # what faultlens lost, by reason

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (what ``faultlens stats --json`` prints)."""
        return asdict(self)


def _sorted_counts(c: Counter[str]) -> dict[str, int]:
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def _severity_counts(c: Counter[str]) -> dict[str, int]:
    known = {s: c[s] for s in _SEVERITY_ORDER if c.get(s)}
    known.update({k: v for k, v in sorted(c.items()) if k not in known})
    return known


def _auto_bucket(span: float) -> float:
    for b in _NICE_BUCKETS:
        if span / b <= MAX_BUCKETS:
            return float(b)
    return float(math.ceil(span / MAX_BUCKETS))


def _str(rec: Mapping[str, Any], key: str, default: str = "") -> str:
    v = rec.get(key)
    return default if v is None else str(v)


def _trend(buckets: list[Bucket], bucket_seconds: float) -> Trend:
    n = len(buckets)
    if n < 3:
        return Trend("flat", 0.0, 0.0, n)
    per_hour = 3600.0 / bucket_seconds
    xs = [(b.start - buckets[0].start) / 3600.0 for b in buckets]
    ys = [b.count * per_hour for b in buckets]
    mx = sum(xs) / n
    my = sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0 or my == 0:
        return Trend("flat", 0.0, 0.0, n)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    change = slope * (xs[-1] - xs[0]) / my
    direction = "flat"
    if change >= TREND_THRESHOLD:
        direction = "rising"
    elif change <= -TREND_THRESHOLD:
        direction = "falling"
    return Trend(direction, round(slope, 6), round(change, 6), n)


def compute_stats(
    records: Iterable[Mapping[str, Any]],
    *,
    now: float | None = None,
    bucket_seconds: float | None = None,
    baseline_window: float = 3600.0,
    recent_window: float = RECENT_WINDOW,
    top_n: int = 10,
) -> Stats:
    """Aggregate journal records.

    ``now`` ends the timeline and anchors the windows (default: the clock). The *recent*
    window is the last ``recent_window`` seconds; the *baseline* is the ``baseline_window``
    seconds before it. A spike is a recent rate at least ``SPIKE_FACTOR`` times the baseline
    rate with at least ``SPIKE_MIN_COUNT`` recent errors; each timeline bucket is judged the
    same way against the buckets of the preceding ``baseline_window``. ``bucket_seconds``
    defaults to a round size giving at most ``MAX_BUCKETS`` buckets.

    Raises ValueError for a ``now`` or a window that is not a finite number (a NaN would
    silently empty every window); a ``bucket_seconds`` that is not a positive finite
    number means the default.
    """
    now = time.time() if now is None else float(now)
    for name, value in (
        ("now", now),
        ("recent_window", recent_window),
        ("baseline_window", baseline_window),
    ):
        if not math.isfinite(value) or (name != "now" and value < 0):
            raise ValueError(f"compute_stats: {name} must be a finite number, got {value!r}")
    if bucket_seconds is not None and not (math.isfinite(bucket_seconds) and bucket_seconds > 0):
        bucket_seconds = None
    recs: list[Mapping[str, Any]] = []
    dropped: Counter[str] = Counter()
    recorded = 0
    for r in records:
        kind = entry_kind(r) if isinstance(r, Mapping) else None
        if kind is None:
            continue
        if kind == KIND_DROPPED:
            dropped[str(r.get("reason"))] += int(r.get("count") or 0)
            continue
        if occurrences(r) <= 0:
            continue
        if kind == KIND_ERROR:
            recorded += 1
        recs.append(r)
    recs.sort(key=lambda r: float(r["ts"]))
    by: dict[str, Counter[str]] = {
        k: Counter() for k in ("code", "category", "severity", "stage", "service")
    }
    groups: dict[str, dict[str, Any]] = {}
    code_first: dict[str, float] = {}
    total = 0
    suppressed = 0
    recent_start = now - recent_window
    base_start = recent_start - baseline_window
    recent_count = 0
    baseline_count = 0
    critical_recent = 0
    recent_codes: Counter[str] = Counter()
    first: float | None = None
    for r in recs:
        ts = float(r["ts"])
        since = _first_ts(r)
        first = since if first is None else min(first, since)
        w = occurrences(r)
        sup_n = summarised(r)
        total += w
        suppressed += sup_n
        code = _str(r, "code", "UNKNOWN")
        sev = _str(r, "severity", "medium")
        by["code"][code] += w
        by["category"][_str(r, "category", "system")] += w
        by["severity"][sev] += w
        by["stage"][_str(r, "stage", NO_STAGE) or NO_STAGE] += w
        by["service"][_str(r, "service", "unknown")] += w
        code_first[code] = min(code_first.get(code, since), since)
        if recent_start <= ts <= now:
            recent_count += w
            recent_codes[code] += w
            if sev == "critical":
                critical_recent += w
        elif base_start <= ts < recent_start:
            baseline_count += w
        fp = _str(r, "fingerprint") or code
        g = groups.get(fp)
        if g is None:
            g = groups[fp] = {"count": 0, "suppressed": 0, "first": since, "sample": r}
        g["count"] += w
        g["suppressed"] += sup_n
        g["first"] = min(g["first"], since)
        g["last"] = ts
        # The newest occurrence written in full is the most relevant message and trace; a
        # tally stands in only until one is seen.
        if r.get("kind", KIND_ERROR) == KIND_ERROR or g["sample"].get("kind") != KIND_ERROR:
            g["sample"] = r

    top: list[TopError] = []
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["count"], -kv[1]["last"], kv[0]))
    for fp, g in ranked[: max(top_n, 0)]:
        s = g["sample"]
        top.append(
            TopError(
                fingerprint=fp,
                code=_str(s, "code", "UNKNOWN"),
                category=_str(s, "category", "system"),
                severity=_str(s, "severity", "medium"),
                count=g["count"],
                suppressed=g["suppressed"],
                first_seen=g["first"],
                last_seen=g["last"],
                message=_str(s, "message"),
                exception_type=_str(s, "exception_type"),
                stage=s.get("stage") if isinstance(s.get("stage"), str) else None,
                service=s.get("service") if isinstance(s.get("service"), str) else None,
                stack=_str(s, "stack"),
                hint=s.get("hint") if isinstance(s.get("hint"), str) else None,
                trace_id=s.get("trace_id") if isinstance(s.get("trace_id"), str) else None,
                span_id=s.get("span_id") if isinstance(s.get("span_id"), str) else None,
            )
        )

    # -- timeline -----------------------------------------------------------------------
    last = float(recs[-1]["ts"]) if recs else None
    end = max(now, last) if last is not None else now
    begin = first if first is not None else now - recent_window
    span = max(end - begin, 1.0)
    b = float(bucket_seconds) if bucket_seconds and bucket_seconds > 0 else _auto_bucket(span)
    if span / b > 10_000:  # an explicit tiny bucket over months: keep the output bounded
        b = _auto_bucket(span)
    origin = math.floor(begin / b) * b
    nb = int((end - origin) // b) + 1
    counts = [0] * nb
    sev_counts: list[Counter[str]] = [Counter() for _ in range(nb)]
    for r in recs:
        i = min(max(int((float(r["ts"]) - origin) // b), 0), nb - 1)
        w = occurrences(r)
        counts[i] += w
        sev_counts[i][_str(r, "severity", "medium")] += w
    history = max(round(baseline_window / b), 1)
    buckets: list[Bucket] = []
    spikes: list[Bucket] = []
    for i in range(nb):
        prev = counts[max(0, i - history) : i]
        spike = False
        if len(prev) >= 3 and counts[i] >= SPIKE_MIN_COUNT:
            mean = sum(prev) / len(prev)
            spike = counts[i] > SPIKE_FACTOR * mean
        bucket = Bucket(origin + i * b, counts[i], _severity_counts(sev_counts[i]), spike)
        buckets.append(bucket)
        if spike:
            spikes.append(bucket)
    trend = _trend(buckets, b)

    # -- the Prometheus-rule ideas ------------------------------------------------------------
    recent_rate = recent_count * 3600.0 / recent_window if recent_window > 0 else 0.0
    base_rate = baseline_count * 3600.0 / baseline_window if baseline_window > 0 else 0.0
    spike_now = recent_count >= SPIKE_MIN_COUNT and recent_rate > SPIKE_FACTOR * base_rate
    new_codes: list[dict[str, Any]] = [
        {"code": c, "first_seen": code_first[c], "count": n}
        for c, n in sorted(recent_codes.items())
        if code_first[c] >= recent_start
    ]
    signals: list[Signal] = []
    if spike_now:
        versus = f"{recent_rate / base_rate:.1f}x the {base_rate:.1f}/h" if base_rate else "none"
        signals.append(
            Signal(
                "spike",
                "high",
                f"{recent_count} errors in the last {_dur(recent_window)} ({recent_rate:.0f}/h; "
                f"{versus} in the {_dur(baseline_window)} before)",
            )
        )
    had_history = first is not None and first < recent_start
    for nc in new_codes if had_history else []:
        signals.append(
            Signal(
                "new_code",
                "medium",
                f"new error code {nc['code']} ({nc['count']} in the last {_dur(recent_window)})",
                code=str(nc["code"]),
            )
        )
    if critical_recent:
        signals.append(
            Signal(
                "critical",
                "critical",
                f"{critical_recent} critical error{'s' if critical_recent != 1 else ''} "
                f"in the last {_dur(recent_window)}",
            )
        )
    if trend.direction == "rising" and recs:
        signals.append(
            Signal(
                "rising",
                "medium",
                f"error rate rising: {trend.change:+.0%} over the window "
                f"({trend.slope_per_hour:+.1f}/h per hour)",
            )
        )

    lost = sum(dropped.values())
    if lost:
        reasons = ", ".join(f"{n} {k}" for k, n in sorted(dropped.items()))
        signals.append(
            Signal(
                "dropped",
                "high",
                f"faultlens could not record {lost} item{'s' if lost != 1 else ''} "
                f"({reasons}): see faultlens.internal.dropped",
            )
        )

    return Stats(
        now=now,
        total=total,
        suppressed=suppressed,
        unique_fingerprints=len(groups),
        first_seen=first,
        last_seen=last,
        by_code=_sorted_counts(by["code"]),
        by_category=_sorted_counts(by["category"]),
        by_severity=_severity_counts(by["severity"]),
        by_stage=_sorted_counts(by["stage"]),
        by_service=_sorted_counts(by["service"]),
        top=top,
        bucket_seconds=b,
        buckets=buckets,
        trend=trend,
        recent_window=recent_window,
        baseline_window=baseline_window,
        recent_count=recent_count,
        recent_rate_per_hour=round(recent_rate, 6),
        baseline_rate_per_hour=round(base_rate, 6),
        spike=spike_now,
        spikes=spikes,
        new_codes=new_codes,
        critical_recent=critical_recent,
        signals=signals,
        recorded=recorded,
        dropped=dict(sorted(dropped.items())),
    )


def _first_ts(r: Mapping[str, Any]) -> float:
    """When an entry's first occurrence happened: a tally's ``first_ts``, else ``ts``."""
    first = r.get("first_ts")
    ts = float(r["ts"])
    return min(float(first), ts) if valid_ts(first) and first is not None else ts


def journal_stats(
    path: str,
    since: float | None = None,
    until: float | None = None,
    **kwargs: Any,
) -> Stats:
    """``compute_stats`` over every line of the journal at ``path`` with ``since <= ts <=
    until``: error records, tallies and dropped lines (what ``faultlens stats`` shows).
    ``kwargs`` go to ``compute_stats``."""
    from ._reader import read_entries

    return compute_stats(read_entries(path, since, until), **kwargs)


def _dur(seconds: float) -> str:
    s = int(seconds)
    if s % 86400 == 0 and s >= 86400:
        return f"{s // 86400}d"
    if s % 3600 == 0 and s >= 3600:
        return f"{s // 3600}h"
    if s % 60 == 0 and s >= 60:
        return f"{s // 60}m"
    return f"{s}s"
