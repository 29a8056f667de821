"""`import faultlens` is cheap and does nothing (issue 12).

It imports no OpenTelemetry SDK, no exporter, no pytest, no psutil; it registers no fork
hook, exit hook, log filter or handler, excepthook or signal handler. Those come with first
use: the SDK with configure() (or faultlens.testing), the hooks with configure() or the
first error recorded. Every check runs in a fresh interpreter. No timing gates here: the
time itself is `make bench`'s import row (benchmarks/bench_import.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import faultlens

HEAVY = ("pytest", "_pytest", "opentelemetry.sdk", "opentelemetry.exporter", "psutil", "grpc")

# Records every process-wide registration faultlens's own code makes (the standard library
# registers at-fork and exit hooks of its own when its modules are imported), then runs the
# body.
_SPY = """
import atexit, json, logging, os, signal, sys, threading
calls = []
def spy(name, real):
    def wrapper(*args, **kwargs):
        caller = sys._getframe(1).f_code.co_filename.replace(os.sep, "/")
        if "/faultlens/" in caller:
            calls.append(name)
        return real(*args, **kwargs)
    return wrapper
os.register_at_fork = spy("os.register_at_fork", os.register_at_fork)
atexit.register = spy("atexit.register", atexit.register)
signal.signal = spy("signal.signal", signal.signal)
logging.Logger.addFilter = spy("Logger.addFilter", logging.Logger.addFilter)
logging.Logger.addHandler = spy("Logger.addHandler", logging.Logger.addHandler)
hooks = (sys.excepthook, threading.excepthook)
{body}
if (sys.excepthook, threading.excepthook) != hooks:
    calls.append("excepthook")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pytest", "_pytest", "psutil", "grpc")
               or m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
print(json.dumps({{"calls": calls, "heavy": heavy,
                   "faultlens": sorted(m for m in sys.modules if m.startswith("faultlens"))}}))
"""


def probe(body: str, cwd: Path) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    out = subprocess.run(
        [sys.executable, "-c", _SPY.format(body=textwrap.dedent(body))],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_faultlens_loads_only_the_package_itself(tmp_path: Path) -> None:
    seen = probe("import faultlens", tmp_path)
    assert seen["heavy"] == []
    assert seen["faultlens"] == ["faultlens", "faultlens._version"]


def test_import_faultlens_registers_nothing_with_the_process(tmp_path: Path) -> None:
    assert probe("import faultlens", tmp_path)["calls"] == []


def test_importing_any_module_of_faultlens_registers_nothing(tmp_path: Path) -> None:
    # The class, not one instance: every module (those whose optional dependency is missing
    # skipped), so a hook registered at some module's import is caught wherever it hides.
    seen = probe(
        """
        import importlib, pkgutil
        import faultlens
        for info in pkgutil.walk_packages(faultlens.__path__, "faultlens."):
            if info.name.endswith(("sitecustomize", "__main__")):
                continue  # run as scripts: the bootstrap of `faultlens run` and `python -m`
            try:
                importlib.import_module(info.name)
            except ImportError:
                pass
        """,
        tmp_path,
    )
    assert seen["calls"] == []


def test_resolving_the_api_and_decorating_registers_nothing(tmp_path: Path) -> None:
    # Every public name resolved (but testing, the SDK's in-memory half) and functions
    # decorated, as a module of the application does at its import. (A retry policy or a
    # breaker is a first use: creating one sets up its counters and their fork hook.)
    seen = probe(
        """
        import faultlens
        for name in faultlens.__all__:
            if name != "testing":
                getattr(faultlens, name)

        @faultlens.instrument
        def f(x):
            return x

        @faultlens.capture(stage="load")
        def g(x):
            return x
        """,
        tmp_path,
    )
    assert seen["heavy"] == []
    assert seen["calls"] == []


def test_using_the_api_without_configure_imports_no_sdk(tmp_path: Path) -> None:
    # First use (a call through the decorators, a breaker) registers the layers' fork hooks;
    # recording goes through the OTel API, so the SDK is still not imported.
    seen = probe(
        """
        import faultlens

        @faultlens.instrument
        def f(x):
            return x

        breaker = faultlens.CircuitBreaker("db")
        g = faultlens.retry(attempts=2)(f)
        assert f(1) == g(1) == breaker(f)(1) == 1
        try:
            f(None).missing
        except AttributeError as exc:
            faultlens.record_error(exc)  # with a resource snapshot: psutil, imported now
        """,
        tmp_path,
    )
    assert not [m for m in seen["heavy"] if not m.startswith("psutil")]


def test_configure_imports_the_sdk_and_registers_its_hooks_then(tmp_path: Path) -> None:
    seen = probe(
        """
        import faultlens
        faultlens.configure(service_name="svc", exporter="none", journal=False)
        """,
        tmp_path,
    )
    assert "opentelemetry.sdk" in seen["heavy"]
    assert not [m for m in seen["heavy"] if m.startswith(("pytest", "_pytest"))]
    assert {"os.register_at_fork", "atexit.register", "Logger.addFilter"} <= set(seen["calls"])


def test_the_first_recorded_error_puts_the_scrubber_on_faultlenss_own_logs(
    tmp_path: Path,
) -> None:
    seen = probe(
        """
        import faultlens
        faultlens.record_error(ValueError("boom"))
        """,
        tmp_path,
    )
    assert "Logger.addFilter" in seen["calls"]
    assert "opentelemetry.sdk" not in seen["heavy"]


def test_testing_is_imported_on_first_use_and_works(tmp_path: Path) -> None:
    seen = probe(
        """
        import faultlens
        assert "faultlens.testing" not in sys.modules
        with faultlens.testing.capture() as cap:
            faultlens.record_error(ValueError("x"))
        assert cap.errors[0].info.code == "VAL_INVALID_VALUE"
        from faultlens import testing
        assert testing is faultlens.testing
        """,
        tmp_path,
    )
    assert "faultlens.testing" in seen["faultlens"]
    assert not [m for m in seen["heavy"] if m.startswith(("pytest", "_pytest"))]


def test_public_names_resolve_lazily_and_are_listed(tmp_path: Path) -> None:
    assert set(faultlens.__all__) <= set(dir(faultlens))
    for name in faultlens.__all__:
        assert getattr(faultlens, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        faultlens.nope  # noqa: B018


_PLUGIN_TEST = """
import sys

def test_the_plugin_alone_imports_nothing_of_faultlens_testing():
    assert "faultlens.testing" not in sys.modules
    assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")]

def test_the_fixture_captures_in_memory(faultlens_capture):
    import faultlens
    faultlens.record_error(ValueError("bad value 3"), stage="load")
    [record] = faultlens_capture.errors
    assert record.info.code == "VAL_INVALID_VALUE"
    assert faultlens_capture.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
"""


def test_the_pytest_fixture_comes_from_the_installed_plugin(tmp_path: Path) -> None:
    # A project of the user's, outside this repository: the fixture is there because
    # faultlens is installed (its pytest11 entry point), with no conftest.
    (tmp_path / "test_user.py").write_text(_PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


def test_a_csv_report_reads_the_journal_without_the_recording_side(tmp_path: Path) -> None:
    """`faultlens report --format csv` (and `stats`) read lines: they load neither the
    capture layer (wrapt, OpenTelemetry), nor the settings model, YAML or the HTML page."""
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "journal-host-1-0.jsonl").write_text("")
    for argv in (
        ["report", "--format", "csv", "--journal", str(journal), "-o", str(tmp_path / "r.csv")],
        ["stats", "--journal", str(journal)],
    ):
        seen = probe(
            f"""
            import runpy
            sys.argv = ["faultlens", *{argv!r}]
            try:
                runpy.run_module("faultlens.cli", run_name="__main__")
            except SystemExit:
                pass
            loaded = [m for m in sys.modules if m.startswith(("wrapt", "yaml", "opentelemetry"))]
            assert not loaded, loaded
            """,
            tmp_path,
        )
        assert seen["heavy"] == []
        unwanted = ("faultlens.capture", "faultlens._config", "faultlens.reports._html")
        assert [m for m in seen["faultlens"] if m.startswith(unwanted)] == [], argv
