"""Timing helpers shared by the benchmark groups: best-of-N loops, ratios against anchors.

Ratios, not absolute times, are what we compare across machines and commits: each group
measures its anchors (raw OTel, wrapt, tenacity, ...) in the same process and run.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def per_call(fn: Callable[[], Any], *, number: int, repeat: int = 5, warmup: int = 200) -> float:
    """Best per-call time in seconds over ``repeat`` runs of ``number`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def row(
    group: str,
    name: str,
    seconds: float,
    anchor: str | None = None,
    anchor_seconds: float | None = None,
    goal: str | None = None,
    ok: bool | None = None,
) -> dict[str, Any]:
    ratio = seconds / anchor_seconds if anchor_seconds else None
    return {
        "group": group,
        "name": name,
        "per_call_us": round(seconds * 1e6, 3),
        "anchor": anchor,
        "anchor_us": round(anchor_seconds * 1e6, 3) if anchor_seconds else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "goal": goal,
        "met": ok,
    }
