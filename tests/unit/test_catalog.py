"""Catalogs are strict where a typo would split a series, and say how to fix it."""

from __future__ import annotations

import textwrap

import pytest

import faultlens
from faultlens import Catalog, CatalogError, UnknownCodeError


def write(tmp_path, text: str):
    path = tmp_path / "codes.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_register_and_look_up_a_code():
    spec = faultlens.catalog.register(
        "INVALID_PARAMS", category="validation", severity="high", hint="check the job params"
    )
    assert faultlens.catalog["INVALID_PARAMS"] == spec
    assert "INVALID_PARAMS" in faultlens.catalog


def test_registering_the_same_definition_twice_is_harmless():
    faultlens.catalog.register("X_CODE", category="system")
    faultlens.catalog.register("X_CODE", category="system")


def test_a_conflicting_redefinition_is_refused_unless_replace():
    faultlens.catalog.register("X_CODE", category="system")
    with pytest.raises(CatalogError, match="already defined"):
        faultlens.catalog.register("X_CODE", category="network")
    faultlens.catalog.register("X_CODE", category="network", replace=True)
    assert faultlens.catalog["X_CODE"].category == "network"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"category": "validaton"}, "unknown category 'validaton'"),
        ({"category": "system", "severity": "urgent"}, "unknown severity 'urgent'"),
        ({"category": "system", "retryable": "yes"}, "retryable must be true or false"),
    ],
)
def test_bad_fields_fail_with_the_fix(kwargs, message):
    with pytest.raises(CatalogError, match=message):
        faultlens.catalog.register("SOME_CODE", **kwargs)


def test_invalid_code_names_are_refused():
    with pytest.raises(CatalogError, match="invalid code"):
        faultlens.catalog.register("has spaces", category="system")


def test_looking_up_an_unknown_code_strictly_raises_a_typed_error():
    with pytest.raises(UnknownCodeError, match="faultlens codes"):
        faultlens.catalog["NOPE"]


def test_a_rule_must_target_a_known_code():
    with pytest.raises(UnknownCodeError, match="register the code first"):
        faultlens.catalog.rule(KeyError, "NOT_REGISTERED")


def test_extra_categories_can_be_declared():
    faultlens.catalog.add_category("billing")
    faultlens.catalog.register("CARD_DECLINED", category="billing")
    assert faultlens.classify(faultlens.FaultError("CARD_DECLINED", "x")).category == "billing"


class Missing(Exception):
    pass


def test_load_a_yaml_catalog_with_codes_categories_and_rules(tmp_path):
    path = write(
        tmp_path,
        f"""
        categories: [billing]
        codes:
          WORKSPACE_NOT_FOUND:
            category: validation
            severity: high
            hint: check the workspace path
          CARD_DECLINED: {{category: billing, severity: low, retryable: false}}
        rules:
          - exception: {__name__}:Missing
            code: WORKSPACE_NOT_FOUND
        """,
    )
    specs = faultlens.catalog.load(path)
    assert [s.code for s in specs] == ["WORKSPACE_NOT_FOUND", "CARD_DECLINED"]
    assert faultlens.classify(Missing()).code == "WORKSPACE_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ("codes:\n  A_CODE: {category: nope}\n", "codes.A_CODE.category", "unknown category"),
        ("codes:\n  A_CODE: {category: system, colour: red}\n", "codes.A_CODE", "unknown field"),
        (
            "codes:\n  A_CODE: {category: system}\n  A_CODE: {category: system}\n",
            None,
            "duplicate key",
        ),
        ("codez: {}\n", "codez", "unknown top-level key"),
        (
            "codes: {A_CODE: {category: system}}\n"
            "rules:\n  - {exception: no.such:Thing, code: A_CODE}\n",
            "rules[0].exception",
            "cannot import",
        ),
        (
            "rules:\n  - {exception: builtins:KeyError, code: NOPE}\n",
            "rules[0].code",
            "unknown code",
        ),
        ("codes: [1, 2]\n", "codes[0]", "needs a 'code:' field"),
        ("codes: {A_CODE: {category: system\n", None, "invalid YAML"),
    ],
)
def test_bad_catalog_files_name_the_file_key_and_fix(tmp_path, body, key, message):
    path = tmp_path / "codes.yaml"
    path.write_text(body)
    with pytest.raises(CatalogError) as info:
        faultlens.catalog.load(path)
    text = str(info.value)
    assert str(path) in text
    assert message in text
    if key:
        assert key in text


def test_a_bad_file_applies_nothing(tmp_path):
    path = tmp_path / "codes.yaml"
    path.write_text("codes:\n  GOOD_ONE: {category: system}\n  BAD_ONE: {category: nope}\n")
    with pytest.raises(CatalogError):
        faultlens.catalog.load(path)
    assert "GOOD_ONE" not in faultlens.catalog


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(CatalogError, match="file not found"):
        faultlens.catalog.load(tmp_path / "absent.yaml")


def test_a_private_catalog_does_not_touch_the_default_one():
    private = Catalog()
    private.register("ONLY_HERE", category="system")
    assert "ONLY_HERE" not in faultlens.catalog
    assert len(private) == len(faultlens.catalog) + 1
