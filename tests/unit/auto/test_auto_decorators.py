"""Functions are instrumented before decorators capture them: the import hook compiles a
target module's source with faultlens's decorator as the innermost decorator of every
``def``, so registries, routes, tasks and commands hold instrumented functions — and
everything Python and frameworks expect of a function (signature, names, ``__wrapped__``,
pickling by reference, tracebacks, ``super()``, descriptors) stays as it was."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import linecache
import os
import pickle
import sys
import traceback
import typing

import pytest

import faultlens
import faultlens.auto
from faultlens.auto import is_faultlens_wrapper
from faultlens.auto._rewrite import cache_path

REGISTRY_APP = '''
    import functools

    HANDLERS = {}

    def register(name):
        def add(func):
            HANDLERS[name] = func          # captured while the module body runs
            return func
        return add

    def logged(func):
        @functools.wraps(func)
        def call(*args, **kwargs):
            return func(*args, **kwargs)
        return call

    @register("load")
    def load(path: str, *, retries: int = 3) -> bytes:
        """Load a file."""
        raise FileNotFoundError(path)

    @register("parse")
    @logged
    def parse(text: str) -> int:
        return int(text)

    TABLE = {"load": load}                 # a dict built from the names, after the defs

    def make_app():                        # an app factory: routes defined in a function
        routes = {}
        def route(f):
            routes[f.__name__] = f
            return f
        @route
        def index():
            raise PermissionError("/admin")
        return routes
'''


def _import(make_package, **modules):
    pkg = make_package(**modules)
    faultlens.auto.install([f"{pkg}.*"])
    return pkg, [importlib.import_module(f"{pkg}.{m}") for m in modules]


def test_callbacks_captured_by_decorators_during_import_record_their_errors(make_package):
    _, (app,) = _import(make_package, app=REGISTRY_APP)
    with faultlens.testing.capture() as cap:
        with pytest.raises(FileNotFoundError):
            app.HANDLERS["load"]("in.csv")
        with pytest.raises(ValueError):
            app.HANDLERS["parse"]("x")
        with pytest.raises(FileNotFoundError):
            app.TABLE["load"]("in.csv")
        with pytest.raises(PermissionError):
            app.make_app()["index"]()
    assert [e.info.code for e in cap.errors] == [
        "VAL_FILE_NOT_FOUND",
        "VAL_INVALID_VALUE",
        "VAL_FILE_NOT_FOUND",
        "EXE_PERMISSION_DENIED",
    ]
    assert [s.name for s in cap.spans][-1] == "index"


def test_an_error_is_recorded_once_through_a_stack_of_instrumented_decorators(make_package):
    _, (app,) = _import(make_package, app=REGISTRY_APP)
    with faultlens.testing.capture() as cap, pytest.raises(ValueError):
        app.HANDLERS["parse"]("x")
    assert len(cap.errors) == 1
    assert len(cap.events()) == 1
    # The functools.wraps wrapper inside `logged` is a decorator's plumbing, not instrumented:
    # the failing function is.
    assert [s.name for s in cap.spans] == ["parse"]


def test_signatures_names_hints_and_wrapped_chain_are_what_they_were(make_package):
    _, (app,) = _import(make_package, app=REGISTRY_APP)
    load = app.HANDLERS["load"]
    assert is_faultlens_wrapper(load)
    assert str(inspect.signature(load)) == "(path: str, *, retries: int = 3) -> bytes"
    assert load.__name__ == "load" and load.__qualname__ == "load"
    assert load.__module__ == app.__name__ and load.__doc__ == "Load a file."
    assert typing.get_type_hints(load) == {"path": str, "retries": int, "return": bytes}
    assert inspect.isfunction(load) and not inspect.iscoroutinefunction(load)
    # functools.wraps over an instrumented function: the chain ends at the user's code
    parse = app.parse
    assert str(inspect.signature(parse)) == "(text: str) -> int"
    assert inspect.unwrap(parse).__code__.co_name == "parse"
    # the code objects and line numbers are the source's: getsource works
    assert inspect.getsource(inspect.unwrap(load)).startswith('@register("load")')
    assert inspect.unwrap(load).__code__.co_filename == app.__file__


DESCRIPTORS = """
    import abc
    import dataclasses
    import functools

    class Base:
        def greet(self):
            return "base"

        def fail(self):
            raise ValueError("base fails")

    class Service(Base):
        def greet(self):
            return "svc+" + super().greet()          # zero-argument super(): __class__ cell

        def fail(self):
            return super().fail()

        @classmethod
        def create(cls):
            return cls()

        @classmethod
        def broken(cls):
            raise ConnectionError(cls.__name__)

        @staticmethod
        def ping(host):
            raise TimeoutError(host)

        @property
        def name(self):
            return "svc"

        @functools.cached_property
        def size(self):
            return 3

        def __eq__(self, other):
            return isinstance(other, Service)

        __hash__ = object.__hash__

    class Plugin(abc.ABC):
        registry = {}

        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            Plugin.registry[cls.__name__] = cls.run      # captured at class creation

        @abc.abstractmethod
        def run(self): ...

    class Csv(Plugin):
        def run(self):
            raise UnicodeDecodeError("utf-8", b"\\xff", 0, 1, "bad byte")

    class Meta(type):
        def describe(cls):
            raise LookupError(cls.__name__)

    class Model(metaclass=Meta):
        pass

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0

        def norm(self):
            return abs(self.x) + abs(self.y)

        def scaled(self, k):
            if k == 0:
                raise ZeroDivisionError("k")
            return dataclasses.replace(self, x=self.x * k)

    class AppError(Exception):
        def describe(self):
            return "app error"

        @staticmethod
        def make():
            return AppError("made")
"""


def test_methods_and_descriptors_keep_their_binding_order_and_super(make_package):
    _, (m,) = _import(make_package, m=DESCRIPTORS)
    svc = m.Service()
    assert svc.greet() == "svc+base"
    assert isinstance(m.Service.create(), m.Service)
    assert svc.name == "svc" and svc.size == 3
    assert isinstance(vars(m.Service)["name"], property)  # properties are left alone
    assert not is_faultlens_wrapper(vars(m.Service)["__eq__"])
    assert isinstance(vars(m.Service)["create"], classmethod)  # ours sits underneath
    assert isinstance(vars(m.Service)["ping"], staticmethod)
    assert is_faultlens_wrapper(vars(m.Service)["create"])
    assert m.Point(3, -4).norm() == 7
    assert m.Point(1).scaled(2) == m.Point(2)
    assert inspect.isabstract(m.Plugin) and not inspect.isabstract(m.Csv)
    with faultlens.testing.capture() as cap:
        with pytest.raises(ValueError):
            svc.fail()
        with pytest.raises(ConnectionError):
            m.Service.broken()
        with pytest.raises(TimeoutError):
            m.Service.ping("db")
        with pytest.raises(UnicodeDecodeError):
            m.Plugin.registry["Csv"](m.Csv())
        with pytest.raises(LookupError):
            m.Model.describe()
        with pytest.raises(ZeroDivisionError):
            m.Point(1).scaled(0)
    assert [s.name for s in cap.spans] == [
        "Base.fail",
        "Service.fail",
        "Service.broken",
        "Service.ping",
        "Csv.run",
        "Meta.describe",
        "Point.scaled",
    ]
    assert len(cap.errors) == 6


def test_exception_classes_methods_are_left_alone(make_package):
    _, (m,) = _import(make_package, m=DESCRIPTORS)
    assert not is_faultlens_wrapper(vars(m.AppError)["describe"])
    assert not is_faultlens_wrapper(vars(m.AppError)["make"])
    assert m.AppError.make().describe() == "app error"


GENERATORS = """
    import contextlib

    def rows():
        yield 1
        raise FileNotFoundError("rows.csv")

    async def fetch():
        raise TimeoutError("upstream")

    async def stream():
        yield 1
        raise ConnectionError("stream dropped")

    @contextlib.contextmanager
    def session():
        yield "s"

    def work():
        with session():
            raise ValueError("bad input")

    def echo():
        got = yield "ready"
        while True:
            got = yield got * 2
"""


def test_generators_coroutines_and_async_generators(make_package):
    _, (g,) = _import(make_package, g=GENERATORS)
    assert inspect.isgeneratorfunction(g.rows)
    assert inspect.iscoroutinefunction(g.fetch)
    assert inspect.isasyncgenfunction(g.stream)
    gen = g.echo()
    assert next(gen) == "ready" and gen.send(4) == 8 and gen.send(5) == 10
    with g.session() as s:
        assert s == "s"
    with faultlens.testing.capture() as cap:
        with pytest.raises(FileNotFoundError):
            list(g.rows())
        with pytest.raises(TimeoutError):
            asyncio.run(g.fetch())

        async def drain():
            return [x async for x in g.stream()]

        with pytest.raises(ConnectionError):
            asyncio.run(drain())
    assert [e.info.code for e in cap.errors] == [
        "VAL_FILE_NOT_FOUND",
        "EXE_TIMEOUT",
        "NET_CONNECTION_FAILED",
    ]


def test_a_with_blocks_failure_is_the_callers_not_the_context_managers(make_package):
    _, (g,) = _import(make_package, g=GENERATORS)
    with faultlens.testing.capture() as cap, pytest.raises(ValueError):
        g.work()
    # the generator behind @contextmanager gets the block's exception thrown in: recording
    # it there would put the failure on the wrong function
    assert [s.name for s, _ in cap.events()] == ["work"]


def test_a_traceback_shows_the_users_own_lines(make_package):
    _, (app,) = _import(make_package, app=REGISTRY_APP)
    with pytest.raises(FileNotFoundError) as raised:
        app.HANDLERS["load"]("in.csv")
    frames = traceback.extract_tb(raised.value.__traceback__)
    last = frames[-1]
    # no wrapper frame of faultlens's: what gets printed is what Python prints without it
    assert not [f for f in frames if f"{os.sep}faultlens{os.sep}" in f.filename]
    assert last.filename == app.__file__
    assert last.line == "raise FileNotFoundError(path)"
    assert linecache.getline(app.__file__, last.lineno).strip() == last.line


def test_functions_pickle_by_reference_as_without_faultlens(make_package):
    _, (app, m) = _import(make_package, app=REGISTRY_APP, m=DESCRIPTORS)
    for obj in (app.load, app.parse, app.HANDLERS["load"], m.Service.ping):
        assert pickle.loads(pickle.dumps(obj)) is obj
    # a classmethod reached through its class is a new bound object each time, as without
    # faultlens: equal, and bound to the same class
    assert pickle.loads(pickle.dumps(m.Service.create)) == m.Service.create
    assert pickle.loads(pickle.dumps(m.Point(1, 2).scaled)).__self__ == m.Point(1, 2)


def test_a_module_that_opts_out_is_not_rewritten(make_package):
    _, (m,) = _import(
        make_package,
        m="""
        __faultlens_auto__ = False
        HANDLERS = []
        def handler():
            pass
        HANDLERS.append(handler)
        """,
    )
    assert not is_faultlens_wrapper(m.HANDLERS[0])
    assert not is_faultlens_wrapper(vars(m)["handler"])


def test_functions_already_decorated_with_instrument_keep_their_options(make_package):
    _, (m,) = _import(
        make_package,
        m="""
        import faultlens

        JOBS = []

        def job(f):
            JOBS.append(f)
            return f

        @job
        @faultlens.instrument(stage="load")
        def load():
            raise FileNotFoundError("x")
        """,
    )
    with faultlens.testing.capture() as cap, pytest.raises(FileNotFoundError):
        m.JOBS[0]()
    assert [s.name for s in cap.spans] == ["load"]
    assert cap.errors[0].info.stage == "load"


def test_a_class_that_refuses_new_attributes_is_still_instrumented(make_package):
    _, (m,) = _import(
        make_package,
        m="""
        class Frozen(type):
            def __setattr__(cls, name, value):
                raise TypeError("frozen class")

        class Config(metaclass=Frozen):
            def load(self):
                raise ValueError("bad")
        """,
    )
    assert is_faultlens_wrapper(vars(m.Config)["load"])


def test_rewritten_code_is_cached_under_its_own_name_never_as_the_module_bytecode(
    make_package, monkeypatch
):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    pkg, (app,) = _import(make_package, app=REGISTRY_APP)
    ours = cache_path(app.__file__)
    assert ours is not None and os.path.isfile(ours)
    assert ".opt-faultlens" in os.path.basename(ours)
    standard = importlib.util.cache_from_source(app.__file__)
    if os.path.exists(standard):  # the import system's own .pyc, if any, is the original
        with open(standard, "rb") as f:
            assert b"__faultlens_instrument__" not in f.read()
    # a second process start reads the cache: same behaviour
    faultlens.auto.uninstall()
    del sys.modules[app.__name__]
    faultlens.auto.install([f"{pkg}.*"])
    again = importlib.import_module(app.__name__)
    assert is_faultlens_wrapper(again.HANDLERS["load"])
    # a changed source is rewritten again, not served stale from the cache
    faultlens.auto.uninstall()
    del sys.modules[app.__name__]
    with open(app.__file__, "a") as f:
        f.write("\n\ndef added():\n    raise KeyError('new')\n")
    faultlens.auto.install([f"{pkg}.*"])
    changed = importlib.import_module(app.__name__)
    assert is_faultlens_wrapper(vars(changed)["added"])


def test_uninstall_restores_module_attributes(make_package):
    _, (app,) = _import(make_package, app=REGISTRY_APP)
    assert is_faultlens_wrapper(vars(app)["load"])
    faultlens.auto.uninstall()
    assert not is_faultlens_wrapper(vars(app)["load"])


def test_celery_tasks_are_left_to_celery_and_what_they_call_is_instrumented(make_package):
    pytest.importorskip("celery")
    _, (m,) = _import(
        make_package,
        m="""
        from celery import Celery, shared_task

        app = Celery("jobs", broker="memory://", backend="cache+memory://")
        app.conf.task_always_eager = True
        app.conf.task_eager_propagates = True

        def fetch(n):
            raise ConnectionError(f"upstream {n} down")

        @app.task(bind=True, max_retries=0)
        def pull(self, n):
            try:
                return fetch(n)
            except ConnectionError as exc:
                raise self.retry(exc=exc, countdown=0)

        @shared_task
        def add(x, y):
            return x + y
        """,
    )
    assert not is_faultlens_wrapper(m.pull.run) and not is_faultlens_wrapper(m.add.run)
    assert is_faultlens_wrapper(vars(m)["fetch"])
    assert m.add.name.endswith(".add") and m.add.delay(2, 3).get() == 5
    with faultlens.testing.capture() as cap, pytest.raises(ConnectionError):
        m.pull.delay(1).get()
    # the helper's failure is recorded where it happened; Celery's Retry is not a failure
    assert [s.name for s, _ in cap.events()] == ["fetch"]
    assert [e.info.code for e in cap.errors] == ["NET_CONNECTION_FAILED"]


FASTAPI_APP = """
    from typing import Annotated

    from fastapi import Depends, FastAPI, Query
    from pydantic import BaseModel

    app = FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    async def get_db():
        yield {"3": Item(name="tea", price=2.5)}

    @app.get("/items/{item_id}")
    async def read_item(
        item_id: int, db: Annotated[dict, Depends(get_db)], q: Annotated[str | None, Query()] = None
    ) -> Item:
        return db[str(item_id)]

    @app.post("/items")
    def create_item(item: Item) -> dict:
        return {"total": item.price / (len(item.name) - 3)}   # a bug for 3-letter names
"""


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_fastapi_reads_the_same_signatures_and_dependencies(make_package):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    plain_pkg = make_package(api=FASTAPI_APP)
    plain = importlib.import_module(f"{plain_pkg}.api")
    _, (api,) = _import(make_package, api=FASTAPI_APP)
    assert is_faultlens_wrapper(vars(api)["read_item"])
    # the OpenAPI schema FastAPI builds from signatures, hints and dependencies: identical
    assert api.app.openapi() == plain.app.openapi()
    client = TestClient(api.app, raise_server_exceptions=False)
    with faultlens.testing.capture() as cap:
        assert client.get("/items/3", params={"q": "x"}).json() == {"name": "tea", "price": 2.5}
        assert client.get("/items/abc").status_code == 422  # validated from the signature
        assert client.post("/items", json={"name": "mug", "price": 4}).status_code == 500
    assert [e.info.code for e in cap.errors] == ["SYS_UNKNOWN_ERROR"]
    assert [s.name for s, _ in cap.events()] == ["create_item"]


def test_an_exception_thrown_into_an_instrumented_generator_is_the_throwers():
    @faultlens.instrument
    def steps():
        try:
            yield 1
        finally:
            pass  # clean-up; the thrown exception goes on

    @faultlens.instrument
    def converting():
        try:
            yield 1
        except KeyError as exc:
            raise LookupError("converted") from exc  # the generator's own failure

    with faultlens.testing.capture() as cap:
        gen = steps()
        next(gen)
        with pytest.raises(ValueError):
            gen.throw(ValueError("the caller's"))
        other = converting()
        next(other)
        with pytest.raises(LookupError):
            other.throw(KeyError("k"))
    assert [s.name for s, _ in cap.events()] == ["converting"]


def test_validators_raise_by_protocol_and_are_left_alone(make_package):
    pytest.importorskip("pydantic")
    _, (m,) = _import(
        make_package,
        m="""
        from pydantic import BaseModel, ValidationError, field_validator

        class Order(BaseModel):
            qty: int

            @field_validator("qty")
            @classmethod
            def positive(cls, v):
                if v <= 0:
                    raise ValueError("qty must be positive")
                return v

        def parse(data):
            return Order(**data)
        """,
    )
    with faultlens.testing.capture() as cap, pytest.raises(m.ValidationError):
        m.parse({"qty": 0})
    assert m.parse({"qty": 2}).qty == 2
    # the validator's ValueError is pydantic's protocol; the failure is parse()'s
    assert [s.name for s, _ in cap.events()] == ["parse"]


SHAPES = """
    \"\"\"Shapes of decorated code.\"\"\"
    from __future__ import annotations

    import enum
    import functools
    import typing

    @functools.singledispatch
    def render(value) -> str:
        raise TypeError(f"cannot render {type(value).__name__}")

    @render.register
    def _(value: int) -> str:
        return f"int {value}"

    @functools.lru_cache(maxsize=8)
    def slow(n: int) -> int:
        if n < 0:
            raise ValueError(n)
        return n * 2

    class Color(enum.Enum):
        RED = 1
        BLUE = 2

        def label(self) -> str:
            return self.name.lower()

    class Pair(typing.NamedTuple):
        a: int
        b: int

        def total(self) -> int:
            return self.a + self.b

    def hinted(x: Pair) -> Color:
        return Color.RED
"""


def test_other_decorator_shapes_keep_working(make_package):
    _, (m,) = _import(make_package, m=SHAPES)
    assert m.__doc__ == "Shapes of decorated code."  # still the first statement
    assert m.render(3) == "int 3"
    assert m.slow(4) == 8 and m.slow.cache_info().hits == 0 and m.slow(4) == 8
    assert m.slow.cache_info().hits == 1
    assert [c.label() for c in m.Color] == ["red", "blue"]  # methods are not members
    assert m.Pair(1, 2).total() == 3
    assert typing.get_type_hints(m.hinted) == {"x": m.Pair, "return": m.Color}
    assert pickle.loads(pickle.dumps(m.slow)) is m.slow
    with faultlens.testing.capture() as cap:
        with pytest.raises(TypeError):
            m.render("x")
        with pytest.raises(ValueError):
            m.slow(-1)
    assert [s.name for s, _ in cap.events()] == ["render", "slow"]


def test_a_plain_helper_closure_is_left_alone_and_its_error_recorded_by_its_caller(
    make_package,
):
    _, (m,) = _import(
        make_package,
        m="""
        def total(rows):
            def price(row):                 # called in a loop: no wrapper per call
                return row["qty"] * row["unit"]
            return sum(price(r) for r in rows)
        """,
    )
    assert m.total([{"qty": 2, "unit": 3}]) == 6
    with faultlens.testing.capture() as cap, pytest.raises(KeyError):
        m.total([{"qty": 2}])
    assert [s.name for s, _ in cap.events()] == ["total"]
