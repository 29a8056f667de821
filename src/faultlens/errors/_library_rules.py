"""Built-in rules for popular libraries' exceptions, matched by qualified class name.

faultlens never imports these libraries: a rule names a class as ``module.QualName`` (the
name its ``__module__`` and ``__qualname__`` give, which is what a traceback shows), and
classification compares the names along the exception's MRO, so subclasses are covered
(``psycopg.errors.UniqueViolation`` is an ``IntegrityError``) and an application that never
installed the library pays nothing.

Where the class alone does not say enough (an HTTP status error, a botocore ``ClientError``),
a rule reads the exception's attributes by duck typing: a status code, a response's headers,
an AWS error code. Such a rule may answer "no opinion" (None): the MRO walk then goes on to
the base classes.

The order inside one exception's MRO is what decides: the most specific class with a rule
wins, whether that rule is a built-in type rule (``TimeoutError``) or a library rule. User
rules (``faultlens.catalog.rule``, catalog YAML ``rules:``) are tried before all of them.

Codes added for these rules are listed by ``faultlens codes`` with the source
``built-in (libraries)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ._types import CodeSpec, Severity

__all__ = [
    "LIBRARY_CODES",
    "LIBRARY_RULES",
    "LIBRARY_SOURCE",
    "class_name",
    "http_status_of",
    "is_http_answer",
    "library_code",
    "retry_after_of",
]

LIBRARY_SOURCE = "built-in (libraries)"

# Codes the library rules (and the web framework integrations) classify into, beyond the
# generic built-in ones. 4xx from a framework are the client's mistake: validation, low.
LIBRARY_CODES: tuple[CodeSpec, ...] = (
    CodeSpec(
        "NET_DEPENDENCY_ERROR",
        "network",
        Severity.HIGH,
        True,
        "a service this one calls answered with a server error (5xx); check that service",
        "an HTTP dependency answered 5xx",
    ),
    CodeSpec(
        "NET_RATE_LIMITED",
        "network",
        Severity.MEDIUM,
        True,
        "a dependency is throttling this service (429 / throttling); slow down or raise the "
        "quota; retries wait for its Retry-After",
        "a dependency rejected the call for rate or quota",
    ),
    CodeSpec(
        "EXE_WORKER_LOST",
        "execution",
        Severity.CRITICAL,
        False,
        "a worker process died under the task (out of memory, a crash in native code, "
        "os._exit, killed); see the worker's log and the kernel log (dmesg) for its exit",
        "a task queue's worker process died while running the task",
    ),
    CodeSpec(
        "NET_REQUEST_REJECTED",
        "network",
        Severity.MEDIUM,
        False,
        "a dependency rejected the request (4xx); check what this service sends it",
        "an HTTP dependency answered 4xx",
    ),
    CodeSpec(
        "NET_REQUEST_FAILED",
        "network",
        Severity.MEDIUM,
        False,
        "an HTTP request failed in the client library; see the exception for the reason",
        "an HTTP client error no more specific rule classifies",
    ),
    CodeSpec(
        "NET_TLS_FAILED",
        "network",
        Severity.HIGH,
        False,
        "the TLS handshake or certificate check failed; check certificates and the URL's "
        "scheme (a retry will not help)",
        "a TLS/SSL failure talking to a dependency",
    ),
    CodeSpec(
        "DB_OPERATIONAL_ERROR",
        "network",
        Severity.HIGH,
        True,
        "the database connection failed or the statement was interrupted (lost connection, "
        "lock or deadlock, failover); usually transient",
        "a database operational error",
    ),
    CodeSpec(
        "DB_INTEGRITY_ERROR",
        "validation",
        Severity.MEDIUM,
        False,
        "the data breaks a database constraint (unique, foreign key, not null); check the input",
        "a database integrity constraint was violated",
    ),
    CodeSpec(
        "HTTP_BAD_REQUEST",
        "validation",
        Severity.LOW,
        False,
        "the client sent a malformed request (400)",
        "a web framework answered 400",
    ),
    CodeSpec(
        "HTTP_UNAUTHORIZED",
        "validation",
        Severity.LOW,
        False,
        "the client is not authenticated (401)",
        "a web framework answered 401",
    ),
    CodeSpec(
        "HTTP_FORBIDDEN",
        "validation",
        Severity.LOW,
        False,
        "the client may not do this (403)",
        "a web framework answered 403",
    ),
    CodeSpec(
        "HTTP_NOT_FOUND",
        "validation",
        Severity.LOW,
        False,
        "the client asked for something that does not exist (404)",
        "a web framework answered 404",
    ),
    CodeSpec(
        "HTTP_METHOD_NOT_ALLOWED",
        "validation",
        Severity.LOW,
        False,
        "the route does not accept this method (405)",
        "a web framework answered 405",
    ),
    CodeSpec(
        "HTTP_CONFLICT",
        "validation",
        Severity.LOW,
        False,
        "the request conflicts with the current state (409)",
        "a web framework answered 409",
    ),
    CodeSpec(
        "HTTP_TOO_MANY_REQUESTS",
        "validation",
        Severity.LOW,
        False,
        "the client is being rate-limited (429)",
        "a web framework answered 429",
    ),
    CodeSpec(
        "HTTP_CLIENT_ERROR",
        "validation",
        Severity.LOW,
        False,
        "the client's request was refused (4xx)",
        "a web framework answered another 4xx",
    ),
    CodeSpec(
        "HTTP_SERVER_ERROR",
        "system",
        Severity.HIGH,
        False,
        "the application raised an HTTP error with a 5xx status; see where it was raised",
        "a web framework exception with a 5xx status",
    ),
    CodeSpec(
        "VAL_REQUEST_INVALID",
        "validation",
        Severity.LOW,
        False,
        "the request body, query or path parameters failed validation (422); see the details",
        "request validation failed",
    ),
)

Rule = str | Callable[[BaseException], str | None]

_INBOUND = {
    400: "HTTP_BAD_REQUEST",
    401: "HTTP_UNAUTHORIZED",
    403: "HTTP_FORBIDDEN",
    404: "HTTP_NOT_FOUND",
    405: "HTTP_METHOD_NOT_ALLOWED",
    409: "HTTP_CONFLICT",
    422: "VAL_REQUEST_INVALID",
    429: "HTTP_TOO_MANY_REQUESTS",
}

# botocore's own list of throttling error codes (its retry handler's), plus S3's SlowDown.
_AWS_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_AWS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def class_name(klass: type) -> str:
    """``module.QualName`` of a class, as the rules name it; "" if it cannot be read."""
    try:
        module = klass.__module__
        qualname = klass.__qualname__
    except Exception:
        return ""
    if not isinstance(module, str) or not isinstance(qualname, str):
        return ""
    return f"{module}.{qualname}"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)  # an HTTPStatus, a numeric string
    except (TypeError, ValueError, OverflowError):
        return None


def http_status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, read without importing its library:
    ``status_code`` (Starlette/FastAPI), ``code`` (Werkzeug), ``status`` (aiohttp), or its
    ``response``'s ``status_code`` / ``status`` (httpx, requests)."""
    try:
        for attr in ("status_code", "status"):
            status = _int(getattr(exc, attr, None))
            if status is not None and 100 <= status <= 599:
                return status
        response = getattr(exc, "response", None)
        if response is not None and not isinstance(response, Mapping):
            for attr in ("status_code", "status"):
                status = _int(getattr(response, attr, None))
                if status is not None and 100 <= status <= 599:
                    return status
        code = _int(getattr(exc, "code", None))
        if code is not None and 100 <= code <= 599 and _looks_like_werkzeug(exc):
            return code
    except Exception:
        return None
    return None


def _looks_like_werkzeug(exc: BaseException) -> bool:
    return any(class_name(k).startswith("werkzeug.") for k in type(exc).__mro__)


def _headers_of(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    if response is not None and not isinstance(response, Mapping):
        headers = getattr(response, "headers", None)
        if headers is not None:
            return headers
    return getattr(exc, "headers", None)


def retry_after_of(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds the server asked the client to wait (``Retry-After``: delta-seconds or an
    HTTP date) on an exception that carries a response; None when there is none or it is
    unreadable. Negative and non-finite values are refused."""
    try:
        headers = _headers_of(exc)
        if headers is None:
            return None
        value = headers.get("Retry-After") or headers.get("retry-after")
        if value is None:
            return None
        text = str(value).strip()
        if text.isdigit():
            seconds = float(text)
        else:
            # email.utils costs more to import than the rest of this layer: only when needed
            from email.utils import parsedate_to_datetime

            when = parsedate_to_datetime(text)
            if when is None:
                return None
            import time

            seconds = when.timestamp() - (time.time() if now is None else now)
            seconds = max(seconds, 0.0)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except Exception:
        return None


def _outbound_status(exc: BaseException) -> str | None:
    """A client library's "the server answered with an error status" exception."""
    status = http_status_of(exc)
    if status is None:
        return "NET_REQUEST_FAILED"
    if status == 429:
        return "NET_RATE_LIMITED"
    if status >= 500:
        return "NET_DEPENDENCY_ERROR"
    if status >= 400:
        return "NET_REQUEST_REJECTED"
    return "NET_REQUEST_FAILED"


def _inbound_status(exc: BaseException) -> str | None:
    """A web framework's HTTP exception (``abort(404)``, ``HTTPException(403)``)."""
    status = http_status_of(exc)
    if status is None:
        return None
    if status >= 500:
        return "HTTP_SERVER_ERROR"
    if status >= 400:
        return _INBOUND.get(status, "HTTP_CLIENT_ERROR")
    return None  # a redirect or success raised as an exception: no opinion


def _urllib3_max_retry(exc: BaseException) -> str | None:
    """``MaxRetryError`` wraps the last failure in ``reason``: classify by that."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException) and reason is not exc:
        for klass in type(reason).__mro__:
            if LIBRARY_RULES.get(class_name(klass)) is _urllib3_max_retry:
                break  # a retry error wrapping a retry error: no loop
            code = library_code(klass, reason)
            if code is not None:
                return code
        if isinstance(reason, TimeoutError):
            return "EXE_TIMEOUT"
        if isinstance(reason, ConnectionError):
            return "NET_CONNECTION_FAILED"
    return "NET_CONNECTION_FAILED"


def _botocore_client_error(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    error = response.get("Error")
    code = error.get("Code") if isinstance(error, Mapping) else None
    if isinstance(code, str):
        if code in _AWS_THROTTLING:
            return "NET_RATE_LIMITED"
        if code in _AWS_DENIED:
            return "EXE_PERMISSION_DENIED"
    meta = response.get("ResponseMetadata")
    status = _int(meta.get("HTTPStatusCode")) if isinstance(meta, Mapping) else None
    if status == 429:
        return "NET_RATE_LIMITED"
    if status is not None and status >= 500:
        return "NET_DEPENDENCY_ERROR"
    if status is not None and status >= 400:
        return "NET_REQUEST_REJECTED"
    return None


_GRPC = {
    "UNAVAILABLE": "NET_CONNECTION_FAILED",
    "DEADLINE_EXCEEDED": "EXE_TIMEOUT",
    "RESOURCE_EXHAUSTED": "NET_RATE_LIMITED",
    "PERMISSION_DENIED": "EXE_PERMISSION_DENIED",
    "UNAUTHENTICATED": "EXE_PERMISSION_DENIED",
    "INVALID_ARGUMENT": "NET_REQUEST_REJECTED",
    "NOT_FOUND": "NET_REQUEST_REJECTED",
    "INTERNAL": "NET_DEPENDENCY_ERROR",
    "UNKNOWN": "NET_DEPENDENCY_ERROR",
}


def _grpc_status(exc: BaseException) -> str | None:
    """A gRPC call's error, by its status code (``exc.code()``, a ``grpc.StatusCode``)."""
    code = getattr(exc, "code", None)
    if not callable(code):
        return None
    status = code()
    name = getattr(status, "name", None)
    return _GRPC.get(name) if isinstance(name, str) else None


def _sqlite_operational(exc: BaseException) -> str | None:
    """sqlite3 raises OperationalError for a locked or busy database (transient) and for a
    missing table or a syntax error (a bug, that no retry fixes): only the first is one."""
    try:
        text = str(exc).lower()
    except Exception:
        return None
    transient = ("locked", "busy", "disk i/o", "unable to open")
    return "DB_OPERATIONAL_ERROR" if any(t in text for t in transient) else None


def _names(prefixes: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(f"{p}.{name}" for p in prefixes)


def _build() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}

    def add(names: str | tuple[str, ...], rule: Rule) -> None:
        for n in (names,) if isinstance(names, str) else names:
            rules[n] = rule

    # -- httpx (its public classes report the module "httpx") --------------------------------
    add(("httpx.ConnectError", "httpx.NetworkError", "httpx.ProxyError"), "NET_CONNECTION_FAILED")
    add("httpx.RemoteProtocolError", "NET_CONNECTION_FAILED")
    add("httpx.TimeoutException", "EXE_TIMEOUT")  # Connect/Read/Write/PoolTimeout below it
    add(("httpx.InvalidURL", "httpx.UnsupportedProtocol"), "VAL_INVALID_VALUE")
    add(
        ("httpx.TransportError", "httpx.RequestError", "httpx.TooManyRedirects"),
        "NET_REQUEST_FAILED",
    )
    add("httpx.HTTPStatusError", _outbound_status)
    # -- requests ----------------------------------------------------------------------------
    req = "requests.exceptions"
    add(f"{req}.ConnectTimeout", "EXE_TIMEOUT")  # also a ConnectionError: the timeout wins
    add(f"{req}.Timeout", "EXE_TIMEOUT")
    add(f"{req}.SSLError", "NET_TLS_FAILED")
    add((f"{req}.ConnectionError", f"{req}.ChunkedEncodingError"), "NET_CONNECTION_FAILED")
    add((f"{req}.InvalidURL", f"{req}.MissingSchema", f"{req}.InvalidSchema"), "VAL_INVALID_VALUE")
    add(f"{req}.HTTPError", _outbound_status)
    add(f"{req}.RetryError", "NET_DEPENDENCY_ERROR")  # urllib3 gave up on 5xx/429 statuses
    add(f"{req}.RequestException", "NET_REQUEST_FAILED")
    # -- urllib3 (2.x: NewConnectionError is also a ConnectTimeoutError, for compatibility) --
    u3 = "urllib3.exceptions"
    add(f"{u3}.NewConnectionError", "NET_CONNECTION_FAILED")
    add(
        (f"{u3}.ConnectTimeoutError", f"{u3}.ReadTimeoutError", f"{u3}.TimeoutError"), "EXE_TIMEOUT"
    )
    add(f"{u3}.SSLError", "NET_TLS_FAILED")
    add((f"{u3}.ProtocolError", f"{u3}.ProxyError"), "NET_CONNECTION_FAILED")
    add(f"{u3}.MaxRetryError", _urllib3_max_retry)
    # -- aiohttp -----------------------------------------------------------------------------
    aio = "aiohttp.client_exceptions"
    add(
        (f"{aio}.ServerTimeoutError", f"{aio}.ConnectionTimeoutError", f"{aio}.SocketTimeoutError"),
        "EXE_TIMEOUT",
    )
    add((f"{aio}.ClientSSLError", f"{aio}.ClientConnectorCertificateError"), "NET_TLS_FAILED")
    add(
        (
            f"{aio}.ClientConnectorError",
            f"{aio}.ServerDisconnectedError",
            f"{aio}.ClientOSError",
            f"{aio}.ClientConnectionError",
        ),
        "NET_CONNECTION_FAILED",
    )
    add(f"{aio}.ClientResponseError", _outbound_status)
    add(f"{aio}.InvalidURL", "VAL_INVALID_VALUE")
    add(f"{aio}.ClientError", "NET_REQUEST_FAILED")
    # -- SQLAlchemy --------------------------------------------------------------------------
    sa = "sqlalchemy.exc"
    add(f"{sa}.TimeoutError", "EXE_TIMEOUT")  # the connection pool's timeout
    add(f"{sa}.DisconnectionError", "NET_CONNECTION_FAILED")
    add(f"{sa}.OperationalError", "DB_OPERATIONAL_ERROR")
    add(f"{sa}.IntegrityError", "DB_INTEGRITY_ERROR")
    # -- psycopg 3 (classes report "psycopg") and psycopg2 -----------------------------------
    pg = ("psycopg", "psycopg.errors", "psycopg2", "psycopg2.errors", "psycopg2.extensions")
    add(_names(pg, "QueryCanceled"), "EXE_TIMEOUT")  # statement_timeout, cancel
    add(_names(pg, "OperationalError"), "DB_OPERATIONAL_ERROR")
    add(_names(pg, "IntegrityError"), "DB_INTEGRITY_ERROR")
    # -- asyncpg, PyMySQL / mysqlclient, sqlite3 (standard library), pymongo ---------------
    apg = "asyncpg.exceptions"
    add(f"{apg}.QueryCanceledError", "EXE_TIMEOUT")
    add(
        (f"{apg}.ConnectionDoesNotExistError", f"{apg}.ConnectionFailureError"),
        "NET_CONNECTION_FAILED",
    )
    add(f"{apg}.IntegrityConstraintViolationError", "DB_INTEGRITY_ERROR")
    add(f"{apg}.DeadlockDetectedError", "DB_OPERATIONAL_ERROR")
    my = ("pymysql.err", "MySQLdb._exceptions")
    add(_names(my, "OperationalError"), "DB_OPERATIONAL_ERROR")
    add(_names(my, "IntegrityError"), "DB_INTEGRITY_ERROR")
    add("sqlite3.OperationalError", _sqlite_operational)
    add("sqlite3.IntegrityError", "DB_INTEGRITY_ERROR")
    mongo = "pymongo.errors"
    add(
        (f"{mongo}.ExecutionTimeout", f"{mongo}.NetworkTimeout", f"{mongo}.WTimeoutError"),
        "EXE_TIMEOUT",
    )
    add(f"{mongo}.ServerSelectionTimeoutError", "NET_CONNECTION_FAILED")
    add((f"{mongo}.AutoReconnect", f"{mongo}.ConnectionFailure"), "NET_CONNECTION_FAILED")
    add(f"{mongo}.DuplicateKeyError", "DB_INTEGRITY_ERROR")
    # -- gRPC: by the call's status code --------------------------------------------------
    add("grpc.RpcError", _grpc_status)
    # -- redis -------------------------------------------------------------------------------
    add("redis.exceptions.TimeoutError", "EXE_TIMEOUT")
    add("redis.exceptions.ConnectionError", "NET_CONNECTION_FAILED")
    # -- Celery (its time limits and lost workers are billiard's; its broker errors kombu's) ---
    bl = "billiard.exceptions"
    add((f"{bl}.SoftTimeLimitExceeded", f"{bl}.TimeLimitExceeded"), "EXE_TIMEOUT")
    add(f"{bl}.WorkerLostError", "EXE_WORKER_LOST")
    add("kombu.exceptions.OperationalError", "NET_CONNECTION_FAILED")
    # -- botocore ----------------------------------------------------------------------------
    bc = "botocore.exceptions"
    add((f"{bc}.ConnectTimeoutError", f"{bc}.ReadTimeoutError"), "EXE_TIMEOUT")
    add(f"{bc}.SSLError", "NET_TLS_FAILED")
    add(
        (f"{bc}.EndpointConnectionError", f"{bc}.ConnectionClosedError", f"{bc}.ConnectionError"),
        "NET_CONNECTION_FAILED",
    )
    add(f"{bc}.ClientError", _botocore_client_error)
    add(f"{bc}.NoCredentialsError", "EXE_PERMISSION_DENIED")
    # -- web frameworks: what they turn into 4xx responses -----------------------------------
    add("fastapi.exceptions.RequestValidationError", "VAL_REQUEST_INVALID")
    add("fastapi.exceptions.WebSocketRequestValidationError", "VAL_REQUEST_INVALID")
    add("starlette.exceptions.HTTPException", _inbound_status)
    add("werkzeug.exceptions.HTTPException", _inbound_status)
    add("django.http.response.Http404", "HTTP_NOT_FOUND")
    add("django.core.exceptions.PermissionDenied", "HTTP_FORBIDDEN")
    add(
        ("django.core.exceptions.SuspiciousOperation", "django.core.exceptions.BadRequest"),
        "HTTP_BAD_REQUEST",
    )
    return rules


LIBRARY_RULES: Mapping[str, Rule] = _build()


def library_code(klass: type, exc: BaseException) -> str | None:
    """The library rule's code for one class of ``exc``'s MRO, or None (no rule, or the rule
    has no opinion about this exception). Never raises."""
    rule = LIBRARY_RULES.get(class_name(klass))
    if rule is None:
        return None
    if isinstance(rule, str):
        return rule
    try:
        return rule(exc)
    except Exception:
        return None


# The web frameworks' exceptions that *are* an answer to the client (raised to make the
# framework respond 4xx), as opposed to failures.
_ANSWERS = frozenset(
    {
        "starlette.exceptions.HTTPException",
        "werkzeug.exceptions.HTTPException",
        "fastapi.exceptions.RequestValidationError",
        "fastapi.exceptions.WebSocketRequestValidationError",
        "django.http.response.Http404",
        "django.core.exceptions.PermissionDenied",
        "django.core.exceptions.SuspiciousOperation",
        "django.core.exceptions.BadRequest",
    }
)


def is_http_answer(exc: BaseException) -> bool:
    """Whether ``exc`` is a web framework's way of answering the client with a 4xx
    (``HTTPException(404)``, ``abort(403)``, ``RequestValidationError``, ``Http404``): the
    request's answer, not a failure of the code it passes through. A 5xx HTTP exception is
    not one (it reports a failure). Never raises; never imports a framework."""
    try:
        mro = type(exc).__mro__
        if not any(class_name(k) in _ANSWERS for k in mro):
            return False
        status = http_status_of(exc)
        return status is None or status < 500
    except Exception:
        return False
