"""The acupoint catalogue: every built-in program's sites are in it, sides are mirrored, and
the hazards the placement rules read are where they belong."""

from __future__ import annotations

import pytest

from waveforms.acupoints import (
    HAZARDS,
    REGIONS,
    Acupoint,
    AcupointError,
    load_catalogue,
    parse_catalogue,
    parse_site,
    resolve_site,
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


# --- the extended catalogue: sides, hazards, neighbours ---------------------------------------


def test_midline_points_take_m_and_bilateral_points_take_l_or_r() -> None:
    catalogue = load_catalogue()
    for point in catalogue.values():
        if point.laterality == "midline":
            assert parse_site(f"{point.code}-M")[1] == "M"
            with pytest.raises(AcupointError, match=f"{point.code} is a midline point"):
                parse_site(f"{point.code}-L")
            assert point.face_xy is None or point.face_xy[0] == 0.5
        else:
            assert point.laterality == "bilateral"
            with pytest.raises(AcupointError, match="on both sides of the body"):
                parse_site(f"{point.code}-M")
    assert {c for c, p in catalogue.items() if p.laterality == "midline"} == {
        "GV20",
        "GV26",
        "CV24",
        "CV17",
        "EX-HN3",
    }


def test_the_points_over_or_next_to_the_eye_are_marked_for_refusal() -> None:
    catalogue = load_catalogue()
    eye = {c for c, p in catalogue.items() if "eye" in p.hazards}
    near = {c for c, p in catalogue.items() if "near-eye" in p.hazards}
    # on or inside the socket rim: the eyebrow points (BL2, Yuyao, TE23), the canthus points
    # (BL1, GB1) and the points below the eye (ST1, and ST2 a finger-width under the rim)
    assert eye == {"BL1", "BL2", "EX-HN4", "TE23", "GB1", "ST1", "ST2"}
    assert near == {"GB14", "EX-HN5", "EX-HN3"}
    neck = {c for c, p in catalogue.items() if "front-of-neck" in p.hazards}
    assert neck == {"ST9", "LI18", "SI17"}
    thorax = {c for c, p in catalogue.items() if "thorax" in p.hazards}
    assert thorax == {"CV17", "LU1", "BL15"}
    assert {c for c, p in catalogue.items() if "pregnancy" in p.hazards} == {"LI4", "SP6", "GB21"}
    for point in catalogue.values():
        assert set(point.hazards) <= set(HAZARDS)
        if point.hazards and set(point.hazards) != {"pregnancy"}:
            assert point.cautions, f"{point.code} explains its hazard"


def test_the_library_points_have_their_neighbours_catalogued() -> None:
    catalogue = load_catalogue()
    library = {
        site.rsplit("-", 1)[0] for p in builtin_programs() for c in p.channels for site in c.sites
    }
    neighbours = {"ST2", "ST3", "ST4", "ST5", "SI19", "GB2", "TE21", "TE17", "ST8", "GB8", "BL2"}
    assert library | neighbours <= set(catalogue)
    assert len(catalogue) >= 40


def test_locations_are_single_distinct_lines() -> None:
    locations = [p.location for p in load_catalogue().values()]
    assert len(set(locations)) == len(locations)
    assert all("\n" not in loc and 20 <= len(loc) <= 200 for loc in locations)


def test_si19_is_tinggong_and_gb2_is_tinghui() -> None:
    assert parse_site("SI19-L")[0].pinyin == "Tinggong"
    assert parse_site("GB2-L")[0].pinyin == "Tinghui"


def test_resolve_site_reads_the_catalogue_it_is_given() -> None:
    only = {"X1": Acupoint("X1", "a", "b", "somewhere", "face")}
    point, side = resolve_site("X1-R", only)
    assert (point.code, side) == ("X1", "R")
    with pytest.raises(AcupointError, match=r"ST6 is not in the acupoint catalogue \(X1\)"):
        resolve_site("ST6-L", only)


def test_bad_sides_and_hazards_in_a_catalogue_entry_are_refused() -> None:
    good = 'code = "X1"\npinyin = "a"\nchinese = "b"\nlocation = "c"\nregion = "face"\n'
    with pytest.raises(AcupointError, match="point 1 side"):
        parse_catalogue(f'[[point]]\n{good}side = "both"\n')
    with pytest.raises(AcupointError, match="point 1 hazards"):
        parse_catalogue(f'[[point]]\n{good}hazards = ["nose"]\n')
    with pytest.raises(AcupointError, match="point 1 hazards"):
        parse_catalogue(f"[[point]]\n{good}hazards = [[1]]\n")
    with pytest.raises(AcupointError, match=r"a midline point has x = 0\.5"):
        parse_catalogue(f'[[point]]\n{good}side = "midline"\nface_xy = [0.6, 0.2]\n')
    parsed = parse_catalogue(f'[[point]]\n{good}side = "midline"\nhazards = ["mouth"]\n')
    assert parsed["X1"].laterality == "midline" and parsed["X1"].hazards == ("mouth",)
