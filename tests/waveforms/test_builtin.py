"""The built-in library: every program loads, validates, and keeps the library's own rules."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from waveforms import (
    DenseDisperse,
    Program,
    ProgramError,
    Ramp,
    builtin_names,
    builtin_programs,
    load_builtin,
    render,
    validate_program,
)
from waveforms.files import parse_program

# Body region of every site code the library uses. A channel's pair must stay inside one
# region and on one side; a new code must be placed here before a program may use it.
REGIONS = {
    "ST6": "face",
    "ST7": "face",
    "SI19": "face",
    "EX-HN5": "face",
    "LI4": "arm",
    "LI11": "arm",
    "ST36": "leg",
    "SP6": "leg",
}

NAMES = builtin_names()


def test_the_library_has_tmj_facial_tension_and_han_programs() -> None:
    assert len(NAMES) >= 3
    assert {"tmj-jaw-pain-left", "tmj-jaw-pain-right"} <= set(NAMES)
    assert "facial-muscle-tension" in NAMES
    assert "han-2-100-analgesia" in NAMES


def test_builtin_names_list_the_shipped_toml_files() -> None:
    library = resources.files("waveforms").joinpath("library")
    files = sorted(e.name for e in library.iterdir() if e.name.endswith(".toml"))

    assert [f.removesuffix(".toml") for f in files] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_loads_and_validates(name: str) -> None:
    program = load_builtin(name)

    validate_program(program)
    assert program.name == name
    assert program.source_path is not None
    assert program.source_path.endswith(f"{name}.toml")


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_is_the_same_program_when_parsed_from_its_text(name: str) -> None:
    resource = resources.files("waveforms").joinpath("library", f"{name}.toml")

    parsed = parse_program(resource.read_text(encoding="utf-8"), name)

    assert parsed == replace(load_builtin(name), source_path=None)


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_starts_with_a_gentle_ramp_from_zero(name: str) -> None:
    for channel in load_builtin(name).channels:
        first = channel.segments[0]
        assert isinstance(first, Ramp), channel.name
        assert first.intensity_from == 0.0
        assert first.duration_s >= 30.0


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_lasts_10_to_30_minutes(name: str) -> None:
    program = load_builtin(name)

    assert 600.0 <= program.duration_s <= 1800.0
    assert any("10-30 min" in source for source in program.sources)


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_stays_within_2_to_100_hz_and_conservative_pulse_widths(name: str) -> None:
    rendered = render(load_builtin(name), tick_s=0.025)

    playing = rendered.segment >= 0
    assert np.all((rendered.frequency_hz[playing] >= 2.0) & (rendered.frequency_hz[playing] <= 100))
    assert np.all(
        (rendered.pulse_width_us[playing] >= 200.0) & (rendered.pulse_width_us[playing] <= 300.0)
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_pair_stays_in_one_region_on_one_side(name: str) -> None:
    for channel in load_builtin(name).channels:
        codes = [site.rsplit("-", 1) for site in channel.sites]
        assert len(channel.sites) == 2, channel.name
        assert len({side for _, side in codes}) == 1, channel.sites
        assert all(side in "LR" for _, side in codes), channel.sites
        assert len({REGIONS[code] for code, _ in codes}) == 1, channel.sites


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_has_cautions_sources_and_labels_its_practice_defaults(name: str) -> None:
    program = load_builtin(name)

    assert program.cautions
    assert program.sources
    text = " ".join((program.description, *program.cautions)).lower()
    assert "practice default, not evidence" in text
    assert "unconfirmed" in text
    assert "start with the output at zero" in text


def test_the_tmj_programs_use_st6_and_st7_on_the_painful_side_only() -> None:
    for side in ("left", "right"):
        program = load_builtin(f"tmj-jaw-pain-{side}")
        sites = {site for channel in program.channels for site in channel.sites}
        assert sites == {f"ST7-{side[0].upper()}", f"ST6-{side[0].upper()}"}
        assert "Sung 2021" in " ".join(program.sources)


def test_the_han_program_alternates_2_and_100_hz_3_s_each_and_cites_han() -> None:
    program = load_builtin("han-2-100-analgesia")

    dense = [s for c in program.channels for s in c.segments if isinstance(s, DenseDisperse)]
    assert dense
    assert {(s.low_hz, s.high_hz, s.low_s, s.high_s) for s in dense} == {(2.0, 100.0, 3.0, 3.0)}
    assert any("Han 2005" in source for source in program.sources)


def test_an_unknown_builtin_name_lists_the_available_ones() -> None:
    with pytest.raises(ProgramError) as info:
        load_builtin("tmj")

    message = str(info.value)
    assert message.startswith('built-in program name = "tmj" is unknown; allowed ')
    for name in NAMES:
        assert name in message


def test_builtin_programs_returns_every_program_in_name_order() -> None:
    programs = builtin_programs()

    assert [p.name for p in programs] == NAMES
    assert all(isinstance(p, Program) for p in programs)
