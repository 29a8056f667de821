"""Drive request traffic through the two web examples under `faultlens run`.

``make stack-demo`` runs it after the pipeline demo, so Jaeger and the dashboards show real
request errors: the FastAPI shop on uvicorn (service ``shop-api``) and the Flask shop on
gunicorn with two prefork workers (``shop-web``), each answering a mix of successes, 404s,
validation errors, a dependency that is down behind a circuit breaker, and a bug. Both are
stopped with SIGTERM afterwards (faultlens flushes on the way out)::

    python examples/web_traffic.py --endpoint http://127.0.0.1:4317 [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(method: str, url: str, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def start(service: str, endpoint: str, server_cmd: list[str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "faultlens.cli", "run", "--service", service,
        "--endpoint", endpoint, "--", *server_cmd,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "2000"
    return subprocess.Popen(
        cmd,
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if request("GET", f"{url}/health") == 200:
            return True
        time.sleep(0.3)
    return False


def traffic(url: str, rounds: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    for _ in range(rounds):
        for method, path, body in (
            ("GET", "/items/1", None),
            ("GET", "/items/1", None),
            ("GET", "/items/99", None),
            ("POST", "/orders", b'{"item_id": 1, "quantity": 0}'),
            ("POST", "/orders", b'{"item_id": 1, "quantity": 2}'),
            ("GET", "/items/1/price", None),
            ("GET", "/items/2/restock-eta", None),
        ):
            status = request(method, url + path, body)
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:4317")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    api_port, web_port = free_port(), free_port()
    servers = {
        "shop-api": (
            f"http://127.0.0.1:{api_port}",
            [str(BIN / "uvicorn"), "--app-dir", "examples", "fastapi_service.app:app",
             "--host", "127.0.0.1", "--port", str(api_port)],
        ),
        "shop-web": (
            f"http://127.0.0.1:{web_port}",
            [str(BIN / "gunicorn"), "--chdir", "examples", "--workers", "2",
             "--bind", f"127.0.0.1:{web_port}", "flask_app.app:app"],
        ),
    }  # fmt: skip
    procs = {name: start(name, args.endpoint, cmd) for name, (_, cmd) in servers.items()}
    failed = False
    try:
        for name, (url, _) in servers.items():
            if not wait_ready(url, procs[name]):
                print(f"{name}: did not start", file=sys.stderr)
                failed = True
                continue
            answered = traffic(url, args.rounds)
            summary = ", ".join(f"{n} x {s}" for s, n in sorted(answered.items()))
            print(f"{name}: {summary}")
    finally:
        for proc in procs.values():
            stop(proc)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
