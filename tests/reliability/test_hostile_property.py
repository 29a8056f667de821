"""Property: whatever an exception or a context value holds, the caller's behaviour is
unchanged and nothing raises out of faultlens."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faultlens

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=2000)
odd_text = st.one_of(
    text,
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=50),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def _hostile_class(str_mode: str, repr_mode: str, base: type[BaseException]) -> type:
    def behave(mode: str, fallback: str):
        def method(self):
            if mode == "raise":
                raise RuntimeError("hostile")
            if mode == "nonstr":
                return 12345
            if mode == "recurse":
                return str(self)
            return fallback

        return method

    return type(
        "Hostile",
        (base,),
        {"__str__": behave(str_mode, "s"), "__repr__": behave(repr_mode, "r")},
    )


modes = st.sampled_from(["ok", "raise", "nonstr", "recurse"])
bases = st.sampled_from([Exception, ValueError, OSError, LookupError, BaseException])


@st.composite
def hostile_exceptions(draw) -> BaseException:
    kind = draw(st.sampled_from(["message", "hostile", "cycle", "group", "fault"]))
    if kind == "message":
        return draw(bases)(draw(odd_text))
    if kind == "hostile":
        return _hostile_class(draw(modes), draw(modes), draw(bases))()
    if kind == "cycle":
        a, b = ValueError(draw(text)), KeyError(draw(text))
        a.__cause__, b.__context__ = b, a
        return a
    if kind == "group":
        return ExceptionGroup(draw(text) or "g", [ValueError("a"), TimeoutError(draw(text))])
    return faultlens.FaultError(
        draw(st.from_regex(r"[A-Z][A-Z_]{0,20}", fullmatch=True)),
        draw(odd_text),
        details={"x": draw(odd_text), "password": draw(text)},
    )


context_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=5),
    st.builds(object),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exc=hostile_exceptions(), ctx=st.dictionaries(st.text(max_size=20), context_values))
def test_any_exception_propagates_unchanged_and_is_recorded_or_summarised(exc, ctx):
    @faultlens.instrument
    def boom():
        raise exc

    with faultlens.testing.capture() as cap:
        with pytest.raises(BaseException) as raised, faultlens.capture(stage="prop", **ctx):
            boom()
        assert raised.value is exc
        info = faultlens.record_error(exc)
        assert info.code
        json.dumps(faultlens.to_api_envelope(exc))
        json.dumps(faultlens.to_cli_envelope(exc))
    assert len(cap.errors) == 1
    for value in cap.errors[0].attributes.values():
        if isinstance(value, str):
            value.encode("utf-8")  # valid UTF-8 for every exporter
