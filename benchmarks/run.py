"""`make bench`: every benchmark group in its own process, one table of costs and ratios.

Each group measures its anchors (wrapt, raw OTel, tenacity, stamina, pybreaker, sentry-sdk)
in the same process as faultlens, so ratios compare like with like on whatever machine runs
them. Results also go to JSON (default benchmarks/results.json) for comparison across commits.

    python benchmarks/run.py [--quick] [--json PATH] [--only core,resilience]
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# group name -> module in benchmarks/ exposing run(quick: bool) -> list[dict]
GROUPS = {
    "core": "bench_core",
    "resilience": "bench_resilience",
    "storm": "bench_storm",
    "e2e": "bench_e2e",
    "journal": "bench_journal",  # stats/report over a week-long journal vs DuckDB
    "frameworks": "bench_frameworks",
    "import": "bench_import",  # fresh interpreters: import faultlens vs import sentry_sdk
    "startup": "bench_startup",  # faultlens run of a 200-module app vs opentelemetry-instrument
}


def _child(module: str, quick: bool, queue: Any) -> None:
    sys.path.insert(0, str(HERE))
    try:
        rows = importlib.import_module(module).run(quick=quick)
        queue.put(("ok", rows))
    except Exception as exc:  # report, don't crash the table
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def run_group(module: str, quick: bool) -> tuple[str, Any]:
    ctx = mp.get_context("spawn")  # a fresh interpreter per group: no shared warm caches
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(module, quick, queue))
    proc.start()
    try:
        status, payload = queue.get(timeout=900)
    except Exception:
        status, payload = "error", "timed out"
    proc.join(10)
    return status, payload


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = ("group", "name", "per call", "anchor", "anchor cost", "ratio", "goal", "met")
    lines = []
    for r in rows:
        per = r.get("per_call_us")
        anchor_us = r.get("anchor_us")
        lines.append(
            (
                r["group"],
                r["name"],
                (f"{per:.2f} us" if isinstance(per, (int, float)) else "")
                + (f" ({r['value']})" if r.get("value") else ""),
                r.get("anchor") or "",
                f"{anchor_us:.2f} us" if isinstance(anchor_us, (int, float)) else "",
                f"{r['ratio']:.3f}x" if r.get("ratio") is not None else "",
                r.get("goal") or "",
                {True: "yes", False: "NO", None: ""}[r.get("met")],
            )
        )
    widths = [max([len(h), *(len(str(row[i])) for row in lines)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke)")
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write JSON")
    parser.add_argument("--only", default="", help="comma-separated groups: " + ",".join(GROUPS))
    args = parser.parse_args(argv)
    wanted = [g for g in args.only.split(",") if g] or list(GROUPS)
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)}")
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for group in wanted:
        module = GROUPS[group]
        if not (HERE / f"{module}.py").exists():
            errors[group] = "not present"
            continue
        started = time.monotonic()
        status, payload = run_group(module, args.quick)
        print(f"[{group}] {status} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        if status == "ok":
            rows.extend(payload)
        else:
            errors[group] = payload
    print_table(rows)
    for group, err in errors.items():
        print(f"{group}: {err}")
    doc = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "rows": rows,
        "errors": errors,
    }
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print(f"results written to {args.json}")
    return 1 if any(e != "not present" for e in errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
