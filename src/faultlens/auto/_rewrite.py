"""Instrumenting functions before decorators capture them: a module's code rewritten at import.

Wrapping a module's attributes after its body ran is too late for the applications people
write: ``@app.get``, ``@app.route``, ``@click.command``, a URLconf, a task queue or any
registry took the function while the body was running, and keeps calling the original. So
the import hook compiles the target module's source itself, with one change: every ``def``
and ``async def`` (methods, and the decorated functions of an app factory) gets
``@__faultlens_instrument__`` as its **innermost** decorator, and every ``class`` gets
``@__faultlens_class__`` as its innermost class decorator. Every outer decorator (framework,
``functools.wraps``, ``staticmethod``, ``classmethod``, ``abstractmethod``) then receives the
instrumented function, as if the user had written ``@faultlens.instrument`` right above the
``def``. This is Logfire's ``install_auto_tracing`` mechanism; the alternatives do not work
here: a module dict intercepting assignments sees the result of the decorators, not their
argument, and ``sys.setprofile``/``sys.monitoring`` cost every call of every function in the
process (and PEP 669 needs 3.12).

What stays exactly as it was:

- Tracebacks, ``inspect.getsource`` and ``co_firstlineno``: the code is compiled from the
  original source file with its path as filename, and the inserted decorators carry the
  ``def``/``class`` line, so no line moves (the first decorator still opens the function).
- Signatures, names, ``__wrapped__``, annotations and ``__globals__``: the wrapper is
  capture's wrapt ``FunctionWrapper``, transparent to ``inspect.signature``,
  ``typing.get_type_hints``, ``functools.wraps`` and attribute writes (``click`` stores its
  params on the function, FastAPI reads the signature, Flask and Celery the name).
- Pickling by reference: the module attribute is whatever the outermost decorator returned,
  as without faultlens; capture's wrapper pickles as its qualified name when it is that
  attribute, a ``functools.wraps`` wrapper pickles as the function did.
- ``super()`` without arguments: the decorator is applied in the class body, so the
  function keeps its ``__class__`` cell, which the class fills in when it is created.
- The user's ``__pycache__``: the rewritten code is never cached as the module's bytecode.
  It is cached next to it under its own optimisation tag
  (``mod.cpython-311.opt-faultlens<rules hash>o0.pyc``, the hash of faultlens's version and
  the rewrite's rules), a name the import system never loads, with the
  source's mtime and size to invalidate it like a ``.pyc``; ``PYTHONDONTWRITEBYTECODE`` is
  honoured and a read-only tree only costs the re-parse.

Inside a web request that a framework integration handles (``faultlens.integrations``),
the wrappers step aside: what escapes the view is the integration's to judge once the
response is known (a 5xx or an unhandled bug is recorded once on the server span with its
route and status; ``HTTPException(404)``, ``Http404``, ``abort(403)`` are answers, counted,
not failures). An instrumented call's printed traceback starts at the user's frame: the
wrappers' own frames are taken off its head.

What is not instrumented (as with attribute wrapping): lambdas (expressions, nothing
registers them by name), dunder methods (``__eq__``, ``__iter__``, ``__exit__`` raise as
part of their protocol), properties (a getter's ``AttributeError`` is how ``hasattr`` and
``__getattr__`` fall-backs work), ``typing.overload`` stubs, functions already decorated
with ``faultlens.instrument`` (their own options win), a decorator's ``functools.wraps``
plumbing, Celery tasks (``@app.task``, ``@shared_task``:
the Celery integration judges them), pydantic/marshmallow validators (raising is their
protocol), methods of exception classes (they
run while an error is being built: undone by the class decorator once the class exists), and
every module that opts out with ``__faultlens_auto__ = False``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import marshal
import os
import struct
import sys
import types
from typing import Any

from .._version import __version__
from ..capture import FunctionWrapper, instrument_proxy, internal_error
from ..integrations import ACTIVE_REQUEST as _request

__all__ = [
    "CLASS_DECORATOR",
    "DECORATOR",
    "AutoWrapper",
    "cache_path",
    "instrument_class",
    "instrument_def",
    "rewrite_tree",
    "rewritten_code",
]

DECORATOR = "__faultlens_instrument__"
CLASS_DECORATOR = "__faultlens_class__"

# Bump when the rewrite's output changes other than by _KEEP (the cache tag hashes that, the
# faultlens version and the interpreter's -O level): cached code of an older rewrite is
# then never read.
_FORMAT = 3
_HEADER = struct.Struct("<4s4sqq")  # magic, our tag, source mtime_ns, source size
_TAG = b"FLRW"

# Decorators (by their last name) whose function must stay as it is.
_KEEP = frozenset(
    {
        "overload",
        "property",
        "cached_property",
        "abstractproperty",
        "setter",
        "getter",
        "deleter",
        "instrument",  # faultlens.instrument with the user's own options
        # A decorator's own wrapper (``@functools.wraps(func) def inner``): it only passes
        # the call on to ``func``, which is instrumented where it is defined.
        "wraps",
        # Celery tasks: what escapes the task function is Celery's to judge (``Retry``,
        # ``Ignore``, ``Reject`` and a task's ``throws`` are no failures) and the Celery
        # integration records real failures once, on the task's span, from Celery's
        # signals. The functions a task calls are instrumented.
        "task",
        "shared_task",
        # Validators raise ValueError/AssertionError as their protocol: the library turns it
        # into its own validation error, which the caller sees (and records, if it fails).
        "validator",
        "field_validator",
        "model_validator",
        "root_validator",
        "validates",
        "validates_schema",
        # Compilers of Python functions (numba, torch.jit) need the function itself.
        "jit",
        "njit",
        "vectorize",
        "guvectorize",
        "cfunc",
        "stencil",
        "script",
    }
)


class AutoWrapper(FunctionWrapper):
    """The wrapper the rewrite puts on a function: capture's ``FunctionWrapper`` (same
    pickling, binding and transparency), told apart so exception classes and ``uninstall``
    can find what the rewrite did."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__wrapped__":
            # ``functools.update_wrapper(inner, func)`` on an instrumented ``inner``: wrapt
            # would make the proxy wrap ``func`` instead, and calls would skip ``inner``.
            # Without faultlens the attribute lands on ``inner``: so it does here.
            setattr(object.__getattribute__(self, "__wrapped__"), name, value)
            return
        super().__setattr__(name, value)


# --------------------------------------------------------------------------------------
# The rewrite


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def _marker(name: str, at: ast.AST) -> ast.Name:
    node = ast.Name(id=name, ctx=ast.Load())
    # The def's own line: co_firstlineno (the first decorator's line) never moves.
    return ast.copy_location(node, at)


def _rewrite_body(stmts: list[ast.stmt], in_function: bool = False) -> int:
    """Insert the decorators into the definitions among ``stmts`` and the statements nested
    in them; returns how many functions got one. Only statement lists are walked: a ``def``
    or a ``class`` is a statement and can only sit in one (a third of the cost of visiting
    every node of the tree).

    A function nested in a function is instrumented only when it is decorated (routes of
    an app factory, a registry's callbacks): a plain helper closure may be called in a tight
    loop, and its errors escape through the function that calls it, which records them.
    """
    count = 0
    for node in stmts:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += _rewrite_body(node.body, True)  # nested functions and classes
            if _is_dunder(node.name) or (in_function and not node.decorator_list):
                continue
            if any(_decorator_name(d) in _KEEP for d in node.decorator_list):
                continue
            node.decorator_list.append(_marker(DECORATOR, node))
            count += 1
        elif isinstance(node, ast.ClassDef):
            count += _rewrite_body(node.body)  # its methods, wherever the class is defined
            node.decorator_list.append(_marker(CLASS_DECORATOR, node))
        else:
            # if/for/while/with/try bodies (``if TYPE_CHECKING``, ``try: import``), match cases
            for field in ("body", "orelse", "finalbody"):
                sub = getattr(node, field, None)
                if sub:
                    count += _rewrite_body(sub, in_function)
            for handler in getattr(node, "handlers", ()):
                count += _rewrite_body(handler.body, in_function)
            for case in getattr(node, "cases", ()):
                count += _rewrite_body(case.body, in_function)
    return count


def _opted_out(tree: ast.Module) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__faultlens_auto__" for t in stmt.targets
        ):
            return isinstance(stmt.value, ast.Constant) and stmt.value.value is False
    return False


def _import_markers(tree: ast.Module) -> None:
    """``from faultlens.auto._rewrite import instrument_def as __faultlens_instrument__, ...``
    after the docstring and the ``__future__`` imports: the code needs nothing put in its
    namespace beforehand, so it runs the same through ``exec_module`` and through
    ``get_code`` (``python -m pkg`` runs a module's code in a fresh ``__main__``)."""
    at = 0
    body = tree.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        at = 1
    while at < len(body):
        stmt = body[at]
        if not (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            break
        at += 1
    node = ast.ImportFrom(
        module=__name__,
        names=[
            ast.alias(name="instrument_def", asname=DECORATOR),
            ast.alias(name="instrument_class", asname=CLASS_DECORATOR),
        ],
        level=0,
    )
    line = body[at].lineno if at < len(body) else 1
    node.lineno, node.col_offset, node.end_lineno, node.end_col_offset = line, 0, line, 0
    for alias in node.names:
        alias.lineno, alias.col_offset, alias.end_lineno, alias.end_col_offset = line, 0, line, 0
    body.insert(at, node)


def rewrite_tree(tree: ast.Module) -> int:
    """Insert the innermost decorators into ``tree`` in place (and the import of what they
    name); returns how many functions will be instrumented (0 for a module that opts out or
    defines none, which is then left unchanged)."""
    if _opted_out(tree):
        return 0
    count = _rewrite_body(tree.body)
    if count:
        _import_markers(tree)
    return count


# --------------------------------------------------------------------------------------
# Code for a module: parse, rewrite, compile, cached next to the source


@functools.cache
def _cache_tag() -> str:
    rules = f"{__version__}/{_FORMAT}/{','.join(sorted(_KEEP))}"
    digest = hashlib.sha1(rules.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"faultlens{digest}o{sys.flags.optimize}"


def cache_path(source_path: str) -> str | None:
    """Where the rewritten code of ``source_path`` is cached (None: nowhere)."""
    try:
        return importlib.util.cache_from_source(source_path, optimization=_cache_tag())
    except Exception:
        return None  # no cache_tag (sys.implementation.cache_tag is None), odd paths


def _read_cache(path: str, mtime_ns: int, size: int) -> types.CodeType | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, tag, cached_mtime, cached_size = _HEADER.unpack_from(data)
    if (magic, tag, cached_mtime, cached_size) != (
        importlib.util.MAGIC_NUMBER,
        _TAG,
        mtime_ns,
        size,
    ):
        return None
    try:
        code = marshal.loads(data[_HEADER.size :])
    except Exception:
        return None
    return code if isinstance(code, types.CodeType) else None


def _write_cache(path: str, code: types.CodeType, mtime_ns: int, size: int) -> None:
    if sys.dont_write_bytecode:
        return
    data = _HEADER.pack(importlib.util.MAGIC_NUMBER, _TAG, mtime_ns, size) + marshal.dumps(code)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # readers see the old file or the whole new one
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # a read-only tree: no cache, the next start parses again


def rewritten_code(loader: Any, fullname: str) -> types.CodeType | None:
    """The module's code with the decorators inserted, or None when the module cannot be
    rewritten (not plain source on disk, unparsable, opted out): it is then loaded as usual
    and instrumented after its body ran. A syntax error is left for the real loader to
    report exactly as without faultlens."""
    if not isinstance(loader, importlib.machinery.SourceFileLoader):
        return None
    try:
        path = loader.get_filename(fullname)
        if not isinstance(path, str) or not path.endswith(".py"):
            return None
        st = os.stat(path)
        mtime_ns, size = st.st_mtime_ns, st.st_size
        cached_at = cache_path(path)
        if cached_at is not None:
            code = _read_cache(cached_at, mtime_ns, size)
            if code is not None:
                return code
        source = loader.get_data(path)
        try:
            tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError):
            return None
        if not rewrite_tree(tree):
            return None
        code = compile(tree, path, "exec", dont_inherit=True)
        if cached_at is not None:
            _write_cache(cached_at, code, mtime_ns, size)
        return code
    except Exception as exc:
        internal_error(f"rewriting {fullname}", exc)
        return None


# --------------------------------------------------------------------------------------
# What the inserted decorators do at run time


def _deferring(inner: Any) -> Any:
    """The rewrite's wrapper function: ``inner`` (capture's errors-mode wrapper) unless the
    call runs inside a web request a framework integration handles. There the integration
    decides, when the response is known, whether what escaped the view is a failure (a
    5xx, an unhandled bug) or the framework's way to answer (``HTTPException(404)``,
    ``Http404``, ``abort(403)``), and records a failure once, on the request's server span
    with its route and status: a function wrapper recording it first, on a span of its
    own, would take that decision away. The check is one context-variable read."""
    get = _request.get
    own = {inner.__code__} if isinstance(inner, types.FunctionType) else set()

    def auto(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            if get() is None:
                return inner(wrapped, instance, args, kwargs)
            return wrapped(*args, **kwargs)
        except BaseException as exc:
            _drop_own_frames(exc, own)
            raise  # a bare raise keeps the traceback as set: nothing of faultlens in it

    own.add(auto.__code__)
    return auto


def _drop_own_frames(exc: BaseException, own: set[types.CodeType]) -> None:
    """The traceback of an exception leaving an instrumented call, without the wrappers'
    frames at its head: what the user sees printed (uncaught, ``logging.exception``, a
    framework's error log) is their own frames, as without faultlens. The recorded stack
    was taken already (capture filters its own frames there too). Never raises."""
    try:
        tb = exc.__traceback__
        start = tb
        while tb is not None and tb.tb_frame.f_code in own:
            tb = tb.tb_next
        if tb is not start and tb is not None:
            exc.__traceback__ = tb
    except Exception:
        pass


# Wrapper functions per code object of a nested function: a closure defined in a hot path
# is instrumented every time its ``def`` runs, and only the first time pays for classifying
# it. The code object is kept alive by the function that contains it anyway.
_by_code: dict[int, tuple[types.CodeType, Any, Any]] = {}
_FunctionType = types.FunctionType


def instrument_def(func: Any) -> Any:
    """``@__faultlens_instrument__``: the function, instrumented in errors mode. Never
    raises; anything but a plain function (or a module that opted out) passes unchanged."""
    try:
        if type(func) is not _FunctionType:
            return func
        if func.__globals__.get("__faultlens_auto__") is False:
            return func
        code = func.__code__
        known = _by_code.get(id(code))
        if known is not None and known[0] is code:
            return AutoWrapper(func, known[1], known[2])
        made = instrument_proxy(func)
        if not isinstance(made, FunctionWrapper):
            return func  # instrument() could not (already counted and logged)
        wrapper, rebuild = _deferring(made._self_wrapper), made._self_rebuild
        if "<locals>" in func.__qualname__:
            _by_code[id(code)] = (code, wrapper, rebuild)
        return AutoWrapper(func, wrapper, rebuild)
    except Exception as exc:
        internal_error("auto-instrumenting a function", exc)
        return func


def _unwrapped(value: Any) -> Any | None:
    """``value`` without the rewrite's wrapper, or None when it has none."""
    if isinstance(value, AutoWrapper):
        return value.__wrapped__
    if isinstance(value, (staticmethod, classmethod)) and isinstance(value.__func__, AutoWrapper):
        return type(value)(value.__func__.__wrapped__)
    return None


def instrument_class(cls: Any) -> Any:
    """``@__faultlens_class__``: undoes the instrumentation of an exception class's methods
    (they run while an error is being built). Returns the class itself."""
    try:
        if isinstance(cls, type) and issubclass(cls, BaseException):
            for name, value in list(vars(cls).items()):
                bare = _unwrapped(value)
                if bare is not None:
                    setattr(cls, name, bare)
    except Exception as exc:
        internal_error("auto-instrumenting a class", exc)
    return cls
