"""What `import faultlens` costs a process, against `import sentry_sdk` (goal <= 0.8x).

Each sample is a fresh interpreter running ``python -c "import X"`` and timing the import
itself (interpreter start-up is the same for both and left out). Samples of faultlens and
sentry-sdk alternate, so both see the same machine load; the median of each is compared.
An informational row shows the first use of the decorator (``faultlens.instrument``),
which imports the capture layer; another lists what a bare import left out.

    .venv/bin/python benchmarks/bench_import.py [--quick]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import row

# Timed in the child: the import statement only.
_PROBE = """
import sys, time, json
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
print(json.dumps({{"s": dt, "modules": sorted(sys.modules)}}))
"""

# Must not be imported by a bare `import faultlens`.
HEAVY = ("pytest", "opentelemetry.sdk", "opentelemetry.exporter", "psutil", "yaml", "grpc")


def sample(stmt: str) -> tuple[float, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(stmt=stmt)],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return float(doc["s"]), list(doc["modules"])


def medians(stmts: list[str], runs: int) -> list[float]:
    for stmt in stmts:  # warm the bytecode caches
        sample(stmt)
    times: list[list[float]] = [[] for _ in stmts]
    for _ in range(runs):
        for i, stmt in enumerate(stmts):  # interleaved: the same load for every statement
            times[i].append(sample(stmt)[0])
    return [statistics.median(t) for t in times]


def run(quick: bool = False) -> list[dict[str, Any]]:
    runs = 7 if quick else 21
    ours, first_use, anchor = medians(
        ["import faultlens", "import faultlens; faultlens.instrument", "import sentry_sdk"], runs
    )
    ratio = ours / anchor
    rows = [
        row(
            "import",
            "import faultlens",
            ours,
            "sentry_sdk",
            anchor,
            goal="<= 0.8x",
            ok=ratio <= 0.8,
        ),
        row("import", "import faultlens + faultlens.instrument", first_use, "sentry_sdk", anchor),
    ]
    _, modules = sample("import faultlens")
    loaded = [h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)]
    rows.append(
        row(
            "import",
            "heavy modules after `import faultlens`",
            None,
            value=", ".join(loaded) if loaded else f"none of {', '.join(HEAVY)}",
            ok=not loaded,
        )
    )
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
