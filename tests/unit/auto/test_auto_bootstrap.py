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


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, [BOOT_DIR]),
        ("", [BOOT_DIR]),  # set but empty: no entries, so no working directory either
        (":/x", [BOOT_DIR, "", "/x"]),  # `export PYTHONPATH=$PYTHONPATH:/x` with it unset
        ("/x:", [BOOT_DIR, "/x", ""]),
        ("/a::/b", [BOOT_DIR, "/a", "", "/b"]),
        (f"{BOOT_DIR}:/x", [BOOT_DIR, "/x"]),  # faultlens run under faultlens run
    ],
)
def test_pythonpath_keeps_its_empty_entries(given, expected):
    base = {} if given is None else {"PYTHONPATH": given}
    assert child_environment(base)["PYTHONPATH"].split(os.pathsep) == expected


def test_the_command_is_its_own_target_even_under_another_run():
    from faultlens.auto._bootstrap import TARGET_VAR

    assert TARGET_VAR not in child_environment({TARGET_VAR: "12345"})


def test_an_app_configuring_faultlens_in_its_own_sitecustomize_keeps_it(tmp_path):
    """Its sitecustomize runs first (chained) and calls configure(service_name=...): the
    bootstrap must see faultlens configured, keep the app's options, add the hooks, and not
    claim that the application runs without faultlens."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import faultlens\nfaultlens.configure(service_name='theirs-service')\n"
    )
    (tmp_path / "jobs.py").write_text("def load():\n    raise FileNotFoundError('in.csv')\n")
    env = child_environment(
        {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))},
        journal=str(tmp_path / "journal"),
    )
    env["PYTHONPATH"] += os.pathsep + str(theirs)
    code = textwrap.dedent(
        """
        import json, sys
        import faultlens, faultlens.auto
        import jobs
        print(json.dumps({
            "service": faultlens.current_settings().service_name,
            "wrapped": faultlens.auto.is_faultlens_wrapper(vars(jobs)["load"]),
            "excepthook": sys.excepthook.__module__,
        }))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "without faultlens" not in proc.stderr
    assert json.loads(proc.stdout) == {
        "service": "theirs-service",
        "wrapped": True,
        "excepthook": "faultlens.auto._uncaught",
    }


def test_the_bootstrap_marks_only_the_first_process_as_the_target(tmp_path):
    proc = _child(
        tmp_path,
        """
        import os, subprocess, sys
        from faultlens.auto._bootstrap import TARGET_VAR, is_target
        print(os.environ[TARGET_VAR] == str(os.getpid()), is_target())
        child = "from faultlens.auto._bootstrap import is_target; print(is_target())"
        print(subprocess.run([sys.executable, "-c", child], capture_output=True,
                             text=True).stdout.strip())
        """,
    )
    assert proc.stdout.split() == ["True", "True", "False"], proc.stderr


def test_importing_faultlens_auto_loads_nothing_until_used():
    """`faultlens run` (the parent) needs child_environment only; the hooks, the SDK and the
    optional instrumentor load when first used."""
    src = Path(faultlens.__file__).resolve().parent
    code = textwrap.dedent(
        f"""
        import sys, types
        package = types.ModuleType("faultlens")  # faultlens/__init__ as issue 12 makes it
        package.__path__ = [{str(src)!r}]
        sys.modules["faultlens"] = package
        import faultlens.auto
        from faultlens.auto import child_environment, BOOT_DIR
        print(sorted(m for m in sys.modules
                     if m.startswith(("opentelemetry", "faultlens._setup", "faultlens.capture",
                                      "faultlens.auto._hook", "faultlens.auto._uncaught"))))
        print(faultlens.auto.install.__module__)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.split("\n")[:2] == ["[]", "faultlens.auto._hook"], proc.stderr
