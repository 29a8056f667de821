"""compute_stats() on a crafted journal: the numbers `faultlens stats` prints."""

from __future__ import annotations

import json
from typing import Any

from faultlens.journal import compute_stats

NOW = 1_700_002_800.0  # a fixed clock, on a whole hour: windows and buckets align
H = 3600.0


def rec(ts: float, code: str = "VAL_INVALID_VALUE", **kw: Any) -> dict[str, Any]:
    base = {
        "ts": ts,
        "code": code,
        "category": "validation",
        "severity": "medium",
        "fingerprint": f"fp-{code}",
        "stage": None,
        "service": "scorer",
        "message": f"{code} happened",
        "stack": f"Traceback ...\n{code}\n",
        "trace_id": "a" * 32,
        "suppressed": 0,
    }
    base.update(kw)
    return base


def crafted() -> list[dict[str, Any]]:
    """2 h of history: a steady trickle of timeouts, a burst of connection failures in the
    last 5 minutes, one critical error, and one code never seen before."""
    out = []
    for i in range(12):  # one timeout every 10 min for 2 h
        out.append(rec(NOW - 2 * H + i * 600, "EXE_TIMEOUT", category="execution", stage="scoring"))
    for i in range(8):  # burst: 8 in the last 4 minutes
        out.append(
            rec(
                NOW - 240 + i * 30,
                "NET_CONNECTION_FAILED",
                category="network",
                severity="high",
                service="fetcher",
                message=f"refused {i}",
                suppressed=2 if i == 7 else 0,
            )
        )
    out.append(rec(NOW - 60, "RES_INSUFFICIENT_MEMORY", category="resource", severity="critical"))
    return out


def test_totals_breakdowns_and_top_errors() -> None:
    # The 8th connection failure carries 2 earlier occurrences the rate limiter suppressed
    # (how schema-1 journals recorded them): they happened, so every total counts them.
    s = compute_stats(crafted(), now=NOW)
    assert s.total == 23
    assert s.suppressed == 2 and s.recorded == 21
    assert s.unique_fingerprints == 3
    assert s.by_code == {
        "EXE_TIMEOUT": 12,
        "NET_CONNECTION_FAILED": 10,
        "RES_INSUFFICIENT_MEMORY": 1,
    }
    assert s.by_category == {"execution": 12, "network": 10, "resource": 1}
    assert s.by_severity == {"critical": 1, "high": 10, "medium": 12}  # most urgent first
    assert s.by_stage == {"(none)": 11, "scoring": 12}
    assert s.by_service == {"fetcher": 10, "scorer": 13}
    top = s.top[0]
    assert (top.code, top.count, top.fingerprint) == ("EXE_TIMEOUT", 12, "fp-EXE_TIMEOUT")
    assert top.first_seen == NOW - 2 * H and top.last_seen == NOW - 2 * H + 11 * 600
    second = s.top[1]
    assert second.message == "refused 7", "the sample is the newest occurrence"
    assert second.count == 10 and second.suppressed == 2
    assert "NET_CONNECTION_FAILED" in second.stack


def test_recent_rate_against_the_baseline_is_a_spike_like_the_prometheus_rule() -> None:
    s = compute_stats(crafted(), now=NOW)
    # 8 connection failures (+2 suppressed) + 1 critical in the last 5 min
    assert s.recent_count == 11
    assert s.recent_rate_per_hour == 11 * 12
    # baseline: the hour before the recent window holds the timeouts of [NOW-65m, NOW-5m)
    assert s.baseline_rate_per_hour == 6.0
    assert s.spike is True
    kinds = {sig.kind for sig in s.signals}
    assert {"spike", "critical", "new_code"} <= kinds
    assert s.critical_recent == 1
    assert [c["code"] for c in s.new_codes] == ["NET_CONNECTION_FAILED", "RES_INSUFFICIENT_MEMORY"]


def test_a_steady_rate_is_neither_a_spike_nor_a_trend() -> None:
    steady = [rec(NOW - i * 60) for i in range(180)]  # one a minute for 3 h
    s = compute_stats(steady, now=NOW, bucket_seconds=600)
    assert s.spike is False
    assert s.spikes == []
    assert s.trend.direction == "flat"
    assert s.new_codes == []  # seen before the recent window


def test_timeline_buckets_and_the_rising_and_falling_trend() -> None:
    rising = [rec(NOW - H + b * 600 + k) for b in range(6) for k in range(b + 1)]
    s = compute_stats(rising, now=NOW - 1, bucket_seconds=600)
    assert s.bucket_seconds == 600
    assert [b.count for b in s.buckets] == [1, 2, 3, 4, 5, 6]
    assert all(b.start % 600 == 0 for b in s.buckets)
    assert s.trend.direction == "rising" and s.trend.slope_per_hour > 0

    falling = [rec(NOW - H + b * 600 + k) for b in range(6) for k in range(6 - b)]
    assert compute_stats(falling, now=NOW - 1, bucket_seconds=600).trend.direction == "falling"


def test_a_burst_bucket_is_flagged_against_the_buckets_before_it() -> None:
    records = [rec(NOW - 3 * H + i * 600) for i in range(18)]  # 1 per 10-min bucket
    records += [rec(NOW - 1800 + k) for k in range(10)]  # then 10 in one bucket
    s = compute_stats(records, now=NOW, bucket_seconds=600)
    assert [b.count for b in s.spikes] == [11]


def test_buckets_stay_bounded_whatever_the_span() -> None:
    records = [rec(NOW - 90 * 86400), rec(NOW)]
    assert len(compute_stats(records, now=NOW).buckets) <= 60
    assert len(compute_stats(records, now=NOW, bucket_seconds=1).buckets) <= 10_001


def test_empty_and_odd_input_and_json_output() -> None:
    empty = compute_stats([], now=NOW)
    assert empty.total == 0 and empty.top == [] and empty.trend.direction == "flat"
    odd = [{"ts": NOW, "code": "X"}, {"code": "no ts"}, {"ts": "soon", "code": "Y"}]
    s = compute_stats(odd, now=NOW)
    assert s.total == 1 and s.by_severity == {"medium": 1}
    doc = json.loads(json.dumps(compute_stats(crafted(), now=NOW).to_dict()))
    assert doc["total"] == 23 and doc["top"][0]["code"] == "EXE_TIMEOUT"
    assert doc["trend"]["direction"] in ("rising", "falling", "flat")
