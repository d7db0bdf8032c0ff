"""The program library: the built-in programs shipped as ``waveforms/library/*.toml``, and the
user's own programs in ``<user data dir>/programs/*.toml``.

Built-in files are found through ``importlib.resources``, so the library works from a source
tree, a wheel or a zip. User programs live in ``$ACUSTIM_DATA_DIR/programs`` if that is set,
else in ``platformdirs.user_data_dir("acustim")/programs``. Every file goes through the same
loader and checks; a program's name is its file name without ``.toml``, and a user program
may not take a built-in's name.

The library holds two kinds of entry. A program file (the default) is a ``Program`` that a
device can run. A file with ``kind = "manual"`` is a ``ManualEntry``: a point set for needles
placed by hand and why EA is not used, which nothing can run (``manual_names``,
``load_manual``; asking for it as a program gives a one-line refusal that says why). A pad
program whose sources used needles and that says ``needle_variant = true`` is also offered
with needles, as ``<name>-needle`` (``<stem>-needle-left`` for a ``-left`` program), made
from the same file (``needle_variant_of``).

This module never writes files and never decides what is safe: a program is a starting point
that the safety core still vets for each device, patient and placement (and a program file
can only lower limits, never raise them).
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypeVar

import platformdirs

from waveforms.errors import ProgramError
from waveforms.files import find_line, load_entry, load_program, parse_entry
from waveforms.program import Entry, ManualEntry, Program

__all__ = [
    "DATA_DIR_ENV",
    "MAX_USER_PROGRAMS",
    "UserPrograms",
    "builtin_names",
    "builtin_programs",
    "check_user_program",
    "find_entry",
    "find_program",
    "load_builtin",
    "load_manual",
    "load_user_program",
    "load_user_programs",
    "manual_entries",
    "manual_names",
    "needle_variant_name",
    "needle_variant_of",
    "user_program_paths",
    "user_programs_dir",
]

_SUFFIX = ".toml"
_E = TypeVar("_E", bound=Program | ManualEntry)
#: Overrides the user data directory (the records store uses it too).
DATA_DIR_ENV = "ACUSTIM_DATA_DIR"
#: A programs folder holding more files than this is refused rather than read.
MAX_USER_PROGRAMS = 500


def _library() -> Traversable:
    return resources.files("waveforms").joinpath("library")


@dataclass(frozen=True)
class _Index:
    """The library's files by kind: program files, manual entries, and the needle variants
    (variant name -> the pad program it is made from)."""

    programs: tuple[str, ...]
    manual: tuple[str, ...]
    variants: dict[str, str]


@functools.cache
def _index() -> _Index:
    """Which file is which kind: read from each file's ``[program]`` table (a bad file is
    listed as a program, and loading it reports the problem on one line)."""
    programs: list[str] = []
    manual: list[str] = []
    variants: dict[str, str] = {}
    for entry in _library().iterdir():
        if not (entry.is_file() and entry.name.endswith(_SUFFIX)):
            continue
        name = entry.name.removesuffix(_SUFFIX)
        try:
            meta = tomllib.loads(entry.read_text(encoding="utf-8")).get("program", {})
        except tomllib.TOMLDecodeError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("kind") == "manual":
            manual.append(name)
            continue
        programs.append(name)
        if meta.get("needle_variant") is True:
            variants[needle_variant_name(name)] = name
    return _Index(tuple(sorted(programs)), tuple(sorted(manual)), variants)


def builtin_names() -> list[str]:
    """The names of the built-in programs that a device can run (the program files and their
    needle variants), sorted. Manual-acupuncture entries are in ``manual_names``."""
    index = _index()
    return sorted((*index.programs, *index.variants))


def manual_names() -> list[str]:
    """The names of the built-in manual-acupuncture entries (no current), sorted."""
    return list(_index().manual)


@functools.cache
def _load(name: str) -> Entry:
    resource = _library().joinpath(name + _SUFFIX)
    source = f"waveforms/library/{name}{_SUFFIX}"
    entry = parse_entry(resource.read_text(encoding="utf-8"), source)
    if entry.name != name:
        raise ProgramError(
            f'{source}:1: program name = "{entry.name}" does not match its file name; '
            f'allowed "{name}"'
        )
    # Entries are frozen values, so one cached copy can be shared by every caller.
    return replace(entry, source_path=str(resource))


def load_builtin(name: str) -> Program:
    """Load one built-in program by name; an unknown name lists the available ones, and a
    manual-acupuncture entry is refused on one line that says why it cannot be run."""
    index = _index()
    if name in index.manual:
        entry = load_manual(name)
        text = _library().joinpath(name + _SUFFIX).read_text(encoding="utf-8")
        where = f"{entry.source_path}:{find_line(text, ('program',), 'kind')}"
        raise ProgramError(entry.refusal(where))
    if name in index.variants:
        return _variant(name)
    if name not in index.programs:
        raise ProgramError(
            f'built-in program name = "{name}" is unknown; allowed {", ".join(builtin_names())}'
        )
    program = _load(name)
    assert isinstance(program, Program)  # the index read its kind
    return program


def load_manual(name: str) -> ManualEntry:
    """Load one built-in manual-acupuncture entry by name."""
    if name not in _index().manual:
        raise ProgramError(
            f'manual-acupuncture entry name = "{name}" is unknown; allowed '
            + (", ".join(manual_names()) or "none")
        )
    entry = _load(name)
    assert isinstance(entry, ManualEntry)
    return entry


def manual_entries() -> list[ManualEntry]:
    """Every built-in manual-acupuncture entry, in name order."""
    return [load_manual(name) for name in manual_names()]


# --------------------------------------------------------------------------- needle variants

_SIDES = ("-left", "-right")
_NEEDLE_CAUTIONS = (
    "Needle variant of {pad}: the sourced trials used needles (needle EA). It runs only on a "
    "device whose output is charge-balanced (biphasic): of the project's devices, the Pulse "
    "Pal. A d.c. part electrolyses and corrodes needles (safety.md 2); the safety core "
    "refuses needles on any other device.",
    "Practice default, not evidence: needle current ranges are UNCONFIRMED (safety.md 3c). "
    "The waveform, timings and ceilings are those of the pad program {pad}. Insert the "
    "needles first, connect them with the output at zero, then raise slowly.",
)
_NEEDLE_DESCRIPTION = (
    "NEEDLE VARIANT of {pad}, for a device with charge-balanced (biphasic) output: the same "
    "sites, waveform, timings and ceilings, with needles at the sites instead of pads, as in "
    "the sourced EA trials."
)


def needle_variant_name(name: str) -> str:
    """``tmj-jaw-pain-left`` -> ``tmj-jaw-pain-needle-left``; ``x`` -> ``x-needle``."""
    for side in _SIDES:
        if name.endswith(side):
            return name.removesuffix(side) + "-needle" + side
    return name + "-needle"


def needle_variant_of(program: Program) -> Program:
    """The needle variant of a pad program whose sources used needles (``needle_variant =
    true``): electrode "needle", its ``electrode`` marker sourced on the same keys, and the
    needle cautions first. Checked like every program."""
    if not program.needle_variant:
        raise ProgramError(
            f"{program.source_path or program.name}: program needle_variant = false is not "
            "a program with a needle variant; allowed a pad program with needle_variant = true"
        )
    pad = program.name
    note = "Needles at the sites, as in the sourced EA trials (the marker's sources)."
    markers = tuple(  # the electrode marker keeps its source keys
        replace(m, status="sourced", note=note) if m.about == "electrode" else m
        for m in program.evidence_markers
    )
    variant = replace(
        program,
        name=needle_variant_name(pad),
        title=f"{program.title}, needle EA",
        electrode="needle",
        needle_variant=False,
        evidence_markers=markers,
        description=program.description.rstrip() + "\n\n" + _NEEDLE_DESCRIPTION.format(pad=pad),
        cautions=(*(c.format(pad=pad) for c in _NEEDLE_CAUTIONS), *program.cautions),
    )
    return Program.checked(variant)


@functools.cache
def _variant(name: str) -> Program:
    base = _load(_index().variants[name])
    assert isinstance(base, Program)
    return needle_variant_of(base)


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


def check_user_program(path: Path, program: _E) -> _E:
    """The rules for a file in the user programs folder: its program's name is its file name,
    and not a built-in's name. Returns ``program``; raises ``ProgramError`` at the name's line."""
    taken = (*builtin_names(), *manual_names())
    if program.name == path.stem and program.name not in taken:
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
    """The user's programs that loaded, one error per file that did not, and the user's
    manual-acupuncture entries (``kind = "manual"``: listed, never run)."""

    programs: tuple[Program, ...]
    errors: tuple[ProgramError, ...]
    manual: tuple[ManualEntry, ...] = ()


def load_user_programs(directory: Path | None = None) -> UserPrograms:
    """Load every user program; a bad file is reported in ``errors`` and never loaded."""
    programs: list[Program] = []
    manual: list[ManualEntry] = []
    errors: list[ProgramError] = []
    for path in user_program_paths(directory):
        try:
            entry = check_user_program(path, load_entry(path))
        except ProgramError as exc:
            errors.append(exc)
            continue
        if isinstance(entry, ManualEntry):
            manual.append(entry)
        else:
            programs.append(entry)
    return UserPrograms(tuple(programs), tuple(errors), tuple(manual))


def load_user_program(name: str, directory: Path | None = None) -> Program:
    """Load the user program called ``name`` (from ``<programs folder>/<name>.toml``)."""
    folder = user_programs_dir() if directory is None else directory
    path = folder / f"{name}{_SUFFIX}"
    if path.name != f"{name}{_SUFFIX}" or not path.is_file():
        raise ProgramError(
            f'user program name = "{name}" is unknown; allowed a file {name}{_SUFFIX} in {folder}'
        )
    return check_user_program(path, load_program(path))


def find_entry(name: str, directory: Path | None = None) -> Entry:
    """A built-in program or manual entry by name, else a user one (either kind)."""
    if name in builtin_names():
        return load_builtin(name)
    if name in manual_names():
        return load_manual(name)
    folder = user_programs_dir() if directory is None else directory
    path = folder / f"{name}{_SUFFIX}"
    if path.name == f"{name}{_SUFFIX}" and path.is_file():
        return check_user_program(path, load_entry(path))
    return find_program(name, folder)  # the one message for an unknown name


def find_program(name: str, directory: Path | None = None) -> Program:
    """A built-in program by name, else a user program by name. A manual-acupuncture entry
    (built-in or the user's) is refused on one line: why EA is not used, and its file."""
    if name in builtin_names() or name in manual_names():
        return load_builtin(name)
    folder = user_programs_dir() if directory is None else directory
    path = folder / f"{name}{_SUFFIX}"
    if path.name == f"{name}{_SUFFIX}" and path.is_file():
        return load_user_program(name, folder)
    raise ProgramError(
        f'program name = "{name}" is unknown; allowed a built-in ({", ".join(builtin_names())}) '
        f"or a user program in {folder}"
    )
