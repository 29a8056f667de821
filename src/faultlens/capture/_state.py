"""Process-wide runtime state of the capture layer, set by configure() and faultlens.testing.

Kept in one small object so that every setter has a matching reset and tests can isolate.
Reading it on the hot path is a couple of attribute loads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._record import ErrorEvent, RecordedError

__all__ = ["STATE", "ExceptionLogs", "Limits", "Sink"]


class Sink(Protocol):
    """Receives every recorded error (the journal, faultlens.testing). Called on the
    recording thread: it must be cheap and never block."""

    def __call__(self, record: RecordedError, /) -> None: ...


class Processor(Protocol):
    """Sees each error event before it is emitted: may change its attributes, or return
    None to drop it (like Sentry's before_send, without losing the count)."""

    def __call__(self, event: ErrorEvent, /) -> ErrorEvent | None: ...


class ExceptionLogs(Protocol):
    """Emits a recorded error as an ``exception`` log record in its span's context (see
    ``_exception_logs``). Never raises."""

    def __call__(
        self, span: Any, exc: BaseException, attributes: dict[str, Any], timestamp_ns: int, /
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps that keep one error's cost and size bounded, whatever the exception holds."""

    max_message: int = 4096
    max_stacktrace: int = 16384
    max_context_keys: int = 64
    max_context_value: int = 1024
    rate_limit_burst: int = 100  # events per fingerprint per window before suppression
    rate_limit_window: float = 60.0
    max_fingerprints: int = 10_000
    resources: bool = True


@dataclass(slots=True)
class _State:
    limits: Limits = field(default_factory=Limits)
    tracer_provider: TracerProvider | None = None  # an override of the global provider
    meter_provider: MeterProvider | None = None
    pinned: bool = False  # faultlens.testing.capture() owns the overrides: configure() keeps off
    sinks: tuple[Sink, ...] = ()
    processors: tuple[Processor, ...] = ()
    service_name: str | None = None
    service_version: str | None = None
    settings: Any = None  # the Settings configure() resolved, for layers below _setup
    # How a recorded exception is signalled: the ``exception`` span event (unless the
    # exceptions signal is ``logs``), and/or a log record through ``exception_logs``.
    span_events: bool = True
    exception_logs: ExceptionLogs | None = None
    enabled: bool = True
    generation: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def bump(self) -> None:
        self.generation += 1

    def add_sink(self, sink: Sink) -> None:
        with self.lock:
            if sink not in self.sinks:
                self.sinks = (*self.sinks, sink)

    def remove_sink(self, sink: Sink) -> None:
        with self.lock:
            self.sinks = tuple(s for s in self.sinks if s is not sink)

    def reset(self) -> None:
        with self.lock:
            self.limits = Limits()
            self.tracer_provider = None
            self.meter_provider = None
            self.pinned = False
            self.sinks = ()
            self.processors = ()
            self.service_name = None
            self.service_version = None
            self.settings = None
            self.span_events = True
            self.exception_logs = None
            self.enabled = True
            self.generation += 1


STATE = _State()
