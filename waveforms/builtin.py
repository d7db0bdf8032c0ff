"""The built-in protocol library: the programs shipped as ``waveforms/library/*.toml``.

Files are found through ``importlib.resources``, so the library works from a source tree, a
wheel or a zip. Every file goes through the same loader and checks as a user's file, and a
built-in's name is its file name without ``.toml``.

This module never writes files and never decides what is safe: a built-in program is a
starting point that the safety core still vets for each device, patient and placement.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from importlib import resources
from importlib.resources.abc import Traversable

from waveforms.errors import ProgramError
from waveforms.files import parse_program
from waveforms.program import Program

__all__ = ["builtin_names", "builtin_programs", "load_builtin"]

_SUFFIX = ".toml"


def _library() -> Traversable:
    return resources.files("waveforms").joinpath("library")


def builtin_names() -> list[str]:
    """The names of the built-in programs, sorted."""
    return sorted(
        entry.name.removesuffix(_SUFFIX)
        for entry in _library().iterdir()
        if entry.is_file() and entry.name.endswith(_SUFFIX)
    )


@functools.cache
def _load(name: str) -> Program:
    resource = _library().joinpath(name + _SUFFIX)
    source = f"waveforms/library/{name}{_SUFFIX}"
    program = parse_program(resource.read_text(encoding="utf-8"), source)
    if program.name != name:
        raise ProgramError(
            f'{source}:1: program name = "{program.name}" does not match its file name; '
            f'allowed "{name}"'
        )
    # Programs are frozen values, so one cached copy can be shared by every caller.
    return replace(program, source_path=str(resource))


def load_builtin(name: str) -> Program:
    """Load one built-in program by name; an unknown name lists the available ones."""
    names = builtin_names()
    if name not in names:
        raise ProgramError(
            f'built-in program name = "{name}" is unknown; allowed {", ".join(names)}'
        )
    return _load(name)


def builtin_programs() -> list[Program]:
    """Every built-in program, in name order."""
    return [load_builtin(name) for name in builtin_names()]
