"""Configuration input: every source validated the same way, OTEL_* read as the OpenTelemetry
specification defines them, files named in errors, and no credential in any message or repr.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap

import pytest

import faultlens
from faultlens import ConfigError
from faultlens._config import load_settings
from faultlens.errors import CatalogError, catalog

SECRET = "Sup3rS3cretValue42"


def write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- OTEL_* as the specification defines them ------------------------------------------------


@pytest.mark.parametrize(("ms", "seconds"), [("500", 0.5), ("10000", 10.0), ("2500", 2.5)])
def test_otlp_timeout_is_milliseconds(ms, seconds):
    assert load_settings(env={"OTEL_EXPORTER_OTLP_TIMEOUT": ms}).exporter.timeout == seconds


def test_signal_specific_otlp_timeouts_are_milliseconds_and_fall_back_to_the_shared_one():
    ex = load_settings(
        env={"OTEL_EXPORTER_OTLP_TIMEOUT": "3000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "500"}
    ).exporter
    assert ex.timeout_for("traces") == 0.5
    assert ex.timeout_for("metrics") == 3.0
    ex = load_settings(env={"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "250"}).exporter
    assert (ex.timeout_for("traces"), ex.timeout_for("metrics")) == (10.0, 0.25)


def test_metric_export_interval_is_milliseconds():
    assert (
        load_settings(env={"OTEL_METRIC_EXPORT_INTERVAL": "500"}).exporter.metrics_interval == 0.5
    )


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true "])
def test_otel_sdk_disabled_is_true_only_for_true(value):
    assert load_settings(env={"OTEL_SDK_DISABLED": value}).sdk_disabled


@pytest.mark.parametrize("value", ["false", "", "1", "yes", "on", "enabled", "maybe"])
def test_any_other_otel_sdk_disabled_value_is_false(value, caplog):
    caplog.set_level(logging.WARNING, logger="faultlens")
    assert not load_settings(env={"OTEL_SDK_DISABLED": value}).sdk_disabled
    warned = any("OTEL_SDK_DISABLED" in r.getMessage() for r in caplog.records)
    assert warned == (value.strip().lower() not in ("", "false"))


def test_otel_insecure_follows_the_same_boolean_rule():
    assert load_settings(env={"OTEL_EXPORTER_OTLP_INSECURE": "TRUE"}).exporter.insecure is True
    assert load_settings(env={"OTEL_EXPORTER_OTLP_INSECURE": "1"}).exporter.insecure is False
    assert load_settings(env={}).exporter.insecure is None


@pytest.mark.parametrize(
    ("value", "protocol"), [("grpc", "grpc"), ("GRPC", "grpc"), ("http/protobuf", "http/protobuf")]
)
def test_otlp_protocol_values(value, protocol):
    assert load_settings(env={"OTEL_EXPORTER_OTLP_PROTOCOL": value}).exporter.protocol == protocol


def test_http_json_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL: http/json is not suppo"):
        load_settings(env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_resource_attributes_are_percent_decoded():
    s = load_settings(
        env={"OTEL_RESOURCE_ATTRIBUTES": "team=a%2Cb, owner=core%3Dx ,plus=a+b,empty="}
    )
    assert s.resource_attributes == {"team": "a,b", "owner": "core=x", "plus": "a+b", "empty": ""}


def test_otel_service_name_wins_over_resource_attributes_and_env_over_the_file(tmp_path):
    path = write(
        tmp_path / "faultlens.yaml",
        "faultlens: {service: {name: from-file, version: '1', environment: dev}}\n",
    )
    attrs = "service.name=from-attrs,service.version=2,deployment.environment.name=prod"
    s = load_settings(config_file=path, env={"OTEL_RESOURCE_ATTRIBUTES": attrs})
    assert (s.service_name, s.service_version, s.environment) == ("from-attrs", "2", "prod")
    s = load_settings(
        config_file=path, env={"OTEL_RESOURCE_ATTRIBUTES": attrs, "OTEL_SERVICE_NAME": "own"}
    )
    assert s.service_name == "own"
    s = load_settings(
        {"resource_attributes": {"service.name": "arg"}}, env={"OTEL_SERVICE_NAME": "x"}
    )
    assert s.service_name == "arg"


def test_a_malformed_header_list_is_named_without_echoing_its_content():
    with pytest.raises(ConfigError) as info:
        load_settings(env={"OTEL_EXPORTER_OTLP_HEADERS": f"x-tenant=a,Authorization {SECRET}"})
    assert "OTEL_EXPORTER_OTLP_HEADERS" in str(info.value)
    assert "entry 2" in str(info.value)
    assert SECRET not in str(info.value)


# -- every source through the same converters -----------------------------------------------

# (configure() argument, environment variable or None, file key path, bad value, message)
OPTIONS = [
    ("rate_limit", "FAULTLENS_RATE_LIMIT", "faultlens.capture.rate_limit.burst", -5, ">= 0"),
    ("export_timeout", "OTEL_EXPORTER_OTLP_TIMEOUT", "faultlens.exporter.timeout", "abc", "number"),
    ("protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "faultlens.exporter.protocol", "bogus", "grpc"),
    ("capture_resources", None, "faultlens.capture.resources", "perhaps", "true or false"),
    ("endpoint", "FAULTLENS_ENDPOINT", "faultlens.exporter.endpoint", "localhost:4317", "http"),
    ("jaeger_url", "FAULTLENS_JAEGER_URL", "faultlens.jaeger_url", "ftp://x", "http"),
    ("exporter", "FAULTLENS_EXPORTER", "faultlens.exporter.type", "zipkin", "otlp"),
    ("metrics_interval", None, "faultlens.exporter.metrics_interval", 0, "> 0"),
    ("enabled", "FAULTLENS_ENABLED", "error_handling.enabled", "sometimes", "true or false"),
    ("service_name", None, "faultlens.service.name", "  ", "empty"),
]


def _file_with(tmp_path, dotted: str, value):
    import yaml

    doc: object = value
    for part in reversed(dotted.split(".")):
        doc = {part: doc}
    path = tmp_path / "faultlens.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _detail(exc: ConfigError) -> str:
    """The message without the 'source: key: ' prefix."""
    return str(exc).rsplit(": ", 1)[-1] if exc.key is None else str(exc).split(f"{exc.key}: ", 1)[1]


@pytest.mark.parametrize(
    ("arg", "var", "dotted", "bad", "fix"), OPTIONS, ids=[o[0] for o in OPTIONS]
)
def test_a_bad_value_is_refused_the_same_way_from_every_source(
    tmp_path, arg, var, dotted, bad, fix
):
    with pytest.raises(ConfigError) as from_arg:
        load_settings({arg: bad}, env={})
    assert from_arg.value.source == "configure()" and from_arg.value.key == arg
    assert fix in str(from_arg.value)

    path = _file_with(tmp_path, dotted, bad)
    with pytest.raises(ConfigError) as from_file:
        load_settings(config_file=path, env={})
    assert from_file.value.key == dotted and path in str(from_file.value)
    assert _detail(from_file.value) == _detail(from_arg.value)

    if var is not None and not (var == "OTEL_EXPORTER_OTLP_TIMEOUT" and bad != "abc"):
        with pytest.raises(ConfigError) as from_env:
            load_settings(env={var: str(bad)})
        assert from_env.value.source == "environment" and from_env.value.key == var
        assert fix in str(from_env.value)


def test_the_reported_arguments_are_validated():
    with pytest.raises(ConfigError, match=r"configure\(\): rate_limit: must be >= 0"):
        load_settings(
            {
                "rate_limit": -5,
                "export_timeout": "abc",
                "protocol": "bogus",
                "capture_resources": "no",
            },
            env={},
        )
    s = load_settings({"capture_resources": "no", "export_timeout": "2.5"}, env={})
    assert s.capture.resources is False  # 'no' is no, not a truthy string
    assert s.exporter.timeout == 2.5


def test_configure_refuses_a_bad_argument_before_changing_anything():
    with pytest.raises(ConfigError, match="export_timeout: expected a number"):
        faultlens.configure(service_name="svc", journal=False, export_timeout="abc")  # type: ignore[arg-type]
    assert not faultlens.is_configured()


def test_an_unknown_option_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"rate_limt: unknown option; did you mean 'rate_limit'"):
        load_settings({"rate_limt": 5}, env={})


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, True, None])
def test_header_values_that_are_not_strings_are_refused(value):
    with pytest.raises(ConfigError, match="headers"):
        load_settings({"headers": {"X-A": value}}, env={})


def test_header_values_cannot_inject_lines():
    with pytest.raises(ConfigError, match="line breaks"):
        load_settings({"headers": {"X-A": "a\r\nX-Injected: 1"}}, env={})


def test_a_threshold_code_cannot_smuggle_template_syntax_into_rendered_rules(tmp_path):
    path = write(
        tmp_path / "faultlens.yaml",
        """
        error_handling:
          monitoring:
            alert_thresholds:
              error_frequency:
                "system:X{{ .Labels }}": {window: 60, count: 1}
        """,
    )
    with pytest.raises(ConfigError, match="invalid code"):
        load_settings(config_file=path, env={})


# -- files ------------------------------------------------------------------------------------


def test_a_missing_catalog_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path / "faultlens.yaml", "faultlens: {catalogs: [codes.yaml, gone.yaml]}\n")
    (tmp_path / "codes.yaml").write_text("codes: {}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path, env={})
    msg = str(info.value)
    assert path in msg and "faultlens.catalogs[1]" in msg
    assert str(tmp_path / "gone.yaml") in msg and "not found" in msg


def test_a_missing_catalog_from_the_environment_or_an_argument_is_named_too(tmp_path):
    with pytest.raises(ConfigError, match="environment: FAULTLENS_CATALOGS: catalog file"):
        load_settings(env={"FAULTLENS_CATALOGS": str(tmp_path / "gone.yaml")})
    with pytest.raises(ConfigError, match=r"configure\(\): catalogs\[0\]: catalog file"):
        load_settings({"catalogs": [str(tmp_path / "gone.yaml")]}, env={})


def test_relative_catalogs_are_read_from_the_config_files_directory(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "codes.yaml").write_text("codes: {REL_CODE: {category: system, hint: relative}}\n")
    path = write(conf / "faultlens.yaml", "faultlens: {catalogs: codes.yaml}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(config_file=path, env={})
    assert s.catalogs == (str(conf / "codes.yaml"),)
    faultlens.configure(service_name="svc", journal=False, config_file=path)
    assert catalog["REL_CODE"].hint == "relative"


def test_a_relative_config_file_name_is_resolved_once(tmp_path, monkeypatch):
    (tmp_path / "codes.yaml").write_text("codes: {}\n")
    write(tmp_path / "app.yaml", "faultlens: {catalogs: [codes.yaml]}\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings(config_file="app.yaml", env={})
    assert s.config_file == str(tmp_path / "app.yaml")
    assert s.catalogs == (str(tmp_path / "codes.yaml"),)


def test_a_missing_config_file_names_where_its_name_came_from(tmp_path):
    gone = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"environment: FAULTLENS_CONFIG: file not found: "):
        load_settings(env={"FAULTLENS_CONFIG": gone})
    with pytest.raises(ConfigError, match=re.escape(f"config_file: file not found: {gone}")):
        load_settings(config_file=gone, env={})


def test_a_non_utf8_config_file_is_a_config_error_with_the_byte_offset(tmp_path):
    path = tmp_path / "faultlens.yaml"
    path.write_bytes(b"faultlens:\n  service: {name: caf\xe9}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=str(path), env={})
    msg = str(info.value)
    assert str(path) in msg and "UTF-8" in msg and "offset 32" in msg and "line 2" in msg


def test_a_non_utf8_catalog_is_a_config_error_naming_the_catalog(tmp_path):
    codes = tmp_path / "codes.yaml"
    codes.write_bytes(b"codes: {X: {category: system, hint: \xff}}\n")
    with pytest.raises(CatalogError, match=re.escape(str(codes)) + ".*offset 36"):
        catalog.load(codes)
    with pytest.raises(ConfigError, match="UTF-8"):
        faultlens.configure(service_name="svc", journal=False, catalogs=[str(codes)])


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "faultlens.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + "faultlens: {service: {name: café}}\n".encode())
    assert load_settings(config_file=str(path), env={}).service_name == "café"


def test_a_directory_given_as_a_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(config_file=str(tmp_path), env={})


# -- no credential in errors and reprs ----------------------------------------------------------


def test_settings_reprs_never_show_credentials(tmp_path):
    path = write(
        tmp_path / "faultlens.yaml",
        f"""
        error_handling:
          notifications:
            channels:
              - {{type: webhook, url: "https://hook:{SECRET}@alerts.internal/h",
                  headers: {{X-Token: "{SECRET}"}}}}
        """,
    )
    s = load_settings(
        {
            "endpoint": f"http://admin:{SECRET}@127.0.0.1:4317",
            "headers": {"api-key": SECRET},
            "jaeger_url": f"https://viewer:{SECRET}@jaeger.internal",
        },
        config_file=path,
        env={},
    )
    text = repr(s)
    assert SECRET not in text
    assert "127.0.0.1:4317" in text and "alerts.internal" in text and "api-key" in text
    assert s.exporter.endpoint == f"http://admin:{SECRET}@127.0.0.1:4317"  # used as given


def test_a_rejected_url_is_echoed_without_its_credentials():
    with pytest.raises(ConfigError) as info:
        load_settings(env={"FAULTLENS_ENDPOINT": f"admin:{SECRET}@collector:4317"})
    assert "FAULTLENS_ENDPOINT" in str(info.value)
    assert SECRET not in str(info.value)


def test_load_settings_reads_nothing_it_was_not_asked_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no faultlens.yaml here
    s = load_settings(env={})
    assert s.config_file is None and s.catalogs == ()
    assert os.getcwd() == str(tmp_path)


def test_a_sub_second_otlp_timeout_reaches_the_exporter_as_such():
    """OTEL_EXPORTER_OTLP_TIMEOUT=300 is 0.3 s: an export to a collector that accepts the
    connection and never answers gives up after about that long (not at once, as a timeout
    truncated to 0 s would, and not after 300 s)."""
    import socket
    import time

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from faultlens._setup import _otlp_span_exporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("t").start_span("s").end()
    spans = memory.get_finished_spans()

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        port = hung.getsockname()[1]
        settings = load_settings(
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "300",
            }
        )
        exporter = _otlp_span_exporter(settings)
        assert exporter is not None
        start = time.monotonic()
        exporter.export(spans)
        elapsed = time.monotonic() - start
        exporter.shutdown()
    assert 0.2 <= elapsed < 3.0, elapsed


def test_resource_attributes_take_scalars_and_refuse_structures():
    s = load_settings({"resource_attributes": {"canary": True, "shard": 3, "team": "core"}}, env={})
    assert s.resource_attributes == {"canary": "true", "shard": "3", "team": "core"}
    with pytest.raises(ConfigError, match="resource_attributes: 'tags': expected a string"):
        load_settings({"resource_attributes": {"tags": ["a", "b"]}}, env={})
