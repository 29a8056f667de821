"""@retry honours a server's Retry-After (and any exception's ``retry_after``).

A real HTTP server on 127.0.0.1 answers with a scripted sequence of statuses and headers;
real httpx and requests clients call it and ``raise_for_status()``. ``no_sleep()`` (the
``slept`` fixture) turns the waits into virtual time, so the tests see exactly what would
have been slept without sleeping it; one test sleeps for real to prove the end-to-end wait.

The rule: a retryable failure that asks for a wait is retried no sooner than asked, even
above ``wait_max``; the call waits that long only up to the deadline (or, without one, up
to ``max(wait_max, RETRY_AFTER_MAX)``) and otherwise gives up at once as ``exhausted``;
values that are not a valid wait are ignored and the normal backoff applies.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from faultlens.capture import get_tracer
from faultlens.resilience import retry, retrying
from faultlens.resilience._retry import RETRY_AFTER_MAX

# -- a scripted local HTTP server -----------------------------------------------------------


class Script:
    """The answers the server gives, in order (the last one repeats), and when it got each
    request (``time.monotonic()``)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = [(200, {})]
        self.hits: list[float] = []
        self.lock = threading.Lock()

    def play(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)

    def next(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.hits.append(time.monotonic())
            index = min(len(self.hits), len(self.answers)) - 1
            return self.answers[index]


class Server:
    def __init__(self, script: Script, url: str) -> None:
        self.script = script
        self.url = url

    def play(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.script.play(*answers)

    @property
    def requests(self) -> int:
        return len(self.script.hits)


@pytest.fixture
def server() -> Iterator[Server]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers = script.next()
            body = b"ok" if status == 200 else b"slow down"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Server(script, f"http://127.0.0.1:{httpd.server_address[1]}/quota")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def throttled(retry_after: str, status: int = 429) -> tuple[int, dict[str, str]]:
    return status, {"Retry-After": retry_after}


OK: tuple[int, dict[str, str]] = (200, {})


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        yield s


def get_httpx(client: httpx.Client, url: str) -> str:
    response = client.get(url)
    response.raise_for_status()
    return response.text


def get_requests(session: requests.Session, url: str) -> str:
    response = session.get(url, timeout=10)
    response.raise_for_status()
    return response.text


def outcomes(cap, operation: str) -> dict[str, float]:
    return {
        p.attributes["outcome"]: p.value
        for p in cap.metric_points("faultlens.retry.calls")
        if p.attributes["operation"] == operation
    }


# -- the server's Retry-After is waited out, through real clients ----------------------------


def test_httpx_429_with_retry_after_is_retried_after_the_requested_wait(server, http, cap, slept):
    server.play(throttled("1"), OK)

    @retry  # the defaults: 3 attempts, 0.1 s .. 5 s backoff, retry what the catalog says
    def fetch() -> str:
        return get_httpx(http, server.url)

    with get_tracer().start_as_current_span("job"):  # retry events go on the current span
        assert fetch() == "ok"
    assert server.requests == 2
    assert slept.delays == [1.0]  # not the 0.1 .. 0.2 s backoff: the server said 1 s
    assert outcomes(cap, "fetch") == {"success_after_retry": 1}
    # the chosen wait is what the backoff histogram and the retry event report
    (backoff,) = cap.metric_points("faultlens.retry.backoff.duration")
    assert (backoff.value.count, backoff.value.sum) == (1, 1.0)
    ((_, event),) = cap.events("faultlens.retry")
    assert event.attributes["faultlens.retry.delay"] == 1.0


def test_requests_429_with_retry_after_is_retried_after_the_requested_wait(
    server, session, cap, slept
):
    server.play(throttled("1"), OK)

    @retry
    def fetch() -> str:
        return get_requests(session, server.url)

    assert fetch() == "ok"
    assert server.requests == 2
    assert slept.delays == [1.0]
    assert outcomes(cap, "fetch") == {"success_after_retry": 1}


def test_async_httpx_client_and_async_retry(server, cap, slept):
    server.play(throttled("2"), throttled("1"), OK)

    @retry(attempts=3)
    async def fetch() -> str:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            response = await client.get(server.url)
            response.raise_for_status()
            return response.text

    assert asyncio.run(fetch()) == "ok"
    assert slept.delays == [2.0, 1.0]
    assert outcomes(cap, "fetch") == {"success_after_retry": 1}


def test_attempt_loop_honours_retry_after_too(server, session, slept):
    server.play(throttled("3"), OK)

    for attempt in retrying(attempts=2, operation="sync_quota"):
        with attempt:
            text = get_requests(session, server.url)

    assert text == "ok"
    assert slept.delays == [3.0]


def test_503_with_retry_after_is_honoured_like_429(server, http, slept):
    server.play(throttled("2", status=503), OK)

    assert retry(lambda: get_httpx(http, server.url))() == "ok"
    assert slept.delays == [2.0]


def test_the_wait_is_real_without_no_sleep(server, http):
    """End to end, no virtual clock: the second request reaches the server >= 1 s later."""
    server.play(throttled("1"), OK)

    assert retry(lambda: get_httpx(http, server.url))() == "ok"
    first, second = server.script.hits
    assert second - first >= 1.0


def test_retry_after_as_an_http_date(server, http, slept):
    server.play(throttled(formatdate(time.time() + 30, usegmt=True)), OK)

    assert retry(lambda: get_httpx(http, server.url))() == "ok"
    (delay,) = slept.delays
    assert 28.0 <= delay <= 30.0  # the date has one-second resolution


def test_an_http_date_in_the_past_asks_for_no_extra_wait(server, http, slept):
    server.play(throttled(formatdate(time.time() - 3600, usegmt=True)), OK)

    fetch = retry(wait_initial=0.1, wait_jitter=False)(lambda: get_httpx(http, server.url))
    assert fetch() == "ok"
    assert slept.delays == [0.1]  # the normal backoff


def test_a_wait_above_wait_max_is_still_honoured(server, http, slept):
    server.play(throttled("20"), OK)

    fetch = retry(wait_max=1.0)(lambda: get_httpx(http, server.url))
    assert fetch() == "ok"
    assert slept.delays == [20.0]  # retrying after 1 s would only be refused again


def test_the_backoff_wins_when_it_is_longer_than_retry_after(server, http, slept):
    server.play(throttled("0"), throttled("1"), OK)

    fetch = retry(attempts=3, wait_initial=2.0, wait_max=2.0, wait_jitter=False)(
        lambda: get_httpx(http, server.url)
    )
    assert fetch() == "ok"
    assert slept.delays == [2.0, 2.0]


# -- the cap: the deadline, else max(wait_max, RETRY_AFTER_MAX) --------------------------------


def test_retry_after_beyond_the_deadline_gives_up_at_once_without_sleeping(
    server, http, cap, slept
):
    server.play(throttled("10"), OK)
    fetch = retry(timeout=5.0, operation="quota")(lambda: get_httpx(http, server.url))

    with get_tracer().start_as_current_span("job"), pytest.raises(httpx.HTTPStatusError) as info:
        fetch()

    assert info.value.response.status_code == 429  # the server's answer itself, unchanged
    assert server.requests == 1
    assert slept.delays == []
    assert outcomes(cap, "quota") == {"exhausted": 1}
    ((_, event),) = cap.events("faultlens.retry")
    assert event.attributes["faultlens.retry.outcome"] == "exhausted"
    assert cap.metric_points("faultlens.retry.backoff.duration") == []


def test_retry_after_within_a_long_deadline_is_honoured_beyond_the_default_cap(
    server, session, slept
):
    server.play(throttled("120"), OK)

    fetch = retry(timeout=300.0)(lambda: get_requests(session, server.url))
    assert fetch() == "ok"
    assert slept.delays == [120.0]  # the deadline is the caller's own statement of patience


def test_without_a_deadline_retry_after_is_honoured_up_to_the_cap(server, http, slept):
    assert RETRY_AFTER_MAX == 60.0
    server.play(throttled("60"), OK)

    assert retry(lambda: get_httpx(http, server.url))() == "ok"
    assert slept.delays == [60.0]


def test_without_a_deadline_a_longer_retry_after_gives_up_at_once(server, http, cap, slept):
    server.play(throttled("61"), OK)
    fetch = retry(operation="quota")(lambda: get_httpx(http, server.url))

    with pytest.raises(httpx.HTTPStatusError):
        fetch()

    assert server.requests == 1
    assert slept.delays == []
    assert outcomes(cap, "quota") == {"exhausted": 1}


def test_a_longer_wait_max_raises_the_cap(server, http, slept):
    server.play(throttled("120"), OK)

    assert retry(wait_max=300.0)(lambda: get_httpx(http, server.url))() == "ok"
    assert slept.delays == [120.0]


def test_a_huge_retry_after_never_blocks(server, session, slept):
    server.play(throttled("9" * 40), OK)  # 1e40 seconds

    with pytest.raises(requests.HTTPError):
        retry(lambda: get_requests(session, server.url))()
    assert slept.delays == []
    assert server.requests == 1


# -- values that are not a wait are ignored --------------------------------------------------


@pytest.mark.parametrize("value", ["-5", "NaN", "inf", "soon", "1.5e3", "", "0x10", "Tue, 99"])
def test_a_retry_after_that_is_not_a_valid_wait_is_ignored(server, http, slept, value):
    server.play(throttled(value), OK)

    fetch = retry(wait_initial=0.1, wait_jitter=False)(lambda: get_httpx(http, server.url))
    assert fetch() == "ok"
    assert slept.delays == [0.1]  # the normal backoff, as if there were no header


class Throttled(ConnectionError):
    """An application's own exception that says how long to wait."""

    def __init__(self, retry_after: object) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


class HostileAttribute(ConnectionError):
    @property
    def retry_after(self) -> float:
        raise RuntimeError("a property that raises")


def test_an_exception_retry_after_attribute_is_honoured(slept):
    failures = [Throttled(2.5)]

    @retry
    def call() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert call() == "ok"
    assert slept.delays == [2.5]


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -1.0, -1, "5", b"5", True, 10**400, object()],
    ids=["nan", "inf", "negative", "negative-int", "str", "bytes", "bool", "int-overflow", "obj"],
)
def test_a_hostile_retry_after_attribute_is_ignored(slept, value):
    failures = [Throttled(value)]

    @retry(wait_initial=0.1, wait_jitter=False)
    def call() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert call() == "ok"
    assert slept.delays == [0.1]


def test_a_retry_after_property_that_raises_is_ignored_and_never_reaches_the_caller(slept):
    failures = [HostileAttribute("down")]

    @retry(wait_initial=0.1, wait_jitter=False)
    def call() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert call() == "ok"
    assert slept.delays == [0.1]


# -- Retry-After never makes a failure retryable ---------------------------------------------


def test_retry_after_on_a_non_retryable_answer_is_not_retried(server, http, cap, slept):
    server.play((404, {"Retry-After": "1"}), OK)
    fetch = retry(operation="lookup")(lambda: get_httpx(http, server.url))

    with pytest.raises(httpx.HTTPStatusError):
        fetch()
    assert server.requests == 1
    assert slept.delays == []
    assert outcomes(cap, "lookup") == {"non_retryable": 1}


def test_on_still_decides_what_is_retried(server, session, slept):
    server.play(throttled("1"), OK)
    fetch = retry(on=ConnectionError)(lambda: get_requests(session, server.url))

    with pytest.raises(requests.HTTPError):
        fetch()
    assert server.requests == 1
