"""Notification channels for local alerts: ``log`` and ``webhook``.

A channel gets the alerts its ``severity_filter`` accepts. The webhook channel delivers in
its own background thread from a small bounded queue, retrying with exponential backoff;
whatever it cannot deliver is counted in ``faultlens.internal.dropped`` and logged once. No
path from here raises into the application or blocks it: an alert is a side effect, and a
dead webhook receiver must not turn into an outage of the service it watches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .. import scrub
from ..capture import count_dropped, internal_error
from ._alerts import Alert
from ._format import hostname

if TYPE_CHECKING:
    from .._config import ChannelSettings

__all__ = ["Channel", "LogChannel", "Notifier", "WebhookChannel", "build_channels"]

_log = logging.getLogger("faultlens")
alert_log = logging.getLogger("faultlens.alerts")


class Channel(Protocol):
    settings: ChannelSettings

    def send(self, alerts: Sequence[Alert], status: str = "firing") -> None: ...

    def close(self, timeout: float) -> None: ...


class LogChannel:
    """Logs each alert on the ``faultlens.alerts`` logger at the channel's level."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self.level = logging.getLevelName(settings.level.upper())
        if not isinstance(self.level, int):
            self.level = logging.ERROR

    def send(self, alerts: Sequence[Alert], status: str = "firing") -> None:
        for a in alerts:
            if status == "resolved":
                alert_log.info("faultlens alert resolved: %s", a.summary)
            else:
                alert_log.log(self.level, "faultlens alert [%s] %s", a.severity.value, a.summary)

    def close(self, timeout: float) -> None:
        return None


class WebhookChannel:
    """POSTs a JSON document per notification, in the background, retried, bounded.

    Payload::

        {"source": "faultlens", "status": "firing", "service": ..., "host": ...,
         "alerts": [{"name", "severity", "summary", "labels", "value", "threshold",
                     "window", "at", "time"}, ...]}

    Retries: ``attempts`` tries with ``backoff`` * 2**n seconds (jittered) between them, on
    connection errors, timeouts, 429 and 5xx; other 4xx answers are final (the receiver said
    no; retrying will not change its mind).
    """

    def __init__(
        self,
        settings: ChannelSettings,
        *,
        service: str | None = None,
        max_queue: int = 100,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.settings = settings
        self.url = settings.url or ""
        self.service = service
        self.max_queue = max_queue
        self.attempts = max(attempts, 1)
        self.backoff = backoff
        self.delivered = 0
        self.failed = 0
        self._queue: deque[bytes] = deque()
        self._cv = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._logged = False
        # A URL may carry credentials (https://user:token@host): never log them.
        self._safe_url = scrub.current().text(self.url)

    def send(self, alerts: Sequence[Alert], status: str = "firing") -> None:
        try:
            body = json.dumps(
                {
                    "source": "faultlens",
                    "status": status,
                    "service": self.service,
                    "host": hostname(),
                    "alerts": [a.to_dict() for a in alerts],
                },
                default=str,
            ).encode("utf-8")
        except Exception as exc:
            internal_error("webhook payload", exc)
            return
        with self._cv:
            if self._stop.is_set() or len(self._queue) >= self.max_queue:
                count_dropped("queue_full")
                return
            self._queue.append(body)
            self._cv.notify()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._cv:
            if self._thread is not None:
                return
            t = threading.Thread(target=self._run, name="faultlens-webhook", daemon=True)
            self._thread = t
        try:
            t.start()
        except Exception as exc:  # interpreter shutting down
            internal_error("webhook thread start", exc)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop.is_set():
                    self._cv.wait()
                if not self._queue:
                    return
                body = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(body)
            except Exception as exc:
                internal_error("webhook delivery", exc)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _deliver(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "faultlens"}
        headers.update(dict(self.settings.headers))
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
                if self._stop.wait(delay):  # closing, and the flush time is used up
                    break
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.settings.timeout) as resp:
                    resp.read(65536)
                    if 200 <= resp.status < 300:
                        self.delivered += 1
                        if self._logged:
                            self._logged = False
                            _log.warning("faultlens: webhook %s is reachable again", self._safe_url)
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break
            except (OSError, ValueError) as exc:  # refused, timeout, DNS, bad URL
                last = f"{type(exc).__name__}: {exc}"
        self.failed += 1
        count_dropped("export_failed")
        if not self._logged:
            self._logged = True
            _log.warning(
                "faultlens: could not deliver an alert to webhook %s (%s) after %d attempt%s; "
                "counted in faultlens.internal.dropped{reason=export_failed}",
                self._safe_url,
                scrub.current().text(last),
                self.attempts,
                "" if self.attempts == 1 else "s",
            )

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is delivered (or given up on); True if it emptied in time."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cv.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Deliver what is queued within ``timeout``, then stop; the rest is counted."""
        try:
            self.flush(timeout)
            with self._cv:
                self._stop.set()
                lost = len(self._queue)
                self._queue.clear()
                self._cv.notify_all()
            if lost:
                count_dropped("export_failed", lost)
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(0.5)
        except Exception as exc:
            internal_error("webhook close", exc)

    def after_fork(self) -> None:
        self._queue = deque()
        self._cv = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._thread = None
        self._busy = False


def build_channels(
    channels: Sequence[ChannelSettings], *, service: str | None = None
) -> list[Channel]:
    out: list[Channel] = []
    for ch in channels:
        if ch.type == "log":
            out.append(LogChannel(ch))
        elif ch.type == "webhook" and ch.url:
            out.append(WebhookChannel(ch, service=service))
    return out


class Notifier:
    """Fans alerts out to the channels whose severity filter accepts them."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)

    def notify(self, alerts: Sequence[Alert], status: str = "firing") -> int:
        """Hand ``alerts`` to each channel (filtered); returns how many channels got some."""
        sent = 0
        for ch in self.channels:
            accepted = [a for a in alerts if ch.settings.accepts(a.severity)]
            if not accepted:
                continue
            try:
                ch.send(accepted, status)
                sent += 1
            except Exception as exc:
                internal_error(f"notification channel {ch.settings.type}", exc)
        return sent

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for ch in self.channels:
            with contextlib.suppress(Exception):
                ch.close(max(deadline - time.monotonic(), 0.05))

    def after_fork(self) -> None:
        for ch in self.channels:
            hook = getattr(ch, "after_fork", None)
            if hook is not None:
                hook()
