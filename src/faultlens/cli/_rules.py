"""``faultlens rules``: faultlens.yaml's alert thresholds as a Prometheus rule file."""

from __future__ import annotations

import argparse

from ._common import Output, write


def cmd_rules(args: argparse.Namespace, out: Output) -> int:
    """The alert thresholds of faultlens.yaml as a Prometheus rule file."""
    from .._config import load_settings
    from .._output import STDOUT
    from ..reports import render_alert_rules

    settings = load_settings(config_file=args.config)
    text = render_alert_rules(settings.error_handling.monitoring, job=args.job)
    if args.output and args.output != STDOUT:
        written = write(args.output, text, out)
        out.data({"path": written})
        out.text(f"rules written: {written}")
    elif out.json:  # no file, or `-o -`: standard output
        out.data({"rules": text})
    else:
        write(STDOUT, text, out)
    return 0
