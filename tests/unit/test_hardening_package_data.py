"""pyproject.toml's package-data lists only files that exist: a pattern matching nothing
hides a file that was renamed or never written, and ships a wheel without it."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_data_pattern_matches_a_file():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = config["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        root = REPO / "src" / package.replace(".", "/")
        for pattern in patterns:
            assert list(root.glob(pattern)), f"{package}: {pattern!r} matches no file"
