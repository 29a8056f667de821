"""A failing dependency behind breaker + retry + fallback, end to end through the in-memory
SDK: every outcome lands in the expected counter, and the breaker's state gauge follows
closed -> open -> half_open -> closed on an injected clock."""

from __future__ import annotations

import faultlens
from faultlens.resilience import CircuitBreaker, resilient


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def fetch(self, key: str) -> str:
        self.calls += 1
        if not self.up:
            raise ConnectionError(f"{key}: connection refused")
        return f"live:{key}"


def state(cap) -> str:
    (current,) = [
        p.attributes["state"]
        for p in cap.metric_points("faultlens.circuit_breaker.state")
        if p.attributes["breaker"] == "scores-db" and p.value == 1
    ]
    return current


def test_outage_and_recovery_produce_the_expected_counts_and_state_sequence():
    clock = Clock()
    dep = Dependency()
    with faultlens.testing.capture() as cap, faultlens.testing.no_sleep():
        breaker = CircuitBreaker("scores-db", failure_threshold=3, open_timeout=10, clock=clock)

        @resilient(
            retry={"attempts": 2, "wait_initial": 0.1, "operation": "load_scores"},
            breaker=breaker,
            fallbacks=[lambda key: f"cached:{key}"],
        )
        def load_scores(key: str) -> str:
            return dep.fetch(key)

        states = [state(cap)]
        # 1: both attempts fail -> exhausted -> fallback. Breaker: 2 failures.
        assert load_scores("a") == "cached:a"
        # 2: the first attempt is the 3rd consecutive failure and opens the breaker; the
        #    retry is rejected -> not retried -> fallback.
        assert load_scores("b") == "cached:b"
        states.append(state(cap))
        # 3: rejected at once, the dependency is not touched.
        assert load_scores("c") == "cached:c"
        assert dep.calls == 3
        clock.now += 10
        states.append(state(cap))
        dep.up = True
        # 4: the trial succeeds and closes the breaker.
        assert load_scores("d") == "live:d"
        states.append(state(cap))

        assert states == ["closed", "open", "half_open", "closed"]

        def count(name, **labels):
            return cap.counter(name, **labels)

        assert count("faultlens.retry.calls", operation="load_scores", outcome="exhausted") == 1
        assert count("faultlens.retry.calls", operation="load_scores", outcome="non_retryable") == 2
        assert (
            count("faultlens.retry.calls", operation="load_scores", outcome="success_first_attempt")
            == 1
        )
        assert count("faultlens.retry.calls", operation="load_scores") == 4
        assert count("faultlens.retry.attempts", **{"error.type": "ConnectionError"}) == 3
        assert count("faultlens.retry.attempts", **{"error.type": "EXE_CIRCUIT_OPEN"}) == 2

        assert count("faultlens.circuit_breaker.calls", breaker="scores-db", outcome="failure") == 3
        assert (
            count("faultlens.circuit_breaker.calls", breaker="scores-db", outcome="rejected") == 2
        )
        assert count("faultlens.circuit_breaker.calls", breaker="scores-db", outcome="success") == 1
        transitions = {
            (p.attributes["from"], p.attributes["to"]): p.value
            for p in cap.metric_points("faultlens.circuit_breaker.transitions")
        }
        assert transitions == {
            ("closed", "open"): 1,
            ("open", "half_open"): 1,
            ("half_open", "closed"): 1,
        }

        assert count("faultlens.recovery.actions", strategy="fallback", outcome="recovered") == 3
        assert count("faultlens.recovery.actions", outcome="failed") == 0
        # every failure of the dependency is recorded once: the one the fallback hid
        # (call 1's last attempt), the one retry swallowed (call 1's first attempt) and the
        # one that opened the breaker (call 2); the rejections count as EXE_CIRCUIT_OPEN
        assert count("faultlens.errors", code="NET_CONNECTION_FAILED") == 3
        assert count("faultlens.errors", code="EXE_CIRCUIT_OPEN") == 2
        (ratio,) = cap.metric_points("faultlens.circuit_breaker.failure_ratio")
        assert ratio.value == 0.0  # the window starts afresh when the breaker closes
