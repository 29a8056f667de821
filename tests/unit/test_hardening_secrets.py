"""No output of faultlens contains a credential it was given or found.

- secret-named keys are redacted at every depth (dicts, lists, tuples, sets, mappings inside
  objects' reprs), whatever the value's type (bytes, bytearray and memoryview included);
- a secret cut by a size cap never leaves a readable piece: the text is scrubbed first, and a
  cut that would split a word moves to the word's edge;
- URLs are printed and linked without their ``user:password@`` part (``redact_url``), which
  the HTML/JSON reports use for ``--jaeger-url``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from types import MappingProxyType

import pytest

import faultlens
from faultlens import testing
from faultlens.capture import format_stacktrace
from faultlens.capture._state import STATE
from faultlens.journal import compute_stats
from faultlens.reports import render_report, trace_link
from faultlens.scrub import MARGIN, REDACTED, Scrubber, redact_url

S = Scrubber()
SECRET = "Sup3rS3cretValue42"


def _event_text(cap) -> str:
    parts = []
    for r in cap.errors:
        parts.extend(str(v) for v in r.attributes.values())
    for s in cap.spans:
        for e in s.events:
            parts.extend(str(v) for v in e.attributes.values())
        parts.append(s.status.description or "")
    return "\n".join(parts)


# -- keys, at every depth ----------------------------------------------------------------------

# What the usual denylists of error trackers cover (framework cookies and headers included),
# in the spellings they arrive in: WSGI environ, HTTP headers, camelCase, dotted cookie names.
SECRET_KEYS = [
    "password",
    "passwd",
    "PASSWORD",
    "db_password",
    "mysql_pwd",
    "pass",
    "passphrase",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "apiKey",
    "X-Api-Key",
    "x_api_key",
    "HTTP_X_API_KEY",
    "token",
    "access_token",
    "refreshToken",
    "auth",
    "Authorization",
    "HTTP_AUTHORIZATION",
    "Proxy-Authorization",
    "credentials",
    "creds",
    "db_cred",
    "private_key",
    "privkey",
    "privatekey",
    "session",
    "sessionid",
    "session_id",
    "PHPSESSID",
    "connect.sid",
    "sid",
    "cookie",
    "Set-Cookie",
    "set_cookie",
    "csrftoken",
    "x_csrftoken",
    "csrf",
    "_xsrf",
    "XSRF-TOKEN",
    "signature",
    "X-Amz-Signature",
    "sig",
    "dsn",
    "SENTRY_DSN",
    "jwt",
    "bearer",
    "aws_secret_access_key",
    "AccountKey",
    "signing_key",
    "x_forwarded_for",
    "X-Real-IP",
]
ORDINARY_KEYS = [
    "user",
    "author",
    "path",
    "passenger",
    "consider",
    "keyboard",
    "side",
    "rows",
    "credit_limit",
    "incredible",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_every_usual_secret_key_name_is_redacted(key):
    assert S.key_is_secret(key), key


@pytest.mark.parametrize("key", ORDINARY_KEYS)
def test_ordinary_key_names_stay_readable(key):
    assert not S.key_is_secret(key), key


def test_nested_secret_keys_are_redacted_at_every_depth_of_the_recorded_context():
    request = {
        "session": SECRET,
        "user": "bob",
        "headers": {"Authorization": f"Basic {SECRET}", "accept": "text/html"},
        "items": [{"token": SECRET}, ("ok", {"api_key": SECRET})],
        "frozen": MappingProxyType({"signature": SECRET}),
        "ordered": OrderedDict(dsn=SECRET),
        "deep": {"a": {"b": {"c": {"password": SECRET}}}},
    }
    with testing.capture() as cap:
        faultlens.record_error(ValueError("bad request"), request=request)
    text = _event_text(cap)
    assert SECRET not in text
    ctx = cap.errors[0].attributes["faultlens.context.request"]
    assert "'user': 'bob'" in ctx and "'accept': 'text/html'" in ctx
    assert "('ok', {'api_key': " in ctx  # tuples keep their shape
    assert REDACTED in ctx


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_binary_values_under_secret_keys_are_redacted_whole(kind):
    raw = kind(SECRET.encode())
    with testing.capture() as cap:
        faultlens.record_error(
            ValueError("x"), signature=raw, request={"cookie": raw, "nested": [{"auth": raw}]}
        )
    text = _event_text(cap)
    for piece in (SECRET, SECRET[:6], SECRET[-6:]):
        assert piece not in text
    assert cap.errors[0].attributes["faultlens.context.signature"] == REDACTED


def test_binary_values_under_ordinary_keys_are_scrubbed_by_content():
    body = b"grant_type=password&password=" + SECRET.encode() + b"&user=bob"
    with testing.capture() as cap:
        faultlens.record_error(ValueError("x"), body=body, payload={"raw": bytearray(body)})
    text = _event_text(cap)
    assert SECRET not in text
    assert "user=bob" in text


def test_header_lists_of_name_value_pairs_are_redacted_by_name():
    asgi_scope = {
        "type": "http",
        "headers": [(b"host", b"api.internal"), (b"x-api-key", SECRET.encode())],
        "raw": [["Authorization", SECRET], ("accept", "*/*")],
    }
    with testing.capture() as cap:
        faultlens.record_error(ValueError("x"), scope=asgi_scope)
    text = _event_text(cap)
    assert SECRET not in text
    assert "api.internal" in text and "*/*" in text


def test_secret_keys_inside_objects_reprs_are_redacted():
    @dataclasses.dataclass
    class Req:
        user: str
        session: str
        headers: dict

    class Opaque:
        def __repr__(self) -> str:
            return f"Opaque({{'auth': '{SECRET}', 'n': 1}}, \"password\": \"{SECRET}\")"

    with testing.capture() as cap:
        faultlens.record_error(
            ValueError("x"),
            req=Req("bob", SECRET, {"X-Api-Key": SECRET}),
            obj=Opaque(),
        )
    text = _event_text(cap)
    assert SECRET not in text
    assert "user='bob'" in text


def test_fault_error_details_and_envelopes_are_scrubbed_at_every_depth():
    exc = faultlens.FaultError(
        "SUBMIT_FAILED", "submit failed", details={"request": {"headers": {"cookie": SECRET}}}
    )
    with testing.capture() as cap:
        faultlens.record_error(exc)
    env = faultlens.to_api_envelope(exc)
    assert SECRET not in _event_text(cap)
    assert SECRET not in json.dumps(env)
    assert env["error"]["details"]["request"]["headers"]["cookie"] == REDACTED


def test_processors_cannot_reintroduce_a_nested_secret():
    def enrich(event):
        event.attributes["faultlens.context.extra"] = {"session": {"id": SECRET}}  # type: ignore[assignment]
        return event

    STATE.processors = (enrich,)
    try:
        with testing.capture() as cap:
            faultlens.record_error(ValueError("x"))
    finally:
        STATE.processors = ()
    assert SECRET not in _event_text(cap)


# -- caps never leave a readable piece of a secret ------------------------------------------------

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
# (the text that carries the secret, the secret's readable core)
CARRIERS = [
    (JWT, JWT),
    (f"Authorization: Bearer {SECRET}", SECRET),
    (f"token={SECRET}", SECRET),
    (f"password: '{SECRET} with spaces'", SECRET),
    (f"https://deploy:{SECRET}@registry.internal/v2/", SECRET),
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    (f"{{'session': '{SECRET}'}}", SECRET),
]


def _pieces(secret: str, n: int = 6):
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


@pytest.mark.parametrize(("carrier", "core"), CARRIERS, ids=[c[:12] for c, _ in CARRIERS])
def test_a_cap_that_falls_anywhere_inside_a_secret_leaves_no_readable_piece(carrier, core):
    limit = 100
    for offset in range(limit - len(carrier) - 2, limit + 2):
        text = "word " * (offset // 5) + "x" * (offset % 5) + " " + carrier + " and more text"
        out = S.capped(text, limit)
        assert not any(p in out for p in _pieces(core)), (offset, out)
        assert len(out) <= limit + 40
        assert "truncated" in out or out == S.text(text)


def test_a_cut_secret_far_beyond_the_margin_is_still_not_shown():
    token = "A1b2" * 2000  # a token longer than the scrub margin, cut by the cap
    out = S.capped("failed with key " + token, 64)
    assert "A1b2A1b2" not in out
    assert out.startswith("failed with key")


def test_the_elided_middle_of_a_stack_leaves_no_piece_of_a_secret_at_either_cut():
    for shift in range(0, 60, 7):
        text = (
            "h" * (40 + shift)
            + f" Bearer {SECRET} "
            + "m " * 3000
            + f" {JWT} "
            + "t" * (700 - shift)
        )
        out = S.capped(text, 800, keep_tail=700)
        assert "elided" in out
        assert not any(p in out for p in _pieces(SECRET) | _pieces(JWT)), shift


def test_the_recorded_message_is_scrubbed_before_it_is_capped():
    filler = "step " * ((STATE.limits.max_message - 20) // 5)
    with testing.capture() as cap:
        try:
            raise RuntimeError(f"{filler} upload to {JWT} failed")
        except RuntimeError as exc:
            faultlens.record_error(exc)
            env = faultlens.to_cli_envelope(exc)
    attrs = cap.errors[0].attributes
    assert len(str(attrs["exception.message"])) <= STATE.limits.max_message + 40
    for text in (str(attrs["exception.message"]), str(attrs["exception.stacktrace"]), str(env)):
        assert not any(p in text for p in _pieces(JWT, 8)), text[-200:]


def test_format_stacktrace_returns_scrubbed_text():
    try:
        raise PermissionError(f"login as admin with password={SECRET}")
    except PermissionError as exc:
        stack = format_stacktrace(exc, 4000)
    assert SECRET not in stack
    assert "PermissionError: login as admin with password=" in stack


def test_the_margin_is_what_callers_read_beyond_the_cap():
    assert MARGIN >= 256


def test_unclosed_quotes_left_by_a_cut_are_still_redacted():
    assert SECRET not in S.text(f"password = '{SECRET} and the rest")
    assert SECRET not in S.text(f'{{"api_key": "{SECRET}')


@pytest.mark.parametrize(
    "text",
    [
        f"Server=db;User Id=sa;Password={SECRET};",
        f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SECRET}==;",
        f"https://a.blob.core.windows.net/c?sv=2020-08-04&sig={SECRET}%3D&se=2030",
        f"https://b.s3.amazonaws.com/k?X-Amz-Signature={SECRET}",
        f'{{"user": "bob", "credentials": {{"password": "{SECRET}"}}}}',
        f"Req(user='bob', creds=('bob', '{SECRET}'))",
        f"export AWS_SECRET_ACCESS_KEY={SECRET}",
        f"mysql -u root --password={SECRET} db",
        f"redis://:{SECRET}@cache:6379/0",
        f"GET /cb?code=1&access_token={SECRET}&state=s",
        f"<soap:Body><ns:Password>{SECRET}</ns:Password><user>bob</user></soap:Body>",
    ],
    ids=lambda t: t[:14],
)
def test_common_credential_shapes_in_text_are_redacted(text):
    assert SECRET not in S.text(text)


def test_header_lines_are_redacted_to_the_end_of_the_line():
    text = f"GET /\nAuthorization: Digest username=bob, response={SECRET}\nAccept: */*"
    out = S.text(text)
    assert SECRET not in out
    assert "Accept: */*" in out


def test_custom_secret_keys_are_redacted_inside_text_too():
    s = Scrubber(extra_keys=["ssn"])
    assert s.text("lookup ssn=123-45-6789 failed") == f"lookup ssn={REDACTED} failed"
    assert S.text(f"a=1&session={SECRET}") == f"a=1&session={REDACTED}"
    assert S.text(f"opts: password={SECRET}") == f"opts: password={REDACTED}"


def test_custom_secret_keys_are_names_not_regular_expressions():
    s = Scrubber(extra_keys=["x-token(v2)", "", "  "])  # no re.error; blanks ignored
    assert s.key_is_secret("X-Token(v2)") and s.key_is_secret("upstream_x-token(v2)_value")
    assert not s.key_is_secret("user")
    assert s.mapping({"X-Token(v2)": "abc", "user": "bob"}) == {
        "X-Token(v2)": REDACTED,
        "user": "bob",
    }


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000 + "=",
        "password" * 50_000,
        "password=" * 50_000,
        "x:" * 100_000,
        "'" + "session" * 30_000,
        "eyJ" + "a" * 200_000,
        "Bearer " * 50_000,
        "<password>" * 20_000 + "</",
        "<a>" + "x" * 200_000 + "</b> token",
    ],
    ids=lambda t: t[:10],
)
def test_hostile_text_is_scrubbed_in_linear_time(text):
    import time

    start = time.perf_counter()
    S.text(text)
    S.capped(text, 4096, keep_tail=3000)
    assert time.perf_counter() - start < 2.0


# -- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:hunter2@collector:4317", "http://collector:4317"),
        ("https://user@jaeger.internal/search?x=1", "https://jaeger.internal/search?x=1"),
        ("https://a:b@c@jaeger.internal:16686/", "https://jaeger.internal:16686/"),
        ("http://u:p@[::1]:4318/v1/traces", "http://[::1]:4318/v1/traces"),
        ("admin:hunter2@collector:4317", "collector:4317"),
        ("http://collector:4317", "http://collector:4317"),
        ("", ""),
    ],
)
def test_redact_url_drops_userinfo(url, shown):
    assert redact_url(url) == shown


def test_redact_url_masks_webhook_secrets_in_the_path():
    hook = "https://hooks.slack.com/services/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"
    assert redact_url(hook) == f"https://hooks.slack.com/services/T0123ABCD/B0456EFGH/{REDACTED}"
    assert redact_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"


def test_redact_url_redacts_secret_query_parameters_and_never_raises():
    out = redact_url(f"https://jaeger.internal/?token={SECRET}&lookback=1h")
    assert SECRET not in out and "lookback=1h" in out
    assert "hunter2" not in redact_url("http://u:hunter2@[::1/x")  # invalid IPv6: no raise
    assert redact_url(None) == "None"


def _report_inputs():
    records = [
        {
            "ts": 1_700_000_000.0,
            "service": "svc",
            "code": "VAL_INVALID_VALUE",
            "category": "validation",
            "severity": "medium",
            "fingerprint": "f" * 16,
            "message": "bad",
            "trace_id": "0123456789abcdef0123456789abcdef",
        }
    ]
    return compute_stats(records, now=1_700_000_100.0), records


@pytest.mark.parametrize("fmt", ["html", "json", "csv"])
def test_reports_never_contain_the_jaeger_url_credentials(fmt):
    stats, records = _report_inputs()
    url = f"https://viewer:{SECRET}@jaeger.internal:16686/?token={SECRET}"
    out = render_report(stats, records, fmt, jaeger_url=url)
    assert SECRET not in out
    assert "viewer" not in out
    if fmt == "html":
        assert 'href="https://jaeger.internal:16686/trace/0123456789abcdef' in out
    if fmt == "json":
        assert json.loads(out)["jaeger_url"] == "https://jaeger.internal:16686"


def test_trace_links_are_built_only_from_http_urls_without_credentials():
    tid = "0123456789abcdef0123456789abcdef"
    assert trace_link("https://u:p@j.example/ui/", tid) == f"https://j.example/ui/trace/{tid}"
    assert trace_link("javascript:alert(1)//", tid) is None
    assert trace_link("https://j.example", "not-a-trace-id") is None


# -- end to end: what the journal keeps and every report format shows ----------------------------


@pytest.mark.parametrize("fmt", ["json", "csv", "html"])
def test_no_report_format_shows_a_recorded_or_configured_secret(tmp_path, fmt):
    from faultlens.cli import main

    journal = tmp_path / "journal"
    faultlens.configure(service_name="svc", journal=str(journal))
    filler = "step " * ((STATE.limits.max_message - 30) // 5)
    try:
        raise ConnectionError(f"{filler} to https://svc:{SECRET}@db.internal {JWT}")
    except ConnectionError as exc:
        faultlens.record_error(
            exc, request={"headers": {"Authorization": f"Bearer {SECRET}"}}, token=SECRET.encode()
        )
    faultlens.shutdown()
    journal_text = "".join(p.read_text() for p in journal.rglob("*") if p.is_file())
    assert "svc" in journal_text

    out = tmp_path / f"report.{fmt}"
    jaeger = f"https://viewer:{SECRET}@jaeger.internal/"
    argv = ["report", "--journal", str(journal), "--format", fmt, "-o", str(out)]
    assert main([*argv, "--jaeger-url", jaeger]) == 0
    report = out.read_text()
    assert "NET_CONNECTION_FAILED" in report
    for text in (journal_text, report):
        assert SECRET not in text
        assert not any(p in text for p in _pieces(JWT, 8))
