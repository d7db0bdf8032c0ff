"""User programs: found in the user data directory, checked like any file, never shadowing a
built-in, and able to lower limits only."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from waveforms import ProgramError
from waveforms.builtin import (
    DATA_DIR_ENV,
    MAX_USER_PROGRAMS,
    find_program,
    load_builtin,
    load_user_program,
    load_user_programs,
    user_program_paths,
    user_programs_dir,
)

PROGRAM = """\
[program]
name = "{name}"
title = "My jaw program"
indication = "jaw pain, left"
electrode = "pad"

[[segments]]
kind = "ramp"
duration_s = 60
frequency_hz = 2
pulse_width_us = 250
intensity_from = 0.0
intensity_to = 1.0

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]
max_level_fraction = {ceiling}
"""


def write(folder: Path, stem: str, name: str | None = None, ceiling: float = 0.3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.toml"
    path.write_text(PROGRAM.format(name=name or stem, ceiling=ceiling), encoding="utf-8")
    return path


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    return tmp_path / "programs"


def test_the_folder_is_programs_in_the_data_dir(
    programs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert user_programs_dir() == programs
    monkeypatch.delenv(DATA_DIR_ENV)
    assert user_programs_dir() == Path(platformdirs.user_data_dir("acustim")) / "programs"


def test_no_folder_means_no_user_programs(programs: Path) -> None:
    assert user_program_paths() == []
    assert load_user_programs().programs == ()


def test_good_files_load_and_bad_files_give_one_line_each(programs: Path) -> None:
    write(programs, "my-jaw")
    write(programs, "my-other", ceiling=0.2)
    (programs / "broken.toml").write_text("[program\n", encoding="utf-8")
    write(programs, "renamed", name="something-else")
    write(programs, "tmj-jaw-pain-left")  # a built-in's name
    write(programs, "too-strong", ceiling=1.5)  # a ceiling above the device's: refused
    (programs / "notes.txt").write_text("not a program", encoding="utf-8")

    loaded = load_user_programs()

    assert [p.name for p in loaded.programs] == ["my-jaw", "my-other"]
    assert loaded.programs[0].source_path == str(programs / "my-jaw.toml")
    errors = [str(e) for e in loaded.errors]
    assert len(errors) == 4
    assert all("\n" not in e for e in errors)
    assert errors[0].startswith(f"{programs / 'broken.toml'}:1: TOML text")
    assert errors[1].startswith(f'{programs / "renamed.toml"}:2: program name = "something-else"')
    assert "does not match its file name" in errors[1]
    assert errors[2].startswith(f"{programs / 'tmj-jaw-pain-left.toml'}:2:")
    assert "is the name of a built-in program" in errors[2]
    assert "max_level_fraction = 1.5 is out of range; allowed 0 < x <= 1" in errors[3]


def test_a_user_program_is_found_by_name_after_the_built_ins(programs: Path) -> None:
    write(programs, "my-jaw")

    assert load_user_program("my-jaw").name == "my-jaw"
    assert find_program("my-jaw").name == "my-jaw"
    assert find_program("tmj-jaw-pain-left") is load_builtin("tmj-jaw-pain-left")
    with pytest.raises(ProgramError, match='program name = "nosuch" is unknown'):
        find_program("nosuch")
    with pytest.raises(ProgramError, match=r'user program name = "\.\./my-jaw" is unknown'):
        load_user_program("../my-jaw")
    with pytest.raises(ProgramError, match='user program name = "nosuch" is unknown'):
        load_user_program("nosuch", programs)


def test_a_folder_of_absurd_size_is_refused_not_read(programs: Path) -> None:
    programs.mkdir(parents=True)
    for k in range(MAX_USER_PROGRAMS + 1):
        (programs / f"p{k}.toml").touch()

    with pytest.raises(ProgramError, match=f"more than {MAX_USER_PROGRAMS} files is too many"):
        load_user_programs()
