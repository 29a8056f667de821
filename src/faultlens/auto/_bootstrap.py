"""Zero-code start: what ``faultlens run`` sets up in the child, and the child's bootstrap.

``faultlens run`` cannot reach into another process, so it only prepares the environment:
``FAULTLENS_*`` variables for ``configure()`` and, first on ``PYTHONPATH``, the directory
holding faultlens's ``sitecustomize.py``. Python imports ``sitecustomize`` at start-up, before
the application's first line, whatever the entry point (``python app.py``, ``python -m mod``,
``gunicorn ...``); that module chains to any ``sitecustomize`` the environment already had
and calls :func:`start`.

What gets instrumented when ``FAULTLENS_AUTO_MODULES`` (or the ``faultlens.auto_instrumentation
.modules`` key) names nothing: every module whose file lives under the main script's
directory (``python app.py``) or under the working directory (``python -m mod``, ``-c``),
installed packages excluded. The ``__main__`` script itself cannot be wrapped, since Python
runs it directly rather than importing it; an error escaping it is still recorded by the
uncaught-exception hook. Keep scripts thin and the logic in modules.

Only the process ``faultlens run`` started reports start-up problems on stderr (see
``TARGET_VAR``); the interpreters it launches inherit the bootstrap through PYTHONPATH (so a
spawned worker records its errors too) but start silently. An application whose own
``sitecustomize`` already called ``configure()`` keeps its configuration.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Only the standard library at module level: `faultlens run` (the parent) imports this module
# for child_environment and must not pay for the OpenTelemetry SDK; the child imports the
# rest in start().
if TYPE_CHECKING:
    from ._hook import Targets

__all__ = [
    "BOOT_DIR",
    "TARGET_VAR",
    "child_environment",
    "default_roots",
    "instrument_process",
    "is_target",
    "start",
]

_log = logging.getLogger("faultlens")

BOOT_DIR = str(Path(__file__).resolve().parent / "_boot")

# Set by the bootstrap in the first process it starts in (the command `faultlens run` ran) to
# that process's pid, and inherited by everything it launches. Only that process reports
# problems on stderr: the other interpreters the application starts (helpers, workers, a
# different Python without faultlens) are not the user's command and their stderr is not
# ours to write on.
TARGET_VAR = "FAULTLENS_BOOTSTRAP_PID"


def default_roots(argv: Sequence[str] | None = None, cwd: str | None = None) -> list[str]:
    """The directories whose modules are the application's own, judged from the command."""
    argv = sys.argv if argv is None else argv
    first = argv[0] if argv else ""
    if not first or first in ("-c", "-m", "-"):
        return [cwd or os.getcwd()]
    script = Path(first)
    if script.is_dir():  # python path/to/pkg  (a directory with __main__.py)
        return [str(script.resolve())]
    if script.suffix in (".py", ".pyw", ".pyz"):
        return [str(script.resolve().parent)]
    # A console script (gunicorn, celery, ...): the application lives in the working directory.
    return [cwd or os.getcwd()]


def instrument_process(modules: Sequence[str] | None = None) -> Targets:
    """Install the import hook and the uncaught-exception hooks for this process.

    ``modules`` (glob patterns) wins; otherwise the configured auto-instrumentation modules;
    otherwise the application's own directory (see :func:`default_roots`).
    """
    from .._config import load_settings
    from .._setup import current_settings
    from ..capture import internal_error
    from ._hook import install
    from ._uncaught import install_excepthooks

    if not modules:
        settings = current_settings()
        if settings is None:
            try:
                settings = load_settings()
            except Exception as exc:
                internal_error("reading auto-instrumentation settings", exc)
        modules = settings.auto_modules if settings is not None else ()
    install_excepthooks()
    # Celery's task registry holds functions the import hook cannot wrap: its integration
    # records task failures from Celery's signals, installed when (and only if) the process
    # imports celery.
    from ..integrations import install_detected
    from ..integrations.celery import activate as activate_celery

    activate_celery()
    # Web frameworks and HTTP clients likewise: each installed integration switches on when
    # the process imports its framework (failures recorded on the request's server span).
    install_detected()
    if modules:
        return install(list(modules))
    return install(roots=default_roots())


def is_target(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is the command `faultlens run` started (see ``TARGET_VAR``),
    rather than a process that command launched."""
    env = os.environ if environ is None else environ
    owner = env.get(TARGET_VAR, "")
    return not owner or owner == str(os.getpid())


class _OnlyErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def start(*, target: bool | None = None) -> None:
    """The child's bootstrap: configure from the environment, hook, instrument. Never raises;
    a failure is reported in one line and the application starts without faultlens.

    Only the target process (see ``TARGET_VAR``) reports on stderr: in the processes it
    launches, start-up remarks (a configuration problem, a deprecated key) were already said
    once by the target and are logged at debug level; errors still show.

    An application whose own ``sitecustomize`` (run first, see ``_boot/sitecustomize.py``)
    already called ``configure()`` keeps its configuration: the bootstrap only adds the hooks.
    """
    if target is None:
        target = is_target()
    quiet = None if target else _OnlyErrors()
    if quiet is not None:
        _log.addFilter(quiet)
    try:
        _start(report=_log.warning if target else _log.debug)
    finally:
        if quiet is not None:
            _log.removeFilter(quiet)


def _start(report: Callable[..., None]) -> None:
    try:
        from .._setup import bootstrap_configure, is_configured
        from ..capture import internal_error
        from ._uncaught import install_sigterm_flush
    except Exception as exc:
        report("faultlens: cannot start (%s); the application runs without faultlens", exc)
        return
    try:
        if not is_configured():
            bootstrap_configure()
    except Exception as exc:
        report("faultlens: configure() failed (%s); the application runs without faultlens", exc)
        return
    try:
        instrument_process()
        install_sigterm_flush()
    except Exception as exc:
        internal_error("faultlens run bootstrap", exc)


def child_environment(
    base: Mapping[str, str],
    *,
    service: str | None = None,
    modules: Sequence[str] | None = None,
    journal: str | None = None,
    endpoint: str | None = None,
    catalogs: Sequence[str] | None = None,
) -> dict[str, str]:
    """The environment ``faultlens run`` gives the command: the bootstrap first on
    PYTHONPATH, and the options as the variables ``configure()`` reads."""
    env = dict(base)
    env.pop(TARGET_VAR, None)  # the command is a target of its own, even under another run
    # Empty entries stay: `export PYTHONPATH=$PYTHONPATH:/x` makes one, and Python reads it
    # as the working directory. An unset or empty PYTHONPATH has no entries at all.
    existing = env.get("PYTHONPATH", "")
    parts = [p for p in existing.split(os.pathsep) if p != BOOT_DIR] if existing else []
    env["PYTHONPATH"] = os.pathsep.join([BOOT_DIR, *parts])
    if service:
        env["FAULTLENS_SERVICE_NAME"] = service
        env["OTEL_SERVICE_NAME"] = service
    if modules:
        env["FAULTLENS_AUTO_MODULES"] = ",".join(modules)
    if journal:
        env["FAULTLENS_JOURNAL_PATH"] = os.path.abspath(journal)
    if endpoint:
        env["FAULTLENS_ENDPOINT"] = endpoint
    if catalogs:
        env["FAULTLENS_CATALOGS"] = os.pathsep.join(os.path.abspath(c) for c in catalogs)
    env["FAULTLENS_BOOTSTRAP"] = "1"
    return env
