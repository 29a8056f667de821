"""The command line: argparse with usage errors as ConfigError, the option types, and the
parser of every command. Handlers are named (``"_stats.cmd_stats"``), not imported: a
command loads only its own module, and ``--help`` none."""

from __future__ import annotations

import argparse
import math
import re
from typing import NoReturn

from ._common import config_error

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
# The longest window worth asking for: the journal cannot be older than this.
_MAX_DURATION = 100 * 365.25 * 86400.0


def parse_duration(text: str, *, option: str = "--since") -> float:
    """``30m``, ``24h``, ``7d`` (also ``s`` and ``w``) as seconds; ConfigError otherwise
    (not a positive number with a unit, or longer than 100 years)."""
    m = _DURATION_RE.match(text or "")
    seconds = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else math.nan
    if not m or not seconds > 0:
        raise config_error(
            f"invalid duration {text!r}; use a positive number and a unit: 30m, 24h, 7d "
            "(units: s, m, h, d, w)",
            key=option,
        )
    if not math.isfinite(seconds) or seconds > _MAX_DURATION:
        raise config_error(
            f"duration {text!r} is too long; the longest window is 100 years (36525d), "
            "which covers the whole journal",
            key=option,
        )
    return seconds


def positive_float(text: str) -> float:
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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def http_url(text: str) -> str:
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


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input as a ConfigError (exit 2, envelope with --json)."""

    def error(self, message: str) -> NoReturn:
        # "argument --timeout: '-1' is not ..." -> key --timeout, so the option is named once
        m = re.match(r"argument ([^:/\s]+)(?:/\S+)?: (.*)", message, re.DOTALL)
        key, message = (m.group(1), m.group(2)) if m else ("arguments", message)
        raise config_error(f"{message}; see `{self.prog} --help`", key=key)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    p = Parser(
        prog="faultlens",
        description="Error observability for Python on OpenTelemetry.",
        parents=[common],
    )
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=Parser)
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
    r.add_argument("--endpoint", type=http_url, help="OTLP endpoint, e.g. http://127.0.0.1:4317")
    r.add_argument("--catalog", action="append", help="catalog YAML to load (repeatable)")
    r.add_argument(
        "--no-exec",
        action="store_true",
        help="run COMMAND as a child process and return its exit code instead of replacing "
        "this process",
    )
    r.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    r.set_defaults(handler="_run.cmd_run")

    d = sub.add_parser("demo", parents=[common], help="run the example pipeline and report on it")
    d.add_argument(
        "--dir",
        default=".faultlens/demo",
        help="where the journal and report go; DIR/journal is cleared on each run only if "
        "an earlier demo created it (default .faultlens/demo)",
    )
    d.add_argument("--jobs", type=positive_int, default=40, help="jobs the pipeline processes")
    d.add_argument("--seed", type=whole_number, default=7, help="seed for the simulated failures")
    d.add_argument(
        "--endpoint",
        type=http_url,
        help="also export to this OTLP endpoint, e.g. http://127.0.0.1:4317",
    )
    d.add_argument("--service", default="scoring-pipeline", help="service name to report as")
    d.set_defaults(handler="_demo.cmd_demo")

    s = sub.add_parser("stats", parents=[common], help="error statistics from the journal")
    s.add_argument("--since", default="24h", help="time window: 30m, 24h, 7d (default 24h)")
    s.add_argument("--journal", help="journal directory (default: the configured one)")
    s.set_defaults(handler="_stats.cmd_stats")

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
        "--jaeger-url",
        type=http_url,
        help="Jaeger's address: link each error to its trace and, in HTML, embed the top"
        " errors' sample traces as waterfalls fetched from its HTTP API",
    )
    rp.set_defaults(handler="_report.cmd_report")

    c = sub.add_parser("codes", parents=[common], help="list error codes with their hints")
    c.add_argument("--catalog", action="append", help="also load this catalog YAML (repeatable)")
    c.add_argument("--category", help="only this category")
    c.set_defaults(handler="_codes.cmd_codes")

    ru = sub.add_parser(
        "rules",
        parents=[common],
        help="render faultlens.yaml's alert thresholds as Prometheus rules",
    )
    ru.add_argument("--config", help="faultlens.yaml to read (default: the usual lookup)")
    ru.add_argument("--job", help="only this service (its service.name)")
    ru.add_argument("-o", "--output", help="file to write (default, or -: print)")
    ru.set_defaults(handler="_rules.cmd_rules")

    dr = sub.add_parser("doctor", parents=[common], help="check the setup, with fixes")
    dr.add_argument("--journal", help="journal directory to check (default: the configured one)")
    dr.add_argument(
        "--health-url", type=http_url, help="collector health URL (default http://HOST:13133/)"
    )
    dr.add_argument(
        "--timeout",
        type=positive_float,
        default=1.0,
        help="network timeout in seconds (default 1)",
    )
    dr.set_defaults(handler="_doctor.cmd_doctor")

    v = sub.add_parser("version", parents=[common], help="versions of faultlens and OTel")
    v.set_defaults(handler="_version.cmd_version")
    return p


def split_run(argv: list[str]) -> tuple[list[str], list[str] | None]:
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
