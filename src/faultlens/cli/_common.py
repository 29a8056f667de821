"""What the commands share: output (text for people or a JSON document), strict JSON,
terminal-safe text, redaction, journal lookup with progress, careful file writes, and the
ConfigError every usage mistake becomes (exit 2)."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..errors import ConfigError


def config_error(message: str, key: str) -> ConfigError:
    from ..errors import ConfigError

    return ConfigError(message, key=key)


def finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dump_json(document: Any, out: TextIO) -> None:
    """Strict JSON (never ``NaN``/``Infinity``, which no JSON parser accepts), written at once
    so a failure cannot leave half a document on stdout."""
    import json

    text = json.dumps(finite(document), indent=2, default=str, allow_nan=False)
    out.write(text + "\n")


# C0 and C1 control characters (ESC starts terminal escape sequences) and lone surrogates:
# text from the journal (messages, stages, codes) must not drive the user's terminal.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with control characters and lone surrogates shown as escapes (``\\x1b``);
    line breaks kept only when ``newlines`` (a tab always is)."""
    text = _UNPRINTABLE.sub(lambda m: ascii(m.group(0))[1:-1], text)
    return text if newlines else text.replace("\n", "\\n").replace("\r", "\\r")


class Output:
    """Where a command's result goes: a JSON document or text for people."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.json = as_json
        self.out = out
        self.err = err

    def text(self, line: str = "") -> None:
        if not self.json:
            print(printable(line), file=self.out)

    def note(self, line: str) -> None:
        """Progress and remarks: stderr, so stdout stays clean for pipes and --json."""
        print(printable(line, newlines=True), file=self.err)

    def data(self, payload: Any) -> None:
        if self.json:
            dump_json({"status": "ok", "data": payload}, self.out)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: Output) -> None:
    """Aligned columns; long values are cut at 60 characters except in the last column."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = min(max(widths[i], len(v)), 60)

    def line(values: Sequence[str]) -> str:
        parts = [
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(values[:-1], widths[:-1], strict=True)
        ]
        return "  ".join([*parts, values[-1]]).rstrip()

    out.text(line(list(headers)))
    out.text(line(["-" * w for w in widths]))
    for row in cells:
        out.text(line(row))


def cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return printable(str(v).replace("\n", " "))


def redact(text: str) -> str:
    """``text`` with every credential faultlens knows how to spot redacted (URL user:password,
    tokens, key=value secrets): no output of the CLI may repeat a credential it was given."""
    from ..scrub import scrub_text

    return scrub_text(text)


def journal_path(explicit: str | None) -> str:
    if explicit:
        return explicit
    from .._config import load_settings

    return load_settings().journal.path


def require_journal(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no journal at {path}; run your app with `faultlens run -- python app.py` (or "
            "faultlens.configure() with no exporter) to create one, or pass --journal PATH"
        )


def with_progress(records: Iterable[Any], out: Output) -> Iterator[Any]:
    """Pass records through, showing a progress line on a terminal when reading takes long."""
    show = out.err.isatty()
    start = last = time.monotonic()
    n = 0
    for n, rec in enumerate(records, 1):
        if show and n % 2000 == 0:
            now = time.monotonic()
            if now - last >= 0.5 and now - start >= 1.0:
                last = now
                out.err.write(f"\rreading journal: {n:,} records …")
                out.err.flush()
        yield rec
    if show and time.monotonic() - start >= 1.0:
        out.err.write(f"\rreading journal: {n:,} records, done.\n")


def write(path: str, text: str | Iterable[str], out: Output) -> str:
    """``faultlens._output.write_text`` with a failure worded for people: the path and the
    reason, as the same kind of OSError (so the exit code and error code stay meaningful)."""
    from .._output import write_text

    try:
        return write_text(path, text, stdout=out.out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise type(exc)(f"cannot write {os.path.abspath(path)} ({reason})") from None


def directory_option(path: str, option: str) -> None:
    """A directory option (--journal, --dir) that can never be created is bad input, said
    before anything runs rather than discovered by the application later."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        where = "" if probe == os.path.abspath(path) else f" (so {path} cannot be created)"
        raise config_error(f"{probe} is not a directory{where}", key=option)
