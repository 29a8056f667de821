"""The HTTP service answers failures with the API envelope, with a status by category."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import faultlens


@pytest.fixture
def base_url() -> Iterator[str]:
    from http_service.server import serve_in_thread

    server, thread = serve_in_thread(port=0)  # a free port on 127.0.0.1
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_success(base_url):
    status, body = get(f"{base_url}/score?workspace=ws-1&threshold=0.9")
    assert status == 200 and body == {
        "ok": True,
        "result": {"workspace": "ws-1", "precision": 0.9474, "pass": True},
    }


def test_bad_input_is_a_400_with_the_envelope_and_its_hint(base_url):
    with faultlens.testing.capture() as cap:
        status, body = get(f"{base_url}/score?workspace=ws-1&threshold=high")
    assert status == 400
    assert body["ok"] is False
    assert body["error"]["code"] == "INVALID_PARAMS"
    assert body["error"]["stage"] == "parse"
    assert "0..1" in body["error"]["hint"]
    assert set(body["meta"]) == {"timestamp", "version", "trace_id", "span_id"}
    assert len(cap.errors) == 1


def test_a_bug_is_a_500_recorded_once(base_url):
    with faultlens.testing.capture() as cap:
        status, body = get(f"{base_url}/score?workspace=ws-2")
    assert status == 500
    assert body["error"]["code"] == "SYS_UNKNOWN_ERROR"
    assert "division by zero" in body["error"]["message"]
    assert [e.info.code for e in cap.errors] == ["SYS_UNKNOWN_ERROR"]
    assert cap.errors[0].attributes["faultlens.context.route"] == "/score"


def test_unknown_workspace(base_url):
    status, body = get(f"{base_url}/score?workspace=nope")
    assert status == 400 and body["error"]["code"] == "WORKSPACE_NOT_FOUND"
