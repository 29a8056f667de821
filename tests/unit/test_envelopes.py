"""Envelopes: the JSON a failing API or CLI returns, always serialisable and scrubbed."""

from __future__ import annotations

import datetime as dt
import json
import re

import faultlens

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class MissingFile(faultlens.FaultError):
    code = "MISSING_FILE"


def test_api_envelope_shape_with_trace_ids(app_otel):
    faultlens.catalog.register("MISSING_FILE", category="validation", hint="rerun the scorer")
    exc = MissingFile("result.json is missing", details={"dir": "/w"}, stage="validate")
    with app_otel.tracer().start_as_current_span("request") as span:
        env = faultlens.to_api_envelope(exc)
    assert env["ok"] is False
    assert env["error"] == {
        "code": "MISSING_FILE",
        "message": "result.json is missing",
        "stage": "validate",
        "details": {"dir": "/w"},
        "hint": "rerun the scorer",
    }
    meta = env["meta"]
    assert ISO_UTC.match(meta["timestamp"])
    assert meta["version"] == faultlens.__version__
    assert meta["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert meta["span_id"] == format(span.get_span_context().span_id, "016x")
    json.dumps(env)


def test_api_envelope_without_a_span_has_null_ids():
    env = faultlens.to_api_envelope(ValueError("x"))
    assert env["meta"]["trace_id"] is None and env["meta"]["span_id"] is None
    assert env["error"]["code"] == "VAL_INVALID_VALUE"


def test_cli_envelope_shape():
    env = faultlens.to_cli_envelope(FileNotFoundError("cfg.yaml"))
    assert set(env) == {"status", "error", "timestamp"}
    assert env["status"] == "error"
    assert env["error"] == {"code": "VAL_FILE_NOT_FOUND", "message": "cfg.yaml", "stage": None}
    assert ISO_UTC.match(env["timestamp"])


def test_odd_details_become_strings_and_secrets_are_scrubbed():
    class Thing:
        def __str__(self):
            return "a thing"

    exc = faultlens.FaultError(
        "LOAD_ERROR",
        "connect postgres://u:pw@db failed",
        details={
            "when": dt.datetime(2026, 1, 1),
            "obj": Thing(),
            "nan": float("nan"),
            "password": "pw",
            "nested": {"token": "abc", "ok": [1, {2}]},
            7: "int key",
        },
    )
    env = faultlens.to_api_envelope(exc)
    text = json.dumps(env)
    assert "pw@" not in text and '"abc"' not in text
    d = env["error"]["details"]
    assert d["when"] == "2026-01-01T00:00:00"
    assert d["obj"] == "a thing"
    assert d["password"] == "[REDACTED]"
    assert d["7"] == "int key"


def test_envelopes_of_hostile_exceptions_still_serialise():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no")

    json.dumps(faultlens.to_api_envelope(Hostile()))
    json.dumps(faultlens.to_cli_envelope(Hostile()))


def test_the_service_version_is_used_when_configured():
    faultlens.configure(service_name="svc", service_version="2.0.1", journal=False)
    assert faultlens.to_api_envelope(ValueError())["meta"]["version"] == "2.0.1"


def test_the_envelope_reuses_the_stage_the_error_was_recorded_with():
    @faultlens.instrument(stage="score")
    def score():
        raise ValueError("bad input")

    try:
        score()
    except ValueError as exc:
        assert faultlens.to_api_envelope(exc)["error"]["stage"] == "score"
