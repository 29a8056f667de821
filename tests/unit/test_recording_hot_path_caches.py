"""The recording hot path's caches never decide what a single exception would not.

A classification is cached per site (the exception type and the traceback's code objects)
and message, but the catalog is asked for the code of every exception: a predicate rule may
read anything of it (its message, an attribute), so two exceptions raised from one place get
each its own code. The labels of ``faultlens.errors`` and the span status are derived once
per classification. An error the rate limit suppresses still counts under its own labels, is
tallied as dropped, and is counted once however many instrumented functions it escapes.
"""

from __future__ import annotations

import types

import faultlens
from faultlens import testing
from faultlens.capture import Limits, _record, dropped_counts
from faultlens.capture._state import STATE


class Rejected(ValueError):
    def __init__(self, message: str, tier: str = "free") -> None:
        super().__init__(message)
        self.tier = tier


def _fail(message: str, tier: str = "free") -> None:
    raise Rejected(message, tier)


@faultlens.instrument
def load(message: str, tier: str = "free") -> None:
    _fail(message, tier)


@faultlens.instrument(mode="traced", name="handler")
def handler(message: str) -> None:
    load(message)


def _run(fn, *args) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def _register_codes() -> None:
    faultlens.catalog.register("QUOTA_EXCEEDED", category="resource", severity="high")
    faultlens.catalog.register("PAYMENT_REQUIRED", category="validation", severity="low")


def test_a_predicate_on_the_message_gives_each_message_its_code_from_one_site():
    _register_codes()
    faultlens.catalog.rule(lambda exc: "quota" in str(exc), "QUOTA_EXCEEDED")
    with testing.capture() as cap:
        for _ in range(3):  # the second and third of each come from the cache
            _run(load, "quota of 10 exceeded")
            _run(load, "bad input")
    codes = [event.attributes["faultlens.error.code"] for _, event in cap.events()]
    assert codes == ["QUOTA_EXCEEDED", "VAL_INVALID_VALUE"] * 3
    assert cap.counter("faultlens.errors", code="QUOTA_EXCEEDED", category="resource") == 3
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE", category="validation") == 3


def test_a_predicate_on_an_attribute_is_asked_for_every_exception_with_the_same_message():
    _register_codes()
    faultlens.catalog.rule(lambda exc: getattr(exc, "tier", "") == "paid", "PAYMENT_REQUIRED")
    first = _record._classify(_run(_fail, "same message", "free"), None, None)
    second = _record._classify(_run(_fail, "same message", "paid"), None, None)
    third = _record._classify(_run(_fail, "same message", "free"), None, None)
    assert (first.code, second.code, third.code) == (
        "VAL_INVALID_VALUE",
        "PAYMENT_REQUIRED",
        "VAL_INVALID_VALUE",
    )
    assert second.severity.value == "low" and first.severity.value == "medium"
    assert third is first, "the same site, message and code: one classification"


def test_a_cached_classification_is_the_one_computed_afresh_from_another_call_site():
    def elsewhere() -> None:
        _fail("bad input")

    here = _record._classify(_run(_fail, "bad input"), None, None)
    there = _record._classify(_run(elsewhere), None, None)
    assert here.code == there.code
    assert here.fingerprint != there.fingerprint, "another chain of frames, another group"
    _record.reset_caches()
    assert _record._classify(_run(elsewhere), None, None) == there


def test_a_suppressed_error_is_counted_under_its_labels_and_tallied_once_through_two_spans():
    STATE.limits = Limits(rate_limit_burst=1, rate_limit_window=3600)
    with testing.capture() as cap:
        for i in range(4):
            _run(handler, f"bad input {i}")
    # handler's traced span and load's: the exception escapes both, counted once each time.
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE", category="validation") == 4
    assert cap.counter("faultlens.errors", severity="medium") == 4
    assert dropped_counts()["rate_limited"] == 3
    assert len(cap.events()) == 1
    handlers = [s for s in cap.spans if s.name == "handler"]
    assert len(handlers) == 4
    for span in handlers:
        assert span.status.status_code.name == "ERROR"
        assert span.status.description.startswith("VAL_INVALID_VALUE: bad input")
        assert span.attributes["error.type"] == f"{__name__}.Rejected"


def test_the_status_follows_the_classification_not_the_last_one_cached():
    STATE.limits = Limits(rate_limit_burst=0)
    with testing.capture() as cap:
        _run(handler, "bad input 1")
        _run(handler, "bad input 2")
    descriptions = sorted(s.status.description for s in cap.spans if s.name == "load")
    assert descriptions == ["VAL_INVALID_VALUE: bad input 1", "VAL_INVALID_VALUE: bad input 2"]


def test_a_traceback_rebuilt_with_other_lines_gets_its_own_lines_not_the_cached_ones():
    exc = _run(_fail, "bad input")
    tb = exc.__traceback__
    first = _record.format_stacktrace(exc, 16384)
    # What template engines do: the same frames, re-pointed at the template's lines.
    rebuilt = types.TracebackType(tb.tb_next, tb.tb_frame, tb.tb_lasti, 4242)
    again = Rejected("bad input").with_traceback(rebuilt)
    assert "line 4242" in _record.format_stacktrace(again, 16384)
    assert "line 4242" not in first
    assert _record.format_stacktrace(exc, 16384) == first


def test_testing_reset_frees_the_labels_and_status_caches_too():
    STATE.limits = Limits(rate_limit_burst=0)
    with testing.capture():
        _run(handler, "bad input")
    assert _record._LABELS and _record._STATUSES
    testing.reset()
    assert not _record._LABELS and not _record._STATUSES
