"""Secret scrubbing for everything that leaves the process.

Applied by key (a context key or detail named ``password`` is redacted whatever its value)
and by value (a bearer token, JWT, URL credential or cloud key is redacted wherever it
appears inside a message). Key-based is exact and cheap; value-based catches the secrets
that end up inside exception messages, which is where most leaks happen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "Scrubber", "default_scrubber", "scrub_mapping", "scrub_text"]

REDACTED = "[REDACTED]"

_DEFAULT_KEYS = (
    r"pass(?:word|wd|phrase)?",
    r"pwd",
    r"secret",
    r"token",
    r"authori[sz]ation",
    r"auth(?!or)",
    r"api[_-]?key",
    r"access[_-]?key",
    r"private[_-]?key",
    r"credential",
    r"cookie",
    r"session",
    r"signature",
    r"dsn",
    r"x[_-]?api[_-]?key",
)

# (pattern, replacement, trigger literals). A pattern runs only when one of its lowercase
# triggers occurs in the text: most messages contain no secret at all, and a handful of
# substring checks cost far less than a dozen regex scans over a stack trace.
_VALUE_PATTERNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        REDACTED,
        ("private key",),
    ),
    # URL credentials: scheme://user:pass@host -> scheme://[REDACTED]@host
    (
        r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)"
        r"(?:[^\s/:@'\"]+(?::[^\s/@'\"]*)?|:[^\s/@'\"]+)@",
        r"\g<scheme>" + REDACTED + "@",
        ("://",),
    ),
    # Authorization header values
    (
        r"(?i)(?P<kind>\b(?:bearer|basic|token|digest)\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        r"\g<kind>" + REDACTED,
        ("bearer", "basic", "token", "digest"),
    ),
    # JWTs
    (r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", REDACTED, ("eyj",)),
    # AWS access key ids
    (
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
        REDACTED,
        ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"),
    ),
    # GitHub, Slack, Google, Stripe, OpenAI-style keys
    (
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})\b",
        REDACTED,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", REDACTED, ("xox",)),
    (r"\bAIza[0-9A-Za-z_-]{35}\b", REDACTED, ("aiza",)),
    (r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b", REDACTED, ("k_live_", "k_test_")),
    (r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b", REDACTED, ("sk-",)),
    # key=value / key: value pairs inside free text (aws_secret_access_key=..., password: ...)
    (
        r"(?i)(?P<key>(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|"
        r"private[_-]?key|accountkey|credential|authorization|cookie|session[_-]?id)"
        r"[\w-]*['\"]?)(?P<sep>\s*[=:]\s*)(?P<val>\"[^\"]*\"|'[^']*'|[^\s,;&'\"]+)",
        r"\g<key>\g<sep>" + REDACTED,
        (
            "pass",
            "pwd",
            "secret",
            "token",
            "key",
            "credential",
            "authorization",
            "cookie",
            "session",
        ),
    ),
)

_MAX_DEPTH = 6
_MAX_ITEMS = 200


class Scrubber:
    """Redacts secrets by key and by value. Immutable once built; build a new one to change."""

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        extra_patterns: Iterable[str] = (),
        replacement: str = REDACTED,
    ) -> None:
        keys = list(_DEFAULT_KEYS) + [re.escape(k) if k.isidentifier() else k for k in extra_keys]
        self._key_re = re.compile("(?i)(?:" + "|".join(keys) + ")")
        patterns: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
            (re.compile(p), r.replace(REDACTED, replacement), t) for p, r, t in _VALUE_PATTERNS
        ]
        patterns += [(re.compile(p), replacement, ()) for p in extra_patterns]
        self._patterns = tuple(patterns)
        self.replacement = replacement
        self._key_cache: dict[str, bool] = {}

    def key_is_secret(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            hit = bool(self._key_re.search(key))
            if len(self._key_cache) < 4096:
                self._key_cache[key] = hit
        return hit

    def text(self, text: str) -> str:
        """Redact secret-looking values inside free text."""
        lowered = text.lower()
        for pattern, repl, triggers in self._patterns:
            if triggers and not any(t in lowered for t in triggers):
                continue
            text = pattern.sub(repl, text)
        return text

    def value(self, key: str, value: Any, _depth: int = 0) -> Any:
        """Scrub one keyed value: redacted outright if the key is secret, else by content."""
        if self.key_is_secret(key):
            return self.replacement
        return self._walk(value, _depth)

    def mapping(self, data: Mapping[Any, Any], _depth: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(data.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"{len(data) - _MAX_ITEMS} more items"
                break
            key = k if isinstance(k, str) else _safe_key(k)
            out[key] = self.value(key, v, _depth + 1)
        return out

    def _walk(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth >= _MAX_DEPTH:
            return "…"
        if isinstance(value, Mapping):
            try:
                return self.mapping(value, depth)
            except Exception:
                return f"<unreadable {type(value).__name__}>"
        if isinstance(value, (list, tuple, set, frozenset)):
            try:
                items = list(value)[:_MAX_ITEMS]
            except Exception:
                return f"<unreadable {type(value).__name__}>"
            return [self._walk(v, depth + 1) for v in items]
        if isinstance(value, bytes):
            return self.text(value[:4096].decode("utf-8", "replace"))
        return value


def _safe_key(k: object) -> str:
    try:
        return str(k)
    except Exception:
        return f"<key {type(k).__name__}>"


default_scrubber = Scrubber()
_current = default_scrubber


def current() -> Scrubber:
    """The scrubber in force (configure() may install one with extra keys/patterns)."""
    return _current


def set_current(scrubber: Scrubber | None) -> None:
    global _current
    _current = scrubber or default_scrubber


def scrub_text(text: str) -> str:
    return _current.text(text)


def scrub_mapping(data: Mapping[Any, Any]) -> dict[str, Any]:
    return _current.mapping(data)
