"""``faultlens report``: the journal as an HTML, CSV or JSON report."""

from __future__ import annotations

import argparse
import os
import time

from ._common import Output, config_error, journal_path, require_journal, with_progress, write
from ._parser import parse_duration


def cmd_report(args: argparse.Namespace, out: Output) -> int:
    from .._output import STDOUT
    from ..reports import stream_report

    since = parse_duration(args.since)
    if args.output == STDOUT and out.json:
        raise config_error(
            "--json and `-o -` both write to standard output; use one of them "
            "(`--format json -o -` prints the report itself as JSON)",
            key="--output",
        )
    journal = journal_path(args.journal)
    require_journal(journal)
    jaeger = args.jaeger_url
    if jaeger is None and args.format != "csv":  # CSV rows carry no trace links
        from .._config import load_settings

        jaeger = load_settings().jaeger_url
    output = args.output or f"faultlens-report.{args.format}"
    if output != STDOUT and os.path.isdir(output):
        output = os.path.join(output, f"faultlens-report.{args.format}")
    text = stream_report(  # streamed: memory bounded whatever the journal's size
        args.format,
        journal_path=journal,
        since=time.time() - since,
        jaeger_url=jaeger,
        progress=lambda it: with_progress(it, out),
        # --jaeger-url given: the top errors' traces are fetched and drawn in the page
        embed_traces=args.jaeger_url is not None,
    )
    written = write(output, text, out)
    if written == STDOUT:
        return 0
    out.data({"path": written, "format": args.format})
    out.text(f"report written: {written}")
    return 0
