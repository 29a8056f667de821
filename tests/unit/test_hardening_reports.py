"""Reports render whatever the journal holds: a value that is not a representable time or
not a finite number never makes `faultlens report` fail or write invalid JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest

from faultlens.journal import compute_stats
from faultlens.reports import render_report


def _records():
    base = {"service": "s", "code": "C", "severity": "high", "fingerprint": "f" * 16}
    return [
        {**base, "ts": 1e20, "message": "far future", "score": float("nan")},
        {**base, "ts": float("inf"), "message": "infinite"},
        {**base, "ts": 1_700_000_000.0, "message": "fine", "nested": {"v": [float("-inf")]}},
    ]


def _strict_json(text: str):
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("fmt", ["html", "json", "csv"])
def test_out_of_range_and_non_finite_values_still_render(fmt):
    records = _records()
    out = render_report(compute_stats(records, now=1_700_000_100.0), records, fmt)
    if fmt == "json":
        doc = _strict_json(out)
        assert doc["records"][0]["score"] is None
        assert doc["records"][2]["nested"] == {"v": [None]}
    elif fmt == "csv":
        assert len(list(csv.reader(io.StringIO(out)))) == 4
    else:
        assert "far future" in out and "2023-11-14" in out


def test_a_formula_after_leading_spaces_is_neutralised_too():
    records = [{"ts": 1_700_000_000.0, "code": "C", "severity": "high", "stage": "  =1+1"}]
    out = render_report(compute_stats(records, now=1_700_000_100.0), records, "csv")
    assert next(csv.DictReader(io.StringIO(out)))["stage"] == "'  =1+1"
