"""Every file the CLI writes (`report -o`, `rules -o`, the demo's report) is written the way
careful tools write: `-` is standard output, a symlink is written through (the link stays a
link), a character device or FIFO is written directly (never replaced), a regular file is
replaced atomically, and a new file gets 0666 & ~umask. All against the real CLI in a
subprocess, with real symlinks, FIFOs and umasks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from faultlens._output import write_text

REPO = Path(__file__).resolve().parents[3]
PLAIN_APP = REPO / "examples" / "plain_app" / "app.py"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}


def faultlens(
    *argv: str, umask: int | None = None, stdout: int | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlens.cli", *argv],
        env=_env(),
        cwd=cwd,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
        check=False,
    )


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal written by a real app run under `faultlens run`."""
    path = tmp_path_factory.mktemp("files") / "journal"
    subprocess.run(
        [
            *(sys.executable, "-m", "faultlens.cli", "run", "--modules", "plain_app*"),
            *("--journal", str(path), "--", "python", str(PLAIN_APP)),
        ],
        env=_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def report(
    journal: Path, output: str, *extra: str, **kw: object
) -> subprocess.CompletedProcess[str]:
    return faultlens(
        "report", "--format", "json", "--journal", str(journal), "-o", output, *extra, **kw
    )  # type: ignore[arg-type]


def test_a_symlink_is_written_through_and_stays_a_symlink(journal, tmp_path):
    target = tmp_path / "reports" / "latest.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    proc = report(journal, str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["stats"]["total"] == 9
    assert proc.stdout.strip() == f"report written: {link}"


def test_a_dangling_symlink_creates_its_target(journal, tmp_path):
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "made.json")
    assert report(journal, str(link)).returncode == 0
    assert link.is_symlink() and json.loads((tmp_path / "made.json").read_text())["records"]


def test_dash_is_standard_output(journal, tmp_path):
    proc = report(journal, "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stats"]["total"] == 9  # the report itself, nothing else
    assert not (tmp_path / "-").exists()


def test_dash_and_json_both_on_stdout_is_bad_input(journal, tmp_path):
    proc = report(journal, "-", "--json", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--output" in json.loads(proc.stdout)["error"]["message"]


def test_a_link_to_dev_stdout_writes_to_what_stdout_is(journal, tmp_path):
    """What replaced /dev/stdout itself when run as root: now the link and the device are
    left alone and the report arrives where standard output goes (here a file)."""
    link = tmp_path / "out"
    link.symlink_to("/dev/stdout")
    captured = tmp_path / "captured.json"
    with captured.open("w") as fh:
        proc = report(journal, str(link), stdout=fh.fileno())
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"
    # Written through the process's own stdout, so nothing else printed there overwrites it.
    assert json.loads(captured.read_text())["stats"]["total"] == 9


@pytest.fixture
def null_device(tmp_path: Path) -> Path:
    """A character device to write to. As root, a private copy of /dev/null made with mknod:
    if this test ever regresses, it replaces that copy, never the system's /dev/null (which
    the old code did). Without root, the real /dev/null, which an unprivileged process cannot
    replace."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return device


def test_a_character_device_is_written_not_replaced(journal, null_device):
    before = os.stat(null_device)
    assert report(journal, str(null_device)).returncode == 0
    after = os.lstat(null_device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_fifo_is_written_directly(journal, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    proc = report(journal, str(fifo))
    if proc.returncode != 0:  # never opened for writing: release the reader
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(received[0])["stats"]["total"] == 9


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)])
def test_a_new_report_respects_the_umask(journal, tmp_path, umask, mode):
    out = tmp_path / "r.json"
    assert report(journal, str(out), umask=umask).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_an_existing_file_is_replaced_atomically_and_keeps_its_mode(journal, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old")
    out.chmod(0o600)
    inode = out.stat().st_ino
    assert report(journal, str(out), umask=0o022).returncode == 0
    assert out.stat().st_ino != inode  # a new file renamed over the old one
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_a_hard_linked_file_is_rewritten_in_place(journal, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old")
    other = tmp_path / "same-file.json"
    os.link(out, other)
    assert report(journal, str(out)).returncode == 0
    assert json.loads(other.read_text())["stats"]["total"] == 9  # both names see the report


def test_a_directory_gets_the_default_file_name(journal, tmp_path):
    assert report(journal, str(tmp_path)).returncode == 0
    assert (tmp_path / "faultlens-report.json").is_file()


def test_an_unwritable_path_is_a_clear_error(journal, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = report(journal, str(blocker / "r.json"))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"faultlens: cannot write {blocker / 'r.json'} (Not a directory)")
    assert "Traceback" not in proc.stderr


def test_rules_are_written_the_same_way(tmp_path):
    config = tmp_path / "faultlens.yaml"
    config.write_text(
        "error_handling:\n  monitoring:\n    alert_thresholds:\n      error_frequency:\n"
        '        "network:NET_CONNECTION_FAILED": {window: 60, count: 3}\n'
    )
    target = tmp_path / "target.yml"
    link = tmp_path / "rules.yml"
    link.symlink_to(target)
    proc = faultlens("rules", "--config", str(config), "-o", str(link), umask=0o077)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and "NET_CONNECTION_FAILED" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    dash = faultlens("rules", "--config", str(config), "-o", "-", cwd=tmp_path)
    assert "NET_CONNECTION_FAILED" in dash.stdout and not (tmp_path / "-").exists()


def test_write_text_refuses_a_socket(tmp_path):
    import socket

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(OSError, match="not a regular file"):
            write_text(str(path), "x")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_write_text_never_creates_files_under_dev(tmp_path):
    missing = Path(f"/dev/faultlens-test-{os.getpid()}")
    link = tmp_path / "link"
    link.symlink_to(missing)
    try:
        with pytest.raises(FileNotFoundError):
            write_text(str(link), "x")
        assert not missing.exists()
    finally:
        if missing.exists() and missing.is_file():  # only if this very test created it
            missing.unlink()


def test_the_library_write_report_writes_the_same_careful_way(journal, tmp_path):
    """faultlens.reports.write_report (the API under `faultlens report`) shares the writer:
    through a symlink, with the umask."""
    from faultlens.reports import write_report

    target = tmp_path / "target.json"
    link = tmp_path / "r.json"
    link.symlink_to(target)
    old = os.umask(0o077)
    try:
        write_report(str(link), "json", journal_path=str(journal), since=None)
    finally:
        os.umask(old)
    assert link.is_symlink() and json.loads(target.read_text())["stats"]["total"] == 9
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _as_unprivileged(action: object) -> int:
    """Run ``action()`` in a forked child that is an ordinary user (nobody when this is
    root, as in CI containers); the child's exit code: 0 when it raised PermissionError, 1
    when the action succeeded, 2 for anything else."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 2
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            action()  # type: ignore[operator]
            code = 1
        except PermissionError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_read_only_file_is_refused_not_replaced():
    """`> file` in a shell refuses a file you may not write; a rename would replace it anyway
    (the directory is writable). Here: a directory anyone may write to, holding a file its
    owner made read-only for others."""
    import shutil
    import tempfile

    shared = tempfile.mkdtemp(prefix="faultlens-ro-")
    try:
        os.chmod(shared, 0o777)
        protected = Path(shared, "report.json")
        protected.write_text("the owner's")
        protected.chmod(0o444)
        assert _as_unprivileged(lambda: write_text(str(protected), "replaced")) == 0
        assert protected.read_text() == "the owner's"
        assert sorted(os.listdir(shared)) == ["report.json"]  # no temporary file left
    finally:
        shutil.rmtree(shared)


def test_a_bind_mounted_file_is_rewritten_in_place(tmp_path):
    """A file bind-mounted into a container cannot be renamed over (EBUSY): its content is
    replaced in place. Needs a private mount namespace (unshare -m, CAP_SYS_ADMIN)."""
    import shutil

    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode
    ):
        pytest.skip("needs `unshare -m` (CAP_SYS_ADMIN) to bind-mount a file")
    source = tmp_path / "host.json"
    source.write_text("old")
    mounted = tmp_path / "container.json"
    mounted.write_text("")
    import shlex

    code = "import sys; from faultlens._output import write_text; write_text(sys.argv[1], 'new')"
    script = " ".join(
        ["mount", "--bind", shlex.quote(str(source)), shlex.quote(str(mounted)), "&&"]
        + [shlex.quote(a) for a in (sys.executable, "-c", code, str(mounted))]
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert source.read_text() == "new"  # written through the mount, in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["container.json", "host.json"]


def test_a_file_name_of_the_longest_length_still_gets_its_temporary_file(tmp_path):
    longest = tmp_path / ("r" * 250 + ".json")
    longest.write_text("old")
    write_text(str(longest), "new")
    assert longest.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]
