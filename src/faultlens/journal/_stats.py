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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ._format import KIND_DROPPED, KIND_ERROR, entry_kind, valid_ts
from ._reader import ReadReport

__all__ = [
    "RECENT_WINDOW",
    "SPIKE_FACTOR",
    "SPIKE_MIN_COUNT",
    "Bucket",
    "Signal",
    "Stats",
    "StatsAccumulator",
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
    # files of the journal directory no reader reads: not named journal-<host>-<pid>-<n>.jsonl
    ignored_files: list[str] = field(default_factory=list)

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
    # Whole weeks beyond that (a journal spanning years), so the buckets stay aligned on the
    # timeline's bins (_Timeline).
    return float(math.ceil(span / MAX_BUCKETS / 604800.0) * 604800)


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
    defaults to a round size giving at most ``MAX_BUCKETS`` buckets (buckets are aligned on
    multiples of their size).

    One pass, in any order: memory grows with the distinct errors (fingerprint, code,
    severity, stage, service), never with the number of records (``StatsAccumulator``).

    Raises ValueError for a ``now`` or a window that is not a finite number (a NaN would
    silently empty every window); a ``bucket_seconds`` that is not a positive finite
    number means the default.
    """
    acc = StatsAccumulator(
        now=now,
        bucket_seconds=bucket_seconds,
        baseline_window=baseline_window,
        recent_window=recent_window,
        top_n=top_n,
    )
    for i, r in enumerate(records):
        kind = entry_kind(r) if isinstance(r, Mapping) else None
        if kind is not None:
            acc.add(_MappingView(r, kind), r, i)
    return acc.finish()


class _MappingView:
    """The attributes ``StatsAccumulator.add`` reads, over a validated mapping."""

    __slots__ = (
        "category",
        "code",
        "count",
        "fingerprint",
        "first_ts",
        "kind",
        "reason",
        "service",
        "severity",
        "stage",
        "suppressed",
        "ts",
    )

    def __init__(self, r: Mapping[str, Any], kind: str) -> None:
        self.kind = kind
        self.ts = float(r["ts"])
        self.code = r.get("code")
        self.category = r.get("category")
        self.severity = r.get("severity")
        self.stage = r.get("stage")
        self.service = r.get("service")
        self.fingerprint = r.get("fingerprint")
        self.suppressed = r.get("suppressed")
        self.count = r.get("count")
        self.first_ts = r.get("first_ts")
        self.reason = r.get("reason")


# Units of the timeline's bins, finest first. The bucket size is only known at the end (it
# depends on the span), so the timeline counts per bin of ``unit`` seconds and moves to the
# next unit when it holds more than ``_MAX_BINS`` bins; ``_auto_bucket`` then always picks
# a multiple of the unit in force (proof: with more than _MAX_BINS bins of unit u the span is
# at least (_MAX_BINS - 2) u, so the bucket is at least ~120 u, and every round size from
# there on is a multiple of the next unit), so re-bucketing the bins is exact.
_UNITS = (1, 60, 3600, 86400, 604800)
_MAX_BINS = 7200
_MAX_EXPLICIT_BINS = 20_000  # an explicit bucket size with more bins is refused anyway


class _Timeline:
    __slots__ = ("bins", "explicit", "explicit_bins", "level", "unit")

    def __init__(self, explicit: float | None) -> None:
        self.level = 0
        self.unit = _UNITS[0]
        self.bins: dict[int, dict[str, int]] = {}
        self.explicit = explicit
        self.explicit_bins: dict[int, dict[str, int]] | None = {} if explicit else None

    def add(self, ts: float, severity: str, w: int) -> None:
        k = int(ts // self.unit)
        b = self.bins.get(k)
        if b is None:
            b = self.bins[k] = {severity: w}
            if len(self.bins) > _MAX_BINS and self.level + 1 < len(_UNITS):
                self._coarsen()
        else:
            b[severity] = b.get(severity, 0) + w
        eb = self.explicit_bins
        if eb is not None:
            assert self.explicit is not None
            k = int(ts // self.explicit)
            b = eb.get(k)
            if b is None:
                eb[k] = {severity: w}
                if len(eb) > _MAX_EXPLICIT_BINS:
                    self.explicit_bins = None
            else:
                b[severity] = b.get(severity, 0) + w

    def merge(self, other: _Timeline) -> None:
        while self.level < other.level:
            self._coarsen(force=True)
        if other.level < self.level:
            other = other.copy()
            while other.level < self.level:
                other._coarsen(force=True)
        for k, sevs in other.bins.items():
            m = self.bins.setdefault(k, {})
            for sev, n in sevs.items():
                m[sev] = m.get(sev, 0) + n
        if self.explicit_bins is not None and other.explicit_bins is not None:
            for k, sevs in other.explicit_bins.items():
                m = self.explicit_bins.setdefault(k, {})
                for sev, n in sevs.items():
                    m[sev] = m.get(sev, 0) + n
            if len(self.explicit_bins) > _MAX_EXPLICIT_BINS:
                self.explicit_bins = None
        else:
            self.explicit_bins = None
        if len(self.bins) > _MAX_BINS:
            self._coarsen()

    def copy(self) -> _Timeline:
        t = _Timeline(self.explicit)
        t.level, t.unit = self.level, self.unit
        t.bins = {k: dict(v) for k, v in self.bins.items()}
        t.explicit_bins = None if self.explicit_bins is None else dict(self.explicit_bins)
        return t

    def _coarsen(self, force: bool = False) -> None:
        while (force or len(self.bins) > _MAX_BINS) and self.level + 1 < len(_UNITS):
            force = False
            self.level += 1
            factor = _UNITS[self.level] // self.unit
            self.unit = _UNITS[self.level]
            merged: dict[int, dict[str, int]] = {}
            for k, sevs in self.bins.items():
                m = merged.setdefault(k // factor, {})
                for sev, n in sevs.items():
                    m[sev] = m.get(sev, 0) + n
            self.bins = merged

    def buckets(self, b: float, origin: float, nb: int) -> tuple[list[int], list[Counter[str]]]:
        counts = [0] * nb
        sev_counts: list[Counter[str]] = [Counter() for _ in range(nb)]
        if self.explicit is not None and b == self.explicit and self.explicit_bins is not None:
            first = math.floor(origin / b + 0.5)
            items = ((k - first, sevs) for k, sevs in self.explicit_bins.items())
        else:
            u = self.unit
            items = ((int((k * u - origin) // b), sevs) for k, sevs in self.bins.items())
        for i, sevs in items:
            i = min(max(i, 0), nb - 1)
            for sev, n in sevs.items():
                counts[i] += n
                sev_counts[i][sev] += n
        return counts, sev_counts


# One aggregate per distinct (code, category, severity, stage, service, fingerprint):
_COUNT, _SUP, _FIRST, _LAST, _ERR, _TALLY = range(6)


class StatsAccumulator:
    """``compute_stats`` one entry at a time (``add``), then ``finish()``: what the CLI and
    the reports run over a journal of any size in one streaming pass.

    ``add(view, sample)`` takes a validated entry's fields as attributes (``kind``, ``ts``,
    ``first_ts``, ``code``, ``category``, ``severity``, ``stage``, ``service``,
    ``fingerprint``, ``suppressed``, ``count``, ``reason``) and an opaque ``sample``
    standing for the whole record: the newest sample of each fingerprint is kept (an error
    written in full before any tally), and ``finish(resolve)`` turns the top errors'
    samples into records with ``resolve`` — so a streaming reader passes a file offset and
    re-reads ten lines at the end instead of holding every stack.
    """

    def __init__(
        self,
        *,
        now: float | None = None,
        bucket_seconds: float | None = None,
        baseline_window: float = 3600.0,
        recent_window: float = RECENT_WINDOW,
        top_n: int = 10,
    ) -> None:
        now = time.time() if now is None else float(now)
        for name, value in (
            ("now", now),
            ("recent_window", recent_window),
            ("baseline_window", baseline_window),
        ):
            if not math.isfinite(value) or (name != "now" and value < 0):
                raise ValueError(f"compute_stats: {name} must be a finite number, got {value!r}")
        if bucket_seconds is not None and not (
            math.isfinite(bucket_seconds) and bucket_seconds > 0
        ):
            bucket_seconds = None
        self.now = now
        self.baseline_window = float(baseline_window)
        self.recent_window = float(recent_window)
        self.top_n = top_n
        self.recent_start = now - recent_window
        self.base_start = self.recent_start - baseline_window
        self._agg: dict[tuple[Any, ...], list[Any]] = {}
        self._timeline = _Timeline(float(bucket_seconds) if bucket_seconds else None)
        self._dropped: Counter[str] = Counter()
        self._recent_codes: Counter[str] = Counter()
        self.recorded = 0
        self.recent_count = 0
        self.baseline_count = 0
        self.critical_recent = 0

    def add(self, v: Any, sample: Any, order: Any) -> None:
        """Count one entry. ``order`` is its place in read order (comparable): between
        entries with the same ``ts`` the later one is the newer sample, as a stable sort by
        ``ts`` would have it."""
        # Runs once per journal line: kept to a handful of dict operations.
        kind = v.kind
        if kind == KIND_ERROR:
            sup = v.suppressed or 0
            w = 1 + sup
            self.recorded += 1
        elif kind == KIND_DROPPED:
            self._dropped[str(v.reason)] += int(v.count or 0)
            return
        else:
            w = sup = v.count or 0
            if w <= 0:
                return
        ts = v.ts
        since = ts
        f = v.first_ts
        if f is not None and valid_ts(f) and f < ts:
            since = float(f)
        severity = v.severity
        key = (v.code, v.category, severity, v.stage, v.service, v.fingerprint)
        a = self._agg.get(key)
        if a is None:
            a = self._agg[key] = [0, 0, since, ts, None, None]
        a[0] += w  # _COUNT
        a[1] += sup  # _SUP
        if since < a[2]:  # _FIRST
            a[2] = since
        if ts >= a[3]:  # _LAST
            a[3] = ts
        # The newest occurrence written in full is the most relevant message and trace; a
        # tally stands in only until one is seen (ties: the later line).
        slot = _ERR if kind == KIND_ERROR else _TALLY
        best = a[slot]
        if best is None or ts >= best[0]:
            a[slot] = (ts, order, sample)
        sev = "medium" if severity is None else severity
        tl = self._timeline
        k = int(ts // tl.unit)
        b = tl.bins.get(k)
        if b is None or tl.explicit_bins is not None:
            tl.add(ts, sev, w)
        else:
            b[sev] = b.get(sev, 0) + w
        if ts >= self.recent_start:
            if ts <= self.now:
                self.recent_count += w
                self._recent_codes["UNKNOWN" if v.code is None else v.code] += w
                if sev == "critical":
                    self.critical_recent += w
        elif ts >= self.base_start:
            self.baseline_count += w

    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Fold in what ``other`` (same windows, other files) counted; returns self."""
        for key, b in other._agg.items():
            a = self._agg.get(key)
            if a is None:
                self._agg[key] = list(b)
                continue
            a[0] += b[0]
            a[1] += b[1]
            a[2] = min(a[2], b[2])
            a[3] = max(a[3], b[3])
            for slot in (_ERR, _TALLY):
                if b[slot] is not None and (a[slot] is None or b[slot][:2] > a[slot][:2]):
                    a[slot] = b[slot]
        self._timeline.merge(other._timeline)
        self._dropped.update(other._dropped)
        self._recent_codes.update(other._recent_codes)
        self.recorded += other.recorded
        self.recent_count += other.recent_count
        self.baseline_count += other.baseline_count
        self.critical_recent += other.critical_recent
        return self

    def finish(self, resolve: Callable[[Any], Mapping[str, Any] | None] | None = None) -> Stats:
        """The statistics; ``resolve(sample)`` gives the record a sample stands for (the
        sample itself by default). A sample that resolves to None (its file pruned
        meanwhile) is shown with the counted fields only."""
        now = self.now
        recent_window, baseline_window = self.recent_window, self.baseline_window
        by: dict[str, Counter[str]] = {
            k: Counter() for k in ("code", "category", "severity", "stage", "service")
        }
        code_first: dict[str, float] = {}
        groups: dict[str, list[Any]] = {}
        total = suppressed = 0
        for key, a in self._agg.items():
            code_v, category, severity, stage, service, fingerprint = key
            code = "UNKNOWN" if code_v is None else str(code_v)
            w = a[_COUNT]
            total += w
            suppressed += a[_SUP]
            by["code"][code] += w
            by["category"]["system" if category is None else str(category)] += w
            by["severity"]["medium" if severity is None else str(severity)] += w
            by["stage"][(str(stage) if stage is not None else NO_STAGE) or NO_STAGE] += w
            by["service"]["unknown" if service is None else str(service)] += w
            code_first[code] = min(code_first.get(code, a[_FIRST]), a[_FIRST])
            fp = (str(fingerprint) if fingerprint is not None else "") or code
            err = a[_ERR] + (key,) if a[_ERR] is not None else None
            tally = a[_TALLY] + (key,) if a[_TALLY] is not None else None
            g = groups.get(fp)
            if g is None:
                groups[fp] = [w, a[_SUP], a[_FIRST], a[_LAST], err, tally]
                continue
            g[0] += w
            g[1] += a[_SUP]
            g[2] = min(g[2], a[_FIRST])
            g[3] = max(g[3], a[_LAST])
            # (ts, read order) decides between aggregates, as a stable sort by ts would
            if err is not None and (g[4] is None or err[:2] > g[4][:2]):
                g[4] = err
            if tally is not None and (g[5] is None or tally[:2] > g[5][:2]):
                g[5] = tally

        top: list[TopError] = []
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1][0], -kv[1][3], kv[0]))
        for fp, g in ranked[: max(self.top_n, 0)]:
            best = g[4] if g[4] is not None else g[5]  # always one: every entry has a slot
            s: Mapping[str, Any] | None = best[2] if resolve is None else resolve(best[2])
            if s is None:
                code_v, category, severity, stage, service, _ = best[3]
                s = {
                    "code": code_v,
                    "category": category,
                    "severity": severity,
                    "stage": stage,
                    "service": service,
                }
            top.append(
                TopError(
                    fingerprint=fp,
                    code=_str(s, "code", "UNKNOWN"),
                    category=_str(s, "category", "system"),
                    severity=_str(s, "severity", "medium"),
                    count=g[0],
                    suppressed=g[1],
                    first_seen=g[2],
                    last_seen=g[3],
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
        first = min((a[_FIRST] for a in self._agg.values()), default=None)
        last = max((a[_LAST] for a in self._agg.values()), default=None)
        end = max(now, last) if last is not None else now
        begin = first if first is not None else now - recent_window
        span = max(end - begin, 1.0)
        explicit = self._timeline.explicit
        b = explicit if explicit else _auto_bucket(span)
        if span / b > 10_000:  # an explicit tiny bucket over months: keep the output bounded
            b = _auto_bucket(span)
        origin = math.floor(begin / b) * b
        nb = int((end - origin) // b) + 1
        counts, sev_counts = self._timeline.buckets(b, origin, nb)
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
        recent_count, baseline_count = self.recent_count, self.baseline_count
        critical_recent = self.critical_recent
        recent_start = self.recent_start
        recent_rate = recent_count * 3600.0 / recent_window if recent_window > 0 else 0.0
        base_rate = baseline_count * 3600.0 / baseline_window if baseline_window > 0 else 0.0
        spike_now = recent_count >= SPIKE_MIN_COUNT and recent_rate > SPIKE_FACTOR * base_rate
        new_codes: list[dict[str, Any]] = [
            {"code": c, "first_seen": code_first[c], "count": n}
            for c, n in sorted(self._recent_codes.items())
            if code_first[c] >= recent_start
        ]
        signals: list[Signal] = []
        if spike_now:
            versus = (
                f"{recent_rate / base_rate:.1f}x the {base_rate:.1f}/h" if base_rate else "none"
            )
            signals.append(
                Signal(
                    "spike",
                    "high",
                    f"{recent_count} errors in the last {_dur(recent_window)} "
                    f"({recent_rate:.0f}/h; {versus} in the {_dur(baseline_window)} before)",
                )
            )
        had_history = first is not None and first < recent_start
        for nc in new_codes if had_history else []:
            signals.append(
                Signal(
                    "new_code",
                    "medium",
                    f"new error code {nc['code']} ({nc['count']} in the last "
                    f"{_dur(recent_window)})",
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
        if trend.direction == "rising" and last is not None:
            signals.append(
                Signal(
                    "rising",
                    "medium",
                    f"error rate rising: {trend.change:+.0%} over the window "
                    f"({trend.slope_per_hour:+.1f}/h per hour)",
                )
            )

        dropped = self._dropped
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
            recorded=self.recorded,
            dropped=dict(sorted(dropped.items())),
        )


def journal_stats(
    path: str,
    since: float | None = None,
    until: float | None = None,
    *,
    report: ReadReport | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    workers: int | None = None,
    **kwargs: Any,
) -> Stats:
    """``compute_stats`` over every line of the journal at ``path`` with ``since <= ts <=
    until``: error records, tallies and dropped lines (what ``faultlens stats`` shows), in
    one streaming pass (``_scan.JournalScan``: memory does not grow with the journal; a
    large journal is read on two CPUs, ``workers`` says otherwise, see
    ``JournalScan.split``). ``report`` receives the files read, damaged lines and
    ignored files; ``progress`` wraps the stream of entries (the CLI's progress line);
    ``kwargs`` go to ``compute_stats``."""
    from ._scan import JournalScan

    scan = JournalScan(path, since, until, report=report)
    # One clock for every worker (and the arguments checked before any is started).
    settings = {**kwargs, "now": StatsAccumulator(**kwargs).now}

    def count(entries: Iterator[tuple[Any, int]]) -> StatsAccumulator:
        acc = StatsAccumulator(**settings)
        add = acc.add
        for view, ref in entries:
            add(view, ref, ref)
        return acc

    acc = scan.split(
        count,
        StatsAccumulator.merge,
        workers=workers,
        wrap=None if progress is None else (lambda it: iter(progress(it))),
    )
    stats = acc.finish(scan.resolve)
    return replace(stats, ignored_files=list(scan.ignored))


def _dur(seconds: float) -> str:
    s = int(seconds)
    if s % 86400 == 0 and s >= 86400:
        return f"{s // 86400}d"
    if s % 3600 == 0 and s >= 3600:
        return f"{s // 3600}h"
    if s % 60 == 0 and s >= 60:
        return f"{s // 60}m"
    return f"{s}s"
