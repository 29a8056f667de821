"""Running examples the way a user would: through `faultlens run` and `faultlens stats`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}


def faultlens_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlens.cli", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stats(journal: Path) -> dict[str, Any]:
    proc = faultlens_cli("stats", "--journal", str(journal), "--since", "1h", "--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)["data"]
    return data
