"""Secrets are scrubbed by key and by value before anything leaves the process."""

from __future__ import annotations

import pytest

from faultlens.scrub import REDACTED, Scrubber

S = Scrubber()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcdef0123456789abcdef", "abcdef0123456789abcdef"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-x", "eyJhbGciOiJIUzI1NiJ9"),
        ("postgres://admin:hunter2@db:5432/app", "hunter2"),
        ("https://user:p%40ss@example.invalid/x", "p%40ss"),
        ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("password: 'correct horse'", "correct horse"),
        ("token=abc123&user=bob", "abc123"),
        ("gh token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "ghp_0123456789"),
        ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890"),
        ("google AIzaSyA-0123456789abcdefghijklmnopqrstu", "AIzaSyA-0123"),
        ("stripe sk_live_0123456789abcdefABCD", "sk_live_0123"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "MIIE"),
    ],
)
def test_secret_values_inside_text_are_redacted(text, secret):
    out = S.text(text)
    assert secret not in out
    assert REDACTED in out


def test_ordinary_text_is_left_alone():
    text = "author=alice failed to load 42 rows from /data/x.csv (timeout 30s)"
    assert S.text(text) == text


def test_secret_keys_redact_whatever_the_value():
    data = {
        "password": 123,
        "api_key": ["a"],
        "Authorization": "x",
        "session_id": "s",
        "user": "bob",
        "url": "redis://:pw@cache:6379",
    }
    out = S.mapping(data)
    assert out["password"] == out["api_key"] == out["Authorization"] == REDACTED
    assert out["session_id"] == REDACTED
    assert out["user"] == "bob"
    assert "pw" not in out["url"]


def test_extra_keys_and_patterns_extend_the_defaults():
    s = Scrubber(extra_keys=["ssn"], extra_patterns=[r"\bACCT-\d+\b"])
    assert s.mapping({"ssn": "1"})["ssn"] == REDACTED
    assert s.text("account ACCT-991 closed") == f"account {REDACTED} closed"


def test_deep_and_huge_structures_are_bounded():
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["d"] = {}
        node = node["d"]
    S.mapping(deep)  # no recursion error
    out = S.mapping({str(i): i for i in range(1000)})
    assert len(out) <= 201
