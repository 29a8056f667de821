"""A message whose only digits are not ASCII ones normalises as the full patterns say: the
number pattern (``\\d``) matches any Unicode digit, so the shortcut that skips the digit
patterns must look for the same digits."""

from __future__ import annotations

from faultlens.errors import _fingerprint


def test_a_non_ascii_digit_is_a_number_like_any_other():
    for text in (
        "\U0001e140",
        "row \u0663 failed",
        "item \uff17 missing",
    ):  # Hmong, Arabic, fullwidth
        assert _fingerprint.normalize_message(text) == _fingerprint._NUMBER[0].sub("<n>", text)
        assert "<n>" in _fingerprint.normalize_message(text)
