"""`faultlens report --jaeger-url` against the real Jaeger: the top error's trace, sent by
the real pipeline over OTLP, is fetched from Jaeger's query API and drawn as a waterfall
with the error's span and its exception event highlighted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import faultlens
from faultlens.journal import compute_stats, read_records
from faultlens.reports import write_report

pytestmark = pytest.mark.integration


def test_the_report_draws_the_error_trace_jaeger_has(stack, unique_service, tmp_path: Path):
    journal = tmp_path / "journal"
    faultlens.configure(service_name=unique_service, endpoint=stack.otlp_grpc, journal=str(journal))

    @faultlens.instrument(mode="traced", stage="load")
    def load() -> int:
        return 1

    @faultlens.instrument(mode="traced", stage="render")
    def render() -> None:
        raise ValueError("<script>alert(1)</script> frame 7 is corrupt")

    @faultlens.instrument(mode="traced", stage="job")
    def job() -> None:
        load()
        render()

    with pytest.raises(ValueError):
        job()
    faultlens.shutdown()

    records = list(read_records(str(journal)))
    files = sorted(p.name for p in journal.rglob("*"))
    assert records, files
    (top, *_) = compute_stats(records).top
    assert top.trace_id and top.span_id
    trace = stack.wait_for_trace(unique_service, top.trace_id, timeout=60)
    assert len(trace["spans"]) >= 3

    page = Path(
        write_report(
            str(tmp_path / "report.html"),
            "html",
            journal_path=str(journal),
            since=None,
            jaeger_url=stack.jaeger_query,
            embed_traces=True,
        )
    ).read_text("utf-8")

    assert 'data-embedded="1" data-missing="0"' in page, page[:3000]
    (waterfall,) = re.findall(r'<div class="waterfall".*?</div></div></details>', page, re.S)
    assert f'data-trace-id="{top.trace_id}"' in waterfall
    assert f'data-spans="{len(trace["spans"])}"' in waterfall
    # the span that raised, highlighted, with the exception event drawn on it
    focus = re.search(
        rf'<div class="wf-row wf-error wf-focus" data-span-id="{top.span_id}">.*?</div>',
        waterfall,
        re.S,
    )
    assert focus, waterfall
    assert 'class="wf-exc"' in focus.group(0)
    assert "render" in focus.group(0)
    assert "<script" not in page
