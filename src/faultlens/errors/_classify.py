"""classify(): exception -> ErrorInfo, the single decision every signal is built from."""

from __future__ import annotations

from ._catalog import UNKNOWN_CODE, Catalog, catalog
from ._fault import FaultError
from ._fingerprint import FINGERPRINT_VERSION, fingerprint
from ._safe import qualified_name, safe_str
from ._types import CodeSpec, ErrorInfo

__all__ = ["classify", "code_for", "error_type"]

_MAX_GROUP_LEAVES = 64


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    stack: list[BaseException] = [group]
    seen: set[int] = set()
    while stack and len(out) < _MAX_GROUP_LEAVES:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            out.append(exc)
    return out


def code_for(exc: BaseException, cat: Catalog | None = None) -> str:
    """The code an exception classifies to (FaultError's own code first)."""
    cat = cat or catalog
    if isinstance(exc, FaultError):
        return exc.code  # type: ignore[return-value]
    code = cat.match(exc)
    if code == UNKNOWN_CODE and isinstance(exc, BaseExceptionGroup):
        # A group classifies as its most severe member: "3 timeouts and a permission error"
        # should page like the permission error, not hide as an unknown error.
        best: CodeSpec | None = None
        for leaf in _leaves(exc):
            spec, _ = cat.resolve(code_for(leaf, cat))
            if best is None or spec.severity.rank < best.severity.rank:
                best = spec
        if best is not None:
            return best.code
    return code


def error_type(exc: BaseException) -> str:
    """The span's ``error.type``: the code for a FaultError, else the qualified class name."""
    if isinstance(exc, FaultError):
        return exc.code  # type: ignore[return-value]
    return qualified_name(type(exc))


def classify(
    exc: BaseException,
    *,
    stage: str | None = None,
    message: str | None = None,
    cat: Catalog | None = None,
) -> ErrorInfo:
    """Classify an exception: code, category, severity, retryable, hint and fingerprint.

    Never raises for any exception object; an exception whose ``str()`` fails is classified
    from its type alone.
    """
    cat = cat or catalog
    code = code_for(exc, cat)
    spec, known = cat.resolve(code)
    hint = spec.hint
    if isinstance(exc, FaultError):
        hint = exc.hint if exc._hint is not None else hint
        if stage is None:
            stage = exc.stage
    if message is None:
        message = safe_str(exc)
    return ErrorInfo(
        code=spec.code,
        category=spec.category,
        severity=spec.severity,
        retryable=spec.retryable,
        hint=hint,
        fingerprint=fingerprint(exc, message),
        fingerprint_version=FINGERPRINT_VERSION,
        exception_type=qualified_name(type(exc)),
        message=message,
        stage=stage,
        known_code=known,
    )
