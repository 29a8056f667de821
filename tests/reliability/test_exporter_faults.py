"""Exporters that raise, hang or are slow never slow down or break the application, and
what they lose is counted."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import faultlens
from faultlens._setup import CountingBatchSpanProcessor, CountingSpanExporter
from faultlens.capture import dropped_counts


class Raising(SpanExporter):
    def export(self, spans):
        raise RuntimeError("exporter bug")

    def shutdown(self):
        pass


class Hanging(SpanExporter):
    def __init__(self):
        self.release = threading.Event()

    def export(self, spans):
        self.release.wait(5)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.release.set()


class Failing(SpanExporter):
    def export(self, spans):
        return SpanExportResult.FAILURE

    def shutdown(self):
        pass


def _app_with(exporter, **kwargs):
    tp = TracerProvider()
    processor = CountingBatchSpanProcessor(
        CountingSpanExporter(exporter), schedule_delay_millis=10, **kwargs
    )
    tp.add_span_processor(processor)
    trace.set_tracer_provider(tp)
    return tp, processor


@faultlens.instrument
def fail(i):
    raise ValueError(f"v{i}")


def _storm(n):
    start = time.monotonic()
    for i in range(n):
        with pytest.raises(ValueError):
            fail(i)
    return time.monotonic() - start


def test_a_raising_exporter_is_counted_as_export_failed():
    tp, processor = _app_with(Raising())
    _storm(20)
    processor.force_flush()
    assert dropped_counts().get("export_failed", 0) == 20
    tp.shutdown()


def test_a_failing_exporter_is_counted_as_export_failed():
    tp, processor = _app_with(Failing())
    _storm(7)
    processor.force_flush()
    assert dropped_counts().get("export_failed", 0) == 7
    tp.shutdown()


def test_a_hanging_exporter_does_not_block_recording_and_overflow_is_counted():
    hanging = Hanging()
    tp, _ = _app_with(hanging, max_queue_size=50, max_export_batch_size=10)
    elapsed = _storm(300)
    assert elapsed < 2.0, "recording never waits on the exporter"
    assert dropped_counts().get("queue_full", 0) > 0
    hanging.release.set()
    tp.shutdown()


def test_shutdown_during_a_storm_neither_raises_nor_hangs():
    faultlens.configure(service_name="storm", journal=False)
    stop = threading.Event()
    errors = []

    def worker():
        while not stop.is_set():
            try:
                fail(1)
            except ValueError:
                pass
            except BaseException as exc:  # anything else is a faultlens bug
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    start = time.monotonic()
    faultlens.shutdown(timeout=2)
    assert time.monotonic() - start < 5
    time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(5)
    assert errors == []


def test_a_flush_exports_what_was_queued_and_does_not_chase_new_spans():
    """A storm on a slow machine: spans keep arriving while the flush exports. The flush
    takes what was queued when it began (in full batches) and returns; the newcomers wait
    for the next flush or the schedule, instead of one export request each."""
    tracer_box: list = []

    class Slow(SpanExporter):
        def __init__(self) -> None:
            self.batches: list[int] = []

        def export(self, spans):
            self.batches.append(len(spans))
            if len(self.batches) < 50:  # a failure arrives during every export
                tracer_box[0].start_span("late").end()
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    exporter = Slow()
    processor = CountingBatchSpanProcessor(
        exporter, max_export_batch_size=4, schedule_delay_millis=60_000
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer_box.append(provider.get_tracer("t"))
    for _ in range(10):
        tracer_box[0].start_span("queued").end()
    assert processor.force_flush() is True
    # The SDK's own flush exported until the queue was empty: here, 50 requests.
    assert sum(exporter.batches) >= 10  # everything queued before the flush went out
    assert len(exporter.batches) <= 6, exporter.batches  # its batches (+ the worker's)
    processor.shutdown()
