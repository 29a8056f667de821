"""``faultlens run``: a program started with faultlens inside it (exec, or a supervised
child with ``--no-exec``)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from ._common import Output, config_error, directory_option


def _resolve_command(command: list[str]) -> list[str]:
    """A bare ``python``/``python3``/``python3.N`` (this version) means the interpreter
    faultlens runs in, so that the bootstrap in the child can import faultlens (the PATH's
    python may be another one)."""
    import shutil

    if not command:
        raise config_error(
            "no command to run; put it after `--`, e.g. faultlens run -- python app.py",
            key="command",
        )
    ours = ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info))
    if command[0] in ours and sys.executable:
        return [sys.executable, *command[1:]]
    if shutil.which(command[0]) is None and not os.path.exists(command[0]):
        raise config_error(f"command not found: {command[0]}", key="command")
    return command


def _run_env(args: argparse.Namespace) -> dict[str, str]:
    from ..auto import child_environment

    modules = [m for chunk in args.modules or () for m in re.split(r"[,\s]+", chunk) if m]
    return child_environment(
        os.environ,
        service=args.service,
        modules=modules,
        journal=args.journal,
        endpoint=args.endpoint,
        catalogs=args.catalog,
    )


# Signals `faultlens run --no-exec` passes on to the child, as a supervisor does. SIGINT is not
# among them: Ctrl-C reaches the whole foreground process group, the child included, so the
# parent only ignores it and waits for the child to finish its own handling.
_FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` as a child and return its exit status the way a shell reports it: the
    child's exit code, or 128+N when a signal N killed it."""
    import signal
    import subprocess

    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if child is None:
            pending.append(signum)  # arrived while the child was being started
        else:
            child.send_signal(signum)

    def ctrl_c(signum: int, frame: Any) -> None:
        """Ctrl-C is the child's to handle: the parent waits for it."""

    previous: dict[int, Any] = {}
    try:
        for name in _FORWARDED:
            sig = getattr(signal, name, None)
            if sig is not None:
                previous[sig] = signal.signal(sig, forward)
        # A handler, not SIG_IGN: exec resets a handled signal to its default in the child
        # (an ignored one would be inherited, and Ctrl-C would not stop the child), and set
        # before the child starts, a Ctrl-C right after it cannot kill the parent first.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, ctrl_c)
        try:
            child = subprocess.Popen(command, env=env)
        except OSError as exc:
            raise config_error(
                f"cannot run {command[0]} ({exc.strerror or exc})", key="command"
            ) from None
        for signum in pending:
            child.send_signal(signum)
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - returncode if returncode < 0 else returncode


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    if args.journal:
        directory_option(args.journal, "--journal")
    command = _resolve_command(list(args.command))
    env = _run_env(args)
    if args.no_exec:
        return _run_child(command, env)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise config_error(
            f"cannot run {command[0]} ({exc.strerror or exc})", key="command"
        ) from None
    return 0  # pragma: no cover - exec does not return
