"""Error-code catalogs: the built-in generic codes, user codes, and classification rules.

A code is a stable name for "this kind of failure" that dashboards and alerts key on, so the
catalog is strict where a typo would silently split a series (duplicate codes, unknown
categories or severities fail loudly with the file, key and fix) and lenient at run time (a
code nobody registered is kept as given and warned about once, never raised).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._exceptions import CatalogError, UnknownCodeError
from ._library_rules import LIBRARY_CODES, LIBRARY_SOURCE, library_code
from ._types import Category, CodeSpec, Severity

__all__ = ["BUILTIN_CODES", "Catalog", "Matcher", "catalog"]

_log = logging.getLogger("faultlens")

Matcher = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SPEC_FIELDS = ("category", "severity", "retryable", "hint", "description")

# The generic codes every service shares. Severity reflects how soon a human should look.
BUILTIN_CODES: tuple[CodeSpec, ...] = (
    CodeSpec(
        "VAL_FILE_NOT_FOUND",
        "validation",
        Severity.MEDIUM,
        False,
        "check that the path exists and is spelled right",
        "a file or directory is missing",
    ),
    CodeSpec(
        "VAL_INVALID_VALUE",
        "validation",
        Severity.MEDIUM,
        False,
        "check the input value against what the function accepts",
        "a value is invalid",
    ),
    CodeSpec(
        "EXE_PERMISSION_DENIED",
        "execution",
        Severity.HIGH,
        False,
        "check file ownership/mode or the account the process runs as",
        "the process lacks permission",
    ),
    CodeSpec(
        "EXE_TIMEOUT",
        "execution",
        Severity.MEDIUM,
        True,
        "raise the timeout or find what makes the operation slow",
        "an operation timed out",
    ),
    CodeSpec(
        "EXE_IMPORT_FAILED",
        "execution",
        Severity.HIGH,
        False,
        "install the missing package or fix the module path",
        "an import failed",
    ),
    CodeSpec(
        "EXE_CIRCUIT_OPEN",
        "execution",
        Severity.MEDIUM,
        True,
        "the dependency is failing; wait for the breaker's next trial or check the dependency",
        "a circuit breaker rejected the call",
    ),
    CodeSpec(
        "EXE_RETRY_EXHAUSTED",
        "execution",
        Severity.HIGH,
        False,
        "the operation kept failing; look at the last attempt's error",
        "all retry attempts failed",
    ),
    CodeSpec(
        "RES_INSUFFICIENT_MEMORY",
        "resource",
        Severity.CRITICAL,
        False,
        "reduce the batch size or give the process more memory",
        "memory ran out",
    ),
    CodeSpec(
        "NET_CONNECTION_FAILED",
        "network",
        Severity.HIGH,
        True,
        "check that the remote service is up and reachable",
        "a network connection failed",
    ),
    CodeSpec(
        "SYS_UNKNOWN_ERROR",
        "system",
        Severity.HIGH,
        False,
        "an unclassified error; register a code for it with faultlens.catalog.register",
        "an error no rule classifies",
    ),
)

# Most specific class wins: the MRO walk in classify() finds FileNotFoundError before OSError.
_BUILTIN_RULES: tuple[tuple[type[BaseException], str], ...] = (
    (FileNotFoundError, "VAL_FILE_NOT_FOUND"),
    (PermissionError, "EXE_PERMISSION_DENIED"),
    (MemoryError, "RES_INSUFFICIENT_MEMORY"),
    (TimeoutError, "EXE_TIMEOUT"),
    (ConnectionError, "NET_CONNECTION_FAILED"),
    (ValueError, "VAL_INVALID_VALUE"),
    (ImportError, "EXE_IMPORT_FAILED"),
)

UNKNOWN_CODE = "SYS_UNKNOWN_ERROR"


class _StrictLoader:
    """Builds a yaml SafeLoader that rejects duplicate keys (PyYAML silently keeps the last)."""

    _cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._cls is None:
            import yaml

            class Loader(yaml.SafeLoader):
                pass

            def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    key = loader.construct_object(key_node, deep=deep)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
                    seen[key] = True
                return loader.construct_mapping(node, deep=deep)

            Loader.add_constructor(
                yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
            )
            cls._cls = Loader
        return cls._cls


def load_yaml_file(path: str | os.PathLike[str], error: type[CatalogError] = CatalogError) -> Any:
    """Read a YAML file strictly; every failure names the file and what to do.

    The file must be UTF-8 (a byte-order mark is allowed); anything else is an error naming
    the file, the byte offset and the line, never a bare ``UnicodeDecodeError``."""
    import yaml

    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise error("file not found; check the path", source=p) from None
    except IsADirectoryError:
        raise error("is a directory, not a YAML file; check the path", source=p) from None
    except OSError as exc:
        raise error(f"cannot read file ({exc.strerror}); check its permissions", source=p) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, offset) + 1
        raise error(
            f"not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} (line {line}) "
            "cannot be decoded; save the file as UTF-8",
            source=p,
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader.get())
    except yaml.YAMLError as exc:
        raise error(
            f"invalid YAML: {exc}; fix the syntax at the position shown", source=p
        ) from None
    except RecursionError:
        raise error("invalid YAML: nested too deeply", source=p) from None


def import_object(path: str) -> Any:
    """Import ``pkg.mod:Name`` or ``pkg.mod.Name``."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ValueError(f"{path!r} is not an import path like 'package.module:ClassName'")
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Catalog:
    """A registry of codes and the rules that map exceptions onto them.

    Thread-safe for registration; lookups are plain dict reads.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self._lock = threading.RLock()
        self._codes: dict[str, CodeSpec] = {}
        self._sources: dict[str, str] = {}
        self._categories: set[str] = {c.value for c in Category}
        self._type_rules: dict[type[BaseException], str] = {}
        self._predicates: list[tuple[Callable[[BaseException], bool], str]] = []
        self._builtin_rules: dict[type[BaseException], str] = {}
        self._warned: set[str] = set()
        if builtins:
            self._install_builtins()

    # -- registration -------------------------------------------------------------------

    def _install_builtins(self) -> None:
        for spec in BUILTIN_CODES:
            self._codes[spec.code] = spec
            self._sources[spec.code] = "built-in"
        for spec in LIBRARY_CODES:  # popular libraries' exceptions, by class name
            self._codes[spec.code] = spec
            self._sources[spec.code] = LIBRARY_SOURCE
        self._builtin_rules = dict(_BUILTIN_RULES)

    def add_category(self, name: str) -> None:
        """Declare a category beyond the five built-in ones (lowercase identifier)."""
        if not isinstance(name, str) or not _CATEGORY_RE.match(name):
            raise CatalogError(
                f"invalid category name {name!r}; use a lowercase identifier like 'billing'"
            )
        with self._lock:
            self._categories.add(name)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(self._categories)

    def register(
        self,
        code: str,
        *,
        category: Category | str,
        severity: Severity | str = Severity.MEDIUM,
        retryable: bool = False,
        hint: str = "",
        description: str = "",
        replace: bool = False,
        source: str = "python",
    ) -> CodeSpec:
        """Add a code. Re-registering the same definition is a no-op; a different one for an
        existing code is an error unless ``replace=True`` (silent redefinition would make the
        same code mean two things on two hosts)."""
        spec = self._build_spec(
            code,
            {
                "category": category,
                "severity": severity,
                "retryable": retryable,
                "hint": hint,
                "description": description,
            },
            source=source,
        )
        with self._lock:
            existing = self._codes.get(spec.code)
            if (
                existing is not None
                and existing != spec
                and not replace
                and self._sources.get(spec.code) != LIBRARY_SOURCE  # user definitions win
            ):
                raise CatalogError(
                    f"code {spec.code!r} is already defined (by {self._sources[spec.code]}) "
                    "with a different definition; pick another code or pass replace=True",
                    source=None if source == "python" else source,
                    key=spec.code,
                )
            self._codes[spec.code] = spec
            self._sources[spec.code] = source
        return spec

    def rule(self, match: Matcher, code: str) -> None:
        """Map exceptions onto ``code``: a type (subclasses included, most specific type wins),
        a tuple of types, or a predicate called with the exception. User rules always win
        over the built-in ones; predicates are tried first, in registration order."""
        if code not in self._codes:
            raise UnknownCodeError(
                f"rule targets unknown code {code!r}; register the code first "
                "(faultlens.catalog.register or a catalog YAML 'codes:' entry)",
                key=code,
            )
        types: tuple[type[BaseException], ...]
        if isinstance(match, type) and issubclass(match, BaseException):
            types = (match,)
        elif (
            isinstance(match, tuple)
            and match
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in match)
        ):
            types = match
        elif callable(match) and not isinstance(match, type):
            with self._lock:
                self._predicates.append((match, code))
            return
        else:
            raise CatalogError(
                f"rule match must be an exception class, a tuple of them, or a predicate "
                f"callable; got {match!r}",
                key=code,
            )
        with self._lock:
            for t in types:
                self._type_rules[t] = code

    def load(self, path: str | os.PathLike[str]) -> list[CodeSpec]:
        """Load codes (and optional categories and rules) from a YAML file.

        Shape::

            categories: [billing]            # optional, extra categories
            codes:
              WORKSPACE_NOT_FOUND: {category: validation, severity: high, hint: "..."}
            rules:                           # optional
              - {exception: "myapp.errors:WorkspaceMissing", code: WORKSPACE_NOT_FOUND}
        """
        src = os.fspath(path)
        data = load_yaml_file(src)
        return self.load_mapping(data, source=src)

    def load_mapping(self, data: Any, *, source: str = "<mapping>") -> list[CodeSpec]:
        """Validate a whole catalog document first, then register it; nothing is half-applied."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise CatalogError(
                "a catalog must be a mapping with 'codes:' (and optionally 'categories:', "
                "'rules:')",
                source=source,
            )
        unknown = set(data) - {"codes", "categories", "rules"}
        if unknown:
            raise CatalogError(
                f"unknown top-level key(s) {sorted(map(str, unknown))}; "
                "allowed: codes, categories, rules",
                source=source,
                key=str(sorted(map(str, unknown))[0]),
            )
        cats = data.get("categories") or []
        if not isinstance(cats, list):
            raise CatalogError("must be a list of names", source=source, key="categories")
        new_categories = set()
        for c in cats:
            if not isinstance(c, str) or not _CATEGORY_RE.match(c):
                raise CatalogError(
                    f"invalid category {c!r}; use a lowercase identifier",
                    source=source,
                    key="categories",
                )
            new_categories.add(c)

        raw_codes = data.get("codes") or {}
        entries: list[tuple[str, Any]] = []
        if isinstance(raw_codes, Mapping):
            entries = [(str(k), v) for k, v in raw_codes.items()]
        elif isinstance(raw_codes, list):
            seen: set[str] = set()
            for i, item in enumerate(raw_codes):
                if not isinstance(item, Mapping) or "code" not in item:
                    raise CatalogError(
                        "each list entry needs a 'code:' field", source=source, key=f"codes[{i}]"
                    )
                c = str(item["code"])
                if c in seen:
                    raise CatalogError(
                        f"duplicate code {c!r} in this file; keep one definition",
                        source=source,
                        key=f"codes[{i}]",
                    )
                seen.add(c)
                entries.append((c, {k: v for k, v in item.items() if k != "code"}))
        else:
            raise CatalogError(
                "must be a mapping of CODE: {category, severity, ...}", source=source, key="codes"
            )

        specs: list[CodeSpec] = []
        with self._lock:
            saved = set(self._categories)
            self._categories |= new_categories
            try:
                for code, fields in entries:
                    if fields is None:
                        fields = {}
                    if not isinstance(fields, Mapping):
                        raise CatalogError(
                            "must be a mapping with category, severity, retryable, hint",
                            source=source,
                            key=f"codes.{code}",
                        )
                    spec = self._build_spec(code, dict(fields), source=source)
                    existing = self._codes.get(code)
                    if (
                        existing is not None
                        and existing != spec
                        and self._sources.get(code) != LIBRARY_SOURCE  # user definitions win
                    ):
                        raise CatalogError(
                            f"code {code!r} is already defined by {self._sources[code]}; "
                            "rename it or remove one definition",
                            source=source,
                            key=f"codes.{code}",
                        )
                    specs.append(spec)
                rules = self._parse_rules(data.get("rules") or [], {s.code for s in specs}, source)
            except CatalogError:
                self._categories = saved
                raise
            for spec in specs:
                self._codes[spec.code] = spec
                self._sources[spec.code] = source
            for types, code in rules:
                for t in types:
                    self._type_rules[t] = code
        return specs

    def _parse_rules(
        self, raw: Any, new_codes: set[str], source: str
    ) -> list[tuple[tuple[type[BaseException], ...], str]]:
        if not isinstance(raw, list):
            raise CatalogError(
                "must be a list of {exception: 'pkg.mod:Class', code: CODE}",
                source=source,
                key="rules",
            )
        out = []
        for i, item in enumerate(raw):
            key = f"rules[{i}]"
            if not isinstance(item, Mapping) or set(item) - {"exception", "code"}:
                raise CatalogError(
                    "each rule is {exception: 'pkg.mod:Class' (or a list), code: CODE}",
                    source=source,
                    key=key,
                )
            code = item.get("code")
            if not isinstance(code, str) or (code not in self._codes and code not in new_codes):
                raise CatalogError(
                    f"rule targets unknown code {code!r}; define it under 'codes:'",
                    source=source,
                    key=f"{key}.code",
                )
            paths = item.get("exception")
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, list) or not paths:
                raise CatalogError(
                    "needs 'exception:' with an import path like 'myapp.errors:NotFound'",
                    source=source,
                    key=f"{key}.exception",
                )
            types = []
            for p in paths:
                try:
                    obj = import_object(str(p))
                except Exception as exc:
                    raise CatalogError(
                        f"cannot import {p!r} ({type(exc).__name__}: {exc}); "
                        "check the module path and that it is importable",
                        source=source,
                        key=f"{key}.exception",
                    ) from None
                if not (isinstance(obj, type) and issubclass(obj, BaseException)):
                    raise CatalogError(
                        f"{p!r} is not an exception class",
                        source=source,
                        key=f"{key}.exception",
                    )
                types.append(obj)
            out.append((tuple(types), code))
        return out

    def _build_spec(self, code: Any, fields: dict[str, Any], *, source: str) -> CodeSpec:
        src = None if source == "python" else source
        if not isinstance(code, str) or not _CODE_RE.match(code):
            raise CatalogError(
                f"invalid code {code!r}; use letters, digits and _ (e.g. WORKSPACE_NOT_FOUND)",
                source=src,
            )
        key = f"codes.{code}" if src else code
        unknown = set(fields) - set(_SPEC_FIELDS)
        if unknown:
            raise CatalogError(
                f"unknown field(s) {sorted(map(str, unknown))}; allowed: {', '.join(_SPEC_FIELDS)}",
                source=src,
                key=key,
            )
        category = fields.get("category")
        if category is None:
            raise CatalogError(
                "missing 'category'; one of: " + ", ".join(sorted(self._categories)),
                source=src,
                key=key,
            )
        cat = category.value if isinstance(category, Category) else category
        if not isinstance(cat, str) or cat.lower() not in self._categories:
            raise CatalogError(
                f"unknown category {category!r}; use one of: {', '.join(sorted(self._categories))}"
                " (or declare it under 'categories:' / catalog.add_category)",
                source=src,
                key=f"{key}.category",
            )
        cat = cat.lower()
        try:
            sev = Severity.parse(fields.get("severity", Severity.MEDIUM))
        except ValueError as exc:
            raise CatalogError(str(exc), source=src, key=f"{key}.severity") from None
        retryable = fields.get("retryable", False)
        if not isinstance(retryable, bool):
            raise CatalogError(
                f"retryable must be true or false, got {retryable!r}",
                source=src,
                key=f"{key}.retryable",
            )
        hint = fields.get("hint", "") or ""
        description = fields.get("description", "") or ""
        for name, value in (("hint", hint), ("description", description)):
            if not isinstance(value, str):
                raise CatalogError(
                    f"{name} must be a string, got {type(value).__name__}",
                    source=src,
                    key=f"{key}.{name}",
                )
        category_value: str = Category(cat) if cat in Category._value2member_map_ else cat
        return CodeSpec(code, category_value, sev, retryable, hint, description)

    # -- lookup ---------------------------------------------------------------------------

    def get(self, code: str) -> CodeSpec | None:
        return self._codes.get(code)

    def __getitem__(self, code: str) -> CodeSpec:
        spec = self._codes.get(code)
        if spec is None:
            raise UnknownCodeError(
                f"unknown error code {code!r}; known codes are listed by `faultlens codes`, "
                "or register it with faultlens.catalog.register",
                key=code,
            )
        return spec

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __iter__(self) -> Iterator[CodeSpec]:
        return iter(list(self._codes.values()))

    def __len__(self) -> int:
        return len(self._codes)

    def source_of(self, code: str) -> str | None:
        return self._sources.get(code)

    def resolve(self, code: str) -> tuple[CodeSpec, bool]:
        """The spec for ``code``; an unknown code gets system/medium and one warning."""
        spec = self._codes.get(code)
        if spec is not None:
            return spec, True
        if code not in self._warned:
            self._warned.add(code)
            _log.warning(
                "faultlens: error code %r is not in any catalog; recording it as "
                "category=system severity=medium. Register it with faultlens.catalog.register.",
                code,
            )
        return CodeSpec(code, Category.SYSTEM, Severity.MEDIUM, False, "", ""), False

    def match(self, exc: BaseException) -> str:
        """The code for an exception: user predicates, then user type rules by MRO, then the
        built-in rules by MRO, then SYS_UNKNOWN_ERROR."""
        for predicate, code in self._predicates:
            try:
                if predicate(exc):
                    return code
            except Exception:
                _log.debug("faultlens: classification predicate %r raised", predicate)
        mro = type(exc).__mro__
        if self._type_rules:
            for klass in mro:
                hit = self._type_rules.get(klass)
                if hit is not None:
                    return hit
        for klass in mro:  # built-in and library rules: the most specific class wins
            hit = self._builtin_rules.get(klass) or library_code(klass, exc)
            if hit is not None:
                return hit
        return UNKNOWN_CODE

    def reset(self) -> None:
        """Back to the built-in codes and rules only (for tests)."""
        with self._lock:
            self._codes.clear()
            self._sources.clear()
            self._categories = {c.value for c in Category}
            self._type_rules.clear()
            self._predicates.clear()
            self._warned.clear()
            self._install_builtins()


catalog = Catalog()
"""The process-wide default catalog that ``classify()`` and ``FaultError`` use."""
