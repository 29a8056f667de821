"""Static checks of the stack's files with the real tools (promtool, amtool, the built
collector and Jaeger, docker-compose). A missing tool fails under CI=true, naming the make
target that installs it (`make stack-deps`), and skips otherwise.

Fixtures: ``tool(name)`` -> path of a tool ("collector", "jaeger", "victorialogs" and
"logmetrics" are the cached builds); ``run(*argv, env=None)`` -> its output, failing the
test when it exits non-zero."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.ci import missing_component

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = REPO / "collector"
STACK_SH = REPO / "scripts" / "stack.sh"
# Captured at import: the suite's autouse fixture strips FAULTLENS_* (e.g. FAULTLENS_CACHE_DIR,
# which says where the builds are) from the environment each test runs in.
ENV_AT_START = dict(os.environ)


def find_tool(name: str) -> str:
    """Path of a stack tool: the cached builds via scripts/stack.sh, the rest from PATH."""
    if name in ("collector", "jaeger", "victorialogs", "logmetrics"):
        proc = subprocess.run(
            [str(STACK_SH), "bin", name],
            capture_output=True,
            text=True,
            check=False,
            env=ENV_AT_START,
        )
        if proc.returncode != 0:
            missing_component(f"{name} is not built ({proc.stdout.strip()}); run `make stack-deps`")
        return proc.stdout.strip()
    found = shutil.which(name)
    if found is None:
        missing_component(f"{name} is not installed; run `make stack-deps`")
    assert found is not None
    return found


def _run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """Run a tool; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=None if env is None else os.environ | env,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    return find_tool


@pytest.fixture(scope="session")
def run() -> Callable[..., str]:
    return _run
