"""Built-in rules for popular libraries' exceptions: matched by qualified class name, so the
libraries are never imported by faultlens, subclasses are covered through the MRO, and the
application's own rules always win."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import requests
import urllib3

import faultlens
from faultlens import classify
from faultlens.errors import catalog
from faultlens.errors._library_rules import LIBRARY_CODES, LIBRARY_SOURCE, retry_after_of


@pytest.fixture(autouse=True)
def _fresh_catalog():
    catalog.reset()
    yield
    catalog.reset()


def lookalike(qualified: str, *bases: type[BaseException], **attrs):
    """A class named like a library's (module + qualname): what the rules see."""
    module, _, name = qualified.rpartition(".")
    return type(name, bases or (Exception,), {"__module__": module, **attrs})


def _req() -> httpx.Request:
    return httpx.Request("GET", "http://127.0.0.1:9/x")


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (httpx.ConnectError("refused"), "NET_CONNECTION_FAILED", True),
        (httpx.ConnectTimeout("slow"), "EXE_TIMEOUT", True),
        (httpx.ReadTimeout("slow"), "EXE_TIMEOUT", True),
        (httpx.RemoteProtocolError("peer closed"), "NET_CONNECTION_FAILED", True),
        (httpx.InvalidURL("bad"), "VAL_INVALID_VALUE", False),
        (requests.exceptions.ConnectionError("refused"), "NET_CONNECTION_FAILED", True),
        # ConnectTimeout is both a ConnectionError and a Timeout: the timeout wins
        (requests.exceptions.ConnectTimeout("slow"), "EXE_TIMEOUT", True),
        (requests.exceptions.ReadTimeout("slow"), "EXE_TIMEOUT", True),
        (requests.exceptions.SSLError("cert"), "NET_TLS_FAILED", False),
        (requests.exceptions.MissingSchema("no scheme"), "VAL_INVALID_VALUE", False),
        (urllib3.exceptions.NewConnectionError(None, "refused"), "NET_CONNECTION_FAILED", True),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "slow"), "EXE_TIMEOUT", True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_http_client_failures_are_classified_out_of_the_box(exc, code, retryable):
    info = classify(exc)
    assert (info.code, info.retryable) == (code, retryable)


def test_urllib3_max_retry_error_is_classified_by_its_reason():
    timeout = urllib3.exceptions.MaxRetryError(
        None, "/", urllib3.exceptions.ConnectTimeoutError(None, "slow")
    )
    refused = urllib3.exceptions.MaxRetryError(
        None, "/", urllib3.exceptions.NewConnectionError(None, "refused")
    )
    assert classify(timeout).code == "EXE_TIMEOUT"
    assert classify(refused).code == "NET_CONNECTION_FAILED"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (503, "NET_DEPENDENCY_ERROR", True),
        (500, "NET_DEPENDENCY_ERROR", True),
        (429, "NET_RATE_LIMITED", True),
        (404, "NET_REQUEST_REJECTED", False),
    ],
)
def test_status_errors_from_httpx_and_requests_by_status(status, code, retryable):
    response = httpx.Response(status, request=_req())
    hx = httpx.HTTPStatusError("bad status", request=_req(), response=response)
    rq_response = requests.models.Response()
    rq_response.status_code = status
    rq = requests.exceptions.HTTPError("bad status", response=rq_response)
    for exc in (hx, rq):
        info = classify(exc)
        assert (info.code, info.retryable) == (code, retryable), exc


def test_retry_after_is_read_from_the_response_seconds_or_http_date():
    r = httpx.Response(429, request=_req(), headers={"Retry-After": "7"})
    assert retry_after_of(httpx.HTTPStatusError("x", request=_req(), response=r)) == 7.0
    dated = httpx.Response(
        503, request=_req(), headers={"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}
    )
    exc = httpx.HTTPStatusError("x", request=_req(), response=dated)
    assert retry_after_of(exc, now=1445412500.0) == pytest.approx(10.0)
    assert retry_after_of(exc, now=1445412600.0) == 0.0  # in the past: now
    bad = httpx.Response(503, request=_req(), headers={"Retry-After": "soon"})
    assert retry_after_of(httpx.HTTPStatusError("x", request=_req(), response=bad)) is None
    assert retry_after_of(ValueError("no response")) is None


@pytest.mark.parametrize(
    ("name", "bases", "attrs", "code"),
    [
        ("sqlalchemy.exc.OperationalError", (), {}, "DB_OPERATIONAL_ERROR"),
        ("sqlalchemy.exc.IntegrityError", (), {}, "DB_INTEGRITY_ERROR"),
        ("sqlalchemy.exc.TimeoutError", (), {}, "EXE_TIMEOUT"),
        ("psycopg.OperationalError", (), {}, "DB_OPERATIONAL_ERROR"),
        ("psycopg2.IntegrityError", (), {}, "DB_INTEGRITY_ERROR"),
        ("redis.exceptions.ConnectionError", (), {}, "NET_CONNECTION_FAILED"),
        ("redis.exceptions.TimeoutError", (), {}, "EXE_TIMEOUT"),
        ("aiohttp.client_exceptions.ClientConnectorError", (), {}, "NET_CONNECTION_FAILED"),
        ("aiohttp.client_exceptions.ServerTimeoutError", (), {}, "EXE_TIMEOUT"),
        (
            "aiohttp.client_exceptions.ClientResponseError",
            (),
            {"status": 502},
            "NET_DEPENDENCY_ERROR",
        ),
        ("botocore.exceptions.EndpointConnectionError", (), {}, "NET_CONNECTION_FAILED"),
    ],
)
def test_database_cache_and_cloud_libraries_by_class_name(name, bases, attrs, code):
    cls = lookalike(name, *bases, **attrs)
    assert classify(cls("boom")).code == code
    assert catalog.source_of(code) in (LIBRARY_SOURCE, "built-in")


def test_subclasses_are_covered_through_the_mro():
    integrity = lookalike("psycopg.IntegrityError")
    unique = lookalike("psycopg.errors.UniqueViolation", integrity)
    assert classify(unique("duplicate key")).code == "DB_INTEGRITY_ERROR"
    operational = lookalike("sqlalchemy.exc.OperationalError")
    assert classify(operational("server closed the connection")).retryable is True


def test_botocore_throttling_is_retryable_and_other_client_errors_by_status():
    client_error = lookalike("botocore.exceptions.ClientError")

    def boto(code: str, status: int):
        exc = client_error(f"An error occurred ({code})")
        exc.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return exc

    throttled = classify(boto("ThrottlingException", 400))
    assert (throttled.code, throttled.retryable) == ("NET_RATE_LIMITED", True)
    assert classify(boto("SlowDown", 503)).code == "NET_RATE_LIMITED"
    assert classify(boto("InternalError", 500)).code == "NET_DEPENDENCY_ERROR"
    assert classify(boto("AccessDenied", 403)).code == "EXE_PERMISSION_DENIED"
    assert classify(boto("ValidationException", 400)).code == "NET_REQUEST_REJECTED"


def test_a_rule_reading_attributes_never_breaks_classification():
    client_error = lookalike("botocore.exceptions.ClientError")

    class Hostile(client_error):  # type: ignore[misc, valid-type]
        @property
        def response(self):
            raise RuntimeError("no")

    hostile = lookalike("botocore.exceptions.ClientError", Hostile)
    assert classify(hostile("x")).code == "SYS_UNKNOWN_ERROR"


def test_user_rules_and_user_codes_win_over_library_rules():
    faultlens.catalog.register("PAYMENTS_DOWN", category="network", retryable=True)
    faultlens.catalog.rule(httpx.ConnectError, "PAYMENTS_DOWN")
    assert classify(httpx.ConnectError("refused")).code == "PAYMENTS_DOWN"
    # a user catalog may redefine a library code (its own meaning wins; no error)
    faultlens.catalog.register("DB_INTEGRITY_ERROR", category="validation", severity="high")
    assert faultlens.catalog["DB_INTEGRITY_ERROR"].severity == "high"


def test_library_codes_are_in_the_catalog_and_listed_by_faultlens_codes():
    codes = {s.code for s in LIBRARY_CODES}
    assert codes <= {s.code for s in catalog}
    out = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "codes", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if out.returncode != 0 or not out.stdout.strip().startswith("{"):
        out = subprocess.run(
            [sys.executable, "-c", "from faultlens.cli import main; main(['codes', '--json'])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    assert "NET_RATE_LIMITED" in out.stdout and "DB_OPERATIONAL_ERROR" in out.stdout, out.stderr


def test_classifying_never_imports_the_libraries():
    code = (
        "import sys, faultlens\n"
        "faultlens.classify(ConnectionError('x'))\n"
        "loaded = [m for m in ('httpx','requests','urllib3','aiohttp','sqlalchemy','psycopg',"
        "'psycopg2','redis','botocore','fastapi','starlette','flask','werkzeug','django')"
        " if m in sys.modules]\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_framework_exceptions_that_answer_the_client_are_told_apart_from_failures():
    import django.core.exceptions
    import django.http
    import fastapi
    import werkzeug.exceptions
    from fastapi.exceptions import RequestValidationError

    from faultlens.errors._library_rules import is_http_answer

    assert is_http_answer(fastapi.HTTPException(404))
    assert is_http_answer(RequestValidationError([]))
    assert is_http_answer(werkzeug.exceptions.Forbidden())
    assert is_http_answer(django.http.Http404("x"))
    assert is_http_answer(django.core.exceptions.PermissionDenied())
    assert not is_http_answer(fastapi.HTTPException(503))  # a 5xx reports a failure
    assert not is_http_answer(werkzeug.exceptions.InternalServerError())
    assert not is_http_answer(ValueError("x"))


def test_grpc_errors_by_their_status_code():
    import grpc
    from grpc.aio import AioRpcError, Metadata

    def rpc(code):
        return AioRpcError(code, Metadata(), Metadata(), details="x")

    assert classify(rpc(grpc.StatusCode.UNAVAILABLE)).code == "NET_CONNECTION_FAILED"
    assert classify(rpc(grpc.StatusCode.DEADLINE_EXCEEDED)).code == "EXE_TIMEOUT"
    assert classify(rpc(grpc.StatusCode.RESOURCE_EXHAUSTED)).retryable is True
    assert classify(rpc(grpc.StatusCode.INVALID_ARGUMENT)).code == "NET_REQUEST_REJECTED"
    assert classify(rpc(grpc.StatusCode.CANCELLED)).code == "SYS_UNKNOWN_ERROR"  # no opinion


def test_sqlite_and_other_database_drivers():
    import sqlite3

    assert classify(sqlite3.OperationalError("database is locked")).code == "DB_OPERATIONAL_ERROR"
    # a missing table is a bug: not retried as if transient
    assert classify(sqlite3.OperationalError("no such table: jobs")).retryable is False
    assert classify(sqlite3.IntegrityError("UNIQUE constraint failed")).code == "DB_INTEGRITY_ERROR"
    for name, code in (
        ("asyncpg.exceptions.DeadlockDetectedError", "DB_OPERATIONAL_ERROR"),
        ("pymysql.err.OperationalError", "DB_OPERATIONAL_ERROR"),
        ("pymongo.errors.DuplicateKeyError", "DB_INTEGRITY_ERROR"),
        ("pymongo.errors.ServerSelectionTimeoutError", "NET_CONNECTION_FAILED"),
    ):
        assert classify(lookalike(name)("x")).code == code, name
