"""The program library: the built-in programs shipped as ``waveforms/library/*.toml``, and the
user's own programs in ``<user data dir>/programs/*.toml``.

Built-in files are found through ``importlib.resources``, so the library works from a source
tree, a wheel or a zip. User programs live in ``$ACUSTIM_DATA_DIR/programs`` if that is set,
else in ``platformdirs.user_data_dir("acustim")/programs``. Every file goes through the same
loader and checks; a program's name is its file name without ``.toml``, and a user program
may not take a built-in's name.

This module never writes files and never decides what is safe: a program is a starting point
that the safety core still vets for each device, patient and placement (and a program file
can only lower limits, never raise them).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import platformdirs

from waveforms.errors import ProgramError
from waveforms.files import find_line, load_program, parse_program
from waveforms.program import Program

__all__ = [
    "DATA_DIR_ENV",
    "MAX_USER_PROGRAMS",
    "UserPrograms",
    "builtin_names",
    "builtin_programs",
    "check_user_program",
    "find_program",
    "load_builtin",
    "load_user_program",
    "load_user_programs",
    "user_program_paths",
    "user_programs_dir",
]

_SUFFIX = ".toml"
#: Overrides the user data directory (the records store uses it too).
DATA_DIR_ENV = "ACUSTIM_DATA_DIR"
#: A programs folder holding more files than this is refused rather than read.
MAX_USER_PROGRAMS = 500


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


# --------------------------------------------------------------------------- user programs


def user_programs_dir() -> Path:
    """``$ACUSTIM_DATA_DIR/programs`` if that is set, else ``programs`` in the user data dir."""
    override = os.environ.get(DATA_DIR_ENV)
    base = Path(override).expanduser() if override else Path(platformdirs.user_data_dir("acustim"))
    return base / "programs"


def user_program_paths(directory: Path | None = None) -> list[Path]:
    """The ``*.toml`` files of the user programs folder, sorted (none if it does not exist).

    A folder with more than ``MAX_USER_PROGRAMS`` files is refused (``ProgramError``)."""
    folder = user_programs_dir() if directory is None else directory
    if not folder.is_dir():
        return []
    paths: list[Path] = []
    for entry in folder.iterdir():
        if entry.suffix == _SUFFIX and entry.is_file():
            paths.append(entry)
            if len(paths) > MAX_USER_PROGRAMS:
                raise ProgramError(
                    f"{folder}: user programs = more than {MAX_USER_PROGRAMS} files is too many; "
                    f"allowed at most {MAX_USER_PROGRAMS} program files"
                )
    return sorted(paths)


def check_user_program(path: Path, program: Program) -> Program:
    """The rules for a file in the user programs folder: its program's name is its file name,
    and not a built-in's name. Returns ``program``; raises ``ProgramError`` at the name's line."""
    if program.name == path.stem and program.name not in builtin_names():
        return program
    text = path.read_text(encoding="utf-8-sig")
    line = find_line(text, ("program",), "name")
    if program.name != path.stem:
        raise ProgramError(
            f'{path}:{line}: program name = "{program.name}" does not match its file name; '
            f'allowed "{path.stem}" (or rename the file)'
        )
    raise ProgramError(
        f'{path}:{line}: program name = "{program.name}" is the name of a built-in program; '
        "allowed a name of your own (copy the built-in under a new name and file name)"
    )


@dataclass(frozen=True)
class UserPrograms:
    """The user's programs that loaded, and one error per file that did not."""

    programs: tuple[Program, ...]
    errors: tuple[ProgramError, ...]


def load_user_programs(directory: Path | None = None) -> UserPrograms:
    """Load every user program; a bad file is reported in ``errors`` and never loaded."""
    programs: list[Program] = []
    errors: list[ProgramError] = []
    for path in user_program_paths(directory):
        try:
            programs.append(check_user_program(path, load_program(path)))
        except ProgramError as exc:
            errors.append(exc)
    return UserPrograms(tuple(programs), tuple(errors))


def load_user_program(name: str, directory: Path | None = None) -> Program:
    """Load the user program called ``name`` (from ``<programs folder>/<name>.toml``)."""
    folder = user_programs_dir() if directory is None else directory
    path = folder / f"{name}{_SUFFIX}"
    if path.name != f"{name}{_SUFFIX}" or not path.is_file():
        raise ProgramError(
            f'user program name = "{name}" is unknown; allowed a file {name}{_SUFFIX} in {folder}'
        )
    return check_user_program(path, load_program(path))


def find_program(name: str, directory: Path | None = None) -> Program:
    """A built-in program by name, else a user program by name."""
    if name in builtin_names():
        return load_builtin(name)
    folder = user_programs_dir() if directory is None else directory
    path = folder / f"{name}{_SUFFIX}"
    if path.name == f"{name}{_SUFFIX}" and path.is_file():
        return load_user_program(name, folder)
    raise ProgramError(
        f'program name = "{name}" is unknown; allowed a built-in ({", ".join(builtin_names())}) '
        f"or a user program in {folder}"
    )
