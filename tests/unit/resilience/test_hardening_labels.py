"""Every string resilience puts on a metric label or span attribute is valid UTF-8: an
operation, breaker or class name holding a lone surrogate (what ``os.fsdecode`` makes of an
undecodable file name, say) would make the OTLP encoder fail on every export."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from faultlens.resilience import CircuitBreaker, recover, resilient, retry, retrying

BAD = "caf\udce9"  # a lone surrogate: os.fsdecode(b"caf\xe9")


class Hostile(ConnectionError):
    pass


Hostile.__qualname__ = f"Hostile{BAD}"  # the error.type label


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _strings(v)


def assert_exportable(cap) -> None:
    data = cap._reader.get_metrics_data()
    encode_metrics(data).SerializeToString()  # raised on the surrogate before
    encode_spans(cap.spans).SerializeToString()
    for point in cap.metric_points(None):
        for value in point.attributes.values():
            for s in _strings(value):
                s.encode("utf-8")
    for span in cap.spans:
        for event in span.events:
            for value in event.attributes.values():
                for s in _strings(value):
                    s.encode("utf-8")


def test_a_retry_operation_and_error_type_with_a_surrogate_are_cleaned(cap, slept):
    @retry(attempts=2, on=ConnectionError, operation=f"fetch-{BAD}")
    def fetch():
        raise Hostile("down")

    with pytest.raises(Hostile):
        fetch()
    for attempt in retrying(attempts=2, operation=f"loop-{BAD}", on=ConnectionError):
        with attempt:
            if attempt.number == 1:
                raise Hostile("down")
    assert_exportable(cap)
    operations = {p.attributes["operation"] for p in cap.metric_points("faultlens.retry.calls")}
    assert operations == {"fetch-caf?", "loop-caf?"}


def test_a_function_whose_name_holds_a_surrogate_is_cleaned(cap, slept):
    def fetch():
        raise ConnectionError("down")

    fetch.__qualname__ = f"fetch_{BAD}"
    with pytest.raises(ConnectionError):
        retry(attempts=2)(fetch)()
    assert_exportable(cap)


def test_a_breaker_name_with_a_surrogate_is_cleaned_everywhere(cap):
    breaker = CircuitBreaker(f"db-{BAD}", failure_threshold=1)
    assert breaker.name == f"db-{BAD}"  # the name you gave is kept as is

    @breaker
    def call():
        raise Hostile("down")

    with pytest.raises(Hostile):
        call()
    with pytest.raises(Exception, match="is open"):
        call()
    assert_exportable(cap)
    names = {p.attributes["breaker"] for p in cap.metric_points("faultlens.circuit_breaker.calls")}
    assert names == {"db-caf?"}


def test_recovery_labels_are_cleaned(cap, slept):
    class Named:
        name = f"strategy-{BAD}"

        def applies(self, exc):
            return True

        def attempt(self, ctx):
            return "ok"

        async def attempt_async(self, ctx):
            return "ok"

    @recover(Named(), operation=f"op-{BAD}")
    def call():
        raise Hostile("down")

    assert call() == "ok"

    @resilient(retry={"attempts": 2}, breaker=f"stack-{BAD}", fallbacks=["x"])
    def stacked():
        raise Hostile("down")

    assert stacked() == "x"
    assert_exportable(cap)
