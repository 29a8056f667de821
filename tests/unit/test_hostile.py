"""Hostile exceptions are recorded or safely summarised, and never break the caller."""

from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

import faultlens


class RaisingStr(Exception):
    def __str__(self):
        raise RuntimeError("str() is broken")

    def __repr__(self):
        raise RuntimeError("repr() is broken")


class NonStrStr(Exception):
    def __str__(self):
        return 42  # type: ignore[return-value]


class CustomBase(BaseException):
    """Not an Exception, not control flow: still a failure worth recording."""


@faultlens.instrument
def raise_it(exc):
    raise exc


def _only_event(app_otel):
    [(span, event)] = app_otel.exception_events()
    assert span.status.status_code is StatusCode.ERROR
    return event.attributes


def test_a_str_that_raises_is_summarised(app_otel):
    exc = RaisingStr()
    with pytest.raises(RaisingStr) as info:
        raise_it(exc)
    assert info.value is exc
    attrs = _only_event(app_otel)
    assert "unprintable" in attrs["exception.message"]


def test_a_str_returning_a_non_string_is_summarised(app_otel):
    with pytest.raises(NonStrStr):
        raise_it(NonStrStr())
    assert _only_event(app_otel)["exception.type"].endswith("NonStrStr")


def test_a_cyclic_cause_chain_is_recorded(app_otel):
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    with pytest.raises(ValueError):
        raise_it(a)
    assert "ValueError" in _only_event(app_otel)["exception.stacktrace"]


def test_a_five_megabyte_message_is_capped(app_otel):
    with pytest.raises(ValueError):
        raise_it(ValueError("x" * 5_000_000))
    attrs = _only_event(app_otel)
    assert len(attrs["exception.message"]) < 5000
    assert len(attrs["exception.stacktrace"]) < 20_000


def test_lone_surrogates_become_valid_utf8(app_otel):
    with pytest.raises(ValueError):
        raise_it(ValueError("bad \udcff byte"))
    _only_event(app_otel)["exception.message"].encode("utf-8")


def test_a_custom_base_exception_is_recorded(app_otel):
    with pytest.raises(CustomBase):
        raise_it(CustomBase("odd"))
    assert _only_event(app_otel)["faultlens.error.code"] == "SYS_UNKNOWN_ERROR"


def test_an_exception_group_is_recorded_with_its_members(app_otel):
    group = ExceptionGroup("two failed", [ConnectionError("a"), TimeoutError("b")])
    with pytest.raises(ExceptionGroup):
        raise_it(group)
    attrs = _only_event(app_otel)
    assert attrs["faultlens.error.code"] == "NET_CONNECTION_FAILED"
    assert "TimeoutError" in attrs["exception.stacktrace"]


def test_an_exception_refusing_attribute_writes_is_still_recorded_once(app_otel):
    class Frozen(Exception):
        def __setattr__(self, name, value):
            raise AttributeError("frozen")

    exc = Frozen("x")

    @faultlens.instrument
    def outer():
        raise_it(exc)

    with pytest.raises(Frozen):
        outer()
    assert len(app_otel.exception_events()) == 1


def test_odd_context_values_are_summarised(app_otel):
    class Unrepresentable:
        def __repr__(self):
            raise RuntimeError("no")

    with (
        pytest.raises(ValueError),
        faultlens.capture(obj=Unrepresentable(), big=10**30, nested={"token": "t0p"}, n=None),
    ):
        raise ValueError("x")
    attrs = _only_event(app_otel)
    assert "unrepresentable" in attrs["faultlens.context.obj"]
    assert attrs["faultlens.context.big"] == str(10**30)
    assert "t0p" not in attrs["faultlens.context.nested"]


def test_an_internal_failure_is_counted_and_never_raised(app_otel, monkeypatch):
    from faultlens.capture import _record, dropped_counts

    def broken(*a, **k):
        raise RuntimeError("faultlens bug")

    monkeypatch.setattr(_record, "classify", broken)
    exc = ValueError("x")
    with pytest.raises(ValueError) as info:
        raise_it(exc)
    assert info.value is exc
    assert dropped_counts().get("internal_error", 0) >= 1
