"""Settings: argument > FAULTLENS_*/OTEL_* environment > faultlens.yaml > default.

Resolved in configure(), never at import. Every value is validated here, once, so that a
typo fails at start-up with the file, the key and the fix, instead of silently doing nothing.
Every source goes through the same converters: ``configure(export_timeout="abc")``,
``FAULTLENS_...=abc`` and ``timeout: abc`` in the file fail with the same message, naming
the argument, the variable or the file and key. The ``error_handling`` section keeps the
schema existing configs already use.

``OTEL_*`` variables follow the OpenTelemetry specification: durations are milliseconds
(``OTEL_EXPORTER_OTLP_TIMEOUT=500`` is half a second), a boolean is true only when it is
``true`` in any case (anything else is false, with a warning when it is not ``false``), and
``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_EXPORTER_OTLP_HEADERS`` are percent-encoded
``key=value`` lists.

Relative ``catalogs:`` paths in a file are read from that file's directory. Error messages
and reprs never show a credential: URLs are printed without ``user:password@`` and header
values are hidden.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from .errors import Category, ConfigError, Severity
from .errors._catalog import load_yaml_file
from .resilience import ResilienceDefaults
from .scrub import REDACTED, redact_url

__all__ = [
    "AlertThresholds",
    "BreakerSettings",
    "ChannelSettings",
    "ErrorHandling",
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
_log = logging.getLogger("faultlens")

_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$")  # as the catalog accepts them
_URL_FIELDS = frozenset({"url", "endpoint", "traces_endpoint", "metrics_endpoint", "jaeger_url"})


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


# -- the schema ------------------------------------------------------------------------------


# The resilience layer's built-in defaults are the schema's: one value per setting, so a
# Retry() or CircuitBreaker() behaves the same before configure() and after it when nothing
# sets error_handling.retry / recovery.
_RD = ResilienceDefaults()


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_retries: int = _RD.attempts - 1
    base_delay: float = _RD.wait_initial
    max_delay: float = _RD.wait_max
    exponential_backoff: bool = _RD.wait_exp_base != 1.0
    jitter: bool = _RD.wait_jitter


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = _RD.failure_threshold
    timeout: float = _RD.open_timeout


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    enabled: bool = _RD.recovery_enabled
    circuit_breaker: BreakerSettings = field(default_factory=BreakerSettings)


@dataclass(frozen=True, slots=True)
class FrequencyThreshold:
    """More than ``count`` errors of ``code`` (in ``category``) within ``window`` seconds."""

    category: str
    code: str
    window: float
    count: int

    @property
    def key(self) -> str:
        return f"{self.category}:{self.code}"


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    error_frequency: tuple[FrequencyThreshold, ...] = ()


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    enabled: bool = True
    interval: float = 60.0
    analysis_window: float = 3600.0
    alert_thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    anomaly_frequency: float | None = None  # errors per hour


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
    enabled: bool = True
    channels: tuple[ChannelSettings, ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorHandling:
    enabled: bool = True
    log_level: str = "INFO"
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
            wait_exp_base=_RD.wait_exp_base if retry.exponential_backoff else 1.0,
            wait_jitter=retry.jitter,
            failure_threshold=breaker.failure_threshold,
            open_timeout=breaker.timeout,
            recovery_enabled=self.recovery.enabled,
        )


@dataclass(frozen=True, slots=True, repr=False)
class ExporterSettings:
    type: str = "auto"  # auto: otlp when an endpoint is configured, else none
    endpoint: str | None = None
    protocol: str = "grpc"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0  # seconds (OTEL_EXPORTER_OTLP_TIMEOUT is milliseconds)
    metrics_interval: float = 10.0
    insecure: bool | None = None
    # Signal-specific URLs (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _METRICS_ENDPOINT), used
    # verbatim as the OTel spec says; each falls back to ``endpoint``.
    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    # Signal-specific timeouts in seconds (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT /
    # _METRICS_TIMEOUT); each falls back to ``timeout``. Read them through timeout_for().
    traces_timeout: float | None = None
    metrics_timeout: float | None = None

    @property
    def active(self) -> str:
        if self.type == "auto":
            return "otlp" if (self.endpoint or self.traces_endpoint) else "none"
        return self.type

    def timeout_for(self, signal: str) -> float:
        """The export timeout in seconds for ``signal`` (``traces`` or ``metrics``)."""
        own = self.traces_timeout if signal == "traces" else self.metrics_timeout
        return self.timeout if own is None else own

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class JournalSettings:
    enabled: bool | None = None  # None: on when no exporter is active (the embedded default)
    path: str = ".faultlens/journal"
    max_bytes: int = 10 * 1024 * 1024
    max_files: int | None = None  # deprecated: retention is by age and max_total_bytes
    retention_days: float = 14.0
    max_total_bytes: int | None = None  # None: 100 MiB (or max_files x max_bytes if set)
    fsync: str = "batch"  # always | batch | never

    def active(self, exporter_active: bool) -> bool:
        return (not exporter_active) if self.enabled is None else self.enabled


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    max_message: int = 4096
    max_stacktrace: int = 16384
    rate_limit_burst: int = 100
    rate_limit_window: float = 60.0
    resources: bool = True


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    service_name: str
    service_version: str | None = None
    environment: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sdk_disabled: bool = False
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    auto_modules: tuple[str, ...] = ()
    catalogs: tuple[str, ...] = ()
    scrub_keys: tuple[str, ...] = ()
    scrub_patterns: tuple[str, ...] = ()
    jaeger_url: str | None = None
    error_handling: ErrorHandling = field(default_factory=ErrorHandling)
    config_file: str | None = None

    @property
    def enabled(self) -> bool:
        return self.error_handling.enabled and not self.sdk_disabled

    __repr__ = _redacted_repr


# -- validation helpers -----------------------------------------------------------------------


class _Reader:
    """Reads one mapping of a config source, naming ``source`` and the dotted key on error
    and rejecting keys it does not know (with a did-you-mean)."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"must be a mapping, got {type(data).__name__}", source=source, key=path or None
            )
        self.data = data
        self.path = path
        self.source = source
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=self.key(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def sub(self, name: str) -> _Reader:
        return _Reader(self.raw(name), self.key(name), self.source)

    def get(self, name: str, default: T, conv: Callable[[Any, str], T]) -> T:
        self.used.add(name)
        if name not in self.data or self.data[name] is None:
            return default
        try:
            return conv(self.data[name], self.key(name))
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise self.fail(name, str(exc)) from None

    def finish(self) -> None:
        unknown = [str(k) for k in self.data if k not in self.used]
        if unknown:
            k = unknown[0]
            guess = difflib.get_close_matches(k, list(self.used), n=1)
            hint = (
                f"; did you mean {guess[0]!r}?"
                if guess
                else f"; known keys: {', '.join(sorted(self.used))}"
            )
            raise ConfigError(f"unknown key {k!r}{hint}", source=self.source, key=self.key(k))


def _bool(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {v!r}")


def _number(
    minimum: float = 0.0, *, strict: bool = False, maximum: float | None = None
) -> Callable[[Any, str], float]:
    def conv(v: Any, key: str) -> float:
        if isinstance(v, bool):
            raise ValueError(f"expected a number, got {v!r}")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {v!r}") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {v!r}")
        if f < minimum or (strict and f == minimum):
            op = ">" if strict else ">="
            raise ValueError(f"must be {op} {minimum:g}, got {v!r}")
        if maximum is not None and f > maximum:
            raise ValueError(f"must be <= {maximum:g}, got {v!r}")
        return f

    return conv


# The longest wait a sleep or a lock timeout accepts (about 292 years on 64-bit Linux).
MAX_SECONDS = float(threading.TIMEOUT_MAX)


def _seconds(*, strict: bool = False) -> Callable[[Any, str], float]:
    """A duration in seconds that a sleep or a clock can take."""
    return _number(0, strict=strict, maximum=MAX_SECONDS)


def _int(minimum: int = 0) -> Callable[[Any, str], int]:
    def conv(v: Any, key: str) -> int:
        if isinstance(v, bool):
            raise ValueError(f"expected a whole number, got {v!r}")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
            v = int(v)
        if not isinstance(v, int):
            raise ValueError(f"expected a whole number, got {v!r}")
        if v < minimum:
            raise ValueError(f"must be >= {minimum}, got {v}")
        return v

    return conv


def _str(v: Any, key: str) -> str:
    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
        raise ValueError(f"expected a string, got {type(v).__name__}")
    return str(v)


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def conv(v: Any, key: str) -> str:
        s = _str(v, key).strip().lower()
        if s not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {v!r}")
        return s

    return conv


def _str_list(v: Any, key: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return tuple(p.strip() for p in re.split(r"[,\s]+", v) if p.strip())
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise ValueError("expected a list of strings")
    return tuple(v)


def _str_map(v: Any, key: str) -> dict[str, str]:
    """A mapping of names to scalar values (strings, numbers, booleans as ``true``/``false``),
    as strings. A list, mapping or null value is an error, never stringified."""
    if not isinstance(v, Mapping):
        raise ValueError("expected a mapping of names to strings")
    out: dict[str, str] = {}
    for k, x in v.items():
        if not isinstance(k, str) or not k.strip():
            raise ValueError(f"names must be non-empty strings, got {k!r}")
        if isinstance(x, bool):
            out[k] = "true" if x else "false"
        elif isinstance(x, (str, int, float)):
            out[k] = str(x)
        else:
            raise ValueError(f"{k!r}: expected a string, got {type(x).__name__}")
    return out


_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _http_headers(v: Any, key: str) -> dict[str, str]:
    """HTTP headers: token names and string values, as sent. A value YAML parsed into
    something else (``X-A: [1, 2]``, ``X-Flag: true``, ``X-Version: 2``) is rejected,
    never stringified into a header the receiver does not expect."""
    if not isinstance(v, Mapping):
        raise ValueError("expected a mapping of header names to string values")
    out: dict[str, str] = {}
    for name, value in v.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if not isinstance(value, str):  # the value itself may be a secret: name its type only
            raise ValueError(
                f"header {name!r}: expected a string value, got {type(value).__name__} "
                "(quote it in YAML)"
            )
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r}: a value must not contain line breaks")
        out[name] = value
    return out


def _name(v: Any, key: str) -> str:
    """A non-empty name (service name, version, environment)."""
    s = _str(v, key).strip()
    if not s:
        raise ValueError("must not be empty")
    return s


def _names(v: Any, key: str) -> tuple[str, ...]:
    """A list of non-empty names (an empty one would match everything)."""
    names = _str_list(v, key)
    if any(not n.strip() for n in names):
        raise ValueError("names must not be empty")
    return names


def _path(v: Any, key: str) -> str:
    if not isinstance(v, (str, os.PathLike)):
        raise ValueError(f"expected a path, got {type(v).__name__}")
    s = os.fspath(v)
    if not isinstance(s, str) or not s.strip():
        raise ValueError("expected a non-empty path")
    if "\0" in s:
        raise ValueError("a path cannot contain a NUL character")
    return s


def _path_list(v: Any, key: str) -> tuple[str, ...]:
    """One path or a list of paths (a string is one path: paths may contain commas)."""
    if isinstance(v, (str, os.PathLike)):
        return (_path(v, key),)
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"expected a list of paths, got {type(v).__name__}")
    return tuple(_path(x, key) for x in v)


def _protocol(v: Any, key: str) -> str:
    """OTEL_EXPORTER_OTLP_PROTOCOL's values; ``http`` is accepted for http/protobuf."""
    s = _str(v, key).strip().lower()
    if s == "http/json":
        raise ValueError(
            "http/json is not supported by the OpenTelemetry Python exporters; "
            "use grpc or http/protobuf"
        )
    if s not in ("grpc", "http/protobuf", "http"):
        raise ValueError(f"expected one of grpc, http/protobuf, got {v!r}")
    return "http/protobuf" if s == "http" else s


def _millis(v: Any, key: str) -> float:
    """An OTEL_* duration: milliseconds, as seconds."""
    return _number(0, strict=True)(v, key) / 1000.0


def _auto_bool(v: Any, key: str) -> bool | None:
    if isinstance(v, str) and v.strip().lower() == "auto":
        return None
    return _bool(v, key)


def _journal_arg(v: Any, key: str) -> bool | str:
    """configure(journal=...): True/False, or the journal directory."""
    if isinstance(v, bool):
        return v
    return _path(v, key)


def _processors(v: Any, key: str) -> Any:
    return v  # checked by configure(), which names the one that is not callable


def _log_level(v: Any, key: str) -> str:
    s = _str(v, key).upper()
    if s not in ("CRITICAL", "ERROR", "WARNING", "WARN", "INFO", "DEBUG"):
        raise ValueError(f"expected a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL), got {v!r}")
    return "WARNING" if s == "WARN" else s


def _url(v: Any, key: str) -> str:
    s = _str(v, key).strip()
    if not re.match(r"^https?://[^\s/]+", s):
        raise ValueError(
            f"expected an http(s) URL like http://127.0.0.1:4317, got {redact_url(s)!r}"
        )
    try:  # a port that is not a number, no host: fail here, not at every delivery
        parts = urllib.parse.urlsplit(s)
        parts.port  # noqa: B018 - parses the port, raises ValueError when it is not one
    except ValueError as exc:
        raise ValueError(f"not a usable URL: {exc}") from None
    if not parts.hostname:
        raise ValueError("not a usable URL: it names no host")
    return s


# -- sections -----------------------------------------------------------------------------------


def _error_handling(r: _Reader, known_categories: frozenset[str]) -> ErrorHandling:
    eh = ErrorHandling(
        enabled=r.get("enabled", True, _bool),
        log_level=r.get("log_level", "INFO", _log_level),
    )
    rr = r.sub("retry")
    retry = RetrySettings(
        max_retries=rr.get("max_retries", _RD.attempts - 1, _int(0)),
        base_delay=rr.get("base_delay", _RD.wait_initial, _seconds()),
        max_delay=rr.get("max_delay", _RD.wait_max, _seconds()),
        exponential_backoff=rr.get("exponential_backoff", _RD.wait_exp_base != 1.0, _bool),
        jitter=rr.get("jitter", _RD.wait_jitter, _bool),
    )
    rr.finish()
    if retry.max_delay < retry.base_delay:
        raise rr.fail("max_delay", f"must be >= base_delay ({retry.base_delay:g})")

    rec = r.sub("recovery")
    cb = rec.sub("circuit_breaker")
    breaker = BreakerSettings(
        failure_threshold=cb.get("failure_threshold", _RD.failure_threshold, _int(1)),
        timeout=cb.get("timeout", _RD.open_timeout, _seconds(strict=True)),
    )
    cb.finish()
    recovery = RecoverySettings(
        enabled=rec.get("enabled", _RD.recovery_enabled, _bool), circuit_breaker=breaker
    )
    rec.finish()

    mon = r.sub("monitoring")
    thresholds = mon.sub("alert_thresholds")
    freq = thresholds.sub("error_frequency")
    items: list[FrequencyThreshold] = []
    no_severities: tuple[Severity, ...] = ()
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
        spec = _Reader(freq.data[k], freq.key(kk), r.source)
        items.append(
            FrequencyThreshold(
                category=cat,
                code=code,
                window=spec.get("window", 300.0, _number(0, strict=True)),
                count=spec.get("count", 10, _int(1)),
            )
        )
        spec.finish()
    thresholds.finish()
    anomaly = mon.sub("anomaly_threshold")
    monitoring = MonitoringSettings(
        enabled=mon.get("enabled", True, _bool),
        interval=mon.get("interval", 60.0, _number(0, strict=True)),
        analysis_window=mon.get("analysis_window", 3600.0, _number(0, strict=True)),
        alert_thresholds=AlertThresholds(tuple(items)),
        anomaly_frequency=anomaly.get("frequency", None, _number(0, strict=True)),
    )
    anomaly.finish()
    mon.finish()

    nr = r.sub("notifications")
    raw_channels = nr.raw("channels") or []
    if not isinstance(raw_channels, list):
        raise nr.fail("channels", "expected a list of {type: log|webhook, ...}")
    channels = []
    for i, ch in enumerate(raw_channels):
        cr = _Reader(ch, f"{nr.key('channels')}[{i}]", r.source)
        ctype = cr.get("type", "", _choice("log", "webhook"))
        if not ctype:
            raise cr.fail("type", "missing; use 'log' or 'webhook'")
        url = cr.get("url", None, _url)
        if ctype == "webhook" and not url:
            raise cr.fail("url", "a webhook channel needs a url, e.g. http://127.0.0.1:9099/hook")
        sev = cr.get("severity_filter", no_severities, _severities)
        channels.append(
            ChannelSettings(
                type=ctype,
                level=cr.get("level", "ERROR", _log_level),
                url=url,
                severity_filter=sev,
                timeout=cr.get("timeout", 5.0, _number(0, strict=True)),
                headers=cr.get("headers", {}, _http_headers),
            )
        )
        cr.finish()
    notifications = NotificationSettings(
        enabled=nr.get("enabled", True, _bool), channels=tuple(channels)
    )
    nr.finish()
    r.finish()
    return replace(
        eh, retry=retry, recovery=recovery, monitoring=monitoring, notifications=notifications
    )


def _severities(v: Any, key: str) -> tuple[Severity, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise ValueError("expected a list like [CRITICAL, HIGH]")
    return tuple(Severity.parse(x) for x in v)


# -- sources ---------------------------------------------------------------------------------------


def _otel_bool(env: Mapping[str, str], name: str) -> bool:
    """An OTEL_* boolean: true only for ``true`` (any case); anything else is false, and a
    value other than ``false`` or empty is warned about (the OTel specification)."""
    v = (env.get(name) or "").strip().lower()
    if v == "true":
        return True
    if v not in ("", "false"):
        _log.warning(
            "faultlens: %s=%r is not 'true' or 'false'; reading it as false", name, env.get(name)
        )
    return False


def _env_bool(env: Mapping[str, str], name: str) -> bool | None:
    v = env.get(name)
    if v is None or v.strip() == "":
        return None
    try:
        return _bool(v, name)
    except ValueError:
        raise ConfigError(
            f"expected true or false, got {v!r}", source="environment", key=name
        ) from None


def _parse_kv_list(text: str, name: str, *, secret_values: bool = False) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS: ``k=v,k2=v2``, keys and
    values percent-encoded (``a%2Cb`` is ``a,b``; ``+`` stays a plus). With
    ``secret_values`` (headers) an error names the entry by position, never by content."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for i, part in enumerate(text.split(","), 1):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            shown = f"entry {i}" if secret_values else f"entry {part.strip()!r}"
            raise ConfigError(
                f"malformed {shown}; use key=value pairs separated by commas "
                "(percent-encode a comma or '=' inside a value)",
                source="environment",
                key=name,
            )
        out[unquote(k.strip())] = unquote(v.strip())
    return out


def _find_config_file(
    explicit: str | None, env: Mapping[str, str]
) -> tuple[str | None, str, str | None]:
    """The config file (absolute: relative paths inside it are read from its directory),
    and where its name came from (source, key) for an error about it."""
    if explicit:
        return os.path.abspath(explicit), "configure()", "config_file"
    if env.get("FAULTLENS_CONFIG"):
        return os.path.abspath(env["FAULTLENS_CONFIG"]), "environment", "FAULTLENS_CONFIG"
    for name in DEFAULT_CONFIG_FILES:
        if os.path.isfile(name):
            return os.path.abspath(name), "working directory", None
    return None, "<defaults>", None


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


# configure()'s keyword arguments and the converter each goes through: the same ones the
# environment and the file use, so that every source rejects a value the same way.
_ARGUMENTS: dict[str, Callable[[Any, str], Any]] = {
    "service_name": _name,
    "service_version": _name,
    "environment": _name,
    "endpoint": _url,
    "protocol": _protocol,
    "headers": _http_headers,
    "exporter": _choice("auto", "otlp", "console", "none"),
    "journal": _journal_arg,
    "journal_path": _path,
    "journal_enabled": _auto_bool,
    "auto_modules": _str_list,
    "catalogs": _path_list,
    "enabled": _bool,
    "resource_attributes": _str_map,
    "rate_limit": _int(0),
    "capture_resources": _bool,
    "jaeger_url": _url,
    "metrics_interval": _number(0, strict=True),
    "export_timeout": _number(0, strict=True),
    "scrub_keys": _names,
    "scrub_patterns": _str_list,
    "processors": _processors,
}


def _check_args(args: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in args.items():
        if value is None:
            continue
        conv = _ARGUMENTS.get(name)
        if conv is None:
            guess = difflib.get_close_matches(str(name), list(_ARGUMENTS), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            raise ConfigError(f"unknown option{hint}", source="configure()", key=str(name))
        try:
            out[name] = conv(value, name)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), source="configure()", key=name) from None
    return out


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


def load_settings(
    args: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    known_categories: frozenset[str] | None = None,
) -> Settings:
    """Resolve Settings from arguments, environment and the YAML file, in that order."""
    args = _check_args(args or {})
    env = os.environ if env is None else env
    cats = known_categories or frozenset(c.value for c in Category)

    path, path_source, path_key = _find_config_file(config_file, env)
    doc: Any = {}
    if path:
        from .errors import CatalogError

        if not os.path.exists(path):
            raise ConfigError(
                f"file not found: {path}; check the path", source=path_source, key=path_key
            )
        try:
            doc = load_yaml_file(path, error=CatalogError)
        except CatalogError as exc:
            raise ConfigError(str(exc).split(": ", 1)[-1], source=path) from None
        if doc is None:
            doc = {}
    source = path or "<defaults>"
    top = _Reader(doc, "", source)
    fl = top.sub("faultlens")
    eh = _error_handling(top.sub("error_handling"), cats)
    top.finish()

    # faultlens: section (the file layer)
    svc = fl.sub("service")
    file_service: dict[str, Any] = {
        "name": svc.get("name", None, _name),
        "version": svc.get("version", None, _name),
        "environment": svc.get("environment", None, _name),
    }
    svc.finish()
    ex = fl.sub("exporter")
    file_exporter: dict[str, Any] = {
        "type": ex.get("type", None, _choice("auto", "otlp", "console", "none")),
        "endpoint": ex.get("endpoint", None, _url),
        "protocol": ex.get("protocol", None, _protocol),
        "headers": ex.get("headers", None, _http_headers),
        "timeout": ex.get("timeout", None, _number(0, strict=True)),
        "metrics_interval": ex.get("metrics_interval", None, _number(0, strict=True)),
        "insecure": ex.get("insecure", None, _bool),
    }
    ex.finish()
    jr = fl.sub("journal")
    file_journal: dict[str, Any] = {
        "enabled": jr.get("enabled", None, _auto_bool),
        "path": jr.get("path", None, _path),
        "max_bytes": jr.get("max_bytes", None, _int(4096)),
        "max_files": jr.get("max_files", None, _int(1)),
        "max_total_bytes": jr.get("max_total_bytes", None, _int(4096)),
        "retention_days": jr.get("retention_days", None, _number(0, strict=True)),
        "fsync": jr.get("fsync", None, _choice("always", "batch", "never")),
    }
    jr.finish()
    cr = fl.sub("capture")
    file_capture: dict[str, Any] = {
        "max_message": cr.get("max_message", None, _int(64)),
        "max_stacktrace": cr.get("max_stacktrace", None, _int(256)),
        "resources": cr.get("resources", None, _bool),
    }
    rl = cr.sub("rate_limit")
    file_capture["rate_limit_burst"] = rl.get("burst", None, _int(0))
    file_capture["rate_limit_window"] = rl.get("window", None, _number(0, strict=True))
    rl.finish()
    cr.finish()
    ai = fl.sub("auto_instrumentation")
    file_auto = ai.get("modules", None, _str_list)
    ai.finish()
    file_catalogs = fl.get("catalogs", None, _path_list)
    if file_catalogs and path:
        file_catalogs = _check_catalogs(
            file_catalogs, os.path.dirname(path), source, "faultlens.catalogs"
        )
    sr = fl.sub("scrub")
    file_scrub_keys = sr.get("keys", None, _names)
    file_scrub_patterns = sr.get("patterns", None, _str_list)
    sr.finish()
    file_jaeger = fl.get("jaeger_url", None, _url)
    file_resource = fl.get("resource_attributes", None, _str_map)
    fl.finish()

    # environment layer
    def e(name: str) -> str | None:
        v = env.get(name)
        return v if v is not None and v.strip() != "" else None

    def env_conv(name: str, conv: Callable[[Any, str], T]) -> T | None:
        v = e(name)
        if v is None:
            return None
        try:
            return conv(v, name)
        except ValueError as exc:
            raise ConfigError(str(exc), source="environment", key=name) from None

    sdk_disabled = _otel_bool(env, "OTEL_SDK_DISABLED")
    env_enabled = _env_bool(env, "FAULTLENS_ENABLED")
    env_resource: dict[str, str] = {}
    if e("OTEL_RESOURCE_ATTRIBUTES"):
        env_resource = _parse_kv_list(env["OTEL_RESOURCE_ATTRIBUTES"], "OTEL_RESOURCE_ATTRIBUTES")
    arg_resource: dict[str, str] = args.get("resource_attributes") or {}
    file_resource = file_resource or {}
    resource_attrs: dict[str, str] = {**file_resource, **env_resource, **arg_resource}

    def layered(arg: str, env_names: tuple[str, ...], file_value: Any, attr: str) -> Any:
        """An identity setting: each layer's own option first, then that layer's resource
        attribute (OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES,
        as the OTel specification says), the argument layer over the environment over the
        file."""
        attrs = (
            (attr, "deployment.environment") if attr == "deployment.environment.name" else (attr,)
        )

        def from_attrs(layer: Mapping[str, str]) -> str | None:
            return next((layer[a] for a in attrs if layer.get(a)), None)

        for value in (
            args.get(arg),
            from_attrs(arg_resource),
            *(e(n) for n in env_names),
            from_attrs(env_resource),
            file_value,
            from_attrs(file_resource),
        ):
            if value:
                return value
        return None

    def pick(arg: str, env_value: Any, file_value: Any, default: Any) -> Any:
        if arg in args:
            return args[arg]
        if env_value is not None:
            return env_value
        if file_value is not None:
            return file_value
        return default

    service_name = (
        layered(
            "service_name",
            ("FAULTLENS_SERVICE_NAME", "OTEL_SERVICE_NAME"),
            file_service["name"],
            "service.name",
        )
        or _default_service_name()
    )
    env_headers = None
    if e("OTEL_EXPORTER_OTLP_HEADERS"):
        name = "OTEL_EXPORTER_OTLP_HEADERS"
        env_headers = _parse_kv_list(env[name], name, secret_values=True)
        try:
            env_headers = _http_headers(env_headers, name)
        except ValueError as exc:
            raise ConfigError(str(exc), source="environment", key=name) from None
    # OTEL_* durations are milliseconds (the OTel specification): 500 is half a second.
    env_timeout = env_conv("OTEL_EXPORTER_OTLP_TIMEOUT", _millis)
    env_interval = env_conv("OTEL_METRIC_EXPORT_INTERVAL", _millis)
    env_insecure = (
        _otel_bool(env, "OTEL_EXPORTER_OTLP_INSECURE") if e("OTEL_EXPORTER_OTLP_INSECURE") else None
    )
    exporter = ExporterSettings(
        type=pick(
            "exporter",
            env_conv("FAULTLENS_EXPORTER", _choice("auto", "otlp", "console", "none")),
            file_exporter["type"],
            "auto",
        ),
        endpoint=pick(
            "endpoint",
            env_conv("FAULTLENS_ENDPOINT", _url) or env_conv("OTEL_EXPORTER_OTLP_ENDPOINT", _url),
            file_exporter["endpoint"],
            None,
        ),
        protocol=pick(
            "protocol",
            env_conv("OTEL_EXPORTER_OTLP_PROTOCOL", _protocol),
            file_exporter["protocol"],
            "grpc",
        ),
        headers=pick("headers", env_headers, file_exporter["headers"], {}),
        timeout=pick("export_timeout", env_timeout, file_exporter["timeout"], 10.0),
        metrics_interval=pick(
            "metrics_interval", env_interval, file_exporter["metrics_interval"], 10.0
        ),
        insecure=env_insecure if env_insecure is not None else file_exporter["insecure"],
        traces_endpoint=env_conv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", _url),
        metrics_endpoint=env_conv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", _url),
        traces_timeout=env_conv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", _millis),
        metrics_timeout=env_conv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", _millis),
    )
    if exporter.type == "otlp" and not (exporter.endpoint or exporter.traces_endpoint):
        exporter = replace(
            exporter,
            endpoint="http://127.0.0.1:4317"
            if exporter.protocol == "grpc"
            else "http://127.0.0.1:4318",
        )

    journal_arg = args.get("journal")
    journal_path_arg = args.get("journal_path")
    if isinstance(journal_arg, str):
        journal_path_arg, journal_arg = journal_arg, True
    journal = JournalSettings(
        enabled=pick(
            "journal_enabled",
            env_conv("FAULTLENS_JOURNAL", _auto_bool),
            file_journal["enabled"],
            None,
        )
        if journal_arg is None
        else bool(journal_arg),
        path=journal_path_arg
        or env_conv("FAULTLENS_JOURNAL_PATH", _path)
        or file_journal["path"]
        or ".faultlens/journal",
        max_bytes=file_journal["max_bytes"] or 10 * 1024 * 1024,
        max_files=file_journal["max_files"],
        max_total_bytes=file_journal["max_total_bytes"],
        retention_days=file_journal["retention_days"] or 14.0,
        fsync=env_conv("FAULTLENS_JOURNAL_FSYNC", _choice("always", "batch", "never"))
        or file_journal["fsync"]
        or "batch",
    )
    capture = CaptureSettings(
        max_message=file_capture["max_message"] or 4096,
        max_stacktrace=file_capture["max_stacktrace"] or 16384,
        rate_limit_burst=pick(
            "rate_limit",
            env_conv("FAULTLENS_RATE_LIMIT", _int(0)),
            file_capture["rate_limit_burst"],
            100,
        ),
        rate_limit_window=file_capture["rate_limit_window"] or 60.0,
        resources=file_capture["resources"] if file_capture["resources"] is not None else True,
    )
    if "capture_resources" in args:
        capture = replace(capture, resources=args["capture_resources"])
    enabled = pick("enabled", env_enabled, None, None)
    if enabled is not None:
        eh = replace(eh, enabled=enabled)
    if "catalogs" in args:
        catalogs = _check_catalogs(args["catalogs"], os.getcwd(), "configure()", "catalogs")
    elif e("FAULTLENS_CATALOGS"):
        env_catalogs = env_conv("FAULTLENS_CATALOGS", _paths) or ()
        catalogs = _check_catalogs(env_catalogs, os.getcwd(), "environment", "FAULTLENS_CATALOGS")
    else:
        catalogs = tuple(file_catalogs or ())
    settings = Settings(
        service_name=str(service_name),
        service_version=layered(
            "service_version",
            ("FAULTLENS_SERVICE_VERSION",),
            file_service["version"],
            "service.version",
        ),
        environment=layered(
            "environment",
            ("FAULTLENS_ENVIRONMENT",),
            file_service["environment"],
            "deployment.environment.name",
        ),
        resource_attributes=resource_attrs,
        sdk_disabled=sdk_disabled,
        exporter=exporter,
        journal=journal,
        capture=capture,
        auto_modules=tuple(
            pick("auto_modules", env_conv("FAULTLENS_AUTO_MODULES", _str_list), file_auto, ())
        ),
        catalogs=catalogs,
        scrub_keys=tuple(pick("scrub_keys", None, file_scrub_keys, ())),
        scrub_patterns=tuple(pick("scrub_patterns", None, file_scrub_patterns, ())),
        jaeger_url=pick("jaeger_url", env_conv("FAULTLENS_JAEGER_URL", _url), file_jaeger, None),
        error_handling=eh,
        config_file=path,
    )
    for pattern in settings.scrub_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"invalid regular expression {pattern!r}: {exc}",
                source=source,
                key="faultlens.scrub.patterns",
            ) from None
    return settings


def _paths(v: Any, key: str) -> tuple[str, ...]:
    """A list of paths in one environment variable, separated like PATH."""
    return tuple(p for p in str(v).split(os.pathsep) if p)
