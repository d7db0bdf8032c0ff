"""``acustim --help`` starts without the heavy stacks: what the parser imports, not how fast.

Building the parser must not import numpy, bleak, pyserial, PySide6 or pyqtgraph (nor the
engine and device stacks): the commands import them when they run. Each check runs in a
fresh interpreter, since this test process has imported everything already. Nothing here is
timed (a slow machine never fails a test); ``python -m bench --only cli_startup`` measures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acustim.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
#: never imported to build the parser or print the help
HEAVY = ("numpy", "bleak", "serial", "PySide6", "pyqtgraph")
#: acustim's engine and device stacks, and the stdlib ones they bring: imported by commands
STACKS = (
    "acustim.engine",
    "acustim.runner",
    "acustim.records",
    "asyncio",
    "device_profiles",
    "firmware_bridge",
    "gui",
    "safety",
    "simulators",
    "sqlite3",
)

_PROBE = """
import contextlib, io, json, sys

def loaded(names):
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in sys.modules))

names = json.loads(sys.argv[1])
seen = {}
from acustim.cli import build_parser, main
build_parser()
seen["parser"] = loaded(names)
for argv in (["--help"], ["run", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv, out=io.StringIO(), err=io.StringIO())
    assert code == 0, (argv, code)
    seen[" ".join(argv)] = loaded(names)
print(json.dumps(seen))
"""


def _loaded_in_fresh_interpreter(names: tuple[str, ...]) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(names)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a speed limit
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def test_building_the_parser_imports_no_heavy_module() -> None:
    seen = _loaded_in_fresh_interpreter(HEAVY)
    assert seen == {"parser": [], "--help": [], "run --help": []}


def test_building_the_parser_imports_neither_the_engine_nor_the_device_stacks() -> None:
    seen = _loaded_in_fresh_interpreter(STACKS)
    assert seen == {"parser": [], "--help": [], "run --help": []}


def _subcommands() -> dict[str, str]:
    """Each subcommand's name and its one-line help, from the parser itself."""
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {sub.dest: sub.help or "" for sub in action._get_subactions()}


def _help(*argv: str) -> subprocess.CompletedProcess[str]:
    """``acustim ARGV`` in a fresh interpreter, 200 columns wide (no wrapped help lines)."""
    return subprocess.run(
        [sys.executable, "-m", "acustim.cli", *argv],
        cwd=ROOT,
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_acustim_help_lists_every_subcommand_and_exits_0() -> None:
    done = _help("--help")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("usage: acustim ")
    assert "Not a medical device" in done.stdout
    commands = _subcommands()
    assert {"run", "gui", "programs", "show", "validate", "sessions", "report"} <= set(commands)
    assert {"export", "screening", "devices", "simulate"} <= set(commands)
    for name, text in commands.items():
        assert re.search(rf"^\s+{re.escape(name)}\s+{re.escape(text)}$", done.stdout, re.M), name


def test_acustim_run_help_lists_every_option_and_exits_0() -> None:
    done = _help("run", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: acustim run ")
    assert "Ctrl-C stops output at once" in done.stdout
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    run = action.choices["run"]
    options = [s for a in run._actions for s in a.option_strings]
    assert "--device" in options and "--level" in options and "--virtual-time" in options
    for option in options:
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", done.stdout, re.M), option
    assert "example: acustim run" in done.stdout


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_subcommand_help_exits_0(command: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main([command, "--help"], out=out, err=err)
    assert code == 0
    assert err.getvalue() == ""


def test_programs_help_names_the_user_programs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "500")
    assert main(["programs", "--help"]) == 0
    assert f"(in {tmp_path / 'programs'}; set $ACUSTIM_DATA_DIR" in capsys.readouterr().out


def test_the_store_help_names_the_records_data_dir_variable() -> None:
    from acustim.commands.records import _STORE_HELP
    from acustim.records import DATA_DIR_ENV

    assert f"if {DATA_DIR_ENV} is set" in _STORE_HELP


def test_the_lazy_names_still_import() -> None:
    """``from acustim import Engine`` and ``waveforms.render`` work as before, loaded late."""
    code = """
import sys
import acustim, waveforms, waveforms.errors
assert "acustim.engine" not in sys.modules and "numpy" not in sys.modules
from acustim import Device, Engine, Session, SessionConfig, SessionStatus, load_program
from acustim import resolve_device, __version__
import acustim.engine, acustim.runner
assert Engine is acustim.engine.Engine and SessionStatus is acustim.runner.SessionStatus
assert set(acustim.__all__) <= set(dir(acustim))
from waveforms import render
import waveforms.render
assert waveforms.render is render and callable(render), waveforms.render
for name in waveforms.__all__:
    getattr(waveforms, name)
import acustim.commands.simulate as simulate
from simulators.hosting.pty import PtyHost
assert simulate.PtyHost is PtyHost
try:
    from acustim import NoSuchName
except ImportError:
    pass
else:
    raise AssertionError("acustim.NoSuchName imported")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
