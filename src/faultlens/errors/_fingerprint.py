"""Fingerprints: one stable id for "the same error", however its details vary.

Built from the exception type, the in-app frames (module and function, never line numbers,
so an unrelated edit above does not split the group) and the message with the variable parts
(numbers, hex ids, UUIDs, quoted strings) normalised away.

Hot path: a storm of one error, or a hot failing endpoint, raises from the same code again
and again, so the part of the fingerprint that comes from the traceback is computed once per
chain of code objects and reused (``_CHAIN_CACHE``, bounded); message normalisation skips
the patterns that cannot match and remembers recent messages (``_NORMALIZED``, bounded).
Both give exactly what the uncached computation gives. One approximation, documented: a
chain's module names are those of the first frames seen with those code objects (the same
code object run with other globals, by ``exec(code, g)``, keeps the first module's name).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import sysconfig
from types import TracebackType
from typing import Any

from ._fault import FaultError
from ._safe import qualified_name, safe_str

__all__ = [
    "FINGERPRINT_VERSION",
    "fingerprint",
    "fingerprint_prefix",
    "in_app",
    "is_own_frame",
    "normalize_message",
]

FINGERPRINT_VERSION = 1
_MAX_FRAMES = 32
_MESSAGE_PREFIX = 512

_NORMALIZERS = (
    (re.compile(r"'(?:[^'\\\n]|\\.){0,200}'|\"(?:[^\"\\\n]|\\.){0,200}\""), "<str>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"), "<n>"),
)


_STR, _UUID, _HEX, _HEXWORD, _NUMBER = _NORMALIZERS
_DIGIT = re.compile(r"\d")  # as _NUMBER: any Unicode digit (U+1E140 too)
_NORMALIZED: dict[str, str] = {}
_MAX_NORMALIZED = 2048
_MAX_CACHED_MESSAGE = 256


def normalize_message(message: str) -> str:
    text = message[:_MESSAGE_PREFIX]
    cacheable = len(text) <= _MAX_CACHED_MESSAGE
    if cacheable:
        hit = _NORMALIZED.get(text)
        if hit is not None:
            return hit
    out = _normalize(text)
    if cacheable:
        if len(_NORMALIZED) >= _MAX_NORMALIZED:
            _NORMALIZED.clear()
        _NORMALIZED[text] = out
    return out


def _normalize(text: str) -> str:
    """The normalisers in order, each skipped when the text cannot hold a match (the
    replacements add no quote, dash, digit or ``0x``, so a check stays valid after them)."""
    if "'" in text or '"' in text:
        text = _STR[0].sub(_STR[1], text)
    if "-" in text and len(text) >= 36:  # a UUID may be all letters
        text = _UUID[0].sub(_UUID[1], text)
    if not _DIGIT.search(text):
        return text  # ``0x``, hex words and numbers all hold a digit
    if "0x" in text:
        text = _HEX[0].sub(_HEX[1], text)
    text = _HEXWORD[0].sub(_HEXWORD[1], text)
    return _NUMBER[0].sub(_NUMBER[1], text)


def _library_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            p = sysconfig.get_paths().get(key)
        except Exception:
            p = None
        if p:
            roots.add(os.path.realpath(p))
    for p in (sys.base_prefix, sys.prefix):
        roots.add(os.path.realpath(os.path.join(p, "lib")))
    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # the faultlens package
    roots.add(here)
    return tuple(sorted(roots))


_ROOTS: tuple[str, ...] | None = None
_IN_APP_CACHE: dict[str, bool] = {}
# The faultlens package itself: its frames (the wrappers of @instrument, capture(), retry,
# the breaker...) are never part of what the application's traceback would show.
_OWN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_REAL_ROOT = os.path.realpath(_OWN_ROOT)
_OWN_CACHE: dict[str, bool] = {}


def is_own_frame(filename: str) -> bool:
    """Whether a frame's file belongs to faultlens (its wrappers' frames, hidden from the
    stack traces and fingerprints of the application's errors). Never raises."""
    cached = _OWN_CACHE.get(filename)
    if cached is not None:
        return cached
    result = False
    try:
        if isinstance(filename, str) and not filename.startswith("<"):
            result = filename.startswith(_OWN_ROOT + os.sep) or os.path.realpath(
                filename
            ).startswith(_OWN_REAL_ROOT + os.sep)
    except Exception:
        result = False
    if len(_OWN_CACHE) > 4096:
        _OWN_CACHE.clear()
    _OWN_CACHE[filename] = result
    return result


def in_app(filename: str) -> bool:
    """Whether a frame's file is the user's code (not stdlib, site-packages or faultlens)."""
    cached = _IN_APP_CACHE.get(filename)
    if cached is not None:
        return cached
    global _ROOTS
    if _ROOTS is None:
        _ROOTS = _library_roots()
    if filename.startswith("<"):
        result = False
    else:
        real = os.path.realpath(filename)
        result = not any(real == r or real.startswith(r + os.sep) for r in _ROOTS)
        if "site-packages" in real or "dist-packages" in real:
            result = False
    if len(_IN_APP_CACHE) > 4096:
        _IN_APP_CACHE.clear()
    _IN_APP_CACHE[filename] = result
    return result


def _frames(tb: TracebackType | None) -> list[str]:
    app: list[str] = []
    every: list[str] = []
    seen = 0
    while tb is not None and seen < 1000:
        seen += 1
        code = tb.tb_frame.f_code
        if is_own_frame(code.co_filename):
            tb = tb.tb_next
            continue
        try:
            module = tb.tb_frame.f_globals.get("__name__", "?")
        except Exception:
            module = "?"
        name = getattr(code, "co_qualname", code.co_name)
        entry = f"{module}:{name}"
        every.append(entry)
        if in_app(code.co_filename):
            app.append(entry)
        tb = tb.tb_next
    chosen = app if app else every[-3:]
    return chosen[-_MAX_FRAMES:]


# (id of the exception type, its FaultError code, ids of the traceback's code objects) ->
# (the type and code objects, kept alive so that no id in the key can be reused while the
# entry lives; the fingerprint's text before the message).
_CHAIN_CACHE: dict[tuple[Any, ...], tuple[tuple[Any, ...], str]] = {}
_MAX_CHAINS = 1024
_MAX_CHAIN_FRAMES = 256  # deeper tracebacks are fingerprinted without the cache


def _prefix(exc_type: type, code: str | None, tb: TracebackType | None) -> str:
    """The fingerprint's text before the message: version, code, type and frames."""
    parts = [f"v{FINGERPRINT_VERSION}", qualified_name(exc_type), *_frames(tb)]
    if code is not None:
        parts.insert(1, code)
    return "\x1f".join(parts)


def _cached_prefix(exc_type: type, code: str | None, tb: TracebackType | None) -> str:
    if code is not None and len(code) > 256:
        return _prefix(exc_type, code, tb)
    key: list[Any] = [code, id(exc_type)]
    node = tb
    while node is not None:
        key.append(id(node.tb_frame.f_code))
        node = node.tb_next
        if len(key) > _MAX_CHAIN_FRAMES:
            return _prefix(exc_type, code, tb)
    hit = _CHAIN_CACHE.get(tuple(key))
    if hit is not None:
        return hit[1]
    prefix = _prefix(exc_type, code, tb)
    objs: list[Any] = [exc_type]
    node = tb
    while node is not None:
        objs.append(node.tb_frame.f_code)
        node = node.tb_next
    if len(_CHAIN_CACHE) >= _MAX_CHAINS:
        _CHAIN_CACHE.clear()
    _CHAIN_CACHE[tuple(key)] = (tuple(objs), prefix)
    return prefix


def reset_caches() -> None:
    """Forget the prefix and message caches (they never change a fingerprint; this frees
    their memory)."""
    _CHAIN_CACHE.clear()
    _NORMALIZED.clear()


def fingerprint_prefix(exc: BaseException) -> str:
    """Everything a fingerprint is made of except the message: version, FaultError code,
    type and frames (cached per chain of code locations). Two exceptions with the same
    prefix and the same message share a fingerprint."""
    try:
        tb = exc.__traceback__
    except Exception:
        tb = None
    code = exc.code if isinstance(exc, FaultError) else None
    if not isinstance(code, str):
        code = None
    try:
        return _cached_prefix(type(exc), code, tb)
    except Exception:
        return _prefix(type(exc), code, tb)


def fingerprint(exc: BaseException, message: str | None = None) -> str:
    """A 16-hex-digit id; ``message`` may be passed when already computed (saves a str())."""
    if message is None:
        message = safe_str(exc, _MESSAGE_PREFIX)
    text = fingerprint_prefix(exc) + "\x1f" + normalize_message(message)
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()
