"""``faultlens version``: the versions of faultlens, Python and the OpenTelemetry SDK/API."""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ._common import Output


def cmd_version(args: argparse.Namespace, out: Output) -> int:
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
