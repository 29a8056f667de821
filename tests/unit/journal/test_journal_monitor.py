"""Local alerts: faultlens.yaml thresholds fire on the log and webhook channels.

The webhook receiver is a real HTTP server on 127.0.0.1 owned by the test (conftest).
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

import faultlens
from faultlens._config import (
    AlertThresholds,
    ChannelSettings,
    FrequencyThreshold,
    MonitoringSettings,
    NotificationSettings,
)
from faultlens.capture import dropped_counts
from faultlens.errors import Severity
from faultlens.journal import Alert, LocalMonitor, Notifier, WebhookChannel
from unit.journal.conftest import Webhook
from unit.journal.journal_helpers import record, running_journal

NOW = 1_700_000_000.0


def rec(ts: float, code: str, category: str, severity: str = "medium") -> dict[str, object]:
    return {"ts": ts, "code": code, "category": category, "severity": severity, "message": "m"}


def monitor(*thresholds: FrequencyThreshold, anomaly: float | None = None) -> LocalMonitor:
    return LocalMonitor(
        MonitoringSettings(
            alert_thresholds=AlertThresholds(tuple(thresholds)), anomaly_frequency=anomaly
        ),
        NotificationSettings(channels=()),
    )


def test_a_frequency_threshold_fires_on_more_than_count_within_the_window() -> None:
    m = monitor(FrequencyThreshold("network", "NET_CONNECTION_FAILED", window=60, count=3))
    three = [rec(NOW - i, "NET_CONNECTION_FAILED", "network", "high") for i in range(3)]
    assert m.evaluate(three, NOW) == [], "exactly `count` is not more than `count`"

    four = [*three, rec(NOW - 30, "NET_CONNECTION_FAILED", "network", "critical")]
    [alert] = [a for a in m.evaluate(four, NOW) if a.name == "ErrorFrequency"]
    assert alert.labels == {"code": "NET_CONNECTION_FAILED", "category": "network"}
    assert alert.value == 4 and alert.threshold == 3 and alert.window == 60
    assert alert.severity is Severity.CRITICAL, "the most severe matching error"

    old = [*three, rec(NOW - 61, "NET_CONNECTION_FAILED", "network")]
    assert m.evaluate(old, NOW) == [], "outside the window"
    other_cat = [*three, rec(NOW, "NET_CONNECTION_FAILED", "system")]
    assert m.evaluate(other_cat, NOW) == [], "category:CODE must both match"


def test_the_anomaly_threshold_is_errors_per_hour() -> None:
    m = monitor(anomaly=100)
    hundred = [rec(NOW - i * 30, "X", "system") for i in range(100)]
    assert m.evaluate(hundred, NOW) == []
    [alert] = m.evaluate([*hundred, rec(NOW, "X", "system")], NOW)
    assert (alert.name, alert.value, alert.severity) == ("ErrorAnomaly", 101.0, Severity.HIGH)


def test_a_recent_critical_error_always_alerts_once_per_code() -> None:
    m = monitor()
    records = [
        rec(NOW - 10, "RES_INSUFFICIENT_MEMORY", "resource", "critical"),
        rec(NOW - 20, "RES_INSUFFICIENT_MEMORY", "resource", "critical"),
        rec(NOW - 3600, "DB_DOWN", "network", "critical"),  # long ago: not firing
    ]
    [alert] = m.evaluate(records, NOW)
    assert alert.name == "CriticalError" and alert.value == 2
    assert alert.labels["code"] == "RES_INSUFFICIENT_MEMORY"


def write_config(tmp_path: Path, journal_dir: Path, webhook_url: str, interval: float = 60) -> str:
    cfg = tmp_path / "faultlens.yaml"
    cfg.write_text(
        f"""
error_handling:
  monitoring:
    interval: {interval}
    alert_thresholds:
      error_frequency:
        "network:NET_CONNECTION_FAILED": {{window: 300, count: 2}}
        "validation:VAL_INVALID_VALUE": {{window: 300, count: 2}}
  notifications:
    channels:
      - {{type: log, level: WARNING}}
      - {{type: webhook, url: "{webhook_url}", severity_filter: [CRITICAL, HIGH],
          headers: {{X-Team: scoring}}}}
faultlens:
  journal: {{path: "{journal_dir}"}}
"""
    )
    return str(cfg)


def test_thresholds_from_faultlens_yaml_notify_webhook_and_log_with_the_severity_filter(
    tmp_path: Path, journal_dir: Path, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    faultlens.configure(
        service_name="scorer", config_file=write_config(tmp_path, journal_dir, webhook.url)
    )
    for i in range(3):
        record(ConnectionError(f"registry refused {i}"))  # high
        record(ValueError(f"bad score {i}"))  # medium
    journal = running_journal()
    assert journal.monitor is not None
    journal.flush()
    with caplog.at_level(logging.WARNING, logger="faultlens.alerts"):
        fired = journal.monitor.check()
    assert {a.labels["code"] for a in fired} == {"NET_CONNECTION_FAILED", "VAL_INVALID_VALUE"}

    # The log channel (no filter) logged both ...
    logged = [r.getMessage() for r in caplog.records if r.name == "faultlens.alerts"]
    assert len(logged) == 2 and all(r.levelno == logging.WARNING for r in caplog.records)
    # ... the webhook (CRITICAL, HIGH) got only the high one.
    [post] = webhook.wait(1)
    assert post["source"] == "faultlens" and post["status"] == "firing"
    assert post["service"] == "scorer"
    assert [a["labels"]["code"] for a in post["alerts"]] == ["NET_CONNECTION_FAILED"]
    assert post["alerts"][0]["severity"] == "high" and post["alerts"][0]["value"] == 3
    assert webhook.headers[0]["X-Team"] == "scoring"

    # Still firing at the next check: not notified again (until the repeat interval).
    assert journal.monitor.check() == []
    faultlens.shutdown()
    assert len(webhook.posts) == 1


def test_the_monitor_runs_by_itself_at_its_interval(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    faultlens.configure(
        service_name="svc",
        config_file=write_config(tmp_path, journal_dir, webhook.url, interval=0.2),
    )
    try:
        raise MemoryError()
    except MemoryError as exc:
        faultlens.record_error(exc)  # critical: CriticalError passes the filter
    assert webhook.received.wait(10), "no notification within 10 s at a 0.2 s interval"
    assert webhook.alerts()[0]["name"] == "CriticalError"
    faultlens.shutdown()


def test_a_short_job_gets_its_alerts_out_at_shutdown(
    tmp_path: Path, journal_dir: Path, webhook: Webhook
) -> None:
    faultlens.configure(
        service_name="batch", config_file=write_config(tmp_path, journal_dir, webhook.url)
    )
    for i in range(3):
        record(ConnectionError(f"refused {i}"))
    faultlens.shutdown()  # the 60 s interval never came: the final check did it
    assert [a["name"] for a in webhook.alerts()] == ["ErrorFrequency"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alert() -> Alert:
    return Alert("CriticalError", Severity.CRITICAL, "boom", 1, 0, 300, NOW, {"code": "X"})


def test_webhook_retries_are_bounded_and_the_loss_is_counted(webhook: Webhook) -> None:
    webhook.statuses = [503] * 10
    ch = WebhookChannel(ChannelSettings(type="webhook", url=webhook.url), attempts=4, backoff=0.01)
    ch.send([alert()])
    assert ch.flush(10)
    assert webhook.attempts == 4 and webhook.posts == []
    assert ch.failed == 1 and dropped_counts().get("export_failed") == 1
    ch.close(1)


def test_webhook_recovers_after_transient_failures(webhook: Webhook) -> None:
    webhook.statuses = [500, 503]
    ch = WebhookChannel(ChannelSettings(type="webhook", url=webhook.url), attempts=4, backoff=0.01)
    ch.send([alert()])
    assert ch.flush(10)
    assert webhook.attempts == 3 and len(webhook.posts) == 1 and ch.delivered == 1
    ch.close(1)


def test_a_client_error_is_not_retried(webhook: Webhook) -> None:
    webhook.statuses = [404]
    ch = WebhookChannel(ChannelSettings(type="webhook", url=webhook.url), attempts=4, backoff=0.01)
    ch.send([alert()])
    assert ch.flush(10)
    assert webhook.attempts == 1 and ch.failed == 1
    ch.close(1)


def test_the_webhook_queue_is_bounded() -> None:
    # A webhook that accepts the connection and never answers: the sender is busy with
    # one alert for the whole timeout, so the queue fills and stays full. (A refused port
    # fails each attempt in a millisecond and the sender would drain the queue meanwhile.)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/hook"
        ch = WebhookChannel(
            ChannelSettings(type="webhook", url=url, timeout=2.0), max_queue=3, attempts=1
        )
        started = time.perf_counter()
        for _ in range(50):
            ch.send([alert()])
        assert time.perf_counter() - started < 0.5, "send never waits for the network"
        # at most one alert in the sender's hands and three queued: the rest are counted
        assert dropped_counts().get("queue_full", 0) >= 46
        ch.close(0.1)


def test_a_dead_webhook_never_reaches_the_application(
    tmp_path: Path, journal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    faultlens.configure(service_name="svc", config_file=write_config(tmp_path, journal_dir, url))
    started = time.perf_counter()
    for i in range(5):
        record(ConnectionError(f"refused {i}"))
    running_journal().flush()
    fired = running_journal().monitor.check()  # type: ignore[union-attr]
    assert fired and time.perf_counter() - started < 2.0
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        t0 = time.perf_counter()
        faultlens.shutdown(timeout=2.0)
        assert time.perf_counter() - t0 < 4.0, "shutdown is bounded by its timeout"
    assert dropped_counts().get("export_failed", 0) >= 1
    # One journal file (beside it, the fleet's alert state: see test_alerts_in_a_fleet.py).
    journal_files = [p for p in journal_dir.iterdir() if p.suffix == ".jsonl"]
    assert len(journal_files) == 1, "the journal itself is unaffected"


def test_notifier_applies_each_channels_filter() -> None:
    got: dict[str, list[str]] = {"all": [], "critical": []}

    class Fake:
        def __init__(self, name: str, settings: ChannelSettings) -> None:
            self.name, self.settings = name, settings

        def send(self, alerts: list[Alert], status: str = "firing") -> None:
            got[self.name] += [a.severity.value for a in alerts]

        def close(self, timeout: float) -> None:
            pass

    high = Alert("ErrorFrequency", Severity.HIGH, "h", 5, 3, 60, NOW)
    crit = alert()
    n = Notifier(
        [
            Fake("all", ChannelSettings(type="log")),
            Fake("critical", ChannelSettings(type="log", severity_filter=(Severity.CRITICAL,))),
        ]
    )
    n.notify([high, crit])
    assert got == {"all": ["high", "critical"], "critical": ["critical"]}
