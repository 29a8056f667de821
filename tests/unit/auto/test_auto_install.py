"""faultlens.auto.install: whole modules instrumented in errors mode, with what must stay
untouched left untouched."""

from __future__ import annotations

import asyncio
import importlib
import sys

import pytest

import faultlens
import faultlens.auto
from faultlens.auto import is_faultlens_wrapper
from faultlens.capture import dropped_counts

APP = """
    import contextlib
    import functools
    from os.path import join            # a re-export: not ours to wrap
    from typing import overload

    def inner(n):
        raise ValueError(f"bad value {n}")

    def middle(n):
        return inner(n)

    def outer(n):
        return middle(n)

    async def fetch():
        raise TimeoutError("upstream took too long")

    def rows():
        yield 1
        raise FileNotFoundError("rows.csv")

    async def arows():
        yield 1
        raise ConnectionError("stream dropped")

    @contextlib.contextmanager
    def session():
        yield "s"

    @overload
    def ident(x: int) -> int: ...
    @overload
    def ident(x: str) -> str: ...
    def ident(x):
        return x

    square = lambda x: x * x

    class Service:
        def run(self):
            raise PermissionError("no access to /srv")

        @classmethod
        def create(cls):
            return cls()

        @staticmethod
        def ping():
            raise ConnectionError("down")

        @property
        def name(self):
            return "svc"

        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

        class Nested:
            def deep(self):
                raise KeyError("k")

    class AppError(Exception):
        def describe(self):
            return "app error"
"""


def test_functions_methods_and_every_callable_shape_record_classified_errors(make_package):
    pkg = make_package(core=APP)
    faultlens.auto.install([f"{pkg}.*"])
    core = importlib.import_module(f"{pkg}.core")
    with faultlens.testing.capture() as cap:
        with pytest.raises(ValueError):
            core.outer(1)
        with pytest.raises(TimeoutError):
            asyncio.run(core.fetch())
        with pytest.raises(FileNotFoundError):
            list(core.rows())

        async def drain():
            return [x async for x in core.arows()]

        with pytest.raises(ConnectionError):
            asyncio.run(drain())
        with pytest.raises(PermissionError):
            core.Service().run()
        with pytest.raises(ConnectionError):
            core.Service.ping()
        with pytest.raises(KeyError):
            core.Service.Nested().deep()
    assert [e.info.code for e in cap.errors] == [
        "VAL_INVALID_VALUE",
        "EXE_TIMEOUT",
        "VAL_FILE_NOT_FOUND",
        "NET_CONNECTION_FAILED",
        "EXE_PERMISSION_DENIED",
        "NET_CONNECTION_FAILED",
        "SYS_UNKNOWN_ERROR",
    ]


def test_one_record_per_error_however_many_wrapped_frames_it_crosses(make_package):
    pkg = make_package(core=APP)
    faultlens.auto.install([f"{pkg}.*"])
    core = importlib.import_module(f"{pkg}.core")
    with faultlens.testing.capture() as cap, pytest.raises(ValueError) as raised:
        core.outer(1)
    assert len(cap.errors) == 1
    assert len(cap.events()) == 1
    # every frame got its span with status ERROR, the event sits on the innermost one
    assert [s.name for s in cap.spans] == ["inner", "middle", "outer"]
    assert cap.events()[0][0].name == "inner"
    assert raised.value.__traceback__ is not None


def test_what_must_not_be_wrapped_is_left_alone(make_package):
    pkg = make_package(core=APP)
    faultlens.auto.install([f"{pkg}.*"])
    core = importlib.import_module(f"{pkg}.core")
    ns = vars(core)
    assert is_faultlens_wrapper(ns["outer"])
    assert is_faultlens_wrapper(vars(core.Service)["create"])
    assert ns["join"] is importlib.import_module("os.path").join  # re-export
    assert not is_faultlens_wrapper(ns["square"])  # lambda
    assert is_faultlens_wrapper(ns["session"])  # @contextmanager: still a context manager
    assert isinstance(vars(core.Service)["name"], property)
    assert not is_faultlens_wrapper(vars(core.Service)["__eq__"])
    assert not is_faultlens_wrapper(vars(core.AppError)["describe"])
    # the wrapped callables still behave exactly as before
    assert core.ident("x") == "x" and core.ident(3) == 3
    with core.session() as s:
        assert s == "s"
    assert isinstance(core.Service.create(), core.Service)
    assert core.Service().name == "svc"


def test_already_imported_modules_are_instrumented_at_install(make_package):
    pkg = make_package(core=APP)
    core = importlib.import_module(f"{pkg}.core")
    assert not is_faultlens_wrapper(vars(core)["outer"])
    faultlens.auto.install([f"{pkg}.*"])
    assert is_faultlens_wrapper(vars(core)["outer"])


def test_already_instrumented_functions_are_not_wrapped_twice(make_package):
    pkg = make_package(
        core="""
        import faultlens

        @faultlens.instrument(stage="load")
        def load():
            raise FileNotFoundError("x")
        """
    )
    faultlens.auto.install([f"{pkg}.*"])
    core = importlib.import_module(f"{pkg}.core")
    with faultlens.testing.capture() as cap, pytest.raises(FileNotFoundError):
        core.load()
    assert [s.name for s in cap.spans] == ["load"]
    assert cap.errors[0].info.stage == "load"


def test_patterns_choose_modules_and_the_package_itself_matches_dot_star(make_package):
    pkg = make_package(__init__="def top():\n    pass\n", a="def f():\n    pass\n")
    other = make_package(b="def g():\n    pass\n")
    faultlens.auto.install([f"{pkg}.*"])
    top = importlib.import_module(pkg)
    a = importlib.import_module(f"{pkg}.a")
    b = importlib.import_module(f"{other}.b")
    assert is_faultlens_wrapper(vars(top)["top"])
    assert is_faultlens_wrapper(vars(a)["f"])
    assert not is_faultlens_wrapper(vars(b)["g"])


def test_roots_instrument_modules_living_under_a_directory(make_package, tmp_path):
    pkg = make_package(a="def f():\n    raise ValueError('x')\n")
    faultlens.auto.install(roots=[str(tmp_path)])
    a = importlib.import_module(f"{pkg}.a")
    assert is_faultlens_wrapper(vars(a)["f"])


def test_faultlens_otel_and_the_stdlib_are_never_instrumented():
    faultlens.auto.install(["json*", "faultlens*", "opentelemetry*", "wrapt*"])
    import json.decoder

    importlib.reload(json.decoder)
    try:
        assert not is_faultlens_wrapper(vars(json.decoder)["py_scanstring"])
        record = sys.modules["faultlens.capture._record"]
        assert not is_faultlens_wrapper(vars(record)["record_error"])
        trace = sys.modules["opentelemetry.trace"]
        assert not is_faultlens_wrapper(vars(trace)["get_current_span"])
    finally:
        faultlens.auto.uninstall()


def test_a_module_can_opt_out(make_package):
    pkg = make_package(sim="__faultlens_auto__ = False\n\ndef f():\n    pass\n")
    faultlens.auto.install([f"{pkg}.*"])
    sim = importlib.import_module(f"{pkg}.sim")
    assert not is_faultlens_wrapper(vars(sim)["f"])


def test_a_class_that_refuses_new_attributes_is_skipped_safely(make_package):
    pkg = make_package(
        core="""
        class Frozen(type):
            def __setattr__(cls, name, value):
                raise TypeError("frozen class")

        class Config(metaclass=Frozen):
            def load(self):
                raise ValueError("bad")

        def free():
            raise ValueError("free")
        """
    )
    # Imported before install(): wrapped after the fact, attribute by attribute (a module
    # imported through the hook is rewritten, and its methods are instrumented in the class
    # body, before the metaclass could refuse anything: see test_auto_decorators.py).
    core = importlib.import_module(f"{pkg}.core")
    before = dropped_counts().get("internal_error", 0)
    faultlens.auto.install([f"{pkg}.*"])
    assert not is_faultlens_wrapper(vars(core.Config)["load"])
    assert is_faultlens_wrapper(vars(core)["free"])  # the rest of the module still done
    assert dropped_counts()["internal_error"] == before + 1


def test_a_module_that_fails_to_import_fails_exactly_as_without_faultlens(make_package):
    pkg = make_package(broken="raise RuntimeError('import-time failure')\n")
    faultlens.auto.install([f"{pkg}.*"])
    with pytest.raises(RuntimeError, match="import-time failure"):
        importlib.import_module(f"{pkg}.broken")


def test_loader_proxy_keeps_resources_and_source_reachable(make_package):
    pkg = make_package(a="def f():\n    return 1\n")
    faultlens.auto.install([f"{pkg}.*"])
    a = importlib.import_module(f"{pkg}.a")
    assert "def f" in a.__loader__.get_source(a.__name__)
    assert a.f() == 1


def test_uninstall_removes_the_hook_and_restores_the_originals(make_package):
    pkg = make_package(core=APP)
    faultlens.auto.install([f"{pkg}.*"])
    core = importlib.import_module(f"{pkg}.core")
    faultlens.auto.uninstall()
    assert not is_faultlens_wrapper(vars(core)["outer"])
    assert not is_faultlens_wrapper(vars(core.Service)["create"])
    assert not any(type(f).__name__ == "_Finder" for f in sys.meta_path)
    assert faultlens.auto.installed() is None


def test_bad_patterns_are_refused_with_the_fix():
    with pytest.raises(faultlens.ConfigError, match="myapp"):
        faultlens.auto.install([""])
