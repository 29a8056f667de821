"""`faultlens.cli` is a package: `main()` behind a small `__init__`, one private module per
command. These tests pin what the split must keep: the console script and `python -m
faultlens.cli` reach the same `main`, a command imports only its own module (and `--help`
none), and `faultlens demo` still finds the examples of its source checkout from any working
directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import faultlens.cli

COMMAND_MODULES = {
    "faultlens.cli._codes",
    "faultlens.cli._demo",
    "faultlens.cli._doctor",
    "faultlens.cli._report",
    "faultlens.cli._rules",
    "faultlens.cli._run",
    "faultlens.cli._stats",
    "faultlens.cli._version",
}

_LOADED = """
import sys
from faultlens.cli import main
main(sys.argv[1:])
print(sorted(m for m in sys.modules if m.startswith("faultlens.cli.")), file=sys.stderr)
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}


def _command_modules_loaded(*argv: str, cwd: Path) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED, *argv],
        env=_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1].replace("'", '"')))
    return loaded & COMMAND_MODULES


def test_the_console_script_is_the_package_main():
    (script,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "faultlens"]
    assert script.value == "faultlens.cli:main"
    assert script.load() is faultlens.cli.main


def test_the_public_surface_is_main_and_parse_duration():
    assert faultlens.cli.__all__ == ["main", "parse_duration"]
    assert faultlens.cli.parse_duration("2h") == 7200.0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], set()),
        (["run", "--help"], set()),
        (["demo", "--jobs", "0"], set()),  # a usage error is reported before any command loads
        (["version"], {"faultlens.cli._version"}),
        (["--json", "version"], {"faultlens.cli._version"}),
        (["stats", "--journal", "no-such-journal"], {"faultlens.cli._stats"}),
        (["codes", "--category", "none"], {"faultlens.cli._codes"}),
    ],
)
def test_a_command_imports_only_its_own_module(argv, expected, tmp_path):
    assert _command_modules_loaded(*argv, cwd=tmp_path) == expected


def test_demo_finds_the_examples_of_its_checkout_from_any_working_directory(tmp_path):
    """Run from a directory with no examples/ in it: the demo locates examples/ from the
    package's own location (src/faultlens/cli/ -> the repository root)."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "--json", "demo", "--dir", "d", "--jobs", "4"],
        env=_env(),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"]["report"] == str(work / "d" / "report.html")
