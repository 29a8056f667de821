"""Secret scrubbing for everything that leaves the process.

Applied by key (a context key or detail named ``password`` is redacted whatever its value,
at any depth of a nested mapping or sequence) and by value (a bearer token, JWT, URL
credential, cloud key or ``key=value`` pair is redacted wherever it appears inside a
message, a stack trace or the repr of an object). Key-based is exact and cheap; value-based
catches the secrets that end up inside exception messages, which is where most leaks happen.

Capping comes after scrubbing, never before: :meth:`Scrubber.capped` scrubs the text (and a
margin beyond the cut, so a secret that straddles the cut is still recognised whole), then
moves a cut that would split a word back to the word's start. The visible text therefore
never ends with a readable prefix of a token, a JWT or a ``key=value`` pair.

:func:`redact_url` is the one helper for printing a URL faultlens was given (an exporter
endpoint, a Jaeger or webhook URL): it drops the ``user:password@`` part and secret query
parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import safe_repr, safe_str

__all__ = [
    "MARGIN",
    "REDACTED",
    "Scrubber",
    "current",
    "default_scrubber",
    "redact_url",
    "scrub_capped",
    "scrub_mapping",
    "scrub_text",
    "set_current",
]

REDACTED = "[REDACTED]"

# Names that hold credentials (or, for the forwarded-for headers, a client's address).
# Matched case-insensitively anywhere inside a key, so ``X-Api-Key``, ``aws_secret_access_key``,
# ``PHPSESSID``, ``connect.sid`` and ``Proxy-Authorization`` are all covered. Short words are
# anchored so that ``author``, ``passenger`` or ``consider`` stay readable.
_SEP = r"[-_. ]?"
_SECRET_NAMES = (
    r"passw(?:or)?d|passphrase|(?<![a-z0-9])pass(?![a-z0-9])|pwd",
    r"secret",
    r"token",
    r"bearer",
    r"(?<![a-z0-9])jwt(?![a-z0-9])",
    r"authori[sz]ation",
    r"auth(?!or)",
    rf"api{_SEP}key",
    rf"access{_SEP}key",
    rf"account{_SEP}key",
    rf"priv(?:ate)?{_SEP}key",
    rf"signing{_SEP}key",
    rf"encryption{_SEP}key",
    r"credential",
    r"(?<![a-z0-9])creds?(?![a-z0-9])",
    r"cookie",
    r"session",
    r"sessid",
    r"(?<![a-z0-9])sid(?![a-z0-9])",
    r"signature",
    r"(?<![a-z0-9])sig(?![a-z0-9])",
    r"(?<![a-z0-9])dsn(?![a-z0-9])",
    r"csrf",
    r"xsrf",
    rf"forwarded{_SEP}for",
    rf"real{_SEP}ip",
)
# Lowercase literals one of which occurs in any key=value pair that can be a secret.
_NAME_TRIGGERS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "bearer",
    "jwt",
    "auth",
    "key",
    "cred",
    "cookie",
    "sess",
    "sid",
    "sig",
    "dsn",
    "csrf",
    "xsrf",
    "forwarded",
    "real",
)

# A value after ``key=`` / ``key:``: a quoted string (also b'...' and one left unclosed by a
# cut, up to the end of the line), a bracketed group, or a bare token.
_VALUE = r"(?:b?\"[^\"\n]*\"?|b?'[^'\n]*'?|\[[^\]\n]*\]?|\{[^}\n]*\}?|\([^)\n]*\)?|[^\s,;&'\"]+)"

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
    # HTTP header lines (``Authorization: Digest a=1, b=2``, ``Cookie: a=1; b=2``): the
    # whole rest of the line, since such values contain spaces and separators.
    (
        r"(?im)^(?P<key>[ \t]*(?:proxy-)?(?:authorization|(?:set-)?cookie|x-[\w-]*(?:token|key|"
        r"secret|auth)[\w-]*)[ \t]*:[ \t]*)[^\r\n]+",
        r"\g<key>" + REDACTED,
        ("authorization", "cookie", "x-"),
    ),
    # Authorization header values
    (
        r"(?i)(?P<kind>\b(?:bearer|basic|token|digest)\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        r"\g<kind>" + REDACTED,
        ("bearer", "basic", "token", "digest"),
    ),
    # JWTs (and a JWT's header.payload even when the signature was cut off)
    (r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?", REDACTED, ("eyj",)),
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
)

# key=value / key: value pairs inside free text, kwargs reprs (``Req(session='x')``), dict
# reprs and JSON (``'session': 'x'``, ``"auth": {...}``): every word followed by ``=`` or
# ``:`` is a candidate key, redacted when key_is_secret() says so. One cheap scan for
# candidates and a cached name check cost far less than one regex with every name in it.
_PAIR_SEP = re.compile(r"[=:]\s*")
_PAIR_VALUE = re.compile(_VALUE)
# <password>...</password>, <ns:Token attr="1">...</ns:Token> in XML/SOAP bodies
_XML_ELEMENT = re.compile(
    r"<(?P<tag>[\w:.-]{1,64})(?P<attrs>\s[^<>]{0,512})?>[^<]{1,8192}</(?P=tag)>"
)

# Characters that end a word for the purpose of cutting: a cut between two characters that
# are not among them splits a word (a token, a URL, a key=value pair), and moves.
_WORD_BREAK = re.compile(r"[\s,;'\"()<>{}\[\]|`]")

MARGIN = 1024
"""Characters scrubbed beyond a cut, so that a secret straddling the cut is recognised.
Callers that read a message with a cap (``safe_str(exc, limit + MARGIN)``) pass the margin
on to :meth:`Scrubber.capped`."""

_MAX_DEPTH = 6
_MAX_ITEMS = 200
_MAX_BYTES = 65536
_SEQUENCES = (list, tuple, set, frozenset)


class Scrubber:
    """Redacts secrets by key and by value. Immutable once built; build a new one to change."""

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        extra_patterns: Iterable[str] = (),
        replacement: str = REDACTED,
    ) -> None:
        # Extra keys are names, matched like the built-in ones: case-insensitively, anywhere
        # in a key (``ssn`` also covers ``customer_ssn``). Not regular expressions: a name
        # like ``x-token(v2)`` means itself. Empty names would match every key: ignored.
        names = tuple(k.strip().lower() for k in extra_keys if isinstance(k, str) and k.strip())
        keys = list(_SECRET_NAMES) + [re.escape(k) for k in names]
        self._key_re = re.compile("(?i)(?:" + "|".join(keys) + ")")
        patterns: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
            (re.compile(p), r.replace(REDACTED, replacement), t) for p, r, t in _VALUE_PATTERNS
        ]
        patterns += [(re.compile(p), replacement, ()) for p in extra_patterns]
        self._patterns = tuple(patterns)
        self._triggers = _NAME_TRIGGERS + names
        # One scan that tells whether any trigger occurs at all: most texts (messages, stack
        # traces) hold none, and then nothing else needs to run. Extra patterns have no
        # trigger (they always run), so a scrubber with any keeps the per-pattern checks.
        every = {t for _, _, ts in patterns for t in ts} | set(self._triggers)
        self._any_trigger = re.compile(_trie_pattern(every))
        self._always = next((p for p, _, ts in patterns if not ts), None)
        self.replacement = replacement
        self._key_cache: dict[str, bool] = {}

    # -- keys ------------------------------------------------------------------------------

    def key_is_secret(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            hit = bool(self._key_re.search(key))
            if len(self._key_cache) < 4096:
                self._key_cache[key] = hit
        return hit

    # -- text ------------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """Redact secret-looking values inside free text."""
        lowered = text.lower()
        if self._always is None and not self._any_trigger.search(lowered):
            return text  # not one trigger: no pattern and no key=value pair can apply
        for pattern, repl, triggers in self._patterns:
            if triggers and not any(t in lowered for t in triggers):
                continue
            text = pattern.sub(repl, text)
        if any(t in lowered for t in self._triggers):
            text = self._pairs(text)
            if "</" in text:
                text = _XML_ELEMENT.sub(self._element, text)
        return text

    def _element(self, m: re.Match[str]) -> str:
        tag = m.group("tag")
        if not self.key_is_secret(tag):
            return m.group(0)
        return f"<{tag}{m.group('attrs') or ''}>{self.replacement}</{tag}>"

    def _pairs(self, text: str) -> str:
        out: list[str] = []
        last = 0
        rep = self.replacement
        for m in _PAIR_SEP.finditer(text):
            sep = m.start()
            if sep < last:
                continue
            # the word before the separator (optional blanks and a closing quote between)
            j = sep
            while j > last and text[j - 1] in " \t":
                j -= 1
            if j > last and text[j - 1] in "'\"":
                j -= 1
            k = j
            while k > last and (text[k - 1].isalnum() or text[k - 1] in "_.-"):
                k -= 1
            if k == j or not self.key_is_secret(text[k:j]):
                continue
            end = m.end()
            if rep and text.startswith(rep, end):
                continue
            value = _PAIR_VALUE.match(text, end)
            if value is None or value.end() == end:
                continue
            out.append(text[last:end])
            out.append(rep)
            last = value.end()
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def capped(self, text: str, limit: int, *, keep_tail: int = 0) -> str:
        """``text`` scrubbed, then cut to ``limit`` characters (plus a short marker) so that
        no secret cut by the cap leaves a readable piece.

        The scrub covers the kept part plus :data:`MARGIN` characters beyond each cut, so a
        secret across a cut is redacted whole; a cut that still falls inside a word moves to
        the word's edge, so the visible text never ends (or, for the kept tail, starts) with
        a fragment of a token. ``keep_tail`` keeps that many characters from the end (stack
        traces keep their innermost frames) and elides the middle instead. The result is
        valid UTF-8 (lone surrogates replaced), ready for an exporter.
        """
        limit = max(int(limit), 0)
        keep_tail = min(max(int(keep_tail), 0), limit)
        n = len(text)
        head_n = limit - keep_tail
        if n <= limit + MARGIN:
            whole = self.text(text)
            if len(whole) <= limit:
                return _valid(whole)
            head = tail = whole
            unscanned = 0
        else:
            head = self.text(text[: head_n + MARGIN])
            tail = self.text(text[n - keep_tail - MARGIN :]) if keep_tail else ""
            unscanned = n - (head_n + MARGIN) - (keep_tail + MARGIN if keep_tail else 0)
        head_end = _cut_back(head, self._outside_marker(head, head_n))
        visible_head = head[:head_end]
        if not keep_tail:
            dropped = len(head) - head_end + unscanned
            return _valid(f"{visible_head}... [truncated {dropped} chars]")
        tail_start = _cut_forward(tail, self._outside_marker(tail, len(tail) - keep_tail, True))
        visible_tail = tail[tail_start:]
        if head is tail:
            dropped = tail_start - head_end
        else:
            dropped = (len(head) - head_end) + unscanned + tail_start
        return _valid(f"{visible_head}\n... [{dropped} chars elided] ...\n{visible_tail}")

    def _outside_marker(self, text: str, cut: int, forward: bool = False) -> int:
        """``cut`` moved off a redaction marker it would split (``[REDA``)."""
        rep = self.replacement
        if not rep or cut <= 0 or cut >= len(text):
            return cut
        i = text.find(rep, max(0, cut - len(rep) + 1), cut + len(rep) - 1)
        if i == -1 or not i < cut < i + len(rep):
            return cut
        return i + len(rep) if forward else i

    def render(self, value: Any, limit: int) -> str:
        """One attribute value as scrubbed, capped text: a string as it is, anything else by
        its ``repr`` after redacting secret keys at every depth of mappings and sequences
        (and secret-looking values in bytes)."""
        if isinstance(value, str):
            return self.capped(value, limit)
        return self.capped(safe_repr(self.redact(value), limit + MARGIN), limit)

    # -- structures ------------------------------------------------------------------------

    def value(self, key: str, value: Any, _depth: int = 0) -> Any:
        """Scrub one keyed value: redacted outright if the key is secret, else by content."""
        if self.key_is_secret(key):
            return self.replacement
        return self._walk(value, _depth, str_keys=True)

    def mapping(self, data: Mapping[Any, Any], _depth: int = 0) -> dict[str, Any]:
        """A copy of ``data`` with string keys, secret keys redacted at every depth and every
        string value scrubbed (what goes into a JSON envelope)."""
        return self._mapping(data, _depth, str_keys=True)

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` that keeps its shape for ``repr`` (tuples stay tuples, keys
        keep their type) with secret keys redacted at every depth; strings and bytes are
        scrubbed by content. Other objects are returned as they are (their repr is scrubbed
        as text)."""
        return self._walk(value, 0, str_keys=False)

    def _mapping(self, data: Mapping[Any, Any], depth: int, *, str_keys: bool) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        size = _size(data)
        for i, (k, v) in enumerate(data.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"{size - _MAX_ITEMS} more items" if size >= 0 else "more items"
                break
            name = k if isinstance(k, str) else _safe_key(k)
            key = name if str_keys else k
            if self.key_is_secret(name):
                out[key] = self.replacement
            else:
                out[key] = self._walk(v, depth + 1, str_keys=str_keys)
        return out

    def _walk(self, value: Any, depth: int, *, str_keys: bool) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._bytes(value)
        if depth >= _MAX_DEPTH:
            return "…"
        if isinstance(value, Mapping):
            try:
                return self._mapping(value, depth, str_keys=str_keys)
            except Exception:
                return f"<unreadable {type(value).__name__}>"
        if type(value) in _SEQUENCES:  # subclasses (namedtuples) keep their repr
            try:
                items = list(islice(value, _MAX_ITEMS + 1))
            except Exception:
                return f"<unreadable {type(value).__name__}>"
            out = [self._walk(v, depth + 1, str_keys=str_keys) for v in items[:_MAX_ITEMS]]
            if (
                len(items) == 2
                and isinstance(value, (list, tuple))
                and self._is_secret_name(items[0])
            ):
                # a (name, value) pair, as header lists are: [("Authorization", "..."), ...]
                out[1] = self.replacement
            if len(items) > _MAX_ITEMS:
                out.append("…")
            if isinstance(value, tuple):
                return tuple(out)
            if isinstance(value, (set, frozenset)):
                try:
                    return type(value)(out)
                except TypeError:
                    return out
            return out
        return value

    def _is_secret_name(self, item: Any) -> bool:
        if isinstance(item, (bytes, bytearray)):
            item = bytes(item[:256]).decode("latin-1")
        return isinstance(item, str) and len(item) <= 256 and self.key_is_secret(item)

    def _bytes(self, value: bytes | bytearray | memoryview) -> Any:
        try:
            raw = bytes(value[:_MAX_BYTES])
        except Exception:
            return f"<unreadable {type(value).__name__}>"
        text = raw.decode("utf-8", "replace")
        clean = self.text(text)
        if clean == text and isinstance(value, bytes) and len(value) <= _MAX_BYTES:
            return value
        return clean.encode("utf-8", "replace")


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, shaped as a trie (``a(?:uth|kia)``):
    Python's engine tries a flat alternation's branches one by one at every position, while
    a trie rejects a position on its first character. Matches at the same places as the
    flat alternation (any word found anywhere is found)."""
    root: dict[str, Any] = {}
    for word in words:
        if not word:
            continue
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + emit(node[ch]) for ch in sorted(k for k in node if k)]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here: the longer ones are optional
            return "(?:" + "|".join(branches) + ")?"
        return body

    return emit(root) or "(?!)"


def _size(data: Mapping[Any, Any]) -> int:
    try:
        return len(data)
    except Exception:
        return -1


def _cut_back(text: str, cut: int) -> int:
    """``cut``, or the start of the word it would split."""
    if cut <= 0:
        return 0
    if cut >= len(text):
        return len(text)
    if _WORD_BREAK.match(text, cut - 1) or _WORD_BREAK.match(text, cut):
        return cut
    m = _WORD_BREAK.search(text[cut - 1 :: -1])
    return cut - m.start() if m else 0


def _cut_forward(text: str, start: int) -> int:
    """``start``, or the end of the word it would split."""
    if start <= 0:
        return 0
    if start >= len(text):
        return len(text)
    if _WORD_BREAK.match(text, start - 1) or _WORD_BREAK.match(text, start):
        return start
    m = _WORD_BREAK.search(text, start)
    return m.start() if m else len(text)


def _valid(text: str) -> str:
    """Valid UTF-8: exporters choke on lone surrogates."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def _safe_key(k: object) -> str:
    try:
        return str(k)
    except Exception:
        return f"<key {type(k).__name__}>"


# -- URLs ---------------------------------------------------------------------------------------

_USERINFO = re.compile(r"^[^/?#@\s]*@")


def redact_url(url: object) -> str:
    """``url`` fit to print: without its ``user:password@`` part, with secret query
    parameters (``?token=...``, ``&api_key=...``) redacted and with path segments that look
    like tokens (a Slack or Discord webhook's secret) masked. Never raises.

    ``http://admin:pw@collector:4317/v1`` -> ``http://collector:4317/v1``. Also handles a
    URL without a scheme (``admin:pw@collector:4317``) and several ``@``s (everything up to
    the last one is userinfo, as HTTP clients read it). For display only: to link to a URL,
    drop its userinfo and keep the path.
    """
    text = url if isinstance(url, str) else safe_str(url, 4096)
    try:
        parts = urlsplit(text)
        if parts.netloc:
            host = parts.netloc.rpartition("@")[2]
            path = _TOKEN_SEGMENT.sub(_mask_segment, parts.path)
            text = urlunsplit((parts.scheme, host, path, parts.query, parts.fragment))
        else:
            text = _USERINFO.sub("", text, count=1)
    except ValueError:  # e.g. an invalid IPv6 literal: strip by pattern
        text = re.sub(r"(//|^)[^/?#\s]*@", r"\1", text, count=1)
    return _current.text(text)


# A path segment of 20+ token characters mixing at least two of lower case, upper case and
# digits: what webhook URLs carry as their secret (hooks.slack.com/services/T../B../<token>).
_TOKEN_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{20,}(?=/|$)")


def _mask_segment(m: re.Match[str]) -> str:
    seg = m.group(0)
    kinds = sum(
        (
            any(c.islower() for c in seg),
            any(c.isupper() for c in seg),
            any(c.isdigit() for c in seg),
        )
    )
    return REDACTED if kinds >= 2 else seg


# -- the scrubber in force ----------------------------------------------------------------------

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


def scrub_capped(text: str, limit: int, *, keep_tail: int = 0) -> str:
    """:meth:`Scrubber.capped` with the scrubber in force."""
    return _current.capped(text, limit, keep_tail=keep_tail)


def scrub_mapping(data: Mapping[Any, Any]) -> dict[str, Any]:
    return _current.mapping(data)
