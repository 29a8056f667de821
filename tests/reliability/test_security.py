"""Safe at the edge: secrets never leave the process, bundled services bind 127.0.0.1 only."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

import faultlens
from faultlens import testing

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {
    "bearer": "Bearer abcdefghijklmnopqrstuvwxyz012345",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "url": "https://deploy:s3cr3t-pass@registry.internal/v2/",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
NEEDLES = [
    "abcdefghijklmnopqrstuvwxyz012345",
    "dozjgNryP4J3jVmNHl0w5N",
    "s3cr3t-pass",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI",
]


def _all_text(records, spans) -> str:
    parts = []
    for r in records:
        parts.extend(str(v) for v in r.attributes.values())
    for s in spans:
        parts.extend(str(v) for v in (s.attributes or {}).values())
        parts.append(s.status.description or "")
        for e in s.events:
            parts.extend(str(v) for v in e.attributes.values())
    return "\n".join(parts)


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secrets_in_messages_details_and_context_never_reach_a_span(kind):
    secret = SECRETS[kind]

    @faultlens.instrument(mode="traced")
    def call():
        local_token = secret  # noqa: F841 - a local in the failing frame
        raise faultlens.FaultError(
            "SUBMIT_ERROR", f"submit failed: {secret}", details={"auth": secret, "note": secret}
        )

    with testing.capture() as cap:
        with pytest.raises(faultlens.FaultError), faultlens.capture(header=secret):
            call()
        env = faultlens.to_api_envelope(faultlens.FaultError("X", secret, details={"v": secret}))
        cli = faultlens.to_cli_envelope(ValueError(secret))
    text = _all_text(cap.errors, cap.spans) + repr(env) + repr(cli)
    for needle in NEEDLES:
        assert needle not in text


def test_faultlens_own_logs_are_scrubbed(caplog):
    caplog.set_level(logging.DEBUG, logger="faultlens")
    from faultlens.capture import internal_error

    try:
        raise RuntimeError(f"export to {SECRETS['url']} failed")
    except RuntimeError as exc:
        internal_error("a place that quotes user data", exc)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "failed" in text
    assert "s3cr3t-pass" not in text


def _bundled_files() -> list[Path]:
    files = [ROOT / "docker-compose.yml", ROOT / "Makefile"]
    for folder in ("collector", "scripts", "mk"):
        if (ROOT / folder).is_dir():
            files += [p for p in (ROOT / folder).rglob("*") if p.is_file()]
    return [f for f in files if f.exists() and f.suffix not in (".png", ".jpg")]


def test_no_bundled_service_binds_anything_but_loopback():
    offenders = []
    for f in _bundled_files():
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            if re.search(r"0\.0\.0\.0|\[::\](?!1)|:::", line):
                offenders.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


# -- properties: secrets at any depth, any offset ----------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from faultlens.capture._state import STATE  # noqa: E402

TOKEN = "Tk9pQ2xvdWRTZWNyZXQ"
SECRET_NAMES = ["password", "api_key", "Authorization", "session", "signature", "dsn", "cookie"]

plain = st.one_of(st.integers(), st.text(alphabet="abc xyz", max_size=6), st.none())


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.sampled_from(["a", "b", "user", "items"]), children, max_size=3),
    )


@st.composite
def nested_with_secret(draw):
    """A nested structure with one secret-named key somewhere inside (depth 1 to 4)."""
    value = draw(st.sampled_from([TOKEN, TOKEN.encode(), bytearray(TOKEN.encode())]))
    node: object = {draw(st.sampled_from(SECRET_NAMES)): value}
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["list", "tuple", "dict"]))
        noise = draw(st.recursive(plain, _containers, max_leaves=3))
        if kind == "list":
            node = [noise, node]
        elif kind == "tuple":
            node = (node, noise)
        else:
            node = {"inner": node, "other": noise}
    return node


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=nested_with_secret())
def test_a_secret_key_at_any_depth_never_reaches_a_span(data):
    with testing.capture() as cap:
        faultlens.record_error(ValueError("x"), request=data)
    text = _all_text(cap.errors, cap.spans)
    assert TOKEN not in text and TOKEN[:8] not in text


@settings(max_examples=120, deadline=None)
@given(
    offset=st.integers(-80, 40),
    carrier=st.sampled_from(
        [
            SECRETS["jwt"],
            SECRETS["bearer"],
            SECRETS["url"],
            SECRETS["aws"],
            SECRETS["aws_secret"],
            f"password='{TOKEN}'",
        ]
    ),
)
def test_a_secret_cut_by_the_message_cap_leaves_no_readable_prefix(offset, carrier):
    cap_at = STATE.limits.max_message
    pad = max(cap_at + offset, 0)
    message = ("word " * (pad // 5 + 1))[:pad] + " " + carrier + " tail"
    with testing.capture() as cap:
        faultlens.record_error(RuntimeError(message))
    text = _all_text(cap.errors, cap.spans)
    for needle in [*NEEDLES, TOKEN]:
        assert needle[:8] not in text, needle
