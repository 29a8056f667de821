"""Auto-instrumentation: whole modules in errors mode, uncaught exceptions, zero-code start.

- :func:`install` instruments the functions and methods of the modules you name (glob
  patterns such as ``"myapp.*"``), those already imported and those imported later.
- :func:`install_excepthooks` records exceptions nobody caught (main thread, threads,
  asyncio loops) and flushes before the process exits.
- ``faultlens run -- python app.py`` does both in another process with no code change
  (through ``sitecustomize``), and :class:`FaultlensInstrumentor` does them under
  ``opentelemetry-instrument``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._bootstrap import BOOT_DIR, child_environment, default_roots, instrument_process
from ._hook import Targets, install, installed, uninstall
from ._uncaught import (
    flush,
    install_excepthooks,
    install_sigterm_flush,
    uninstall_excepthooks,
    uninstall_sigterm_flush,
)
from ._wrap import is_faultlens_wrapper

if TYPE_CHECKING:
    from ._instrumentor import FaultlensInstrumentor

__all__ = [
    "BOOT_DIR",
    "FaultlensInstrumentor",
    "Targets",
    "child_environment",
    "default_roots",
    "flush",
    "install",
    "install_excepthooks",
    "install_sigterm_flush",
    "installed",
    "instrument_process",
    "is_faultlens_wrapper",
    "uninstall",
    "uninstall_excepthooks",
    "uninstall_sigterm_flush",
]


def __getattr__(name: str) -> Any:
    # opentelemetry-instrumentation is an optional dependency (the `auto` extra): import the
    # instrumentor only when someone asks for it, as the entry point does.
    if name == "FaultlensInstrumentor":
        from ._instrumentor import FaultlensInstrumentor

        return FaultlensInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
