"""The settings table: one row per option, the one place that says what each setting is called
in every source, what it defaults to and how a value is checked.

Each ``Option`` names where its value lands in ``Settings`` (``field``), its ``configure()``
keyword (``argument``), its variables (``env``: the first one set wins), its faultlens.yaml key
(``file``), its default, the converter every source goes through (``convert``; variables may
have their own form, ``env_convert``: ``OTEL_*`` durations are milliseconds) and one line of
documentation. ``faultlens._config.load_settings`` resolves every row the same way
(argument > variable > file > default), its errors are generated from the rows (the source and
the argument, variable or file key), and the README's configuration reference is rendered
from them::

    python scripts/settings_table.py --markdown          # print the table
    python scripts/settings_table.py --update README.md  # rewrite it between the markers

Converters take ``(value, key)`` and return the checked value or raise ``ValueError`` with a
message that says what was expected; the loader turns it into a ``ConfigError`` naming the
source and the key, so that an argument, a variable and a file key fail with the same words.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .capture import Limits
from .errors import ConfigError, Severity
from .resilience import ResilienceDefaults
from .scrub import redact_url

__all__ = [
    "ARGUMENTS",
    "OPTIONS",
    "Converter",
    "Option",
    "default_of",
    "markdown_table",
    "option",
    "unknown_argument",
]

T = TypeVar("T")
Converter = Callable[[Any, str], Any]
_log = logging.getLogger("faultlens")


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


def _severities(v: Any, key: str) -> tuple[Severity, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise ValueError("expected a list like [CRITICAL, HIGH]")
    return tuple(Severity.parse(x) for x in v)


def _otel_bool(v: Any, key: str) -> bool:
    """An OTEL_* boolean: true only for ``true`` (any case); anything else is false, and a
    value other than ``false`` or empty is warned about (the OTel specification)."""
    s = str(v).strip().lower()
    if s == "true":
        return True
    if s not in ("", "false"):
        _log.warning("faultlens: %s=%r is not 'true' or 'false'; reading it as false", key, v)
    return False


def _kv_pairs(text: str, *, secret_values: bool = False) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS: ``k=v,k2=v2``, keys and
    values percent-encoded (``a%2Cb`` is ``a,b``; ``+`` stays a plus). With
    ``secret_values`` (headers) an error names the entry by position, never by content."""
    out: dict[str, str] = {}
    for i, part in enumerate(str(text).split(","), 1):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            shown = f"entry {i}" if secret_values else f"entry {part.strip()!r}"
            raise ValueError(
                f"malformed {shown}; use key=value pairs separated by commas "
                "(percent-encode a comma or '=' inside a value)"
            )
        out[urllib.parse.unquote(k.strip())] = urllib.parse.unquote(v.strip())
    return out


def _kv_list(v: Any, key: str) -> dict[str, str]:
    return _kv_pairs(v)


def _otlp_headers(v: Any, key: str) -> dict[str, str]:
    return _http_headers(_kv_pairs(v, secret_values=True), key)


def _paths(v: Any, key: str) -> tuple[str, ...]:
    """A list of paths in one environment variable, separated like PATH."""
    return tuple(p for p in str(v).split(os.pathsep) if p)


def _regexes(v: Any, key: str) -> tuple[str, ...]:
    """Regular expressions, each compiled now so a bad one names its option."""
    patterns = _str_list(v, key)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return patterns


EXCEPTION_SIGNALS = ("span", "logs", "logs/dup")
_EVENT_NAME = re.compile(r"^(?:[a-z][a-z0-9_]*\.)*exception$")


def _exception_signal(v: Any, key: str) -> str:
    s = _str(v, key).strip().lower()
    if s not in EXCEPTION_SIGNALS:
        raise ValueError(
            f"expected one of {', '.join(EXCEPTION_SIGNALS)} (span events, log records, "
            f"or both), got {v!r}"
        )
    return s


def _exception_signal_env(v: Any, key: str) -> str | None:
    """``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`` is shared with other instrumentations: a
    comma-separated list in which only ``logs`` and ``logs/dup`` concern us (``logs/dup``
    wins, as ``http/dup`` does for the HTTP opt-in); other values belong to someone else.
    faultlens's own variable is strict."""
    if not key.startswith("OTEL_"):
        return _exception_signal(v, key)
    tokens = {t.strip().lower() for t in _str(v, key).split(",")}
    if "logs/dup" in tokens:
        return "logs/dup"
    return "logs" if "logs" in tokens else None


def _event_name(v: Any, key: str) -> str:
    s = _str(v, key).strip()
    if not _EVENT_NAME.match(s):
        raise ValueError(
            "expected `exception` or `<domain>.exception` (lowercase dotted words, "
            f"e.g. `payments.exception`), got {v!r}"
        )
    return s


def _structured(v: Any, key: str) -> Any:
    """Marks a row whose file value is read by its own parser in ``_config`` (a mapping or a
    list of entries, each entry's keys checked and named)."""
    return v


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: where it lands in ``Settings``, its name in each source, its default,
    how a value is checked, and one line for the README."""

    field: str | None  # dotted path in Settings; None: configure() keeps it (processors)
    doc: str
    convert: Converter  # an argument's and a file value's converter
    default: Any = None
    argument: str | None = None  # configure() keyword
    env: tuple[str, ...] = ()  # variables, in order: the first one set wins
    file: str | None = None  # faultlens.yaml key path
    env_convert: Converter | None = None  # the variables' form when it differs (OTEL_* ms)
    argument_convert: Converter | None = None  # the argument's form when it differs
    # identity options: also taken from each layer's resource attributes, after the option's
    # own value in that layer (OTEL_SERVICE_NAME wins over service.name in
    # OTEL_RESOURCE_ATTRIBUTES, as the OpenTelemetry specification says)
    resource_attributes: tuple[str, ...] = ()
    default_doc: str | None = None  # the default as documented, when it is computed

    @property
    def name(self) -> str:
        """How the option is named in messages and docs: its file key, else its argument,
        else its first variable."""
        return self.file or self.argument or self.env[0]

    @property
    def env_converter(self) -> Converter:
        return self.env_convert or self.convert

    @property
    def argument_converter(self) -> Converter:
        return self.argument_convert or self.convert


_RD = ResilienceDefaults()  # the resilience layer's built-in defaults are the schema's
_LIMITS = Limits()  # and so are the capture layer's caps
_EXPORTERS = _choice("auto", "otlp", "console", "none")
_FSYNC = _choice("always", "batch", "never")

OPTIONS: tuple[Option, ...] = (
    Option(
        "config_file",
        "The configuration file; relative paths inside it are read from its directory",
        _path,
        argument="config_file",
        env=("FAULTLENS_CONFIG",),
        default_doc="`./faultlens.yaml` or `./faultlens.yml` when present",
    ),
    # -- service identity (OTel resource)
    Option(
        "service_name",
        "`service.name`; also read from each source's resource attributes",
        _name,
        argument="service_name",
        env=("FAULTLENS_SERVICE_NAME", "OTEL_SERVICE_NAME"),
        file="faultlens.service.name",
        resource_attributes=("service.name",),
        default_doc="`unknown_service:<program>`",
    ),
    Option(
        "service_version",
        "`service.version`; also read from each source's resource attributes",
        _name,
        argument="service_version",
        env=("FAULTLENS_SERVICE_VERSION",),
        file="faultlens.service.version",
        resource_attributes=("service.version",),
    ),
    Option(
        "environment",
        "`deployment.environment.name`; also read from each source's resource attributes",
        _name,
        argument="environment",
        env=("FAULTLENS_ENVIRONMENT",),
        file="faultlens.service.environment",
        resource_attributes=("deployment.environment.name", "deployment.environment"),
    ),
    Option(
        "resource_attributes",
        "Resource attributes; the sources are merged key by key (argument over variable over file)",
        _str_map,
        {},
        argument="resource_attributes",
        env=("OTEL_RESOURCE_ATTRIBUTES",),
        file="faultlens.resource_attributes",
        env_convert=_kv_list,
    ),
    Option(
        "sdk_disabled",
        "Record through no-op providers (OTel: only `true` disables)",
        _otel_bool,
        False,
        env=("OTEL_SDK_DISABLED",),
    ),
    Option(
        "error_handling.enabled",
        "Record errors at all",
        _bool,
        True,
        argument="enabled",
        env=("FAULTLENS_ENABLED",),
        file="error_handling.enabled",
    ),
    # -- export
    Option(
        "exporter.type",
        "`otlp`, `console`, `none`, or `auto`: otlp when an endpoint is set, else none",
        _EXPORTERS,
        "auto",
        argument="exporter",
        env=("FAULTLENS_EXPORTER",),
        file="faultlens.exporter.type",
    ),
    Option(
        "exporter.endpoint",
        "OTLP endpoint (an http(s) URL)",
        _url,
        argument="endpoint",
        env=("FAULTLENS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        file="faultlens.exporter.endpoint",
        default_doc="none; with exporter `otlp`: `http://127.0.0.1:4317` (4318 for http)",
    ),
    Option(
        "exporter.protocol",
        "`grpc` or `http/protobuf` (`http` for short)",
        _protocol,
        "grpc",
        argument="protocol",
        env=("OTEL_EXPORTER_OTLP_PROTOCOL",),
        file="faultlens.exporter.protocol",
    ),
    Option(
        "exporter.headers",
        "Headers sent with every export (values are never shown)",
        _http_headers,
        {},
        argument="headers",
        env=("OTEL_EXPORTER_OTLP_HEADERS",),
        file="faultlens.exporter.headers",
        env_convert=_otlp_headers,
    ),
    Option(
        "exporter.timeout",
        "Export timeout, seconds (the variable: milliseconds)",
        _number(0, strict=True),
        10.0,
        argument="export_timeout",
        env=("OTEL_EXPORTER_OTLP_TIMEOUT",),
        file="faultlens.exporter.timeout",
        env_convert=_millis,
    ),
    Option(
        "exporter.metrics_interval",
        "Seconds between metric exports (the variable: milliseconds)",
        _number(0, strict=True),
        10.0,
        argument="metrics_interval",
        env=("OTEL_METRIC_EXPORT_INTERVAL",),
        file="faultlens.exporter.metrics_interval",
        env_convert=_millis,
    ),
    Option(
        "exporter.insecure",
        "gRPC without TLS (the variable: only `true` is true)",
        _bool,
        env=("OTEL_EXPORTER_OTLP_INSECURE",),
        file="faultlens.exporter.insecure",
        env_convert=_otel_bool,
        default_doc="true for an `http://` endpoint",
    ),
    Option(
        "exporter.traces_endpoint",
        "Traces URL, used as given",
        _url,
        env=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",),
        default_doc="the endpoint",
    ),
    Option(
        "exporter.metrics_endpoint",
        "Metrics URL, used as given",
        _url,
        env=("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",),
        default_doc="the endpoint",
    ),
    Option(
        "exporter.traces_timeout",
        "Traces export timeout, milliseconds",
        _millis,
        env=("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",),
        default_doc="the export timeout",
    ),
    Option(
        "exporter.metrics_timeout",
        "Metrics export timeout, milliseconds",
        _millis,
        env=("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",),
        default_doc="the export timeout",
    ),
    Option(
        "exporter.logs_endpoint",
        "Logs URL, used as given (exception log records)",
        _url,
        env=("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",),
        default_doc="the endpoint",
    ),
    Option(
        "exporter.logs_timeout",
        "Logs export timeout, milliseconds",
        _millis,
        env=("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",),
        default_doc="the export timeout",
    ),
    # -- how a recorded exception is signalled (semantic conventions' migration)
    Option(
        "exceptions.signal",
        "`span` (an `exception` span event), `logs` (an `exception` log record) or `logs/dup` "
        "(both); the OTel variable is a list of which `logs`/`logs/dup` count",
        _exception_signal,
        "span",
        argument="exception_signal",
        env=("FAULTLENS_EXCEPTION_SIGNAL", "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"),
        file="faultlens.exceptions.signal",
        env_convert=_exception_signal_env,
    ),
    Option(
        "exceptions.event_name",
        "The log record's event name: `exception` or `<domain>.exception`",
        _event_name,
        "exception",
        argument="exception_event_name",
        env=("FAULTLENS_EXCEPTION_EVENT_NAME",),
        file="faultlens.exceptions.event_name",
    ),
    Option(
        "exceptions.bridge",
        "In `logs` mode, copy each exception log record onto its span as a span event (so "
        "Jaeger still shows it); off for backends that read the logs",
        _bool,
        True,
        argument="exception_bridge",
        env=("FAULTLENS_EXCEPTION_BRIDGE",),
        file="faultlens.exceptions.bridge",
    ),
    Option(
        "jaeger_url",
        "Jaeger's address, for trace links in reports",
        _url,
        argument="jaeger_url",
        env=("FAULTLENS_JAEGER_URL",),
        file="faultlens.jaeger_url",
    ),
    # -- the local journal
    Option(
        "journal.enabled",
        "Keep the local journal: `true`, `false` or `auto` (`configure(journal=...)`: "
        "True, False, or the directory, which turns it on)",
        _auto_bool,
        argument="journal",
        env=("FAULTLENS_JOURNAL",),
        file="faultlens.journal.enabled",
        argument_convert=_journal_arg,
        default_doc="`auto`: on when no exporter is active",
    ),
    Option(
        "journal.path",
        "Journal directory",
        _path,
        ".faultlens/journal",
        argument="journal_path",
        env=("FAULTLENS_JOURNAL_PATH",),
        file="faultlens.journal.path",
    ),
    Option(
        "journal.max_bytes",
        "Size of one journal file, bytes (>= 4096)",
        _int(4096),
        10 * 1024 * 1024,
        file="faultlens.journal.max_bytes",
        default_doc="10 MiB",
    ),
    Option(
        "journal.max_files",
        "Deprecated: retention is by age and `max_total_bytes`",
        _int(1),
        file="faultlens.journal.max_files",
    ),
    Option(
        "journal.max_total_bytes",
        "Size of all journal files, bytes (>= 4096)",
        _int(4096),
        file="faultlens.journal.max_total_bytes",
        default_doc="100 MiB (or `max_files` x `max_bytes`)",
    ),
    Option(
        "journal.retention_days",
        "Days journal files are kept",
        _number(0, strict=True),
        14.0,
        file="faultlens.journal.retention_days",
    ),
    Option(
        "journal.fsync",
        "`always`, `batch` or `never`",
        _FSYNC,
        "batch",
        env=("FAULTLENS_JOURNAL_FSYNC",),
        file="faultlens.journal.fsync",
    ),
    # -- capture
    Option(
        "capture.max_message",
        "Longest exception message kept, characters (>= 64)",
        _int(64),
        _LIMITS.max_message,
        file="faultlens.capture.max_message",
    ),
    Option(
        "capture.max_stacktrace",
        "Longest stack trace kept, characters (>= 256)",
        _int(256),
        _LIMITS.max_stacktrace,
        file="faultlens.capture.max_stacktrace",
    ),
    Option(
        "capture.rate_limit_burst",
        "Events per fingerprint per window before suppression (counted)",
        _int(0),
        _LIMITS.rate_limit_burst,
        argument="rate_limit",
        env=("FAULTLENS_RATE_LIMIT",),
        file="faultlens.capture.rate_limit.burst",
    ),
    Option(
        "capture.rate_limit_window",
        "The rate limit's window, seconds",
        _number(0, strict=True),
        _LIMITS.rate_limit_window,
        file="faultlens.capture.rate_limit.window",
    ),
    Option(
        "capture.resources",
        "Attach a process resource snapshot to every error",
        _bool,
        _LIMITS.resources,
        argument="capture_resources",
        file="faultlens.capture.resources",
    ),
    Option(
        "auto_modules",
        "Modules `faultlens run` instruments (globs)",
        _str_list,
        (),
        argument="auto_modules",
        env=("FAULTLENS_AUTO_MODULES",),
        file="faultlens.auto_instrumentation.modules",
    ),
    Option(
        "catalogs",
        "Error-code catalog files (the variable: separated like PATH)",
        _path_list,
        (),
        argument="catalogs",
        env=("FAULTLENS_CATALOGS",),
        file="faultlens.catalogs",
        env_convert=_paths,
    ),
    Option(
        "scrub_keys",
        "More keys whose values are redacted",
        _names,
        (),
        file="faultlens.scrub.keys",
    ),
    Option(
        "scrub_patterns",
        "More regular expressions redacted from messages and stacks",
        _regexes,
        (),
        file="faultlens.scrub.patterns",
    ),
    Option(
        None,
        "Callables that see each error event before it leaves (return it, or None to drop)",
        _processors,
        argument="processors",
    ),
    # -- error_handling (the schema existing configs use)
    Option(
        "error_handling.log_level",
        "Level of faultlens's own log",
        _log_level,
        "INFO",
        file="error_handling.log_level",
    ),
    Option(
        "error_handling.retry.max_retries",
        "Retries after the first attempt, for `retry()` arguments left unset",
        _int(0),
        _RD.attempts - 1,
        file="error_handling.retry.max_retries",
        default_doc=f"`{_RD.attempts - 1}` ({_RD.attempts} attempts)",
    ),
    Option(
        "error_handling.retry.base_delay",
        "First wait, seconds (`wait_initial`)",
        _seconds(),
        _RD.wait_initial,
        file="error_handling.retry.base_delay",
    ),
    Option(
        "error_handling.retry.max_delay",
        "Longest wait, seconds (`wait_max`; >= `base_delay`)",
        _seconds(),
        _RD.wait_max,
        file="error_handling.retry.max_delay",
    ),
    Option(
        "error_handling.retry.exponential_backoff",
        f"Double the wait each retry (`wait_exp_base` {_RD.wait_exp_base:g}; false: 1)",
        _bool,
        _RD.wait_exp_base != 1.0,
        file="error_handling.retry.exponential_backoff",
    ),
    Option(
        "error_handling.retry.jitter",
        "Random waits between `base_delay` and the exponential ceiling",
        _bool,
        _RD.wait_jitter,
        file="error_handling.retry.jitter",
    ),
    Option(
        "error_handling.recovery.enabled",
        "Run `recover()` fallbacks (false: failures pass through)",
        _bool,
        _RD.recovery_enabled,
        file="error_handling.recovery.enabled",
    ),
    Option(
        "error_handling.recovery.circuit_breaker.failure_threshold",
        "Consecutive failures that open a `CircuitBreaker` left unset",
        _int(1),
        _RD.failure_threshold,
        file="error_handling.recovery.circuit_breaker.failure_threshold",
    ),
    Option(
        "error_handling.recovery.circuit_breaker.timeout",
        "Seconds a breaker stays open before a trial call (`open_timeout`)",
        _seconds(strict=True),
        _RD.open_timeout,
        file="error_handling.recovery.circuit_breaker.timeout",
    ),
    Option(
        "error_handling.monitoring.enabled",
        "Evaluate the thresholds locally, over the journal",
        _bool,
        True,
        file="error_handling.monitoring.enabled",
    ),
    Option(
        "error_handling.monitoring.interval",
        "Seconds between local evaluations",
        _number(0, strict=True),
        60.0,
        file="error_handling.monitoring.interval",
    ),
    Option(
        "error_handling.monitoring.analysis_window",
        "Seconds of history for trends",
        _number(0, strict=True),
        3600.0,
        file="error_handling.monitoring.analysis_window",
    ),
    Option(
        "error_handling.monitoring.alert_thresholds.error_frequency",
        '`"category:CODE": {window: s, count: n}`: more than `count` errors within `window` '
        "seconds (defaults 300 s, 10)",
        _structured,
        (),
        file="error_handling.monitoring.alert_thresholds.error_frequency",
    ),
    Option(
        "error_handling.monitoring.anomaly_frequency",
        "Errors per hour that count as an anomaly",
        _number(0, strict=True),
        file="error_handling.monitoring.anomaly_threshold.frequency",
    ),
    Option(
        "error_handling.notifications.enabled",
        "Send local alerts to the channels",
        _bool,
        True,
        file="error_handling.notifications.enabled",
    ),
    Option(
        "error_handling.notifications.channels",
        "`[{type: log, level}, {type: webhook, url, severity_filter, timeout, headers}]`",
        _structured,
        (),
        file="error_handling.notifications.channels",
    ),
)

_BY_FIELD = {o.field: o for o in OPTIONS if o.field is not None}
ARGUMENTS = {o.argument: o for o in OPTIONS if o.argument is not None}


def option(field: str) -> Option:
    """The row for the Settings field ``field`` (a dotted path)."""
    return _BY_FIELD[field]


def default_of(field: str) -> Any:
    """The default of the Settings field ``field``, for the schema's dataclasses."""
    return _BY_FIELD[field].default


def unknown_argument(name: str) -> ConfigError:
    """The error for a configure() keyword no row has, with a did-you-mean."""
    guess = difflib.get_close_matches(str(name), list(ARGUMENTS), n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    return ConfigError(f"unknown option{hint}", source="configure()", key=str(name))


# -- the README's configuration reference ------------------------------------------------------

MARKERS = ("<!-- settings-table:start -->", "<!-- settings-table:end -->")


def _shown(value: Any) -> str:
    if value is None or value in ((), {}):
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _codes(names: Sequence[str | None]) -> str:
    return ", ".join(f"`{n}`" for n in names if n) or "—"


def markdown_table() -> str:
    """The configuration reference, one row per option, as the README shows it."""
    rows = [
        "| faultlens.yaml key | `configure()` | variable | default | |",
        "|---|---|---|---|---|",
    ]
    for o in OPTIONS:
        default = o.default_doc or _shown(o.default)
        rows.append(
            f"| {_codes([o.file])} | {_codes([o.argument])} | {_codes(o.env)} "
            f"| {default} | {o.doc} |"
        )
    return "\n".join(rows) + "\n"


def _between_markers(text: str) -> tuple[int, int]:
    start = text.index(MARKERS[0]) + len(MARKERS[0]) + 1
    return start, text.index(MARKERS[1], start)


def readme_table(text: str) -> str:
    """The table currently between the markers of a README's text."""
    start, end = _between_markers(text)
    return text[start:end]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="scripts/settings_table.py", description="The settings table."
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print the README table")
    group.add_argument("--update", metavar="README", help="rewrite the table in README")
    args = parser.parse_args(argv)
    table = markdown_table()
    if args.markdown:
        sys.stdout.write(table)
        return 0
    with open(args.update, encoding="utf-8") as f:
        text = f.read()
    start, end = _between_markers(text)
    with open(args.update, "w", encoding="utf-8") as f:
        f.write(text[:start] + table + text[end:])
    return 0
