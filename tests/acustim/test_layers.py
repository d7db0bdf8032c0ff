"""The layers, enforced: ``[tool.importlinter]`` in pyproject.toml holds the contracts, and
``lint-imports`` (import-linter, in the ``test`` extra) must keep every one.

A removed configuration, a removed or weakened contract, or a new import across a layer fails
here. The last test builds a tiny tree with one import across each layer and checks that the
same contracts catch every one (a contract that can never break protects nothing). The GUI's
use of engine internals through attributes, which no import shows, is checked apart.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "acustim",
    "bench",
    "device_profiles",
    "firmware_bridge",
    "gui",
    "safety",
    "simulators",
    "waveforms",
)

#: contract id -> (source packages, the packages they must never import, indirect allowed)
EXPECTED: dict[str, tuple[set[str], set[str], bool]] = {
    "safety-pure": (
        {"safety"},
        {"acustim", "bench", "device_profiles", "firmware_bridge", "gui", "simulators"},
        False,
    ),
    "simulators-alone": (
        {"simulators"},
        {"acustim", "bench", "device_profiles", "firmware_bridge", "gui", "safety", "waveforms"},
        False,
    ),
    "no-gui-below": ({"firmware_bridge", "acustim"}, {"gui"}, False),
    # the app reaches everything through acustim, which itself imports the rest
    "gui-through-acustim": (
        {"gui"},
        {"device_profiles", "firmware_bridge", "safety", "simulators", "waveforms"},
        True,
    ),
}


def _config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f).get("tool", {}).get("importlinter")
    assert config, "pyproject.toml has no [tool.importlinter]: the layers are not checked"
    return dict(config)


def _lint_imports() -> str:
    """The ``lint-imports`` next to this interpreter (the venv's), else on PATH."""
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert found, "lint-imports is not installed: pip install -e '.[test]' (import-linter)"
    return found


def _run(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_layer_contract_is_configured() -> None:
    config = _config()
    assert set(config["root_packages"]) == set(PACKAGES)
    contracts = {c.get("id"): c for c in config.get("contracts", [])}
    assert set(contracts) >= set(EXPECTED), f"missing: {set(EXPECTED) - set(contracts)}"
    for key, (sources, forbidden, indirect) in EXPECTED.items():
        contract = contracts[key]
        assert contract["type"] == "forbidden", key
        assert set(contract["source_modules"]) == sources, key
        assert set(contract["forbidden_modules"]) >= forbidden, key
        assert bool(contract.get("allow_indirect_imports", False)) is indirect, key
        assert not contract.get("ignore_imports"), f"{key}: an exception hides a broken layer"


def test_lint_imports_keeps_every_contract() -> None:
    done = _run(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(EXPECTED)} kept, 0 broken." in done.stdout, done.stdout


#: one import across each layer, in a tree of empty packages
VIOLATIONS = {
    "safety": "import acustim\n",
    "simulators": "import waveforms\n",
    "firmware_bridge": "import gui\n",
    "gui": "import safety\n",
}


@pytest.mark.parametrize("broken", sorted(VIOLATIONS))
def test_the_contracts_catch_an_import_across_each_layer(tmp_path: Path, broken: str) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        text = VIOLATIONS[name] if name == broken else ""
        (tmp_path / name / "__init__.py").write_text(text, encoding="utf-8")
    # the real configuration, as it is in pyproject.toml
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject[pyproject.index("\n[tool.importlinter]\n") :]
    (tmp_path / "pyproject.toml").write_text(section, encoding="utf-8")
    done = _run(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Contracts: {len(EXPECTED) - 1} kept, 1 broken." in done.stdout, done.stdout


def test_gui_uses_no_engine_internals() -> None:
    """What import-linter cannot see: ``gui`` reaching past the engine's API through an
    attribute (the IO thread, a device's transport, a session's runner, guard or streamer)."""
    internals = {"io", "transport", "runner", "guard", "streamer"}
    found = []
    for path in sorted((ROOT / "gui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in internals:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert found == [], "use acustim's API (Engine, Device, Session) instead:\n" + "\n".join(found)
