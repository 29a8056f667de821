"""Which alerts the processes sharing a journal have notified: one crossing, one notification.

Every process that configures faultlens with alerting watches the same journal directory
(a parent and its pool workers under ``faultlens run``, the replicas of a service, the next
run of a batch job), so all of them find the same alerts firing. Before notifying, a monitor
takes an exclusive ``flock`` on ``<journal>/.faultlens-alerts.json`` and reads, per alert key:

- ``notified``: when it was last notified; ``last``: the time of the newest error that
  notification counted;
- ``seen``: the last time any monitor found it firing; ``cleared``: when a monitor that had
  read the whole journal found it no longer firing.

Then, for an alert firing at ``now`` whose newest counted error is at ``newest``:

- never notified, or cleared since, or unobserved for longer than its window (plus a
  grace of two intervals): a new crossing. It is notified, unless every error it counts
  was already counted by a notification (``newest <= last``): a later run over the same
  journal does not re-send the previous run's alert;
- otherwise it is the same crossing, still firing: notified again only every
  ``repeat_interval``, and only when errors newer than the last notification arrived.

The process that decides to notify records the decision before it releases the lock, so
exactly one process sends (if it dies before sending, that notification is lost, never
doubled). Where the file cannot be used (a read-only directory, no ``fcntl``), the monitor
de-duplicates within its own process and says so once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._alerts import Alert
from ._window import Firing

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STATE_FILE", "AlertLedger"]

_log = logging.getLogger("faultlens")

STATE_FILE = ".faultlens-alerts.json"
LOCK_WAIT = 1.0  # s at most to wait for another process's (microseconds-long) turn
FORGET_AFTER = 7 * 86400.0  # s: entries of alerts nobody saw for this long are dropped
_FIELDS = ("notified", "last", "seen", "window", "cleared")

State = dict[str, dict[str, float]]


def _clean(raw: Any) -> State:
    """The state as read from disk, with anything malformed dropped (a damaged file costs
    at most a repeated notification, never a crash)."""
    out: State = {}
    alerts = raw.get("alerts") if isinstance(raw, dict) else None
    if not isinstance(alerts, dict):
        return out
    for key, entry in alerts.items():
        if not isinstance(key, str) or not isinstance(entry, dict):
            continue
        e: dict[str, float] = {}
        for f in _FIELDS:
            v = entry.get(f)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                e[f] = float(v)
        if all(f in e for f in ("notified", "last", "seen", "window")):
            out[key] = e
    return out


def reconcile(
    state: State,
    firing: Sequence[Firing],
    *,
    now: float,
    repeat_interval: float,
    grace: float,
    judged: Callable[[str], bool],
    complete: bool,
) -> tuple[list[Alert], bool]:
    """Apply the rules of the module docstring to ``state`` (in place). Returns the alerts
    to notify and whether ``state`` changed. ``judged(key)`` says whether this monitor's
    rules cover ``key``; ``complete`` whether it has read the whole journal (only then may
    it declare an alert cleared)."""
    due: list[Alert] = []
    changed = False
    firing_keys: set[str] = set()
    for f in firing:
        key = f.alert.key
        firing_keys.add(key)
        e = state.get(key)
        if e is None:
            state[key] = {"notified": now, "last": f.newest, "seen": now, "window": f.alert.window}
            due.append(f.alert)
            changed = True
            continue
        ongoing = "cleared" not in e and now - e["seen"] <= e["window"] + grace
        if ongoing:
            notify = now - e["notified"] >= repeat_interval and f.newest > e["last"]
        else:
            notify = f.newest > e["last"]
        if notify:
            e["notified"] = now
            e["last"] = f.newest
            due.append(f.alert)
        e["seen"] = max(e["seen"], now)
        e["window"] = f.alert.window
        e.pop("cleared", None)
        changed = True
    if complete:
        for key, e in state.items():
            if key in firing_keys or "cleared" in e or not judged(key) or now < e["seen"]:
                continue
            e["cleared"] = now
            changed = True
    for key in [
        k for k, e in state.items() if max(e["seen"], e.get("cleared", 0)) < now - FORGET_AFTER
    ]:
        del state[key]
        changed = True
    return due, changed


class AlertLedger:
    """The notification state of one journal directory (``None``: this process only)."""

    def __init__(self, directory: str | None, *, repeat_interval: float, grace: float) -> None:
        self.path = os.path.join(directory, STATE_FILE) if directory else None
        self.repeat_interval = repeat_interval
        self.grace = grace
        self._memory: State = {}
        self._warned = False

    def claim(
        self,
        firing: Sequence[Firing],
        *,
        now: float,
        judged: Callable[[str], bool],
        complete: bool,
        timeout: float = LOCK_WAIT,
    ) -> list[Alert]:
        """The alerts of ``firing`` that this process must notify now; records them as
        notified for every process sharing the journal. Never raises."""
        if self.path is not None and fcntl is not None:
            if not firing and not os.path.exists(self.path):
                return []  # nothing fires and nothing was ever notified: nothing to record
            try:
                return self._claim_shared(self.path, firing, now, judged, complete, timeout)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self._fall_back(exc)
        return self._apply(self._memory, firing, now, judged, complete)[0]

    def _apply(
        self,
        state: State,
        firing: Sequence[Firing],
        now: float,
        judged: Callable[[str], bool],
        complete: bool,
    ) -> tuple[list[Alert], bool]:
        return reconcile(
            state,
            firing,
            now=now,
            repeat_interval=self.repeat_interval,
            grace=self.grace,
            judged=judged,
            complete=complete,
        )

    def _claim_shared(
        self,
        path: str,
        firing: Sequence[Firing],
        now: float,
        judged: Callable[[str], bool],
        complete: bool,
        timeout: float,
    ) -> list[Alert]:
        assert fcntl is not None
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        try:
            deadline = time.monotonic() + max(timeout, 0.0)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        # Another process holds it far longer than a claim takes: it is
                        # judging the same journal; this round is its to notify.
                        return []
                    time.sleep(0.005)
            state = _clean(_load(fd))
            due, changed = self._apply(state, firing, now, judged, complete)
            if changed:
                data = json.dumps({"v": 1, "alerts": state}, separators=(",", ":")).encode()
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            return due
        finally:
            os.close(fd)  # also releases the lock

    def _fall_back(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            _log.warning(
                "faultlens: cannot keep the shared alert state in %s (%s); alerts are "
                "de-duplicated within this process only",
                self.path,
                exc.strerror or exc,
            )


def _load(fd: int) -> Any:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        if offset > 16 << 20:  # not our file
            return None
    if not chunks:
        return None
    with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
        return json.loads(b"".join(chunks))
    return None
