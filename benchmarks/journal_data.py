"""A realistic week-long journal, generated once for the journal benchmarks and the scale tests.

The lines are what a busy service's faultlens writes: real exceptions raised through a few
layers of application code, classified and fingerprinted by faultlens, turned into journal
lines by the journal's own ``to_dict``/``encode`` (real stacks, context, resource snapshots),
plus the rate limiter's tallies (``tally_line``) and ``dropped`` lines, spread over several
processes' rotated files (``journal-<host>-<pid>-<n>.jsonl``, each file's mtime its newest
line, as the writer leaves it).

    write_journal(directory, records=200_000, days=7.0, now=time.time(), seed=7)

is deterministic for a given seed and ``now``.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from faultlens.capture import RecordedError
from faultlens.errors import ErrorInfo, classify
from faultlens.journal._files import file_name
from faultlens.journal._format import dropped_line, encode, tally_line, tally_region, to_dict

__all__ = ["JournalSpec", "write_journal"]

_STAGES = ("ingest", "validate", "score", "render", "upload", "notify", None)
_SERVICES = ("scorer", "renderer", "api")
_EXCEPTIONS: tuple[tuple[type[BaseException], str], ...] = (
    (FileNotFoundError, "[Errno 2] No such file or directory: '/data/jobs/{n}/result.json'"),
    (PermissionError, "[Errno 13] Permission denied: '/var/cache/scorer/{n}.lock'"),
    (TimeoutError, "timed out after {n}.0 s waiting for the registry"),
    (ConnectionError, "connection to 10.0.{n}.7:5432 refused"),
    (ValueError, "bad value {n} in column 'score' (expected 0..1)"),
    (KeyError, "'feature_{n}'"),
    (RuntimeError, "worker {n} exited unexpectedly"),
    (MemoryError, "cannot allocate {n} MiB for the frame buffer"),
    (ImportError, "cannot import name 'Model{n}' from 'scorer.models'"),
    (OSError, "[Errno 28] No space left on device: '/tmp/render-{n}'"),
)


def _layer(depth: int, exc: BaseException) -> None:
    if depth <= 0:
        raise exc
    _layer(depth - 1, exc)


def _raise_through(kind: int, exc: BaseException, depth: int) -> None:
    # A few distinct call sites, so that fingerprints differ by place as well as by type.
    if kind % 3 == 0:
        _load_job(exc, depth)
    elif kind % 3 == 1:
        _score_batch(exc, depth)
    else:
        _render_frames(exc, depth)


def _load_job(exc: BaseException, depth: int) -> None:
    _layer(depth, exc)


def _score_batch(exc: BaseException, depth: int) -> None:
    _layer(depth, exc)


def _render_frames(exc: BaseException, depth: int) -> None:
    _layer(depth, exc)


@dataclass(frozen=True)
class _Template:
    info: ErrorInfo
    exc_type: str
    message: str
    stack: str
    stage: str | None
    service: str


def _templates(rng: random.Random, count: int) -> list[_Template]:
    out: list[_Template] = []
    for i in range(count):
        cls, text = _EXCEPTIONS[i % len(_EXCEPTIONS)]
        exc = cls(text.format(n=i))
        try:
            _raise_through(i, exc, depth=4 + i % 12)
        except BaseException as caught:
            stack = "".join(traceback.format_exception(caught))
            info = classify(caught)
        # A distinct fingerprint per template (the real one depends on frames and message).
        info = ErrorInfo(
            code=info.code,
            category=str(info.category),
            severity=info.severity,
            retryable=info.retryable,
            hint=info.hint,
            fingerprint=f"{i:04x}" + info.fingerprint[4:],
            exception_type=f"{cls.__module__}.{cls.__qualname__}",
            message=str(exc),
            stage=_STAGES[i % len(_STAGES)],
        )
        out.append(
            _Template(
                info,
                info.exception_type,
                str(exc),
                stack,
                info.stage,
                _SERVICES[rng.randrange(len(_SERVICES))],
            )
        )
    return out


@dataclass(frozen=True)
class JournalSpec:
    directory: str
    files: int
    bytes: int
    records: int  # error lines
    tallies: int
    dropped_lines: int
    first_ts: float
    last_ts: float


def _record(t: _Template, ts: float, rng: random.Random, n: int, pid: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "exception.type": t.exc_type,
        "exception.message": t.message,
        "exception.stacktrace": t.stack,
        "faultlens.context.job_id": f"job-{n}",
        "faultlens.context.tenant": f"tenant-{n % 37}",
        "faultlens.context.video_hash": f"{rng.getrandbits(128):032x}",
        "faultlens.context.attempt": n % 4,
        "faultlens.resource.memory.rss": 180_000_000 + rng.randrange(50_000_000),
        "faultlens.resource.memory.percent": round(rng.uniform(1, 9), 2),
        "faultlens.resource.cpu.percent": round(rng.uniform(0, 100), 1),
        "faultlens.resource.threads": 8 + n % 5,
        "faultlens.resource.open_fds": 40 + n % 17,
        "faultlens.resource.system.memory.available": 8_000_000_000 + rng.randrange(10**9),
        "faultlens.resource.system.disk.free": 120_000_000_000,
    }
    rec = RecordedError(
        info=t.info,
        attributes=attrs,
        timestamp_ns=int(ts * 1e9),
        trace_id=f"{rng.getrandbits(128):032x}",
        span_id=f"{rng.getrandbits(64):016x}",
        span_name=f"{t.stage or 'job'}.run",
        service=t.service,
    )
    return to_dict(rec, pid=pid)


def write_journal(
    directory: str,
    *,
    records: int = 200_000,
    days: float = 7.0,
    now: float | None = None,
    seed: int = 7,
    fingerprints: int = 400,
    hosts: int = 2,
    pids_per_host: int = 3,
    max_bytes: int = 10 * 1024 * 1024,
) -> JournalSpec:
    """Write the journal into ``directory`` (created) and describe it."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    os.makedirs(directory, exist_ok=True)
    templates = _templates(rng, fingerprints)
    weights = [1.0 / (1 + i) ** 0.9 for i in range(len(templates))]  # a few dominate
    start = now - days * 86400.0
    span = days * 86400.0
    # error times: uniform over the window plus a burst in the last hour
    times = sorted(
        start + span * rng.random() if rng.random() > 0.03 else now - 3600.0 * rng.random()
        for _ in range(records)
    )
    writers = [
        (f"host{h}.example", 4000 + h * 100 + p) for h in range(hosts) for p in range(pids_per_host)
    ]
    state: dict[int, dict[str, Any]] = {}
    totals = {"files": 0, "bytes": 0, "tallies": 0, "dropped": 0}

    def out(w: int, line: bytes, ts: float) -> None:
        st = state.get(w)
        if st is None or st["size"] + len(line) > max_bytes:
            if st is not None:
                st["fh"].close()
                os.utime(st["path"], (st["last"], st["last"]))
            n = 0 if st is None else st["n"] + 1
            host, pid = writers[w]
            path = os.path.join(directory, file_name(host, pid, n))
            fh = open(path, "wb")  # noqa: SIM115 - one open file per writer, closed at rotation
            st = state[w] = {"fh": fh, "path": path, "n": n, "size": 0, "last": ts}
            totals["files"] += 1
        st["fh"].write(line)
        st["size"] += len(line)
        st["last"] = max(st["last"], ts)
        totals["bytes"] += len(line)

    for n, ts in enumerate(times):
        t = rng.choices(templates, weights)[0] if n % 8 else templates[n % len(templates)]
        w = rng.randrange(len(writers))
        # records from threads are a little out of order within a file, as in real life
        line = encode(_record(t, ts - rng.random() * 0.05, rng, n, writers[w][1]))
        out(w, line, ts)
        if n % 97 == 0:  # a storm summarised by the rate limiter
            count = 1 + rng.randrange(500)
            body, region_at = tally_line(
                fingerprint=t.info.fingerprint,
                code=t.info.code,
                category=str(t.info.category),
                severity=t.info.severity.value,
                stage=t.stage,
                service=t.service,
                exception_type=t.exc_type,
                message=t.message,
                first_ts=ts,
                count=count,
                pid=writers[w][1],
            )
            body = body[:region_at] + tally_region(count, ts + rng.random() * 5, False) + b"}\n"
            out(w, body, ts)
            totals["tallies"] += 1
        if n % 4999 == 0:
            line = encode(
                dropped_line("queue_full", 1 + n % 7, ts=ts, pid=writers[w][1], service=t.service)
            )
            out(w, line, ts)
            totals["dropped"] += 1
    for st in state.values():
        st["fh"].close()
        os.utime(st["path"], (st["last"], st["last"]))
    return JournalSpec(
        directory=directory,
        files=totals["files"],
        bytes=totals["bytes"],
        records=records,
        tallies=totals["tallies"],
        dropped_lines=totals["dropped"],
        first_ts=times[0] if times else now,
        last_ts=times[-1] if times else now,
    )


if __name__ == "__main__":  # python benchmarks/journal_data.py DIR [RECORDS]
    spec = write_journal(sys.argv[1], records=int(sys.argv[2]) if len(sys.argv) > 2 else 200_000)
    print(spec)
