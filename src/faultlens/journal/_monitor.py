"""Local alerting from the journal: the ``error_handling.monitoring`` thresholds of
faultlens.yaml, evaluated in-process and delivered on the notification channels.

For people with no Prometheus/Alertmanager. The rules are the ones the Prometheus rules
express, so one file defines alerting everywhere:

- ``ErrorFrequency``: more than ``count`` errors of ``category:CODE`` within ``window``
  seconds (one alert per configured threshold; its severity is the highest severity among
  the matching errors);
- ``ErrorAnomaly``: more than ``anomaly_threshold.frequency`` errors per hour overall;
- ``CriticalError``: a critical error within the last ``max(interval, 300)`` seconds, one
  alert per code.

The monitor reads the journal *directory* (every process's files, incrementally), so a
fleet of workers writing one journal is judged as one service. A firing alert is notified
when it starts and again every ``repeat_interval`` while it keeps firing; channels get only
the severities they accept.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..capture import internal_error
from ..errors import Severity
from ._alerts import Alert
from ._notify import Channel, Notifier, build_channels
from ._reader import JournalTail

if TYPE_CHECKING:
    from .._config import MonitoringSettings, NotificationSettings

__all__ = ["LocalMonitor"]

REPEAT_INTERVAL = 3600.0  # s between repeated notifications of a still-firing alert
CRITICAL_WINDOW = 300.0  # s a critical error keeps CriticalError firing (at least interval)


def _severity(value: Any) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError:
        return Severity.MEDIUM


def _most_severe(records: Iterable[Mapping[str, Any]]) -> Severity:
    return min((_severity(r.get("severity")) for r in records), key=lambda s: s.rank)


class LocalMonitor:
    """Evaluates the thresholds over journal records and notifies the channels.

    ``evaluate(records, now)`` is pure (what fires now); ``check()`` reads what the journal
    gained since the last check, evaluates, de-duplicates and notifies; ``start()`` runs
    ``check()`` every ``monitoring.interval`` seconds in a daemon thread.
    """

    def __init__(
        self,
        monitoring: MonitoringSettings,
        notifications: NotificationSettings,
        *,
        journal_path: str | None = None,
        service: str | None = None,
        channels: Sequence[Channel] | None = None,
        repeat_interval: float = REPEAT_INTERVAL,
    ) -> None:
        self.monitoring = monitoring
        self.notifications = notifications
        self.journal_path = journal_path
        self.service = service
        self.repeat_interval = repeat_interval
        if channels is None:
            channels = build_channels(notifications.channels, service=service)
        self.notifier = Notifier(channels if notifications.enabled else [])
        self.history = max(
            [monitoring.analysis_window, 3600.0 if monitoring.anomaly_frequency else 0.0]
            + [t.window for t in monitoring.alert_thresholds.error_frequency]
        )
        self._records: deque[Mapping[str, Any]] = deque()
        self._tail: JournalTail | None = None
        self._firing: dict[str, float] = {}  # alert key -> when it was last notified
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the rules -------------------------------------------------------------------------

    def evaluate(
        self, records: Iterable[Mapping[str, Any]], now: float | None = None
    ) -> list[Alert]:
        """The alerts that fire at ``now`` over ``records`` (journal dicts). Pure."""
        now = time.time() if now is None else now
        recs = [r for r in records if isinstance(r.get("ts"), (int, float))]
        alerts: list[Alert] = []
        for t in self.monitoring.alert_thresholds.error_frequency:
            hits = [
                r
                for r in recs
                if r.get("code") == t.code
                and r.get("category") == t.category
                and now - t.window <= float(r["ts"]) <= now
            ]
            if len(hits) > t.count:
                alerts.append(
                    Alert(
                        name="ErrorFrequency",
                        severity=_most_severe(hits),
                        summary=(
                            f"{len(hits)} {t.code} errors ({t.category}) in the last "
                            f"{t.window:g}s (threshold {t.count})"
                        ),
                        value=len(hits),
                        threshold=t.count,
                        window=t.window,
                        at=now,
                        labels={"code": t.code, "category": t.category},
                    )
                )
        freq = self.monitoring.anomaly_frequency
        if freq:
            window = min(self.monitoring.analysis_window, 3600.0)
            n = sum(1 for r in recs if now - window <= float(r["ts"]) <= now)
            per_hour = n * 3600.0 / window
            if per_hour > freq:
                alerts.append(
                    Alert(
                        name="ErrorAnomaly",
                        severity=Severity.HIGH,
                        summary=(
                            f"{per_hour:.0f} errors/hour over the last {window:g}s "
                            f"(anomaly threshold {freq:g}/hour)"
                        ),
                        value=round(per_hour, 3),
                        threshold=freq,
                        window=window,
                        at=now,
                    )
                )
        since = now - max(self.monitoring.interval, CRITICAL_WINDOW)
        critical: dict[str, list[Mapping[str, Any]]] = {}
        for r in recs:
            if r.get("severity") == "critical" and since < float(r["ts"]) <= now:
                critical.setdefault(str(r.get("code")), []).append(r)
        for code, hits in sorted(critical.items()):
            sample = hits[-1]
            msg = str(sample.get("message") or "")[:200]
            alerts.append(
                Alert(
                    name="CriticalError",
                    severity=Severity.CRITICAL,
                    summary=f"{len(hits)} critical {code} error{'s' if len(hits) != 1 else ''}"
                    + (f": {msg}" if msg else ""),
                    value=len(hits),
                    threshold=0,
                    window=now - since,
                    at=now,
                    labels={"code": code, "category": str(sample.get("category"))},
                )
            )
        return alerts

    # -- the loop ---------------------------------------------------------------------------

    def feed(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add records to the monitor's window (``check()`` also reads the journal)."""
        self._records.extend(records)

    def check(self, now: float | None = None) -> list[Alert]:
        """Read new journal lines, evaluate, notify what newly fires. Never raises."""
        try:
            with self._check_lock:
                now = time.time() if now is None else now
                if self.journal_path is not None:
                    if self._tail is None:
                        self._tail = JournalTail(self.journal_path, since=now - self.history)
                    self._records.extend(self._tail.poll())
                horizon = now - self.history
                if any(float(r["ts"]) < horizon for r in self._records):
                    self._records = deque(r for r in self._records if float(r["ts"]) >= horizon)
                firing = self.evaluate(self._records, now)
                due = [
                    a
                    for a in firing
                    if now - self._firing.get(a.key, -1e18) >= self.repeat_interval
                ]
                current = {a.key for a in firing}
                for key in [k for k in self._firing if k not in current]:
                    del self._firing[key]
                for a in due:
                    self._firing[a.key] = now
            if due:
                self.notifier.notify(due)
            return due
        except Exception as exc:
            internal_error("local monitor", exc)
            return []

    def start(self) -> None:
        if self._thread is not None:
            return
        t = threading.Thread(target=self._run, name="faultlens-monitor", daemon=True)
        self._thread = t
        try:
            t.start()
        except Exception as exc:
            internal_error("monitor start", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.monitoring.interval):
            self.check()

    def stop(self, timeout: float = 5.0, *, final_check: bool = True) -> None:
        """Stop the loop; with ``final_check`` evaluate once more so that a short batch job
        that ends before the first interval still gets its alerts out. Never raises."""
        try:
            self._stop.set()
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(min(timeout, 2.0))
            if final_check:
                self.check()
            self.notifier.close(timeout)
        except Exception as exc:
            internal_error("monitor stop", exc)

    def after_fork(self) -> None:
        """A forked child leaves monitoring to its parent (one monitor per journal owner)."""
        self._stop = threading.Event()
        self._stop.set()
        self._thread = None
        self._check_lock = threading.Lock()
        with contextlib.suppress(Exception):
            self.notifier.after_fork()
