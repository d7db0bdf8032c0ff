"""The one rule set (``waveforms.validate``): every rule, each problem with its path and its
allowed range, the same for a program built in code as for a program file."""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace as _replace
from typing import Any, TypeVar

import pytest

from tests.waveforms.test_files import EXPECTED, VALID, edit
from waveforms import (
    Channel,
    Continuous,
    DenseDisperse,
    Intermittent,
    InvalidProgramError,
    Program,
    ProgramError,
    Ramp,
    check_program,
    parse_program,
    validate_program,
)
from waveforms.program import EvidenceMarker

T = TypeVar("T")


def replace(obj: T, **change: Any) -> T:
    """``dataclasses.replace``, typed loosely: these tests build programs with bad values."""
    return _replace(obj, **change)  # type: ignore[type-var]


A, B = EXPECTED.channels
CONTINUOUS = Continuous(30.0, 10.0, 200.0, 0.5)
SOURCED = replace(
    EXPECTED,
    sources=("[Sung2021] Sung 2021",),
    evidence="practice-default",
    evidence_markers=(EvidenceMarker("points", "sourced", ("Sung2021",)),),
)


def with_a(**change: object) -> Program:
    return replace(EXPECTED, channels=(replace(A, **change), B))


def with_segment(segment: object) -> Program:
    return with_a(segments=(segment,))


def with_marker(marker: object) -> Program:
    return replace(SOURCED, evidence_markers=(marker,))


def only(program: object) -> tuple[str, str]:
    """The one problem of ``program``: its path and its message."""
    problems = check_program(program)
    assert len(problems) == 1, [p.message("x") for p in problems]
    return problems[0].path_text, problems[0].message("x")


RULES = [
    # [program]
    (replace(EXPECTED, name="x" * 65), "name", "is too long"),
    (replace(EXPECTED, name="Bad Name"), "name", "is not a slug"),
    (replace(EXPECTED, title="x" * 121), "title", "is too long; allowed a string of 1..120"),
    (replace(EXPECTED, indication=""), "indication", "is empty"),
    (replace(EXPECTED, description="x" * 4001), "description", "is too long"),
    (replace(EXPECTED, electrode="wire"), "electrode", 'allowed "pad" or "needle"'),
    (replace(EXPECTED, electrode_area_cm2=501.0), "electrode_area_cm2", "0 < x <= 500 cm^2"),
    (replace(EXPECTED, cautions=("ok", " ")), "cautions[1]", 'cautions = " " is empty'),
    (replace(EXPECTED, cautions="start"), "cautions", '"start" is a string, not an array'),
    (replace(EXPECTED, sources=("[bad key",)), "sources[0]", "is a malformed key"),
    (replace(EXPECTED, sources=("[k] a", "[K] b")), "sources[1]", '"K" is a duplicate source'),
    (replace(EXPECTED, onset_rule="flu"), "onset_rule", 'allowed "bells-palsy"'),
    (replace(EXPECTED, stage="acute"), "stage", 'allowed "subacute" or "chronic"'),
    (replace(EXPECTED, stage="chronic"), "stage", "set without an onset_rule"),
    (replace(EXPECTED, evidence="strong"), "evidence", "is not an evidence level"),
    (replace(SOURCED, evidence="sourced"), "evidence", "not supported by the [[evidence]]"),
    (replace(SOURCED, evidence="unstated"), "evidence", "unstated despite markers"),
    # channels
    (replace(EXPECTED, channels=()), "channels", "0 channels is too few; allowed 1..8"),
    (replace(EXPECTED, channels=(B,) * 9), "channels", "9 channels is too many"),
    (replace(EXPECTED, channels=(A, "B")), "channels[1]", '"B" is a string, not a channel'),
    (with_a(name="channel-one"), "channels[0].name", "channel 1 name = "),
    (with_a(name="A B"), "channels[0].name", "is not a channel name"),
    (replace(EXPECTED, channels=(A, replace(B, name="a"))), "channels[1].name", "duplicate"),
    (with_a(sites=()), "channels[0].sites", "sites = [] is too few; allowed 1..8 sites"),
    (with_a(sites=("ST6-L",) * 9), "channels[0].sites", "is too many"),
    (with_a(sites=("ST6-L", "st7-l")), "channels[0].sites[1]", '"st7-l" is not a site code'),
    (with_a(sites=("ST6-L", "ST6-L")), "channels[0].sites[1]", '"ST6-L" is listed twice'),
    (with_a(sites=("ST" + "6" * 20 + "-L",)), "channels[0].sites[0]", "is not a site code"),
    (with_a(max_level_fraction=0.0), "channels[0].max_level_fraction", "0 < x <= 1"),
    (with_a(max_level_fraction=True), "channels[0].max_level_fraction", "a boolean, not a"),
    (with_a(max_current_ma=50.5), "channels[0].max_current_ma", "0 < x <= 50 mA"),
    # segments
    (with_a(segments=()), "channels[0].segments", "0 segments is too few"),
    (with_a(segments=(CONTINUOUS,) * 501), "channels[0].segments", "501 segments is too many"),
    (with_segment({"kind": "continuous"}), "channels[0].segments[0]", "a table, not a segment"),
    (with_a(segments=(Continuous(3000, 10, 200, 1), Continuous(700, 10, 200, 1))),
     "channels[0].duration_s", "total duration_s = 3700.0 is too long (passes the limit at "
     "segment 2); allowed at most 3600 s"),
    (with_segment(Continuous(0.05, 10, 200, 1)), "channels[0].segments[0].duration_s", "0.1..3600"),
    (with_segment(Continuous(1, 0.4, 200, 1)), "channels[0].segments[0].frequency_hz", "0.5..200"),
    (with_segment(Continuous(1, 10, 1001, 1)), "channels[0].segments[0].pulse_width_us", "1000"),
    (with_segment(Continuous(1, 10, 200, math.nan)), "channels[0].segments[0].intensity", "0..1"),
    (with_segment(Continuous(1, 10, 200, 1, label="x" * 81)), "channels[0].segments[0].label",
     "is too long; allowed a string of 0..80 characters"),
    (with_segment(Continuous(1, 10, 200, 1, label=3)),  # type: ignore[arg-type]
     "channels[0].segments[0].label", "label = 3 is a number, not a string"),
    (with_segment(Intermittent(1, 10, 200, 1, on_s=61, off_s=1)),
     "channels[0].segments[0].on_s", "(intermittent) on_s = 61 is out of range; allowed 0.1..60 s"),
    (with_segment(Intermittent(1, 10, 200, 1, on_s=1, off_s=0)),
     "channels[0].segments[0].off_s", "0.1..60 s"),
    (with_segment(Ramp(1, 10, 200, -0.1, 1)), "channels[0].segments[0].intensity_from", "0..1"),
    (with_segment(Ramp(1, 10, 200, 0, 1.5)), "channels[0].segments[0].intensity_to", "0..1"),
    (with_segment(DenseDisperse(1, 200, 1, low_s=0.4)), "channels[0].segments[0].low_s", "0.5..60"),
    (with_segment(DenseDisperse(1, 200, 1, high_s=61)), "channels[0].segments[0].high_s", "0.5"),
    (with_segment(DenseDisperse(1, 200, 1, high_hz=250)), "channels[0].segments[0].high_hz", "200"),
    (with_segment(DenseDisperse(1, 200, 1, low_hz=150)), "channels[0].segments[0].low_hz",
     "low_hz = 150 is not below high_hz = 100.0; allowed low_hz below high_hz, both 0.5..200 Hz"),
    (with_segment(DenseDisperse(1, 200, 1, low_hz=50, high_hz=50)),
     "channels[0].segments[0].low_hz", "is not below high_hz = 50"),
    # evidence markers
    (replace(SOURCED, evidence_markers=SOURCED.evidence_markers * 33), "evidence_markers",
     "33 markers is too many; allowed 0..32 evidence markers"),
    (with_marker("points"), "evidence_markers[0]", "is a string, not an evidence marker"),
    (with_marker(EvidenceMarker("colour", "sourced", ("Sung2021",))), "evidence_markers[0].about",
     'evidence 1 about = "colour" is not a parameter name'),
    (replace(SOURCED, evidence_markers=SOURCED.evidence_markers * 2),
     "evidence_markers[1].about", "evidence 2 (points) about = \"points\" is a duplicate of the "
     "marker on evidence_markers[0].about; allowed one marker per parameter"),
    (with_marker(EvidenceMarker("points", "proven", ())),  # type: ignore[arg-type]
     "evidence_markers[0].status", "is not an evidence status"),
    (with_marker(EvidenceMarker("points", "sourced", ())), "evidence_markers[0].sources",
     'sources = [] is required for status = "sourced"; allowed 1..16 keys of this program\'s '
     "sources (Sung2021)"),
    (with_marker(EvidenceMarker("points", "sourced", ("Nobody",))),
     "evidence_markers[0].sources[0]", '"Nobody" is not a source key'),
    (with_marker(EvidenceMarker("points", "sourced", ("Sung2021",) * 17)),
     "evidence_markers[0].sources", "is too many"),
    (with_marker(EvidenceMarker("points", "practice-default", (), note="x" * 4001)),
     "evidence_markers[0].note", "is too long"),
]  # fmt: skip


@pytest.mark.parametrize(("program", "path", "says"), RULES)
def test_every_rule_reports_its_path_and_what_is_allowed(
    program: Program, path: str, says: str
) -> None:
    found_path, message = only(program)

    assert found_path == path
    assert message.startswith(f"x: {path}: ")
    assert says in message
    assert "; allowed " in message


def test_a_valid_program_has_no_problems() -> None:
    assert check_program(EXPECTED) == ()
    assert check_program(SOURCED) == ()
    assert Program.checked(EXPECTED) is EXPECTED


def test_every_problem_is_listed_and_validate_program_raises_the_first() -> None:
    bad = replace(
        EXPECTED,
        name="Bad",
        channels=(replace(A, sites=("ST6",), segments=(Continuous(3, 500, 2, 3.0),)), B),
    )

    paths = [p.path_text for p in check_program(bad)]
    with pytest.raises(InvalidProgramError) as info:
        validate_program(bad)

    assert paths == [
        "name",
        "channels[0].sites[0]",
        "channels[0].segments[0].frequency_hz",
        "channels[0].segments[0].pulse_width_us",
        "channels[0].segments[0].intensity",
    ]
    assert isinstance(info.value, ProgramError)
    assert [p.path_text for p in info.value.problems] == paths
    assert str(info.value) == (
        'Bad: name: program name = "Bad" is not a slug; allowed a lowercase slug of a-z, 0-9 '
        "and single '-' (at most 64 characters), e.g. \"tmj-jaw-pain-left\""
    )


def test_a_value_that_is_not_a_program_is_a_problem_not_a_crash() -> None:
    for junk in (None, "tmj", {"name": "x"}, 3):
        with pytest.raises(ProgramError, match=r"<program>: program: program = .* not a Program"):
            Program.checked(junk)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "junk", [None, "", "x", (), ("x",), {}, True, math.nan, math.inf, -1, 10**400, object()]
)
def test_junk_in_any_field_is_a_problem_never_an_exception(junk: object) -> None:
    fields = ("name", "title", "indication", "description", "electrode", "electrode_area_cm2",
              "cautions", "sources", "evidence", "onset_rule", "stage", "channels",
              "evidence_markers")  # fmt: skip
    for field in fields:
        check_program(replace(SOURCED, **{field: junk}))
    for field in ("name", "sites", "segments", "max_level_fraction", "max_current_ma"):
        check_program(with_a(**{field: junk}))
    for field in ("duration_s", "frequency_hz", "pulse_width_us", "intensity", "label"):
        check_program(with_segment(replace(CONTINUOUS, **{field: junk})))
    for field in ("about", "status", "sources", "note"):
        marker = replace(SOURCED.evidence_markers[0], **{field: junk})
        check_program(with_marker(marker))


def test_absurd_sizes_are_counted_not_checked_one_by_one() -> None:
    start = time.perf_counter()
    problems = check_program(with_a(sites=("x",) * 1_000_000, segments=("x",) * 1_000_000))

    assert [p.path_text for p in problems] == ["channels[0].sites", "channels[0].segments"]
    assert time.perf_counter() - start < 1.0


# The same problem in a file and built in code: one rule set, two ways of saying where.
SAME = [
    ("frequency_hz = 10", "frequency_hz = 500.0",
     with_a(segments=(replace(CONTINUOUS, frequency_hz=500.0), A.segments[1]))),
    ('sites = ["ST7-L", "ST6-L"]', 'sites = ["ST7-L", "st6-l"]', with_a(sites=("ST7-L", "st6-l"))),
    ("max_current_ma = 10", "max_current_ma = 60.0", with_a(max_current_ma=60.0)),
    ('title = "TMJ test"', 'title = "  "', replace(EXPECTED, title="  ")),
    ("duration_s = 90.5", "duration_s = 3590",
     with_a(segments=(A.segments[0], replace(A.segments[1], duration_s=3590.0)))),
    ("intensity = 0.5", 'intensity = "1"',
     with_a(segments=(replace(CONTINUOUS, intensity="1"), A.segments[1]))),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "built"), SAME)
def test_a_file_and_a_program_built_in_code_break_the_same_rule_the_same_way(
    old: str, new: str, built: Program
) -> None:
    with pytest.raises(ProgramError) as from_file:
        parse_program(edit(old, new), "tmj.toml")
    with pytest.raises(ProgramError) as from_code:
        validate_program(built)

    in_file = re.sub(r"^tmj\.toml:\d+: ", "", str(from_file.value))
    in_code = re.sub(r"^tmj-test: [^ ]+: ", "", str(from_code.value))
    assert in_file == in_code


def test_the_loader_reports_the_problem_nearest_the_top_of_the_file() -> None:
    text = edit("frequency_hz = 80", "frequency_hz = 900")
    text = edit('name = "B"', 'name = "A"', text=text)
    text = edit('title = "TMJ test"', 'title = ""', text=text)

    with pytest.raises(InvalidProgramError) as info:
        parse_program(text, "tmj.toml")

    assert str(info.value).startswith('tmj.toml:4: program title = "" is empty')
    assert [p.path_text for p in info.value.problems] == [
        "title",
        "channels[0].segments[1].frequency_hz",
        "channels[1].name",
    ]


def test_program_level_segments_are_checked_once_even_when_no_channel_plays_them() -> None:
    bad = VALID.replace("intensity_to = 1", "intensity_to = 2")
    unused = bad.replace('[[channels]]\nname = "B"\nsites = ["LI4-L", "LI11-L"]\n', "")
    twice = bad + '\n[[channels]]\nname = "C"\nsites = ["LI4-R", "LI11-R"]\n'

    for text in (bad, unused, twice):
        with pytest.raises(InvalidProgramError) as info:
            parse_program(text, "tmj.toml")
        assert str(info.value).startswith("tmj.toml:19: program segment 1 (ramp) intensity_to = 2")
        assert len(info.value.problems) == 1


def test_the_file_keys_are_the_validators_fields() -> None:
    text = edit("frequency_hz = 10", "frequncy_hz = 10")

    with pytest.raises(ProgramError, match="did you mean frequency_hz"):
        parse_program(text)
    with pytest.raises(ProgramError) as info:
        parse_program(edit('kind = "continuous"', 'kind = "dense_disperse"'))
    assert str(info.value).endswith(
        "allowed keys kind, duration_s, low_hz, high_hz, low_s, high_s, pulse_width_us, "
        "intensity, label"
    )


def test_a_parsed_program_holds_floats_even_where_the_file_writes_integers() -> None:
    program = parse_program(VALID)

    numbers = [program.electrode_area_cm2]
    for channel in program.channels:
        numbers += [channel.max_level_fraction, channel.max_current_ma]
        numbers += [s.duration_s for s in channel.segments]
    assert all(isinstance(n, float) for n in numbers if n is not None)
    assert isinstance(program.channel("B").segments[0].intensity_to, float)  # type: ignore[union-attr]
    assert Channel in {type(c) for c in program.channels}
