"""Program files: valid files load exactly; every kind of bad input gives one precise line."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from waveforms import (
    AcustimError,
    Channel,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    ProgramError,
    Ramp,
    load_program,
    parse_program,
    validate_program,
)
from waveforms.files import MAX_FILE_BYTES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "program-format.md"
MESSAGE = re.compile(r"[^\n]+?:\d+: [^\n]+ = [^\n]+ is [^\n]+; allowed [^\n]+")

VALID = """\
# A test program.
[program]
name = "tmj-test"
title = "TMJ test"
indication = "jaw pain, left"
description = "Practice default, not evidence."
electrode = "needle"
electrode_area_cm2 = 0.05
cautions = ["start at zero"]
sources = ["Sung 2021"]

[[segments]]
kind = "ramp"
label = "start"
duration_s = 60
frequency_hz = 2
pulse_width_us = 250
intensity_from = 0.0
intensity_to = 1

[[segments]]
kind = "dense_disperse"
duration_s = 600
pulse_width_us = 250
intensity = 1.0

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]
max_level_fraction = 0.5
max_current_ma = 10

[[channels.segments]]
kind = "continuous"
duration_s = 30
frequency_hz = 10
pulse_width_us = 200
intensity = 0.5

[[channels.segments]]
kind = "intermittent"
duration_s = 90.5
frequency_hz = 80
on_s = 3
off_s = 1
pulse_width_us = 200
intensity = 0.75

[[channels]]
name = "B"
sites = ["LI4-L", "LI11-L"]
"""

SHARED = (
    Ramp(60.0, 2.0, 250.0, 0.0, 1.0, label="start"),
    DenseDisperse(600.0, 250.0, 1.0),
)
EXPECTED = Program(
    name="tmj-test",
    title="TMJ test",
    indication="jaw pain, left",
    description="Practice default, not evidence.",
    electrode="needle",
    electrode_area_cm2=0.05,
    cautions=("start at zero",),
    sources=("Sung 2021",),
    channels=(
        Channel(
            name="A",
            sites=("ST7-L", "ST6-L"),
            segments=(
                Continuous(30.0, 10.0, 200.0, 0.5),
                Intermittent(90.5, 80.0, 200.0, 0.75, on_s=3.0, off_s=1.0),
            ),
            max_level_fraction=0.5,
            max_current_ma=10.0,
        ),
        Channel(name="B", sites=("LI4-L", "LI11-L"), segments=SHARED),
    ),
)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth line of ``text`` that contains ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def edit(old: str, new: str, nth: int = 1, text: str = VALID) -> str:
    """``text`` with the nth occurrence of ``old`` replaced by ``new``."""
    parts = text.split(old)
    assert len(parts) > nth, f"{old!r} occurs fewer than {nth} times"
    return old.join(parts[:nth]) + new + old.join(parts[nth:])


def error_of(text: str, source: str = "tmj.toml") -> str:
    with pytest.raises(ProgramError) as info:
        parse_program(text, source)
    message = str(info.value)
    assert "\n" not in message
    assert MESSAGE.fullmatch(message), message
    return message


# --------------------------------------------------------------------------- valid files


def test_a_valid_file_loads_into_exactly_the_program_it_describes(tmp_path: Path) -> None:
    path = tmp_path / "tmj-test.toml"
    path.write_text(VALID, encoding="utf-8")

    program = load_program(path)

    assert program == replace(EXPECTED, source_path=str(path))
    validate_program(program)


def test_parse_program_records_no_source_path() -> None:
    assert parse_program(VALID) == EXPECTED


def test_a_channel_without_segments_plays_the_program_segments() -> None:
    program = parse_program(VALID)

    assert program.channel("B").segments == SHARED
    assert program.channel("A").segments != SHARED


def test_dense_disperse_defaults_are_han_2_100_hz_3_s_each() -> None:
    segment = parse_program(VALID).channel("B").segments[1]

    assert isinstance(segment, DenseDisperse)
    assert (segment.low_hz, segment.high_hz, segment.low_s, segment.high_s) == (2, 100, 3, 3)


def test_the_documented_example_loads() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)

    program = parse_program(blocks[0], str(DOCS))

    assert program.name == "tmj-example"
    assert [c.name for c in program.channels] == ["A", "B"]
    assert program.duration_s == 1620


def test_inline_tables_are_accepted_too() -> None:
    inline = VALID.split("[[channels]]")[0].replace(
        "# A test program.\n",
        'channels = [{ name = "B", sites = ["LI4-L", "LI11-L"] }]\n',
    )

    assert parse_program(inline).channel("B").segments == SHARED


# --------------------------------------------------------------------------- bad input


def test_a_toml_syntax_error_reports_the_line_and_column() -> None:
    text = edit('title = "TMJ test"', "title = ?")

    message = error_of(text)

    assert message == (
        f'tmj.toml:{line_of(text, "title")}: TOML text at column 9 = "title = ?" is invalid: '
        "Invalid value; allowed TOML 1.0 (https://toml.io/en/v1.0.0)"
    )


def test_a_syntax_error_at_the_end_of_the_document_points_at_the_last_line() -> None:
    message = error_of(VALID + "broken =")

    last_line = VALID.count("\n") + 1
    assert message.startswith(
        f'tmj.toml:{last_line}: TOML text at column 1 = "broken =" is invalid'
    )


def test_an_out_of_range_field_names_file_line_channel_segment_field_value_and_range() -> None:
    text = edit("frequency_hz = 10", "frequency_hz = 500")

    message = error_of(text)

    assert message == (
        f"tmj.toml:{line_of(text, 'frequency_hz = 500')}: channel A segment 1 (continuous) "
        "frequency_hz = 500 is out of range; allowed 0.5..200 Hz"
    )


@pytest.mark.parametrize(
    ("old", "new", "where", "allowed"),
    [
        (
            "frequency_hz = 80",
            "frequency_hz = 0.4",
            "channel A segment 2 (intermittent)",
            "0.5..200 Hz",
        ),
        (
            "pulse_width_us = 200",
            "pulse_width_us = 1500",
            "channel A segment 1 (continuous)",
            "20..1000 us",
        ),
        (
            "intensity = 0.5",
            "intensity = 1.01",
            "channel A segment 1 (continuous)",
            "0..1 (fraction",
        ),
        (
            "intensity_from = 0.0",
            "intensity_from = -0.1",
            "program segment 1 (ramp)",
            "0..1 (fraction",
        ),
        ("duration_s = 30", "duration_s = 0.05", "channel A segment 1 (continuous)", "0.1..3600 s"),
        ("\non_s = 3", "\non_s = 61", "channel A segment 2 (intermittent)", "0.1..60 s"),
        ("off_s = 1", "off_s = 0", "channel A segment 2 (intermittent)", "0.1..60 s"),
        (
            "intensity = 1.0",
            "intensity = 1.0\nlow_s = 0.4",
            "program segment 2 (dense_disperse)",
            "0.5..60 s",
        ),
        (
            "intensity = 1.0",
            "intensity = 1.0\nhigh_hz = 250",
            "program segment 2 (dense_disperse)",
            "0.5..200 Hz",
        ),
        ("max_level_fraction = 0.5", "max_level_fraction = 0", "channel A", "0 < x <= 1"),
        ("max_current_ma = 10", "max_current_ma = 60", "channel A", "0 < x <= 50 mA"),
        ("electrode_area_cm2 = 0.05", "electrode_area_cm2 = -1", "program", "0 < x <= 500 cm^2"),
        (
            "frequency_hz = 10",
            "frequency_hz = nan",
            "channel A segment 1 (continuous)",
            "0.5..200 Hz",
        ),
    ],
)
def test_every_range_is_enforced_at_the_line_of_the_value(
    old: str, new: str, where: str, allowed: str
) -> None:
    text = edit(old, new)
    field, value = new.splitlines()[-1].split(" = ")

    message = error_of(text)

    line = line_of(text, new.splitlines()[-1])
    assert message.startswith(f"tmj.toml:{line}: {where} {field} = {value} is out of range; ")
    assert allowed in message


def test_a_channel_longer_than_an_hour_is_refused_at_the_segment_that_passes_the_limit() -> None:
    text = edit("duration_s = 90.5", "duration_s = 3590")

    message = error_of(text)

    assert message.startswith(
        f"tmj.toml:{line_of(text, 'duration_s = 3590')}: channel A total duration_s = 3620.0 "
        "is too long"
    )
    assert "allowed at most 3600 s" in message


@pytest.mark.parametrize(
    ("old", "new", "where", "hint"),
    [
        (
            "frequency_hz = 10",
            "frequncy_hz = 10",
            "channel A segment 1 (continuous)",
            "frequency_hz",
        ),
        ("title = ", "titel = ", "program", "title"),
        ('sites = ["ST7-L"', 'site = ["ST7-L"', "channel 1", "sites"),
        ("# A test program.", "version = 2", "top-level", None),
        ("intensity_to = 1", "intensity = 1", "program segment 1 (ramp)", "intensity_to"),
    ],
)
def test_an_unknown_key_is_an_error_not_ignored(
    old: str, new: str, where: str, hint: str | None
) -> None:
    text = edit(old, new)
    key = new.split(" = ")[0]

    message = error_of(text)

    assert message.startswith(f"tmj.toml:{line_of(text, new)}: {where} {key} = ")
    assert "is an unknown key" in message
    if hint:
        assert f"did you mean {hint}?" in message


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "frequency_hz = 10",
            'frequency_hz = "10"',
            'frequency_hz = "10" is a string, not a number',
        ),
        ("intensity = 0.5", "intensity = true", "intensity = true is a boolean, not a number"),
        ("duration_s = 30", "duration_s = [30]", "duration_s = [30] is an array, not a number"),
        (
            'sites = ["ST7-L", "ST6-L"]',
            'sites = "ST7-L"',
            'sites = "ST7-L" is a string, not an array',
        ),
        (
            'sites = ["ST7-L", "ST6-L"]',
            'sites = ["ST7-L", 6]',
            "sites = 6 is a number, not a string",
        ),
        ('title = "TMJ test"', "title = 3", "title = 3 is a number, not a string"),
        (
            'cautions = ["start at zero"]',
            'cautions = "start"',
            'cautions = "start" is a string, not',
        ),
        ('label = "start"', "label = 1", "label = 1 is a number, not a string"),
        ('name = "A"', "name = 1", "name = 1 is a number, not a string"),
        ('kind = "continuous"', "kind = 1", "kind = 1 is not a segment kind"),
    ],
)
def test_a_wrong_type_is_an_error(old: str, new: str, problem: str) -> None:
    text = edit(old, new)

    message = error_of(text)

    assert message.startswith(f"tmj.toml:{line_of(text, new)}: ")
    assert problem in message


def test_a_table_where_a_table_array_is_expected_is_an_error() -> None:
    before, first, _ = VALID.split("[[segments]]")
    text = before + "[segments]" + first + "[[channels]]" + VALID.split("[[channels]]", 1)[1]

    message = error_of(text)

    assert message.startswith(f"tmj.toml:{line_of(text, '[segments]')}: top-level segments = ")
    assert "{table} is not an array of tables" in message


def test_too_many_segments_is_refused_at_the_first_segment_over_the_limit() -> None:
    segment = (
        '[[channels.segments]]\nkind = "continuous"\nduration_s = 1\nfrequency_hz = 10\n'
        "pulse_width_us = 200\nintensity = 0.5\n\n"
    )
    text = VALID.split("[[channels.segments]]")[0] + segment * 501

    message = error_of(text)

    header = line_of(text, "[[channels.segments]]", nth=501)
    assert message == (
        f"tmj.toml:{header}: channel A segments = 501 segments is too many; "
        "allowed 1..500 segments per channel"
    )


def test_too_many_channels_is_refused() -> None:
    channel = '[[channels]]\nname = "{}"\nsites = ["ST36-L"]\n\n'
    text = VALID.split("[[channels]]")[0] + "".join(channel.format(n) for n in "ABCDEFGHI")

    ninth_header = line_of(text, 'name = "I"') - 1

    message = error_of(text)

    assert message.startswith(f"tmj.toml:{ninth_header}: program channels")
    assert "9 channels is too many; allowed 1..8 channels" in message


def test_an_oversized_text_is_refused_before_parsing() -> None:
    text = VALID + "# padding\n" + "x" * MAX_FILE_BYTES + " = not toml"

    message = error_of(text)

    assert message.startswith("tmj.toml:1: file size = ")
    assert "is too large; allowed at most 262144 bytes (256 KiB)" in message


def test_an_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"[" * (MAX_FILE_BYTES + 1))  # would be a syntax error if parsed

    with pytest.raises(ProgramError) as info:
        load_program(path)

    assert str(info.value) == (
        f"{path}:1: file size = {MAX_FILE_BYTES + 1} bytes is too large; "
        "allowed at most 262144 bytes (256 KiB)"
    )


@pytest.mark.parametrize(
    ("old", "new", "where", "at"),
    [
        ("frequency_hz = 10\n", "", "channel A segment 1 (continuous)", "[[channels.segments]]"),
        ("pulse_width_us = 250\nintensity = 1.0", "intensity = 1.0",
         "program segment 2 (dense_disperse)", "[[segments]]#2"),
        ('kind = "intermittent"\n', "", "channel A segment 2", "[[channels.segments]]#2"),
        ('indication = "jaw pain, left"\n', "", "program", "[program]"),
        ('electrode = "needle"\n', "", "program", "[program]"),
        ('sites = ["LI4-L", "LI11-L"]\n', "", "channel B", "[[channels]]#2"),
        ('name = "A"\n', "", "channel 1", "[[channels]]"),
    ],
)  # fmt: skip
def test_a_missing_required_field_is_reported_at_its_table(
    old: str, new: str, where: str, at: str
) -> None:
    text = edit(old, new)
    field = old.split(" = ")[0]
    needle, _, nth = at.partition("#")

    message = error_of(text)

    line = line_of(text, needle, int(nth or 1))
    assert message.startswith(f"tmj.toml:{line}: {where} {field} = (missing) is required; ")


def test_an_unknown_table_is_located_at_its_header() -> None:
    text = VALID + "\n[extra.stuff]\nvalue = 1\n"

    message = error_of(text)

    assert message.startswith(f"tmj.toml:{line_of(text, '[extra.stuff]')}: top-level extra = ")
    assert "is an unknown key" in message


def test_a_file_without_a_program_table_or_channels_is_refused() -> None:
    no_program = VALID.replace("[program]", "[programme]")
    no_channels = VALID.split("[[channels]]")[0]

    assert "top-level programme = {table} is an unknown key" in error_of(no_program)
    assert "top-level channels = (missing) is required" in error_of(no_channels)


def test_a_channel_with_no_segments_anywhere_is_refused() -> None:
    without_shared = (
        VALID.split("[[segments]]")[0] + "[[channels]]" + VALID.split("[[channels]]", 1)[1]
    )

    message = error_of(without_shared)

    header_b = line_of(without_shared, "[[channels]]", 2)
    assert message.startswith(f"tmj.toml:{header_b}: channel B segments = (missing) is required")
    assert "a program-level [[segments]] array" in message


def test_a_duplicate_channel_name_is_refused() -> None:
    text = edit('name = "B"', 'name = "a"')

    line_a, line_b = line_of(text, 'name = "A"'), line_of(text, 'name = "a"')

    message = error_of(text)

    assert message == (
        f'tmj.toml:{line_b}: channel 2 name = "a" is a duplicate of channel A (line {line_a}); '
        "allowed a unique name per channel (case-insensitive)"
    )


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('"ST7-L", "ST6-L"', '"ST7-L", "ST6"', 'sites = "ST6" is not a site code'),
        ('"ST7-L", "ST6-L"', '"ST7-L", "st6-l"', 'sites = "st6-l" is not a site code'),
        ('"ST7-L", "ST6-L"', '"ST7-L", "ST7-L"', 'sites = "ST7-L" is listed twice'),
        ('"ST7-L", "ST6-L"', "", "sites = [] is too few"),
        ('name = "tmj-test"', 'name = "TMJ test"', 'name = "TMJ test" is not a slug'),
        ('name = "A"', 'name = "channel-one"', 'name = "channel-one" is too long'),
        (
            'electrode = "needle"',
            'electrode = "wire"',
            'electrode = "wire" is not an electrode kind',
        ),
        ('kind = "continuous"', 'kind = "square"', 'kind = "square" is not a segment kind'),
        ('title = "TMJ test"', 'title = "  "', 'title = "  " is empty'),
    ],
)
def test_bad_names_and_codes_are_refused(old: str, new: str, problem: str) -> None:
    message = error_of(edit(old, new))

    assert problem in message


def test_an_unreadable_file_is_a_program_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ProgramError, match=r"absent\.toml: file = .* cannot be read"):
        load_program(path)


def test_a_file_that_is_not_utf8_reports_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(VALID.replace("jaw pain", "m\xe2choire").encode("latin-1"))

    with pytest.raises(ProgramError) as info:
        load_program(path)

    line = line_of(VALID, "jaw pain")
    assert str(info.value).startswith(f"{path}:{line}: file byte = 0xe2 is not UTF-8 text")


def test_program_errors_are_acustim_errors() -> None:
    assert issubclass(ProgramError, AcustimError)


# --------------------------------------------------------------------------- locating lines


def test_headers_inside_multiline_strings_and_comments_do_not_confuse_line_numbers() -> None:
    decoy = (
        'description = """\n[[channels.segments]]\nfrequency_hz = 1\n"""\n'
        "# [[channels.segments]] in a comment\n"
        'cautions = [\n  \'frequency_hz = 2\',\n  """[[segments]]""",\n]'
    )
    text = edit('description = "Practice default, not evidence."', decoy)
    text = edit('cautions = ["start at zero"]', "", text=text)
    text = edit("frequency_hz = 10", "frequency_hz = 500", text=text)

    message = error_of(text)

    assert message.startswith(f"tmj.toml:{line_of(text, 'frequency_hz = 500')}: channel A ")


def test_a_quoted_key_is_located() -> None:
    text = edit("frequency_hz = 10", '"frequency_hz" = 500')

    assert error_of(text).startswith(f"tmj.toml:{line_of(text, '= 500')}: channel A segment 1")


def test_an_error_in_an_inline_table_points_at_the_array_key() -> None:
    inline = VALID.split("[[channels]]")[0].replace(
        "# A test program.\n",
        'channels = [{ name = "B", sites = ["LI4-L"], max_level_fraction = 2 }]\n',
    )

    assert error_of(inline).startswith("tmj.toml:1: channel B max_level_fraction = 2 is out of")


# --------------------------------------------------------------------------- programs in code


def test_validate_program_applies_the_same_ranges_to_programs_built_in_code() -> None:
    bad_segment = replace(EXPECTED.channels[0], segments=(Continuous(30.0, 500.0, 200.0, 0.5),))
    bad = replace(EXPECTED, channels=(bad_segment, EXPECTED.channels[1]))

    with pytest.raises(ProgramError) as info:
        validate_program(bad)

    assert str(info.value) == (
        "tmj-test: channels[0].segments[0].frequency_hz: channel A segment 1 (continuous) "
        "frequency_hz = 500.0 is out of range; allowed 0.5..200 Hz"
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": "Bad Name"}, 'program name = "Bad Name" is not a slug'),
        ({"channels": ()}, "channels: program channels = 0 channels is too few"),
        ({"electrode_area_cm2": 0.0}, "electrode_area_cm2 = 0.0 is out of range"),
        ({"title": " "}, 'program title = " " is empty'),
    ],
)
def test_validate_program_refuses_bad_programs(change: dict[str, object], fragment: str) -> None:
    with pytest.raises(ProgramError, match=re.escape(fragment)):
        validate_program(replace(EXPECTED, **change))  # type: ignore[arg-type]


def test_validate_program_refuses_bad_channels() -> None:
    a, b = EXPECTED.channels
    cases = [
        ((a, replace(b, name="a")),
         'channel 2 name = "a" is a duplicate of channel A (channels[0].name)'),
        ((replace(a, sites=("ST6",)),), 'channel A sites = "ST6" is not a site code'),
        ((replace(a, max_level_fraction=0.0),), "max_level_fraction = 0.0 is out of range"),
        ((replace(a, max_current_ma=51.0),), "max_current_ma = 51.0 is out of range"),
        ((replace(a, segments=()),), "channel A segments = 0 segments is too few"),
        ((replace(a, segments=(Continuous(3000, 10, 200, 1), Continuous(700, 10, 200, 1))),),
         "channel A total duration_s = 3700.0 is too long"),
    ]  # fmt: skip
    for channels, fragment in cases:
        with pytest.raises(ProgramError, match=re.escape(fragment)):
            validate_program(replace(EXPECTED, channels=channels))
