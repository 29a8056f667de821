"""Fixtures for unit tests: an application-owned tracer provider with an in-memory exporter."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class AppOTel:
    """What an application that set up OTel itself would have."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    @property
    def spans(self):
        return list(self.exporter.get_finished_spans())

    def exception_events(self):
        return [(s, e) for s in self.spans for e in s.events if e.name == "exception"]

    def tracer(self):
        return self.provider.get_tracer("app")


@pytest.fixture
def app_otel() -> AppOTel:
    from opentelemetry import metrics

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(mp)
    return AppOTel(provider, exporter, mp, reader)
