"""The error model: codes, categories, severities, catalogs and classification.

This layer knows nothing of OpenTelemetry, so it can be used (and tested) on its own. It
exports the public error model and what the layers above use, nothing else.
"""

import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._catalog import Catalog, catalog, load_yaml_file
from ._classify import classify, code_for, error_type
from ._exceptions import CatalogError, ConfigError, UnknownCodeError, UsageError
from ._fault import FaultError
from ._fingerprint import (
    _OWN_CACHE,
    fingerprint,
    is_own_frame,
    normalize_message,
)
from ._library_rules import http_status_of, is_http_answer, retry_after_of
from ._safe import clean_text, qualified_name, safe_repr, safe_str
from ._types import Category, CodeSpec, ErrorInfo, Severity

__all__ = [
    "OWN_FILES",
    "Catalog",
    "CatalogError",
    "Category",
    "CodeSpec",
    "ConfigError",
    "ErrorInfo",
    "FaultError",
    "Severity",
    "UnknownCodeError",
    "UsageError",
    "catalog",
    "classify",
    "clean_text",
    "code_for",
    "error_type",
    "fingerprint",
    "http_status_of",
    "is_http_answer",
    "is_own_frame",
    "load_yaml_file",
    "normalize_message",
    "qualified_name",
    "reset",
    "retry_after_of",
    "safe_repr",
    "safe_str",
]

OWN_FILES: Mapping[str, bool] = MappingProxyType(_OWN_CACHE)
"""``is_own_frame``'s answers so far, read-only (filename -> whether it is faultlens's own):
a hot path reads it and asks ``is_own_frame`` only on a miss."""

# Public classes report the module users import them from, so `exception.type` and reprs
# read `faultlens.ConfigError`, not a private module path (pickle finds them there too).
for _cls in (CatalogError, ConfigError, FaultError, UnknownCodeError, UsageError):
    _cls.__module__ = "faultlens"
del _cls


def reset() -> None:
    """Forget registered codes and rules: the built-in catalog only, and the fingerprint
    caches (faultlens.testing.reset())."""
    from ._fingerprint import reset_caches

    catalog.reset()
    reset_caches()


# Old names, kept working with a DeprecationWarning: old -> new.
_DEPRECATED = {"FaultlensError": "UsageError"}


def __getattr__(name: str) -> Any:
    new = _DEPRECATED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} is deprecated; use {__name__}.{new}", DeprecationWarning, stacklevel=2
    )
    return globals()[new]
