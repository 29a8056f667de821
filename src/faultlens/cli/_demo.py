"""``faultlens demo``: the example pipeline under faultlens, its stats and an HTML report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from ._common import (
    Output,
    config_error,
    directory_option,
    redact,
    require_journal,
    with_progress,
    write,
)
from ._stats import render_stats, stats_dict

if TYPE_CHECKING:
    from pathlib import Path


def _examples_dir() -> Path:
    from pathlib import Path

    for candidate in (Path(__file__).resolve().parents[3] / "examples", Path.cwd() / "examples"):
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

    from ..journal import list_files

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
        raise config_error(refuse, key="--dir")
    try:
        mst = marker.lstat()
    except FileNotFoundError:
        raise config_error(refuse, key="--dir") from None
    if not stat.S_ISREG(mst.st_mode):
        raise config_error(refuse, key="--dir")
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


def _read(path: str, since_seconds: float, out: Output) -> list[dict[str, Any]]:
    """Every journal line in the window: error records, rate-limit tallies and dropped
    lines, so that compute_stats counts every occurrence (journal/_format.py)."""
    from ..journal import read_entries

    require_journal(path)
    since = time.time() - since_seconds
    return list(with_progress(read_entries(path, since=since), out))


def _errors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error records among the entries: one row per error written in full."""
    return [e for e in entries if e.get("kind", "error") == "error"]


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    import subprocess
    from pathlib import Path

    from ..reports import render_report

    directory_option(args.dir, "--dir")
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
        out.note(redact(proc.stderr[-4000:]))
        raise RuntimeError(f"the example pipeline failed with exit code {proc.returncode}")
    from ..journal import compute_stats

    entries = _read(str(journal), 3600.0, out)
    stats = compute_stats(entries)
    payload = stats_dict(stats, str(journal), 3600.0)
    render_stats(payload, out)
    html = render_report(stats, _errors(entries), "html")
    report = write(str(workdir / "report.html"), html, out)
    elapsed = time.monotonic() - started
    out.data({"stats": payload, "report": report, "seconds": round(elapsed, 2)})
    out.text()
    out.text(f"report: {report}")
    return 0


def _demo_env(journal: Path, *, endpoint: str | None, service: str) -> dict[str, str]:
    """The demo always keeps its own journal (the stats and report come from it); with
    ``--endpoint`` it also exports to a collector, e.g. the bundled stack."""
    from ..auto import child_environment

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
