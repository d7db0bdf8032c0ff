"""Program files, second part: evidence markers, keyed sources, onset rules, and absurd input
(deep nesting, huge numbers, a million segments) that must give one line, never a traceback."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from waveforms import ProgramError, load_program, parse_program, validate_program
from waveforms.files import (
    CORE_EVIDENCE,
    MAX_EVIDENCE_MARKERS,
    MAX_FILE_BYTES,
    derive_evidence,
    find_line,
)
from waveforms.program import EvidenceMarker, source_key

MESSAGE = re.compile(r"[^\n]+?:\d+: [^\n]+ = [^\n]+ is [^\n]+; allowed [^\n]+")

BASE = """\
[program]
name = "evidence-test"
title = "Evidence test"
indication = "jaw pain, left"
electrode = "pad"
sources = [
    "[Sung2021] Sung 2021, Healthcare 9:1497",
    "[Li2025] Li 2025, Chin Acup Moxib 45(4):453",
    "an unkeyed note",
]

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
"""


def marker(about: str, status: str = "sourced", sources: str = '["Sung2021"]') -> str:
    return (
        f'\n[[evidence]]\nabout = "{about}"\nstatus = "{status}"\nsources = {sources}\n'
        f'note = "about {about}"\n'
    )


ALL_SOURCED = "".join(marker(about) for about in CORE_EVIDENCE)


def error_of(text: str, source: str = "ev.toml") -> str:
    with pytest.raises(ProgramError) as info:
        parse_program(text, source)
    message = str(info.value)
    assert "\n" not in message
    assert MESSAGE.fullmatch(message), message
    return message


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


# --------------------------------------------------------------------------- evidence


def test_a_program_without_markers_has_unstated_evidence() -> None:
    program = parse_program(BASE)

    assert program.evidence == "unstated"
    assert program.evidence_markers == ()
    assert program.source_keys == {
        "Sung2021": "[Sung2021] Sung 2021, Healthcare 9:1497",
        "Li2025": "[Li2025] Li 2025, Chin Acup Moxib 45(4):453",
    }


def test_markers_load_in_order_with_their_sources_and_notes() -> None:
    text = (
        BASE
        + marker("points", sources='["sung2021", "Li2025"]')
        + marker("frequency", "practice-default", "[]")
    )

    program = parse_program(text)

    assert program.evidence_markers == (
        EvidenceMarker("points", "sourced", ("Sung2021", "Li2025"), "about points"),
        EvidenceMarker("frequency", "practice-default", (), "about frequency"),
    )
    assert program.marker("points") is program.evidence_markers[0]
    assert program.marker("duration") is None
    assert program.evidence == "practice-default"  # derived: a practice default is marked
    validate_program(program)


def test_every_core_parameter_sourced_makes_a_sourced_program() -> None:
    program = parse_program(
        BASE.replace('electrode = "pad"', 'electrode = "pad"\nevidence = "sourced"') + ALL_SOURCED
    )

    assert program.evidence == "sourced"
    assert parse_program(BASE + ALL_SOURCED).evidence == "sourced"  # derived when omitted


def test_a_declared_practice_default_stands_even_with_sourced_markers() -> None:
    text = BASE.replace('electrode = "pad"', 'electrode = "pad"\nevidence = "practice-default"')

    assert parse_program(text + ALL_SOURCED).evidence == "practice-default"


def test_claiming_sourced_evidence_the_markers_do_not_support_is_refused_at_its_line() -> None:
    text = BASE.replace('electrode = "pad"', 'electrode = "pad"\nevidence = "sourced"')
    text += marker("points") + marker("frequency", "practice-default", "[]")

    message = error_of(text)

    assert message == (
        f'ev.toml:{line_of(text, "evidence = ")}: program evidence = "sourced" is not supported '
        "by the [[evidence]] markers (frequency is a practice default and waveform, pulse_width, "
        'duration have no marker); allowed "practice-default", or a sourced marker for each of '
        "points, waveform, frequency, pulse_width, duration and no practice default"
    )
    none = error_of(BASE.replace('electrode = "pad"', 'electrode = "pad"\nevidence = "sourced"'))
    assert "(there are no markers)" in none


TOP = 'evidence = "strong"\n'
WITH_LEVEL = BASE.replace('electrode = "pad"', 'electrode = "pad"\nevidence = "unstated"')
BAD_MARKERS = [
    (BASE + marker("colour"), 'evidence 1 about = "colour" is not a parameter name', "about ="),
    (
        BASE + '\n[[evidence]]\nstatus = "sourced"\n',
        "evidence 1 about = (missing) is required",
        "[[evidence]]",
    ),
    (
        BASE + marker("points", "proven"),
        'evidence 1 (points) status = "proven" is not an evidence status',
        "status =",
    ),
    (
        BASE + marker("points", "sourced", "[]"),
        'evidence 1 (points) sources = [] is required for status = "sourced"',
        "sources = []",
    ),
    (
        BASE + '\n[[evidence]]\nabout = "points"\nstatus = "sourced"\n',
        'evidence 1 (points) sources = (missing) is required for status = "sourced"',
        "[[evidence]]",
    ),
    (
        BASE + marker("points", sources='["Nobody2020"]'),
        'sources = "Nobody2020" is not a source key',
        'sources = ["Nobody',
    ),
    (
        BASE + marker("points") + marker("points"),
        'evidence 2 (points) about = "points" is a duplicate of the marker on line',
        'about = "points"',
    ),
    (
        BASE + marker("points").replace("note", "nots"),
        'nots = "about points" is an unknown key (did you mean note?)',
        "nots",
    ),
    (TOP + BASE, 'top-level evidence = "strong" is not an array of tables', "evidence ="),
    (WITH_LEVEL, 'program evidence = "unstated" is not an evidence level', "evidence ="),
]


@pytest.mark.parametrize(("text", "fragment", "needle"), BAD_MARKERS)
def test_bad_markers_give_one_line_at_the_place(text: str, fragment: str, needle: str) -> None:
    message = error_of(text)

    assert fragment in message
    nth = 2 if "duplicate" in fragment else 1  # a duplicate is reported at the second one
    assert message.startswith(f"ev.toml:{line_of(text, needle, nth)}:"), message


def test_bad_source_keys_are_refused() -> None:
    malformed = BASE.replace('"an unkeyed note"', '"[no key here"')
    assert 'program sources = "[no key here" is a malformed key' in error_of(malformed)
    twice = BASE.replace('"an unkeyed note"', '"[sung2021] again"')
    assert 'program sources = "sung2021" is a duplicate source key' in error_of(twice)
    assert source_key("[A.b_c-1] text") == "A.b_c-1"
    assert source_key("[] text") is None
    assert source_key("[x]text") is None


def test_too_many_markers_or_marker_sources_are_refused() -> None:
    many = BASE + marker("points") * (MAX_EVIDENCE_MARKERS + 1)
    assert f"top-level evidence = {MAX_EVIDENCE_MARKERS + 1} markers is too many" in error_of(many)
    keys = "[" + ", ".join('"Sung2021"' for _ in range(17)) + "]"
    assert 'sources = ["Sung2021", "Sung2021", "Sung2021", ...] is too many' in error_of(
        BASE + marker("points", sources=keys)
    )


def test_derive_evidence_needs_every_core_parameter_sourced() -> None:
    sourced = tuple(EvidenceMarker(a, "sourced", ("k",)) for a in CORE_EVIDENCE)
    assert derive_evidence(()) == "unstated"
    assert derive_evidence(sourced) == "sourced"
    assert derive_evidence(sourced[1:]) == "practice-default"
    extra = (*sourced, EvidenceMarker("ceiling", "practice-default"))
    assert derive_evidence(extra) == "practice-default"


KEYS_17 = ("Sung2021",) * 17


def test_validate_program_checks_markers_built_in_code() -> None:
    program = parse_program(BASE + marker("points"))
    cases = [
        (replace(program, evidence_markers=(EvidenceMarker("colour", "sourced", ("Sung2021",)),)),
         'evidence_markers[0].about: evidence 1 about = "colour" is not a parameter name'),
        (replace(program, evidence_markers=program.evidence_markers * 2),
         'evidence 2 (points) about = "points" is a duplicate of the marker on '
         "evidence_markers[0].about"),
        (replace(program, evidence_markers=(EvidenceMarker("points", "proven", ("Sung2021",)),)),  # type: ignore[arg-type]
         'status = "proven" is not an evidence status'),
        (replace(program, evidence_markers=(EvidenceMarker("points", "sourced", ()),)),
         'sources = [] is required for status = "sourced"'),
        (replace(program, evidence_markers=(EvidenceMarker("points", "sourced", ("X",)),)),
         'sources = "X" is not a source key'),
        (replace(program, evidence_markers=(EvidenceMarker("points", "sourced", KEYS_17),)),
         "sources = [\"Sung2021\", \"Sung2021\", \"Sung2021\", ...] is too many"),
        (replace(program, evidence_markers=program.evidence_markers * 33),
         "program evidence_markers = 33 markers is too many"),
        (replace(program, evidence="sourced"),
         'program evidence = "sourced" is not supported by the [[evidence]] markers'),
        (replace(program, evidence="strong"),  # type: ignore[arg-type]
         'program evidence = "strong" is not an evidence level'),
        (replace(program, evidence="unstated"),
         'program evidence = "unstated" is unstated despite markers'),
        (replace(program, onset_rule="flu"),  # type: ignore[arg-type]
         'program onset_rule = "flu" is not an onset rule'),
        (replace(program, stage="acute"),  # type: ignore[arg-type]
         'program stage = "acute" is not a stage'),
        (replace(program, stage="chronic"),
         'program stage = "chronic" is set without an onset_rule'),
    ]  # fmt: skip
    for bad, fragment in cases:
        with pytest.raises(ProgramError, match=re.escape(fragment)):
            validate_program(bad)
    validate_program(replace(program, onset_rule="bells-palsy", stage="chronic"))


# --------------------------------------------------------------------------- onset rules


def test_onset_rule_and_stage_load_and_bad_values_are_refused() -> None:
    ok = BASE.replace(
        'electrode = "pad"', 'electrode = "pad"\nonset_rule = "bells-palsy"\nstage = "chronic"'
    )
    program = parse_program(ok)
    assert (program.onset_rule, program.stage) == ("bells-palsy", "chronic")
    assert (parse_program(BASE).onset_rule, parse_program(BASE).stage) == ("", "")

    bad_rule = ok.replace('"bells-palsy"', '"flu"')
    where = f"ev.toml:{line_of(bad_rule, 'onset_rule')}:"
    assert f'{where} program onset_rule = "flu" is not an onset rule' in error_of(bad_rule)
    bad_stage = ok.replace('"chronic"', '"acute"')
    assert 'program stage = "acute" is not a stage; allowed "subacute" or "chronic"' in error_of(
        bad_stage
    )
    lonely = BASE.replace('electrode = "pad"', 'electrode = "pad"\nstage = "chronic"')
    assert 'program stage = "chronic" is set without an onset_rule' in error_of(lonely)


# --------------------------------------------------------------------------- absurd input


def test_arrays_nested_thousands_deep_are_one_line_not_a_recursion_error() -> None:
    text = BASE + "\nx = " + "[" * 5000 + "]" * 5000 + "\n"

    with pytest.raises(ProgramError) as info:
        parse_program(text, "deep.toml")

    message = str(info.value)
    assert message.startswith(f"deep.toml:{line_of(text, 'x = ')}: TOML nesting = 5000 levels")
    assert "is too deep; allowed" in message


def test_a_huge_integer_is_named_not_printed() -> None:
    text = BASE.replace("duration_s = 60", "duration_s = " + "9" * 50)

    message = error_of(text)

    assert "duration_s = (an integer of about 50 digits) is out of range" in message


def test_an_integer_too_long_to_read_is_one_line_at_its_place() -> None:
    text = BASE.replace("duration_s = 60", "duration_s = " + "9" * 5000)

    message = error_of(text)

    assert message == (
        f"ev.toml:{line_of(text, 'duration_s')}: TOML number = (5000 digits) is too long to "
        "read; allowed numbers within the ranges of the program format"
    )


def test_a_million_segments_never_reach_the_parser(tmp_path: Path) -> None:
    segment = (
        '\n[[segments]]\nkind = "continuous"\nduration_s = 1\nfrequency_hz = 2\n'
        "pulse_width_us = 250\nintensity = 1\n"
    )
    path = tmp_path / "million.toml"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(BASE)
        for _ in range(20_000):  # far past the size limit already; a million would be 80 MB
            handle.write(segment)

    with pytest.raises(ProgramError) as info:
        load_program(path)

    assert str(info.value).startswith(f"{path}:1: file size = ")
    assert f"allowed at most {MAX_FILE_BYTES} bytes" in str(info.value)


def test_find_line_points_into_a_loaded_file() -> None:
    assert find_line(BASE, ("channels", 0), "sites") == line_of(BASE, "sites = [")
    assert find_line(BASE, ("channels", 0)) == line_of(BASE, "[[channels]]")
    assert find_line(BASE, ("nowhere",)) == 1


def test_validate_program_names_a_huge_integer_from_code_without_printing_it() -> None:
    program = parse_program(BASE)
    channel = replace(program.channels[0], max_level_fraction=10**5000)  # type: ignore[arg-type]

    with pytest.raises(ProgramError, match=r"= \(an integer of about 5001 digits\) is out"):
        validate_program(replace(program, channels=(channel,)))
