"""The error model: codes, categories, severities, catalogs and classification.

This layer knows nothing of OpenTelemetry, so it can be used (and tested) on its own.
"""

from ._catalog import BUILTIN_CODES, Catalog, catalog, load_yaml_file
from ._classify import classify, code_for, error_type
from ._exceptions import CatalogError, ConfigError, FaultlensError, UnknownCodeError
from ._fault import FaultError
from ._fingerprint import FINGERPRINT_VERSION, fingerprint, in_app, is_own_frame, normalize_message
from ._safe import clean_text, qualified_name, safe_repr, safe_str
from ._types import Category, CodeSpec, ErrorInfo, Severity

__all__ = [
    "BUILTIN_CODES",
    "FINGERPRINT_VERSION",
    "Catalog",
    "CatalogError",
    "Category",
    "CodeSpec",
    "ConfigError",
    "ErrorInfo",
    "FaultError",
    "FaultlensError",
    "Severity",
    "UnknownCodeError",
    "catalog",
    "classify",
    "clean_text",
    "code_for",
    "error_type",
    "fingerprint",
    "in_app",
    "is_own_frame",
    "load_yaml_file",
    "normalize_message",
    "qualified_name",
    "safe_repr",
    "safe_str",
]
