"""faultlens bootstrap, imported by Python at start-up because ``faultlens run`` put this
directory first on PYTHONPATH.

It first runs the ``sitecustomize`` the environment would have used without faultlens (so
an application's own start-up code, e.g. its OTel providers, comes first and is kept), then
starts faultlens. Nothing here may stop the application: a failure is reported in one line
on stderr and start-up goes on. Only the command ``faultlens run`` started reports (the
first interpreter to get here, see ``_claim_target``): the Python processes it launches
inherit PYTHONPATH, and with it this bootstrap, but their stderr is theirs (a helper
interpreter without faultlens stays silent). ``FAULTLENS_BOOTSTRAP=0`` turns it off.
"""

import os
import sys


def _chain_previous(here: str) -> None:
    """Run the next ``sitecustomize`` on sys.path, as site.py would have without us."""
    import importlib.machinery
    import importlib.util

    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        import traceback

        print("Error in sitecustomize (chained by faultlens):", file=sys.stderr)
        traceback.print_exc()


# Mirrors faultlens.auto._bootstrap.TARGET_VAR (this file must work where faultlens does not
# import, so it cannot import the name).
_TARGET_VAR = "FAULTLENS_BOOTSTRAP_PID"


def _claim_target() -> bool:
    """Whether this is the process `faultlens run` started: the first interpreter to get
    here marks the environment its own children inherit. Only that one writes on stderr."""
    owner = os.environ.get(_TARGET_VAR, "")
    if owner and owner != str(os.getpid()):
        return False
    os.environ[_TARGET_VAR] = str(os.getpid())
    return True


def _bootstrap() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    target = _claim_target()
    try:
        _chain_previous(here)
    except Exception as exc:
        if target:
            print(
                f"faultlens: could not chain to the previous sitecustomize: {exc}",
                file=sys.stderr,
            )
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    if os.environ.get("FAULTLENS_BOOTSTRAP", "1").strip().lower() in ("0", "false", "no"):
        return
    try:
        from faultlens.auto._bootstrap import start
    except Exception as exc:
        if target:  # another interpreter the application launches is none of our business
            print(
                f"faultlens: not importable by {sys.executable} ({exc}); run the command with "
                "the interpreter faultlens is installed in. The application starts without "
                "faultlens.",
                file=sys.stderr,
            )
        return
    start(target=target)


if __name__ == "sitecustomize":
    _bootstrap()
