"""The media job: errors carry their stage, the video's hash and the memory state."""

from __future__ import annotations

import faultlens
from unit.examples.example_helpers import EXAMPLES, faultlens_cli, stats


def test_each_failure_carries_stage_video_hash_and_memory_state():
    from media_job.job import VIDEOS, run

    with faultlens.testing.capture() as cap:
        outcomes = run()
    assert outcomes == {
        "ok": 3,
        "EOFError": 1,
        "UnsupportedCodec": 1,
        "MemoryError": 1,
        "ConnectionRefusedError": 1,
    }
    by_code = {e.info.code: e for e in cap.errors}
    assert set(by_code) == {
        "SYS_UNKNOWN_ERROR",
        "MEDIA_UNSUPPORTED_CODEC",
        "RES_INSUFFICIENT_MEMORY",
        "NET_CONNECTION_FAILED",
    }
    oom = by_code["RES_INSUFFICIENT_MEMORY"]
    drone = next(v for v in VIDEOS if v.name == "drone.mp4")
    assert oom.info.stage == "decode"
    assert oom.attributes["faultlens.context.video_hash"] == drone.hash
    assert oom.attributes["faultlens.resource.memory.rss"] > 0
    assert by_code["NET_CONNECTION_FAILED"].info.stage == "upload"


def test_under_faultlens_run(tmp_path):
    journal = tmp_path / "journal"
    proc = faultlens_cli(
        "run", "--journal", str(journal), "--", "python", str(EXAMPLES / "media_job")
    )
    assert proc.returncode == 0, proc.stderr
    s = stats(journal)
    assert s["total"] == 4 and s["by_stage"] == {"decode": 3, "upload": 1}
