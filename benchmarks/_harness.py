"""Timing helpers shared by the benchmark groups: best-of-N loops, ratios against anchors.

Ratios, not absolute times, are what we compare across machines and commits: each group
measures its anchors (raw OTel, wrapt, tenacity, ...) in the same process and run. A
candidate's time is the best, over rounds, of the median batch of its round (see ``_loop``).
:func:`compare` interleaves the candidates (A, B, A, B, ...) and keeps each one's best
round, so that a burst of load from another process on a shared machine hits both sides of a
ratio alike instead of one of them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

_BATCHES = 20


def _loop(fn: Callable[[], Any], number: int) -> float:
    """Per-call time of ``number`` calls: the median of ``_BATCHES`` batches' per-call
    times. On a shared machine a run is preempted now and then for milliseconds; a total
    over the round charges that to whichever candidate was running, the median batch
    does not (and every candidate is measured the same way)."""
    size = max(1, number // _BATCHES)
    per: list[float] = []
    clock = time.perf_counter
    done = 0
    while done < number:
        start = clock()
        for _ in range(size):
            fn()
        per.append((clock() - start) / size)
        done += size
    per.sort()
    return per[len(per) // 2]


def per_call(fn: Callable[[], Any], *, number: int, repeat: int = 5, warmup: int = 200) -> float:
    """Best per-call time in seconds over ``repeat`` rounds of ``number`` calls."""
    return compare(fn, number=number, repeat=repeat, warmup=warmup)[0]


def compare(
    *fns: Callable[[], Any],
    number: int,
    repeat: int = 7,
    warmup: int = 200,
    setups: tuple[Callable[[], Any] | None, ...] = (),
) -> list[float]:
    """Best per-call time in seconds of each of ``fns``, measured in interleaved rounds of
    ``number`` calls (``repeat`` rounds each). ``setups[i]``, if given, runs (untimed)
    before each warm-up and round of ``fns[i]``: two configurations can be compared round by
    round in one process.

    The garbage collector stays on (collected, and what survives frozen, before each round,
    so that a round's collections scan only what the round made): a recording path makes
    garbage, and with the collector off that garbage piles up for the whole round, so the
    allocator, not the code, sets the time (a path that allocates more would look up to 1.5x
    slower than it is in a running service). Collections caused by a candidate's own
    allocations are part of its cost."""
    setups = setups + (None,) * (len(fns) - len(setups))
    best = [float("inf")] * len(fns)
    for rnd in range(repeat + 1):
        for i, fn in enumerate(fns):
            setup = setups[i]
            if setup is not None:
                setup()
            if rnd == 0:
                for _ in range(warmup):
                    fn()
                continue
            gc.collect()
            gc.freeze()  # what exists now is not rescanned by the round's collections
            try:
                best[i] = min(best[i], _loop(fn, number))
            finally:
                gc.unfreeze()
    return best


def row(
    group: str,
    name: str,
    seconds: float | None,
    anchor: str | None = None,
    anchor_seconds: float | None = None,
    goal: str | None = None,
    ok: bool | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    ratio = seconds / anchor_seconds if anchor_seconds and seconds is not None else None
    out: dict[str, Any] = {
        "group": group,
        "name": name,
        "per_call_us": round(seconds * 1e6, 3) if seconds is not None else None,
        "anchor": anchor,
        "anchor_us": round(anchor_seconds * 1e6, 3) if anchor_seconds else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "goal": goal,
        "met": ok,
    }
    if value is not None:
        out["value"] = value
    return out
