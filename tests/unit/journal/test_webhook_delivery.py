"""Webhook delivery: credentials, one notification per alert, bounded at exit, clear config
errors. Every receiver here is a real socket on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import faultlens
from faultlens._config import ChannelSettings
from faultlens.capture import dropped_counts
from faultlens.errors import ConfigError, Severity
from faultlens.journal import Alert, Notifier, WebhookChannel
from faultlens.journal._reader import read_entries

SRC = str(Path(faultlens.__file__).resolve().parents[1])


def alert() -> Alert:
    return Alert("CriticalError", Severity.CRITICAL, "boom", 1, 0, 300, time.time(), {"code": "X"})


@dataclass
class Receiver:
    """An HTTP receiver that logs every request (headers and body) as it arrives, waits
    ``delay`` seconds, then answers the next of ``statuses`` (then 200)."""

    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    location: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rcv.requests.append((dict(self.headers), json.loads(body)))
            time.sleep(rcv.delay)
            status = rcv.statuses.pop(0) if rcv.statuses else 200
            self.send_response(status)
            if rcv.location:
                self.send_header("Location", rcv.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    rcv.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rcv
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hung() -> Iterator[str]:
    """A webhook that accepts connections (the kernel completes the handshake) and never
    answers: what a wedged receiver or a black-holing proxy looks like."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    finally:
        s.close()


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


# -- credentials in the URL ----------------------------------------------------------------------


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = receiver.url.replace("http://", "http://alerts:s3cr%40t@")
    ch = WebhookChannel(ChannelSettings(type="webhook", url=url), attempts=1)
    ch.send([alert()])
    assert ch.flush(10) and ch.delivered == 1
    headers, _ = receiver.requests[0]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alerts:s3cr@t").decode()
    assert headers["Host"] == receiver.url.split("/")[2], "the host is the host, not user:pass@"

    receiver.statuses = [503]
    with caplog.at_level(logging.DEBUG):
        ch.send([alert()])
        assert ch.flush(10) and ch.failed == 1
    assert caplog.records, "the failure is logged"
    assert "s3cr" not in caplog.text and "alerts:" not in caplog.text
    ch.close(1)


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.statuses = [307]
    receiver.location = "http://127.0.0.1:9/elsewhere"  # would carry the Authorization
    url = receiver.url.replace("http://", "http://u:p@")
    ch = WebhookChannel(ChannelSettings(type="webhook", url=url), attempts=3, backoff=0.01)
    ch.send([alert()])
    assert ch.flush(10)
    assert len(receiver.requests) == 1 and ch.failed == 1
    ch.close(1)


def test_a_tls_failure_is_not_retried(receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "https://")  # a plain-HTTP receiver: TLS fails
    ch = WebhookChannel(ChannelSettings(type="webhook", url=url), attempts=4, backoff=1.0)
    t0 = time.monotonic()
    ch.send([alert()])
    assert ch.flush(10)
    assert time.monotonic() - t0 < 1.0, "no backoff: the next try would fail alike"
    assert ch.failed == 1 and receiver.requests == []
    ch.close(1)


# -- one notification, one delivery -----------------------------------------------------------


def test_a_slow_receiver_gets_an_alert_once(receiver: Receiver) -> None:
    receiver.delay = 1.0  # it takes the alert, then answers after the client gave up
    ch = WebhookChannel(
        ChannelSettings(type="webhook", url=receiver.url, timeout=0.3), attempts=4, backoff=0.01
    )
    ch.send([alert()])
    assert ch.flush(10)
    time.sleep(1.0)  # a retry would have arrived by now
    assert len(receiver.requests) == 1
    assert ch.failed == 1 and dropped_counts().get("export_failed") == 1
    ch.close(1)


def test_every_attempt_of_a_notification_carries_the_same_idempotency_key(
    receiver: Receiver,
) -> None:
    receiver.statuses = [503, 500]
    ch = WebhookChannel(ChannelSettings(type="webhook", url=receiver.url), backoff=0.01)
    ch.send([alert()])
    ch.send([alert()])
    assert ch.flush(10) and ch.delivered == 2
    keys = [h["Idempotency-Key"] for h, _ in receiver.requests]
    assert len(keys) == 4 and keys[0] == keys[1] == keys[2] != keys[3]
    assert [body["id"] for _, body in receiver.requests] == keys
    ch.close(1)


# -- bounded at shutdown and at exit --------------------------------------------------------------


def test_close_abandons_a_hung_delivery_within_its_timeout_and_counts_it(hung: str) -> None:
    ch = WebhookChannel(ChannelSettings(type="webhook", url=hung, timeout=30))
    ch.send([alert()])
    ch.send([alert()])
    time.sleep(0.2)  # the first request is on the wire, waiting for an answer
    t0 = time.monotonic()
    ch.close(1.0)
    assert time.monotonic() - t0 < 1.3
    assert dropped_counts().get("export_failed") == 2, "in flight and queued, both counted"


def test_notifier_close_shares_one_deadline_among_channels(hung: str) -> None:
    settings = ChannelSettings(type="webhook", url=hung, timeout=30)
    channels = [WebhookChannel(settings), WebhookChannel(settings)]
    for ch in channels:
        ch.send([alert()])
    t0 = time.monotonic()
    Notifier(channels).close(1.0)
    assert time.monotonic() - t0 < 1.3
    assert dropped_counts().get("export_failed") == 2


EXIT = """
import atexit, sys, time
ended = []
# Registered before configure(): runs after faultlens's own exit handler.
atexit.register(lambda: print(f"exit took {time.monotonic() - ended[0]:.3f}", flush=True))
import faultlens
faultlens.configure(service_name="job", config_file=sys.argv[1])
try:
    raise MemoryError()
except MemoryError as exc:
    faultlens.record_error(exc)  # critical: notified at exit
ended.append(time.monotonic())
"""


def exit_config(tmp_path: Path, url: str) -> str:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text(
        f"""
error_handling:
  notifications:
    channels:
      - {{type: webhook, url: "{url}", timeout: 30}}
faultlens:
  journal: {{path: "{tmp_path / "journal"}"}}
"""
    )
    return str(cfg)


@pytest.mark.parametrize("kind", ["hung", "refused"])
def test_a_dead_webhook_adds_at_most_two_seconds_to_process_exit(
    tmp_path: Path, hung: str, kind: str
) -> None:
    url = hung if kind == "hung" else refused_url()
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", EXIT, exit_config(tmp_path, url)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    took = float(out.stdout.split("exit took ")[1])
    assert took < 2.5, f"exit took {took:.1f}s with a {kind} webhook"
    assert "could not deliver" in out.stderr or "gave up on" in out.stderr, out.stderr
    assert "export_failed" in out.stderr


def test_shutdown_with_a_hung_webhook_is_bounded_and_counts_the_loss(
    tmp_path: Path, hung: str
) -> None:
    faultlens.configure(service_name="svc", config_file=exit_config(tmp_path, hung))
    try:
        raise MemoryError()
    except MemoryError as exc:
        faultlens.record_error(exc)
    t0 = time.monotonic()
    faultlens.shutdown()  # the default timeout is 10 s; alerts get at most 2 of them
    assert time.monotonic() - t0 < 2.5
    assert dropped_counts().get("export_failed") == 1


def test_in_journal_only_mode_alerts_abandoned_at_exit_are_in_the_journal(
    tmp_path: Path, hung: str
) -> None:
    faultlens.configure(service_name="svc", config_file=exit_config(tmp_path, hung))
    try:
        raise MemoryError()
    except MemoryError as exc:
        faultlens.record_error(exc)
    faultlens.shutdown()
    entries = [e for e in read_entries(str(tmp_path / "journal")) if e["kind"] == "dropped"]
    assert [(e["reason"], e["count"]) for e in entries] == [("export_failed", 1)]


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ("{X-A: [1, 2]}", "header 'X-A': expected a string value, got list"),
        ("{X-Flag: true}", "header 'X-Flag': expected a string value, got bool"),
        ("{X-Version: 2}", "header 'X-Version': expected a string value, got int"),
        ('{"X Bad": v}', "header name 'X Bad' is not a valid HTTP header name"),
        ('{X-A: "a\\r\\nX-Injected: 1"}', "header 'X-A': a value must not contain line breaks"),
        ("[X-A]", "expected a mapping of header names to string values"),
    ],
)
def test_webhook_headers_that_are_not_strings_are_a_config_error(
    tmp_path: Path, headers: str, said: str
) -> None:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text(
        f"""
error_handling:
  notifications:
    channels:
      - {{type: log}}
      - {{type: webhook, url: "http://127.0.0.1:9099/hook", headers: {headers}}}
"""
    )
    with pytest.raises(ConfigError) as info:
        faultlens.configure(service_name="svc", config_file=str(cfg))
    assert info.value.key == "error_handling.notifications.channels[1].headers"
    assert said in str(info.value)
    assert str(cfg) in str(info.value)


def test_exporter_headers_follow_the_same_rule(tmp_path: Path) -> None:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text("faultlens:\n  exporter: {headers: {x-api-key: [1, 2]}}\n")
    with pytest.raises(ConfigError, match="header 'x-api-key': expected a string value"):
        faultlens.configure(service_name="svc", config_file=str(cfg))


@pytest.mark.parametrize("url", ["http://127.0.0.1:hook/x", "http://:9099/hook"])
def test_a_webhook_url_without_a_usable_host_or_port_is_a_config_error(
    tmp_path: Path, url: str
) -> None:
    cfg = tmp_path / "faultlens.yaml"
    channel = f'{{type: webhook, url: "{url}"}}'
    cfg.write_text(f"error_handling:\n  notifications:\n    channels:\n      - {channel}\n")
    with pytest.raises(ConfigError, match="not a usable URL") as info:
        faultlens.configure(service_name="svc", config_file=str(cfg))
    assert info.value.key == "error_handling.notifications.channels[0].url"
