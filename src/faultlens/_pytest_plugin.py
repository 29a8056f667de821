"""faultlens's pytest plugin (the ``pytest11`` entry point): the ``faultlens_capture`` fixture.

pytest loads this module at start-up in every session where faultlens is installed, so it
imports nothing of faultlens until a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import Captured

__all__ = ["faultlens_capture"]


@pytest.fixture
def faultlens_capture() -> Iterator[Captured]:
    """Everything faultlens records during the test (spans, error events, metric points),
    in memory: ``faultlens.testing.capture()`` around the test."""
    from .testing import capture

    with capture() as cap:
        yield cap
