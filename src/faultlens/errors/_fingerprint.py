"""Fingerprints: one stable id for "the same error", however its details vary.

Built from the exception type, the in-app frames (module and function, never line numbers,
so an unrelated edit above does not split the group) and the message with the variable parts
(numbers, hex ids, UUIDs, quoted strings) normalised away.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import sysconfig
from types import TracebackType

from ._fault import FaultError
from ._safe import qualified_name, safe_str

__all__ = ["FINGERPRINT_VERSION", "fingerprint", "in_app", "is_own_frame", "normalize_message"]

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


def normalize_message(message: str) -> str:
    text = message[:_MESSAGE_PREFIX]
    for pattern, repl in _NORMALIZERS:
        text = pattern.sub(repl, text)
    return text


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


def fingerprint(exc: BaseException, message: str | None = None) -> str:
    """A 16-hex-digit id; ``message`` may be passed when already computed (saves a str())."""
    if message is None:
        message = safe_str(exc, _MESSAGE_PREFIX)
    try:
        tb = exc.__traceback__
    except Exception:
        tb = None
    parts = [
        f"v{FINGERPRINT_VERSION}",
        qualified_name(type(exc)),
        *_frames(tb),
        normalize_message(message),
    ]
    code = exc.code if isinstance(exc, FaultError) else None
    if isinstance(code, str):
        parts.insert(1, code)
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "replace"), digest_size=8).hexdigest()
