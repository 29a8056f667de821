"""Resilience success paths against their anchors, measured in one process, metrics on.

- @faultlens.retry, success on the first attempt   vs tenacity  (goal >= 10x cheaper)
                                                     vs stamina   (goal: cheaper)
- CircuitBreaker decorator, closed, success          vs pybreaker (goal <= 1.0x)

"Metrics on" means a real SDK MeterProvider with a reader (faultlens.testing.capture()), and
the reader is collected once per run to prove the local aggregates reach it. Informational
rows (no goal) show the other shapes: a deadline, `with breaker:`, the resilient() stack,
and one retried failure with sleeping switched off.

    .venv/bin/python benchmarks/bench_resilience.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import per_call, row


def run(quick: bool = False) -> list[dict[str, Any]]:
    import pybreaker
    import stamina
    import tenacity

    import faultlens
    from faultlens.resilience import CircuitBreaker, resilient, retry

    n = 20_000 if quick else 200_000
    rows: list[dict[str, Any]] = []

    def plain(x: int) -> int:
        return x + 1

    with faultlens.testing.capture() as cap:
        # -- retry ---------------------------------------------------------------------------
        ours = retry(attempts=3, wait_initial=0.1, wait_max=5.0, on=ConnectionError)(plain)
        ten = tenacity.retry(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=5.0),
            retry=tenacity.retry_if_exception_type(ConnectionError),
            reraise=True,
        )(plain)
        sta = stamina.retry(on=ConnectionError, attempts=3, wait_initial=0.1, wait_max=5.0)(plain)

        t_ours = per_call(lambda: ours(1), number=n)
        m = max(2_000, n // 10)  # the anchors are ~10x slower: fewer calls, same precision
        t_ten = per_call(lambda: ten(1), number=m)
        t_sta = per_call(lambda: sta(1), number=m)
        rows.append(
            row(
                "retry",
                "success, first attempt",
                t_ours,
                "tenacity",
                t_ten,
                ">= 10x cheaper (ratio <= 0.1)",
                t_ours * 10 <= t_ten,
            )
        )
        rows.append(
            row(
                "retry",
                "success, first attempt",
                t_ours,
                "stamina",
                t_sta,
                "cheaper (ratio < 1)",
                t_ours < t_sta,
            )
        )
        deadline = retry(attempts=3, timeout=30.0, on=ConnectionError)(plain)
        rows.append(
            row("retry", "success, with a deadline", per_call(lambda: deadline(1), number=n))
        )

        # -- breaker -------------------------------------------------------------------------
        breaker = CircuitBreaker("bench", failure_threshold=5, open_timeout=30.0)
        guarded = breaker(plain)
        pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(plain)
        t_br = per_call(lambda: guarded(1), number=n)
        t_pyb = per_call(lambda: pyb(1), number=n)
        rows.append(
            row(
                "breaker",
                "closed, success",
                t_br,
                "pybreaker",
                t_pyb,
                "<= 1.0x",
                t_br <= t_pyb,
            )
        )
        rate = CircuitBreaker("bench-rate", failure_rate_threshold=0.5, window_type="time")(plain)
        rows.append(
            row("breaker", "closed, success, time window", per_call(lambda: rate(1), number=n))
        )

        def with_block() -> int:
            with breaker:
                return plain(1)

        rows.append(
            row("breaker", "closed, success, `with breaker:`", per_call(with_block, number=n))
        )

        # -- composition and a retried failure ----------------------------------------------
        stack = resilient(
            retry={"attempts": 3},
            breaker=CircuitBreaker("bench-stack"),
            fallbacks=[lambda x: -1],
        )(plain)
        t_stack = per_call(lambda: stack(1), number=n)
        ten_pyb = tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)(
            pybreaker.CircuitBreaker(fail_max=5)(plain)
        )
        t_ten_pyb = per_call(lambda: ten_pyb(1), number=m)
        rows.append(
            row(
                "compose",
                "resilient(retry, breaker, fallbacks), success",
                t_stack,
                "tenacity(pybreaker) (no fallback)",
                t_ten_pyb,
            )
        )

        state = {"n": 0}

        def flaky() -> int:
            state["n"] += 1
            if state["n"] % 2:
                raise ConnectionError("transient")
            return 1

        ours_flaky = retry(attempts=3, on=ConnectionError)(flaky)
        ten_flaky = tenacity.retry(
            stop=tenacity.stop_after_attempt(3),
            retry=tenacity.retry_if_exception_type(ConnectionError),
            reraise=True,
        )(flaky)
        k = max(1_000, n // 50)
        with faultlens.testing.no_sleep():
            t_fl = per_call(ours_flaky, number=k)
        t_ten_fl = per_call(ten_flaky, number=k)
        rows.append(
            row(
                "retry",
                "one failure then success (no sleep; span event, counters, histogram)",
                t_fl,
                "tenacity (wait none)",
                t_ten_fl,
            )
        )

        # The local aggregates really reach the SDK reader.
        assert cap.counter("faultlens.retry.calls", outcome="success_first_attempt") > 0
        assert cap.counter("faultlens.circuit_breaker.calls", breaker="bench") > 0
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    headers = ("group", "name", "per call us", "anchor", "anchor us", "ratio", "goal", "met")
    keys = ("group", "name", "per_call_us", "anchor", "anchor_us", "ratio", "goal", "met")
    table = [headers] + [tuple("" if r[k] is None else str(r[k]) for k in keys) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    _print(run(quick="--quick" in sys.argv))
