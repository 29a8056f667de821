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
and a failure as the CLI error envelope (``faultlens.to_cli_envelope``). Exit codes: 0 on
success, 2 for bad input (a wrong option, duration or config value), 1 for other failures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from ._version import __version__
from .errors import ConfigError, FaultlensError

__all__ = ["main", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_duration(text: str, *, option: str = "--since") -> float:
    """``30m``, ``24h``, ``7d`` (also ``s`` and ``w``) as seconds; ConfigError otherwise."""
    m = _DURATION_RE.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(
            f"invalid duration {text!r}; use a positive number and a unit: 30m, 24h, 7d "
            "(units: s, m, h, d, w)",
            key=option,
        )
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


# -- output ---------------------------------------------------------------------------------


class _Output:
    """Where a command's result goes: a JSON document or text for people."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.json = as_json
        self.out = out
        self.err = err

    def text(self, line: str = "") -> None:
        if not self.json:
            print(line, file=self.out)

    def note(self, line: str) -> None:
        """Progress and remarks: stderr, so stdout stays clean for pipes and --json."""
        print(line, file=self.err)

    def data(self, payload: Any) -> None:
        if self.json:
            json.dump({"status": "ok", "data": payload}, self.out, indent=2, default=str)
            self.out.write("\n")


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
        return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return str(v).replace("\n", " ")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as a ConfigError (exit 2, envelope with --json)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; see `{self.prog} --help`", key="arguments")


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


def _progress(records: Iterable[dict[str, Any]], out: _Output) -> Iterator[dict[str, Any]]:
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


# -- stats ------------------------------------------------------------------------------------


def _stats_payload(path: str, since_seconds: float, out: _Output) -> dict[str, Any]:
    from .journal import compute_stats

    records = _read(path, since_seconds, out)
    stats = compute_stats(records)
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
    top = max(values) or 1
    return "".join(bars[min(len(bars) - 1, int(v / top * (len(bars) - 1)))] for v in values)


def cmd_stats(args: argparse.Namespace, out: _Output) -> int:
    since = parse_duration(args.since)
    payload = _stats_payload(_journal_path(args.journal), since, out)
    out.data(payload)
    _render_stats(payload, out)
    return 0


# -- report -----------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace, out: _Output) -> int:
    from .reports import write_report

    since = parse_duration(args.since)
    journal = _journal_path(args.journal)
    _require_journal(journal)
    jaeger = args.jaeger_url
    if jaeger is None:
        from ._config import load_settings

        jaeger = load_settings().jaeger_url
    output = args.output or f"faultlens-report.{args.format}"
    path = write_report(
        output, args.format, journal_path=journal, since=time.time() - since, jaeger_url=jaeger
    )
    out.data({"path": os.path.abspath(path), "format": args.format})
    out.text(f"report written: {os.path.abspath(path)}")
    return 0


# -- rules ------------------------------------------------------------------------------------


def cmd_rules(args: argparse.Namespace, out: _Output) -> int:
    """The alert thresholds of faultlens.yaml as a Prometheus rule file."""
    from ._config import load_settings
    from .reports import render_alert_rules

    settings = load_settings(config_file=args.config)
    text = render_alert_rules(settings.error_handling.monitoring, job=args.job)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        out.data({"path": os.path.abspath(args.output)})
        out.text(f"rules written: {os.path.abspath(args.output)}")
    else:
        out.data({"rules": text})
        if not out.json:
            out.out.write(text)
    return 0


# -- codes ------------------------------------------------------------------------------------


def cmd_codes(args: argparse.Namespace, out: _Output) -> int:
    from ._config import load_settings
    from .errors import catalog

    try:
        configured = load_settings().catalogs
    except ConfigError as exc:
        out.note(f"faultlens: ignoring the configuration ({exc}); run `faultlens doctor`")
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


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


def _check_config() -> tuple[Check, Any]:
    from ._config import load_settings

    try:
        s = load_settings()
    except ConfigError as exc:
        return Check("config", "fail", str(exc), "correct the file/key named above"), None
    source = s.config_file or "environment and defaults (no faultlens.yaml found)"
    exporter = s.exporter.active
    where = (
        f"OTLP {s.exporter.protocol} to {s.exporter.endpoint}" if exporter == "otlp" else exporter
    )
    journal = "on" if s.journal.active(exporter != "none") else "off"
    detail = (
        f"from {source}; service {s.service_name!r}; exporter {where}; journal {journal} "
        f"({s.journal.path})"
    )
    return Check("config", "ok", detail), s


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


def _check_endpoint(settings: Any, timeout: float) -> Check:
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
    host, port = _host_port(endpoint)
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
    if url is None:
        endpoint = settings.exporter.endpoint if settings is not None else None
        if not endpoint or settings.exporter.active != "otlp":
            return Check("collector health", "skip", "no collector configured")
        host, _ = _host_port(endpoint)
        url = f"http://{host}:13133/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status = resp.status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "collector health",
            "warn",
            f"{url} did not answer ({reason})",
            "enable the collector's health_check extension on :13133 (the bundled "
            "collector/otelcol.yaml does), or ignore this if your collector has none",
        )
    if status != 200:
        return Check(
            "collector health", "fail", f"{url} answered HTTP {status}", "see the collector log"
        )
    return Check("collector health", "ok", f"{url} answered 200")


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


def cmd_doctor(args: argparse.Namespace, out: _Output) -> int:
    config, settings = _check_config()
    checks = [
        config,
        _check_endpoint(settings, args.timeout),
        _check_health(settings, args.health_url, args.timeout),
        _check_psutil(),
        _check_journal(settings, args.journal),
    ]
    try:
        import opentelemetry.instrumentation  # noqa: F401

        checks.append(Check("opentelemetry-instrument", "ok", "faultlens entry point available"))
    except ImportError:
        checks.append(
            Check(
                "opentelemetry-instrument",
                "skip",
                "opentelemetry-instrumentation is not installed",
                "pip install 'faultlens[auto]' to use faultlens under opentelemetry-instrument",
            )
        )
    failed = [c for c in checks if c.status == "fail"]
    out.data({"ok": not failed, "checks": [c.__dict__ for c in checks]})
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
    """A bare ``python``/``python3`` means the interpreter faultlens runs in, so that the
    bootstrap in the child can import faultlens (the PATH's python may be another one)."""
    if not command:
        raise ConfigError(
            "no command to run; put it after `--`, e.g. faultlens run -- python app.py",
            key="command",
        )
    if command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    if shutil.which(command[0]) is None and not os.path.exists(command[0]):
        raise ConfigError(f"command not found: {command[0]}", key="command")
    return command


def _run_env(args: argparse.Namespace) -> dict[str, str]:
    from .auto import child_environment

    modules = [m for chunk in args.modules or () for m in re.split(r"[,\s]+", chunk) if m]
    return child_environment(
        os.environ,
        service=args.service,
        modules=modules,
        journal=args.journal,
        endpoint=args.endpoint,
        catalogs=args.catalog,
    )


def cmd_run(args: argparse.Namespace, out: _Output) -> int:
    command = _resolve_command(list(args.command))
    env = _run_env(args)
    if args.no_exec:
        return subprocess.call(command, env=env)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise ConfigError(
            f"cannot run {command[0]}: {exc.strerror or exc}", key="command"
        ) from None
    return 0  # pragma: no cover - exec does not return


# -- demo -------------------------------------------------------------------------------------


def _examples_dir() -> Path:
    for candidate in (Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"):
        if (candidate / "scoring_pipeline" / "__main__.py").is_file():
            return candidate
    raise FileNotFoundError(
        "faultlens demo runs examples/scoring_pipeline from a source checkout; run it from "
        "the repository (git clone …; make demo)"
    )


def cmd_demo(args: argparse.Namespace, out: _Output) -> int:
    examples = _examples_dir()
    workdir = Path(args.dir).resolve()
    journal = workdir / "journal"
    if journal.is_dir():
        shutil.rmtree(journal)  # a fresh journal so the numbers are this run's
    workdir.mkdir(parents=True, exist_ok=True)
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
    if not out.json and proc.stdout:
        out.text("pipeline: " + proc.stdout.strip().splitlines()[0])
        out.text()
    if proc.returncode != 0:
        out.note(proc.stderr[-4000:])
        raise RuntimeError(f"the example pipeline failed with exit code {proc.returncode}")
    payload = _stats_payload(str(journal), 3600.0, out)
    _render_stats(payload, out)

    from .reports import write_report

    report = write_report(
        str(workdir / "report.html"), "html", journal_path=str(journal), since=None
    )
    elapsed = time.monotonic() - started
    out.data({"stats": payload, "report": os.path.abspath(report), "seconds": round(elapsed, 2)})
    out.text()
    out.text(f"report: {os.path.abspath(report)}")
    return 0


def _demo_env(journal: Path, *, endpoint: str | None, service: str) -> dict[str, str]:
    """The demo always keeps its own journal (the stats and report come from it); with
    ``--endpoint`` it also exports to a collector, e.g. the bundled stack."""
    from .auto import child_environment

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
    r.add_argument("--endpoint", help="OTLP endpoint, e.g. http://127.0.0.1:4317")
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
    d.add_argument("--dir", default=".faultlens/demo", help="where the journal and report go")
    d.add_argument("--jobs", type=int, default=40, help="jobs the pipeline processes")
    d.add_argument("--seed", type=int, default=7, help="seed for the simulated failures")
    d.add_argument(
        "--endpoint", help="also export to this OTLP endpoint, e.g. http://127.0.0.1:4317"
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
    rp.add_argument("-o", "--output", help="file to write (default faultlens-report.FORMAT)")
    rp.add_argument("--journal", help="journal directory (default: the configured one)")
    rp.add_argument("--jaeger-url", help="Jaeger UI URL, to link each error to its trace")
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
    ru.add_argument("-o", "--output", help="file to write (default: print)")
    ru.set_defaults(handler=cmd_rules)

    dr = sub.add_parser("doctor", parents=[common], help="check the setup, with fixes")
    dr.add_argument("--journal", help="journal directory to check (default: the configured one)")
    dr.add_argument("--health-url", help="collector health URL (default http://HOST:13133/)")
    dr.add_argument("--timeout", type=float, default=1.0, help="network timeout in seconds")
    dr.set_defaults(handler=cmd_doctor)

    v = sub.add_parser("version", parents=[common], help="versions of faultlens and OTel")
    v.set_defaults(handler=cmd_version)
    return p


def _split_run(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``run [opts] -- cmd...``: everything after the first ``--`` is the command, verbatim."""
    if argv and argv[0] == "run" and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``faultlens`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
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
        return 0
    except SystemExit as exc:  # --help / --version from argparse
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        return _fail(exc, out)


def _fail(exc: BaseException, out: _Output) -> int:
    from .capture import to_cli_envelope

    code = 2 if isinstance(exc, ConfigError) else 1
    envelope = to_cli_envelope(exc)
    if out.json:
        json.dump(envelope, out.out, indent=2)
        out.out.write("\n")
    else:
        err = envelope.get("error", {})
        out.note(f"faultlens: {err.get('message')} [{err.get('code')}]")
        if not isinstance(exc, FaultlensError) and not isinstance(exc, OSError):
            out.note(f"  ({type(exc).__name__}; run `faultlens doctor` to check the setup)")
    return code


if __name__ == "__main__":
    sys.exit(main())
