"""Fixtures for the framework integrations: faultlens's in-memory capture, with the contrib
instrumentors' spans going to the same provider (they are passed its tracer provider)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import faultlens
from faultlens.capture._state import STATE


@dataclass
class Web:
    cap: faultlens.testing.Captured

    @property
    def providers(self) -> dict:
        return {"tracer_provider": STATE.tracer_provider, "meter_provider": STATE.meter_provider}

    def server_spans(self):
        from opentelemetry.trace import SpanKind

        return [s for s in self.cap.spans if s.kind is SpanKind.SERVER]

    def server_span(self, route: str, status: int):
        spans = [
            s
            for s in self.server_spans()
            if s.attributes.get("http.route") == route
            and status
            in (s.attributes.get("http.response.status_code"), s.attributes.get("http.status_code"))
        ]
        assert len(spans) == 1, [(s.name, dict(s.attributes)) for s in self.server_spans()]
        return spans[0]

    def exception_events(self):
        return self.cap.events("exception")

    def handled(self, **labels) -> float:
        return self.cap.counter("faultlens.http.handled_errors", **labels)

    def errors(self, **labels) -> float:
        return self.cap.counter("faultlens.errors", **labels)


@pytest.fixture
def web() -> Iterator[Web]:
    with faultlens.testing.capture() as cap:
        yield Web(cap)
