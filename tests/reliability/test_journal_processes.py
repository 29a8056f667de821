"""The journal with several processes, forks and signals: nothing recorded is lost or
written twice, and every line stays readable."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import faultlens
from faultlens.journal import list_files, read_records

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")


def python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


APPENDER = """
    import sys, faultlens
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    faultlens.configure(service_name=who, journal_path=path, rate_limit=0)
    for i in range(n):
        try:
            raise ConnectionError(f"{who} refused {i} " + "x" * 300)
        except ConnectionError as exc:
            faultlens.record_error(exc, who=who, i=i)
    faultlens.shutdown()
"""


def test_several_processes_appending_to_one_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "journal"
    procs = [python(APPENDER, str(journal), f"worker{w}", "400") for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        got = Counter((r["context"]["who"], r["context"]["i"]) for r in read_records(str(journal)))
    assert caplog.records == [], "no torn or corrupt line"
    assert len(got) == 1600 and set(got.values()) == {1}, "every error exactly once"
    assert len({f.pid for f in list_files(str(journal))}) == 4, "one writer per file"


def _forked_worker(n: int, who: str) -> None:
    for i in range(n):
        try:
            raise TimeoutError(f"{who} slow {i}")
        except TimeoutError as exc:
            faultlens.record_error(exc, who=who, i=i)
    faultlens.shutdown()  # multiprocessing children end with os._exit: no atexit


def test_forked_children_write_their_own_files_and_never_the_parents_queue(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    faultlens.configure(service_name="parent", journal_path=str(journal), rate_limit=0)
    for i in range(50):  # queued in the parent when it forks: children must not copy them
        try:
            raise ValueError(f"parent {i}")
        except ValueError as exc:
            faultlens.record_error(exc, who="parent", i=i)
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_forked_worker, args=(100, f"child{c}")) for c in range(3)]
    for c in children:
        c.start()
    for c in children:
        c.join(60)
        assert c.exitcode == 0
    faultlens.shutdown()

    got = Counter((r["context"]["who"], r["context"]["i"]) for r in read_records(str(journal)))
    assert len(got) == 350 and set(got.values()) == {1}
    pids = {f.pid for f in list_files(str(journal))}
    assert os.getpid() in pids and len(pids) == 4


SIGTERM_APP = """
    import signal, sys, time, faultlens
    faultlens.configure(service_name="sigterm", journal_path=sys.argv[1], rate_limit=0)
    if sys.argv[2] == "handler":
        # What a service (or `faultlens run`) does: turn SIGTERM into a clean exit.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    i = 0
    while True:
        try:
            raise ConnectionError(f"upstream refused {i}")
        except ConnectionError as exc:
            faultlens.record_error(exc, i=i)
        print(i, flush=True)
        i += 1
        if sys.argv[2] == "nohandler" and i == 50:
            print("idle", flush=True)
            time.sleep(60)
        time.sleep(0.001)
"""


def test_sigterm_mid_run_loses_nothing_recorded_before_it(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    proc = python(SIGTERM_APP, str(journal), "handler")
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(int(line))
        if len(printed) >= 300:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    printed += [int(x) for x in rest.split()]
    assert proc.returncode == 143

    in_journal = Counter(r["context"]["i"] for r in read_records(str(journal)))
    missing = set(printed) - set(in_journal)
    assert not missing, f"{len(missing)} recorded errors lost: {sorted(missing)[:10]}"
    assert set(in_journal.values()) == {1}


def test_sigterm_without_a_handler_still_finds_everything_written(tmp_path: Path) -> None:
    # No handler: the kernel ends the process at once, no atexit. The writer's short
    # linger means what was recorded a moment before is already on disk.
    journal = tmp_path / "journal"
    proc = python(SIGTERM_APP, str(journal), "nohandler")
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "idle":
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert sorted(r["context"]["i"] for r in read_records(str(journal))) == list(range(50))


def test_a_corrupted_file_costs_only_its_bad_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "journal"
    p = python(APPENDER, str(journal), "w", "20")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    [f] = list_files(str(journal))
    data = Path(f.path).read_bytes().splitlines(keepends=True)
    data[5] = data[5][: len(data[5]) // 2] + b"\n"  # torn in the middle
    data.insert(10, b"\xff\xfe binary junk\n")
    Path(f.path).write_bytes(b"".join(data))
    with caplog.at_level(logging.WARNING, logger="faultlens"):
        got = sorted(r["context"]["i"] for r in read_records(str(journal)))
    assert got == [i for i in range(20) if i != 5]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "skipped 2 corrupt or torn lines" in warning and f.path in warning
