"""Shared pytest setup: every test starts from a fresh faultlens (and fresh OTel globals)."""

from __future__ import annotations

import os

import pytest

import faultlens


@pytest.fixture(autouse=True)
def _fresh_faultlens(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # Keep the environment of the developer's shell out of the tests.
    for name in list(os.environ):
        if name.startswith(("FAULTLENS_", "OTEL_")):
            monkeypatch.delenv(name, raising=False)
    # configure() looks for ./faultlens.yaml; run from an empty directory.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    faultlens.testing.reset(otel_globals=True)
    yield
    faultlens.testing.reset(otel_globals=True)
