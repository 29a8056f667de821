"""Real servers for the framework integration tests: started under `faultlens run` on a free
port of 127.0.0.1, stopped with SIGTERM (as a process manager does), their journal read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env.update(extra)
    return env


class Server:
    """One server process group (uvicorn, or a gunicorn master and its workers)."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, cwd: Path = REPO):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(env.get("H8_LOG", f"/tmp/faultlens-itest-{port}.log"))
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, path: str = "/health", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()
        return self.proc.returncode

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")[-6000:]


def journal_records(path: Path) -> list[dict[str, Any]]:
    """The error records of every process's journal files (faultlens's own reader)."""
    from faultlens.journal import read_records

    return list(read_records(str(path)))


def codes(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["code"] for r in records)


def jaeger_tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def exception_logs(span: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for log in span.get("logs", []):
        fields = {f["key"]: f["value"] for f in log.get("fields", [])}
        if fields.get("event") == "exception":
            out.append(fields)
    return out


def server_spans(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        span
        for trace in traces
        for span in trace["spans"]
        if jaeger_tags(span).get("span.kind") == "server"
    ]


def status_of(span: dict[str, Any]) -> int | None:
    tags = jaeger_tags(span)
    value = tags.get("http.response.status_code", tags.get("http.status_code"))
    return int(value) if value is not None else None
