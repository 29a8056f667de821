"""Config fuzzing: every malformed value fails with a ConfigError naming its key."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlens import ConfigError
from faultlens._config import load_settings

KEYS = {
    ("error_handling", "retry", "max_retries"): "int",
    ("error_handling", "retry", "base_delay"): "num",
    ("error_handling", "retry", "jitter"): "bool",
    ("error_handling", "recovery", "circuit_breaker", "failure_threshold"): "int1",
    ("error_handling", "recovery", "circuit_breaker", "timeout"): "pos",
    ("error_handling", "monitoring", "interval"): "pos",
    ("error_handling", "monitoring", "analysis_window"): "pos",
    ("error_handling", "log_level"): "level",
    ("faultlens", "journal", "max_files"): "int1",
    ("faultlens", "exporter", "timeout"): "pos",
}

bad_values = st.one_of(
    st.text(alphabet="abcxyz!?", min_size=1, max_size=8),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), min_size=1, max_size=2),
    st.floats(max_value=-0.001, allow_nan=False, allow_infinity=False),
    st.integers(max_value=-1),
)


def _nest(path, value):
    doc = value
    for key in reversed(path):
        doc = {key: doc}
    return doc


@settings(max_examples=120, deadline=None)
@given(path=st.sampled_from(sorted(KEYS)), value=bad_values)
def test_malformed_values_name_their_key(tmp_path_factory, path, value):
    kind = KEYS[path]
    if kind == "bool" and not isinstance(value, (list, dict, str)):
        return  # numbers are not booleans either, but keep the oracle simple
    if kind == "level" and isinstance(value, (int, float)):
        pass
    f = tmp_path_factory.mktemp("cfg") / "faultlens.yaml"
    f.write_text(yaml.safe_dump(_nest(path, value)))
    try:
        load_settings(config_file=str(f), env={})
    except ConfigError as exc:
        assert ".".join(path) in str(exc)
        assert str(f) in str(exc)
    else:
        raise AssertionError(f"{'.'.join(path)}={value!r} was accepted")


@settings(max_examples=80, deadline=None)
@given(key=st.from_regex(r"[a-z_]{3,12}", fullmatch=True))
def test_unknown_keys_are_refused_by_name(tmp_path_factory, key):
    known = {"retry", "recovery", "monitoring", "notifications", "enabled", "log_level"}
    if key in known:
        return
    f = tmp_path_factory.mktemp("cfg") / "faultlens.yaml"
    f.write_text(yaml.safe_dump({"error_handling": {key: 1}}))
    try:
        load_settings(config_file=str(f), env={})
    except ConfigError as exc:
        assert f"error_handling.{key}" in str(exc)
    else:
        raise AssertionError(f"unknown key {key} accepted")


ARGUMENTS = [
    "service_name",
    "service_version",
    "environment",
    "endpoint",
    "protocol",
    "headers",
    "exporter",
    "journal",
    "journal_path",
    "auto_modules",
    "catalogs",
    "enabled",
    "resource_attributes",
    "rate_limit",
    "capture_resources",
    "jaeger_url",
    "metrics_interval",
    "export_timeout",
]

any_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=12),
        st.binary(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(ARGUMENTS), value=any_value)
def test_any_argument_value_is_accepted_or_refused_by_name(name, value):
    """configure()'s arguments go through the same converters as the file: whatever the
    value, the outcome is Settings or a ConfigError naming the argument, never a TypeError
    from deep inside (or a wrong value silently kept)."""
    try:
        load_settings({name: value}, env={})
    except ConfigError as exc:
        assert f"configure(): {name}" in str(exc)


ENV_VARS = [
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "FAULTLENS_RATE_LIMIT",
    "FAULTLENS_EXPORTER",
    "FAULTLENS_JOURNAL",
    "FAULTLENS_JOURNAL_FSYNC",
    "FAULTLENS_ENABLED",
]


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(ENV_VARS), value=st.text(max_size=24))
def test_any_environment_value_is_accepted_or_refused_by_name(name, value):
    try:
        load_settings(env={name: value})
    except ConfigError as exc:
        assert f"environment: {name}" in str(exc)
