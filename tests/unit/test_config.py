"""configure(): argument > FAULTLENS_*/OTEL_* environment > faultlens.yaml > default."""

from __future__ import annotations

import textwrap

import pytest
from opentelemetry import trace

import faultlens
from faultlens import ConfigError
from faultlens._config import load_settings

FULL_YAML = """
error_handling:
  enabled: true
  log_level: INFO
  retry: {max_retries: 3, base_delay: 1.0, max_delay: 60.0, exponential_backoff: true, jitter: true}
  recovery: {enabled: true, circuit_breaker: {failure_threshold: 5, timeout: 60}}
  monitoring:
    enabled: true
    interval: 60
    analysis_window: 3600
    alert_thresholds:
      error_frequency:
        "execution:EXE_TIMEOUT": {window: 300, count: 10}
        "network:NET_CONNECTION_FAILED": {window: 60, count: 3}
    anomaly_threshold: {frequency: 100}
  notifications:
    enabled: true
    channels:
      - {type: log, level: ERROR}
      - {type: webhook, url: "http://127.0.0.1:9099/hook", severity_filter: [CRITICAL, HIGH]}
faultlens:
  service: {name: from-yaml, version: "1.2.3", environment: staging}
  journal: {path: /tmp/j, max_bytes: 100000}
"""


def write_yaml(tmp_path, text: str):
    path = tmp_path / "faultlens.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_documented_error_handling_schema_loads_as_it_is(tmp_path):
    s = load_settings(config_file=write_yaml(tmp_path, FULL_YAML), env={})
    eh = s.error_handling
    assert eh.retry.max_retries == 3 and eh.recovery.circuit_breaker.timeout == 60
    [timeout, conn] = eh.monitoring.alert_thresholds.error_frequency
    assert (timeout.key, timeout.window, timeout.count) == ("execution:EXE_TIMEOUT", 300, 10)
    assert (conn.key, conn.count) == ("network:NET_CONNECTION_FAILED", 3)
    assert eh.monitoring.anomaly_frequency == 100
    log, hook = eh.notifications.channels
    assert log.type == "log" and hook.url == "http://127.0.0.1:9099/hook"
    assert [s.value for s in hook.severity_filter] == ["critical", "high"]
    assert hook.accepts(faultlens.Severity.HIGH) and not hook.accepts(faultlens.Severity.LOW)
    assert (s.service_name, s.service_version, s.environment) == ("from-yaml", "1.2.3", "staging")


def test_precedence_is_argument_then_environment_then_file(tmp_path):
    path = write_yaml(tmp_path, "faultlens: {service: {name: file-name, version: '1'}}\n")
    env = {"OTEL_SERVICE_NAME": "env-name"}
    assert load_settings(config_file=path, env={}).service_name == "file-name"
    assert load_settings(config_file=path, env=env).service_name == "env-name"
    assert load_settings({"service_name": "arg"}, config_file=path, env=env).service_name == "arg"
    assert load_settings(config_file=path, env=env).service_version == "1"


def test_standard_otel_variables_are_honoured():
    s = load_settings(
        env={
            "OTEL_SERVICE_NAME": "svc",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,team=core",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=a%20b",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "5000",
            "OTEL_SDK_DISABLED": "true",
        }
    )
    assert s.service_name == "svc" and s.environment == "prod"
    assert s.resource_attributes["team"] == "core"
    ex = s.exporter
    assert (ex.active, ex.endpoint, ex.protocol, ex.timeout) == (
        "otlp",
        "http://127.0.0.1:4318",
        "http/protobuf",
        5.0,
    )
    assert ex.headers == {"x-tenant": "a b"}
    assert s.sdk_disabled and not s.enabled


def test_without_an_endpoint_the_journal_is_the_embedded_default():
    s = load_settings(env={})
    assert s.exporter.active == "none"
    assert s.journal.active(exporter_active=False)
    s2 = load_settings(env={"FAULTLENS_ENDPOINT": "http://127.0.0.1:4317"})
    assert not s2.journal.active(exporter_active=True)


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        (
            "error_handling: {retry: {max_retrys: 3}}",
            "error_handling.retry.max_retrys",
            "max_retries",
        ),
        ("error_handling: {retry: {base_delay: -1}}", "error_handling.retry.base_delay", ">= 0"),
        (
            "error_handling: {retry: {base_delay: 5, max_delay: 1}}",
            "error_handling.retry.max_delay",
            "must be >= base_delay",
        ),
        (
            "error_handling: {recovery: {circuit_breaker: {failure_threshold: 0}}}",
            "error_handling.recovery.circuit_breaker.failure_threshold",
            ">= 1",
        ),
        (
            "error_handling: {monitoring: {alert_thresholds: "
            "{error_frequency: {EXE_TIMEOUT: {}}}}}",
            "error_frequency.EXE_TIMEOUT",
            "'category:CODE'",
        ),
        (
            "error_handling: {monitoring: {alert_thresholds: {error_frequency: "
            "{'exec:EXE_TIMEOUT': {count: 1}}}}}",
            "exec:EXE_TIMEOUT",
            "unknown category",
        ),
        (
            "error_handling: {notifications: {channels: [{type: webhook}]}}",
            "channels[0].url",
            "needs a url",
        ),
        (
            "error_handling: {notifications: {channels: [{type: sms}]}}",
            "channels[0].type",
            "log, webhook",
        ),
        (
            "error_handling: {notifications: {channels: [{type: log, severity_filter: [URGENT]}]}}",
            "severity_filter",
            "unknown severity",
        ),
        ("error_handling: {monitoring: {interval: fast}}", "monitoring.interval", "a number"),
        ("faultlens: {exporter: {endpoint: 'localhost:4317'}}", "exporter.endpoint", "http"),
        ("faultlens: {journal: {fsync: sometimes}}", "journal.fsync", "always, batch, never"),
        ("faultlens: {servce: {}}", "faultlens.servce", "did you mean 'service'"),
        ("errorhandling: {}", "errorhandling", "did you mean 'error_handling'"),
        ("- a list\n", None, "must be a mapping"),
    ],
)
def test_bad_config_names_the_file_the_key_and_the_fix(tmp_path, text, key, fix):
    path = write_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path, env={})
    message = str(info.value)
    assert path in message
    if key:
        assert key in message
    assert fix in message


def test_bad_environment_values_name_the_variable():
    # faultlens's own booleans are strict; OTEL_SDK_DISABLED follows the OTel specification
    # (only "true" is true, anything else false: see test_hardening_config.py)
    with pytest.raises(ConfigError, match="FAULTLENS_ENABLED: expected true or false"):
        load_settings(env={"FAULTLENS_ENABLED": "maybe"})
    with pytest.raises(ConfigError, match="OTEL_RESOURCE_ATTRIBUTES: malformed entry"):
        load_settings(env={"OTEL_RESOURCE_ATTRIBUTES": "novalue"})
    with pytest.raises(ConfigError, match="FAULTLENS_ENDPOINT"):
        load_settings(env={"FAULTLENS_ENDPOINT": "127.0.0.1:4317"})


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        faultlens.configure(config_file=str(tmp_path / "nope.yaml"))


def test_faultlens_yaml_in_the_working_directory_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_yaml(tmp_path, "faultlens: {service: {name: cwd-service}}\n")
    assert load_settings(env={}).service_name == "cwd-service"


def test_configure_is_idempotent_and_refuses_silent_reconfiguration(tmp_path):
    s1 = faultlens.configure(service_name="a", journal=False)
    assert faultlens.configure(service_name="a", journal=False) is s1
    with pytest.raises(ConfigError, match=r"shutdown\(\) first"):
        faultlens.configure(service_name="b", journal=False)
    faultlens.shutdown()
    assert faultlens.configure(service_name="b", journal=False).service_name == "b"


def test_configure_installs_providers_when_the_application_set_none():
    faultlens.configure(service_name="svc", service_version="9", environment="test", journal=False)
    provider = trace.get_tracer_provider()
    resource = provider.resource.attributes
    assert resource["service.name"] == "svc"
    assert resource["service.version"] == "9"
    assert resource["deployment.environment.name"] == "test"
    assert "process.pid" in resource and "host.name" in resource
    assert "process.command_args" not in resource  # may carry secrets


def test_configure_reuses_an_application_provider(app_otel):
    faultlens.configure(service_name="svc", journal=False)
    assert trace.get_tracer_provider() is app_otel.provider

    @faultlens.instrument
    def fail():
        raise ValueError("x")

    with pytest.raises(ValueError):
        fail()
    assert len(app_otel.exception_events()) == 1


def test_otel_sdk_disabled_records_nothing_and_starts_nothing(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    s = faultlens.configure(service_name="svc")
    assert not s.enabled
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert faultlens.record_error(ValueError("x")).code == "VAL_INVALID_VALUE"


def test_catalogs_named_in_config_are_loaded(tmp_path):
    codes = tmp_path / "codes.yaml"
    codes.write_text("codes: {LOAD_ERROR: {category: system, hint: check the loader}}\n")
    faultlens.configure(service_name="svc", catalogs=[str(codes)], journal=False)
    assert faultlens.catalog["LOAD_ERROR"].hint == "check the loader"


def test_an_otlp_endpoint_that_is_down_does_not_block_or_raise():
    import time

    faultlens.configure(
        service_name="svc", endpoint="http://127.0.0.1:9", export_timeout=1, journal=False
    )

    @faultlens.instrument
    def fail():
        raise ValueError("x")

    start = time.monotonic()
    for _ in range(5):
        with pytest.raises(ValueError):
            fail()
    assert time.monotonic() - start < 0.5, "recording never waits for the exporter"
    faultlens.shutdown(timeout=3)
    from faultlens.capture import dropped_counts

    assert dropped_counts().get("export_failed", 0) >= 1


def test_the_applications_configure_wins_over_faultlens_runs_bootstrap(monkeypatch):
    from faultlens._setup import bootstrap_configure

    monkeypatch.setenv("FAULTLENS_SERVICE_NAME", "from-faultlens-run")
    monkeypatch.setenv("FAULTLENS_JOURNAL", "false")
    assert bootstrap_configure().service_name == "from-faultlens-run"
    s = faultlens.configure(service_name="the-app")
    assert s.service_name == "the-app"
    with faultlens.testing.capture():
        pass
    # the app's configure is not provisional: a third, different call is refused
    with pytest.raises(ConfigError):
        faultlens.configure(service_name="someone-else")


def test_flush_pushes_buffers_without_stopping():
    faultlens.configure(service_name="svc", journal=False)
    assert faultlens.flush(timeout=2) is True
    assert faultlens.is_configured()


def test_signal_specific_otlp_endpoints_are_used_verbatim():
    from faultlens._setup import _signal_url

    s = load_settings(
        env={
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/custom/traces",
        }
    )
    assert s.exporter.active == "otlp"
    assert _signal_url(s, "traces") == "http://127.0.0.1:4318/custom/traces"
    assert _signal_url(s, "metrics") is None  # no fallback for a signal nobody configured
    s2 = load_settings(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
    )
    assert _signal_url(s2, "metrics") == "http://127.0.0.1:4318/v1/metrics"
