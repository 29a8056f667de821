"""The settings table (``faultlens._options.OPTIONS``) is the one source of truth for every
option: the loader resolves its rows, the schema's defaults are its defaults, its errors name
the row's argument, variable or file key, and the README's configuration reference is
rendered from it."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import faultlens
from faultlens import ConfigError
from faultlens._config import Settings, load_settings
from faultlens._options import ARGUMENTS, OPTIONS, Option, markdown_table, readme_table
from faultlens.capture import Limits
from faultlens.capture._state import STATE
from faultlens.resilience import ResilienceDefaults

REPO = Path(__file__).resolve().parents[2]
FIELD_ROWS = [o for o in OPTIONS if o.field is not None and o.field != "config_file"]
COMPUTED = {"service_name"}  # unknown_service:<program>


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _file(tmp_path: Path, dotted: str, value: Any) -> str:
    doc: Any = value
    for part in reversed(dotted.split(".")):
        doc = {part: doc}
    path = tmp_path / "faultlens.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _detail(exc: ConfigError) -> str:
    """The message without its 'source: key: ' prefix."""
    return str(exc).split(f"{exc.key}: ", 1)[1]


# -- the README ---------------------------------------------------------------------------------


def test_the_readme_configuration_reference_is_the_generated_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_table(readme) == markdown_table(), (
        "README.md's configuration reference is out of date: run "
        "`python scripts/settings_table.py --update README.md`"
    )


def test_the_script_prints_the_table():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_table.py"), "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout == markdown_table()
    assert out.stderr == ""


def test_every_row_is_one_line_of_the_table():
    lines = markdown_table().splitlines()
    assert len(lines) == 2 + len(OPTIONS)
    for row in OPTIONS:
        assert "|" not in row.doc and "\n" not in row.doc, row.name


# -- the rows are consistent with the code ------------------------------------------------------


def test_names_are_unique_in_every_source():
    for attr in ("field", "argument", "file"):
        names = [getattr(o, attr) for o in OPTIONS if getattr(o, attr) is not None]
        assert len(names) == len(set(names)), attr
    variables = [v for o in OPTIONS for v in o.env]
    assert len(variables) == len(set(variables))


def test_every_field_lands_in_settings():
    settings = Settings(service_name="svc")
    for row in FIELD_ROWS:
        _get(settings, row.field)  # AttributeError names a row the loader would drop


def test_the_rows_arguments_are_exactly_configures_keywords():
    keywords = set(inspect.signature(faultlens.configure).parameters)
    assert set(ARGUMENTS) == keywords


def test_the_schema_defaults_are_the_table_defaults():
    built = Settings(service_name="svc")
    for row in FIELD_ROWS:
        if row.field in COMPUTED:
            continue
        assert _get(built, row.field) == row.default, row.field


def test_nothing_set_anywhere_loads_the_table_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_settings(env={})
    for row in FIELD_ROWS:
        if row.field in COMPUTED:
            continue
        assert _get(loaded, row.field) == row.default, row.field
    assert loaded.service_name.startswith("unknown_service:")
    assert loaded.config_file is None
    assert loaded == Settings(service_name=loaded.service_name)


def test_capture_and_resilience_defaults_come_from_their_layers():
    """One value per setting: the table reads the capture caps and the resilience
    defaults from the objects those layers use, not from a copy."""
    limits, resilience = Limits(), ResilienceDefaults()
    table = {o.field: o.default for o in FIELD_ROWS}
    assert table["capture.max_message"] == limits.max_message
    assert table["capture.rate_limit_burst"] == limits.rate_limit_burst
    assert table["error_handling.retry.max_retries"] == resilience.attempts - 1
    assert table["error_handling.retry.base_delay"] == resilience.wait_initial
    assert table["error_handling.recovery.circuit_breaker.timeout"] == resilience.open_timeout
    assert load_settings(env={}).capture == limits  # what configure() installs


def test_settings_capture_is_what_the_capture_layer_installs():
    """No second copy of the capture caps: configure() installs Settings.capture as is."""
    settings = faultlens.configure(service_name="svc", journal=False, exporter="none")
    assert STATE.limits is settings.capture


# -- every source is read and refused the same way -----------------------------------------------

CANDIDATES: list[Any] = ["abc", -5, 0, "", "  ", [1, 2], {"a": [1]}, "http/json", "ftp://x"]


def _bad_value(row: Option) -> Any:
    """A value this row's converter refuses (every converter refuses one of these)."""
    for value in CANDIDATES:
        try:
            row.convert(value, row.name)
        except (TypeError, ValueError):
            return value
    raise AssertionError(f"{row.name} accepts every candidate")


SHARED = [
    o
    for o in FIELD_ROWS
    if o.file and o.argument and o.argument_convert is None and o.field != "catalogs"
]


@pytest.mark.parametrize("row", SHARED, ids=[o.name for o in SHARED])
def test_a_bad_value_is_refused_with_the_same_words_from_every_source(tmp_path, row):
    bad = _bad_value(row)
    with pytest.raises(ConfigError) as from_arg:
        load_settings({row.argument: bad}, env={})
    assert (from_arg.value.source, from_arg.value.key) == ("configure()", row.argument)

    path = _file(tmp_path, row.file, bad)
    with pytest.raises(ConfigError) as from_file:
        load_settings(config_file=path, env={})
    assert (from_file.value.source, from_file.value.key) == (path, row.file)
    assert _detail(from_file.value) == _detail(from_arg.value)

    if row.env and row.env_convert is None and isinstance(bad, str) and bad.strip():
        with pytest.raises(ConfigError) as from_env:
            load_settings(env={row.env[0]: bad})
        assert (from_env.value.source, from_env.value.key) == ("environment", row.env[0])
        assert _detail(from_env.value) == _detail(from_arg.value)


FILE_ROWS = [o for o in FIELD_ROWS if o.file]


@pytest.mark.parametrize("row", FILE_ROWS, ids=[o.name for o in FILE_ROWS])
def test_a_misspelt_file_key_is_refused_with_a_suggestion(tmp_path, row):
    section, _, name = row.file.rpartition(".")
    typo = name[:-1] if len(name) > 4 else name + "x"
    path = _file(tmp_path, f"{section}.{typo}", 1)
    with pytest.raises(ConfigError, match=f"did you mean '{name}'") as info:
        load_settings(config_file=path, env={})
    assert info.value.key == f"{section}.{typo}"


VARIABLE_ROWS = [o for o in FIELD_ROWS if o.env]


@pytest.mark.parametrize("row", VARIABLE_ROWS, ids=[o.env[0] for o in VARIABLE_ROWS])
def test_every_variable_is_read(row, tmp_path):
    """Each variable reaches its field (the value: one the row accepts)."""
    samples = {
        "OTEL_RESOURCE_ATTRIBUTES": ("team=core", {"team": "core"}),
        "OTEL_EXPORTER_OTLP_HEADERS": ("x-api-key=k", {"x-api-key": "k"}),
        "OTEL_EXPORTER_OTLP_TIMEOUT": ("2500", 2.5),
        "OTEL_METRIC_EXPORT_INTERVAL": ("2500", 2.5),
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": ("1500", 1.5),
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": ("1500", 1.5),
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": ("1500", 1.5),
        "FAULTLENS_EXCEPTION_SIGNAL": ("logs/dup", "logs/dup"),
        "FAULTLENS_EXCEPTION_EVENT_NAME": ("payments.exception", "payments.exception"),
        "FAULTLENS_EXCEPTION_BRIDGE": ("false", False),
        "OTEL_EXPORTER_OTLP_PROTOCOL": ("http/protobuf", "http/protobuf"),
        "OTEL_SDK_DISABLED": ("true", True),
        "OTEL_EXPORTER_OTLP_INSECURE": ("true", True),
        "FAULTLENS_ENABLED": ("false", False),
        "FAULTLENS_EXPORTER": ("console", "console"),
        "FAULTLENS_JOURNAL": ("true", True),
        "FAULTLENS_JOURNAL_FSYNC": ("always", "always"),
        "FAULTLENS_RATE_LIMIT": ("7", 7),
        "FAULTLENS_AUTO_MODULES": ("app.*,lib", ("app.*", "lib")),
        "FAULTLENS_JOURNAL_PATH": (str(tmp_path / "j"), str(tmp_path / "j")),
    }
    var = row.env[0]
    if var == "FAULTLENS_CATALOGS":
        catalog = tmp_path / "codes.yaml"
        catalog.write_text("codes: {}\n")
        raw, expected = str(catalog), (str(catalog),)
    elif "URL" in var or "ENDPOINT" in var:
        raw = expected = "http://collector.example:4318/v1/traces"
    elif var in samples:
        raw, expected = samples[var]
    else:
        raw = expected = "from-the-environment"
    assert _get(load_settings(env={var: raw}), row.field) == expected


def test_the_first_variable_set_wins_and_the_others_are_not_read():
    s = load_settings(
        env={"FAULTLENS_ENDPOINT": "http://a.example:4317", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
    )
    assert s.exporter.endpoint == "http://a.example:4317"


def test_an_argument_wins_over_a_variable_over_the_file(tmp_path):
    path = _file(tmp_path, "faultlens.capture.rate_limit.burst", 1)
    assert load_settings(config_file=path, env={}).capture.rate_limit_burst == 1
    env = {"FAULTLENS_RATE_LIMIT": "2"}
    assert load_settings(config_file=path, env=env).capture.rate_limit_burst == 2
    loaded = load_settings({"rate_limit": 3}, config_file=path, env=env)
    assert loaded.capture.rate_limit_burst == 3


def test_an_unknown_argument_is_refused_with_a_suggestion_from_the_table():
    with pytest.raises(ConfigError, match=r"journal_pth: unknown option; did you mean"):
        load_settings({"journal_pth": "x"}, env={})


def test_the_journal_shorthand_turns_the_journal_on_at_a_directory(tmp_path):
    s = load_settings({"journal": str(tmp_path), "journal_path": "elsewhere"}, env={})
    assert (s.journal.enabled, s.journal.path) == (True, str(tmp_path))
    assert load_settings({"journal": False}, env={}).journal.enabled is False


def test_a_bad_scrub_pattern_names_the_file_key(tmp_path):
    path = _file(tmp_path, "faultlens.scrub.patterns", ["("])
    with pytest.raises(ConfigError, match="invalid regular expression") as info:
        load_settings(config_file=path, env={})
    assert info.value.key == "faultlens.scrub.patterns" and info.value.source == path


def test_retry_delays_from_the_file_follow_each_other_unless_both_are_set(tmp_path):
    """With one of base_delay/max_delay in the file, the other follows it (as an explicit
    retry() argument wins over a default); both set the wrong way round is an error."""
    path = _file(tmp_path, "error_handling.retry", {"base_delay": 10})
    retry = load_settings(config_file=path, env={}).error_handling.retry
    assert (retry.base_delay, retry.max_delay) == (10, 10)
    path = _file(tmp_path, "error_handling.retry", {"max_delay": 0.05})
    retry = load_settings(config_file=path, env={}).error_handling.retry
    assert (retry.base_delay, retry.max_delay) == (0.05, 0.05)
    path = _file(tmp_path, "error_handling.retry", {"base_delay": 5, "max_delay": 1})
    with pytest.raises(ConfigError, match="must be >= base_delay") as info:
        load_settings(config_file=path, env={})
    assert info.value.key == "error_handling.retry.max_delay"


def test_the_documented_error_handling_shape_loads_as_it_is(tmp_path):
    path = tmp_path / "faultlens.yaml"
    path.write_text(
        """
error_handling:
  enabled: true
  log_level: INFO
  retry:
    {max_retries: 3, base_delay: 1.0, max_delay: 60.0, exponential_backoff: true, jitter: true}
  recovery:     {enabled: true, circuit_breaker: {failure_threshold: 5, timeout: 60}}
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
"""
    )
    eh = load_settings(config_file=str(path), env={}).error_handling
    assert eh.resilience == ResilienceDefaults(
        attempts=4, wait_initial=1.0, wait_max=60.0, failure_threshold=5, open_timeout=60.0
    )
    assert [t.key for t in eh.monitoring.alert_thresholds.error_frequency] == [
        "execution:EXE_TIMEOUT",
        "network:NET_CONNECTION_FAILED",
    ]
    assert eh.monitoring.anomaly_frequency == 100
    assert [c.type for c in eh.notifications.channels] == ["log", "webhook"]
    assert eh.notifications.channels[1].timeout == 5.0  # the entry's own default


@pytest.mark.parametrize("bad", [123, "", "a\0b"])
def test_a_bad_config_file_argument_is_refused_by_name(bad):
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=bad, env={})  # type: ignore[arg-type]
    assert (info.value.source, info.value.key) == ("configure()", "config_file")


def test_settings_and_resilience_use_only_other_layers_public_names():
    """``_config``/``_options`` and ``resilience`` import what another layer's ``__init__``
    exposes, never its private modules (so a layer can reorganise its insides)."""
    import ast

    src = REPO / "src" / "faultlens"
    files = [src / "_config.py", src / "_options.py", *sorted((src / "resilience").glob("*.py"))]
    own = {src / "_config.py": "", src / "_options.py": ""}
    offending = []
    for path in files:
        package = own.get(path, "resilience")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.level or not node.module:
                continue
            parts = node.module.split(".")
            other_package = node.level == 2 or (node.level == 1 and package == "")
            if node.module == "capture._state":  # STATE: internal, not exported (test_surfaces)
                continue
            if other_package and parts[0] != package and any(p.startswith("_") for p in parts[1:]):
                offending.append(f"{path.name}: from {'.' * node.level}{node.module}")
    assert offending == []
