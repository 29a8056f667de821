"""A journal that cannot be written (read-only directory, disk full, file-size limit):
the drops are counted, logged once, and the application goes on."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import faultlens
from faultlens.capture import dropped_counts
from faultlens.journal import read_records


def record_many(n: int) -> float:
    """Record n errors; returns the seconds it took the application."""
    started = time.perf_counter()
    for i in range(n):
        try:
            raise ConnectionError(f"refused {i}")
        except ConnectionError as exc:
            info = faultlens.record_error(exc, i=i)
        assert info.code == "NET_CONNECTION_FAILED"
    return time.perf_counter() - started


def flush() -> None:
    from faultlens import _setup
    from faultlens.journal import Journal

    assert _setup._runtime is not None
    for c in _setup._runtime.components:
        if isinstance(c, Journal):
            c.flush(5.0)


def test_an_unusable_directory_counts_drops_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A path *under a regular file* cannot be created even by root (who ignores mode bits).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    faultlens.configure(service_name="svc", journal_path=str(blocker / "journal"), rate_limit=0)
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        assert record_many(50) < 2.0
        flush()
        faultlens.shutdown()
    assert dropped_counts().get("export_failed") == 50
    warnings = [r.getMessage() for r in caplog.records if "journal" in r.getMessage()]
    assert len(warnings) == 1 and "export_failed" in warnings[0]


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """A directory nobody can write to. Root ignores permission bits, so as root the
    directory is made immutable (chattr +i, ext4's flag that binds root too)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)


def test_a_read_only_directory_counts_drops(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    with read_only(journal):
        probe = journal / "probe"
        with pytest.raises(OSError):
            probe.write_text("x")  # really read-only, whoever runs the test
        faultlens.configure(service_name="svc", journal_path=str(journal), rate_limit=0)
        record_many(10)
        faultlens.shutdown()
    assert dropped_counts().get("export_failed") == 10


def test_writing_resumes_when_the_directory_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from faultlens.journal import _writer

    monkeypatch.setattr(_writer, "RETRY_AFTER", 0.05)
    blocker = tmp_path / "data"
    blocker.write_text("")  # the "disk" is unusable at first
    journal = blocker / "journal"
    faultlens.configure(service_name="svc", journal_path=str(journal), rate_limit=0)
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        record_many(5)
        flush()
        blocker.unlink()  # ... then fixed
        time.sleep(0.1)
        record_many(7)
        faultlens.shutdown()
    assert dropped_counts().get("export_failed") == 5
    assert len(list(read_records(str(journal)))) == 7
    assert "writable again" in caplog.text


FULL_DISK_APP = """
    import json, resource, sys, faultlens
    from faultlens.capture import dropped_counts
    # The "disk" holds 20 KB: RLIMIT_FSIZE makes writes past it fail with EFBIG
    # (Python ignores SIGXFSZ), exactly like a full disk does with ENOSPC.
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    faultlens.configure(service_name="full", journal_path=sys.argv[1], rate_limit=0)
    ok = 0
    for i in range(200):
        try:
            raise ConnectionError(f"refused {i}")
        except ConnectionError as exc:
            ok += faultlens.record_error(exc, i=i).code == "NET_CONNECTION_FAILED"
    faultlens.shutdown()
    print(json.dumps({"recorded": ok, "dropped": dropped_counts()}))
"""


def test_a_full_disk_counts_exactly_what_it_could_not_write(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FULL_DISK_APP), str(journal)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["recorded"] == 200, "the application never noticed"
    written = len(list(read_records(str(journal))))
    dropped = out["dropped"].get("export_failed", 0)
    assert 0 < written < 200
    assert written + dropped == 200, "every error is either on disk or counted"
    assert proc.stderr.count("export_failed") == 1, "logged once"
