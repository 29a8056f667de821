"""``faultlens codes``: the error codes with their category, severity and hint."""

from __future__ import annotations

import argparse

from ._common import Output, redact, table


def cmd_codes(args: argparse.Namespace, out: Output) -> int:
    from .._config import load_settings
    from ..errors import ConfigError, catalog

    try:
        configured = load_settings().catalogs
    except ConfigError as exc:
        out.note(
            f"faultlens: ignoring the configuration ({redact(str(exc))}); run `faultlens doctor`"
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
    table(
        [
            (i["code"], i["category"], i["severity"], "yes" if i["retryable"] else "", i["hint"])
            for i in items
        ],
        ("code", "category", "severity", "retry", "hint"),
        out,
    )
    return 0
