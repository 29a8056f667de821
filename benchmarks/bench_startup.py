"""`faultlens run` start-up of a 200-module app against `opentelemetry-instrument` (issue 17).

The app: a package of 200 modules, each with 10 functions registered by a decorator into a
dict (what ``@app.route``/``@task`` do) and a class with 6 methods; ``main.py`` imports them
all. Each sample is a fresh process running the whole command, exporters off:

- ``python main.py`` (the floor);
- ``opentelemetry-instrument python main.py`` (the anchor: every installed instrumentor);
- ``faultlens run --modules 'app200.*' -- python main.py``, with every function of the 200
  modules instrumented by the import-time rewrite: cold (no cached rewritten code) and warm
  (the rewritten code read back from ``__pycache__``).

Samples of the commands alternate, so all see the same machine load; medians are compared.
Bytecode caching is switched on for every command (``PYTHONDONTWRITEBYTECODE`` unset), as in
production; the figures without it are printed by ``--no-bytecode``.

    .venv/bin/python benchmarks/bench_startup.py [--quick] [--no-bytecode]
"""

from __future__ import annotations

import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import row

MODULES = 200
FUNCTIONS = 10
METHODS = 6

_REGISTRY = """
HANDLERS = {}

def register(name):
    def add(func):
        HANDLERS[name] = func
        return func
    return add
"""


def make_app(root: Path) -> None:
    pkg = root / "app200"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "registry.py").write_text(_REGISTRY)
    for i in range(MODULES):
        lines = ["from app200.registry import register", ""]
        for j in range(FUNCTIONS):
            lines += [
                f"@register('m{i}_f{j}')",
                f"def f{j}(x, y=1):",
                "    if x < 0:",
                "        raise ValueError(x)",
                f"    return x + y * {j}",
                "",
            ]
        lines.append(f"class C{i}:")
        for j in range(METHODS - 1):
            lines += [f"    def m{j}(self, x):", f"        return x * {j}", ""]
        lines += ["    @classmethod", "    def make(cls):", "        return cls()", ""]
        (pkg / f"mod{i:03d}.py").write_text("\n".join(lines) + "\n")
    (root / "main.py").write_text(
        "import importlib\n"
        f"for i in range({MODULES}):\n"
        "    importlib.import_module(f'app200.mod{i:03d}')\n"
    )


def _env(bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _time(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(runs: int, bytecode: bool = True) -> dict[str, float]:
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_app(root)
        env = _env(bytecode)
        python = str(bindir / "python")
        faultlens = [
            str(bindir / "faultlens"), "run", "--modules", "app200.*",
            "--journal", str(root / "journal"), "--", python, "main.py",
        ]  # fmt: skip

        def drop_rewritten() -> None:
            for path in glob.glob(str(root / "app200" / "__pycache__" / "*faultlens*")):
                os.unlink(path)

        commands: dict[str, list[str]] = {
            "python": [python, "main.py"],
            "otel": [str(bindir / "opentelemetry-instrument"), python, "main.py"],
            "faultlens_warm": faultlens,
            "faultlens_cold": faultlens,
        }
        for cmd in commands.values():  # warm the interpreter's own caches
            _time(cmd, root, env)
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                if name == "faultlens_cold":
                    drop_rewritten()
                times[name].append(_time(cmd, root, env))
        return {k: statistics.median(v) for k, v in times.items()}


def run(quick: bool = False) -> list[dict[str, Any]]:
    m = measure(5 if quick else 15)
    anchor = m["otel"]
    return [
        row(
            "startup",
            f"faultlens run, {MODULES}-module app (rewritten code cached)",
            m["faultlens_warm"],
            "opentelemetry-instrument",
            anchor,
            goal="<= 0.8x",
            ok=m["faultlens_warm"] / anchor <= 0.8,
        ),
        row(
            "startup",
            f"faultlens run, {MODULES}-module app (first start: parse + rewrite)",
            m["faultlens_cold"],
            "opentelemetry-instrument",
            anchor,
        ),
        row("startup", f"plain python, {MODULES}-module app", m["python"]),
    ]


if __name__ == "__main__":
    if "--no-bytecode" in sys.argv:
        for name, seconds in measure(5, bytecode=False).items():
            print(f"{name:16} {seconds * 1000:7.0f} ms")
    else:
        for r in run(quick="--quick" in sys.argv):
            print(r)
