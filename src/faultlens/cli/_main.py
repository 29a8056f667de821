"""``main()``: parse, run the command, turn any failure into an exit code and a message
(or the CLI error envelope with ``--json``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from ._common import Output, dump_json, redact
from ._parser import build_parser, split_run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``faultlens`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that is not UTF-8 (LANG=C.ISO-8859-1, PYTHONIOENCODING=latin-1)
        # gets escapes for what it cannot show, rather than a UnicodeEncodeError.
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    head, command = split_run(args_list)
    as_json = "--json" in head
    out = Output(as_json, sys.stdout, sys.stderr)
    try:
        args = build_parser().parse_args(head)
        if command is not None:
            args.command = command
        return _handler(args.handler)(args, out)
    except KeyboardInterrupt:
        out.note("interrupted")
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except SystemExit as exc:  # --help / --version from argparse
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        return _fail(exc, out)


def _handler(name: str) -> Callable[[argparse.Namespace, Output], int]:
    """The command function ``name`` names (``"_stats.cmd_stats"``), its module imported only
    now: a command pays for its own module alone."""
    module, _, function = name.partition(".")
    handler: Callable[[argparse.Namespace, Output], int] = getattr(
        import_module(f"{__package__}.{module}"), function
    )
    return handler


def _quiet_broken_pipe() -> None:
    """`faultlens stats | head`: the reader left. Point stdout at /dev/null so the interpreter's
    final flush does not print a BrokenPipeError traceback on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def _fail(exc: BaseException, out: Output) -> int:
    """Report ``exc``: the CLI envelope with --json, one line on stderr otherwise. Exit code 2
    for bad input (a usage or configuration error), 1 for anything else. Never raises: if
    even the envelope cannot be built, a plain line says what happened."""
    try:
        return _report_failure(exc, out)
    except Exception as inner:
        try:
            print(
                f"faultlens: {type(exc).__name__}: {_plain(exc)} (and reporting it failed: "
                f"{type(inner).__name__}: {_plain(inner)})",
                file=out.err,
            )
        except Exception:
            pass
        return 1


def _plain(exc: BaseException) -> str:
    try:
        return redact(str(exc))
    except Exception:
        return "<unprintable>"


def _report_failure(exc: BaseException, out: Output) -> int:
    from ..capture import to_cli_envelope
    from ..errors import ConfigError, UsageError

    code = 2 if isinstance(exc, ConfigError) else 1
    envelope = to_cli_envelope(exc)
    err = envelope.get("error", {})
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        err["message"] = redact(err["message"])
    if out.json:
        dump_json(envelope, out.out)
    else:
        out.note(f"faultlens: {err.get('message')} [{err.get('code')}]")
        if not isinstance(exc, UsageError) and not isinstance(exc, OSError):
            out.note(f"  ({type(exc).__name__}; run `faultlens doctor` to check the setup)")
    return code
