"""FaultError: the exception users raise when they already know the code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._catalog import catalog
from ._types import CodeSpec, Severity

__all__ = ["FaultError"]


def _rebuild(
    cls: type[FaultError],
    code: str,
    message: str,
    details: dict[str, Any],
    stage: str | None,
    hint: str | None,
) -> FaultError:
    obj = cls.__new__(cls)
    FaultError.__init__(obj, code, message, details=details, stage=stage, hint=hint)
    return obj


class FaultError(Exception):
    """An exception with a stable code; category, severity, retryable and hint come from
    the catalog so that one definition serves every place that raises the code.

    Two ways to raise it::

        class WorkspaceNotFound(FaultError):
            code = "WORKSPACE_NOT_FOUND"

        raise WorkspaceNotFound("no workspace at /data/x", details={"path": p}, stage="load")
        raise FaultError("MISSING_FILE", "result.json is missing", stage="validate")
    """

    code: ClassVar[str | None] = None  # type: ignore[misc]

    def __init__(
        self,
        *args: Any,
        details: Mapping[str, Any] | None = None,
        stage: str | None = None,
        cause: BaseException | None = None,
        hint: str | None = None,
    ) -> None:
        class_code = type(self).code
        code: str | None
        message: str | None
        if class_code is not None and len(args) <= 1:
            code = class_code
            message = args[0] if args else None
        elif len(args) == 2:
            code, message = args
        elif len(args) == 1:
            code, message = args[0], None
        else:
            raise TypeError(
                f"{type(self).__name__}() takes (message) when the class declares `code`, "
                "or (code, message) otherwise"
            )
        if not isinstance(code, str) or not code:
            raise TypeError(
                f"{type(self).__name__}: the error code must be a non-empty string, got {code!r}"
            )
        if message is None:
            spec = catalog.get(code)
            message = spec.description if spec and spec.description else code
        self.code = code  # type: ignore[misc]
        self.message = str(message)
        self.details: dict[str, Any] = dict(details) if details else {}
        self.stage = stage
        self._hint = hint
        if cause is not None:
            self.__cause__ = cause
        super().__init__(self.message)

    @property
    def cause(self) -> BaseException | None:
        return self.__cause__

    @property
    def spec(self) -> CodeSpec:
        return catalog.resolve(self.code)[0]  # type: ignore[arg-type]

    @property
    def category(self) -> str:
        return self.spec.category

    @property
    def severity(self) -> Severity:
        return self.spec.severity

    @property
    def retryable(self) -> bool:
        return self.spec.retryable

    @property
    def hint(self) -> str:
        return self._hint if self._hint is not None else self.spec.hint

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def __reduce__(self) -> Any:
        # Pickle by fields: the default Exception pickling replays self.args, which would
        # lose details/stage and break subclasses whose code lives on the class.
        return (
            _rebuild,
            (type(self), self.code, self.message, self.details, self.stage, self._hint),
            {k: v for k, v in self.__dict__.items() if k not in _FIELDS},
        )


_FIELDS = frozenset({"code", "message", "details", "stage", "_hint"})
