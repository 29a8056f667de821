"""Error storms through @instrument (the public path).

- N identical errors: memory must stay flat (goal: RSS growth < 50 MB for 1,000,000 errors)
  and the suppressed count must be exact.
- 10,000 and 100,000 *distinct* fingerprints, each recorded in full: RSS growth stays under
  the documented cap (everything faultlens keeps per fingerprint or per code location is
  bounded: the rate limiter's ``max_fingerprints`` = 10,000 entries, the bounded caches of
  fingerprint prefixes, normalised messages, classifications and formatted stacks, the
  marks); goal for 100,000: < 30 MB.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

_LETTERS = "ghijklmnopqrstuvwxyz"  # no hex digits: a word is never normalised away


def _word(i: int) -> str:
    out = []
    while True:
        out.append(_LETTERS[i % 20])
        i //= 20
        if not i:
            return "".join(out)


def distinct(count: int) -> dict[str, Any]:
    """RSS growth while recording ``count`` errors with distinct fingerprints."""
    import psutil

    import faultlens

    faultlens.configure(service_name="storm-distinct", journal=False)

    @faultlens.instrument
    def parse(word: str) -> None:
        raise ValueError(f"unknown field {word}")

    proc = psutil.Process()
    for i in range(1000):  # warm-up with other fingerprints than the measured ones
        try:
            parse("warm" + _word(i))
        except ValueError:
            pass
    gc.collect()
    before = proc.memory_info().rss
    start = time.perf_counter()
    for i in range(count):
        try:
            parse(_word(i))
        except ValueError:
            pass
    elapsed = time.perf_counter() - start
    gc.collect()
    growth_mb = (proc.memory_info().rss - before) / 2**20
    faultlens.shutdown()
    goal = 30.0 if count >= 100_000 else 10.0
    return {
        "group": "storm",
        "name": f"{count:,} distinct fingerprints: RSS growth",
        "value": f"{growth_mb:.1f} MB",
        "per_call_us": round(elapsed / count * 1e6, 3),
        "anchor": None,
        "anchor_us": None,
        "ratio": None,
        "goal": f"< {goal:g} MB",
        "met": growth_mb < goal,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    import psutil

    import faultlens
    from faultlens.capture import dropped_counts

    n = 100_000 if quick else 1_000_000
    faultlens.configure(service_name="storm", journal=False, rate_limit=100)

    @faultlens.instrument
    def fetch(i: int) -> None:
        raise ConnectionError(f"connection {i} refused")

    proc = psutil.Process()
    for i in range(1000):  # warm caches before the baseline reading
        try:
            fetch(i)
        except ConnectionError:
            pass
    gc.collect()
    before = proc.memory_info().rss
    dropped_before = dropped_counts().get("rate_limited", 0)
    start = time.perf_counter()
    for i in range(n):
        try:
            fetch(i)
        except ConnectionError:
            pass
    elapsed = time.perf_counter() - start
    gc.collect()
    growth_mb = (proc.memory_info().rss - before) / 2**20
    suppressed = dropped_counts().get("rate_limited", 0) - dropped_before
    faultlens.shutdown()
    # The burst (100 per fingerprint per 60 s window) was already used by the warm-up, so
    # every storm error is suppressed unless the run crossed a window boundary.
    windows = int(elapsed // 60) + 1
    exact = n - 100 * (windows - 1) <= suppressed <= n
    rows = [
        {
            "group": "storm",
            "name": f"{n:,} identical errors: RSS growth",
            "value": f"{growth_mb:.1f} MB",
            "per_call_us": round(elapsed / n * 1e6, 3),
            "anchor": None,
            "anchor_us": None,
            "ratio": None,
            "goal": "< 50 MB",
            "met": growth_mb < 50,
        },
        {
            "group": "storm",
            "name": "suppressed count",
            "value": f"{suppressed:,} of {n:,}",
            "per_call_us": None,
            "anchor": None,
            "anchor_us": None,
            "ratio": None,
            "goal": "exact",
            "met": exact,
        },
    ]
    for count in (10_000,) if quick else (10_000, 100_000):
        rows.append(distinct(count))
    return rows


if __name__ == "__main__":
    from pprint import pprint

    pprint(run(quick="--quick" in sys.argv))
