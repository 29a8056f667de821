"""The README's code runs as shown: its tour is executed here, and every `faultlens`
subcommand it mentions exists."""

from __future__ import annotations

import re
from pathlib import Path

import faultlens
from faultlens.cli._parser import build_parser

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_api_tour_runs(tmp_path):
    tour = _python_blocks()[0].replace("examples/", f"{REPO}/examples/")
    namespace: dict = {}
    exec(compile(tour, "README tour", "exec"), namespace)
    assert namespace["info"].code == "WORKSPACE_NOT_FOUND"
    assert namespace["body"]["error"]["stage"] == "load"
    faultlens.shutdown()


def test_the_resilience_tour_runs():
    code = _python_blocks()[1]
    namespace: dict = {
        "faultlens": faultlens,
        "from_cache": lambda *a: "cached",
        "default_result": lambda *a: "default",
    }
    exec(compile(code, "README resilience", "exec"), namespace)
    with faultlens.testing.no_sleep():
        assert namespace["score"]("job") is None  # the body is `...`: it succeeds


def test_every_cli_command_in_the_readme_exists():
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", README, flags=re.S))
    mentioned = set(re.findall(r"^faultlens (\w+)", shell, flags=re.M))
    mentioned |= set(re.findall(r"`faultlens (\w+)", README))
    assert mentioned, "the README shows faultlens commands"
    assert mentioned <= subcommands, mentioned - subcommands


def test_every_make_target_in_the_readme_exists():
    makefile = (REPO / "Makefile").read_text() + "".join(
        p.read_text() for p in (REPO / "mk").glob("*.mk")
    )
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    mentioned = set(re.findall(r"make ([\w-]+)", README))
    assert mentioned <= targets, mentioned - targets
