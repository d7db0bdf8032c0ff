"""``acustim programs``, ``acustim show`` and ``acustim validate``: the library, user programs and
program files, with placement checks; every bad file is one line on stderr and exit 2."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from acustim.cli import main
from waveforms.builtin import builtin_names

GOOD = """\
[program]
name = "{name}"
title = "My jaw program"
indication = "Jaw pain from clenching, left"
electrode = "pad"
sources = ["[Sung2021] Sung 2021, Healthcare 9:1497"]

[[evidence]]
about = "points"
status = "sourced"
sources = ["Sung2021"]
note = "the TMD trial points"

[[segments]]
kind = "ramp"
duration_s = 60
frequency_hz = 2
pulse_width_us = 250
intensity_from = 0.0
intensity_to = 1.0

[[channels]]
name = "A"
sites = {sites}
max_level_fraction = 0.3
"""


def program_text(name: str = "my-jaw", sites: str = '["ST7-L", "ST6-L"]') -> str:
    return GOOD.format(name=name, sites=sites)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "programs"


def user_program(folder: Path, stem: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def listed(out: str) -> list[str]:
    """The runnable programs listed (the manual-acupuncture entries come after them)."""
    programs = out.split("\nmanual acupuncture entries", 1)[0]
    return [line.split()[0] for line in programs.splitlines() if line and not line.startswith(" ")]


def test_manual_entries_are_listed_apart_and_never_as_programs(data_dir: Path) -> None:
    code, out, _ = run_cli("programs")
    assert code == 0
    head, manual = out.split("\nmanual acupuncture entries", 1)
    assert "acne-manual" in manual and "acne-manual" not in head
    assert "[manual, no current]" in manual


# --------------------------------------------------------------------------- programs


def test_programs_lists_every_builtin_with_its_evidence(data_dir: Path) -> None:
    code, out, err = run_cli("programs")

    assert code == 0 and err == ""
    assert listed(out) == builtin_names()
    assert "[practice default]" in out
    assert "A: ST7-L ST6-L" in out


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("bell", ["bells-palsy-chronic-left", "bells-palsy-chronic-right",
                  "bells-palsy-subacute-left", "bells-palsy-subacute-right"]),
        ("TMJ left", ["tmj-jaw-pain-left", "tmj-jaw-pain-needle-left"]),
        ("headache", ["tension-headache"]),
        ("trigeminal", ["trigeminal-facial-pain-left", "trigeminal-facial-pain-needle-left",
                        "trigeminal-facial-pain-needle-right", "trigeminal-facial-pain-right"]),
        ("rejuvenation", ["combined-release-rejuvenation", "facial-rejuvenation"]),
    ],
)  # fmt: skip
def test_programs_filters_by_indication(data_dir: Path, text: str, names: list[str]) -> None:
    code, out, _ = run_cli("programs", "--indication", text)

    assert code == 0
    assert listed(out) == names


def test_a_filter_that_matches_nothing_says_so(data_dir: Path) -> None:
    code, out, _ = run_cli("programs", "--indication", "sunburn")

    assert code == 0
    assert out == "no program matches --indication 'sunburn'\n"


def test_user_programs_are_listed_and_marked_and_bad_ones_give_one_line_each(
    data_dir: Path,
) -> None:
    user_program(data_dir, "my-jaw", program_text())
    bad = user_program(data_dir, "broken", program_text("broken").replace("ramp", "rmap"))
    across = user_program(data_dir, "across", program_text("across", '["ST7-L", "ST7-R"]'))

    code, out, err = run_cli("programs")

    assert code == 2
    assert "my-jaw" in listed(out) and "across" not in listed(out)
    line = next(x for x in out.splitlines() if x.startswith("my-jaw"))
    assert line.endswith("[user, practice default]")
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f'acustim: {bad}:15: program segment 1 kind = "rmap"')
    assert lines[1].startswith(f"acustim: {across}:24: placement is refused (3 problems)")
    assert "(transcerebral)" in lines[1]
    code, out, _ = run_cli("programs", "--indication", "clenching")
    assert listed(out) == ["facial-muscle-tension", "my-jaw"]


# --------------------------------------------------------------------------- show


def test_show_prints_placement_timeline_cautions_evidence_and_sources(data_dir: Path) -> None:
    code, out, err = run_cli("show", "bells-palsy-subacute-left")

    assert code == 0 and err == ""
    assert out.startswith(
        "bells-palsy-subacute-left: Bell's palsy, subacute stage, left side (built-in)\n"
    )
    for heading in (
        "About",
        "Placement",
        "Timeline (channels A, B)",
        "Evidence markers",
        "Cautions",
        "Sources",
    ):
        assert f"\n{heading}\n" in out, heading
    assert "evidence: PRACTICE DEFAULT, NOT EVIDENCE (practice default: points, frequency," in out
    assert "onset: asks the days since onset of Bell's palsy: days 0-7 refused" in out
    assert "A: GB14-L + EX-HN5-L  (ceiling 30% of the device maximum, at most 8 mA)" in out
    assert "GB14-L: Yangbai 阳白, left face. On the forehead" in out
    assert "check: allowed, 4 warnings (shown and recorded)" in out
    assert "warning (near-eye): channel A: GB14-L (Yangbai) is close to the eye" in out
    assert re.search(r"0:00-1:00  ramp 2 Hz\s+200 us  intensity 0.00 -> 1.00  gentle start", out)
    assert re.search(r"1:00-14:00  continuous 2 Hz\s+200 us  intensity 1.00\s+continuous 2 Hz", out)
    assert re.search(r"frequency\s+PRACTICE DEFAULT\s+\[tsu\]", out)
    assert re.search(r"waveform\s+sourced\s+\[tcmchina, Frontiers2024\]", out)
    assert "  [tcmchina] Bell's palsy prescription" in out
    assert "  - Start with the output at zero" in out  # fmt: skip


def test_show_lists_every_segment_kind(data_dir: Path) -> None:
    _, tension, _ = run_cli("show", "facial-muscle-tension")
    _, han, _ = run_cli("show", "han-2-100-analgesia")

    assert "continuous 80 Hz" in tension
    assert "ramp" in tension
    assert "dense-disperse 2/100 Hz, 3 s / 3 s" in han
    assert "Timeline (channels A, B)" in han
    _, chronic, _ = run_cli("show", "bells-palsy-chronic-right")
    assert "intermittent 10 Hz, 2 s on / 2 s off" in chronic
    assert "this chronic-stage program is refused before day 365" in chronic


def test_show_reads_user_programs_and_files(data_dir: Path, tmp_path: Path) -> None:
    user_program(data_dir, "my-jaw", program_text())
    loose = tmp_path / "loose.toml"
    text = program_text("loose").replace("sources =", 'description = "Mine."\nsources =', 1)
    text = text.replace("max_level_fraction = 0.3", "max_level_fraction = 0.3\nmax_current_ma = 8")
    loose.write_text(text, encoding="utf-8")

    code, out, _ = run_cli("show", "my-jaw")
    assert code == 0
    assert out.startswith("my-jaw: My jaw program (user program)\n")
    assert "evidence: PRACTICE DEFAULT, NOT EVIDENCE (no marker: waveform, frequency" in out
    assert re.search(r"points\s+sourced\s+\[Sung2021\]", out)

    code, out, _ = run_cli("show", str(loose))
    assert code == 0
    assert out.startswith("loose: My jaw program (file)\n")
    assert "ceiling 30% of the device maximum, at most 8 mA" in out
    assert "\nAbout\n  Mine.\n" in out


def test_show_marks_a_program_without_markers_and_a_refused_placement(tmp_path: Path) -> None:
    text = program_text("bare", '["ST7-L", "KI27-L"]')
    bare = tmp_path / "bare.toml"
    bare.write_text(text.split("[[evidence]]")[0] + "[[segments]]" + text.split("[[segments]]")[1])

    code, out, err = run_cli("show", str(bare))

    assert code == 2
    assert (
        "evidence: NOT STATED: no evidence markers; treat every parameter as a practice default"
        in out
    )
    assert "none: treat every parameter as a practice default, not evidence" in out
    assert "KI27-L: site 'KI27-L': KI27 is not in the acupoint catalogue" in out
    assert "REFUSED: " in out
    assert err.count("\n") == 1 and err.startswith(f"acustim: {bare}:")  # fmt: skip


def test_show_says_sourced_when_every_core_parameter_has_a_source(tmp_path: Path) -> None:
    markers = "".join(
        f'\n[[evidence]]\nabout = "{about}"\nstatus = "sourced"\nsources = ["Sung2021"]\n'
        for about in ("waveform", "frequency", "pulse_width", "duration")
    )
    path = tmp_path / "sourced.toml"
    path.write_text(program_text("sourced").replace("[[segments]]", markers + "\n[[segments]]", 1))

    code, out, _ = run_cli("show", str(path))

    assert code == 0
    assert (
        "evidence: SOURCED: every core parameter (points, waveform, frequency, pulse_width" in out
    )


def test_show_of_an_unknown_program_is_one_line(data_dir: Path) -> None:
    code, out, err = run_cli("show", "nosuch")

    assert code == 2 and out == ""
    assert err.startswith('acustim: program name = "nosuch" is unknown; allowed a built-in (')
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- validate


def test_validate_accepts_a_good_file_and_shows_its_placement_warnings(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        program_text("two").replace(
            '[[channels]]\nname = "A"',
            '[[channels]]\nname = "B"\nsites = ["ST4-R", "ST6-R"]\n\n[[channels]]\nname = "A"',
        )
    )

    code, out, err = run_cli("validate", str(path))

    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == (
        f"{path}: ok (two, 2 channels, 1.0 min, practice default, 2 placement warnings)"
    )
    assert f"{path}: warning (mouth): channel B: ST4-R (Dicang) is beside the mouth" in out
    assert "warning (between-channels): channels B and A" in out


def test_every_builtin_file_validates() -> None:
    library = Path(__file__).resolve().parents[2] / "waveforms" / "library"

    code, out, err = run_cli("validate", *sorted(str(p) for p in library.glob("*.toml")))

    assert code == 0, err
    assert out.count(": ok (") == len(list(library.glob("*.toml")))


@pytest.mark.parametrize(
    ("sites", "fragment"),
    [
        ('["ST7-L", "ST7-R"]', "channel A: ST7-L + ST7-R crosses the head from left to right"),
        ('["ST9-L", "ST6-L"]', "channel A: ST9-L (Renying) is on the front of the neck"),
        ('["ST2-L", "ST6-L"]', "channel A: ST2-L (Sibai) is over or next to the eye"),
        ('["GB14-L", "ST3-L"]', "channel A: GB14-L + ST3-L runs over the left eye socket"),
        ('["LU1-L", "LU1-R"]', "channel A: LU1-L + LU1-R may carry current across the chest"),
        ('["ST6-L", "LI4-L"]', "channel A: ST6-L + LI4-L joins the face and the hand"),
        ('["KI27-L", "ST6-L"]', "channel A: site 'KI27-L': KI27 is not in the acupoint catalogue"),
        ('["GV20-L", "ST8-L"]', "channel A: site 'GV20-L': GV20 is a midline point; write GV20-M"),
    ],
)  # fmt: skip
def test_validate_refuses_an_unsafe_or_unknown_placement_with_file_and_line(
    tmp_path: Path, sites: str, fragment: str
) -> None:
    path = tmp_path / "bad.toml"
    text = program_text("bad", sites)
    path.write_text(text)

    code, out, err = run_cli("validate", str(path))

    assert code == 2 and out == ""
    assert err.count("\n") == 1
    sites_line = text.splitlines().index(f"sites = {sites}") + 1
    assert err.startswith(f"acustim: {path}:{sites_line}: placement is refused (")
    assert fragment in err


DEEP = "x = " + "[" * 3000 + "]" * 3000 + "\n[[segments]]"
BAD_FILES = [
    ("intensity_to = 1.0", "intensity_to = ", "TOML text at column"),
    ("frequency_hz = 2", "frequency_hz = 500", "frequency_hz = 500 is out of range; allowed 0.5.."),
    ("max_level_fraction = 0.3", "max_level_fraction = 2", "max_level_fraction = 2 is out of"),
    ('about = "points"', 'about = "colour"', 'about = "colour" is not a parameter name'),
    ("[[segments]]", DEEP, "TOML nesting = 3000 levels is too deep"),
]


@pytest.mark.parametrize(("old", "new", "fragment"), BAD_FILES)
def test_validate_reports_a_bad_file_in_one_line_with_its_line(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(program_text("bad").replace(old, new, 1))

    code, out, err = run_cli("validate", str(path))

    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert re.match(rf"acustim: {re.escape(str(path))}:\d+: ", err)
    assert fragment in err


def test_validate_refuses_an_absurdly_large_file_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    segment = '[[segments]]\nkind = "continuous"\nduration_s = 1\nfrequency_hz = 2\n'
    path.write_text(program_text("huge") + segment * 10_000)

    code, _, err = run_cli("validate", str(path))

    assert code == 2
    assert err.startswith(f"acustim: {path}:1: file size = ")
    assert "allowed at most 262144 bytes (256 KiB)" in err


def test_validate_applies_the_user_program_rules_inside_the_programs_folder(
    data_dir: Path,
) -> None:
    good = user_program(data_dir, "my-jaw", program_text())
    renamed = user_program(data_dir, "renamed", program_text("other-name"))

    code, out, err = run_cli("validate", str(good), str(renamed))

    assert code == 2
    assert out.startswith(f"{good}: ok (my-jaw, 1 channel, 1.0 min")
    assert err.startswith(f'acustim: {renamed}:2: program name = "other-name" does not match')
