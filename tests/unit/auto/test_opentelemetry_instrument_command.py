"""`opentelemetry-instrument` users get faultlens by installing it: the real command, with
the OTel distro configuring the SDK, picks up the faultlens instrumentor entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_real_opentelemetry_instrument_command_records_classified_errors(tmp_path):
    pkg = tmp_path / "oiapp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def load(path):\n    raise FileNotFoundError(path)\n")
    (tmp_path / "main.py").write_text(
        "import oiapp\ntry:\n    oiapp.load('/nope')\nexcept FileNotFoundError:\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(FAULTLENS_AUTO_MODULES="oiapp*", OTEL_SERVICE_NAME="oi-app")
    command = Path(sys.executable).parent / "opentelemetry-instrument"
    proc = subprocess.run(
        [str(command), "--traces_exporter", "console", "--metrics_exporter", "none",
         "--logs_exporter", "none", sys.executable, "main.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    spans = _json_objects(proc.stdout)
    [span] = [s for s in spans if s.get("name") == "load"]
    [event] = span["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["faultlens.error.code"] == "VAL_FILE_NOT_FOUND"
    assert span["resource"]["attributes"]["service.name"] == "oi-app"


def _json_objects(text: str) -> list[dict]:
    """The console exporter prints one pretty JSON object per span, back to back."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while (i := text.find("{", i)) != -1:
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = end
    return out
