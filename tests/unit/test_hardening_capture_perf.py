"""What the recording hot path remembers, and that remembering never changes what is recorded.

A storm of one error, or a hot failing endpoint, raises from the same code again and again.
The capture layer formats and scrubs each code location's frames once, classifies a
(site, message) once, and keeps ``faultlens.errors`` as plain local counts read by an
observable counter. Every cache is bounded and keyed by everything its result depends on
(the scrubber in force, the catalog entry, the stage), so a result taken from a cache is
exactly the one computed afresh. An error the rate limit suppresses costs no span of its
own; the spans it escapes through still say ERROR.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import faultlens
from faultlens import scrub, testing
from faultlens.capture import Limits, _record, _telemetry, dropped_counts
from faultlens.capture._state import STATE
from faultlens.errors import _fingerprint, classify, fingerprint


def _fail(i: int) -> None:
    raise ValueError(f"bad value {i} for 'job-{i}'")


@faultlens.instrument
def load(i: int) -> None:
    _fail(i)


def _run(fn, *args) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def _fresh_caches() -> None:
    _record._BLOCKS.clear()
    _record._LINES.clear()
    _record._INFOS.clear()
    _fingerprint._CHAIN_CACHE.clear()
    _fingerprint._NORMALIZED.clear()


# -- stack traces: formatted once per code location ---------------------------------------------


def test_a_storm_of_one_error_formats_its_stack_once_and_every_event_has_it_whole():
    _fresh_caches()
    with testing.capture() as cap:
        for i in range(50):
            _run(load, i)
    stacks = [event.attributes["exception.stacktrace"] for _, event in cap.events()]
    assert len(stacks) == 50
    assert len(_record._BLOCKS) == 1, "one code location, one formatted block"
    for i, stack in enumerate(stacks):
        assert stack.startswith("Traceback (most recent call last):\n")
        assert "in _fail\n" in stack and 'raise ValueError(f"bad value {i}' in stack
        assert stack.endswith(f"ValueError: bad value {i} for 'job-{i}'\n")
        assert "faultlens/capture" not in stack  # faultlens's own frames stay out


def test_a_stack_from_the_cache_is_the_stack_formatted_afresh():
    exc = _run(load, 7)
    cached = _record.format_stacktrace(exc, 16384)
    assert _record.format_stacktrace(exc, 16384) == cached
    _fresh_caches()
    assert _record.format_stacktrace(exc, 16384) == cached


def test_the_same_function_failing_on_another_line_gets_its_own_frames():
    def twice(which: int) -> None:
        if which:
            raise KeyError("first line")
        raise KeyError("second line")

    first = _record.format_stacktrace(_run(twice, 1), 16384)
    second = _record.format_stacktrace(_run(twice, 0), 16384)
    assert 'raise KeyError("first line")' in first
    assert 'raise KeyError("second line")' in second
    assert 'raise KeyError("first line")' not in second


def test_a_cached_stack_is_scrubbed_by_the_scrubber_in_force():
    def leak() -> None:
        api_key = "abc"  # noqa: F841 - the source line itself is what leaks
        raise RuntimeError("customer_ssn=123-45-6789 api_key=sk_live_abcdefghijklmnop1234")

    exc = _run(leak)
    default = _record.format_stacktrace(exc, 16384)
    assert "sk_live_abcdefghijklmnop1234" not in default
    assert "123-45-6789" in default  # not a secret for the default scrubber
    scrub.set_current(scrub.Scrubber(extra_keys=["ssn"]))
    try:
        strict = _record.format_stacktrace(exc, 16384)
    finally:
        scrub.set_current(None)
    assert "123-45-6789" not in strict, "a new scrubber is not served the old one's text"
    assert _record.format_stacktrace(exc, 16384) == default


def test_a_stack_longer_than_the_cap_keeps_its_innermost_frames_and_no_secret():
    def deep(n: int) -> None:
        if n:
            deep(n - 1)
        raise RuntimeError("token=" + "x" * 40)

    exc = _run(deep, 300)
    text = _record.format_stacktrace(exc, 4000)
    assert len(text) < 4200
    assert "elided" in text and text.endswith("RuntimeError: token=[REDACTED]\n")


def test_the_stack_caches_stay_bounded_whatever_the_number_of_code_locations():
    _fresh_caches()
    for i in range(_record._MAX_BLOCKS + 50):
        code = compile(f"def f{i}():\n    raise ValueError('x')\n", f"<gen{i}>", "exec")
        space: dict[str, object] = {}
        exec(code, space)
        _record.format_stacktrace(_run(space[f"f{i}"]), 16384)
    assert len(_record._BLOCKS) <= _record._MAX_BLOCKS
    assert _record._blocks_chars <= _record._MAX_BLOCK_CHARS


# -- classification: once per site and message -----------------------------------------------


def test_a_classification_from_the_cache_is_the_one_computed_afresh():
    _fresh_caches()
    first = _record._classify(_run(_fail, 3), None, None)
    again = _record._classify(_run(_fail, 3), None, None)
    assert again == first
    _fresh_caches()
    assert _record._classify(_run(_fail, 3), None, None) == first
    assert first.fingerprint == classify(_run(_fail, 3), message=first.message).fingerprint


def test_the_stage_and_the_catalog_in_force_are_part_of_what_is_cached():
    exc = _run(_fail, 1)
    assert _record._classify(exc, "load", None).stage == "load"
    assert _record._classify(exc, "score", None).stage == "score"

    class Invalid(ValueError):
        pass

    def fail_invalid() -> None:
        raise Invalid("same message")

    assert _record._classify(_run(fail_invalid), None, None).code == "VAL_INVALID_VALUE"
    faultlens.catalog.register("INVALID_INPUT", category="validation", severity="low")
    faultlens.catalog.rule(Invalid, "INVALID_INPUT")
    assert _record._classify(_run(fail_invalid), None, None).code == "INVALID_INPUT"


def test_classifications_fingerprints_and_messages_stay_bounded():
    _fresh_caches()
    for i in range(3000):
        _record._classify(ValueError(f"unknown field {'x' * (i % 7)}{i:x}q"), None, None)
    assert len(_record._INFOS) <= _record._MAX_INFOS
    assert len(_fingerprint._NORMALIZED) <= _fingerprint._MAX_NORMALIZED
    assert len(_fingerprint._CHAIN_CACHE) <= _fingerprint._MAX_CHAINS


_PIECES = st.sampled_from(
    ["'", '"', "-", "0x", "1", "42", "3.5e7", "deadbeef1", "abcdefab", " ", "x", "_", "\n", "\\"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES | st.text(max_size=3), max_size=40).map("".join))
def test_message_normalisation_with_its_shortcuts_equals_every_pattern_in_order(text):
    expected = text[: _fingerprint._MESSAGE_PREFIX]
    for pattern, repl in _fingerprint._NORMALIZERS:
        expected = pattern.sub(repl, expected)
    assert _fingerprint.normalize_message(text) == expected
    assert _fingerprint.normalize_message(text) == expected  # and from the cache


def test_a_uuid_made_of_letters_only_is_still_normalised():
    text = "job abcdefab-abcd-abcd-abcd-abcdefabcdef failed"
    assert _fingerprint.normalize_message(text) == "job <uuid> failed"


def test_fingerprints_from_the_prefix_cache_equal_the_uncached_ones():
    through_load = _run(load, 5)
    direct = _run(_fail, 5)  # another chain of code: without load's frame
    cached = [fingerprint(exc, "bad value") for exc in (through_load, direct)]
    assert cached[0] != cached[1]
    _fresh_caches()
    assert [fingerprint(exc, "bad value") for exc in (through_load, direct)] == cached


# -- the scrubber's trigger scan ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "password=hunter2",
        "Authorization: Bearer abcdefghijklmnop",
        "key AKIAABCDEFGHIJKLMNOP used",
        "postgres://user:pw@db/x",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "<Password>x</Password>",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "SESSION_ID: 1234",
    ],
)
def test_text_with_a_trigger_anywhere_is_still_scrubbed(text):
    for wrapped in (text, f"prefix {text}", f"{text} suffix", f"a\n{text}\nb"):
        assert scrub.current().text(wrapped) != wrapped


def test_text_without_any_trigger_comes_back_as_the_same_object():
    text = "bad value 17 for 'job-42' at /srv/app/loader.py line 9"
    assert scrub.current().text(text) is text


def test_extra_patterns_run_on_every_text():
    scrubber = scrub.Scrubber(extra_patterns=[r"\bEMP-\d{6}\b"])
    assert scrubber.text("employee EMP-123456 left") == "employee [REDACTED] left"


# -- faultlens.errors: local counts, an observable counter ------------------------------------


def test_each_capture_counts_from_zero_and_a_provider_that_lives_on_keeps_counting():
    with testing.capture() as first:
        for i in range(3):
            _run(load, i)
        assert first.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 3
    with testing.capture() as second:
        _run(load, 9)
        assert second.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
        _run(load, 10)
        assert second.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 2


def test_label_sets_past_the_cap_go_to_one_overflow_series(monkeypatch):
    monkeypatch.setattr(_telemetry, "ERRORS_LABEL_SETS", len(_telemetry.errors_counts()) + 2)
    with testing.capture() as cap:
        for stage in ("a", "b", "c", "d"):
            with faultlens.capture(stage=f"overflow-{stage}"):
                _run(load, 1)
        points = cap.metric_points("faultlens.errors")
    stages = sorted(p.attributes.get("stage", "") for p in points if "stage" in p.attributes)
    assert stages == ["overflow-a", "overflow-b"]
    overflow = [p for p in points if p.attributes.get("otel.metric.overflow")]
    assert [p.value for p in overflow] == [2]


# -- suppressed errors: counted, no span of their own, the trace still honest ------------------


@faultlens.instrument(mode="traced", name="handler")
def handler(i: int) -> None:
    load(i)


def test_a_suppressed_error_gets_no_span_but_is_counted_and_its_callers_span_says_error():
    STATE.limits = Limits(rate_limit_burst=2, rate_limit_window=3600)
    with testing.capture() as cap:
        for i in range(5):
            _run(handler, i)
    load_spans = [s for s in cap.spans if s.name == "load"]
    handler_spans = [s for s in cap.spans if s.name == "handler"]
    assert len(load_spans) == 2, "the burst gets spans with events; the rest none"
    assert all(len(s.events) == 1 for s in load_spans)
    assert len(handler_spans) == 5
    for span in handler_spans:
        assert span.status.status_code.name == "ERROR"
        assert span.attributes["error.type"] == "ValueError"
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 5
    assert dropped_counts()["rate_limited"] == 3


def test_without_sinks_or_processors_the_event_goes_straight_onto_the_span(monkeypatch):
    with testing.capture() as cap:
        monkeypatch.setattr(STATE, "sinks", ())
        _run(load, 4)
        (span,) = cap.spans
        (event,) = span.events
    assert event.name == "exception"
    assert span.attributes["error.type"] == "ValueError"
    attrs = event.attributes
    assert attrs["faultlens.error.code"] == "VAL_INVALID_VALUE"
    assert attrs["exception.message"] == "bad value 4 for 'job-4'"
    assert re.search(r"faultlens\.resource\.memory\.rss", " ".join(attrs))
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1


def test_testing_reset_frees_every_recording_cache():
    with testing.capture():
        for i in range(3):
            _run(load, i)
    assert _record._BLOCKS and _record._INFOS and _fingerprint._CHAIN_CACHE
    testing.reset()
    caches = (_record._BLOCKS, _record._LINES, _record._INFOS, _record._STATIC)
    assert not any(caches)
    assert not _fingerprint._CHAIN_CACHE and not _fingerprint._NORMALIZED
    assert _telemetry.errors_counts() == {}
