"""``faultlens doctor``: configuration, endpoint, collector health, process resources,
journal permissions; each check with a fix, none able to crash the command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from ._common import Output, redact


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


def _display_url(url: str) -> str:
    """A URL as the CLI shows it: without ``user:password@``, secret query parameters or
    token-like path segments (``faultlens.scrub.redact_url``)."""
    from ..scrub import redact_url

    return redact_url(url)


def _check_config() -> tuple[Check, Any]:
    from .._config import load_settings
    from ..errors import ConfigError

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
        f"({s.journal.path}); exceptions as {_SIGNALS[s.exceptions.signal]}"
    )
    logs_to = s.exporter.logs_endpoint
    if exporter == "otlp" and s.exceptions.log_records and logs_to:
        detail += f" to {_display_url(logs_to)}"
    return Check("config", "ok", detail), s


# How each exception signal mode reads in the config line.
_SIGNALS = {
    "span": "span events",
    "logs": "log records",
    "logs/dup": "span events and log records",
}


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
            f"{shown} did not answer ({redact(str(reason))})",
            "enable the collector's health_check extension on :13133 (the bundled "
            "collector/otelcol.yaml does), or ignore this if your collector has none",
        )
    if status != 200:
        return Check(
            "collector health", "fail", f"{shown} answered HTTP {status}", "see the collector log"
        )
    return Check("collector health", "ok", f"{shown} answered 200")


def _check_psutil() -> Check:
    from .. import resources

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


def cmd_doctor(args: argparse.Namespace, out: Output) -> int:
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
        c.detail, c.fix = redact(c.detail), redact(c.fix)
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
