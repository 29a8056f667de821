"""Reading hostile exceptions without ever raising.

Exceptions are user objects: ``__str__`` may raise, return a non-string, or produce megabytes;
``__module__`` may be odd. Everything faultlens reads from an exception goes through here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clean_text", "qualified_name", "safe_repr", "safe_str"]


def clean_text(text: str, limit: int) -> str:
    """Cap ``text`` and make it valid UTF-8, so exporters never choke on lone surrogates."""
    if len(text) > limit:
        text = text[:limit] + f"... [truncated {len(text) - limit} chars]"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def safe_str(obj: object, limit: int = 4096) -> str:
    """``str(obj)``, falling back to ``repr`` and then to a type summary; never raises."""
    try:
        text = str(obj)
        if not isinstance(text, str):  # a __str__ returning a str subclass with odd behaviour
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
    """``module.QualName`` of a class, without the ``builtins.`` prefix; never raises."""
    try:
        qual = cls.__qualname__
        mod = cls.__module__
        if not isinstance(qual, str):
            qual = "<unknown>"
        if isinstance(mod, str) and mod not in ("builtins", "__builtin__"):
            return f"{mod}.{qual}"
        return qual
    except BaseException:
        return "<unknown>"
