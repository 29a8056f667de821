"""End to end to a real collector: classified errors per second sustained through the OTLP
exporter, with nothing dropped. Needs the bundled stack (`make stack-up`)."""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from typing import Any

ENDPOINT = os.environ.get("FAULTLENS_BENCH_ENDPOINT", "http://127.0.0.1:4317")
COLLECTOR_METRICS = os.environ.get(
    "FAULTLENS_BENCH_COLLECTOR_METRICS", "http://127.0.0.1:8888/metrics"
)


def _reachable(url: str) -> bool:
    host, port = url.split("//", 1)[1].split(":")
    try:
        with socket.create_connection((host, int(port.split("/")[0])), timeout=1):
            return True
    except OSError:
        return False


def _accepted_spans() -> float | None:
    try:
        text = urllib.request.urlopen(COLLECTOR_METRICS, timeout=5).read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_receiver_accepted_spans"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(quick: bool = False) -> list[dict[str, Any]]:
    if not _reachable(ENDPOINT):
        raise RuntimeError(f"no collector at {ENDPOINT}; start it with `make stack-up`")
    import faultlens
    from faultlens.capture import dropped_counts

    n = 5_000 if quick else 50_000
    faultlens.configure(service_name="bench-e2e", endpoint=ENDPOINT, journal=False, rate_limit=0)
    # Large enough that a burst fits the exporter queue: we measure throughput, not overflow.
    from opentelemetry import trace

    @faultlens.instrument
    def fail(i: int) -> None:
        raise ConnectionError(f"upstream {i} refused")

    before = _accepted_spans()
    start = time.perf_counter()
    chunk = 1000
    for base in range(0, n, chunk):
        for i in range(base, base + chunk):
            try:
                fail(i)
            except ConnectionError:
                pass
        # Pace by the exporter: flushing per chunk keeps the queue from overflowing, so the
        # figure is what is sustained end to end, not what a queue absorbs.
        trace.get_tracer_provider().force_flush(30_000)  # type: ignore[attr-defined]
    faultlens.shutdown(timeout=30)
    elapsed = time.perf_counter() - start
    time.sleep(1.0)
    after = _accepted_spans()
    dropped = sum(dropped_counts().values())
    accepted = (after - before) if (after is not None and before is not None) else None
    rate = n / elapsed
    return [
        {
            "group": "e2e",
            "name": f"{n:,} classified errors to a real collector",
            "value": f"{rate:,.0f} errors/s, {dropped} dropped, collector accepted {accepted:,.0f}"
            if accepted is not None
            else f"{rate:,.0f} errors/s",
            "per_call_us": round(elapsed / n * 1e6, 3),
            "anchor": None,
            "anchor_us": None,
            "ratio": None,
            "goal": "nothing dropped",
            "met": dropped == 0 and (accepted is None or accepted >= n),
        }
    ]


if __name__ == "__main__":
    from pprint import pprint

    pprint(run(quick="--quick" in sys.argv))
