"""faultlens.testing lets users assert on their own error handling, in memory."""

from __future__ import annotations

import pytest

import faultlens
from faultlens import testing


class WorkspaceNotFound(faultlens.FaultError):
    code = "WORKSPACE_NOT_FOUND"


@faultlens.instrument(stage="load")
def load_workspace(path):
    raise WorkspaceNotFound(f"no workspace at {path}")


def test_capture_collects_spans_error_records_and_metric_points():
    faultlens.catalog.register("WORKSPACE_NOT_FOUND", category="validation", severity="high")
    with testing.capture() as cap:
        for p in ("/a", "/b"):
            with pytest.raises(WorkspaceNotFound):
                load_workspace(p)
    assert [r.info.code for r in cap.errors] == ["WORKSPACE_NOT_FOUND"] * 2
    assert [s.name for s in cap.spans] == ["load_workspace", "load_workspace"]
    assert len(cap.events("exception")) == 2
    assert cap.counter("faultlens.errors", code="WORKSPACE_NOT_FOUND", stage="load") == 2
    assert cap.counter("faultlens.errors", code="OTHER") == 0


def test_the_pytest_fixture_is_registered(faultlens_capture):
    with pytest.raises(ValueError):
        faultlens.instrument(lambda: int("x"))()
    assert faultlens_capture.errors[0].info.code == "VAL_INVALID_VALUE"


def test_capture_restores_the_previous_routing(app_otel):
    with testing.capture() as cap:
        faultlens.record_error(ValueError("inside"))
    faultlens.record_error(ValueError("outside"))
    assert len(cap.errors) == 1
    assert len(app_otel.exception_events()) == 1


def test_reset_forgets_catalog_entries_and_configuration():
    faultlens.catalog.register("TEMP_CODE", category="system")
    faultlens.configure(service_name="x", journal=False)
    testing.reset(otel_globals=True)
    assert "TEMP_CODE" not in faultlens.catalog
    assert not faultlens.is_configured()


def test_error_events_and_all_metrics_are_one_attribute_away():
    with testing.capture() as cap, pytest.raises(ValueError):
        faultlens.instrument(lambda: int("x"))()
    [event] = cap.error_events
    assert event.attributes["faultlens.error.code"] == "VAL_INVALID_VALUE"
    [point] = cap.metrics["faultlens.errors"]
    assert point.value == 1 and point.attributes["code"] == "VAL_INVALID_VALUE"


def test_configure_inside_a_capture_block_does_not_take_its_providers():
    with testing.capture() as cap:
        faultlens.configure(service_name="svc", journal=False)
        with pytest.raises(ValueError):
            faultlens.instrument(lambda: int("x"))()
    assert len(cap.error_events) == 1
    assert cap.counter("faultlens.errors", code="VAL_INVALID_VALUE") == 1
