"""The zero-code start: what `faultlens run` puts in the child's environment, and a child
that starts with it (sitecustomize), including when things go wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import faultlens.auto
from faultlens.auto import BOOT_DIR, child_environment, default_roots


def test_the_bootstrap_goes_first_on_pythonpath_and_options_become_variables(tmp_path):
    env = child_environment(
        {"PYTHONPATH": "/opt/lib"},
        service="scorer",
        modules=["myapp.*", "jobs"],
        journal="rel/journal",
        endpoint="http://127.0.0.1:4317",
    )
    assert env["PYTHONPATH"].split(os.pathsep) == [BOOT_DIR, "/opt/lib"]
    assert env["FAULTLENS_SERVICE_NAME"] == env["OTEL_SERVICE_NAME"] == "scorer"
    assert env["FAULTLENS_AUTO_MODULES"] == "myapp.*,jobs"
    assert env["FAULTLENS_JOURNAL_PATH"] == os.path.abspath("rel/journal")
    assert env["FAULTLENS_ENDPOINT"] == "http://127.0.0.1:4317"
    assert Path(BOOT_DIR, "sitecustomize.py").is_file()


def test_default_modules_are_the_ones_next_to_the_script(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("")
    assert default_roots([str(script)]) == [str(tmp_path.resolve())]
    assert default_roots(["-m", "x"], cwd="/srv/app") == ["/srv/app"]
    assert default_roots(["-c"], cwd="/srv/app") == ["/srv/app"]
    assert default_roots(["/venv/bin/gunicorn", "app:wsgi"], cwd="/srv/app") == ["/srv/app"]


def _child(tmp_path: Path, code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = child_environment(
        {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))},
        journal=str(tmp_path / "journal"),
    )
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_child_is_configured_and_instrumented_before_its_first_line(tmp_path):
    (tmp_path / "jobs.py").write_text("def load():\n    raise FileNotFoundError('in.csv')\n")
    proc = _child(
        tmp_path,
        """
        import json, sys
        import faultlens, faultlens.auto
        import jobs
        print(json.dumps({
            "configured": faultlens.is_configured(),
            "wrapped": faultlens.auto.is_faultlens_wrapper(vars(jobs)["load"]),
            "excepthook": sys.excepthook.__module__,
            "bootdir_on_path": any("_boot" in p for p in sys.path),
        }))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "configured": True,
        "wrapped": True,
        "excepthook": "faultlens.auto._uncaught",
        "bootdir_on_path": False,
    }


def test_an_existing_sitecustomize_still_runs_first(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import builtins\nbuiltins.THEIRS_RAN = True\n")
    env = child_environment(
        {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))},
        journal=str(tmp_path / "journal"),
    )
    env["PYTHONPATH"] += os.pathsep + str(theirs)
    proc = subprocess.run(
        [sys.executable, "-c", "import faultlens; print(THEIRS_RAN, faultlens.is_configured())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_a_bad_configuration_never_stops_the_application(tmp_path):
    proc = _child(tmp_path, "print('app ran')", FAULTLENS_EXPORTER="carrier-pigeon")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "app ran"
    assert "faultlens: configure() failed" in proc.stderr
    assert "carrier-pigeon" in proc.stderr


def test_bootstrap_can_be_switched_off(tmp_path):
    proc = _child(
        tmp_path, "import faultlens; print(faultlens.is_configured())", FAULTLENS_BOOTSTRAP="0"
    )
    assert proc.stdout.strip() == "False", proc.stderr


def test_the_opentelemetry_instrumentor_entry_point_installs_the_hooks(make_package):
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "faultlens"]
    instrumentor_cls = ep.load()
    pkg = make_package(a="def f():\n    raise ValueError('x')\n")
    instrumentor = instrumentor_cls()
    instrumentor.instrument(modules=[f"{pkg}.*"])
    try:
        import importlib

        a = importlib.import_module(f"{pkg}.a")
        assert faultlens.auto.is_faultlens_wrapper(vars(a)["f"])
        assert sys.excepthook.__module__ == "faultlens.auto._uncaught"
        with faultlens.testing.capture() as cap, pytest.raises(ValueError):
            a.f()
        assert cap.errors[0].info.code == "VAL_INVALID_VALUE"
    finally:
        instrumentor.uninstrument()
    assert not faultlens.auto.is_faultlens_wrapper(vars(a)["f"])
    assert sys.excepthook.__module__ != "faultlens.auto._uncaught"
