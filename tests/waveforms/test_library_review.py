"""Issue 12, the library half: manual points, manual-acupuncture entries that can never run,
the electrode the sources used and the needle variants, the new acupoints, and the clinical
revisions of the built-in programs (every label says what its source says)."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from acustim.cli import main
from safety.limits import LimitError
from safety.placement import check_placement
from waveforms import (
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    ProgramError,
    load_builtin,
    load_program,
    parse_program,
    render,
    validate_program,
)
from waveforms.acupoints import load_catalogue, parse_site
from waveforms.builtin import (
    builtin_names,
    find_entry,
    find_program,
    load_manual,
    load_user_programs,
    manual_entries,
    manual_names,
    needle_variant_name,
    needle_variant_of,
)
from waveforms.files import find_line, load_entry, parse_entry
from waveforms.program import ManualEntry
from waveforms.validate import InvalidProgramError, check_entry

CATALOGUE = load_catalogue()
NAMES = builtin_names()
PROGRAMS = [load_builtin(n) for n in NAMES]
#: The one line of a refusal or a bad value: ``where:line: ... = ... is ...; allowed ...``.
LINE = re.compile(r"[^\n]+:\d+: [^\n]+ = [^\n]+ is [^\n]+; allowed [^\n]+")

PROGRAM = """\
[program]
name = "my-jaw"
title = "My jaw"
indication = "jaw pain, left"
electrode = "pad"
{extra}
sources = ["[Sung2021] Sung 2021, Healthcare 9:1497"]

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
{evidence}"""

MANUAL = """\
[program]
kind = "manual"
name = "my-manual"
title = "My manual entry"
indication = "acne"
points = {points}
why_no_ea = "inflamed skin carries no pad"
sources = ["[FDA-PMS] FDA PMS guidance"]
{extra}
[[evidence]]
about = "points"
status = "practice-default"
sources = []
note = "our selection"
"""


def program_text(extra: str = "", evidence: str = "") -> str:
    return PROGRAM.format(extra=extra, evidence=evidence)


def manual_text(points: str = '["LI11-L", "LI11-R"]', extra: str = "") -> str:
    return MANUAL.format(points=points, extra=extra)


def refused(text: str, source: str = "f.toml") -> str:
    with pytest.raises(ProgramError) as info:
        parse_entry(text, source)
    message = str(info.value)
    assert "\n" not in message
    return message


def no_path_between_channels(program: Program) -> bool:
    """Nothing refused, and no path between channels that a device whose outputs share a
    return would be refused for (warned or refused, whichever the placement rules say)."""
    report = check_placement(program, CATALOGUE, isolated_channels=False)
    findings = (*report.refusals, *report.warnings)
    return report.ok and not any(f.rule == "between-channels" for f in findings)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- manual points


def test_manual_points_are_recorded_on_the_program_and_carry_no_current() -> None:
    program = parse_program(program_text('manual_points = ["GB34-L", "GB34-R", "EX-HN3-M"]'))

    assert program.manual_points == ("GB34-L", "GB34-R", "EX-HN3-M")
    assert [c.sites for c in program.channels] == [("ST7-L", "ST6-L")]  # no channel drives them


@pytest.mark.parametrize(
    ("points", "problem", "allowed"),
    [
        ('["KI27-L"]', '"KI27-L" is not in the acupoint catalogue', "a catalogued acupoint"),
        ('["GV20-L"]', '"GV20-L" is a midline point with a side', '"GV20-M"'),
        ('["ST36-M"]', '"ST36-M" is a point of both sides written as midline', '"ST36-L" or'),
        ('["st36-L"]', '"st36-L" is not a site code', "an acupoint code and a side"),
        ('["LR3-L", "LR3-L"]', '"LR3-L" is listed twice', "each site once"),
        ('["ST7-L"]', '"ST7-L" is also a site of channel A', "sites that no channel drives"),
        ("[3]", "3 is a number, not a string", "an acupoint code and a side"),
        ('"LR3-L"', '"LR3-L" is a string, not an array', "0..16 catalogued sites"),
    ],
)
def test_a_bad_manual_point_is_one_line_at_its_key(points: str, problem: str, allowed: str) -> None:
    text = program_text(f"manual_points = {points}")

    message = refused(text)

    assert message.startswith(f"f.toml:6: program manual_points = {problem}; allowed ")
    assert allowed in message
    assert LINE.fullmatch(message)


def test_more_than_16_manual_points_are_refused() -> None:
    sites = [
        f"{c}-{s}"
        for c in ("LI11", "ST36", "LR3", "GB34", "SP6", "PC6", "TE5", "LI4", "GB21")
        for s in "LR"
    ]
    message = refused(program_text(f"manual_points = {sites!r}".replace("'", '"')))

    assert "program manual_points = " in message and "is too many; allowed 0..16" in message


def test_manual_points_built_in_code_are_checked_by_the_one_rule_set() -> None:
    program = parse_program(program_text())

    with pytest.raises(InvalidProgramError, match=r"manual_points\[0\]: .* is not in the acupoint"):
        validate_program(replace(program, manual_points=("XX9-L",)))


# --------------------------------------------------------------------------- manual entries


def test_a_manual_entry_loads_with_its_points_and_why() -> None:
    entry = parse_entry(manual_text(), "m.toml")

    assert isinstance(entry, ManualEntry)
    assert entry.points == ("LI11-L", "LI11-R")
    assert entry.why_no_ea == "inflamed skin carries no pad"
    assert check_entry(entry) == ()


def test_a_manual_entry_is_refused_as_a_program_on_one_line_naming_why_and_where() -> None:
    with pytest.raises(ProgramError) as info:
        parse_program(manual_text(), "m.toml")
    message = str(info.value)

    assert message.startswith('m.toml:2: program kind = "manual" is a manual-acupuncture')
    assert "cannot be run: inflamed skin carries no pad; allowed an EA program" in message
    assert LINE.fullmatch(message)


def test_program_checked_refuses_a_manual_entry_however_it_was_made() -> None:
    entry = ManualEntry("x", "X", "acne", ("LI11-L",), "no pads on inflamed skin")

    with pytest.raises(InvalidProgramError) as info:
        Program.checked(entry)  # type: ignore[arg-type]

    assert str(info.value) == (
        'x: kind: program kind = "manual" is a manual-acupuncture entry that carries no '
        "current and cannot be run: no pads on inflamed skin; allowed an EA program with channels"
    )


@pytest.mark.parametrize(
    ("change", "start"),
    [
        (lambda t: t.replace('"LI11-R"]', '"LI11-R"]\n[[channels]]', 1),
         "f.toml:7: top-level channels = "),
        (lambda t: t + '\n[[segments]]\nkind = "ramp"\n', "f.toml:16: top-level segments = "),
        (lambda t: t.replace('why_no_ea = "inflamed skin carries no pad"\n', ""),
         "f.toml:1: program why_no_ea = (missing) is required"),
        (lambda t: t.replace("inflamed skin carries no pad", "x" * 301),
         "f.toml:7: program why_no_ea = "),
        (lambda t: t.replace('"LI11-R"', '"LI99-R"'),
         'f.toml:6: program points = "LI99-R" is not in the acupoint catalogue'),
        (lambda t: t.replace("points = [", "pionts = ["),
         "f.toml:6: program pionts = "),
        (lambda t: t.replace('kind = "manual"', 'kind = "manul"'),
         'f.toml:2: program kind = "manul" is not an entry kind; allowed "ea"'),
        (lambda t: t.replace('sources = []', 'sources = ["Nobody"]'),
         'f.toml:13: evidence 1 (points) sources = "Nobody" is not a source key'),
    ],
)  # fmt: skip
def test_a_bad_manual_entry_is_one_line_at_its_place(change: object, start: str) -> None:
    message = refused(change(manual_text()))  # type: ignore[operator]

    assert message.startswith(start), message
    assert "; allowed " in message


def test_the_manual_entries_are_their_own_list_and_never_programs() -> None:
    names = manual_names()

    assert {
        "under-eye-puffiness-manual",
        "dull-skin-tone-manual",
        "age-spots-manual",
        "acne-manual",
        "rosacea-manual",
        "bells-palsy-early-manual-left",
        "bells-palsy-early-manual-right",
    } <= set(names)
    assert not set(names) & set(NAMES)
    for entry in manual_entries():
        assert entry.why_no_ea and entry.points and entry.sources
        assert all(s.startswith("[") for s in entry.sources), "every source has a key"
        for site in entry.points:
            parse_site(site)
        points = entry.marker("points")
        assert points is not None and points.note


@pytest.mark.parametrize("name", manual_names())
def test_every_manual_entry_is_refused_by_name_with_its_reason_and_file(name: str) -> None:
    entry = load_manual(name)
    for ask in (load_builtin, find_program):
        with pytest.raises(ProgramError) as info:
            ask(name)
        message = str(info.value)
        text = Path(str(entry.source_path)).read_text(encoding="utf-8")
        line = find_line(text, ("program",), "kind")
        assert f"{entry.source_path}:{line}: program kind = " in message
        assert " ".join(entry.why_no_ea.split()) in message
        assert "\n" not in message
    assert find_entry(name) == entry


def test_a_manual_entry_sent_to_a_device_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    from acustim import Engine

    entry = load_manual("acne-manual")
    with Engine(virtual_time=True, records=tmp_path / "r.sqlite3") as engine:
        device = engine.connect("sim:coyote3")
        with pytest.raises(ProgramError, match='kind = "manual" is a manual-acupuncture entry'):
            device.start(entry, levels={"A": 20})  # type: ignore[arg-type]
        with pytest.raises(ProgramError, match=r"acne-manual\.toml:5: program kind"):
            device.start("acne-manual", levels={"A": 20})
        assert device.simulator.record.intervals() == []
        assert device.simulator.record.max_output("A") == 0.0


def test_the_cli_lists_shows_validates_and_refuses_to_run_manual_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path / "data"))
    code, out, err = run_cli("programs")
    assert code == 0 and err == ""
    section = out.split("manual acupuncture entries: points only, no current; never run\n")[1]
    assert "  acne-manual " in section and "[manual, no current]" in section
    assert "points: LI11-L LI11-R ST36-L ST36-R" in section

    code, out, _ = run_cli("programs", "--indication", "acne")
    assert code == 0 and "acne-manual" in out and "tmj" not in out

    code, out, _ = run_cli("show", "rosacea-manual")
    assert code == 0
    assert out.startswith("rosacea-manual: Rosacea: manual acupuncture only (built-in, manual")
    assert "why no EA: rosacea skin is inflamed" in out
    assert "LI11-L: Quchi 曲池, left arm." in out

    path = tmp_path / "m.toml"
    path.write_text(manual_text(), encoding="utf-8")
    code, out, _ = run_cli("validate", str(path))
    assert (
        code == 0
        and out
        == f"{path}: ok (my-manual, manual acupuncture: 2 points, no current; cannot be run)\n"
    )

    code, out, err = run_cli("run", str(path), "--device", "sim:coyote3", "--no-record")
    assert code == 2 and out == ""
    assert err.startswith(f'acustim: {path}:2: program kind = "manual" is a manual-acupuncture')
    assert len(err.splitlines()) == 1


def test_user_manual_entries_are_listed_apart_and_never_run(tmp_path: Path) -> None:
    folder = tmp_path / "programs"
    folder.mkdir()
    (folder / "my-manual.toml").write_text(manual_text(), encoding="utf-8")

    user = load_user_programs(folder)

    assert user.programs == () and user.errors == ()
    assert [e.name for e in user.manual] == ["my-manual"]
    with pytest.raises(ProgramError, match=r'my-manual.toml:2: program kind = "manual"'):
        find_program("my-manual", folder)
    assert isinstance(find_entry("my-manual", folder), ManualEntry)
    assert isinstance(load_entry(folder / "my-manual.toml"), ManualEntry)
    with pytest.raises(ProgramError, match='kind = "manual"'):
        load_program(folder / "my-manual.toml")


# --------------------------------------------------------------------------- electrodes


def test_a_pad_program_sourced_for_needles_must_say_pads_are_a_practice_default() -> None:
    message = refused(program_text('sourced_for = "needle"'))
    assert message.startswith('f.toml:6: program sourced_for = "needle" is not the program\'s')
    assert 'allowed an [[evidence]] marker with about = "electrode"' in message

    marker = '\n[[evidence]]\nabout = "electrode"\nstatus = "{}"\nsources = ["Sung2021"]\n'
    ok = parse_program(program_text('sourced_for = "needle"', marker.format("practice-default")))
    assert ok.sourced_for == "needle" and ok.marker("electrode") is not None

    with pytest.raises(InvalidProgramError) as info:
        parse_program(program_text('sourced_for = "needle"', marker.format("sourced")), "f.toml")
    assert str(info.value).startswith('f.toml:6: program sourced_for = "needle"')  # the first
    assert [p.path_text for p in info.value.problems] == [
        "sourced_for",
        "evidence_markers[0].status",
    ]
    message = refused(program_text("", marker.format("sourced")))
    assert message.startswith(
        'f.toml:23: evidence 1 (electrode) status = "sourced" is "sourced" for electrode "pad" '
        'with no sourced_for; allowed "sourced" only when sourced_for equals electrode'
    )
    message = refused(program_text('sourced_for = "nedle"'))
    assert 'sourced_for = "nedle" is not an electrode kind; allowed "pad" or "needle"' in message


def test_needle_variant_needs_a_pad_program_sourced_for_needles() -> None:
    message = refused(program_text("needle_variant = true"))
    assert message.startswith("f.toml:6: program needle_variant = true is set on a program")
    message = refused(program_text('needle_variant = "yes"'))
    assert 'needle_variant = "yes" is a string, not a boolean; allowed true or false' in message


@pytest.mark.parametrize("name", [n for n in NAMES if "-needle" in n])
def test_every_needle_variant_is_its_pad_program_with_needles(name: str) -> None:
    variant = load_builtin(name)
    pad = load_builtin(name.replace("-needle", ""))

    assert needle_variant_name(pad.name) == name
    assert variant == needle_variant_of(pad)
    assert (variant.electrode, pad.electrode) == ("needle", "pad")
    assert variant.channels == pad.channels
    electrode = variant.marker("electrode")
    pad_electrode = pad.marker("electrode")
    assert electrode is not None and electrode.status == "sourced"
    assert pad_electrode is not None and pad_electrode.status == "practice-default"
    assert electrode.sources == pad_electrode.sources
    assert variant.cautions[0].startswith(f"Needle variant of {pad.name}: the sourced trials")
    assert variant.evidence == "practice-default"


@pytest.mark.parametrize("name", [n for n in NAMES if "-needle" in n])
def test_needle_variants_run_where_needles_are_allowed_and_nowhere_else(name: str) -> None:
    from device_profiles.profile import load_builtin_profile
    from safety.limits import resolve_limits

    variant = load_builtin(name)
    # the Pulse Pal, the one biphasic profile, shares a return: its placement must still pass
    assert no_path_between_channels(variant)
    with pytest.raises(LimitError, match="needle electrodes"):
        resolve_limits(load_builtin_profile("coyote3").limits, variant)


def test_every_program_says_which_electrode_its_sources_used_where_they_used_needles() -> None:
    sourced_for_needles = {p.name for p in PROGRAMS if p.sourced_for == "needle"}

    for stem in (
        "tmj-jaw-pain",
        "bells-palsy-subacute",
        "bells-palsy-chronic",
        "trigeminal-facial-pain",
    ):
        assert {f"{stem}-left", f"{stem}-right"} <= sourced_for_needles
    assert "tension-headache" in sourced_for_needles
    for program in PROGRAMS:
        if program.sourced_for == "needle" and program.electrode == "pad":
            marker = program.marker("electrode")
            assert marker is not None and marker.status == "practice-default", program.name
            assert "needles" in marker.note and "practice default" in marker.note


# --------------------------------------------------------------------------- acupoints


def test_the_missing_points_are_catalogued_and_te17_gb12_gb21_are_neck_points() -> None:
    for code, region in {
        "EX-HN3": "face",
        "QIANZHENG": "face",
        "JIACHENGJIANG": "face",
        "GB7": "head",
        "GB21": "neck",
        "TE17": "neck",
        "GB12": "neck",
    }.items():
        assert CATALOGUE[code].region == region, code
    assert CATALOGUE["EX-HN3"].laterality == "midline" and CATALOGUE["EX-HN3"].pinyin == "Yintang"
    assert "mouth" in CATALOGUE["JIACHENGJIANG"].hazards
    assert CATALOGUE["QIANZHENG"].face_xy is not None
    assert CATALOGUE["GB21"].face_xy is None  # on the shoulder: not on the face map


def test_a_face_pair_to_te17_is_now_refused_and_a_neck_pair_behind_the_ear_is_not() -> None:
    def pair(*sites: str) -> Program:
        return replace(PROGRAMS[0], channels=(replace(PROGRAMS[0].channels[0], sites=sites),))

    refused_rules = {f.rule for f in check_placement(pair("TE17-L", "ST6-L"), CATALOGUE).refusals}
    assert refused_rules == {"distant-regions"}
    assert check_placement(pair("GB12-L", "GB20-L"), CATALOGUE).ok
    assert check_placement(pair("QIANZHENG-L", "ST6-L"), CATALOGUE).ok


# --------------------------------------------------------------------------- the clinical review

GENERIC = {"tsu", "hzy", "G6805", "SessionLength"}


@pytest.mark.parametrize("program", PROGRAMS, ids=NAMES)
def test_intensity_and_on_off_timing_are_never_sourced_to_a_generic_procedure(
    program: Program,
) -> None:
    for about in ("intensity", "timing"):
        marker = program.marker(about)
        if marker is not None and marker.status == "sourced":
            assert set(marker.sources) - GENERIC, f"{about} rests only on {marker.sources}"


def test_the_tmj_duration_and_sessions_from_a_manual_trial_are_practice_defaults() -> None:
    for name in ("tmj-jaw-pain-left", "tmj-jaw-pain-right"):
        program = load_builtin(name)
        for about in ("duration", "sessions"):
            marker = program.marker(about)
            assert marker is not None and marker.status == "practice-default", about
            assert "manual acupuncture" in marker.note


def test_gb14_is_credited_to_the_source_that_lists_it() -> None:
    for name in NAMES:
        if name.startswith("bells-palsy"):
            points = load_builtin(name).marker("points")
            assert points is not None
            assert "GB14 (didiv)" in points.note and "tcm-china does not list GB14" in points.note


@pytest.mark.parametrize("program", PROGRAMS, ids=NAMES)
def test_dense_disperse_programs_judge_comfort_at_100_hz(program: Program) -> None:
    dense = [s for c in program.channels for s in c.segments if isinstance(s, DenseDisperse)]
    if not dense:
        return
    assert all("judge comfort at 100 Hz" in s.label for s in dense)
    assert any(c.startswith("Judge comfort in the 100 Hz phase") for c in program.cautions)


def test_facial_muscle_tension_is_a_sensory_level_relaxation_program_the_et312_can_run() -> None:
    program = load_builtin("facial-muscle-tension")
    segments = [s for c in program.channels for s in c.segments]

    assert not any(isinstance(s, Intermittent) for s in segments)  # no strengthening cycle
    assert any(isinstance(s, Continuous) for s in segments)
    rendered = render(program, tick_s=0.025)
    assert np.all(rendered.frequency_hz[rendered.segment >= 0] >= 15.3)  # the ET-312's floor
    text = " ".join((program.description, *program.cautions))
    assert "slight visible twitch is acceptable" not in text
    assert "no visible twitch" in text


def test_rejuvenation_neither_contradicts_itself_on_twitch_nor_claims_puffiness() -> None:
    program = load_builtin("facial-rejuvenation")
    text = " ".join((program.description, *program.cautions))

    assert "slight visible twitch is acceptable" not in text
    assert "no visible twitch" in text
    assert "puffiness" not in program.indication
    assert not any("puffiness" in s.label for c in program.channels for s in c.segments)


def test_the_trigeminal_programs_put_no_pad_on_the_cheek_or_jaw() -> None:
    for name in NAMES:
        if name.startswith("trigeminal"):
            program = load_builtin(name)
            sites = {s.rsplit("-", 1)[0] for c in program.channels for s in c.sites}
            assert not sites & {"ST7", "ST6", "ST5", "ST4", "ST3", "SI18"}, name
            assert any("Map the trigger zones first" in c for c in program.cautions)


def test_bells_palsy_guidance_never_chases_a_twitch_and_the_chronic_stage_screens_synkinesis() -> (
    None
):
    for name in NAMES:
        if not name.startswith("bells-palsy"):
            continue
        program = load_builtin(name)
        assert any(
            c.startswith("Never raise the level to chase a twitch") for c in program.cautions
        )
        synkinesis = [c for c in program.cautions if "synkinesis screening answer" in c]
        assert bool(synkinesis) == (program.stage == "chronic"), name


def test_the_migraine_programs_are_practice_defaults_with_manual_points() -> None:
    for side in ("left", "right"):
        program = load_builtin(f"migraine-prophylaxis-{side}")
        assert program.manual_points == ("LR3-L", "LR3-R")
        assert all(m.status == "practice-default" for m in program.evidence_markers)
        assert program.sourced_for == ""  # no stored source of EA for migraine
        assert no_path_between_channels(program)


def test_the_combined_session_lists_manual_points_beside_its_ea_pairs() -> None:
    program = load_builtin("combined-release-rejuvenation")

    assert 1 <= len(program.channels) <= 3
    assert program.manual_points == ("GB34-L", "GB34-R")
    channel_sites = {s for c in program.channels for s in c.sites}
    assert not channel_sites & set(program.manual_points)
    points = program.marker("points")
    assert points is not None and "Li2025" in points.sources


def test_the_manual_entry_example_of_the_format_page_loads() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "program-format.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), re.DOTALL)
    manual = [b for b in blocks if 'kind = "manual"' in b]

    assert len(manual) == 1
    entry = parse_entry(manual[0], str(docs))
    assert isinstance(entry, ManualEntry) and entry.name == "acne-manual"


def test_running_a_manual_entry_by_name_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path / "data"))

    code, out, err = run_cli("run", "bells-palsy-early-manual-left", "--device", "sim:coyote3")

    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert 'bells-palsy-early-manual-left.toml:6: program kind = "manual"' in err
    assert "no EA in the first week after onset" in err
