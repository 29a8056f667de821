"""The examples are packages under examples/: make them importable for in-process tests."""

from __future__ import annotations

import pytest

from unit.examples.example_helpers import EXAMPLES


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
