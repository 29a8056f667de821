"""Exception log records in a pre-fork server: each process sends its own, once.

A gunicorn or Celery prefork worker is forked after ``configure()``: it inherits the logger
provider faultlens owns (its batch processor's queue, its exporter's connection, its
resource). The child must send the errors it records, as its own instance, over its own
connection, and never the parent's queued records a second time; the parent goes on as
before. Checked with the real SDK pipeline (batch processor, OTLP/HTTP exporter) against a
local OTLP receiver that decodes what each process sent.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


class LogsReceiver(http.server.ThreadingHTTPServer):
    """Keeps (message, event name, pid, instance, trace id) of every log record sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: LogsReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/logs":
            req = ExportLogsServiceRequest.FromString(body)
            with self.server.lock:
                for rl in req.resource_logs:
                    res = _attrs(rl.resource.attributes)
                    for sl in rl.scope_logs:
                        for r in sl.log_records:
                            attrs = _attrs(r.attributes)
                            self.server.records.append(
                                {
                                    "message": attrs.get("exception.message"),
                                    "code": attrs.get("faultlens.error.code"),
                                    "event_name": r.event_name,
                                    "pid": res.get("process.pid"),
                                    "instance": res.get("service.instance.id"),
                                    "trace_id": r.trace_id.hex(),
                                }
                            )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[LogsReceiver]:
    server = LogsReceiver()
    yield server
    server.shutdown()
    server.server_close()


APP = textwrap.dedent(
    """
    import os, sys, faultlens

    faultlens.configure(service_name="prefork", endpoint=sys.argv[1],
                        protocol="http/protobuf", journal=False, exception_signal="logs")

    @faultlens.instrument
    def handle(name):
        raise ValueError(name)

    def fail(name):
        try:
            handle(name)
        except ValueError:
            pass

    fail("parent-before-fork")  # still queued in the batch processor at the fork
    pid = os.fork()
    if pid == 0:
        fail("child-1")
        fail("child-2")
        faultlens.shutdown(timeout=10)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    fail("parent-after-fork")
    faultlens.shutdown(timeout=10)
    print(pid, os.getpid(), status, flush=True)
    """
)


def test_each_process_sends_its_own_exception_records_once(receiver: LogsReceiver) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", APP, receiver.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))},
    )
    assert proc.returncode == 0, proc.stderr
    child, parent, status = (int(x) for x in proc.stdout.split())
    assert status == 0, proc.stderr
    with receiver.lock:
        records = list(receiver.records)
    sent = sorted((r["message"], r["pid"]) for r in records)
    assert sent == [
        ("child-1", child),
        ("child-2", child),
        ("parent-after-fork", parent),
        ("parent-before-fork", parent),
    ], "each record once, from the process that recorded it"
    assert {r["event_name"] for r in records} == {"exception"}
    assert {r["code"] for r in records} == {"VAL_INVALID_VALUE"}
    instances = {r["pid"]: r["instance"] for r in records}
    assert instances[child] != instances[parent], "the child is an instance of its own"
    assert all(len(r["trace_id"]) == 32 and r["trace_id"] != "0" * 32 for r in records)
    assert "Traceback" not in proc.stderr, proc.stderr
