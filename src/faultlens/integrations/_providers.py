"""The tracer provider faultlens hands to the contrib instrumentors it switches on.

A contrib instrumentor asks its ``tracer_provider`` for a tracer once, when it instruments
(``instrument()``, ``instrument_app(app)``, the WSGI/ASGI middleware's constructor), and keeps
it for the life of the process. Bound to whatever provider was current at that moment, its
spans would go to a provider faultlens no longer records through: one shut down by
``faultlens.shutdown()`` before the next ``configure()``, or the global proxy while
``faultlens.testing.capture()`` records elsewhere. ``LateTracerProvider`` hands out tracers
that resolve, at each span, the provider faultlens records through now: its own after
``configure()``, ``faultlens.testing``'s inside ``capture()``, else the global one (the
application's, or ``opentelemetry-instrument``'s). The lookup is cached per generation of
faultlens's state, so a span costs one integer comparison more.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from ..capture._state import STATE

__all__ = ["LateTracerProvider", "late_tracer_provider"]


class LateTracerProvider(trace.TracerProvider):
    """Tracers that find their provider at each span (see the module docstring)."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _LateTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


class _LateTracer(trace.Tracer):
    __slots__ = ("_attributes", "_cached", "_gen", "_name", "_schema_url", "_version")

    def __init__(
        self, name: str, version: str | None, schema_url: str | None, attributes: Any
    ) -> None:
        self._name = name
        self._version = version
        self._schema_url = schema_url
        self._attributes = attributes
        self._cached: trace.Tracer | None = None
        self._gen = -1

    def _tracer(self) -> trace.Tracer:
        cached = self._cached
        if cached is None or self._gen != STATE.generation:
            provider = STATE.tracer_provider or trace.get_tracer_provider()
            try:
                cached = provider.get_tracer(
                    self._name, self._version, self._schema_url, self._attributes
                )
            except TypeError:  # a provider predating tracer attributes
                cached = provider.get_tracer(self._name, self._version, self._schema_url)
            self._cached = cached
            self._gen = STATE.generation
        return cached

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)


_PROVIDER = LateTracerProvider()


def late_tracer_provider() -> LateTracerProvider:
    """The one ``LateTracerProvider`` (stateless: any instance would do)."""
    return _PROVIDER
