"""Helpers for the auto-instrumentation tests: throwaway packages on sys.path."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import faultlens.auto


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """``make_package(mod=source, ...)`` writes a uniquely named package with those modules,
    puts it on sys.path and returns its name; everything is unimported afterwards."""
    names: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(**modules: str) -> str:
        name = f"app_{uuid.uuid4().hex[:8]}"
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(textwrap.dedent(modules.pop("__init__", "")))
        for mod, source in modules.items():
            (pkg / f"{mod}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield make
    faultlens.auto.uninstall()
    for mod in list(sys.modules):
        if any(mod == n or mod.startswith(n + ".") for n in names):
            del sys.modules[mod]
