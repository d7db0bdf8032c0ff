"""The acupoint catalogue: every built-in program's sites are in it, and sides are mirrored."""

from __future__ import annotations

import pytest

from waveforms.acupoints import (
    REGIONS,
    AcupointError,
    load_catalogue,
    parse_catalogue,
    parse_site,
)
from waveforms.builtin import builtin_programs


def test_every_site_of_every_built_in_program_is_catalogued() -> None:
    for program in builtin_programs():
        for channel in program.channels:
            for site in channel.sites:
                point, side = parse_site(site)
                assert site.startswith(point.code + "-")
                assert side == site[-1]


def test_entries_are_complete_and_positions_are_on_the_left_side() -> None:
    catalogue = load_catalogue()
    assert {"ST6", "ST7", "SI19", "LI4", "ST36", "SP6"} <= set(catalogue)
    for code, point in catalogue.items():
        assert point.code == code
        assert point.pinyin and point.chinese and point.location
        assert "\n" not in point.location
        assert point.region in REGIONS
        for xy in (point.face_xy, point.body_xy):
            if xy is not None:
                assert 0.5 <= xy[0] <= 1.0, f"{code}: left side is on the viewer's right"
                assert 0.0 <= xy[1] <= 1.0
    assert catalogue["ST6"].face_xy is not None  # face points are on the face map
    assert catalogue["ST36"].face_xy is None and catalogue["ST36"].body_xy is not None


def test_the_right_side_mirrors_the_left_and_the_midline_stays() -> None:
    st6, left = parse_site("ST6-L")
    _, right = parse_site("ST6-R")
    assert (left, right) == ("L", "R")
    lx, ly = st6.position("face", "L") or (0, 0)
    rx, ry = st6.position("face", "R") or (0, 0)
    assert lx > 0.5 > rx
    assert lx + rx == pytest.approx(1.0) and ly == ry
    gv20, mid = parse_site("GV20-M")
    assert mid == "M"
    assert gv20.position("face", mid) == gv20.face_xy
    assert parse_site("EX-HN5-R")[0].pinyin == "Taiyang"
    assert parse_site("GB20-L")[0].position("face", "L") is None


def test_unknown_or_malformed_sites_say_what_is_wrong() -> None:
    with pytest.raises(AcupointError, match="not in the acupoint catalogue"):
        parse_site("KI27-L")
    with pytest.raises(AcupointError, match="not a code and a side"):
        parse_site("ST6")
    with pytest.raises(AcupointError, match="not a code and a side"):
        parse_site("ST6-X")


def test_a_bad_catalogue_entry_names_the_point_and_the_key() -> None:
    good = 'code = "X1"\npinyin = "a"\nchinese = "b"\nlocation = "c"\nregion = "face"\n'
    assert set(parse_catalogue(f"[[point]]\n{good}")) == {"X1"}
    with pytest.raises(AcupointError, match="point 1 region"):
        parse_catalogue(f"[[point]]\n{good.replace('face', 'elbow')}")
    with pytest.raises(AcupointError, match="point 1 face_xy"):
        parse_catalogue(f"[[point]]\n{good}face_xy = [1.5, 0.2]\n")
    with pytest.raises(AcupointError, match="point 2 code"):
        parse_catalogue(f"[[point]]\n{good}[[point]]\n{good}")
    with pytest.raises(AcupointError, match="unknown key"):
        parse_catalogue(f"[[point]]\n{good}colour = 1\n")
    no_pinyin = good.replace('pinyin = "a"', 'pinyin = ""')
    with pytest.raises(AcupointError, match="point 1 pinyin"):
        parse_catalogue(f"[[point]]\n{no_pinyin}")
