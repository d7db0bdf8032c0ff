"""The documented examples run as written."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path

import pytest

from acustim.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_api_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "docs" / "examples" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "completed: session completed" in out
    assert "device strength at the end: A=0 du" in out


def test_readme_run_command_is_valid() -> None:
    """The README's first command runs a real session; here on virtual time, unrecorded."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"acustim run [^\n`]+", readme)
    assert match is not None
    argv = shlex.split(match.group(0))[1:]
    assert main([*argv, "--virtual-time", "--no-record", "--quiet"]) == 0
