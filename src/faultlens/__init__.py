"""faultlens: classified errors on OpenTelemetry spans, resilience that reports its outcomes,
and a local error journal when there is no collector.

The public API is what ``__all__`` lists; everything in underscored modules may change.

``import faultlens`` is cheap and does nothing: no OpenTelemetry SDK, no pytest, no psutil,
no hook registered with the interpreter. Each name below is imported the first time it is
used (``faultlens.configure``, ``from faultlens import instrument``); the SDK and the
exporters are imported by ``configure()``, and the process hooks (fork, exit) are
registered by it or by the first error recorded.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> the module it lives in (relative to this package). Resolved on first access by
# __getattr__ below, then cached in this module's namespace.
_LAZY: dict[str, str] = {
    "Settings": "._config",
    "configure": "._setup",
    "current_settings": "._setup",
    "flush": "._setup",
    "is_configured": "._setup",
    "shutdown": "._setup",
    "ErrorEvent": ".capture",
    "LoggingHandler": ".capture",
    "RecordedError": ".capture",
    "instrument": ".capture",
    "record_error": ".capture",
    "to_api_envelope": ".capture",
    "to_cli_envelope": ".capture",
    "Catalog": ".errors",
    "CatalogError": ".errors",
    "Category": ".errors",
    "CodeSpec": ".errors",
    "ConfigError": ".errors",
    "ErrorInfo": ".errors",
    "FaultError": ".errors",
    "Severity": ".errors",
    "UnknownCodeError": ".errors",
    "UsageError": ".errors",
    "catalog": ".errors",
    "classify": ".errors",
    "fingerprint": ".errors",
    "CircuitBreaker": ".resilience",
    "CircuitOpenError": ".resilience",
    "Degraded": ".resilience",
    "RecoveryManager": ".resilience",
    "recover": ".resilience",
    "resilient": ".resilience",
    "retry": ".resilience",
    "retrying": ".resilience",
}

# Submodules that are public names themselves. ``faultlens.capture`` is the capture layer's
# package, and calling it opens a capture scope (``with faultlens.capture(stage=...)``): one
# object, so ``import faultlens.capture`` and ``faultlens.capture(...)`` never disagree.
_SUBMODULES = ("capture", "testing")

# Old names, kept working with a DeprecationWarning: old -> (new, where it lives).
_DEPRECATED: dict[str, tuple[str, str]] = {
    "ErrorRecord": ("RecordedError", ".capture"),
    "FaultlensError": ("UsageError", ".errors"),
}

if TYPE_CHECKING:
    from . import testing
    from ._config import Settings
    from ._setup import configure, current_settings, flush, is_configured, shutdown
    from .capture import (
        ErrorEvent,
        LoggingHandler,
        RecordedError,
        capture,
        instrument,
        record_error,
        to_api_envelope,
        to_cli_envelope,
    )
    from .errors import (
        Catalog,
        CatalogError,
        Category,
        CodeSpec,
        ConfigError,
        ErrorInfo,
        FaultError,
        Severity,
        UnknownCodeError,
        UsageError,
        catalog,
        classify,
        fingerprint,
    )
    from .resilience import (
        CircuitBreaker,
        CircuitOpenError,
        Degraded,
        RecoveryManager,
        recover,
        resilient,
        retry,
        retrying,
    )

__all__ = [
    "Catalog",
    "CatalogError",
    "Category",
    "CircuitBreaker",
    "CircuitOpenError",
    "CodeSpec",
    "ConfigError",
    "Degraded",
    "ErrorEvent",
    "ErrorInfo",
    "FaultError",
    "LoggingHandler",
    "RecordedError",
    "RecoveryManager",
    "Settings",
    "Severity",
    "UnknownCodeError",
    "UsageError",
    "__version__",
    "capture",
    "catalog",
    "classify",
    "configure",
    "current_settings",
    "fingerprint",
    "flush",
    "instrument",
    "is_configured",
    "record_error",
    "recover",
    "resilient",
    "retry",
    "retrying",
    "shutdown",
    "testing",
    "to_api_envelope",
    "to_cli_envelope",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # later look-ups do not come here
        return value
    if name in _SUBMODULES:
        # importing a submodule binds it as this package's attribute
        return importlib.import_module(f".{name}", __name__)
    if name in _DEPRECATED:
        new, module = _DEPRECATED[name]
        warnings.warn(
            f"faultlens.{name} is deprecated; use faultlens.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module, __name__), new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
