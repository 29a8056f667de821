"""Local alerting from the journal: the ``error_handling.monitoring`` thresholds of
faultlens.yaml, evaluated in-process and delivered on the notification channels.

For people with no Prometheus/Alertmanager. The rules are the ones the Prometheus rules
express, over the same totals (an error suppressed by the rate limiter counts, as it does
in ``faultlens.errors``), so one file defines alerting everywhere:

- ``ErrorFrequency``: more than ``count`` errors of ``category:CODE`` within ``window``
  seconds (one alert per configured threshold; its severity is the highest severity among
  the matching errors);
- ``ErrorAnomaly``: more than ``anomaly_threshold.frequency`` errors per hour overall;
- ``CriticalError``: a critical error within the last ``max(interval, 300)`` seconds, one
  alert per code.

How it behaves in a fleet and over time:

- The monitor reads the journal *directory* (every process's files), so a fleet of workers
  writing one journal is judged as one service. It reads incrementally (one offset per
  file, bounded chunks) and keeps counters in time buckets, never records: its memory does
  not grow with the number of errors (see ``_window``).
- One crossing, one notification, however many processes share the journal and however
  often the application restarts: the processes agree through a small state file in the
  journal directory (see ``_ledger``). A still-firing alert is notified again every
  ``repeat_interval`` while new errors keep it firing.
- The journal path is resolved once, at construction, like the writer's: changing the
  working directory later changes nothing.
- Nothing here runs on the application's threads except ``stop()`` at shutdown, which is
  bounded: at most ``STOP_BUDGET`` seconds (or the shutdown timeout, if shorter) for the
  last evaluation and the delivery of what it finds; what cannot be delivered in that time
  is counted in ``faultlens.internal.dropped{reason="export_failed"}``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..capture import internal_error, shielded
from ._alerts import Alert
from ._ledger import AlertLedger
from ._notify import Channel, Notifier, build_channels
from ._window import CRITICAL_WINDOW, AlertWindow, JournalFollower

if TYPE_CHECKING:
    from .._config import MonitoringSettings, NotificationSettings

__all__ = ["CRITICAL_WINDOW", "REPEAT_INTERVAL", "STOP_BUDGET", "LocalMonitor"]

REPEAT_INTERVAL = 3600.0  # s between repeated notifications of a still-firing alert
STOP_BUDGET = 2.0  # s at most that stop() (at shutdown and at exit) spends on alerts
CHECK_BUDGET = 10.0  # s of journal reading per check before the rest waits for the next


class LocalMonitor:
    """Evaluates the thresholds over the journal and notifies the channels.

    ``evaluate(records, now)`` is pure (what fires now over those records); ``check()``
    reads what the journal gained since the last check, evaluates, claims what this process
    must notify (see ``_ledger``) and notifies; ``start()`` runs ``check()`` in a daemon
    thread, once at once (catching up with the journal off the application's threads) and
    then every ``monitoring.interval`` seconds; ``stop(timeout)`` ends it, bounded.
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
        # Resolved now, once: the writer does the same, and an application that changes
        # its working directory must not lose its alerts.
        self.journal_path = os.path.abspath(journal_path) if journal_path is not None else None
        self.service = service
        self.repeat_interval = repeat_interval
        if channels is None:
            channels = build_channels(notifications.channels, service=service)
        self.notifier = Notifier(channels if notifications.enabled else [])
        self.window = AlertWindow(monitoring)
        self.history = self.window.history
        self.ledger = AlertLedger(
            self.journal_path,
            repeat_interval=repeat_interval,
            grace=max(2.0 * monitoring.interval, 5.0),
        )
        self._keys = self.window.keys()
        self._follower: JournalFollower | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the rules -------------------------------------------------------------------------

    def evaluate(
        self, records: Iterable[Mapping[str, Any]], now: float | None = None
    ) -> list[Alert]:
        """The alerts that fire at ``now`` over ``records`` (journal dicts). Pure: the
        monitor's own window and notification state are untouched."""
        now = time.time() if now is None else now
        window = AlertWindow(self.monitoring)
        window.extend(records)
        return [f.alert for f in window.firing(now)]

    def _judged(self, key: str) -> bool:
        return key in self._keys or key.startswith("CriticalError|")

    # -- the loop ---------------------------------------------------------------------------

    def check(self, now: float | None = None, *, timeout: float | None = None) -> list[Alert]:
        """Read new journal lines, evaluate, notify what newly fires; returns what this
        process notified. Waits at most ``timeout`` for a check already running (then
        returns nothing: that check does the work). Never raises."""
        try:
            deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
            if not self._check_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
                return []
            try:
                now = time.time() if now is None else now
                complete = True
                if self.journal_path is not None:
                    if self._follower is None:
                        self._follower = JournalFollower(
                            self.journal_path, since=now - self.history
                        )
                    budget = time.monotonic() + CHECK_BUDGET
                    until = budget if deadline is None else min(budget, deadline)
                    self._follower.poll(lambda r: self.window.add(r, now), until, now)
                    complete = self._follower.caught_up
                self.window.prune(now)
                firing = self.window.firing(now)
                left = 1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
                due = self.ledger.claim(
                    firing,
                    now=now,
                    judged=self._judged,
                    complete=complete,
                    timeout=min(left, 1.0),
                )
            finally:
                self._check_lock.release()
            if due:
                self.notifier.notify(due)
            return due
        except Exception as exc:
            internal_error("local monitor", exc)
            return []

    def start(self) -> None:
        if self._thread is not None:
            return
        t = threading.Thread(target=shielded(self._run), name="faultlens-monitor", daemon=True)
        self._thread = t
        try:
            t.start()
        except Exception as exc:
            internal_error("monitor start", exc)

    def _run(self) -> None:
        # A first check at once: catching up with an existing journal happens here, on the
        # monitor's thread, not in the application's shutdown.
        if not self._stop.is_set():
            self.check()
        while not self._stop.wait(self.monitoring.interval):
            self.check()

    def stop(self, timeout: float = STOP_BUDGET, *, final_check: bool = True) -> None:
        """Stop the loop; with ``final_check`` evaluate once more so that a short batch job
        that ends before the first interval still gets its alerts out, and give the
        channels what is left to deliver. All of it within ``min(timeout, STOP_BUDGET)``
        seconds; undelivered alerts are counted as dropped. Never raises."""
        try:
            deadline = time.monotonic() + max(min(timeout, STOP_BUDGET), 0.0)
            self._stop.set()
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(max(deadline - time.monotonic(), 0.0) / 2)
            if final_check:
                self.check(timeout=max(deadline - time.monotonic(), 0.0) / 2)
            self.notifier.close(max(deadline - time.monotonic(), 0.0))
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
