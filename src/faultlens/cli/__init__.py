"""The ``faultlens`` command: run an app under faultlens, look at its errors, check the setup.

::

    faultlens run [--service NAME] [--modules 'myapp.*'] [--journal DIR] -- python app.py
    faultlens demo                      # the example pipeline, its stats and an HTML report
    faultlens stats --since 24h         # what failed, how often, is it getting worse
    faultlens report --format html --since 7d -o errors.html
    faultlens codes [--catalog codes.yaml]
    faultlens doctor                    # config, endpoint, collector health, permissions
    faultlens rules -o rules.yml        # faultlens.yaml's thresholds as Prometheus rules
    faultlens version

Every command takes ``--json``: the result is printed as ``{"status": "ok", "data": ...}``
and a failure as the CLI error envelope (``faultlens.to_cli_envelope``); it is strict JSON
(never ``NaN``/``Infinity``). Exit codes: 0 on success, 2 for bad input (a wrong option,
duration or config value), 1 for other failures; ``run --no-exec`` returns the command's
code, or 128+N when signal N killed it. Output never repeats a credential it was given.

Files are written as careful tools write them (``faultlens._output``): ``-o -`` is standard
output, a symlink is written through, a device or FIFO written directly, a regular file
replaced atomically with the umask respected. Nothing is ever deleted that faultlens did not
create (``demo`` marks the journal directory it makes).

Layout (private modules behind this ``__init__``): ``_main`` (``main()``, failure reporting),
``_parser`` (argparse, option types, usage errors), ``_common`` (output, strict JSON,
terminal-safe text), and one module per command: ``_run``, ``_demo``, ``_stats``, ``_report``,
``_codes``, ``_rules``, ``_doctor``, ``_version``. Start-up cost matters: `faultlens version`
and ``--help`` must not pay for the OpenTelemetry SDK, so modules import only the standard
library's cheap modules at module level, each command imports what it needs inside its
function, and ``main()`` imports only the module of the command it runs.
"""

from ._main import main
from ._parser import parse_duration

__all__ = ["main", "parse_duration"]
