"""Each layer's surface: what its package exports, who may import what, names that say what
they are (issue 12).

- A layer exports what the layers above use (and, for resilience, the types of its public
  API), nothing else; no layer imports another layer's private modules (the one exception:
  the capture layer's runtime state, ``faultlens.capture._state.STATE``, which is not API).
- Every module of faultlens sits in the import-linter layers contract.
- ``faultlens.capture`` is one object: the capture layer's package, and the public context
  manager (calling it opens a scope).
- Renamed names keep working, with a DeprecationWarning.
- Each layer resets its own state; ``faultlens.testing.reset()`` calls them.
"""

from __future__ import annotations

import ast
import importlib
import pickle
import sys
import tomllib
from pathlib import Path

import pytest

import faultlens
import faultlens.capture
from faultlens import testing

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "faultlens"
LAYERS = ("errors", "capture", "resilience", "journal", "reports", "auto", "integrations", "cli")
STATE_MODULE = "faultlens.capture._state"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) for every ``from ... import`` in a file."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, [], node.lineno) for a in node.names)
    return out


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "faultlens" and parts[1] in LAYERS else None


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


# Known exceptions (importer's layer, private module): none left; add one only with a reason.
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()


def test_no_layer_imports_another_layers_private_modules() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        mine = _layer_of(_module_name(path))
        for target, names, line in _imports(path):
            theirs = _layer_of(target)
            if theirs is None or theirs == mine:
                continue
            modules = [target] + [f"{target}.{n}" for n in names]
            for module in modules:
                rest = module.split(".")[2:]
                if not any(_is_private(p) for p in rest) or module.startswith(STATE_MODULE):
                    continue
                known = {k for layer, k in KNOWN_PRIVATE_IMPORTS if layer == mine}
                if not any(module == k or module.startswith(k + ".") for k in known):
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert offenders == [], (
        "import the name from the layer's package (export it there if a layer above needs it)"
    )


def _used_outside(layer: str) -> set[str]:
    """Names imported from ``faultlens.<layer>`` (or read off it) anywhere but the layer."""
    used: set[str] = set()
    package = f"faultlens.{layer}"
    for top in ("src", "tests", "benchmarks", "examples", "scripts"):
        for path in (ROOT / top).rglob("*.py"):
            if path.is_relative_to(SRC / layer):
                continue
            text = path.read_text()
            if path.is_relative_to(SRC):
                for target, names, _ in _imports(path):
                    if target == package:
                        used.update(names)
            else:
                for node in ast.walk(ast.parse(text)):
                    if isinstance(node, ast.ImportFrom) and node.module == package:
                        used.update(a.name for a in node.names)
            for chunk in text.split(package + ".")[1:]:
                name = chunk.split("(")[0].split(".")[0].split(" ")[0].split(")")[0]
                used.add(name.strip(",:[]\n"))
    return used


# The types of the resilience API's hooks and results: exported for users' annotations.
PUBLIC_TYPES = {
    "resilience": {
        "Attempt",
        "BreakerStats",
        "Degrade",
        "Fallback",
        "InterventionRequest",
        "ManualIntervention",
        "RecoveryContext",
        "Restart",
        "Retrying",
        "StateChange",
        "StateListener",
        "Strategy",
    },
}


@pytest.mark.parametrize("layer", ["errors", "capture", "resilience", "journal"])
def test_a_layer_exports_what_the_layers_above_use_and_nothing_else(layer: str) -> None:
    module = importlib.import_module(f"faultlens.{layer}")
    exported = set(module.__all__)
    assert all(hasattr(module, name) for name in exported)
    assert "STATE" not in exported
    unused = exported - _used_outside(layer) - PUBLIC_TYPES.get(layer, set()) - {"reset"}
    assert unused == set(), f"nobody outside faultlens.{layer} uses these: drop the re-exports"


def test_every_layer_has_one_reset_and_testing_reset_calls_them() -> None:
    from faultlens import errors, resilience
    from faultlens.capture import count_dropped, dropped_counts

    for layer in (errors, faultlens.capture, resilience):
        assert "reset" in layer.__all__
    faultlens.catalog.register("SURFACE_CODE", category="validation", severity="low")
    count_dropped("queue_full")
    breaker = faultlens.CircuitBreaker("surface-breaker")
    assert resilience.breakers()["surface-breaker"] is breaker
    testing.reset()
    assert "SURFACE_CODE" not in faultlens.catalog
    assert dropped_counts() == {}
    assert "surface-breaker" not in resilience.breakers()


def test_every_module_of_faultlens_is_in_the_layers_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [layers] = [c for c in config["tool"]["importlinter"]["contracts"] if c.get("type") == "layers"]
    placed = {m.strip() for line in layers["layers"] for m in line.split("|")}
    modules = {f"faultlens.{p.stem}" for p in SRC.glob("*.py") if p.stem != "__init__"}
    modules |= {f"faultlens.{p.parent.name}" for p in SRC.glob("*/__init__.py")}
    assert modules - placed == set()
    for name in ("faultlens._config", "faultlens._options", "faultlens._setup"):
        assert name in placed
    assert {"faultlens.testing", "faultlens.integrations"} <= placed


# -- faultlens.capture: one name, one object ------------------------------------------------


def test_faultlens_capture_is_the_package_and_the_context_manager() -> None:
    import faultlens.capture as by_import

    assert by_import is faultlens.capture is sys.modules["faultlens.capture"]
    from faultlens import capture as by_from

    assert by_from is faultlens.capture
    scope = faultlens.capture(stage="render", video_hash="abc")
    assert isinstance(scope, faultlens.capture.capture)
    assert faultlens.capture.record_error is faultlens.record_error


def test_calling_faultlens_capture_scopes_what_is_recorded_inside() -> None:
    with testing.capture() as cap:
        with faultlens.capture(stage="render", video_hash="abc"):
            faultlens.record_error(ValueError("bad frame"))

        @faultlens.capture(stage="load")
        def load() -> None:
            raise FileNotFoundError("missing.json")

        with pytest.raises(FileNotFoundError):
            load()
    first, second = cap.errors
    assert first.attributes["faultlens.stage"] == "render"
    assert first.attributes["faultlens.context.video_hash"] == "abc"
    assert second.attributes["faultlens.stage"] == "load"
    assert second.info.code == "VAL_FILE_NOT_FOUND"


def test_the_capture_layers_state_is_not_api() -> None:
    from faultlens.capture._state import STATE

    assert "STATE" not in faultlens.capture.__all__
    with pytest.warns(DeprecationWarning, match="internal state"):
        assert faultlens.capture.STATE is STATE


# -- names that say what they are --------------------------------------------------------------


def test_usage_error_is_faultlenss_own_error_and_fault_error_the_applications() -> None:
    assert issubclass(faultlens.ConfigError, faultlens.UsageError)
    assert issubclass(faultlens.CatalogError, faultlens.UsageError)
    assert not issubclass(faultlens.FaultError, faultlens.UsageError)
    assert faultlens.UsageError.__module__ == "faultlens"


@pytest.mark.parametrize(
    ("where", "old", "new"),
    [
        ("faultlens", "FaultlensError", "UsageError"),
        ("faultlens.errors", "FaultlensError", "UsageError"),
        ("faultlens", "ErrorRecord", "RecordedError"),
        ("faultlens.capture", "ErrorRecord", "RecordedError"),
    ],
)
def test_renamed_names_still_work_with_a_deprecation_warning(
    where: str, old: str, new: str
) -> None:
    module = importlib.import_module(where)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; use .*{new}"):
        value = getattr(module, old)
    assert value is getattr(faultlens, new)
    assert old not in getattr(module, "__all__", ())


def test_code_catching_the_old_name_still_catches_configuration_errors() -> None:
    with pytest.warns(DeprecationWarning):
        old = faultlens.FaultlensError
    with pytest.raises(old):
        faultlens.configure(rate_limit=-5)


def test_public_classes_name_the_module_users_import_them_from() -> None:
    for name in (
        "CatalogError",
        "CircuitOpenError",
        "ConfigError",
        "Degraded",
        "FaultError",
        "UnknownCodeError",
        "UsageError",
    ):
        cls = getattr(faultlens, name)
        assert cls.__module__ == "faultlens", name
        assert pickle.loads(pickle.dumps(cls)) is cls
