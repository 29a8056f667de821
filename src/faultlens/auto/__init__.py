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

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

# Nothing is imported until it is used: `faultlens run` (the parent process) only needs
# child_environment and must not pay for the OpenTelemetry SDK that the rest pulls in.
_LAZY = {
    "BOOT_DIR": "._bootstrap",
    "child_environment": "._bootstrap",
    "default_roots": "._bootstrap",
    "instrument_process": "._bootstrap",
    "Targets": "._hook",
    "install": "._hook",
    "installed": "._hook",
    "uninstall": "._hook",
    "install_excepthooks": "._uncaught",
    "install_sigterm_flush": "._uncaught",
    "uninstall_excepthooks": "._uncaught",
    "uninstall_sigterm_flush": "._uncaught",
    "is_faultlens_wrapper": "._wrap",
    # opentelemetry-instrumentation is an optional dependency (the `auto` extra): the
    # instrumentor is imported only when someone asks for it, as the entry point does.
    "FaultlensInstrumentor": "._instrumentor",
}

if TYPE_CHECKING:
    from ._bootstrap import BOOT_DIR, child_environment, default_roots, instrument_process
    from ._hook import Targets, install, installed, uninstall
    from ._instrumentor import FaultlensInstrumentor
    from ._uncaught import (
        install_excepthooks,
        install_sigterm_flush,
        uninstall_excepthooks,
        uninstall_sigterm_flush,
    )
    from ._wrap import is_faultlens_wrapper

__all__ = [
    "BOOT_DIR",
    "FaultlensInstrumentor",
    "Targets",
    "child_environment",
    "default_roots",
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

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
