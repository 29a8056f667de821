"""Under the real ``faultlens run`` command, an application's decorator-registered callbacks
(a registry, click commands, Flask routes) record their errors, once each; functions go to
process pools (spawn and fork) by reference; an uncaught error's traceback shows the user's
own source lines; and the application behaves as without faultlens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from faultlens.journal import read_records

TASKS = '''
    import os
    import click

    JOBS = {}

    def job(func):
        JOBS[func.__name__] = func
        return func

    @job
    def load(path):
        raise FileNotFoundError(path)

    @job
    def square(x):
        return x * x

    @job
    def explode(x):
        raise KeyError(f"no item {x} in pid {os.getpid()}")

    @click.command()
    @click.option("--count", type=int, default=1)
    def cli(count):
        """Import the rows."""
        if count < 0:
            raise ArithmeticError(f"negative count {count}")
        click.echo(f"imported {count}")

    def finish(stage):
        raise RuntimeError(f"cannot finish {stage}")
'''

WEBAPP = """
    from flask import Flask, abort

    app = Flask(__name__)

    @app.get("/orders/<int:order_id>")
    def order(order_id):
        if order_id == 0:
            abort(404)
        return {"total": 100 / (order_id - 1)}   # a bug for order 1
"""

MAIN = """
    import inspect
    import json
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    if os.environ.get("FAULTLENS_BOOTSTRAP") == "1":
        # The framework integrations, as the zero-code start switches them on (idempotent):
        # the route's failure is theirs to decide and record, on the request's server span.
        import faultlens.integrations

        faultlens.integrations.install_detected()

    import tasks
    import webapp

    def main():
        seen = {}
        try:
            tasks.JOBS["load"]("in.csv")
        except FileNotFoundError:
            seen["registry"] = "raised"
        try:
            tasks.cli.main(["--count", "-1"], standalone_mode=False)
        except ArithmeticError:
            seen["click"] = "raised"
        seen["click_help"] = tasks.cli.get_help(tasks.cli.make_context("cli", ["--count", "2"]))
        seen["signature"] = str(inspect.signature(tasks.JOBS["load"]))
        for method in ("spawn", "fork"):
            ctx = multiprocessing.get_context(method)
            with ProcessPoolExecutor(2, mp_context=ctx) as pool:
                seen[method + "_square"] = list(pool.map(tasks.JOBS["square"], [2, 3]))
                try:
                    pool.submit(tasks.explode, 7).result()
                except KeyError:
                    seen[method + "_explode"] = "raised"
        client = webapp.app.test_client()
        seen["web"] = []
        for n in (2, 0, 1):
            with client.get(f"/orders/{n}") as response:   # closed: the request span ends
                seen["web"].append(response.status_code)
        print(json.dumps(seen), flush=True)
        tasks.finish("import")      # uncaught: the process dies with the usual traceback

    if __name__ == "__main__":
        main()
"""


def _run(tmp_path: Path, under_faultlens: bool) -> subprocess.CompletedProcess[str]:
    for name, text in {"tasks.py": TASKS, "webapp.py": WEBAPP, "main.py": MAIN}.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    cmd = [sys.executable, "main.py"]
    if under_faultlens:
        cmd = [
            sys.executable, "-m", "faultlens.cli", "run", "--service", "decorators",
            "--modules", "tasks,webapp", "--journal", str(tmp_path / "journal"), "--", *cmd,
        ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    plain_dir = tmp_path_factory.mktemp("plain")
    ours_dir = tmp_path_factory.mktemp("ours")
    plain = _run(plain_dir, False)
    ours = _run(ours_dir, True)
    return {"plain": plain, "ours": ours, "journal": ours_dir / "journal"}


def test_the_application_behaves_as_without_faultlens(runs):
    plain, ours = runs["plain"], runs["ours"]
    assert plain.returncode == ours.returncode == 1, ours.stderr
    assert json.loads(ours.stdout) == json.loads(plain.stdout), ours.stderr
    seen = json.loads(ours.stdout)
    assert seen["signature"] == "(path)"
    assert "--count INTEGER" in seen["click_help"]
    assert seen["spawn_square"] == seen["fork_square"] == [4, 9]
    assert seen["web"] == [200, 404, 500]


def test_every_decorator_registered_callback_records_its_error_once(runs):
    records = list(read_records(str(runs["journal"])))
    web = [r for r in records if r["context"].get("http.route")]
    others = Counter(
        (r["span_name"], r["code"], bool(r["context"].get("uncaught")))
        for r in records
        if r not in web
    )
    assert others == {
        ("load", "VAL_FILE_NOT_FOUND", False): 1,  # the registry's callback
        ("cli", "SYS_UNKNOWN_ERROR", False): 1,  # the click command
        ("explode", "SYS_UNKNOWN_ERROR", False): 2,  # in a spawned and in a forked worker
        ("finish", "SYS_UNKNOWN_ERROR", False): 1,  # where it failed...
        ("finish", "SYS_UNKNOWN_ERROR", True): 1,  # ...and the crash it caused (critical)
    }, records
    # The Flask route: its bug once, on the request (route and status), and abort(404) is
    # the framework's answer, not a failure: the integration decides, not the function
    # wrapper the rewrite put under @app.get.
    assert len(web) == 1, records
    assert web[0]["code"] == "SYS_UNKNOWN_ERROR"
    assert web[0]["context"]["http.route"] == "/orders/<int:order_id>"
    assert web[0]["context"]["http.response.status_code"] == 500


def _last_traceback(stderr: str) -> list[str]:
    """The uncaught error's traceback as printed: its lines, file paths cut to their name."""
    block = stderr[stderr.rindex("Traceback (most recent call last):") :]
    out = []
    for line in block.splitlines():
        if line.startswith('  File "'):
            _, path, rest = line.split('"', 2)
            line = f"  File {Path(path).name}{rest}"
        out.append(line)
    return out


def test_an_uncaught_error_shows_the_users_own_source_lines(runs):
    ours = _last_traceback(runs["ours"].stderr)
    assert '    raise RuntimeError(f"cannot finish {stage}")' in ours
    assert ours[-1] == "RuntimeError: cannot finish import"
    # Frame for frame what Python prints without faultlens: the user's files, lines and
    # source, no wrapper frame of faultlens's in between.
    assert ours == _last_traceback(runs["plain"].stderr)


def test_an_import_time_error_prints_exactly_as_without_faultlens(tmp_path):
    (tmp_path / "broken.py").write_text(
        "def f():\n    pass\n\nraise RuntimeError('import-time failure')\n"
    )
    (tmp_path / "main.py").write_text("import broken\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    plain = subprocess.run(
        [sys.executable, "main.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "run", "--modules", "broken",
         "--journal", str(tmp_path / "journal"), "--", sys.executable, "main.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode == ours.returncode == 1
    # no importlib frames, no faultlens frames: the two tracebacks are the same text
    assert _last_traceback(ours.stderr) == _last_traceback(plain.stderr)
    assert "importlib" not in ours.stderr and "faultlens" not in ours.stderr


def test_python_dash_m_runs_the_instrumented_module_too(tmp_path):
    (tmp_path / "jobs.py").write_text(
        textwrap.dedent(
            """
            '''A command-line tool run as python -m jobs.'''
            from __future__ import annotations

            import sys

            COMMANDS = {}

            def command(func):
                COMMANDS[func.__name__] = func
                return func

            @command
            def load(path: str) -> None:
                raise FileNotFoundError(path)

            if __name__ == "__main__":
                try:
                    COMMANDS[sys.argv[1]](*sys.argv[2:])
                except FileNotFoundError:
                    print("missing", flush=True)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    journal = tmp_path / "journal"
    out = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "run", "--modules", "jobs", "--journal",
         str(journal), "--", sys.executable, "-m", "jobs", "load", "in.csv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (out.returncode, out.stdout.strip()) == (0, "missing"), out.stderr
    records = list(read_records(str(journal)))
    assert [(r["span_name"], r["code"]) for r in records] == [("load", "VAL_FILE_NOT_FOUND")]
