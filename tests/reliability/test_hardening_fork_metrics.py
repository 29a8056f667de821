"""A process forked after faultlens counted something reports only its own counts.

Fork copies everything in memory: the SDK's metric storage (every cumulative sum and
histogram), faultlens's local tallies (``faultlens.errors``, retry and breaker call counts,
drop counts) and the span processor's queue. A forked child is a new instance (its own
``service.instance.id``, so its own series in Prometheus): had it re-exported the parent's
totals, every ``sum by (...)`` over instances would count them twice — in each gunicorn,
Celery or multiprocessing worker forked after ``configure()``.

These tests run the real thing: a process configures faultlens against a local OTLP/HTTP
receiver (real PeriodicExportingMetricReader, real BatchSpanProcessor, real exporters),
counts, forks (``os.fork`` like a pre-fork server, or a ``multiprocessing`` fork pool), and
the receiver decodes what each process exported. For every series, the sum over instances
of each instance's last cumulative value must be exactly what was counted.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver that keeps every metric point and span it is sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (instance, metric, labels) -> [(time, value)] in arrival order
        self.points: dict[tuple[str, str, tuple[tuple[str, Any], ...]], list[Any]] = defaultdict(
            list
        )
        self.resources: dict[str, dict[str, Any]] = {}  # instance -> resource attributes
        self.spans: list[tuple[str, str, int]] = []  # (span name, instance, pid)
        self.connections: dict[int, set[Any]] = defaultdict(set)  # pid -> client addresses
        self.corrupt = 0  # requests that did not decode (two processes writing one socket)
        self.grpc_url = ""
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def metrics(self, body: bytes, client: Any) -> None:
        req = ExportMetricsServiceRequest.FromString(body)
        with self.lock:
            for rm in req.resource_metrics:
                res = _attrs(rm.resource.attributes)
                self.connections[res["process.pid"]].add(client)
                inst = res.get("service.instance.id", "")
                self.resources[inst] = res
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        for p in getattr(m, kind).data_points:
                            labels = tuple(sorted(_attrs(p.attributes).items()))
                            if kind == "histogram":
                                value: Any = p.count
                            else:
                                value = p.as_int if p.HasField("as_int") else p.as_double
                            self.points[(inst, m.name, labels)].append((p.time_unix_nano, value))

    def traces(self, body: bytes, client: Any) -> None:
        req = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for rs in req.resource_spans:
                res = _attrs(rs.resource.attributes)
                self.connections[res["process.pid"]].add(client)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(
                            (s.name, res.get("service.instance.id", ""), res["process.pid"])
                        )

    def totals(self, metric: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """Each series summed over instances, each instance's last cumulative value (what
        ``sum by (labels)`` over ``instance`` gives in Prometheus)."""
        out: dict[tuple[tuple[str, Any], ...], Any] = defaultdict(int)
        with self.lock:
            for (_inst, name, labels), values in self.points.items():
                if name == metric:
                    out[labels] += max(values)[1]  # the newest point
        return dict(out)

    def by_instance(self, metric: str) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
        out: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = defaultdict(dict)
        with self.lock:
            for (inst, name, labels), values in self.points.items():
                if name == metric:
                    out[inst][labels] = max(values)[1]
        return dict(out)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a collector does: exporters reuse sockets

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Receiver = self.server  # type: ignore[assignment]
        try:
            if self.path.endswith("/v1/metrics"):
                server.metrics(body, self.client_address)
            elif self.path.endswith("/v1/traces"):
                server.traces(body, self.client_address)
        except DecodeError:
            with server.lock:
                server.corrupt += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_receiver(receiver: Receiver) -> Iterator[Receiver]:
    """The same receiver, listening for OTLP/gRPC too (``url`` is then the gRPC one)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.metrics.v1 import (
        metrics_service_pb2,
        metrics_service_pb2_grpc,
    )
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            receiver.metrics(request.SerializeToString(), context.peer())
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            receiver.traces(request.SerializeToString(), context.peer())
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    receiver.grpc_url = f"http://127.0.0.1:{port}"
    yield receiver
    server.stop(0)


# What every process does: count one of each kind of thing faultlens counts.
COMMON = """
    import os, sys, time, multiprocessing
    import faultlens
    from faultlens.capture import count_dropped

    @faultlens.instrument
    def fails(who):
        raise ValueError(f"bad value from {who}")

    attempts = {"n": 0}

    @faultlens.retry(attempts=3, wait_initial=0.001, wait_max=0.001, on=ConnectionError)
    def flaky():
        attempts["n"] += 1
        if attempts["n"] % 2:
            raise ConnectionError("refused")  # one failed attempt, then success
        return "ok"

    breaker = faultlens.CircuitBreaker("dep", failure_threshold=100)

    @breaker
    def guarded():
        return 1

    def broken():
        raise ConnectionError("primary down")

    recovered = faultlens.recover(fallbacks=[lambda: "cached"])(broken)

    def count_one_of_each(who):
        try:
            fails(who)
        except ValueError:
            pass
        assert flaky() == "ok"
        guarded()
        assert recovered() == "cached"
        count_dropped("queue_full")
        return os.getpid()

    faultlens.configure(
        service_name="forky", endpoint=sys.argv[1], protocol=sys.argv[2],
        metrics_interval=0.2, journal=False,
    )
"""

PRE_FORK = (
    COMMON
    + """
    count_one_of_each("master")
    count_one_of_each("master")
    time.sleep(0.6)  # the master has exported its counts at least once
    workers = []
    for i in range(2):  # a pre-fork server: configure in the master, fork workers
        pid = os.fork()
        if pid == 0:
            count_one_of_each(f"worker{i}")
            time.sleep(0.5)  # a periodic export or two of the worker's own
            faultlens.shutdown()
            os._exit(0)
        workers.append(pid)
    for pid in workers:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    faultlens.shutdown()
    print("workers", *workers)
"""
)

POOL = (
    COMMON
    + """
    count_one_of_each("parent")
    count_one_of_each("parent")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pids = pool.map(count_one_of_each, ["a", "b", "c", "d"], chunksize=1)
        pool.close()
        pool.join()  # the workers exit through os._exit: faultlens's finalizer exports
    faultlens.shutdown()
    print("workers", *sorted(set(pids)))
"""
)


def run(script: str, receiver: Receiver, protocol: str = "http/protobuf", **env: str) -> list[int]:
    url = receiver.grpc_url if protocol == "grpc" else receiver.url
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), url, protocol],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("workers")][-1]
    return [int(p) for p in line.split()[1:]]


def lbl(**kv: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(kv.items()))


def assert_each_count_reported_once(receiver: Receiver, processes: int, calls: int) -> None:
    """``calls`` rounds of count_one_of_each ran in all, over ``processes`` processes."""
    # one instance for each process that counted (an idle pool worker reports only the
    # breaker's state gauges, which every instance reports)
    counted = receiver.by_instance("faultlens.errors")
    assert len(counted) == processes, receiver.resources
    errors = receiver.totals("faultlens.errors")  # the failing call, the recovered primary
    assert sorted(dict(k)["code"] for k in errors) == ["NET_CONNECTION_FAILED", "VAL_INVALID_VALUE"]
    assert set(errors.values()) == {calls}, errors
    retry = receiver.totals("faultlens.retry.calls")
    assert retry == {lbl(operation="flaky", outcome="success_after_retry"): calls}
    attempts = receiver.totals("faultlens.retry.attempts")
    assert sum(attempts.values()) == calls, attempts  # a synchronous counter: SDK storage
    backoff = receiver.totals("faultlens.retry.backoff.duration")
    assert sum(backoff.values()) == calls, backoff  # a histogram (its count)
    assert receiver.totals("faultlens.circuit_breaker.calls") == {
        lbl(breaker="dep", outcome="success"): calls
    }
    actions = receiver.totals("faultlens.recovery.actions")
    assert sum(v for k, v in actions.items() if ("outcome", "recovered") in k) == calls, actions
    dropped = receiver.totals("faultlens.internal.dropped")
    assert dropped == {lbl(reason="queue_full"): calls}, dropped


def test_pre_fork_workers_report_only_their_own_counts(receiver):
    workers = run(PRE_FORK, receiver)
    # master: 2 rounds, each worker: 1 round; each exported under its own instance
    assert_each_count_reported_once(receiver, processes=3, calls=4)
    per_instance = receiver.by_instance("faultlens.errors")
    # two errors a round (the failing call, the recovered primary): 1 round per worker
    assert sorted(sum(v.values()) for v in per_instance.values()) == [2, 2, 4]
    pids = {res["process.pid"] for res in receiver.resources.values()}
    assert set(workers) <= pids  # each worker's resource names its own pid
    # Each process exports over its own connections: a keep-alive socket inherited from the
    # master and used by both would interleave their requests and responses.
    conns = [receiver.connections[pid] for pid in pids]
    assert all(conns) and sum(map(len, conns)) == len(set().union(*conns)), conns
    assert receiver.corrupt == 0


def test_fork_pool_workers_report_only_their_own_counts(receiver):
    workers = run(POOL, receiver)
    assert_each_count_reported_once(receiver, processes=1 + len(workers), calls=6)
    assert receiver.corrupt == 0


def test_over_grpc_pre_fork_workers_export_their_own_counts_on_their_own_channels(
    grpc_receiver,
):
    # Each worker builds its own exporter (and gRPC channel) on its first export; the
    # master's is never used or closed in a worker. (grpcio 1.85 happens to reconnect an
    # inherited channel in the child too; the renewal does not depend on it.)
    workers = run(PRE_FORK, grpc_receiver, protocol="grpc")
    assert_each_count_reported_once(grpc_receiver, processes=3, calls=4)
    conns = [grpc_receiver.connections[pid] for pid in workers]
    assert all(conns), grpc_receiver.connections


QUEUED_SPAN = """
    import os, sys
    import faultlens

    @faultlens.instrument
    def parent_fails():
        raise ValueError("in the parent")

    @faultlens.instrument
    def child_fails():
        raise ValueError("in the child")

    faultlens.configure(
        service_name="forky", endpoint=sys.argv[1], protocol="http/protobuf", journal=False
    )
    try:
        parent_fails()  # queued: the batch delay (60 s) has not passed when the fork comes
    except ValueError:
        pass
    pid = os.fork()
    if pid == 0:
        try:
            child_fails()
        except ValueError:
            pass
        faultlens.shutdown()  # exports what the child has queued
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    faultlens.shutdown()
    print("workers", pid)
"""


def test_spans_queued_in_the_parent_at_fork_are_exported_once_by_the_parent(receiver):
    (child,) = run(QUEUED_SPAN, receiver, OTEL_BSP_SCHEDULE_DELAY="60000")
    names = sorted((name, pid == child) for name, _inst, pid in receiver.spans)
    assert names == [("child_fails", True), ("parent_fails", False)], receiver.spans
    instances = {inst for _name, inst, _pid in receiver.spans}
    assert len(instances) == 2 and "" not in instances


APP_OWNED = """
    import os, sys
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    import faultlens
    from faultlens.capture import count_dropped

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))  # the app's own
    faultlens.configure(service_name="app", exporter="none", journal=False)

    @faultlens.instrument
    def fails():
        raise ValueError("bad")

    @faultlens.retry(attempts=1)
    def once():
        return 1

    breaker = faultlens.CircuitBreaker("dep")

    def points():
        out = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in m.data.data_points:
                        out[(m.name, tuple(sorted(p.attributes.items())))] = p.value
        return out

    def round_():
        try:
            fails()
        except ValueError:
            pass
        once()
        breaker.call(lambda: 1)
        count_dropped("rate_limited")

    for _ in range(3):
        round_()
    parent = points()
    pid = os.fork()
    if pid == 0:
        round_()
        child = points()
        ok = all(
            child[k] == 1 for k in child
            if k[0] in ("faultlens.errors", "faultlens.retry.calls",
                        "faultlens.circuit_breaker.calls", "faultlens.internal.dropped")
        )
        print("child", sorted(child.items()), flush=True)
        os._exit(0 if ok else 3)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print("parent", sorted(parent.items()))
    print("workers", code)
"""


def test_with_the_apps_own_provider_faultlens_restarts_its_own_tallies_in_the_child(receiver):
    # The application owns the provider (and its fork behaviour); faultlens's own tallies,
    # reported through observable instruments, restart in the child all the same.
    (code,) = run(APP_OWNED, receiver)
    assert code == 0


EXPORT_IN_FLIGHT = """
    import os, sys, threading, time
    from opentelemetry import metrics
    import faultlens

    faultlens.configure(
        service_name="forky", endpoint=sys.argv[1], protocol="http/protobuf",
        metrics_interval=0.2, journal=False,
    )
    (reader,) = metrics.get_meter_provider()._metric_readers
    held, release = threading.Event(), threading.Event()

    def export_under_way():  # the parent's reader thread, mid-export when the fork comes
        with reader._export_lock:
            held.set()
            release.wait()

    threading.Thread(target=export_under_way, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        try:
            faultlens.record_error(ValueError("in the child"))
        finally:
            faultlens.shutdown(timeout=3)  # the final export needs the lock
        os._exit(0)
    release.set()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    faultlens.shutdown()
    print("workers", pid)
"""


def test_a_child_forked_during_a_metric_export_still_exports_its_own(receiver):
    # The SDK's reader restarts its thread in the child but keeps its export lock, which the
    # parent's exporting thread held at fork time: unrenewed, the child never exported again.
    run(EXPORT_IN_FLIGHT, receiver)
    errors = receiver.totals("faultlens.errors")
    assert list(errors.values()) == [1], errors  # the child's, exported by the child
