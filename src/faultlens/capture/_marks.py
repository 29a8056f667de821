"""The "recorded once" marks, kept outside the exceptions they are about.

An exception is recorded on the innermost instrumented span it escapes from; every span it
escapes through afterwards only gets status ERROR. That needs a mark per exception, and the
mark must be invisible: nothing may be written into the exception (``vars(exc)``, ``repr``,
pickling and equality stay exactly as the application made them), and a mark must not travel
with a pickled exception to another process, where it was never recorded.

So marks live here, keyed by ``id(exc)`` and checked by identity (never by ``==`` or
``hash``: both are user code, and an exception class may define them, or not be hashable).
Two stores, because only some exceptions can be weakly referenced:

- **Weak store.** Instances of exception classes defined in Python (almost every
  application exception, and exception groups) accept weak references. The mark lives
  exactly as long as the exception: a weakref callback removes it when the exception is
  collected, so an ``id`` reused by a later object never inherits it. Bounded anyway (an
  application that keeps a million failed exceptions alive would otherwise keep a million
  marks): past ``MAX_WEAK`` the oldest marks are forgotten.
- **Strong store.** Instances of the builtin classes (``ValueError()``, ``KeyError()``,
  ``OSError()`` ...) cannot be weakly referenced. The store holds them strongly, so the
  identity check stays sound (an object kept alive cannot have its ``id`` reused), at a
  cost: holding an exception keeps its traceback, frames and their locals alive. The cost is
  bounded twice. Every ``SWEEP_EVERY`` insertions, marks of exceptions nobody else
  references any more (the reference count says only this store holds them) are dropped, so
  a handled error's frames are released almost as soon as the application lets go of them;
  and at most ``MAX_STRONG`` are held, the oldest forgotten first.

The trade-off of both bounds: a mark forgotten while its exception is still alive and later
re-raised through another instrumented function gets that exception recorded (and counted)
a second time. The bounds are far above the number of exceptions in flight at once, which is
what marks are for, and cover the members of an ``asyncio.TaskGroup`` of a thousand failed
tasks. What the strong store can pin beyond the application's own references: the few
exceptions dropped since the last sweep, and exceptions only kept alive by a reference
cycle (a frame that stored its own exception in a local), which the sweep cannot tell from
live ones; those wait for ``MAX_STRONG`` newer marks.

A mark has two steps, each claimed by one recorder at a time (threads may re-raise the same
exception object, e.g. a shared future's): the *count* in ``faultlens.errors`` and the
*event* (emitted, rate-limited or filtered: decided). A step that fails part-way is released,
so that the next span the exception escapes through completes it: the error is counted once,
and its event is never lost to a failure that left the exception looking recorded.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

from ._fork import ensure_fork_hook, on_fork_child

if TYPE_CHECKING:
    from ..errors import ErrorInfo

__all__ = ["DONE", "MARKS", "Mark", "MarkStore"]

MAX_WEAK = 16_384
MAX_STRONG = 1024
SWEEP_EVERY = 32

_PENDING, _BUSY, _DONE = 0, 1, 2
# A step's final state. The recorder holding a step (claimed) may set it directly, as
# :meth:`MarkStore.finish` does: the recording hot path saves the call.
DONE = _DONE


class Mark:
    """What faultlens knows of one exception it has seen. ``info`` is None for an
    exception covered by another record (a member of a recorded exception group)."""

    __slots__ = ("admission", "count", "event", "info")

    def __init__(
        self, info: ErrorInfo | None, covered: bool = False, claimed: bool = False
    ) -> None:
        # ``claimed``: both steps taken by the recorder that makes the mark, before anyone
        # else can see it (saves two claims; it must finish or release both). Positional
        # or keyword: the recording hot path passes them positionally (a keyword-only call
        # costs twice as much).
        self.info = info
        self.count = self.event = _DONE if covered else _BUSY if claimed else _PENDING
        self.admission: tuple[bool, int] | None = None  # the rate limiter's answer, kept

    @property
    def counted(self) -> bool:
        return self.count != _PENDING

    @property
    def done(self) -> bool:
        """The event is decided (emitted, rate-limited, filtered, or covered)."""
        return self.event != _PENDING


class _Ref(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ("key",)
    key: int


class MarkStore:
    def __init__(self, max_weak: int = MAX_WEAK, max_strong: int = MAX_STRONG) -> None:
        self.max_weak = max_weak
        self.max_strong = max_strong
        self._lock = threading.RLock()  # re-entrant: a weakref callback may run under it
        self._weak: dict[int, tuple[_Ref, Mark]] = {}
        self._strong: OrderedDict[int, tuple[BaseException, Mark]] = OrderedDict()
        self._inserts = 0
        self._baseline: int | None = None

    def get(self, exc: BaseException) -> Mark | None:
        key = id(exc)
        weak = self._weak.get(key)
        if weak is not None and weak[0]() is exc:
            return weak[1]
        strong = self._strong.get(key)
        if strong is not None and strong[0] is exc:
            return strong[1]
        return None

    def add(self, exc: BaseException, mark: Mark) -> Mark:
        """Store ``mark`` for ``exc``, unless another thread did first (then return that).

        On every recorded error's path: the lock is taken by explicit calls (half the cost
        of a ``with`` block) and the store's lookup is inlined."""
        if not _hooked:
            _hook()
        key = id(exc)
        lock = self._lock
        lock.acquire()
        try:
            weak = self._weak.get(key)
            if weak is not None and weak[0]() is exc:
                return weak[1]
            strong = self._strong.get(key)
            if strong is not None and strong[0] is exc:
                return strong[1]
            if not type(exc).__weakrefoffset__:  # a builtin class: no weak references
                self._add_strong(key, exc, mark)
                return mark
            try:
                ref = _Ref(exc, self._forget)
            except TypeError:
                self._add_strong(key, exc, mark)
                return mark
            ref.key = key
            self._weak[key] = (ref, mark)
            if len(self._weak) > self.max_weak:
                del self._weak[next(iter(self._weak))]
            return mark
        finally:
            lock.release()

    def _forget(self, ref: _Ref) -> None:
        # Called by the garbage collector, on any thread: drop the mark of a dead exception
        # unless the id was already reused by a newer mark.
        with self._lock:
            hit = self._weak.get(ref.key)
            if hit is not None and hit[0] is ref:
                del self._weak[ref.key]

    def _add_strong(self, key: int, exc: BaseException, mark: Mark) -> None:
        # ``key`` is new to the store (no move to the end needed): an entry holds its
        # exception alive, so no other exception can have the same id while it is there.
        strong = self._strong
        strong[key] = (exc, mark)
        self._inserts += 1
        if self._inserts % SWEEP_EVERY == 0:
            self._sweep()
        if len(strong) > self.max_strong:
            evicted = []
            while len(strong) > self.max_strong:
                evicted.append(strong.popitem(last=False))
            del evicted  # released here, after the store is consistent again

    def _sweep(self) -> None:
        """Drop the marks of exceptions only this store still references."""
        if not hasattr(sys, "getrefcount"):
            return
        baseline = self._baseline
        if baseline is None:
            baseline = self._baseline = _measure_baseline()
        dead = [key for key, entry in self._strong.items() if sys.getrefcount(entry[0]) <= baseline]
        for key in dead:
            del self._strong[key]

    def claim(self, mark: Mark, step: str) -> bool:
        """Take ``step`` ("count" or "event") of ``mark`` if nobody has: True once."""
        with self._lock:
            if getattr(mark, step) != _PENDING:
                return False
            setattr(mark, step, _BUSY)
            return True

    def finish(self, mark: Mark, step: str) -> None:
        setattr(mark, step, _DONE)

    def release(self, mark: Mark, step: str) -> None:
        """``step`` failed part-way: let the next span the exception escapes through do it."""
        with self._lock:
            if getattr(mark, step) == _BUSY:
                setattr(mark, step, _PENDING)

    def clear(self) -> None:
        with self._lock:
            self._weak.clear()
            self._strong.clear()

    def __len__(self) -> int:
        return len(self._weak) + len(self._strong)

    def after_fork(self) -> None:
        # A mark must not cross a process boundary: a forked child starts with none (and a
        # lock another thread may have held at fork time is replaced).
        self._lock = threading.RLock()
        self._weak = {}
        self._strong = OrderedDict()


def _measure_baseline() -> int:
    """The reference count :meth:`MarkStore._sweep` sees for an exception only the store
    holds, measured the same way (robust to interpreter differences)."""
    probe: OrderedDict[int, tuple[BaseException, Mark]] = OrderedDict()
    probe[0] = (ValueError(), Mark(None))
    counts = [sys.getrefcount(entry[0]) for key, entry in probe.items()]
    return counts[0]


_hooked = False


def _hook() -> None:
    global _hooked
    ensure_fork_hook()
    _hooked = True


MARKS = MarkStore()
on_fork_child(MARKS.after_fork)
