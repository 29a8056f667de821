"""Error context carried by contextvars: the stage and user keys in force where code runs.

contextvars follow threads started with a copied context, asyncio tasks and generators the
way users expect, so a scope pushed around a block tags every error recorded inside it,
including in tasks it spawns.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

__all__ = ["Scope", "current_scope", "pop", "push"]


class Scope:
    """An immutable (stage, context) pair; nested scopes merge, the inner one winning."""

    __slots__ = ("context", "stage")

    def __init__(self, stage: str | None, context: Mapping[str, Any]) -> None:
        self.stage = stage
        self.context = context

    def child(self, stage: str | None, context: Mapping[str, Any]) -> Scope:
        merged = dict(self.context)
        merged.update(context)
        return Scope(stage if stage is not None else self.stage, MappingProxyType(merged))


_EMPTY = Scope(None, MappingProxyType({}))
_scope: ContextVar[Scope] = ContextVar("faultlens_scope", default=_EMPTY)


def current_scope() -> Scope:
    return _scope.get()


def push(stage: str | None, context: Mapping[str, Any]) -> Token[Scope]:
    return _scope.set(_scope.get().child(stage, context))


def pop(token: Token[Scope]) -> None:
    try:
        _scope.reset(token)
    except ValueError:
        # Reset from another context (a generator resumed elsewhere): fall back to the parent.
        pass
