"""Every exception gets a code, a category and a severity; the most specific rule wins."""

from __future__ import annotations

import logging

import pytest

import faultlens
from faultlens import Category, FaultError, Severity, classify
from support.cases import BUILTIN_TABLE


@pytest.mark.parametrize(("exc", "code", "category", "retryable"), BUILTIN_TABLE)
def test_builtin_exceptions_map_to_the_contract_codes(exc, code, category, retryable):
    info = classify(exc)
    assert (info.code, info.category, info.retryable) == (code, category, retryable)
    assert info.category == Category(category)
    assert isinstance(info.severity, Severity)
    assert info.hint, "every built-in code explains what to do"


def test_the_most_specific_class_wins():
    # ConnectionRefusedError -> ConnectionError -> OSError; ModuleNotFoundError -> ImportError
    assert classify(ConnectionRefusedError()).code == "NET_CONNECTION_FAILED"
    assert classify(ModuleNotFoundError("x")).code == "EXE_IMPORT_FAILED"
    assert classify(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")).code == "VAL_INVALID_VALUE"
    assert classify(OSError("other")).code == "SYS_UNKNOWN_ERROR"


def test_user_type_rules_take_precedence_over_builtins_most_specific_first():
    faultlens.catalog.register("DISK_GONE", category="resource", severity="critical")
    faultlens.catalog.register("IO_PROBLEM", category="system")
    faultlens.catalog.rule(OSError, "IO_PROBLEM")
    faultlens.catalog.rule(FileNotFoundError, "DISK_GONE")

    assert classify(FileNotFoundError()).code == "DISK_GONE"
    assert classify(PermissionError()).code == "IO_PROBLEM"  # user OSError beats built-in
    assert classify(ValueError()).code == "VAL_INVALID_VALUE"  # untouched


def test_predicate_rules_see_the_exception_instance():
    faultlens.catalog.register("RATE_LIMITED", category="network", retryable=True)
    faultlens.catalog.rule(lambda e: "429" in str(e), "RATE_LIMITED")
    assert classify(RuntimeError("HTTP 429 Too Many Requests")).code == "RATE_LIMITED"
    assert classify(RuntimeError("HTTP 500")).code == "SYS_UNKNOWN_ERROR"


def test_a_predicate_that_raises_is_skipped_not_propagated():
    faultlens.catalog.register("NEVER", category="system")
    faultlens.catalog.rule(lambda e: 1 / 0, "NEVER")
    assert classify(ValueError()).code == "VAL_INVALID_VALUE"


class WorkspaceNotFound(FaultError):
    code = "WORKSPACE_NOT_FOUND"


def test_fault_error_subclass_takes_category_and_hint_from_the_catalog():
    faultlens.catalog.register(
        "WORKSPACE_NOT_FOUND", category="validation", severity="high", hint="check the path"
    )
    exc = WorkspaceNotFound("no workspace at /w", details={"path": "/w"}, stage="load")
    info = classify(exc)
    assert (info.code, info.category, info.severity, info.hint, info.stage) == (
        "WORKSPACE_NOT_FOUND",
        "validation",
        Severity.HIGH,
        "check the path",
        "load",
    )
    assert str(exc) == "no workspace at /w"
    assert exc.details == {"path": "/w"}
    assert exc.category == "validation" and exc.severity is Severity.HIGH


def test_fault_error_with_code_and_message_and_cause():
    cause = OSError("disk")
    exc = FaultError("MISSING_FILE", "result.json is missing", stage="validate", cause=cause)
    assert exc.code == "MISSING_FILE"
    assert exc.message == "result.json is missing"
    assert exc.__cause__ is cause


def test_an_unknown_code_is_kept_as_system_medium_and_warned_about_once(caplog):
    caplog.set_level(logging.WARNING, logger="faultlens")
    for _ in range(3):
        info = classify(FaultError("NOBODY_KNOWS_ME", "x"))
    assert (info.code, info.category, info.severity) == ("NOBODY_KNOWS_ME", "system", "medium")
    assert not info.known_code
    warnings = [r for r in caplog.records if "NOBODY_KNOWS_ME" in r.getMessage()]
    assert len(warnings) == 1


def test_fault_errors_pickle_with_their_fields():
    import pickle

    exc = WorkspaceNotFound("gone", details={"a": 1}, stage="s")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is WorkspaceNotFound
    assert (back.code, back.message, back.details, back.stage) == (
        "WORKSPACE_NOT_FOUND",
        "gone",
        {"a": 1},
        "s",
    )


def test_fault_error_misuse_is_a_clear_type_error():
    with pytest.raises(TypeError, match="error code must be a non-empty string"):
        FaultError(None, "x")


def test_an_exception_group_classifies_as_its_most_severe_member():
    group = ExceptionGroup("batch", [ValueError("a"), MemoryError(), TimeoutError()])
    assert classify(group).code == "RES_INSUFFICIENT_MEMORY"


def test_classify_reads_hostile_exceptions_without_raising():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no str for you")

        def __repr__(self):
            raise RuntimeError("no repr either")

    info = classify(Hostile())
    assert info.code == "SYS_UNKNOWN_ERROR"
    assert "unprintable" in info.message
