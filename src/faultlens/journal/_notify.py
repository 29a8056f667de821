"""Notification channels for local alerts: ``log`` and ``webhook``.

A channel gets the alerts its ``severity_filter`` accepts. The webhook channel delivers in
its own background thread from a small bounded queue, retrying with exponential backoff
only what certainly did not arrive; whatever it cannot deliver is counted in
``faultlens.internal.dropped`` and logged once. No path from here raises into the
application or blocks it beyond the timeout it is given at close: an alert is a side
effect, and a dead webhook receiver must not turn into an outage of the service it
watches (nor into a slow exit).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import random
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .. import scrub
from ..capture import count_dropped, internal_error, shielded
from ._alerts import Alert
from ._format import hostname

if TYPE_CHECKING:
    from .._config import ChannelSettings

__all__ = [
    "Channel",
    "LogChannel",
    "Notifier",
    "WebhookChannel",
    "build_channels",
    "split_credentials",
]

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


class _Item:
    """One notification on its way: the body, and the idempotency key every attempt of it
    carries."""

    __slots__ = ("abandoned", "body", "key")

    def __init__(self, body: bytes, key: str) -> None:
        self.body = body
        self.key = key
        self.abandoned = False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that answers 3xx is misconfigured: following it would turn the POST into
    a GET without the alert (301-303) and carry the Authorization header to another host.
    The 3xx is reported as the failure it is."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def split_credentials(url: str) -> tuple[str, str | None]:
    """``(url without user:password@, Basic authorization header value or None)``."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return bare, f"Basic {token}"


class WebhookChannel:
    """POSTs a JSON document per notification, in the background, retried, bounded.

    Payload::

        {"source": "faultlens", "id": ..., "status": "firing", "service": ..., "host": ...,
         "alerts": [{"name", "severity", "summary", "labels", "value", "threshold",
                     "window", "at", "time"}, ...]}

    Delivery:

    - Credentials in the URL (``https://user:token@host/hook``) are sent as HTTP basic
      authorization, never as part of the host name, and never appear in a log line. An
      explicit ``Authorization`` header in ``headers`` takes precedence.
    - Every notification carries an ``Idempotency-Key`` header (also its ``id`` in the
      payload), the same on every attempt, so a receiver can discard a repeat.
    - Retries: up to ``attempts`` tries, ``backoff`` * 2**n seconds (jittered) apart, only
      when the alert certainly did not arrive (the connection was refused or could not be
      made, a DNS failure) or the receiver said so (408, 429, 5xx). A request that went out
      and got no answer in ``timeout`` seconds (or a dropped connection) may have been
      delivered: it is not retried, so a slow receiver never gets an alert twice. Other
      answers (4xx, 3xx: redirects are not followed) are final.
    - ``close(timeout)`` delivers what is queued within ``timeout`` seconds, shortening
      the attempts and backoffs to fit, then abandons the rest: abandoned and failed
      notifications are counted in ``faultlens.internal.dropped{reason="export_failed"}``
      and logged once.
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
        self.url, authorization = split_credentials(settings.url or "")
        self.service = service
        self.max_queue = max_queue
        self.attempts = max(attempts, 1)
        self.backoff = backoff
        self.delivered = 0
        self.failed = 0
        headers = {"Content-Type": "application/json", "User-Agent": "faultlens"}
        headers.update(dict(settings.headers))
        if authorization is not None and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = authorization
        self._headers = headers
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._queue: deque[_Item] = deque()
        self._cv = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._deadline: float | None = None  # monotonic; set by close()
        self._thread: threading.Thread | None = None
        self._current: _Item | None = None
        self._logged = False
        # Never log credentials: the URL is already without user:password, scrub the rest.
        self._safe_url = scrub.current().text(self.url)

    def send(self, alerts: Sequence[Alert], status: str = "firing") -> None:
        key = uuid.uuid4().hex
        try:
            body = json.dumps(
                {
                    "source": "faultlens",
                    "id": key,
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
            if self._stop.is_set():
                count_dropped("export_failed")
                return
            if len(self._queue) >= self.max_queue:
                count_dropped("queue_full")
                return
            self._queue.append(_Item(body, key))
            self._cv.notify()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._cv:
            if self._thread is not None:
                return
            t = threading.Thread(target=shielded(self._run), name="faultlens-webhook", daemon=True)
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
                item = self._queue.popleft()
                self._current = item
            try:
                self._deliver(item)
            except Exception as exc:
                internal_error("webhook delivery", exc)
            finally:
                with self._cv:
                    self._current = None
                    self._cv.notify_all()

    def _left(self) -> float | None:
        """Seconds left before close() gives up; None while not closing."""
        deadline = self._deadline
        return None if deadline is None else deadline - time.monotonic()

    def _deliver(self, item: _Item) -> None:
        headers = dict(self._headers)
        headers["Idempotency-Key"] = item.key
        last = ""
        tries = 0
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
                left = self._left()
                if left is not None and left < delay:
                    break  # closing: no time left to wait for this retry
                self._stop.wait(delay)  # close() cuts it short
            timeout = self.settings.timeout
            left = self._left()
            if left is not None:
                if left <= 0:
                    break
                timeout = min(timeout, left)
            tries += 1
            req = urllib.request.Request(self.url, data=item.body, headers=headers, method="POST")
            try:
                with self._opener.open(req, timeout=timeout) as resp:
                    self._delivered()  # a 2xx status line: the receiver has it
                    with contextlib.suppress(OSError, http.client.HTTPException):
                        resp.read(65536)
                    return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                with contextlib.suppress(Exception):
                    exc.close()
                if exc.code < 500 and exc.code not in (408, 429):
                    break  # the receiver said no: retrying will not change its mind
            except urllib.error.URLError as exc:
                # Raised before the request was sent (refused, unreachable, DNS, a connect
                # timeout): it certainly did not arrive, a retry is safe.
                last = f"{type(exc.reason).__name__}: {exc.reason}"
                if isinstance(exc.reason, ssl.SSLError):
                    break  # a certificate or TLS setup problem: the next try fails alike
            except (OSError, http.client.HTTPException) as exc:
                # The request went out and no (complete) answer came back: the receiver may
                # have it. Retrying could deliver it twice.
                last = (
                    f"no answer within {timeout:g}s ({type(exc).__name__}); not retried "
                    "because it may have been delivered"
                )
                break
            except ValueError as exc:  # a URL urllib cannot use
                last = f"{type(exc).__name__}: {exc}"
                break
        self._failed(item, last, tries)

    def _delivered(self) -> None:
        self.delivered += 1
        if self._logged:
            self._logged = False
            _log.warning("faultlens: webhook %s is reachable again", self._safe_url)

    def _failed(self, item: _Item, last: str, tries: int) -> None:
        with self._cv:
            if item.abandoned:  # close() counted it already
                return
            item.abandoned = True
        self.failed += 1
        count_dropped("export_failed")
        self._log_loss(
            f"could not deliver an alert ({scrub.current().text(last) or 'out of time'}) after "
            f"{tries} attempt{'' if tries == 1 else 's'}"
        )

    def _log_loss(self, what: str) -> None:
        if not self._logged:
            self._logged = True
            _log.warning(
                "faultlens: webhook %s: %s; counted in "
                "faultlens.internal.dropped{reason=export_failed}",
                self._safe_url,
                what,
            )

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is delivered (or given up on); True if it emptied in time."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._current is not None:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cv.wait(left)
        return True

    def begin_close(self, deadline: float) -> None:
        """From now on, fit every attempt and backoff before ``deadline`` (monotonic)."""
        with self._cv:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
            self._cv.notify_all()

    def close(self, timeout: float) -> None:
        """Deliver what is queued within ``timeout`` seconds, then stop: what is still
        queued or in flight is abandoned and counted. Never raises, never waits longer."""
        try:
            deadline = time.monotonic() + max(timeout, 0.0)
            self.begin_close(deadline)
            self.flush(max(deadline - time.monotonic(), 0.0))
            with self._cv:
                self._stop.set()
                lost = list(self._queue)
                self._queue.clear()
                if self._current is not None:
                    lost.append(self._current)
                lost = [i for i in lost if not i.abandoned]
                for i in lost:
                    i.abandoned = True
                self._cv.notify_all()
            if lost:
                self.failed += len(lost)
                count_dropped("export_failed", len(lost))
                self._log_loss(
                    f"gave up on {len(lost)} alert{'' if len(lost) == 1 else 's'} not "
                    f"delivered within {max(timeout, 0.0):.1f}s at shutdown"
                )
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(max(min(deadline - time.monotonic(), 0.05), 0.0))
        except Exception as exc:
            internal_error("webhook close", exc)

    def after_fork(self) -> None:
        self._queue = deque()
        self._cv = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._deadline = None
        self._thread = None
        self._current = None


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
        """Close every channel within ``timeout`` seconds in total: all of them are told
        the deadline first, so their deliveries proceed side by side. Never raises."""
        deadline = time.monotonic() + max(timeout, 0.0)
        for ch in self.channels:
            begin = getattr(ch, "begin_close", None)
            if begin is not None:
                with contextlib.suppress(Exception):
                    begin(deadline)
        for ch in self.channels:
            with contextlib.suppress(Exception):
                ch.close(max(deadline - time.monotonic(), 0.0))

    def after_fork(self) -> None:
        for ch in self.channels:
            hook = getattr(ch, "after_fork", None)
            if hook is not None:
                hook()
