"""Reading hostile values without ever raising, and cleaning every string that leaves faultlens.

Exceptions are user objects: ``__str__`` may raise, return a non-string, or produce megabytes;
``__module__`` may be odd. Everything faultlens reads from an exception goes through here.

Strings that leave the process (span names, attribute keys and values, metric labels, journal
fields) go through :func:`clean_text`: a class qualname, a stage or a context key may hold
lone surrogates (``"\\udcff"``, what ``os.fsdecode`` makes of undecodable bytes), which the OTLP
encoder rejects with a traceback per attribute and Prometheus rejects as a label value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clean_text", "qualified_name", "safe_repr", "safe_str"]


def clean_text(text: str, limit: int) -> str:
    """Cap ``text`` and make it valid UTF-8 (lone surrogates become ``?``); never raises.

    A ``str`` subclass is turned into a plain ``str`` first, so its own methods (which may
    be anything) are never called. Anything else is summarised with :func:`safe_str`.
    """
    if type(text) is not str:
        if not isinstance(text, str):
            return safe_str(text, limit)
        text = str.__str__(text)
    if len(text) > limit:
        text = text[:limit] + f"... [truncated {len(text) - limit} chars]"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def safe_str(obj: object, limit: int = 4096) -> str:
    """``str(obj)``, falling back to ``repr`` and then to a type summary; never raises."""
    try:
        text = str(obj)
        if type(text) is not str:  # a __str__ returning a str subclass with odd behaviour
            text = str.__str__(text)
        return clean_text(text, limit)
    except BaseException:
        pass
    try:
        text = repr(obj)
        return clean_text(str.__str__(text), limit)
    except BaseException:
        return f"<unprintable {qualified_name(type(obj))}>"


def safe_repr(obj: object, limit: int = 512) -> str:
    """``repr(obj)`` capped; never raises."""
    try:
        return clean_text(str.__str__(repr(obj)), limit)
    except BaseException:
        return f"<unrepresentable {qualified_name(type(obj))}>"


def qualified_name(cls: Any) -> str:
    """``module.QualName`` of a class, without the ``builtins.`` prefix, as clean UTF-8;
    never raises."""
    try:
        qual = cls.__qualname__
        mod = cls.__module__
        if not isinstance(qual, str):
            qual = "<unknown>"
        if isinstance(mod, str) and mod not in ("builtins", "__builtin__"):
            return clean_text(f"{mod}.{qual}", 512)
        return clean_text(qual, 512)
    except BaseException:
        return "<unknown>"
