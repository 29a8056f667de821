"""faultlens: classified errors on OpenTelemetry spans, resilience that reports its outcomes,
and a local error journal when there is no collector.

The public API is what ``__all__`` lists; everything in underscored modules may change.
"""

from . import testing
from ._config import Settings
from ._setup import configure, current_settings, flush, is_configured, shutdown
from ._version import __version__
from .capture import (
    ErrorEvent,
    ErrorRecord,
    LoggingHandler,
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
    FaultlensError,
    Severity,
    UnknownCodeError,
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
    "ErrorRecord",
    "FaultError",
    "FaultlensError",
    "LoggingHandler",
    "RecoveryManager",
    "Settings",
    "Severity",
    "UnknownCodeError",
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

# Public classes report the module users import them from, so `exception.type` and
# reprs read `faultlens.CircuitOpenError`, not a private module path (pickle finds them too).
for _cls in (
    CatalogError,
    CircuitOpenError,
    ConfigError,
    Degraded,
    FaultError,
    FaultlensError,
    UnknownCodeError,
):
    _cls.__module__ = __name__
del _cls
