"""Redis in scripts/stack.sh (the Celery broker of the example and the integration tests),
at its edges, without starting it: like tests/stack/test_stack_script.py, the state dir is
a temp dir and stand-ins replace what must not run, so no port of the stack is bound here.
The real start, health check (PING) and stop are exercised by the integration tests'
``redis`` fixture (tests/integration/test_celery_worker.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"


def stack_sh(
    *args: str, state: Path, path_prepend: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "CACHE_DIR"))}
    environ |= {
        "FAULTLENS_STACK_DIR": str(state),
        "FAULTLENS_CACHE_DIR": str(state.parent / "cache"),
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
    path = tmp_path / "bin"
    path.mkdir()
    return path


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
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{proc.pid}/exe") != os.path.realpath(argv[0]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc.pid


def test_redis_is_a_component_of_the_stack(state):
    assert "redis" in stack_sh("help", state=state).stdout
    status = stack_sh("status", state=state)
    assert "redis stopped" in status.stdout.splitlines()
    urls = stack_sh("urls", state=state).stdout
    (line,) = [x for x in urls.splitlines() if x.startswith("Redis")]
    assert "redis://127.0.0.1:6379/0" in line
    assert line.endswith("(not running)")


def test_the_redis_binary_is_debians_redis_server(state, fake_bin):
    server = fake_bin / "redis-server"
    server.write_text("#!/bin/sh\nexit 0\n")
    server.chmod(0o755)
    proc = stack_sh("bin", "redis", state=state, path_prepend=fake_bin)
    assert proc.returncode == 0
    assert proc.stdout.strip() == str(server)


@pytest.mark.skipif(sys.platform != "linux", reason="the stack script runs on Linux only")
def test_a_redis_pid_is_ours_only_while_it_runs_redis_server(state, fake_bin, processes):
    sleep = shutil.which("sleep")
    assert sleep is not None
    server = shutil.copy(sleep, fake_bin / "redis-server")  # stands in for Debian's binary
    (state / "run").mkdir(parents=True)
    pidfile = state / "run" / "redis.pid"

    pidfile.write_text(str(start(processes, str(server), "60")))
    proc = stack_sh("status", state=state, path_prepend=fake_bin)
    assert f"redis running (pid {processes[-1].pid})" in proc.stdout

    # a process with "redis-server" only among its arguments is not ours: never stopped
    other = start(processes, sys.executable, "-c", "import time; time.sleep(60)", "redis-server")
    pidfile.write_text(str(other))
    proc = stack_sh("status", state=state, path_prepend=fake_bin)
    assert "redis stopped" in proc.stdout.splitlines()
    assert stack_sh("stop", "redis", state=state, path_prepend=fake_bin).returncode == 0
    assert processes[-1].poll() is None


def test_a_busy_redis_port_is_named_with_the_likely_culprit(state, fake_bin):
    # Debian's package starts its own redis-server service where systemd runs: the script
    # says so instead of starting a second server. The port is made busy here for a moment
    # if nothing holds it (a stand-in redis-server is on PATH: nothing real is launched).
    import socket

    server = fake_bin / "redis-server"
    server.write_text("#!/bin/sh\nsleep 30\n")
    server.chmod(0o755)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", 6379))
        holder.listen(1)
    except OSError:
        pass  # busy already (a running stack's Redis): just as good
    try:
        proc = stack_sh("start", "redis", state=state, path_prepend=fake_bin)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert "port 127.0.0.1:6379 (for redis) is already in use" in proc.stderr
    assert "redis-server service" in proc.stderr
    assert not (state / "run" / "redis.pid").exists()
