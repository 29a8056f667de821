"""``opentelemetry-instrument`` support: the ``opentelemetry_instrumentor`` entry point.

With ``opentelemetry-instrument python app.py`` the OTel distro sets the tracer and meter
providers itself; faultlens records through them (the OTel API binds to whatever providers
are set), so this instrumentor only installs the import hook and the uncaught-exception
hooks, with the modules from ``FAULTLENS_AUTO_MODULES`` (or the application's directory).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from ._bootstrap import instrument_process
from ._hook import uninstall
from ._uncaught import uninstall_excepthooks

__all__ = ["FaultlensInstrumentor"]


class FaultlensInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Classified errors for the application's own modules under ``opentelemetry-instrument``.

    ``FaultlensInstrumentor().instrument(modules=["myapp.*"])`` also works by hand.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # instruments the application's code, not a third-party library

    def _instrument(self, **kwargs: Any) -> None:
        modules = kwargs.get("modules")
        instrument_process(list(modules) if modules else None)

    def _uninstrument(self, **kwargs: Any) -> None:
        from ..integrations import uninstall_detected

        uninstall()
        uninstall_excepthooks()
        uninstall_detected()  # what instrument_process() switched on
