"""The ``faultlens`` command: run an app under faultlens, look at its errors, check the setup.

::

    faultlens run [--service NAME] [--modules 'myapp.*'] [--journal DIR] -- python app.py
    faultlens demo                      # the example pipeline, its stats and an HTML report
    faultlens stats --since 24h         # what failed, how often, is it getting worse
    faultlens report --format html --since 7d -o errors.html
    faultlens codes [--catalog codes.yaml]
    faultlens doctor                    # config, endpoint, collector health, permissions
    faultlens rules -o rules.yml        # faultlens.yaml's thresholds as Prometheus rules
    faultlens version

Every command takes ``--json``: the result is printed as ``{"status": "ok", "data": ...}``
and a failure as the CLI error envelope (``faultlens.to_cli_envelope``); it is strict JSON
(never ``NaN``/``Infinity``). Exit codes: 0 on success, 2 for bad input (a wrong option,
duration or config value), 1 for other failures; ``run --no-exec`` returns the command's
code, or 128+N when signal N killed it. Output never repeats a credential it was given.

Files are written as careful tools write them (``faultlens._output``): ``-o -`` is standard
output, a symlink is written through, a device or FIFO written directly, a regular file
replaced atomically with the umask respected. Nothing is ever deleted that faultlens did not
create (``demo`` marks the journal directory it makes).
"""

from __future__ import annotations

# Start-up cost matters here: `faultlens version` and `--help` must not pay for the
# OpenTelemetry SDK. Module level imports only the standard library's cheap modules; each
# command imports what it needs inside its function.
import argparse
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from .errors import ConfigError

__all__ = ["main", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
# The longest window worth asking for: the journal cannot be older than this.
_MAX_DURATION = 100 * 365.25 * 86400.0


def _config_error(message: str, key: str) -> ConfigError:
    from .errors import ConfigError

    return ConfigError(message, key=key)


def parse_duration(text: str, *, option: str = "--since") -> float:
    """``30m``, ``24h``, ``7d`` (also ``s`` and ``w``) as seconds; ConfigError otherwise
    (not a positive number with a unit, or longer than 100 years)."""
    m = _DURATION_RE.match(text or "")
    seconds = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else math.nan
    if not m or not seconds > 0:
        raise _config_error(
            f"invalid duration {text!r}; use a positive number and a unit: 30m, 24h, 7d "
            "(units: s, m, h, d, w)",
            key=option,
        )
    if not math.isfinite(seconds) or seconds > _MAX_DURATION:
        raise _config_error(
            f"duration {text!r} is too long; the longest window is 100 years (36525d), "
            "which covers the whole journal",
            key=option,
        )
    return seconds


def _positive_float(text: str) -> float:
    """argparse type for a network timeout: seconds above zero, at most an hour."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds above 0 and at most 3600"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _http_url(text: str) -> str:
    """argparse type for URLs: http(s)://host[:port][/path]. The message never repeats the
    value (it may carry credentials)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(
            "expected an http(s) URL such as http://127.0.0.1:4317 (value not shown)"
        )
    return text


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dump_json(document: Any, out: TextIO) -> None:
    """Strict JSON (never ``NaN``/``Infinity``, which no JSON parser accepts), written at once
    so a failure cannot leave half a document on stdout."""
    import json

    text = json.dumps(_finite(document), indent=2, default=str, allow_nan=False)
    out.write(text + "\n")


# -- output ---------------------------------------------------------------------------------


# C0 and C1 control characters (ESC starts terminal escape sequences) and lone surrogates:
# text from the journal (messages, stages, codes) must not drive the user's terminal.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with control characters and lone surrogates shown as escapes (``\\x1b``);
    line breaks kept only when ``newlines`` (a tab always is)."""
    text = _UNPRINTABLE.sub(lambda m: ascii(m.group(0))[1:-1], text)
    return text if newlines else text.replace("\n", "\\n").replace("\r", "\\r")


class _Output:
    """Where a command's result goes: a JSON document or text for people."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.json = as_json
        self.out = out
        self.err = err

    def text(self, line: str = "") -> None:
        if not self.json:
            print(_printable(line), file=self.out)

    def note(self, line: str) -> None:
        """Progress and remarks: stderr, so stdout stays clean for pipes and --json."""
        print(_printable(line, newlines=True), file=self.err)

    def data(self, payload: Any) -> None:
        if self.json:
            _dump_json({"status": "ok", "data": payload}, self.out)


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: _Output) -> None:
    """Aligned columns; long values are cut at 60 characters except in the last column."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = min(max(widths[i], len(v)), 60)

    def line(values: Sequence[str]) -> str:
        parts = [
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(values[:-1], widths[:-1], strict=True)
        ]
        return "  ".join([*parts, values[-1]]).rstrip()

    out.text(line(list(headers)))
    out.text(line(["-" * w for w in widths]))
    for row in cells:
        out.text(line(row))


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return _printable(str(v).replace("\n", " "))


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as a ConfigError (exit 2, envelope with --json)."""

    def error(self, message: str) -> NoReturn:
        # "argument --timeout: '-1' is not ..." -> key --timeout, so the option is named once
        m = re.match(r"argument ([^:/\s]+)(?:/\S+)?: (.*)", message, re.DOTALL)
        key, message = (m.group(1), m.group(2)) if m else ("arguments", message)
        raise _config_error(f"{message}; see `{self.prog} --help`", key=key)


# -- journal reading with progress ------------------------------------------------------------


def _journal_path(explicit: str | None) -> str:
    if explicit:
        return explicit
    from ._config import load_settings

    return load_settings().journal.path


def _require_journal(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no journal at {path}; run your app with `faultlens run -- python app.py` (or "
            "faultlens.configure() with no exporter) to create one, or pass --journal PATH"
        )


def _progress(records: Iterable[Any], out: _Output) -> Iterator[Any]:
    """Pass records through, showing a progress line on a terminal when reading takes long."""
    show = out.err.isatty()
    start = last = time.monotonic()
    n = 0
    for n, rec in enumerate(records, 1):
        if show and n % 2000 == 0:
            now = time.monotonic()
            if now - last >= 0.5 and now - start >= 1.0:
                last = now
                out.err.write(f"\rreading journal: {n:,} records …")
                out.err.flush()
        yield rec
    if show and time.monotonic() - start >= 1.0:
        out.err.write(f"\rreading journal: {n:,} records, done.\n")


def _read(path: str, since_seconds: float, out: _Output) -> list[dict[str, Any]]:
    """Every journal line in the window: error records, rate-limit tallies and dropped
    lines, so that compute_stats counts every occurrence (journal/_format.py)."""
    from .journal import read_entries

    _require_journal(path)
    since = time.time() - since_seconds
    return list(_progress(read_entries(path, since=since), out))


def _errors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error records among the entries: one row per error written in full."""
    return [e for e in entries if e.get("kind", "error") == "error"]


# -- stats ------------------------------------------------------------------------------------


def _stats_payload(path: str, since_seconds: float, out: _Output) -> dict[str, Any]:
    from .journal import journal_stats

    _require_journal(path)  # one streaming pass: memory bounded whatever the journal's size
    since = time.time() - since_seconds
    stats = journal_stats(path, since=since, progress=lambda it: _progress(it, out))
    return _stats_dict(stats, path, since_seconds)


def _stats_dict(stats: Any, path: str, since_seconds: float) -> dict[str, Any]:
    payload = dict(stats.to_dict())
    payload.setdefault("journal", os.path.abspath(path))
    payload.setdefault("since_seconds", since_seconds)
    return payload


def _render_stats(s: Mapping[str, Any], out: _Output) -> None:
    """The text form of ``faultlens stats``: headline, top errors, breakdowns, trend."""
    trend = s.get("trend") or {}
    out.text(f"journal   {s.get('journal')}")
    line = f"errors    {s.get('total', 0)}, {s.get('unique_fingerprints', 0)} distinct"
    if s.get("suppressed"):
        line += f", {s['suppressed']} of them summarised by the rate limit"
    out.text(line)
    if s.get("dropped"):
        lost = ", ".join(f"{n} {reason}" for reason, n in s["dropped"].items())
        out.text(f"dropped   {lost} (faultlens could not record them)")
    if s.get("first_seen") and s.get("last_seen"):
        out.text(f"window    {_when(s['first_seen'])} .. {_when(s['last_seen'])}")
    top = [t for t in s.get("top") or [] if isinstance(t, Mapping)]
    if top:
        out.text()
        out.text("Top errors")
        _table(
            [
                (t.get("count"), t.get("code"), t.get("severity"), t.get("stage"), t.get("message"))
                for t in top
            ],
            ("count", "code", "severity", "stage", "message"),
            out,
        )
    for key, title in (
        ("by_code", "code"),
        ("by_category", "category"),
        ("by_severity", "severity"),
        ("by_stage", "stage"),
    ):
        counts = s.get(key) or {}
        if counts:
            out.text()
            out.text(f"By {title}")
            _table(list(counts.items()), (title, "count"), out)
    buckets = [b for b in s.get("buckets") or [] if isinstance(b, Mapping)]
    if buckets:
        out.text()
        width = _cell(s.get("bucket_seconds"))
        plural = "s" if len(buckets) != 1 else ""
        out.text(
            f"Trend ({len(buckets)} bucket{plural} of {width}s): {trend.get('direction', 'flat')}"
        )
        out.text("  " + _sparkline([float(b.get("count", 0)) for b in buckets]))
        out.text(
            f"  recent {_cell(s.get('recent_rate_per_hour'))}/h vs baseline "
            f"{_cell(s.get('baseline_rate_per_hour'))}/h" + ("  SPIKE" if s.get("spike") else "")
        )
    signals = [g for g in s.get("signals") or [] if isinstance(g, Mapping)]
    if signals:
        out.text()
        out.text("Signals")
        for g in signals:
            out.text(f"  [{g.get('severity')}] {g.get('summary')}")


def _when(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))
    except (TypeError, ValueError, OverflowError):
        return str(ts)


def _sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    bars = "▁▂▃▄▅▆▇█"
    clean = [v if math.isfinite(v) and v > 0 else 0.0 for v in values]
    top = max(clean) or 1.0
    return "".join(bars[min(len(bars) - 1, int(v / top * (len(bars) - 1)))] for v in clean)


def cmd_stats(args: argparse.Namespace, out: _Output) -> int:
    since = parse_duration(args.since)
    payload = _stats_payload(_journal_path(args.journal), since, out)
    out.data(payload)
    _render_stats(payload, out)
    return 0


# -- report -----------------------------------------------------------------------------------


def _write(path: str, text: str | Iterable[str], out: _Output) -> str:
    """``faultlens._output.write_text`` with a failure worded for people: the path and the
    reason, as the same kind of OSError (so the exit code and error code stay meaningful)."""
    from ._output import write_text

    try:
        return write_text(path, text, stdout=out.out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise type(exc)(f"cannot write {os.path.abspath(path)} ({reason})") from None


def cmd_report(args: argparse.Namespace, out: _Output) -> int:
    from ._output import STDOUT
    from .reports import stream_report

    since = parse_duration(args.since)
    if args.output == STDOUT and out.json:
        raise _config_error(
            "--json and `-o -` both write to standard output; use one of them "
            "(`--format json -o -` prints the report itself as JSON)",
            key="--output",
        )
    journal = _journal_path(args.journal)
    _require_journal(journal)
    jaeger = args.jaeger_url
    if jaeger is None:
        from ._config import load_settings

        jaeger = load_settings().jaeger_url
    output = args.output or f"faultlens-report.{args.format}"
    if output != STDOUT and os.path.isdir(output):
        output = os.path.join(output, f"faultlens-report.{args.format}")
    text = stream_report(  # streamed: memory bounded whatever the journal's size
        args.format,
        journal_path=journal,
        since=time.time() - since,
        jaeger_url=jaeger,
        progress=lambda it: _progress(it, out),
    )
    written = _write(output, text, out)
    if written == STDOUT:
        return 0
    out.data({"path": written, "format": args.format})
    out.text(f"report written: {written}")
    return 0


# -- rules ------------------------------------------------------------------------------------


def cmd_rules(args: argparse.Namespace, out: _Output) -> int:
    """The alert thresholds of faultlens.yaml as a Prometheus rule file."""
    from ._config import load_settings
    from ._output import STDOUT
    from .reports import render_alert_rules

    settings = load_settings(config_file=args.config)
    text = render_alert_rules(settings.error_handling.monitoring, job=args.job)
    if args.output and args.output != STDOUT:
        written = _write(args.output, text, out)
        out.data({"path": written})
        out.text(f"rules written: {written}")
    elif out.json:  # no file, or `-o -`: standard output
        out.data({"rules": text})
    else:
        _write(STDOUT, text, out)
    return 0


# -- codes ------------------------------------------------------------------------------------


def cmd_codes(args: argparse.Namespace, out: _Output) -> int:
    from ._config import load_settings
    from .errors import ConfigError, catalog

    try:
        configured = load_settings().catalogs
    except ConfigError as exc:
        out.note(
            f"faultlens: ignoring the configuration ({_redact(str(exc))}); run `faultlens doctor`"
        )
        configured = ()
    for path in (*configured, *(args.catalog or ())):
        catalog.load(path)
    specs = sorted(catalog, key=lambda s: (str(s.category), s.code))
    if args.category:
        specs = [s for s in specs if str(s.category) == args.category]
    items = [
        {
            "code": s.code,
            "category": str(s.category),
            "severity": s.severity.value,
            "retryable": s.retryable,
            "hint": s.hint,
            "source": catalog.source_of(s.code),
        }
        for s in specs
    ]
    out.data({"codes": items})
    _table(
        [
            (i["code"], i["category"], i["severity"], "yes" if i["retryable"] else "", i["hint"])
            for i in items
        ],
        ("code", "category", "severity", "retry", "hint"),
        out,
    )
    return 0


# -- doctor -----------------------------------------------------------------------------------


class Check:
    """One line of `faultlens doctor` (a plain class: dataclasses would cost every command
    its import)."""

    __slots__ = ("detail", "fix", "name", "status")

    def __init__(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.name = name
        self.status = status  # ok | warn | fail | skip
        self.detail = detail
        self.fix = fix

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _redact(text: str) -> str:
    """``text`` with every credential faultlens knows how to spot redacted (URL user:password,
    tokens, key=value secrets): no output of the CLI may repeat a credential it was given."""
    from .scrub import scrub_text

    return scrub_text(text)


def _display_url(url: str) -> str:
    """A URL as the CLI shows it: without ``user:password@``, secret query parameters or
    token-like path segments (``faultlens.scrub.redact_url``)."""
    from .scrub import redact_url

    return redact_url(url)


def _check_config() -> tuple[Check, Any]:
    from ._config import load_settings
    from .errors import ConfigError

    fix = "correct the file/key named above"
    try:
        s = load_settings()
    except ConfigError as exc:
        return Check("config", "fail", str(exc), fix), None
    except UnicodeDecodeError as exc:
        where = os.environ.get("FAULTLENS_CONFIG") or "faultlens.yaml"
        detail = f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        return Check("config", "fail", detail, "save the file as UTF-8"), None
    except OSError as exc:
        detail = f"cannot read {exc.filename or 'the configuration'}: {exc.strerror or exc}"
        return Check("config", "fail", detail, fix), None
    source = s.config_file or "environment and defaults (no faultlens.yaml found)"
    exporter = s.exporter.active
    where = (
        f"OTLP {s.exporter.protocol} to {_display_url(s.exporter.endpoint or '')}"
        if exporter == "otlp"
        else exporter
    )
    journal = "on" if s.journal.active(exporter != "none") else "off"
    detail = (
        f"from {source}; service {s.service_name!r}; exporter {where}; journal {journal} "
        f"({s.journal.path})"
    )
    return Check("config", "ok", detail), s


def _host_port(endpoint: str) -> tuple[str, int]:
    """The endpoint's host and port; ValueError when it has no valid port."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


def _check_endpoint(settings: Any, timeout: float) -> Check:
    import socket

    if settings is None:
        return Check("endpoint", "skip", "configuration did not load")
    endpoint = settings.exporter.endpoint
    if settings.exporter.active != "otlp" or not endpoint:
        return Check(
            "endpoint",
            "skip",
            "no OTLP endpoint configured: errors go to the local journal",
            "to export, set FAULTLENS_ENDPOINT=http://127.0.0.1:4317 (or "
            "OTEL_EXPORTER_OTLP_ENDPOINT)",
        )
    try:
        host, port = _host_port(endpoint)
    except ValueError as exc:
        return Check(
            "endpoint",
            "fail",
            f"{_display_url(endpoint)} is not a valid endpoint ({exc})",
            "use scheme://host:port, e.g. http://127.0.0.1:4317",
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return Check(
            "endpoint",
            "fail",
            f"cannot connect to {host}:{port} ({exc.strerror or exc})",
            "start the collector (scripts/stack.sh up, or docker compose up), or unset "
            "FAULTLENS_ENDPOINT to record to the local journal",
        )
    return Check("endpoint", "ok", f"{host}:{port} accepts connections")


def _check_health(settings: Any, url: str | None, timeout: float) -> Check:
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit, urlunsplit

    if url is None:
        endpoint = settings.exporter.endpoint if settings is not None else None
        if not endpoint or settings.exporter.active != "otlp":
            return Check("collector health", "skip", "no collector configured")
        try:
            host, _ = _host_port(endpoint)
        except ValueError:
            return Check("collector health", "skip", "the endpoint is not valid (see above)")
        url = f"http://{host}:13133/"
    shown = _display_url(url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return Check(
            "collector health",
            "fail",
            f"{shown} is not an http(s) URL",
            "use the health_check extension's URL, e.g. http://127.0.0.1:13133/",
        )
    try:
        parts = urlsplit(url)
        request = urllib.request.Request(
            urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        )
        if parts.username is not None or parts.password is not None:
            # urllib would take user:password@ for part of the host name: send basic auth.
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "collector health",
            "warn",
            f"{shown} did not answer ({_redact(str(reason))})",
            "enable the collector's health_check extension on :13133 (the bundled "
            "collector/otelcol.yaml does), or ignore this if your collector has none",
        )
    if status != 200:
        return Check(
            "collector health", "fail", f"{shown} answered HTTP {status}", "see the collector log"
        )
    return Check("collector health", "ok", f"{shown} answered 200")


def _check_psutil() -> Check:
    from . import resources

    wanted = ("memory.rss", "cpu.percent", "threads", "open_fds")
    try:
        resources.reset()
        snap = resources.snapshot(max_age=0)
    except Exception as exc:
        return Check("psutil", "fail", f"resource snapshot failed: {exc}", "pip install psutil")
    keys = {k.split("faultlens.resource.", 1)[-1] for k in snap}
    missing = [w for w in wanted if w not in keys]
    if not snap:
        return Check(
            "psutil",
            "fail",
            "no process resources readable",
            "check that /proc is mounted and readable by this user (hidepid), or set "
            "faultlens.capture.resources: false",
        )
    if missing:
        return Check(
            "psutil",
            "warn",
            f"denied: {', '.join(missing)} (those keys are omitted from error events)",
            "run as the process owner, or allow /proc access for this user",
        )
    return Check("psutil", "ok", f"{len(keys)} resource readings available")


def _check_journal(settings: Any, override: str | None) -> Check:
    import tempfile
    from pathlib import Path

    path = override or (settings.journal.path if settings is not None else ".faultlens/journal")
    target = Path(path).resolve()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    fix = "choose a writable directory with --journal / FAULTLENS_JOURNAL_PATH"
    if not probe.is_dir():
        return Check("journal", "fail", f"{probe} is not a directory", fix)
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".faultlens-doctor-"):
            pass
    except OSError as exc:
        return Check("journal", "fail", f"{probe} is not writable ({exc.strerror or exc})", fix)
    state = "exists" if target.exists() else f"will be created under {probe}"
    return Check("journal", "ok", f"{target} {state}, writable")


def _check_instrument() -> Check:
    from importlib.util import find_spec

    if find_spec("opentelemetry.instrumentation") is not None:
        return Check("opentelemetry-instrument", "ok", "faultlens entry point available")
    return Check(
        "opentelemetry-instrument",
        "skip",
        "opentelemetry-instrumentation is not installed",
        "pip install 'faultlens[auto]' to use faultlens under opentelemetry-instrument",
    )


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that crashed is a failed check with the reason, never a traceback."""
    try:
        return check()
    except Exception as exc:
        return Check(
            name,
            "fail",
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "please report this with the output of `faultlens doctor --json`",
        )


def cmd_doctor(args: argparse.Namespace, out: _Output) -> int:
    settings: Any = None

    def config() -> Check:
        nonlocal settings
        check, settings = _check_config()
        return check

    checks = [_guarded("config", config)]
    checks += [
        _guarded("endpoint", lambda: _check_endpoint(settings, args.timeout)),
        _guarded(
            "collector health", lambda: _check_health(settings, args.health_url, args.timeout)
        ),
        _guarded("psutil", _check_psutil),
        _guarded("journal", lambda: _check_journal(settings, args.journal)),
        _guarded("opentelemetry-instrument", _check_instrument),
    ]
    for c in checks:  # whatever a message quoted (a URL, an exception), no credential leaves
        c.detail, c.fix = _redact(c.detail), _redact(c.fix)
    failed = [c for c in checks if c.status == "fail"]
    out.data({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
    for c in checks:
        out.text(f"[{marks[c.status]}] {c.name}: {c.detail}")
        if c.fix and c.status != "ok":
            out.text(f"       fix: {c.fix}")
    out.text()
    out.text("all good" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


# -- run --------------------------------------------------------------------------------------


def _resolve_command(command: list[str]) -> list[str]:
    """A bare ``python``/``python3``/``python3.N`` (this version) means the interpreter
    faultlens runs in, so that the bootstrap in the child can import faultlens (the PATH's
    python may be another one)."""
    import shutil

    if not command:
        raise _config_error(
            "no command to run; put it after `--`, e.g. faultlens run -- python app.py",
            key="command",
        )
    ours = ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info))
    if command[0] in ours and sys.executable:
        return [sys.executable, *command[1:]]
    if shutil.which(command[0]) is None and not os.path.exists(command[0]):
        raise _config_error(f"command not found: {command[0]}", key="command")
    return command


def _run_env(args: argparse.Namespace) -> dict[str, str]:
    from .auto._bootstrap import child_environment

    modules = [m for chunk in args.modules or () for m in re.split(r"[,\s]+", chunk) if m]
    return child_environment(
        os.environ,
        service=args.service,
        modules=modules,
        journal=args.journal,
        endpoint=args.endpoint,
        catalogs=args.catalog,
    )


# Signals `faultlens run --no-exec` passes on to the child, as a supervisor does. SIGINT is not
# among them: Ctrl-C reaches the whole foreground process group, the child included, so the
# parent only ignores it and waits for the child to finish its own handling.
_FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` as a child and return its exit status the way a shell reports it: the
    child's exit code, or 128+N when a signal N killed it."""
    import signal
    import subprocess

    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if child is None:
            pending.append(signum)  # arrived while the child was being started
        else:
            child.send_signal(signum)

    previous: dict[int, Any] = {}
    try:
        for name in _FORWARDED:
            sig = getattr(signal, name, None)
            if sig is not None:
                previous[sig] = signal.signal(sig, forward)
        try:
            child = subprocess.Popen(command, env=env)
        except OSError as exc:
            raise _config_error(
                f"cannot run {command[0]} ({exc.strerror or exc})", key="command"
            ) from None
        # Only now: an ignored SIGINT would be inherited, and Ctrl-C would not stop the child.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for signum in pending:
            child.send_signal(signum)
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - returncode if returncode < 0 else returncode


def _directory_option(path: str, option: str) -> None:
    """A directory option (--journal, --dir) that can never be created is bad input, said
    before anything runs rather than discovered by the application later."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        where = "" if probe == os.path.abspath(path) else f" (so {path} cannot be created)"
        raise _config_error(f"{probe} is not a directory{where}", key=option)


def cmd_run(args: argparse.Namespace, out: _Output) -> int:
    if args.journal:
        _directory_option(args.journal, "--journal")
    command = _resolve_command(list(args.command))
    env = _run_env(args)
    if args.no_exec:
        return _run_child(command, env)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise _config_error(
            f"cannot run {command[0]} ({exc.strerror or exc})", key="command"
        ) from None
    return 0  # pragma: no cover - exec does not return


# -- demo -------------------------------------------------------------------------------------


def _examples_dir() -> Path:
    from pathlib import Path

    for candidate in (Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"):
        if (candidate / "scoring_pipeline" / "__main__.py").is_file():
            return candidate
    raise FileNotFoundError(
        "faultlens demo runs examples/scoring_pipeline from a source checkout; run it from "
        "the repository (git clone …; make demo)"
    )


# Written by `faultlens demo` in the journal directory it creates. A later run clears the
# journal files only from a directory holding this marker: anything else named DIR/journal
# (someone's real journal, a directory of their own) is never touched.
_DEMO_MARKER = ".faultlens-demo"
_DEMO_MARKER_TEXT = (
    "This directory was created by `faultlens demo`; the next `faultlens demo` with the same\n"
    "--dir clears the journal files in it (and nothing else).\n"
)


def _fresh_demo_journal(journal: Path) -> None:
    """An empty journal directory for this demo run, without ever deleting anything faultlens
    did not create: a directory the demo made before is cleared of its journal files; a new
    one is created with the marker; anything else there is refused (exit 2)."""
    import stat

    from .journal import list_files

    marker = journal / _DEMO_MARKER
    try:
        st = journal.lstat()
    except FileNotFoundError:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.mkdir(mode=0o700)
        _create_marker(marker)
        return
    refuse = (
        f"{journal} already exists and was not created by `faultlens demo` (it has no "
        f"{_DEMO_MARKER} marker); it is left untouched. Choose another --dir, or, if it is "
        "an old demo's journal you no longer need, remove it yourself"
    )
    if not stat.S_ISDIR(st.st_mode):  # a file or a symlink (never followed, never removed)
        raise _config_error(refuse, key="--dir")
    try:
        mst = marker.lstat()
    except FileNotFoundError:
        raise _config_error(refuse, key="--dir") from None
    if not stat.S_ISREG(mst.st_mode):
        raise _config_error(refuse, key="--dir")
    # The journal's files and faultlens's own state beside them (e.g. the alert ledger,
    # .faultlens-alerts.json): nothing else, and never through a symlink.
    state = [
        str(journal / name)
        for name in os.listdir(journal)
        if name.startswith(".faultlens-") and name != _DEMO_MARKER
    ]
    for path in [f.path for f in list_files(str(journal))] + state:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)


def _create_marker(marker: Path) -> None:
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(_DEMO_MARKER_TEXT)


def cmd_demo(args: argparse.Namespace, out: _Output) -> int:
    import subprocess
    from pathlib import Path

    from .reports import render_report

    _directory_option(args.dir, "--dir")
    examples = _examples_dir()
    workdir = Path(os.path.abspath(args.dir))
    journal = workdir / "journal"
    _fresh_demo_journal(journal)  # a fresh journal so the numbers are this run's
    env = _demo_env(journal, endpoint=args.endpoint, service=args.service)
    command = [
        sys.executable,
        str(examples / "scoring_pipeline"),
        "--jobs",
        str(args.jobs),
        "--seed",
        str(args.seed),
    ]
    out.note(f"running the scoring pipeline under faultlens (journal: {journal}) …")
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    summary = proc.stdout.strip().splitlines()
    if not out.json and summary:
        out.text("pipeline: " + summary[0])
        out.text()
    if proc.returncode != 0:
        out.note(_redact(proc.stderr[-4000:]))
        raise RuntimeError(f"the example pipeline failed with exit code {proc.returncode}")
    from .journal import compute_stats

    entries = _read(str(journal), 3600.0, out)
    stats = compute_stats(entries)
    payload = _stats_dict(stats, str(journal), 3600.0)
    _render_stats(payload, out)
    html = render_report(stats, _errors(entries), "html")
    report = _write(str(workdir / "report.html"), html, out)
    elapsed = time.monotonic() - started
    out.data({"stats": payload, "report": report, "seconds": round(elapsed, 2)})
    out.text()
    out.text(f"report: {report}")
    return 0


def _demo_env(journal: Path, *, endpoint: str | None, service: str) -> dict[str, str]:
    """The demo always keeps its own journal (the stats and report come from it); with
    ``--endpoint`` it also exports to a collector, e.g. the bundled stack."""
    from .auto._bootstrap import child_environment

    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FAULTLENS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "FAULTLENS_CONFIG")
    }
    env = child_environment(
        base,
        service=service,
        modules=["scoring_pipeline*"],
        journal=str(journal),
        endpoint=endpoint,
    )
    env["FAULTLENS_EXPORTER"] = "otlp" if endpoint else "none"
    env["FAULTLENS_JOURNAL"] = "true"
    return env


# -- version ----------------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace, out: _Output) -> int:
    from importlib import metadata

    def version_of(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    info = {
        "faultlens": __version__,
        "python": sys.version.split()[0],
        "opentelemetry-sdk": version_of("opentelemetry-sdk"),
        "opentelemetry-api": version_of("opentelemetry-api"),
    }
    out.data(info)
    out.text(f"faultlens {__version__}")
    out.text(f"python {info['python']}, opentelemetry-sdk {info['opentelemetry-sdk']}")
    return 0


# -- parser and main --------------------------------------------------------------------------


def _parser() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    p = _Parser(
        prog="faultlens",
        description="Error observability for Python on OpenTelemetry.",
        parents=[common],
    )
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser(
        "run",
        parents=[common],
        help="run a Python program under faultlens, no code changes",
        description=(
            "Run COMMAND with faultlens started inside it (through sitecustomize): configured "
            "from the environment, the named modules auto-instrumented, uncaught exceptions "
            "recorded, buffers flushed on exit and on SIGTERM. A bare `python` means the "
            "interpreter faultlens is installed in."
        ),
        usage="faultlens run [options] -- COMMAND [ARGS...]",
    )
    r.add_argument("--service", help="service name (FAULTLENS_SERVICE_NAME)")
    r.add_argument(
        "--modules",
        action="append",
        help="modules to instrument, glob patterns, comma-separated or repeated: 'myapp.*' "
        "(default: the modules under the script's directory)",
    )
    r.add_argument("--journal", help="journal directory (FAULTLENS_JOURNAL_PATH)")
    r.add_argument("--endpoint", type=_http_url, help="OTLP endpoint, e.g. http://127.0.0.1:4317")
    r.add_argument("--catalog", action="append", help="catalog YAML to load (repeatable)")
    r.add_argument(
        "--no-exec",
        action="store_true",
        help="run COMMAND as a child process and return its exit code instead of replacing "
        "this process",
    )
    r.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    r.set_defaults(handler=cmd_run)

    d = sub.add_parser("demo", parents=[common], help="run the example pipeline and report on it")
    d.add_argument(
        "--dir",
        default=".faultlens/demo",
        help="where the journal and report go; DIR/journal is cleared on each run only if "
        "an earlier demo created it (default .faultlens/demo)",
    )
    d.add_argument("--jobs", type=_positive_int, default=40, help="jobs the pipeline processes")
    d.add_argument("--seed", type=_int, default=7, help="seed for the simulated failures")
    d.add_argument(
        "--endpoint",
        type=_http_url,
        help="also export to this OTLP endpoint, e.g. http://127.0.0.1:4317",
    )
    d.add_argument("--service", default="scoring-pipeline", help="service name to report as")
    d.set_defaults(handler=cmd_demo)

    s = sub.add_parser("stats", parents=[common], help="error statistics from the journal")
    s.add_argument("--since", default="24h", help="time window: 30m, 24h, 7d (default 24h)")
    s.add_argument("--journal", help="journal directory (default: the configured one)")
    s.set_defaults(handler=cmd_stats)

    rp = sub.add_parser("report", parents=[common], help="write an HTML, CSV or JSON report")
    rp.add_argument("--format", choices=("html", "csv", "json"), default="html")
    rp.add_argument("--since", default="24h", help="time window: 30m, 24h, 7d (default 24h)")
    rp.add_argument(
        "-o",
        "--output",
        help="file to write (default faultlens-report.FORMAT; - for standard output). A "
        "symlink is written through, a file replaced atomically",
    )
    rp.add_argument("--journal", help="journal directory (default: the configured one)")
    rp.add_argument(
        "--jaeger-url", type=_http_url, help="Jaeger UI URL, to link each error to its trace"
    )
    rp.set_defaults(handler=cmd_report)

    c = sub.add_parser("codes", parents=[common], help="list error codes with their hints")
    c.add_argument("--catalog", action="append", help="also load this catalog YAML (repeatable)")
    c.add_argument("--category", help="only this category")
    c.set_defaults(handler=cmd_codes)

    ru = sub.add_parser(
        "rules",
        parents=[common],
        help="render faultlens.yaml's alert thresholds as Prometheus rules",
    )
    ru.add_argument("--config", help="faultlens.yaml to read (default: the usual lookup)")
    ru.add_argument("--job", help="only this service (its service.name)")
    ru.add_argument("-o", "--output", help="file to write (default, or -: print)")
    ru.set_defaults(handler=cmd_rules)

    dr = sub.add_parser("doctor", parents=[common], help="check the setup, with fixes")
    dr.add_argument("--journal", help="journal directory to check (default: the configured one)")
    dr.add_argument(
        "--health-url", type=_http_url, help="collector health URL (default http://HOST:13133/)"
    )
    dr.add_argument(
        "--timeout",
        type=_positive_float,
        default=1.0,
        help="network timeout in seconds (default 1)",
    )
    dr.set_defaults(handler=cmd_doctor)

    v = sub.add_parser("version", parents=[common], help="versions of faultlens and OTel")
    v.set_defaults(handler=cmd_version)
    return p


def _split_run(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``[--json] run [opts] -- cmd...``: everything after the first ``--`` that follows the
    ``run`` subcommand is the command, verbatim (its own ``--json`` or ``--help`` included)."""
    for i, arg in enumerate(argv):
        if arg.startswith("-"):
            continue  # the top-level options (--json, --help) take no value
        if arg == "run" and "--" in argv[i + 1 :]:
            j = argv.index("--", i + 1)
            return argv[:j], argv[j + 1 :]
        break
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``faultlens`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that is not UTF-8 (LANG=C.ISO-8859-1, PYTHONIOENCODING=latin-1)
        # gets escapes for what it cannot show, rather than a UnicodeEncodeError.
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    head, command = _split_run(args_list)
    as_json = "--json" in head
    out = _Output(as_json, sys.stdout, sys.stderr)
    try:
        args = _parser().parse_args(head)
        if command is not None:
            args.command = command
        handler: Callable[[argparse.Namespace, _Output], int] = args.handler
        return handler(args, out)
    except KeyboardInterrupt:
        out.note("interrupted")
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except SystemExit as exc:  # --help / --version from argparse
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        return _fail(exc, out)


def _quiet_broken_pipe() -> None:
    """`faultlens stats | head`: the reader left. Point stdout at /dev/null so the interpreter's
    final flush does not print a BrokenPipeError traceback on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def _fail(exc: BaseException, out: _Output) -> int:
    """Report ``exc``: the CLI envelope with --json, one line on stderr otherwise. Exit code 2
    for bad input (a usage or configuration error), 1 for anything else. Never raises: if
    even the envelope cannot be built, a plain line says what happened."""
    try:
        return _report_failure(exc, out)
    except Exception as inner:
        try:
            print(
                f"faultlens: {type(exc).__name__}: {_plain(exc)} (and reporting it failed: "
                f"{type(inner).__name__}: {_plain(inner)})",
                file=out.err,
            )
        except Exception:
            pass
        return 1


def _plain(exc: BaseException) -> str:
    try:
        return _redact(str(exc))
    except Exception:
        return "<unprintable>"


def _report_failure(exc: BaseException, out: _Output) -> int:
    from .capture import to_cli_envelope
    from .errors import ConfigError, FaultlensError

    code = 2 if isinstance(exc, ConfigError) else 1
    envelope = to_cli_envelope(exc)
    err = envelope.get("error", {})
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        err["message"] = _redact(err["message"])
    if out.json:
        _dump_json(envelope, out.out)
    else:
        out.note(f"faultlens: {err.get('message')} [{err.get('code')}]")
        if not isinstance(exc, FaultlensError) and not isinstance(exc, OSError):
            out.note(f"  ({type(exc).__name__}; run `faultlens doctor` to check the setup)")
    return code


if __name__ == "__main__":
    sys.exit(main())
