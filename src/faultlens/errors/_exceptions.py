"""faultlens's own typed errors, raised only by public entry points on bad input.

Instrumentation never raises these into user code; they come from calls whose input the
caller controls (configure(), catalog.load(), decorator arguments), so failing loudly there
is what lets a mistake be fixed before it ships.
"""

from __future__ import annotations


class UsageError(Exception):
    """Base of every error faultlens raises on bad input: faultlens was used wrongly (a
    configuration value, a catalog entry, a decorator argument).

    Not to be confused with :class:`faultlens.FaultError`, the base of the application's
    own coded errors. (Was ``FaultlensError``; that name still works, with a warning.)
    """


class ConfigError(UsageError, ValueError):
    """A configuration value, key or file is wrong; the message names it and the fix."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ""
        if source:
            where += f"{source}: "
        if key:
            where += f"{key}: "
        super().__init__(f"{where}{message}")


class CatalogError(ConfigError):
    """An error-code catalog entry or rule is invalid (duplicate code, unknown category...)."""


class UnknownCodeError(CatalogError, LookupError):
    """A code was looked up strictly and no catalog knows it."""
