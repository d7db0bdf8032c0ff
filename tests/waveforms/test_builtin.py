"""The built-in library: every program loads, validates, passes the placement rules, and keeps
the library's own rules (gentle start, 10-30 min, conservative parameters, honest evidence)."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from safety.placement import check_placement
from waveforms import (
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    ProgramError,
    Ramp,
    builtin_names,
    builtin_programs,
    load_builtin,
    render,
    validate_program,
)
from waveforms.acupoints import load_catalogue, parse_site
from waveforms.builtin import manual_names, needle_variant_of
from waveforms.files import CORE_EVIDENCE, parse_entry, parse_program

NAMES = builtin_names()
CATALOGUE = load_catalogue()
#: The issue's indications, each with the programs that serve it.
INDICATIONS = {
    "TMJ disorder": [
        "tmj-jaw-pain-left",
        "tmj-jaw-pain-right",
        "tmj-jaw-pain-needle-left",
        "tmj-jaw-pain-needle-right",
    ],
    "facial muscle tension": ["facial-muscle-tension"],
    "tension-type headache": ["tension-headache"],
    "Bell's palsy, subacute": ["bells-palsy-subacute-left", "bells-palsy-subacute-right"],
    "Bell's palsy, chronic": ["bells-palsy-chronic-left", "bells-palsy-chronic-right"],
    "trigeminal / facial nerve pain": [
        "trigeminal-facial-pain-left",
        "trigeminal-facial-pain-right",
        "trigeminal-facial-pain-needle-left",
        "trigeminal-facial-pain-needle-right",
    ],
    "migraine prophylaxis": ["migraine-prophylaxis-left", "migraine-prophylaxis-right"],
    "facial rejuvenation": ["facial-rejuvenation"],
    "combined release and rejuvenation": ["combined-release-rejuvenation"],
    "2/100 Hz analgesia": ["han-2-100-analgesia"],
}
#: Programs on the face or head: the reference gives no sourced frequency or pulse width for
#: any of their indications (safety.md 4a-4e: UNCONFIRMED).
FACE_PROGRAMS = [n for n in NAMES if n != "han-2-100-analgesia"]
MIRRORED = [n.removesuffix("-left") for n in NAMES if n.endswith("-left")]
#: The needle variants, each with the pad program it is made from.
VARIANTS = {n: n.replace("-needle", "") for n in NAMES if "-needle" in n}


def test_the_library_covers_every_indication_of_the_issue() -> None:
    for indication, names in INDICATIONS.items():
        assert set(names) <= set(NAMES), indication
    assert sorted(n for names in INDICATIONS.values() for n in names) == NAMES


def test_builtin_names_list_the_shipped_program_files_and_their_needle_variants() -> None:
    library = resources.files("waveforms").joinpath("library")
    files = sorted(
        e.name.removesuffix(".toml") for e in library.iterdir() if e.name.endswith(".toml")
    )
    programs = [f for f in files if f not in manual_names()]

    assert sorted([*programs, *VARIANTS]) == NAMES
    assert sorted([*programs, *manual_names()]) == files
    assert set(VARIANTS.values()) <= set(programs)
    assert all(load_builtin(base).needle_variant for base in VARIANTS.values())
    assert not set(manual_names()) & set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_loads_and_validates(name: str) -> None:
    program = load_builtin(name)

    validate_program(program)
    assert program.name == name
    assert program.source_path is not None
    assert program.source_path.endswith(f"{VARIANTS.get(name, name)}.toml")


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_is_the_same_program_when_parsed_from_its_text(name: str) -> None:
    base = VARIANTS.get(name, name)
    resource = resources.files("waveforms").joinpath("library", f"{base}.toml")

    parsed = parse_program(resource.read_text(encoding="utf-8"), base)
    if name in VARIANTS:
        parsed = needle_variant_of(parsed)

    assert parsed == replace(load_builtin(name), source_path=None)


@pytest.mark.parametrize("name", manual_names())
def test_every_manual_entry_is_the_same_entry_when_parsed_from_its_text(name: str) -> None:
    from waveforms.builtin import load_manual

    resource = resources.files("waveforms").joinpath("library", f"{name}.toml")

    parsed = parse_entry(resource.read_text(encoding="utf-8"), name)

    assert parsed == replace(load_manual(name), source_path=None)


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_passes_the_placement_rules(name: str) -> None:
    report = check_placement(load_builtin(name), CATALOGUE)

    assert report.ok, [f.message for f in report.refusals]
    # without the between-channels warnings, only point warnings remain (eye, mouth)
    isolated = check_placement(load_builtin(name), CATALOGUE, isolated_channels=True)
    assert {f.rule for f in isolated.warnings} <= {"near-eye", "mouth"}


@pytest.mark.parametrize("name", NAMES)
def test_every_pair_is_two_sites_on_one_side_in_one_region(name: str) -> None:
    for channel in load_builtin(name).channels:
        points = [parse_site(site) for site in channel.sites]
        assert len(points) == 2, channel.name
        assert len({side for _, side in points}) == 1, channel.sites
        assert all(side in "LR" for _, side in points), channel.sites
        regions = {point.region for point, _ in points}
        assert regions in (
            {"face"},
            {"head"},
            {"neck"},
            {"face", "head"},
            {"head", "neck"},
            {"leg"},
        )


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_starts_with_a_gentle_ramp_from_zero(name: str) -> None:
    for channel in load_builtin(name).channels:
        first = channel.segments[0]
        assert isinstance(first, Ramp), channel.name
        assert first.intensity_from == 0.0
        assert first.duration_s >= 30.0
        last = channel.segments[-1]
        assert isinstance(last, Ramp) and last.intensity_to == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_lasts_10_to_30_minutes_and_cites_its_duration(name: str) -> None:
    program = load_builtin(name)

    assert 600.0 <= program.duration_s <= 1800.0
    marker = program.marker("duration")
    assert marker is not None and marker.sources, "a duration cites a source"


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_stays_within_2_to_100_hz_and_conservative_pulse_widths(name: str) -> None:
    rendered = render(load_builtin(name), tick_s=0.025)

    playing = rendered.segment >= 0
    assert np.all((rendered.frequency_hz[playing] >= 2.0) & (rendered.frequency_hz[playing] <= 100))
    assert np.all(
        (rendered.pulse_width_us[playing] >= 200.0) & (rendered.pulse_width_us[playing] <= 300.0)
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_channel_has_a_conservative_ceiling(name: str) -> None:
    program = load_builtin(name)
    limit = 0.6 if name == "han-2-100-analgesia" else 0.4
    for channel in program.channels:
        assert 0 < channel.max_level_fraction <= limit, channel.name


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_has_cautions_sources_and_labels_its_practice_defaults(name: str) -> None:
    program = load_builtin(name)

    assert program.cautions
    assert program.sources
    text = " ".join((program.description, *program.cautions)).lower()
    assert "practice default, not evidence" in text
    assert "unconfirmed" in text
    assert "start with the output at zero" in text
    assert all(source.startswith("[") for source in program.sources), "every source has a key"


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_marks_the_evidence_of_its_core_parameters(name: str) -> None:
    program = load_builtin(name)

    for about in CORE_EVIDENCE:
        assert program.marker(about) is not None, about
    # none of the library rests on sources for every core parameter
    assert program.evidence == "practice-default"
    for marker in program.evidence_markers:
        assert marker.note
        if marker.status == "sourced":
            assert marker.sources


@pytest.mark.parametrize("name", FACE_PROGRAMS)
def test_unconfirmed_face_parameters_are_never_presented_as_evidence(name: str) -> None:
    program = load_builtin(name)
    for about in ("frequency", "pulse_width", "ceiling"):
        marker = program.marker(about)
        assert marker is not None and marker.status == "practice-default", about


@pytest.mark.parametrize("stem", MIRRORED)
def test_left_and_right_programs_are_mirror_images(stem: str) -> None:
    left, right = load_builtin(f"{stem}-left"), load_builtin(f"{stem}-right")

    def swap(text: str) -> str:
        return text.replace("LEFT", "RIGHT").replace("left", "right")

    assert swap(left.title) == right.title
    assert swap(left.indication) == right.indication
    assert swap(left.description) == right.description
    assert tuple(swap(c) for c in left.cautions) == right.cautions
    assert left.sources == right.sources
    assert left.evidence_markers == right.evidence_markers
    assert (left.onset_rule, left.stage) == (right.onset_rule, right.stage)
    for a, b in zip(left.channels, right.channels, strict=True):
        assert tuple(s.removesuffix("-L") + "-R" for s in a.sites) == b.sites
        assert a.segments == b.segments
        assert a.max_level_fraction == b.max_level_fraction


def test_the_tmj_programs_use_st6_and_st7_on_the_painful_side_only() -> None:
    for side in ("left", "right"):
        program = load_builtin(f"tmj-jaw-pain-{side}")
        sites = {site for channel in program.channels for site in channel.sites}
        assert sites == {f"ST7-{side[0].upper()}", f"ST6-{side[0].upper()}"}
        assert "Sung 2021" in " ".join(program.sources)
        points = program.marker("points")
        assert points is not None and points.status == "sourced"
        assert set(points.sources) == {"Sung2021", "Li2025"}


def test_the_han_program_alternates_2_and_100_hz_3_s_each_and_cites_han() -> None:
    program = load_builtin("han-2-100-analgesia")

    dense = [s for c in program.channels for s in c.segments if isinstance(s, DenseDisperse)]
    assert dense
    assert {(s.low_hz, s.high_hz, s.low_s, s.high_s) for s in dense} == {(2.0, 100.0, 3.0, 3.0)}
    assert any("Han 2005" in source for source in program.sources)
    for about in ("waveform", "frequency", "pulse_width"):
        marker = program.marker(about)
        assert marker is not None and marker.status == "sourced", about
    points = program.marker("points")
    assert points is not None and points.status == "practice-default"


def test_the_bells_palsy_programs_ask_for_the_onset_and_follow_their_stage() -> None:
    for side in ("left", "right"):
        subacute = load_builtin(f"bells-palsy-subacute-{side}")
        chronic = load_builtin(f"bells-palsy-chronic-{side}")
        assert (subacute.onset_rule, subacute.stage) == ("bells-palsy", "subacute")
        assert (chronic.onset_rule, chronic.stage) == ("bells-palsy", "chronic")
        # subacute: a sparse continuous wave, 10-15 min (tcm-china)
        assert any(isinstance(s, Continuous) for s in subacute.channels[0].segments)
        assert 600 <= subacute.duration_s <= 900
        # chronic: the intermittent wave of the trial (Li 2024)
        assert any(isinstance(s, Intermittent) for s in chronic.channels[0].segments)
        waveform = chronic.marker("waveform")
        assert waveform is not None and "Li2024PMJ" in waveform.sources
        for program in (subacute, chronic):
            onset = program.marker("onset")
            assert onset is not None and onset.status == "sourced"
            assert all(c.max_level_fraction <= 0.3 for c in program.channels)


def test_rejuvenation_is_gentle_and_says_its_cosmetic_effect_is_not_established() -> None:
    program = load_builtin("facial-rejuvenation")

    assert all(c.max_level_fraction <= 0.3 for c in program.channels)
    rendered = render(program, tick_s=0.025)
    assert rendered.intensity.max() <= 0.8
    assert any("CPG 355.200" in caution for caution in program.cautions)


def test_the_combined_session_releases_first_then_rejuvenates_within_the_gentle_ceiling() -> None:
    program = load_builtin("combined-release-rejuvenation")

    for channel in program.channels:
        kinds = [type(s) for s in channel.segments]
        assert kinds.index(DenseDisperse) < kinds.index(Continuous)
        rejuvenation = next(s for s in channel.segments if isinstance(s, Continuous))
        # at the channel's ceiling, the rejuvenation part stays within 30 % of the device
        assert channel.max_level_fraction * rejuvenation.intensity <= 0.3


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
