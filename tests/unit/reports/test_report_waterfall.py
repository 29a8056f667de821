"""`faultlens report --jaeger-url`: each top error's sample trace, fetched from Jaeger's
HTTP API (``GET /api/traces/{id}``), drawn in the self-contained HTML as a waterfall.

A real HTTP server on 127.0.0.1 plays Jaeger: it answers Jaeger-shaped JSON built here
(nested spans, an exception event, hostile span names), or hangs, or answers 404, a
redirect, or something that is not JSON. The report never hangs on it, never fails
because of it, shows why a trace is missing, and never carries HTML from a span name or
the URL's credentials. Headless Chromium renders and screenshots the page.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import faultlens
from faultlens.cli import main as cli_main
from faultlens.journal import read_records
from faultlens.reports import write_report
from faultlens.reports._waterfall import (
    MAX_ROWS,
    fetch_traces,
    parse_trace,
    render_waterfall,
)
from support.ci import missing_component

HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
T0 = 1_700_000_000_000_000  # µs


def jaeger_trace(trace_id: str, *, error_span: str = "00000000000000e2") -> dict[str, Any]:
    """A Jaeger v2 query API answer: web GET /render -> worker render (raises) ->
    ffmpeg (hostile name); web -> db query."""

    def span(
        sid: str, name: str, parent: str | None, start: int, dur: int, proc: str, **kw: Any
    ) -> dict[str, Any]:
        return {
            "traceID": trace_id,
            "spanID": sid,
            "operationName": name,
            "references": (
                [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent}] if parent else []
            ),
            "startTime": T0 + start,
            "duration": dur,
            "tags": kw.get("tags", []),
            "logs": kw.get("logs", []),
            "processID": proc,
            "warnings": None,
        }

    return {
        "data": [
            {
                "traceID": trace_id,
                "spans": [
                    # out of order on purpose: Jaeger does not sort them
                    span("00000000000000e3", HOSTILE, error_span, 60_000, 30_000, "p2"),
                    span("00000000000000e1", "GET /render", None, 0, 250_000, "p1"),
                    span("00000000000000e4", "db query", "00000000000000e1", 200_000, 20_000, "p1"),
                    span(
                        error_span,
                        "render",
                        "00000000000000e1",
                        50_000,
                        120_000,
                        "p2",
                        tags=[{"key": "otel.status_code", "type": "string", "value": "ERROR"}],
                        logs=[
                            {
                                "timestamp": T0 + 150_000,
                                "fields": [
                                    {"key": "event", "type": "string", "value": "exception"},
                                    {
                                        "key": "exception.type",
                                        "type": "string",
                                        "value": "ValueError",
                                    },
                                    {
                                        "key": "exception.message",
                                        "type": "string",
                                        "value": HOSTILE,
                                    },
                                ],
                            }
                        ],
                    ),
                ],
                "processes": {
                    "p1": {"serviceName": "web", "tags": []},
                    "p2": {"serviceName": "<b>worker</b>", "tags": []},
                },
                "warnings": None,
            }
        ],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }


class FakeJaeger:
    """A real HTTP server on 127.0.0.1 with Jaeger's trace endpoint; ``answer(trace_id)``
    returns ``(status, body)`` or ``"hang"``."""

    def __init__(self, answer: Callable[[str], tuple[int, bytes] | str]) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization)
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Authorization")))
                m = re.fullmatch(r"/api/traces/([0-9a-f]{32})", self.path)
                got = outer.answer(m.group(1)) if m else (404, b"{}")
                if got == "hang":
                    outer.release.wait(30)
                    return
                if got == "trickle":  # a byte every 0.1 s, never the whole body
                    self.send_response(200)
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    while not outer.release.wait(0.1):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    return
                assert not isinstance(got, str)
                status, body = got
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.2:9/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[str], tuple[int, bytes] | str]], FakeJaeger]]:
    servers: list[FakeJaeger] = []

    def start(answer: Callable[[str], tuple[int, bytes] | str]) -> FakeJaeger:
        servers.append(FakeJaeger(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(trace_id: str) -> tuple[int, bytes]:
    return 200, json.dumps(jaeger_trace(trace_id)).encode()


TID = "0af7651916cd43dd8448eb211c80319c"
TID2 = "1af7651916cd43dd8448eb211c80319c"
TID3 = "2af7651916cd43dd8448eb211c80319c"


# --- fetching and parsing -------------------------------------------------------------


def test_a_trace_is_fetched_and_laid_out_parent_first_children_by_start(serve: Any) -> None:
    jaeger = serve(ok)
    got = fetch_traces(jaeger.url, [TID])[TID]
    assert not isinstance(got, str), got
    assert jaeger.requests == [(f"/api/traces/{TID}", None)]
    assert [(s.name, s.depth) for s in got.spans] == [
        ("GET /render", 0),
        ("render", 1),
        (HOSTILE, 2),
        ("db query", 1),
    ]
    assert got.duration_us == 250_000
    render = got.spans[1]
    assert render.error and render.service == "<b>worker</b>"
    assert render.start_us == 50_000 and render.duration_us == 120_000
    (event,) = render.events
    assert event.exception and event.offset_us == 150_000
    assert event.text.startswith("ValueError: <script>")
    assert not got.spans[0].error and not got.spans[3].error


def test_the_waterfall_highlights_the_errors_span_and_the_exception_where_it_happened() -> None:
    wf = parse_trace(jaeger_trace(TID), TID)
    page = render_waterfall(wf, span_id="00000000000000e2")
    focus = re.findall(r'<div class="wf-row([^"]*)" data-span-id="([0-9a-f]+)"', page)
    assert focus == [
        ("", "00000000000000e1"),
        (" wf-error wf-focus", "00000000000000e2"),
        ("", "00000000000000e3"),
        ("", "00000000000000e4"),
    ]
    # bars scaled to the trace: render starts at 20% and lasts 48%; exception at 60%
    assert 'style="left:20.000%;width:48.000%"' in page
    assert '<i class="wf-exc" style="left:60.000%"' in page
    # durations as text, the trace's duration on the axis
    assert ">120 ms<" in page and ">250 ms<" in page and ">30 ms<" in page
    # depth as indentation
    assert 'data-span-id="00000000000000e3"><span class="wf-name" style="padding-left:28px"' in page


def test_without_the_span_id_the_spans_with_an_exception_event_are_highlighted() -> None:
    page = render_waterfall(parse_trace(jaeger_trace(TID), TID), span_id="ffffffffffffffff")
    assert page.count("wf-focus") == 1
    assert 'wf-focus" data-span-id="00000000000000e2"' in page


def test_span_names_services_and_event_fields_are_text_never_markup() -> None:
    page = render_waterfall(parse_trace(jaeger_trace(TID), TID), span_id=None)
    assert "<script" not in page and "<img" not in page and "<b>worker" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "&lt;b&gt;worker&lt;/b&gt;" in page


def test_a_missing_trace_a_bad_answer_and_a_refused_connection_are_reasons(serve: Any) -> None:
    answers: dict[str, tuple[int, bytes]] = {
        TID: (404, b'{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}'),
        TID2: (200, b"<html>not json</html>"),
        TID3: (200, b'{"data": [], "errors": null}'),
    }
    jaeger = serve(lambda tid: answers[tid])
    got = fetch_traces(jaeger.url, [TID, TID2, TID3])
    assert got == {
        TID: "HTTP 404 (trace not found)",
        TID2: "Jaeger's answer is not JSON",
        TID3: "trace not found",
    }
    port = jaeger.server.server_address[1]
    jaeger.close()
    refused = fetch_traces(f"http://127.0.0.1:{port}", [TID])[TID]
    assert "refused" in refused.lower()
    assert render_waterfall(refused).startswith('<p class="wf-missing muted">trace not available: ')


def test_a_hung_jaeger_costs_at_most_the_deadline(serve: Any) -> None:
    jaeger = serve(lambda tid: "hang")
    ids = [f"{i:032x}" for i in range(1, 6)]
    start = time.monotonic()
    got = fetch_traces(jaeger.url, ids, timeout=0.4, deadline=1.0)
    elapsed = time.monotonic() - start
    assert elapsed < 1.8, elapsed  # the deadline, plus a little
    assert list(got) == ids
    assert got[ids[0]] == got[ids[1]] == "timed out"  # each request: its timeout
    assert got[ids[-1]] == "deadline exceeded"  # never asked: no time left
    assert set(got.values()) == {"timed out", "deadline exceeded"}


def test_a_jaeger_that_trickles_its_answer_costs_at_most_the_deadline(serve: Any) -> None:
    jaeger = serve(lambda tid: "trickle")
    start = time.monotonic()
    got = fetch_traces(jaeger.url, [TID, TID2], timeout=0.5, deadline=1.0)
    elapsed = time.monotonic() - start
    assert elapsed < 1.8, elapsed  # each read returns what arrived; the deadline is checked
    assert got == {TID: "deadline exceeded", TID2: "deadline exceeded"}


def test_a_hung_dns_resolver_costs_at_most_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket timeout does not bound name resolution; the deadline still does. (The
    resolver is the one thing simulated here: a real hung DNS server is not at hand.)"""
    real = socket.getaddrinfo

    def hung(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    start = time.monotonic()
    got = fetch_traces("http://jaeger.invalid:16686", [TID], timeout=0.3, deadline=0.5)
    assert time.monotonic() - start < 1.2
    assert got == {TID: "deadline exceeded"}


def test_credentials_go_as_basic_auth_and_never_follow_a_redirect(serve: Any) -> None:
    jaeger = serve(lambda tid: ok(tid) if tid == TID else (302, b""))
    url = jaeger.url.replace("http://", "http://ops:s%3Acret@")
    got = fetch_traces(url, [TID, TID2])
    assert not isinstance(got[TID], str)
    assert got[TID2] == "HTTP 302"  # not followed: the header would go to another host
    expected = "Basic " + base64.b64encode(b"ops:s:cret").decode()
    assert [auth for _, auth in jaeger.requests] == [expected, expected]


def test_only_well_formed_trace_ids_are_asked_for_and_at_most_ten(serve: Any) -> None:
    jaeger = serve(ok)
    ids = ["../../admin", None, "ABC", *[f"{i:032x}" for i in range(1, 15)], f"{1:032x}"]
    got = fetch_traces(jaeger.url, ids)
    assert list(got) == [f"{i:032x}" for i in range(1, 11)]
    assert len(jaeger.requests) == 10


def test_a_huge_trace_draws_a_bounded_number_of_rows_and_keeps_the_errors_span() -> None:
    doc = jaeger_trace(TID)
    spans = doc["data"][0]["spans"]
    filler = [
        {
            "spanID": f"{i:016x}",
            "operationName": f"step {i}",
            "references": [{"refType": "CHILD_OF", "spanID": "00000000000000e1"}],
            "startTime": T0 + 1 + i,
            "duration": 5,
            "processID": "p1",
        }
        for i in range(1000, 1000 + 3 * MAX_ROWS)
    ]
    doc["data"][0]["spans"] = spans + filler
    page = render_waterfall(parse_trace(doc, TID), span_id="00000000000000e2")
    assert page.count('class="wf-row') <= MAX_ROWS + 5
    assert 'data-span-id="00000000000000e2"' in page
    assert f"{len(spans) + len(filler) - MAX_ROWS} more spans not drawn" in page


# --- the report -----------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """A journal written by the real pipeline: two top errors, each with a trace id."""
    path = tmp_path / "journal"
    faultlens.configure(service_name="media-job", journal_path=str(path))

    @faultlens.instrument(mode="traced", stage="render")
    def render(frame: int) -> None:
        if frame % 3 == 0:
            raise TimeoutError(f"ffmpeg timed out on frame {frame}")
        raise ValueError(HOSTILE)

    for frame in range(6):
        with pytest.raises((TimeoutError, ValueError)):
            render(frame)
    faultlens.shutdown()
    return path


def sample_ids(journal: Path) -> set[str]:
    return {r["trace_id"] for r in read_records(str(journal)) if r.get("trace_id")}


def report(journal: Path, tmp_path: Path, jaeger_url: str) -> str:
    out = write_report(
        str(tmp_path / "report.html"),
        "html",
        journal_path=str(journal),
        since=None,
        jaeger_url=jaeger_url,
        embed_traces=True,
    )
    return Path(out).read_text("utf-8")


def test_the_report_embeds_each_top_errors_trace(journal: Path, tmp_path: Path, serve: Any) -> None:
    jaeger = serve(ok)
    page = report(journal, tmp_path, jaeger.url.replace("http://", "http://ops:hunter2@"))
    asked = {p.rsplit("/", 1)[1] for p, _ in jaeger.requests}
    assert asked and asked <= sample_ids(journal)
    assert page.count('<div class="waterfall"') == len(asked) == 2
    assert page.count('class="waterfall-row"') == 2
    assert 'id="trace-embeds" data-embedded="2" data-missing="0"' in page
    assert "<script" not in page and "<img" not in page
    assert "hunter2" not in page and "ops:" not in page
    assert f'href="{jaeger.url}/trace/' in page  # "open in Jaeger" without credentials


def test_an_unavailable_jaeger_is_shown_and_counted_not_raised(
    journal: Path, tmp_path: Path, serve: Any
) -> None:
    jaeger = serve(lambda tid: (404, b'{"data":null}'))
    page = report(journal, tmp_path, jaeger.url)
    assert page.count("trace not available: HTTP 404 (trace not found)") == 2
    assert 'data-embedded="0" data-missing="2"' in page
    assert "(2 not available)" in page


def test_without_embedding_nothing_is_fetched(journal: Path, tmp_path: Path, serve: Any) -> None:
    jaeger = serve(ok)
    out = write_report(
        str(tmp_path / "r.html"),
        "html",
        journal_path=str(journal),
        since=None,
        jaeger_url=jaeger.url,
    )
    assert jaeger.requests == []
    page = Path(out).read_text("utf-8")
    assert '<div class="waterfall"' not in page and 'id="trace-embeds"' not in page


def test_the_cli_embeds_when_given_jaeger_url(
    journal: Path, tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    jaeger = serve(ok)
    out = tmp_path / "cli.html"
    rc = cli_main(
        [
            "report",
            "--journal",
            str(journal),
            "--format",
            "html",
            "-o",
            str(out),
            "--since",
            "30d",
            "--jaeger-url",
            jaeger.url,
        ]
    )
    assert rc == 0, capsys.readouterr()
    assert out.read_text("utf-8").count('<div class="waterfall"') == 2


# --- in a real browser ----------------------------------------------------------------

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def run_chromium(tmp_path: Path, *args: str) -> str:
    exe = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    if exe is None:
        missing_component("headless Chromium is not installed; run `make test`, which installs it")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    proc = subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_waterfall_in_chromium(journal: Path, tmp_path: Path, serve: Any) -> None:
    jaeger = serve(ok)
    page = tmp_path / "report.html"
    report(journal, tmp_path, jaeger.url)
    jaeger.close()  # the page must not need Jaeger (nor anything else) to render

    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.count('<div class="waterfall"') == 2
    assert dom.count('class="wf-row wf-error wf-focus"') == 2
    assert "<script" not in dom and "<img" not in dom
    assert "<title>faultlens error report</title>" in dom

    shot = tmp_path / "waterfall.png"
    run_chromium(tmp_path, "--window-size=1280,2200", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000, "a blank page is a few KB"
    keep = os.environ.get("KEEP_WATERFALL_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
