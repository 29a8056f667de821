"""Settings: argument > FAULTLENS_*/OTEL_* environment > faultlens.yaml > default.

Resolved in configure(), never at import. Every value is validated here, once, so that a
typo fails at start-up with the file, the key and the fix, instead of silently doing nothing.
What each option is called in every source, its default and its converter are one row of the
settings table (``faultlens._options.OPTIONS``); ``load_settings`` resolves every row the
same way, so ``configure(export_timeout="abc")``, ``OTEL_EXPORTER_OTLP_TIMEOUT=abc`` and
``timeout: abc`` in the file fail with the same message, naming the argument, the variable
or the file and key. The schema's dataclasses below take their defaults from the same rows.
The ``error_handling`` section keeps the schema existing configs already use.

``OTEL_*`` variables follow the OpenTelemetry specification: durations are milliseconds
(``OTEL_EXPORTER_OTLP_TIMEOUT=500`` is half a second), a boolean is true only when it is
``true`` in any case (anything else is false, with a warning when it is not ``false``), and
``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_EXPORTER_OTLP_HEADERS`` are percent-encoded
``key=value`` lists.

Every value a source gives is checked, whether or not a higher source overrides it; of
several variables for one option (``FAULTLENS_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``)
only the first one set is read. Relative ``catalogs:`` paths in a file are read from that
file's directory. Error messages and reprs never show a credential: URLs are printed without
``user:password@`` and header values are hidden.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from ._options import (
    ARGUMENTS,
    OPTIONS,
    Option,
    _choice,
    _http_headers,
    _int,
    _log_level,
    _number,
    _Reader,
    _severities,
    _url,
    default_of,
    option,
    unknown_argument,
)
from .capture import Limits
from .errors import CatalogError, Category, ConfigError, Severity, load_yaml_file
from .resilience import ResilienceDefaults
from .scrub import REDACTED, redact_url

__all__ = [
    "AlertThresholds",
    "BreakerSettings",
    "ChannelSettings",
    "ErrorHandling",
    "ExceptionSettings",
    "ExporterSettings",
    "FrequencyThreshold",
    "JournalSettings",
    "MonitoringSettings",
    "NotificationSettings",
    "RecoverySettings",
    "RetrySettings",
    "Settings",
    "load_settings",
]

T = TypeVar("T")
DEFAULT_CONFIG_FILES = ("faultlens.yaml", "faultlens.yml")

_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$")  # as the catalog accepts them
_URL_FIELDS = frozenset(
    {"url", "endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "jaeger_url"}
)
_d = default_of


def _redacted_repr(self: Any) -> str:
    """A dataclass repr that never shows a credential: URLs without ``user:password@``,
    header values hidden (they are usually API keys or tokens)."""
    parts = []
    for f in fields(self):
        if not f.repr:
            continue
        value = getattr(self, f.name)
        if f.name in _URL_FIELDS and isinstance(value, str):
            value = redact_url(value)
        elif f.name == "headers" and value:
            value = dict.fromkeys(value, REDACTED)
        parts.append(f"{f.name}={value!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


# -- the schema (defaults: the settings table's) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_retries: int = _d("error_handling.retry.max_retries")
    base_delay: float = _d("error_handling.retry.base_delay")
    max_delay: float = _d("error_handling.retry.max_delay")
    exponential_backoff: bool = _d("error_handling.retry.exponential_backoff")
    jitter: bool = _d("error_handling.retry.jitter")


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = _d("error_handling.recovery.circuit_breaker.failure_threshold")
    timeout: float = _d("error_handling.recovery.circuit_breaker.timeout")


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    enabled: bool = _d("error_handling.recovery.enabled")
    circuit_breaker: BreakerSettings = field(default_factory=BreakerSettings)


@dataclass(frozen=True, slots=True)
class FrequencyThreshold:
    """More than ``count`` errors of ``code`` (in ``category``) within ``window`` seconds."""

    category: str
    code: str
    window: float = 300.0
    count: int = 10

    @property
    def key(self) -> str:
        return f"{self.category}:{self.code}"


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    error_frequency: tuple[FrequencyThreshold, ...] = _d(
        "error_handling.monitoring.alert_thresholds.error_frequency"
    )


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    enabled: bool = _d("error_handling.monitoring.enabled")
    interval: float = _d("error_handling.monitoring.interval")
    analysis_window: float = _d("error_handling.monitoring.analysis_window")
    alert_thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    anomaly_frequency: float | None = _d("error_handling.monitoring.anomaly_frequency")


@dataclass(frozen=True, slots=True, repr=False)
class ChannelSettings:
    type: str
    level: str = "ERROR"
    url: str | None = None
    severity_filter: tuple[Severity, ...] = ()
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def accepts(self, severity: Severity) -> bool:
        return not self.severity_filter or severity in self.severity_filter

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    enabled: bool = _d("error_handling.notifications.enabled")
    channels: tuple[ChannelSettings, ...] = _d("error_handling.notifications.channels")


@dataclass(frozen=True, slots=True)
class ErrorHandling:
    enabled: bool = _d("error_handling.enabled")
    log_level: str = _d("error_handling.log_level")
    retry: RetrySettings = field(default_factory=RetrySettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)

    @property
    def resilience(self) -> ResilienceDefaults:
        """The defaults retry, breakers and recovery use for unset arguments
        (``configure()`` installs them)."""
        retry, breaker = self.retry, self.recovery.circuit_breaker
        return ResilienceDefaults(
            attempts=retry.max_retries + 1,
            wait_initial=retry.base_delay,
            wait_max=retry.max_delay,
            wait_exp_base=ResilienceDefaults().wait_exp_base if retry.exponential_backoff else 1.0,
            wait_jitter=retry.jitter,
            failure_threshold=breaker.failure_threshold,
            open_timeout=breaker.timeout,
            recovery_enabled=self.recovery.enabled,
        )


@dataclass(frozen=True, slots=True, repr=False)
class ExporterSettings:
    type: str = _d("exporter.type")  # auto: otlp when an endpoint is configured, else none
    endpoint: str | None = _d("exporter.endpoint")
    protocol: str = _d("exporter.protocol")
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = _d("exporter.timeout")  # seconds (OTEL_EXPORTER_OTLP_TIMEOUT: ms)
    metrics_interval: float = _d("exporter.metrics_interval")
    insecure: bool | None = _d("exporter.insecure")
    # Signal-specific URLs (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _METRICS_ENDPOINT), used
    # verbatim as the OTel spec says; each falls back to ``endpoint``.
    traces_endpoint: str | None = _d("exporter.traces_endpoint")
    metrics_endpoint: str | None = _d("exporter.metrics_endpoint")
    # Signal-specific timeouts in seconds (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT /
    # _METRICS_TIMEOUT); each falls back to ``timeout``. Read them through timeout_for().
    traces_timeout: float | None = _d("exporter.traces_timeout")
    metrics_timeout: float | None = _d("exporter.metrics_timeout")
    logs_endpoint: str | None = _d("exporter.logs_endpoint")  # OTEL_EXPORTER_OTLP_LOGS_*
    logs_timeout: float | None = _d("exporter.logs_timeout")

    @property
    def active(self) -> str:
        if self.type == "auto":
            return "otlp" if (self.endpoint or self.traces_endpoint) else "none"
        return self.type

    def timeout_for(self, signal: str) -> float:
        """The export timeout in seconds for ``signal`` (``traces``, ``metrics``, ``logs``)."""
        own = {
            "traces": self.traces_timeout,
            "metrics": self.metrics_timeout,
            "logs": self.logs_timeout,
        }[signal]
        return self.timeout if own is None else own

    def signal_endpoint(self, signal: str) -> str | None:
        """The signal's own URL (``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``), if set."""
        return {
            "traces": self.traces_endpoint,
            "metrics": self.metrics_endpoint,
            "logs": self.logs_endpoint,
        }[signal]

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class ExceptionSettings:
    """How a recorded exception is signalled: the semantic conventions are moving it from
    span events to log records (``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``)."""

    signal: str = _d("exceptions.signal")  # span | logs | logs/dup
    event_name: str = _d("exceptions.event_name")
    bridge: bool = _d("exceptions.bridge")  # logs mode: the record back onto its span

    @property
    def span_events(self) -> bool:
        return self.signal != "logs"

    @property
    def log_records(self) -> bool:
        return self.signal != "span"


@dataclass(frozen=True, slots=True)
class JournalSettings:
    enabled: bool | None = _d("journal.enabled")  # None: on when no exporter is active
    path: str = _d("journal.path")
    max_bytes: int = _d("journal.max_bytes")
    max_files: int | None = _d("journal.max_files")  # deprecated: by age and max_total_bytes
    retention_days: float = _d("journal.retention_days")
    max_total_bytes: int | None = _d("journal.max_total_bytes")  # None: 100 MiB (see writer)
    fsync: str = _d("journal.fsync")  # always | batch | never

    def active(self, exporter_active: bool) -> bool:
        return (not exporter_active) if self.enabled is None else self.enabled


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    service_name: str
    service_version: str | None = _d("service_version")
    environment: str | None = _d("environment")
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sdk_disabled: bool = _d("sdk_disabled")
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    exceptions: ExceptionSettings = field(default_factory=ExceptionSettings)
    capture: Limits = field(default_factory=Limits)  # the capture layer's caps, as installed
    auto_modules: tuple[str, ...] = _d("auto_modules")
    catalogs: tuple[str, ...] = _d("catalogs")
    scrub_keys: tuple[str, ...] = _d("scrub_keys")
    scrub_patterns: tuple[str, ...] = _d("scrub_patterns")
    jaeger_url: str | None = _d("jaeger_url")
    error_handling: ErrorHandling = field(default_factory=ErrorHandling)
    config_file: str | None = None

    @property
    def enabled(self) -> bool:
        return self.error_handling.enabled and not self.sdk_disabled

    __repr__ = _redacted_repr


# -- the two entries of the schema that are not one value --------------------------------------


def _error_frequency(
    parent: _Reader, name: str, known_categories: frozenset[str]
) -> tuple[FrequencyThreshold, ...]:
    """``"category:CODE": {window: s, count: n}`` entries, each key and value checked."""
    freq = parent.sub(name)
    items: list[FrequencyThreshold] = []
    for k in list(freq.data):
        kk = str(k)
        freq.used.add(kk)
        cat, sep, code = kk.partition(":")
        if not sep or not cat or not code:
            raise freq.fail(kk, "keys are 'category:CODE', e.g. 'execution:EXE_TIMEOUT'")
        if not _CODE.match(code):
            raise freq.fail(
                kk,
                f"invalid code {code!r}; codes are letters, digits and _ (e.g. EXE_TIMEOUT)",
            )
        if cat not in known_categories:
            raise freq.fail(
                kk,
                f"unknown category {cat!r}; use one of: {', '.join(sorted(known_categories))}",
            )
        spec = _Reader(freq.data[k], freq.key(kk), freq.source)
        given: dict[str, Any] = {
            "window": spec.get("window", None, _number(0, strict=True)),
            "count": spec.get("count", None, _int(1)),
        }
        spec.finish()
        items.append(
            FrequencyThreshold(
                category=cat, code=code, **{k: v for k, v in given.items() if v is not None}
            )
        )
    freq.finish()
    return tuple(items)


_CHANNEL_TYPES = _choice("log", "webhook")


def _channels(parent: _Reader, name: str, known_categories: frozenset[str]) -> tuple[Any, ...]:
    """``[{type: log|webhook, level, url, severity_filter, timeout, headers}]``."""
    raw = parent.raw(name) or []
    if not isinstance(raw, list):
        raise parent.fail(name, "expected a list of {type: log|webhook, ...}")
    channels = []
    for i, ch in enumerate(raw):
        cr = _Reader(ch, f"{parent.key(name)}[{i}]", parent.source)
        ctype = cr.get("type", "", _CHANNEL_TYPES)
        if not ctype:
            raise cr.fail("type", "missing; use 'log' or 'webhook'")
        given: dict[str, Any] = {
            "url": cr.get("url", None, _url),
            "severity_filter": cr.get("severity_filter", None, _severities),
            "level": cr.get("level", None, _log_level),
            "timeout": cr.get("timeout", None, _number(0, strict=True)),
            "headers": cr.get("headers", None, _http_headers),
        }
        if ctype == "webhook" and not given["url"]:
            raise cr.fail("url", "a webhook channel needs a url, e.g. http://127.0.0.1:9099/hook")
        cr.finish()
        channels.append(
            ChannelSettings(type=ctype, **{k: v for k, v in given.items() if v is not None})
        )
    return tuple(channels)


_Parser = Callable[[_Reader, str, frozenset[str]], Any]
_STRUCTURED: dict[str, _Parser] = {
    "error_handling.monitoring.alert_thresholds.error_frequency": _error_frequency,
    "error_handling.notifications.channels": _channels,
}


# -- the sources -------------------------------------------------------------------------------


def _find_config_file(
    explicit: str | None, env: Mapping[str, str]
) -> tuple[str | None, str, str | None]:
    """The config file (absolute: relative paths inside it are read from its directory),
    and where its name came from (source, key) for an error about it."""
    row = option("config_file")
    if explicit:
        return os.path.abspath(explicit), "configure()", row.argument
    for name in row.env:
        if env.get(name):
            return os.path.abspath(env[name]), "environment", name
    for name in DEFAULT_CONFIG_FILES:
        if os.path.isfile(name):
            return os.path.abspath(name), "working directory", None
    return None, "<defaults>", None


def _read_file(path: str | None, source: str, key: str | None) -> Any:
    if not path:
        return {}
    if not os.path.exists(path):
        raise ConfigError(f"file not found: {path}; check the path", source=source, key=key)
    try:
        doc = load_yaml_file(path, error=CatalogError)
    except CatalogError as exc:
        raise ConfigError(str(exc).split(": ", 1)[-1], source=path) from None
    return {} if doc is None else doc


def _check_catalogs(paths: tuple[str, ...], base: str, source: str, key: str) -> tuple[str, ...]:
    """Catalog files as absolute paths (relative ones read from ``base``), each one checked
    to exist now, so that a typo names the file and the key that listed it."""
    out = []
    for i, p in enumerate(paths):
        full = os.path.normpath(os.path.join(base, os.path.expanduser(p)))
        where = f"{key}[{i}]" if len(paths) > 1 or source != "environment" else key
        if not os.path.exists(full):
            rel = "" if os.path.isabs(p) else f" (relative paths are read from {base})"
            raise ConfigError(
                f"catalog file {full} not found{rel}; check the path", source=source, key=where
            )
        if not os.path.isfile(full):
            raise ConfigError(
                f"catalog {full} is not a file; list YAML files", source=source, key=where
            )
        out.append(full)
    return tuple(out)


def _arguments(args: Mapping[str, Any]) -> dict[str, Any]:
    """configure()'s keywords, each through its row's converter, by Settings field.
    ``journal=`` takes True/False or the journal directory (which turns the journal on and
    wins over ``journal_path=``)."""
    out: dict[str, Any] = {}
    journal: bool | str | None = None
    for name, value in args.items():
        if value is None:
            continue
        row = ARGUMENTS.get(name)
        if row is None:
            raise unknown_argument(name)
        converted = _convert(row.argument_converter, value, "configure()", name)
        if name == "journal":
            journal = converted
        elif row.field is not None:
            out[row.field] = converted
    if isinstance(journal, str):
        out["journal.path"], out["journal.enabled"] = journal, True
    elif journal is not None:
        out["journal.enabled"] = journal
    return out


def _convert(conv: Callable[[Any, str], T], value: Any, source: str, key: str) -> T:
    try:
        return conv(value, key)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), source=source, key=key) from None


def _environment(env: Mapping[str, str]) -> dict[str, Any]:
    """Every option's variables: the first one set (and not blank) is read and converted."""
    out: dict[str, Any] = {}
    for row in OPTIONS:
        if row.field is None or row.field == "config_file":
            continue
        for name in row.env:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            value = _convert(row.env_converter, raw, "environment", name)
            if value is not None:  # FAULTLENS_JOURNAL=auto: the file decides
                out[row.field] = value
            break
    return out


class _FileLayer:
    """The file's values by Settings field; each section is read once, and a key no row
    reads is refused with a did-you-mean."""

    def __init__(self, doc: Any, source: str) -> None:
        self.source = source
        self.readers: dict[str, _Reader] = {"": _Reader(doc, "", source)}

    def section(self, path: str) -> _Reader:
        reader = self.readers.get(path)
        if reader is None:
            parent, _, name = path.rpartition(".")
            reader = self.section(parent).sub(name)
            self.readers[path] = reader
        return reader

    def read(self, known_categories: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for row in OPTIONS:
            if row.file is None or row.field is None:
                continue
            section, _, name = row.file.rpartition(".")
            reader = self.section(section)
            parse = _STRUCTURED.get(row.field)
            if parse is not None:
                value = parse(reader, name, known_categories)
                if value:
                    out[row.field] = value
                continue
            value = reader.get(name, None, row.convert)
            if value is not None:
                out[row.field] = value
        for reader in self.readers.values():  # a section before its subsections
            reader.finish()
        return out


# -- resolution ----------------------------------------------------------------------------------


def _default_service_name() -> str:
    prog = _run_module() or (os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "")
    if prog.endswith(".py"):
        prog = prog[:-3]
    return f"unknown_service:{prog}" if prog and prog != "-c" else "unknown_service:python"


def _run_module() -> str:
    """The module of ``python -m pkg.mod``, else "": sys.argv[0] is then "-m" (at start-up,
    e.g. under `faultlens run`) or the module's file (``.../pkg/__main__.py``)."""
    argv = sys.argv
    orig: list[str] = list(getattr(sys, "orig_argv", None) or [])
    n = len(argv)
    if not argv or len(orig) <= n or orig[len(orig) - n + 1 :] != argv[1:]:
        return ""  # no -m, or the application rewrote sys.argv
    token, before = orig[-n], orig[-n - 1]
    if before == "-m":
        return token
    return token[2:] if token.startswith("-m") and not token.startswith("--") else ""


def _identity(row: Option, layers: tuple[Mapping[str, Any], ...]) -> Any:
    """An identity option: in each layer its own value, then that layer's resource
    attribute; the argument layer over the environment over the file."""
    assert row.field is not None
    for layer in layers:
        own = layer.get(row.field)
        if own:
            return own
        attrs = layer.get("resource_attributes") or {}
        found = next((attrs[a] for a in row.resource_attributes if attrs.get(a)), None)
        if found:
            return found
    return None


def _resolve(
    layers: tuple[Mapping[str, Any], ...], sources: tuple[tuple[str, str | None], ...]
) -> tuple[dict[str, Any], dict[str, tuple[str, str | None]]]:
    """Each row's value from the first layer that has it, else its default; and which
    layer (source, base directory) it came from."""
    values: dict[str, Any] = {}
    origin: dict[str, tuple[str, str | None]] = {}
    for row in OPTIONS:
        f = row.field
        if f is None or f == "config_file":
            continue
        if f == "resource_attributes":  # merged key by key
            merged: dict[str, str] = {}
            for layer in reversed(layers):
                merged.update(layer.get(f) or {})
            values[f] = merged
            continue
        if row.resource_attributes:
            values[f] = _identity(row, layers)
            continue
        for layer, src in zip(layers, sources, strict=True):
            if f in layer:
                values[f], origin[f] = layer[f], src
                break
        else:
            default = row.default
            values[f] = dict(default) if isinstance(default, dict) else default
    return values, origin


def _build(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    """``cls`` from the resolved values of its fields (dotted paths), nested dataclasses
    built the same way; fields no row sets keep their defaults."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        path = prefix + f.name
        if path in values:
            kwargs[f.name] = values[path]
        elif f.default_factory is not MISSING and is_dataclass(f.default_factory):
            kwargs[f.name] = _build(f.default_factory, values, path + ".")  # type: ignore[arg-type]
    return cls(**kwargs)


def load_settings(
    args: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    known_categories: frozenset[str] | None = None,
) -> Settings:
    """Resolve Settings from arguments, environment and the YAML file, in that order."""
    args = dict(args or {})
    explicit = args.pop("config_file", None) if config_file is None else config_file
    if explicit is not None:
        row = option("config_file")
        config_file = _convert(row.convert, explicit, "configure()", "config_file")
    from_args = _arguments(args)
    env = os.environ if env is None else env
    cats = known_categories or frozenset(c.value for c in Category)

    path, path_source, path_key = _find_config_file(config_file, env)
    source = path or "<defaults>"
    from_file = _FileLayer(_read_file(path, path_source, path_key), source).read(cats)
    if from_file.get("catalogs") and path:
        from_file["catalogs"] = _check_catalogs(
            from_file["catalogs"], os.path.dirname(path), source, "faultlens.catalogs"
        )
    from_env = _environment(env)

    catalogs = option("catalogs")
    values, origin = _resolve(
        (from_args, from_env, from_file),
        (("configure()", catalogs.argument), ("environment", catalogs.env[0]), (source, None)),
    )
    if values["service_name"] is None:
        values["service_name"] = _default_service_name()
    catalogs_from, catalogs_key = origin.get("catalogs", (source, None))
    if catalogs_key is not None:  # an argument or a variable: relative to the working dir
        values["catalogs"] = _check_catalogs(
            values["catalogs"], os.getcwd(), catalogs_from, catalogs_key
        )
    _settle_retry_delays(values, origin, source)
    if values["exporter.type"] == "otlp" and not (
        values["exporter.endpoint"] or values["exporter.traces_endpoint"]
    ):
        grpc = values["exporter.protocol"] == "grpc"
        values["exporter.endpoint"] = f"http://127.0.0.1:{4317 if grpc else 4318}"
    values["config_file"] = path
    return _build(Settings, values)


def _settle_retry_delays(
    values: dict[str, Any], origin: Mapping[str, tuple[str, str | None]], source: str
) -> None:
    """``max_delay`` must be >= ``base_delay`` when the file sets both; when it sets one,
    the other follows it (as an explicit ``retry()`` argument wins over a default)."""
    base_key, max_key = "error_handling.retry.base_delay", "error_handling.retry.max_delay"
    base, top = values[base_key], values[max_key]
    if top >= base:
        return
    if base_key in origin and max_key in origin:
        raise ConfigError(
            f"must be >= base_delay ({base:g})", source=source, key=option(max_key).file
        )
    if max_key in origin:
        values[base_key] = top
    else:
        values[max_key] = base
