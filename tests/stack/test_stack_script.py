"""How scripts/stack.sh and the Makefile behave at their edges, run for real: the script's
state dir and build cache point at temp dirs, and tools it must not reach (apt-get, Go, the
stack's binaries) are replaced on PATH by small stand-ins, so nothing here builds, installs
or binds a port of the stack.

What is covered: a bare `make` prints help and builds nothing; the webhook URL reaches the
rendered Alertmanager config byte for byte, whatever characters it holds; settings that are
written into config files are checked first; a pid is ours only if it runs our very binary
(not a name inside another command line); `restart` renders like `start`; a failing Go
step fails `deps`; the script says plainly that it needs Linux; `make stack-demo` prints
its links through `stack.sh urls` (tests/integration/test_stack_links.py opens each)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
DEFAULT_WEBHOOK = "http://127.0.0.1:9099/hook"


def stack_sh(
    *args: str, state: Path, path_prepend: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run scripts/stack.sh with its state (and build cache) in temp dirs."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "CACHE_DIR"))}
    environ |= {
        "FAULTLENS_STACK_DIR": str(state),
        "FAULTLENS_CACHE_DIR": str(state.parent / "cache"),
        **env,
    }
    if path_prepend is not None:
        environ["PATH"] = f"{path_prepend}{os.pathsep}{environ['PATH']}"
    return subprocess.run(
        ["bash", str(STACK_SH), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environ,
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A directory put first on PATH for stand-in executables."""
    path = tmp_path / "bin"
    path.mkdir()
    return path


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# --- make -----------------------------------------------------------------------------------


def test_a_bare_make_prints_help_and_runs_nothing_else():
    # The mk/*.mk fragments are included before the Makefile's first target; the default
    # goal must still be `help`, not the first target of a fragment (stack-deps: apt-get
    # and Go builds).
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "stack.sh" not in dry.stdout
    assert "apt-get" not in dry.stdout
    bare = subprocess.run(
        ["make", "--no-print-directory"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    helped = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert bare.stdout == helped.stdout
    assert "make test" in bare.stdout
    assert bare.stderr == ""


# --- rendering ------------------------------------------------------------------------------


def rendered_webhook_urls(state: Path) -> list[str]:
    config = yaml.safe_load((state / "alertmanager" / "alertmanager.yml").read_text())
    return [hook["url"] for r in config["receivers"] for hook in r["webhook_configs"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9099/alerts?team=a&b=c#section",
        "https://hooks.example.test/services/T0/B1/x|y?q=a%20b&amp;z",
        'http://127.0.0.1:8080/p\\q/"quoted"/&/#/\\1',
        "http://[::1]:9099/hook;v=1?s=$HOME*",
    ],
)
def test_the_webhook_url_reaches_the_alertmanager_config_unchanged(state, url):
    # Characters that sed (& \ # | as delimiter), YAML (# " \) or the shell would change.
    proc = stack_sh("render", state=state, FAULTLENS_ALERT_WEBHOOK_URL=url)
    assert proc.returncode == 0, proc.stderr
    assert rendered_webhook_urls(state) == [url, url]


def test_the_rendered_alertmanager_config_is_valid_with_a_custom_url(state, tool, run):
    url = "http://127.0.0.1:8080/hook?token=a&b=c#frag"
    proc = stack_sh("render", state=state, FAULTLENS_ALERT_WEBHOOK_URL=url)
    assert proc.returncode == 0, proc.stderr
    run(tool("amtool"), "check-config", str(state / "alertmanager" / "alertmanager.yml"))


def test_without_a_webhook_url_the_shipped_config_is_copied_verbatim(state):
    assert stack_sh("render", state=state).returncode == 0
    rendered = (state / "alertmanager" / "alertmanager.yml").read_text()
    assert rendered == (REPO / "collector" / "alertmanager.yml").read_text()
    assert rendered_webhook_urls(state) == [DEFAULT_WEBHOOK, DEFAULT_WEBHOOK]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FAULTLENS_ALERT_WEBHOOK_URL", "127.0.0.1:9099/hook"),
        ("FAULTLENS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9099/a b"),
        ("FAULTLENS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9099/a\nurl: http://evil"),
        ("FAULTLENS_STACK_INTERVAL", "2 s"),
        ("FAULTLENS_STACK_INTERVAL", "2s/;s/x/y"),
        ("FAULTLENS_STACK_INTERVAL", "fast"),
    ],
)
def test_a_value_written_into_a_config_file_is_checked_first(state, variable, value):
    proc = stack_sh("render", state=state, **{variable: value})
    assert proc.returncode == 1
    assert variable in proc.stderr
    assert not (state / "alertmanager" / "alertmanager.yml").exists()


def test_the_interval_setting_sets_both_prometheus_intervals(state):
    assert stack_sh("render", state=state, FAULTLENS_STACK_INTERVAL="1m30s").returncode == 0
    config = yaml.safe_load((state / "prometheus" / "prometheus.yml").read_text())
    assert config["global"] == {"scrape_interval": "1m30s", "evaluation_interval": "1m30s"}


def test_restart_renders_the_configuration_like_start(state, fake_bin):
    assert stack_sh("render", state=state).returncode == 0
    # A stand-in prometheus that exits at once: the start fails, after rendering.
    shutil.copy(shutil.which("false") or "/bin/false", fake_bin / "prometheus")
    proc = stack_sh(
        "restart", "prometheus", state=state, path_prepend=fake_bin, FAULTLENS_STACK_INTERVAL="3s"
    )
    assert proc.returncode == 1
    config = yaml.safe_load((state / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "3s"
    # and a bad setting stops a restart before anything is stopped or started
    bad = stack_sh("restart", "prometheus", state=state, FAULTLENS_STACK_INTERVAL="soon")
    assert bad.returncode == 1
    assert "FAULTLENS_STACK_INTERVAL" in bad.stderr
    assert "prometheus" not in bad.stderr.replace("Prometheus", "")


def test_an_unknown_component_is_refused_before_anything_happens(state):
    for command in ("start", "stop", "restart"):
        proc = stack_sh(command, "grafana", state=state)
        assert proc.returncode == 1
        assert "unknown component: grafana" in proc.stderr
    assert not state.exists()


# --- which process is ours ------------------------------------------------------------------


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def start(processes: list[subprocess.Popen[bytes]], *argv: str) -> int:
    proc = subprocess.Popen(list(argv))
    processes.append(proc)
    # until the child has exec'd (its /proc/PID/exe is the new program)
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{proc.pid}/exe") != os.path.realpath(argv[0]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc.pid


def status_of(state: Path, fake_bin: Path, component: str) -> str:
    proc = stack_sh("status", state=state, path_prepend=fake_bin)
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    return lines[component]


@pytest.mark.skipif(sys.platform != "linux", reason="the stack script runs on Linux only")
def test_a_pid_is_ours_only_while_it_runs_our_very_binary(state, fake_bin, processes):
    # Stand-ins for Debian's prometheus and prometheus-alertmanager: two copies of `sleep`,
    # found on PATH as the script finds the real ones.
    sleep = shutil.which("sleep")
    assert sleep is not None
    prometheus = shutil.copy(sleep, fake_bin / "prometheus")
    alertmanager = shutil.copy(sleep, fake_bin / "prometheus-alertmanager")
    (state / "run").mkdir(parents=True)
    pidfile = state / "run" / "prometheus.pid"

    pidfile.write_text(str(start(processes, str(prometheus), "60")))
    assert status_of(state, fake_bin, "prometheus").startswith("prometheus running")

    # The pid now belongs to prometheus-alertmanager, whose name contains "prometheus".
    pidfile.write_text(str(start(processes, str(alertmanager), "60")))
    assert status_of(state, fake_bin, "prometheus") == "prometheus stopped"

    # ... or to a process that merely has "prometheus" among its arguments.
    other = start(processes, sys.executable, "-c", "import time; time.sleep(60)", "prometheus")
    pidfile.write_text(str(other))
    assert status_of(state, fake_bin, "prometheus") == "prometheus stopped"

    # `stop` leaves a process that is not ours alone.
    assert stack_sh("stop", "prometheus", state=state, path_prepend=fake_bin).returncode == 0
    assert processes[-1].poll() is None


# --- deps -----------------------------------------------------------------------------------


def test_a_failing_go_step_fails_deps_with_its_error(state, fake_bin):
    # Debian's tools "installed" (so apt-get is not reached), Go failing at every step.
    for name in (
        "prometheus",
        "promtool",
        "prometheus-alertmanager",
        "docker-compose",
        "redis-server",
    ):
        write_script(fake_bin / name, "#!/bin/sh\nexit 0\n")
    write_script(fake_bin / "go", '#!/bin/sh\necho "go: simulated failure of: $*" >&2\nexit 1\n')

    proc = stack_sh("deps", state=state, path_prepend=fake_bin)
    assert proc.returncode != 0
    assert "simulated failure of: install go.opentelemetry.io/collector/cmd/builder" in proc.stderr

    # With the collector cached, the Jaeger step runs, and its failure stops deps too.
    collector = Path(stack_sh("bin", "collector", state=state).stdout.strip())
    collector.parent.mkdir(parents=True)
    write_script(collector, "#!/bin/sh\nexit 0\n")
    proc = stack_sh("deps", state=state, path_prepend=fake_bin)
    assert proc.returncode == 1
    assert "cannot download github.com/jaegertracing/jaeger" in proc.stderr
    assert "simulated failure of: mod download" in proc.stderr
    assert stack_sh("bin", "jaeger", state=state).returncode == 1


# --- Linux only -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["up", "down", "status", "deps", "start", "restart"])
def test_elsewhere_than_linux_it_says_so_and_does_nothing(state, fake_bin, command):
    write_script(fake_bin / "uname", "#!/bin/sh\necho Darwin\n")
    args = [command, "collector"] if command in ("start", "restart") else [command]
    proc = stack_sh(*args, state=state, path_prepend=fake_bin)
    assert proc.returncode == 1
    assert "Linux only" in proc.stderr
    assert "docker compose" in proc.stderr
    assert not state.exists()


def test_the_help_says_it_is_linux_only():
    proc = subprocess.run(
        ["bash", str(STACK_SH), "help"], capture_output=True, text=True, check=True, timeout=30
    )
    assert "Linux only" in proc.stdout
    assert "render" in proc.stdout
    assert proc.stdout.splitlines()[0].startswith("The faultlens stack without Docker")


# --- where to look --------------------------------------------------------------------------


def test_stack_demo_prints_its_links_through_stack_sh_urls():
    # The only links `make stack-demo` prints are those of `stack.sh urls`, which the
    # integration tests open one by one on the running stack.
    text = (REPO / "mk" / "stack.mk").read_text()
    recipe = text.split("\nstack-demo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    assert "@$(STACK_ENV) $(STACK) urls $(STACK_DEMO_SERVICE)" in lines
    assert not [line for line in lines if "://" in line]
    assert "--service $(STACK_DEMO_SERVICE)" in text


def test_urls_marks_what_is_not_running(state):
    proc = stack_sh("urls", "svc one/ü", state=state)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    labelled = {x.split("  ")[0]: x for x in lines if "  " in x and not x.startswith(" ")}
    for label in (
        "collector health",
        "Jaeger API",
        "VictoriaLogs UI",
        "log-metrics health",
        "Prometheus",
        "Alertmanager API",
    ):
        assert labelled[label].endswith("(not running)"), labelled[label]
    # the service name is percent-encoded in its links
    (traces,) = [x for x in lines if "traces (JSON)" in x]
    assert "service=svc%20one%2F%C3%BC&limit=20" in traces
    (errors,) = [x for x in lines if "errors by code" in x]
    assert "job%3D%22svc%20one%2F%C3%BC%22" in errors
    # and written as a LogsQL string in its exception-logs link: quotes and backslashes escaped
    proc = stack_sh("urls", 'a"b\\c', state=state)
    for label in ("exception logs", "logs (JSON)"):  # the VictoriaLogs UI, and its API
        (logs,) = [x for x in proc.stdout.splitlines() if x.strip().startswith(label + " ")]
        query = unquote(logs.split("query=", 1)[1].split("&", 1)[0].split()[0])
        assert query == '{service.name="a\\"b\\\\c"} event_name:=exception | sort by (_time desc)'
    (ui,) = [x for x in proc.stdout.splitlines() if x.strip().startswith("exception logs ")]
    assert "/select/vmui/#/?query=" in ui
