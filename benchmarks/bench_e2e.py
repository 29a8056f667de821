"""End to end to a real collector: errors per second sustained through the OTLP exporter with
nothing dropped, through the public path, against raw OTel doing the same work.

The workload, both sides: an application function raising a new exception, three frames deep,
N times, in chunks of 1,000 with a flush after each chunk (paced by the exporter, so the
figure is what is sustained end to end, not what a queue absorbs).

- faultlens: ``@faultlens.instrument`` (errors mode: span, count, classified ``exception``
  event, resources), ``configure(endpoint=..., rate_limit=0)``: its own BatchSpanProcessor
  and OTLP gRPC exporter, metrics exported too.
- anchor: a TracerProvider with BatchSpanProcessor + OTLP gRPC exporter, and for each error
  ``start_span`` + ``record_exception`` + ``set_status(ERROR)`` + ``end``.

Nothing may be dropped: faultlens's own drop counts stay at zero and the collector's
``otelcol_receiver_accepted_spans`` grows by at least N for each side.

Needs the bundled stack (`make stack-up`). The stack runs on fixed ports and is shared, so
this group holds the stack lock (``flock`` on /tmp/faultlens-stack.lock, or
$FAULTLENS_STACK_LOCK) only while it runs, unless it was started under ``flock`` on that
file already; without a collector, or when the collector stops answering or restarts
during the run, it reports a skipped (or invalid) row.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

ENDPOINT = os.environ.get("FAULTLENS_BENCH_ENDPOINT", "http://127.0.0.1:4317")
COLLECTOR_METRICS = os.environ.get(
    "FAULTLENS_BENCH_COLLECTOR_METRICS", "http://127.0.0.1:8888/metrics"
)
COLLECTOR_HEALTH = os.environ.get("FAULTLENS_BENCH_COLLECTOR_HEALTH", "http://127.0.0.1:13133/")
STACK_LOCK = os.environ.get("FAULTLENS_STACK_LOCK", "/tmp/faultlens-stack.lock")
CHUNK = 1000
BUDGET = 120.0  # seconds per side at most


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


def _up_since() -> str | None:
    """When the collector started (its health endpoint): a restart during the run (the
    stack is shared) makes the run's figures meaningless."""
    try:
        text = urllib.request.urlopen(COLLECTOR_HEALTH, timeout=5).read().decode()
    except OSError:
        return None
    match = re.search(r'"upSince"\s*:\s*"([^"]+)"', text)
    return match.group(1) if match else None


def _held_by_an_ancestor(path: str) -> bool:
    """Whether a process this one runs under has ``path`` open: the run was started as
    ``flock /tmp/faultlens-stack.lock <cmd>``, so the lock is ours already (taking it again
    through another open file would wait for ourselves). Linux /proc; False elsewhere."""
    target = os.path.realpath(path)
    pid = os.getppid()
    for _ in range(64):
        if pid <= 1:
            return False
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return True
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


@contextlib.contextmanager
def _stack_lock(timeout: float = 600.0) -> Iterator[bool]:
    """Hold the shared stack's lock (the one ``flock /tmp/faultlens-stack.lock`` takes),
    unless the run was started under that ``flock`` already."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock to share
        yield True
        return
    if _held_by_an_ancestor(STACK_LOCK):
        yield True
        return
    with open(STACK_LOCK, "a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.5)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _level3(i: int) -> None:
    raise ConnectionError(f"upstream {i} refused")


def _level2(i: int) -> None:
    _level3(i)


def fail(i: int) -> None:
    _level2(i)


class Stalled(Exception):
    """The collector stopped answering (the shared stack stopped, frozen or restarted)."""


def _drive(call: Callable[[int], None], n: int, flush: Callable[[int], Any]) -> float:
    """Run the workload; a flush that does not complete, or a run over ``BUDGET`` seconds,
    ends it at once (the stack lock must not be held for minutes of timeouts)."""
    start = time.perf_counter()
    for base in range(0, n, CHUNK):
        for i in range(base, base + CHUNK):
            call(i)
        left = BUDGET - (time.perf_counter() - start)
        if left <= 0 or flush(int(min(left, 10.0) * 1000)) is False:
            raise Stalled(f"a flush did not complete after {base + CHUNK:,} errors")
    return time.perf_counter() - start


def _raw(n: int) -> tuple[float, float | None]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    tp = TracerProvider(resource=Resource.create({"service.name": "bench-e2e-raw"}))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT, insecure=True)))
    tracer = tp.get_tracer("bench")

    def call(i: int) -> None:
        span = tracer.start_span("fail")
        try:
            fail(i)
        except ConnectionError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            span.end()

    before = _accepted_spans()
    try:
        elapsed = _drive(call, n, tp.force_flush)
    finally:
        tp.shutdown()
    time.sleep(1.0)
    after = _accepted_spans()
    return elapsed, (after - before) if after is not None and before is not None else None


def _faultlens(n: int) -> tuple[float, float | None, int]:
    from opentelemetry import trace

    import faultlens
    from faultlens.capture import dropped_counts

    faultlens.configure(service_name="bench-e2e", endpoint=ENDPOINT, journal=False, rate_limit=0)
    instrumented = faultlens.instrument(fail)

    def call(i: int) -> None:
        try:
            instrumented(i)
        except ConnectionError:
            pass

    dropped_before = sum(dropped_counts().values())
    before = _accepted_spans()
    provider: Any = trace.get_tracer_provider()
    try:
        elapsed = _drive(call, n, provider.force_flush)
    finally:
        faultlens.shutdown(timeout=10)
    time.sleep(1.0)
    after = _accepted_spans()
    dropped = sum(dropped_counts().values()) - dropped_before
    accepted = (after - before) if after is not None and before is not None else None
    return elapsed, accepted, dropped


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 5_000 if quick else 50_000
    name = f"{n:,} recorded errors into the real collector"
    if not _reachable(ENDPOINT):
        return [_skipped(name, f"no collector at {ENDPOINT} (make stack-up)")]
    with _stack_lock() as locked:
        if not locked:
            return [_skipped(name, f"{STACK_LOCK} held by someone else for too long")]
        started = _up_since()
        try:
            t_raw, accepted_raw = _raw(n)
            t_fl, accepted_fl, dropped = _faultlens(n)
        except Stalled as exc:
            return [_skipped(name, f"the collector stopped answering: {exc}")]
        restarted = started is None or _up_since() != started
    complete = all(a is None or a >= n for a in (accepted_raw, accepted_fl))
    value = f"{n / t_fl:,.0f} errors/s vs raw {n / t_raw:,.0f}/s, {dropped} dropped"
    if accepted_fl is not None and accepted_raw is not None:
        value += f", collector accepted {accepted_fl:,.0f} / raw {accepted_raw:,.0f}"
    if restarted:
        value += "; INVALID: the collector restarted during the run (shared stack)"
    return [
        {
            "group": "e2e",
            "name": name,
            "value": value,
            "per_call_us": round(t_fl / n * 1e6, 3),
            "anchor": "raw OTel span + record_exception, BatchSpanProcessor, OTLP",
            "anchor_us": round(t_raw / n * 1e6, 3),
            "ratio": round(t_fl / t_raw, 3),
            "goal": "<= 1.0x (errors/s >= raw), 0 dropped",
            "met": None if restarted else t_fl <= t_raw and dropped == 0 and complete,
        }
    ]


def _skipped(name: str, why: str) -> dict[str, Any]:
    return {
        "group": "e2e",
        "name": name,
        "value": f"skipped: {why}",
        "per_call_us": None,
        "anchor": None,
        "anchor_us": None,
        "ratio": None,
        "goal": "<= 1.0x (errors/s >= raw), 0 dropped",
        "met": None,
    }


if __name__ == "__main__":
    from pprint import pprint

    pprint(run(quick="--quick" in sys.argv))
