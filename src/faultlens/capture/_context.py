"""Error context carried by contextvars: the stage and user keys in force where code runs.

contextvars follow threads started with a copied context, asyncio tasks and generators the
way users expect, so a scope pushed around a block tags every error recorded inside it,
including in tasks it spawns.

Scopes form a chain (each knows its parent). A ``capture()`` block's scope also knows which
``capture`` object entered it, so that leaving finds *this context's* entry of that object:
one ``capture`` instance shared by threads or tasks, or entered recursively, never pops
another entry's scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

__all__ = ["Scope", "current_scope", "enter_owned", "find_owned", "leave_owned", "pop", "push"]


class Scope:
    """An immutable (stage, context) pair; nested scopes merge, the inner one winning."""

    __slots__ = (
        "context",
        "own_context",
        "own_stage",
        "owner",
        "parent",
        "stage",
        "start",
        "token",
    )

    def __init__(
        self,
        stage: str | None,
        context: Mapping[str, Any],
        parent: Scope | None = None,
        own_stage: str | None = None,
        own_context: Mapping[str, Any] | None = None,
    ) -> None:
        self.stage = stage
        self.context = context
        self.parent = parent
        self.own_stage = own_stage
        self.own_context = own_context
        self.owner: object = None
        self.start = 0
        self.token: Token[Scope] | None = None

    def child(self, stage: str | None, context: Mapping[str, Any]) -> Scope:
        if context:
            merged = dict(self.context)
            merged.update(context)
            ctx: Mapping[str, Any] = MappingProxyType(merged)
        else:
            ctx = self.context
        return Scope(stage if stage is not None else self.stage, ctx, self, stage, context)


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


def enter_owned(owner: object, stage: str | None, context: Mapping[str, Any], start: int) -> None:
    """Push a scope that ``owner`` (a capture object) entered at ``start`` (ns)."""
    scope = _scope.get().child(stage, context)
    scope.owner = owner
    scope.start = start
    scope.token = _scope.set(scope)


def find_owned(owner: object) -> Scope | None:
    """This context's innermost scope entered by ``owner``, if any."""
    node: Scope | None = _scope.get()
    while node is not None:
        if node.owner is owner:
            return node
        node = node.parent
    return None


def leave_owned(entry: Scope) -> None:
    """Remove ``entry`` from this context's chain: an exact reset when it is the current
    scope (the usual, properly nested case), else the scopes entered after it are rebuilt
    on top of its parent, so they keep their own stage and keys and nothing of it."""
    current = _scope.get()
    if current is entry:
        token = entry.token
        if token is not None:
            try:
                _scope.reset(token)
                return
            except ValueError:  # the token belongs to another context
                pass
        _scope.set(entry.parent or _EMPTY)
        return
    above: list[Scope] = []
    node: Scope | None = current
    while node is not None and node is not entry:
        above.append(node)
        node = node.parent
    if node is None:
        return  # not in this context's chain: nothing of it to remove here
    base = entry.parent or _EMPTY
    for old in reversed(above):
        new = base.child(old.own_stage, old.own_context or {})
        new.owner, new.start = old.owner, old.start
        base = new
    _scope.set(base)
