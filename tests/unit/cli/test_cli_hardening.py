"""The faultlens command on bad days: it never deletes what it did not create, every error is
one clear line (exit 2 for bad input, never a traceback), --json is always valid JSON, no
output repeats a credential it was given, `run --no-exec` reports a signal death the way a
shell does, and `version`/`--help` start without the OpenTelemetry SDK. Everything through
the real command (a subprocess, or cli.main), real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from faultlens.cli import main

REPO = Path(__file__).resolve().parents[3]
SRC = Path(__import__("faultlens").__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(extra)
    return env


def faultlens(
    *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlens.cli", *argv],
        env=_env() if env is None else env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- demo never deletes what it did not create ---------------------------------------------


def test_demo_leaves_a_journal_directory_it_did_not_create_untouched(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "journal-prod-1-0.jsonl").write_text('{"ts": 1}\n')  # someone's real journal
    (journal / "notes.txt").write_text("mine")
    proc = faultlens("demo", "--dir", str(tmp_path), "--jobs", "4")
    assert proc.returncode == 2
    assert "was not created by `faultlens demo`" in proc.stderr and "--dir" in proc.stderr
    assert sorted(p.name for p in journal.iterdir()) == ["journal-prod-1-0.jsonl", "notes.txt"]


def test_demo_never_follows_or_removes_a_symlinked_journal(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "journal-x-1-0.jsonl").write_text("{}\n")
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "journal").symlink_to(precious)
    assert faultlens("demo", "--dir", str(demo)).returncode == 2
    assert (demo / "journal").is_symlink() and (precious / "journal-x-1-0.jsonl").exists()


def test_demo_refuses_a_file_named_journal(tmp_path):
    (tmp_path / "journal").write_text("not a directory")
    assert faultlens("demo", "--dir", str(tmp_path)).returncode == 2
    assert (tmp_path / "journal").read_text() == "not a directory"


def test_demo_reruns_clear_only_their_own_journal_files(tmp_path):
    first = faultlens("demo", "--dir", str(tmp_path), "--jobs", "8", "--json")
    assert first.returncode == 0, first.stderr
    journal = tmp_path / "journal"
    assert (journal / ".faultlens-demo").is_file()
    assert (journal.stat().st_mode & 0o777) == 0o700
    (journal / "keep.txt").write_text("a file of mine")
    (journal / ".faultlens-alerts.json").write_text("{}")  # faultlens's own state: cleared
    second = faultlens("demo", "--dir", str(tmp_path), "--jobs", "8", "--json")
    assert second.returncode == 0, second.stderr
    assert (journal / "keep.txt").read_text() == "a file of mine"
    ledger = journal / ".faultlens-alerts.json"  # removed (or rewritten by this run)
    assert not ledger.exists() or ledger.read_text() != "{}"
    # a fresh journal: the second run counts its own errors only, as the first did
    totals = [_strict_json(p.stdout)["data"]["stats"]["total"] for p in (first, second)]
    assert totals[0] == totals[1] > 0


# -- run ---------------------------------------------------------------------------------------


def test_json_before_run_is_a_global_option(tmp_path):
    proc = faultlens("--json", "run", "--", "python", "-c", "print('ran')", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran"


@pytest.mark.parametrize("name", ["python", "python3", "python{}.{}".format(*sys.version_info)])
def test_a_bare_python_of_this_version_is_the_interpreter_faultlens_runs_in(name, tmp_path):
    code = "import sys, faultlens; print(sys.executable, faultlens.is_configured())"
    proc = faultlens("run", "--", name, "-c", code, cwd=tmp_path)
    assert proc.stdout.split() == [sys.executable, "True"], proc.stderr


def test_the_commands_own_options_are_left_alone(tmp_path):
    proc = faultlens(
        "run", "--", "python", "-c", "import sys; print(sys.argv[1:])", "--json", "--help"
    )
    assert proc.stdout.strip() == "['--json', '--help']", proc.stderr


def test_empty_pythonpath_entries_still_mean_the_working_directory(tmp_path):
    """`export PYTHONPATH=$PYTHONPATH:/x` with PYTHONPATH unset gives ':/x': the empty entry
    is the working directory, where the app's modules are."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "helper.py").write_text("VALUE = 'found in the working directory'\n")
    app = tmp_path / "app" / "main.py"
    app.parent.mkdir()
    app.write_text("import helper\nprint(helper.VALUE)\n")
    for pythonpath in (f":{tmp_path / 'x'}", f"{tmp_path / 'x'}:"):
        env = _env(PYTHONPATH=pythonpath)
        plain = subprocess.run(
            [sys.executable, str(app)], env=env, cwd=work, capture_output=True, text=True
        )
        assert plain.returncode == 0, plain.stderr  # what the app does without faultlens
        proc = faultlens("run", "--no-exec", "--", "python", str(app), cwd=work, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "found in the working directory"


def _launcher(tmp_path: Path, child: list[str]) -> Path:
    app = tmp_path / "launcher.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys
            done = subprocess.run({child!r}, capture_output=True, text=True)
            print("CHILD STDERR:", repr(done.stderr))
            print("CHILD STDOUT:", done.stdout.strip())
            """
        )
    )
    return app


def test_a_python_without_faultlens_launched_by_the_app_gets_a_clean_stderr(tmp_path):
    """The app's own helper interpreter (here a fresh venv without faultlens) inherits the
    bootstrap through PYTHONPATH: it must start silently, as it would without faultlens."""
    venv = tmp_path / "other-venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    other = str(venv / "bin" / "python")
    app = _launcher(tmp_path, [other, "-c", "print('helper ran')"])
    proc = faultlens("run", "--no-exec", "--", "python", str(app), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "CHILD STDERR: ''" in proc.stdout
    assert "CHILD STDOUT: helper ran" in proc.stdout
    # ...while the command faultlens ran is told when it cannot import faultlens:
    direct = faultlens("run", "--", other, "-c", "print('app ran')", cwd=tmp_path)
    assert direct.stdout.strip() == "app ran"
    assert "faultlens: not importable by" in direct.stderr


def test_a_configuration_problem_is_reported_once_not_by_every_child(tmp_path):
    app = _launcher(tmp_path, [sys.executable, "-c", "print('worker ran')"])
    env = _env(FAULTLENS_EXPORTER="carrier-pigeon")
    proc = faultlens("run", "--no-exec", "--", "python", str(app), cwd=tmp_path, env=env)
    assert proc.returncode == 0
    assert proc.stderr.count("configure() failed") == 1  # the command's own, once
    assert "CHILD STDERR: ''" in proc.stdout and "worker ran" in proc.stdout


def test_start_up_remarks_are_made_by_the_command_not_by_every_worker(tmp_path):
    """A deprecated key in faultlens.yaml: the command faultlens ran says so once; the Python
    processes it launches (configured from the same file) start silently."""
    (tmp_path / "faultlens.yaml").write_text("faultlens:\n  journal:\n    max_files: 3\n")
    app = _launcher(tmp_path, [sys.executable, "-c", "print('worker ran')"])
    proc = faultlens("run", "--no-exec", "--", "python", str(app), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("max_files is deprecated") == 1
    assert "CHILD STDERR: ''" in proc.stdout and "worker ran" in proc.stdout


def test_python_dash_m_is_named_after_its_module(tmp_path):
    pkg = tmp_path / "nightly_scores"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import faultlens\nprint(faultlens.current_settings().service_name)\n"
    )
    proc = faultlens(
        "run", "--journal", str(tmp_path / "j"), "--", "python", "-m", "nightly_scores",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout.strip() == "unknown_service:nightly_scores", proc.stderr


def test_no_exec_returns_the_childs_exit_code():
    assert main(["run", "--no-exec", "--", "python", "-c", "raise SystemExit(3)"]) == 3


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_no_exec_reports_a_signal_death_as_128_plus_the_signal(sig):
    reset = "" if sig == signal.SIGKILL else f"signal.signal({int(sig)}, signal.SIG_DFL); "
    code = f"import os, signal; {reset}os.kill(os.getpid(), {int(sig)})"
    assert main(["run", "--no-exec", "--", "python", "-c", code]) == 128 + sig


def test_no_exec_passes_sigterm_on_to_the_child(tmp_path):
    ready = tmp_path / "ready"
    child = textwrap.dedent(
        f"""
        import signal, sys, time, pathlib
        def stop(signum, frame):
            print("child got", signum, flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path({str(ready)!r}).write_text("ok")
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlens.cli", "run", "--no-exec", "--", "python", "-c", child],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err
    assert f"child got {int(signal.SIGTERM)}" in out


def test_no_exec_ctrl_c_is_the_childs_to_handle(tmp_path):
    """Ctrl-C reaches the whole foreground process group. The child handles it (here: cleans
    up for half a second, exits 5); `faultlens run` waits for that instead of dying first
    and orphaning the child, and returns the child's code."""
    ready = tmp_path / "ready"
    # The ready file appears by an atomic rename, once the child is inside its `try` (a
    # file seen as soon as it is created let Ctrl-C land in the middle of writing it), and
    # a hung run prints the child's stack instead of a bare timeout.
    child = textwrap.dedent(
        f"""
        import faulthandler, os, pathlib, signal, sys, time
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        try:
            pathlib.Path({str(ready)!r} + ".tmp").write_text("ok")
            os.replace({str(ready)!r} + ".tmp", {str(ready)!r})
            time.sleep(60)
        except KeyboardInterrupt:
            time.sleep(0.5)
            print("cleaned up", flush=True)
            sys.exit(5)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlens.cli", "run", "--no-exec", "--", "python", "-c", child],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGUSR1)
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the run hung after Ctrl-C; stdout {out!r}; stderr and stacks:\n{err}")
    assert proc.returncode == 5, err
    assert out.strip() == "cleaned up"


# -- bad input: one clear line, exit 2, never a traceback --------------------------------------


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["doctor", "--timeout", "-1"], "--timeout"),
        (["doctor", "--timeout", "0"], "--timeout"),
        (["doctor", "--timeout", "nan"], "--timeout"),
        (["doctor", "--timeout", "inf"], "--timeout"),
        (["doctor", "--timeout", "soon"], "--timeout"),
        (["doctor", "--timeout", "1e300"], "--timeout"),
        (["stats", "--since", "1" + "0" * 400 + "d"], "--since"),
        (["stats", "--since", "1e400d"], "--since"),
        (["stats", "--since", "5000000w"], "--since"),
        (["report", "--since", "-3h"], "--since"),
        (["report", "--format", "pdf"], "--format"),
        (["demo", "--jobs", "0"], "--jobs"),
        (["demo", "--jobs", "many"], "--jobs"),
        (["demo", "--seed", "x"], "--seed"),
        (["run"], "after `--`"),
        (["run", "--", "/no/such/command"], "command not found"),
        (["no-such-command"], "invalid choice"),
        (["stats", "--frobnicate"], "--frobnicate"),
        (["doctor", "--health-url", "file:///etc/passwd"], "--health-url"),
        (["report", "--jaeger-url", "jaeger:16686"], "--jaeger-url"),
        (["run", "--endpoint", "http://u:Hunter2x@h:99999", "--", "python"], "--endpoint"),
        (["demo", "--endpoint", "grpc://collector:4317"], "--endpoint"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(argv, names, tmp_path):
    proc = faultlens(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("faultlens: ") and names in proc.stderr
    assert "Traceback" not in proc.stderr and "Hunter2x" not in proc.stderr
    as_json = faultlens("--json", *argv, cwd=tmp_path)
    body = _strict_json(as_json.stdout)
    assert as_json.returncode == 2 and body["status"] == "error"
    assert names in body["error"]["message"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--journal", "{file}/journal", "--", "python", "-c", "pass"],
        ["demo", "--dir", "{file}"],
        ["demo", "--dir", "{file}/sub"],
    ],
)
def test_a_directory_option_that_cannot_be_a_directory_is_bad_input(argv, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = faultlens(*(a.format(file=blocker) for a in argv), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{blocker} is not a directory" in proc.stderr and "Traceback" not in proc.stderr


def test_a_huge_since_never_prints_infinity(tmp_path):
    proc = faultlens("--json", "stats", "--journal", str(tmp_path), "--since", "9" * 400 + "w")
    assert proc.returncode == 2
    assert "Infinity" not in proc.stdout and "NaN" not in proc.stdout
    _strict_json(proc.stdout)


def test_json_output_never_contains_non_finite_numbers(capsys):
    from faultlens.cli._common import dump_json

    dump_json({"rate": float("inf"), "nested": [float("nan"), 1.5]}, sys.stdout)
    assert _strict_json(capsys.readouterr().out) == {"rate": None, "nested": [None, 1.5]}


# -- doctor ------------------------------------------------------------------------------------


def test_doctor_never_prints_the_credentials_it_was_given(tmp_path):
    secret = "Pa55-w0rd-xyzzy"
    env = _env(FAULTLENS_ENDPOINT=f"http://admin:{secret}@127.0.0.1:{_closed_port()}")
    health = f"http://monitor:{secret}@127.0.0.1:{_closed_port()}/health?token={secret}"
    argv = ["doctor", "--journal", str(tmp_path / "j"), "--timeout", "0.5", "--health-url", health]
    for extra in ([], ["--json"]):
        proc = faultlens(*argv, *extra, env=env, cwd=tmp_path)
        assert proc.returncode == 1  # the endpoint is closed
        assert secret not in proc.stdout + proc.stderr
        assert "127.0.0.1" in proc.stdout  # the rest of the address is still shown
    checks = {c["name"]: c for c in _strict_json(proc.stdout)["data"]["checks"]}
    assert checks["endpoint"]["status"] == "fail"
    assert "admin" not in checks["config"]["detail"]


def test_doctor_reports_a_non_utf8_config_file_instead_of_crashing(tmp_path):
    (tmp_path / "faultlens.yaml").write_bytes(b"faultlens:\n  service: caf\xe9\n")
    for extra in ([], ["--json"]):
        proc = faultlens("doctor", "--journal", str(tmp_path / "j"), *extra, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    config = _strict_json(proc.stdout)["data"]["checks"][0]
    assert config["name"] == "config" and config["status"] == "fail"
    assert "faultlens.yaml" in config["detail"] and "UTF-8" in config["detail"]


def test_a_health_url_with_credentials_is_sent_as_basic_auth(tmp_path):
    import http.server
    import threading

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://ops:s3cret@127.0.0.1:{server.server_address[1]}/"
        proc = faultlens("doctor", "--json", "--journal", str(tmp_path / "j"), "--health-url", url)
    finally:
        server.shutdown()
    checks = {c["name"]: c for c in _strict_json(proc.stdout)["data"]["checks"]}
    assert checks["collector health"]["status"] == "ok"
    assert seen == ["Basic b3BzOnMzY3JldA=="]  # ops:s3cret
    assert "s3cret" not in proc.stdout


# -- start-up cost -----------------------------------------------------------------------------

_LAZY_PACKAGE = f"""
import sys, types
# faultlens/__init__ as issue 12 makes it (imports nothing), so this measures faultlens.cli alone
package = types.ModuleType("faultlens")
package.__path__ = [{str(SRC / "faultlens")!r}]
sys.modules["faultlens"] = package
from faultlens.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("opentelemetry", "yaml", "psutil",
               "pytest", "wrapt") or m.startswith(("faultlens._setup", "faultlens.capture",
               "faultlens.journal", "faultlens.reports", "faultlens.auto._hook")))
print(repr(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["version"], ["--help"], ["run", "--help"], ["version", "--json"]]
)
def test_version_and_help_import_nothing_heavy(argv):
    proc = subprocess.run(
        [sys.executable, "-c", _LAZY_PACKAGE, *argv],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_the_parent_of_faultlens_run_does_not_load_the_sdk(tmp_path):
    """`faultlens run` only prepares an environment and execs: the SDK is loaded in the
    child, once, not in the parent too."""
    code = _LAZY_PACKAGE.replace("code = main(sys.argv[1:])", "code = 0\nmain(sys.argv[1:])")
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--no-exec", "--", "python", "-c", "pass"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_text_tables_show_non_finite_numbers_as_a_dash():
    from faultlens.cli._common import cell
    from faultlens.cli._stats import sparkline

    assert [cell(v) for v in (float("inf"), float("nan"), 2.0, 2.5)] == ["-", "-", "2", "2.5"]
    assert sparkline([float("nan"), 1.0, float("inf"), 2.0]) == "▁▄▁█"


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    """`faultlens codes | head -1` over more output than a pipe holds: the pipe closes under
    the command, which ends quietly (no BrokenPipeError traceback) with exit 0."""
    catalog = tmp_path / "many.yaml"
    catalog.write_text(
        "codes:\n"
        + "".join(
            f"  MANY_{i:05d}: {{category: system, severity: low, hint: '{'x' * 80}'}}\n"
            for i in range(3000)
        )
    )
    proc = subprocess.run(
        f"{sys.executable} -m faultlens.cli codes --catalog {catalog} | head -1; "
        "exit ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.startswith("code") and proc.stderr == ""
    assert proc.returncode == 0


@pytest.fixture(scope="module")
def hostile_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal whose error carries terminal escape sequences in its message and stage."""
    path = tmp_path_factory.mktemp("hostile") / "journal"
    app = (
        "import faultlens\n"
        "faultlens.record_error(ValueError('\\x1b[2J\\x1b[31mred\\x1b[0m boom'),"
        " stage='st\\x1b]0;title\\x07age')\n"
    )
    subprocess.run(
        [
            *(sys.executable, "-m", "faultlens.cli", "run", "--journal", str(path)),
            *("--", "python", "-c", app),
        ],
        env=_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def test_journal_text_cannot_drive_the_terminal(hostile_journal):
    """A message is data: `faultlens stats` shows its escape sequences as text
    (\\x1b[2J), never sends them to the terminal (which would clear it)."""
    proc = faultlens("stats", "--journal", str(hostile_journal))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b[31mred\\x1b[0m boom" in proc.stdout


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_terminal_that_is_not_utf8_gets_escapes_not_a_crash(hostile_journal, encoding):
    env = _env(PYTHONIOENCODING=encoding)
    for argv in (["stats", "--journal", str(hostile_journal)], ["codes"], ["--help"]):
        proc = faultlens(*argv, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "UnicodeEncodeError" not in proc.stderr
