"""A fingerprint groups "the same error": same type, same code path, same message shape."""

from __future__ import annotations

from faultlens import fingerprint
from faultlens.errors import normalize_message


def _raise(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def _raise_elsewhere(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_the_same_place_with_different_numbers_shares_one_fingerprint():
    assert fingerprint(_raise("bad value 1")) == fingerprint(_raise("bad value 2"))


def test_a_different_code_path_gets_a_different_fingerprint():
    assert fingerprint(_raise("bad value 1")) != fingerprint(_raise_elsewhere("bad value 1"))


def test_a_different_message_shape_gets_a_different_fingerprint():
    assert fingerprint(_raise("bad value 1")) != fingerprint(_raise("missing key 1"))


def test_ids_quoted_strings_and_numbers_are_normalised():
    assert normalize_message("job 42 failed") == "job <n> failed"
    assert normalize_message("no user 'alice'") == "no user <str>"
    assert normalize_message("id 123e4567-e89b-12d3-a456-426614174000") == "id <uuid>"
    assert normalize_message("object at 0xdeadbeef") == "object at <hex>"
    assert normalize_message("commit 9f2c4e1ab77 missing") == "commit <hex> missing"


def test_fingerprints_are_sixteen_hex_digits():
    fp = fingerprint(_raise("x"))
    assert len(fp) == 16 and int(fp, 16) >= 0
