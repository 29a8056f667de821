"""One default per resilience setting, in one place (``ResilienceDefaults``).

``Retry()``, ``CircuitBreaker()`` and ``recover()`` behave the same before ``configure()``
and after it when no faultlens.yaml, variable or argument changes them; decorators made
before ``configure()`` take a later faultlens.yaml for every argument they left unset, and
explicit arguments always win. ``shutdown()`` and ``faultlens.testing.reset()`` go back to
the built-in values.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

import faultlens
from faultlens import CircuitBreaker, ConfigError, retry
from faultlens._config import ErrorHandling, load_settings
from faultlens.resilience import ResilienceDefaults, Retry, defaults, set_defaults


def _always_failing():
    raise ConnectionError("down")


def _configure(**kwargs):
    return faultlens.configure(service_name="t", journal=False, exporter="none", **kwargs)


def _params(policy: Retry):
    p = policy.params()
    return (p.attempts, p.wait_initial, p.wait_max, p.wait_exp_base, p.wait_jitter, p.timeout)


def _breaker(b: CircuitBreaker):
    return (b.failure_threshold, b.open_timeout)


def test_the_configuration_schema_takes_its_defaults_from_the_resilience_layer():
    """Nothing set anywhere: the loaded schema maps back to exactly the built-in defaults."""
    settings = load_settings(env={})
    assert settings.error_handling.resilience == ResilienceDefaults()
    assert ErrorHandling().resilience == ResilienceDefaults()
    eh = settings.error_handling
    assert eh.retry.max_retries + 1 == ResilienceDefaults().attempts
    assert eh.recovery.circuit_breaker.timeout == ResilienceDefaults().open_timeout


def test_defaults_are_identical_before_and_after_configure_without_a_file():
    before_retry = _params(Retry())
    before_breaker = _breaker(CircuitBreaker("identical-before"))
    assert before_retry == (3, 0.1, 5.0, 2.0, True, None)
    assert before_breaker == (5, 30.0)

    _configure()
    assert defaults() == ResilienceDefaults()
    assert _params(Retry()) == before_retry
    assert _breaker(CircuitBreaker("identical-after")) == before_breaker

    faultlens.shutdown()
    assert _params(Retry()) == before_retry


def test_a_decorator_made_before_configure_takes_the_file_for_what_it_left_unset(tmp_path):
    policy = Retry()  # module level, at import: before configure()
    pinned = Retry(attempts=7, wait_max=9.0)
    breaker = CircuitBreaker("made-before", failure_threshold=2)
    assert _params(policy)[:3] == (3, 0.1, 5.0)

    (tmp_path / "faultlens.yaml").write_text(
        "error_handling:\n"
        "  retry: {max_retries: 5, base_delay: 0.5, max_delay: 8, exponential_backoff: false,"
        " jitter: false}\n"
        "  recovery: {circuit_breaker: {failure_threshold: 9, timeout: 12}}\n"
    )
    _configure(config_file=str(tmp_path / "faultlens.yaml"))

    assert _params(policy) == (6, 0.5, 8.0, 1.0, False, None)
    # explicit arguments win; the rest come from the file
    assert _params(pinned) == (7, 0.5, 9.0, 1.0, False, None)
    assert _breaker(breaker) == (2, 12.0)
    assert _breaker(CircuitBreaker("made-after")) == (9, 12.0)

    faultlens.shutdown()  # back to the built-in values, as before configure()
    assert _params(policy) == (3, 0.1, 5.0, 2.0, True, None)
    assert _breaker(breaker) == (2, 30.0)


def test_a_decorated_function_reads_the_new_defaults_at_its_next_call(tmp_path, slept):
    flaky = retry(_always_failing)  # decorated before configure(): 3 attempts, 2 waits
    with pytest.raises(ConnectionError):
        flaky()
    assert len(slept.delays) == 2

    (tmp_path / "faultlens.yaml").write_text(
        "error_handling:\n  retry: {max_retries: 1, base_delay: 0.25, max_delay: 0.25}\n"
    )
    _configure(config_file=str(tmp_path / "faultlens.yaml"))
    slept.delays.clear()
    with pytest.raises(ConnectionError):
        flaky()
    assert slept.delays == [0.25]


def test_recovery_enabled_false_in_the_file_turns_fallbacks_off(tmp_path):
    @faultlens.recover(fallbacks=[lambda: "fallback"])
    def result():
        raise ValueError("no")

    assert result() == "fallback"
    (tmp_path / "faultlens.yaml").write_text("error_handling:\n  recovery: {enabled: false}\n")
    _configure(config_file=str(tmp_path / "faultlens.yaml"))
    with pytest.raises(ValueError):
        result()
    faultlens.testing.reset()
    assert result() == "fallback"


def test_testing_reset_restores_the_built_in_defaults():
    set_defaults(ResilienceDefaults(attempts=9, open_timeout=1.0))
    assert Retry().params().attempts == 9
    faultlens.testing.reset()
    assert defaults() is not None and defaults() == ResilienceDefaults()
    assert Retry().params().attempts == 3


def test_the_defaults_object_is_frozen_and_typed():
    d = ResilienceDefaults()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.attempts = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        set_defaults({"attempts": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"wait_initial": -1}, "wait_initial"),
        ({"wait_initial": math.inf}, "wait_initial"),
        ({"wait_initial": 2.0, "wait_max": 1.0}, "wait_max"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
        ({"wait_jitter": "yes"}, "wait_jitter"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"open_timeout": math.nan}, "open_timeout"),
        ({"recovery_enabled": 1}, "recovery_enabled"),
    ],
)
def test_a_hand_built_defaults_object_is_checked_like_decorator_arguments(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        ResilienceDefaults(**kwargs)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("error_handling: {retry: {base_delay: 1.0e+12, max_delay: 1.0e+12}}", "base_delay"),
        ("error_handling: {retry: {max_delay: 1.0e+300}}", "error_handling.retry.max_delay"),
        (
            "error_handling: {recovery: {circuit_breaker: {timeout: 1.0e+300}}}",
            "error_handling.recovery.circuit_breaker.timeout",
        ),
    ],
)
def test_a_duration_no_clock_can_take_is_refused_by_its_file_key(tmp_path, yaml_text, key):
    """Before, such values were clamped silently inside retry and the breaker."""
    f = tmp_path / "faultlens.yaml"
    f.write_text(yaml_text + "\n")
    with pytest.raises(ConfigError, match=key):
        load_settings(config_file=str(f), env={})
