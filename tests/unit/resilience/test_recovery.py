"""faultlens.recover / RecoveryManager: restart, fallback chain, degradation, intervention."""

from __future__ import annotations

import pytest

from faultlens.capture import dropped_counts, get_tracer
from faultlens.errors import ConfigError, Severity
from faultlens.resilience import (
    Degrade,
    Degraded,
    Fallback,
    InterventionRequest,
    ManualIntervention,
    RecoveryManager,
    Restart,
    recover,
)


def actions(cap):
    return {
        (p.attributes["strategy"], p.attributes["outcome"]): p.value
        for p in cap.metric_points("faultlens.recovery.actions")
    }


def broken(*args, **kwargs):
    raise ConnectionError("primary down")


# -- fallback chain -------------------------------------------------------------------------


def test_the_first_fallback_that_succeeds_wins_and_each_failure_is_counted(cap):
    tried = []

    def from_cache(job):
        tried.append("cache")
        raise KeyError(job)

    def from_replica(job):
        tried.append("replica")
        return f"replica:{job}"

    def never(job):
        tried.append("never")
        return "never"

    @recover(fallbacks=[from_cache, from_replica, never])
    def result(job):
        raise ConnectionError("primary down")

    with get_tracer().start_as_current_span("request"):
        assert result(7) == "replica:7"
    assert tried == ["cache", "replica"]
    assert actions(cap) == {("fallback", "failed"): 1, ("fallback", "recovered"): 1}
    (duration,) = cap.metric_points("faultlens.recovery.duration")
    assert duration.attributes == {"strategy": "fallback"} and duration.value.count == 2
    events = [e.attributes for _, e in cap.events("faultlens.recovery")]
    assert [(a["faultlens.recovery.index"], a["faultlens.recovery.outcome"]) for a in events] == [
        (0, "failed"),
        (1, "recovered"),
    ]
    assert events[0]["error.type"] == "KeyError"


def test_the_recovered_failure_is_still_recorded(cap):
    @recover(fallbacks=["cached"])
    def result():
        raise ConnectionError("primary down")

    assert result() == "cached"  # a non-callable fallback is the value itself
    assert [r.info.code for r in cap.errors] == ["NET_CONNECTION_FAILED"]


def test_when_every_fallback_fails_the_original_exception_propagates_unchanged(cap):
    original = ConnectionError("primary down")

    def primary():
        raise original

    guarded = recover(fallbacks=[broken, broken])(primary)
    with pytest.raises(ConnectionError) as info:
        guarded()
    assert info.value is original
    assert info.value.__context__ is None
    assert actions(cap) == {("fallback", "failed"): 2}


def test_success_touches_no_strategy(cap):
    assert recover(fallbacks=[broken])(lambda: 5)() == 5
    assert actions(cap) == {}


def test_control_flow_is_never_recovered(cap):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recover(fallbacks=["x"])(interrupted)()
    assert actions(cap) == {}


def test_on_limits_which_errors_are_recovered(cap):
    guarded = recover(fallbacks=["x"], on=ConnectionError)(lambda: {}["missing"])
    with pytest.raises(KeyError):
        guarded()
    assert actions(cap) == {}


def test_a_strategy_whose_on_does_not_match_is_skipped(cap):
    manager = RecoveryManager([Fallback("a", on=TimeoutError), Fallback("b")])
    assert manager(broken)() == "b"
    assert actions(cap) == {("fallback", "skipped"): 1, ("fallback", "recovered"): 1}


def test_recovery_disabled_in_the_configuration_skips_every_strategy(tmp_path):
    import faultlens

    (tmp_path / "faultlens.yaml").write_text("error_handling:\n  recovery: {enabled: false}\n")
    faultlens.configure(
        service_name="t",
        journal=False,
        exporter="none",
        config_file=str(tmp_path / "faultlens.yaml"),
    )
    with faultlens.testing.capture() as cap:  # after configure(), which installs providers
        with pytest.raises(ConnectionError):
            recover(fallbacks=["x"])(broken)()
        assert actions(cap) == {("fallback", "skipped"): 1}


# -- restart ----------------------------------------------------------------------------------


def test_restart_reruns_with_a_fresh_resource(cap):
    made = []

    def connect():
        made.append(f"conn{len(made) + 1}")
        return made[-1]

    seen = []

    @recover(Restart(connect, argument="conn"))
    def query(conn, sql):
        seen.append(conn)
        if conn == "stale":
            raise ConnectionError("reset by peer")
        return f"{sql} via {conn}"

    assert query("stale", "select 1") == "select 1 via conn1"
    assert query(sql="select 2", conn="stale") == "select 2 via conn2"
    assert seen == ["stale", "conn1", "stale", "conn2"]
    assert actions(cap) == {("restart", "recovered"): 2}


def test_restart_tries_its_attempts_then_fails(cap):
    runs = []

    @recover(Restart(lambda: "fresh", argument="conn", attempts=2), Fallback("fallback"))
    def query(conn):
        runs.append(conn)
        raise ConnectionError

    assert query("old") == "fallback"
    assert runs == ["old", "fresh", "fresh"]
    assert actions(cap) == {("restart", "failed"): 1, ("fallback", "recovered"): 1}


def test_restart_needs_an_argument_to_replace():
    with pytest.raises(ConfigError, match="argument"):
        recover(Restart(lambda: 1, argument="conn"))(lambda sql: sql)


def test_restart_without_factory_runs_the_call_again(cap):
    runs = []

    @recover(Restart())
    def flaky():
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError
        return "second time"

    assert flaky() == "second time"


# -- degradation ------------------------------------------------------------------------------


def test_degradation_marks_the_result(cap):
    @recover(Degrade([]))
    def recommendations(user):
        raise TimeoutError("model server slow")

    result = recommendations("u1")
    assert isinstance(result, Degraded)
    assert result.value == []
    assert (result.error_type, result.code) == ("TimeoutError", "EXE_TIMEOUT")
    assert Degraded.unwrap(result) == [] and Degraded.unwrap(5) == 5
    assert actions(cap) == {("degrade", "recovered"): 1}


def test_degradation_from_a_factory_sees_the_exception(cap):
    guarded = recover(Degrade(factory=lambda exc: f"partial ({type(exc).__name__})"))(broken)
    assert guarded().value == "partial (ConnectionError)"


# -- manual intervention ----------------------------------------------------------------------


def test_manual_intervention_notifies_records_critical_and_reraises(cap):
    requests: list[InterventionRequest] = []
    original = PermissionError("cannot write /data")

    def primary():
        raise original

    guarded = recover(ManualIntervention(notify=requests.append), Fallback("never"))(primary)
    with pytest.raises(PermissionError) as info:
        guarded()
    assert info.value is original
    (request,) = requests
    assert request.exception is original
    assert request.severity is Severity.CRITICAL
    assert request.info.code == "EXE_PERMISSION_DENIED"
    assert [r.info.severity for r in cap.errors] == [Severity.CRITICAL]
    assert actions(cap) == {("manual_intervention", "failed"): 1}  # the fallback never ran
    ((_, event),) = cap.events("faultlens.recovery.intervention")
    assert event.attributes["faultlens.error.severity"] == "critical"


def test_a_notify_hook_that_raises_does_not_replace_the_error(cap):
    def hook(request):
        raise RuntimeError("pager down")

    with pytest.raises(ConnectionError):
        recover(ManualIntervention(notify=hook))(broken)()
    assert dropped_counts()["internal_error"] >= 1


# -- async ------------------------------------------------------------------------------------


async def test_async_functions_with_sync_and_async_fallbacks(cap):
    async def from_cache(job):
        raise KeyError(job)

    def default(job):
        return f"default:{job}"

    @recover(fallbacks=[from_cache, default])
    async def result(job):
        raise ConnectionError

    assert await result(3) == "default:3"
    assert actions(cap) == {("fallback", "failed"): 1, ("fallback", "recovered"): 1}


async def test_async_restart_degrade_and_intervention(cap):
    async def connect():
        return "fresh"

    @recover(Restart(connect, argument="conn"))
    async def query(conn):
        if conn != "fresh":
            raise ConnectionError
        return conn

    assert await query("stale") == "fresh"

    notified = []

    async def notify(request):
        notified.append(request)

    @recover(ManualIntervention(notify=notify))
    async def fatal():
        raise PermissionError

    with pytest.raises(PermissionError):
        await fatal()
    assert len(notified) == 1

    @recover(Degrade(factory=lambda exc: 0))
    async def count():
        raise TimeoutError

    assert (await count()).value == 0


def test_manager_run_and_run_async_without_decorating(cap):
    manager = RecoveryManager([Fallback(lambda x: x + 1)])
    assert manager.run(lambda x: 1 / 0, 1) == 2


async def test_manager_run_async(cap):
    async def primary(x):
        raise ConnectionError

    manager = RecoveryManager([Fallback(lambda x: x * 10)])
    assert await manager.run_async(primary, 4) == 40


# -- configuration ----------------------------------------------------------------------------


def test_async_fallbacks_are_refused_for_sync_functions():
    async def from_cache():
        return 1

    with pytest.raises(ConfigError, match="async"):
        recover(fallbacks=[from_cache])(lambda: 1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: RecoveryManager([]),
        lambda: RecoveryManager(["not a strategy"]),
        lambda: Fallback(),
        lambda: recover(fallbacks="from_cache"),
        lambda: Restart(factory=5),
        lambda: Restart(attempts=0),
        lambda: Degrade(factory=5),
        lambda: ManualIntervention(notify=5),
    ],
)
def test_bad_arguments_are_refused(build):
    with pytest.raises(ConfigError):
        build()


def test_generator_functions_are_refused():
    def gen():
        yield 1

    with pytest.raises(ConfigError, match="generator"):
        recover(fallbacks=[1])(gen)
