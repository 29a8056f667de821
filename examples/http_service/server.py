"""The service: routing, the handlers, and the envelope on every failure."""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import faultlens

WORKSPACES = {"ws-1": {"tp": 90, "fp": 5, "fn": 5}, "ws-2": {"tp": 0, "fp": 0, "fn": 0}}

# Category -> HTTP status: the client's fault is a 4xx, ours a 5xx.
STATUS = {"validation": 400, "network": 502, "execution": 500, "resource": 503, "system": 500}


class WorkspaceNotFound(faultlens.FaultError):
    code = "WORKSPACE_NOT_FOUND"


class InvalidParams(faultlens.FaultError):
    code = "INVALID_PARAMS"


def register_codes() -> None:
    for code, hint in (
        ("WORKSPACE_NOT_FOUND", "list workspaces with GET /workspaces and use one of those"),
        ("INVALID_PARAMS", "threshold is a number within 0..1, e.g. ?threshold=0.5"),
    ):
        if code not in faultlens.catalog:
            faultlens.catalog.register(code, category="validation", severity="medium", hint=hint)


@faultlens.instrument(stage="parse")
def parse_threshold(raw: str | None) -> float:
    try:
        value = float(raw if raw is not None else "0.5")
    except ValueError:
        raise InvalidParams(f"threshold must be a number, got {raw!r}", stage="parse") from None
    if not 0.0 <= value <= 1.0:
        raise InvalidParams(f"threshold must be within 0..1, got {value}", stage="parse")
    return value


@faultlens.instrument(stage="score")
def score(workspace: str, threshold: float) -> dict[str, Any]:
    counts = WORKSPACES.get(workspace)
    if counts is None:
        raise WorkspaceNotFound(f"no workspace {workspace!r}", details={"workspace": workspace})
    precision = counts["tp"] / (counts["tp"] + counts["fp"])  # ws-2: ZeroDivisionError
    return {
        "workspace": workspace,
        "precision": round(precision, 4),
        "pass": precision >= threshold,
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "scoring-http/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/workspaces":
                self._send(200, {"ok": True, "workspaces": sorted(WORKSPACES)})
            elif url.path == "/score":
                with faultlens.capture(route="/score"):
                    threshold = parse_threshold(query.get("threshold"))
                    result = score(query.get("workspace", ""), threshold)
                self._send(200, {"ok": True, "result": result})
            else:
                self._send(404, {"ok": False, "error": {"code": "NOT_FOUND", "message": url.path}})
        except Exception as exc:
            faultlens.record_error(exc)  # no-op if an instrumented function recorded it
            envelope = faultlens.to_api_envelope(exc)
            category = str(faultlens.classify(exc).category)
            self._send(STATUS.get(category, 500), envelope)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: errors go to faultlens
        pass


def make_server(port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0: a free port; read it from ``server_address``)."""
    register_codes()
    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = make_server(port)
    thread = threading.Thread(target=server.serve_forever, name="http-service", daemon=True)
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http_service")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if not faultlens.is_configured():
        faultlens.configure(service_name="http-service")
    server = make_server(args.port)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
