"""``acustim gui`` and ``python -m gui``: the command opens the window without importing it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from acustim.commands import gui as gui_command

ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    gui_command.register(sub)
    return parser.parse_args(["gui", *argv])


def test_the_command_runs_python_m_gui_with_the_options() -> None:
    args = parse(["--program", "tmj-jaw-pain-right", "--no-record", "--device", "sim:coyote2"])
    assert gui_command.gui_argv(args) == [
        sys.executable,
        "-m",
        "gui",
        "--device",
        "sim:coyote2",
        "--program",
        "tmj-jaw-pain-right",
        "--no-record",
    ]
    assert gui_command.gui_argv(parse(["--no-connect", "--store", "x.db"]))[3:] == [
        "--device",
        "sim:coyote3",
        "--no-connect",
        "--store",
        "x.db",
    ]


def test_the_command_module_does_not_import_the_gui_package() -> None:
    code = (
        "import sys, acustim.commands.gui, acustim.cli\n"
        "bad = [m for m in sys.modules if m == 'gui' or m.startswith('gui.') "
        "or m.startswith('PySide6')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_python_m_gui_help_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gui", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--device" in done.stdout and "--program" in done.stdout


def test_the_screenshots_module_explains_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    from gui import screenshots

    assert screenshots.main([]) == 2
    assert "usage" in capsys.readouterr().err
