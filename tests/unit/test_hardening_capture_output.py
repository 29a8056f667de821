"""What leaves the capture layer is clean and shows the application, not faultlens.

- Every string that leaves (span names, attribute keys and values, metric labels, sink
  records) is valid UTF-8: lone surrogates in a class qualname, a stage, a context key or
  value, a code or a function name go through the real OTLP encoder.
- Recorded stack traces and fingerprints show the application's frames only, as the
  uninstrumented traceback would: faultlens's wrapper frames are left out.
"""

from __future__ import annotations

import json
import re
import traceback

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import faultlens
from faultlens.errors import clean_text

SURROGATE = "\udcff"


def _assert_exportable(cap) -> None:
    """The real OTLP encoders accept every span and metric point, and every string in them
    encodes to UTF-8."""
    encode_spans(cap.spans).SerializeToString()
    data = cap._reader.get_metrics_data()
    encode_metrics(data).SerializeToString()
    for span in cap.spans:
        span.name.encode("utf-8")
        for key, value in span.attributes.items():
            key.encode("utf-8")
            if isinstance(value, str):
                value.encode("utf-8")
        for event in span.events:
            for key, value in event.attributes.items():
                key.encode("utf-8")
                if isinstance(value, str):
                    value.encode("utf-8")
    for point in cap.metric_points(None):
        for key, value in point.attributes.items():
            key.encode("utf-8")
            str(value).encode("utf-8")
    for record in cap.errors:
        json.dumps(dict(record.attributes), ensure_ascii=False).encode("utf-8")


def test_clean_text_makes_any_string_exportable():
    assert clean_text(f"a{SURROGATE}b", 10) == "a?b"
    assert clean_text("x" * 20, 5).startswith("xxxxx... [truncated 15 chars]")

    class Odd(str):
        def isascii(self):
            raise RuntimeError("hostile str subclass")

    assert clean_text(Odd(f"k{SURROGATE}"), 10) == "k?"
    assert clean_text(12, 10) == "12"  # not a string at all: summarised, never raised


@pytest.mark.parametrize("mode", ["errors", "traced"])
def test_lone_surrogates_anywhere_never_reach_the_exporter_or_labels(mode):
    class Odd(Exception):
        pass

    Odd.__qualname__ = f"Odd{SURROGATE}Error"  # e.g. generated from undecodable bytes
    Odd.__module__ = f"gen{SURROGATE}"

    def work():
        raise Odd(f"message {SURROGATE}")

    work.__qualname__ = f"work{SURROGATE}"
    work.__name__ = f"work{SURROGATE}"
    wrapped = faultlens.instrument(
        work, mode=mode, stage=f"st{SURROGATE}", attributes={f"k{SURROGATE}": f"v{SURROGATE}"}
    )
    outer = faultlens.capture(stage=f"outer{SURROGATE}", **{f"key{SURROGATE}": SURROGATE})
    with faultlens.testing.capture() as cap:
        with pytest.raises(Odd), outer:
            wrapped()
        faultlens.record_error(
            faultlens.FaultError(f"CODE_{SURROGATE}", "coded"), stage=f"s{SURROGATE}"
        )
    assert cap.counter("faultlens.errors") == 2
    _assert_exportable(cap)
    [_, event] = cap.events()[0]
    assert event.attributes["exception.type"].endswith("Odd?Error")
    assert event.attributes["faultlens.stage"] == "st?"


# -- the application's frames only ----------------------------------------------------------


def _frame_names(stacktrace: str) -> list[str]:
    return re.findall(r'File "[^"]+", line \d+, in (\S+)', stacktrace)


def _plain_frames(func) -> list[str]:
    try:
        func()
    except ValueError as exc:
        return [f.name for f in traceback.extract_tb(exc.__traceback__)]
    raise AssertionError("expected a failure")


def parse(text):
    if not text.endswith("}"):
        raise ValueError(f"unterminated object: {text!r}")
    return {}


def step(text):
    return parse(text)


@pytest.mark.parametrize(
    "options",
    [{}, {"stage": "load"}, {"mode": "traced"}, {"mode": "traced", "stage": "load"}],
    ids=["errors", "errors-staged", "traced", "traced-staged"],
)
def test_recorded_stack_traces_show_the_application_frames_as_without_faultlens(options):
    instrumented_step = faultlens.instrument(step, **options)

    @faultlens.instrument(**options)
    def pipeline():
        return instrumented_step("{broken")

    def plain_pipeline():
        return step("{broken")

    with faultlens.testing.capture() as cap, pytest.raises(ValueError, match="unterminated"):
        pipeline()
    [(_, event)] = cap.events()
    stack = event.attributes["exception.stacktrace"]
    assert "faultlens/capture" not in stack and "wrapt" not in stack
    recorded = _frame_names(stack)
    plain = _plain_frames(plain_pipeline)
    # The recorded trace starts at the innermost instrumented call; from there on it is the
    # uninstrumented trace, frame for frame.
    assert recorded == plain[-len(recorded) :]
    assert recorded[:2] == ["step", "parse"]


def test_generators_and_capture_blocks_leave_no_faultlens_frames_either():
    @faultlens.instrument(mode="traced")
    def rows():
        yield 1
        raise KeyError("row 2")

    @faultlens.capture(stage="read")
    def read_all():
        return list(rows())

    with faultlens.testing.capture() as cap, pytest.raises(KeyError):
        read_all()
    for _, event in cap.events():
        assert "faultlens" not in event.attributes["exception.stacktrace"].replace("faultlens.", "")


def test_the_fingerprint_of_a_library_only_failure_does_not_depend_on_the_wrapper():
    import ipaddress

    variants = [
        faultlens.instrument(ipaddress.ip_address),
        faultlens.instrument(ipaddress.ip_address, stage="parse"),
        faultlens.instrument(ipaddress.ip_address, mode="traced"),
        faultlens.instrument(ipaddress.ip_address, mode="traced", stage="parse"),
    ]
    with faultlens.testing.capture() as cap:
        for ip_address in variants:
            with pytest.raises(ValueError):
                ip_address("not an address")
    fingerprints = {e.attributes["faultlens.error.fingerprint"] for _, e in cap.events()}
    assert len(cap.events()) == 4
    assert len(fingerprints) == 1


def test_an_exception_group_trace_has_no_faultlens_frames():
    @faultlens.instrument
    def batch():
        raise ExceptionGroup("batch", [ValueError("a"), TypeError("b")])

    with faultlens.testing.capture() as cap, pytest.raises(ExceptionGroup):
        batch()
    [(_, event)] = cap.events()
    stack = event.attributes["exception.stacktrace"]
    assert "in batch" in stack and "ValueError" in stack
    assert "_instrument.py" not in stack


def test_envelopes_are_valid_utf8_whatever_the_exception_holds():
    exc = faultlens.FaultError(
        f"CODE_{SURROGATE}",
        f"bad {SURROGATE}",
        details={f"key{SURROGATE}": [f"v{SURROGATE}"], "n": 1},
        stage=f"stage{SURROGATE}",
    )
    for envelope in (faultlens.to_api_envelope(exc), faultlens.to_cli_envelope(exc)):
        json.dumps(envelope, ensure_ascii=False).encode("utf-8")
    assert faultlens.to_api_envelope(exc)["error"]["details"] == {"key?": ["v?"], "n": 1}
