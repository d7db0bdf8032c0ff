"""Electrode placement rules, one by one: what each refuses or warns about, and what it lets by."""

from __future__ import annotations

import dataclasses
import json

import pytest

from safety.errors import LimitError
from safety.placement import (
    MAX_HEAD_SPAN,
    MOUTH,
    ORBITS,
    RULES,
    Ellipse,
    PlacementError,
    PlacementReport,
    check_pair,
    check_placement,
    require_safe_placement,
    sites_with_hazard,
)
from waveforms.acupoints import Acupoint, load_catalogue
from waveforms.program import Channel, Program, Ramp

CATALOGUE = load_catalogue()


def program(*channels: tuple[str, ...], name: str = "placement-test") -> Program:
    segments = (Ramp(60.0, 2.0, 250.0, 0.0, 1.0),)
    return Program(
        name=name,
        title="Placement test",
        indication="tests",
        channels=tuple(
            Channel(chr(ord("A") + k), sites, segments) for k, sites in enumerate(channels)
        ),
    )


def rules(report: PlacementReport) -> tuple[set[str], set[str]]:
    return {f.rule for f in report.refusals}, {f.rule for f in report.warnings}


def refused(a: str, b: str, catalogue: dict[str, Acupoint] = CATALOGUE) -> set[str]:
    return rules(check_pair(a, b, catalogue))[0]


def warned(a: str, b: str, catalogue: dict[str, Acupoint] = CATALOGUE) -> set[str]:
    return rules(check_pair(a, b, catalogue))[1]


# --------------------------------------------------------------------------- allowed pairs


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ST7-L", "ST6-L"),  # TMJ: one side of the face
        ("ST7-R", "ST6-R"),
        ("SI18-L", "ST6-L"),  # cheek to jaw
        ("ST4-R", "ST6-R"),  # mouth corner to jaw (a mouth warning)
        ("GB14-L", "EX-HN5-L"),  # forehead to temple, face to head
        ("GB12-L", "GB20-L"),  # head to the back of the neck
        ("ST36-L", "SP6-L"),  # one leg
        ("LI4-R", "LI11-R"),  # hand to arm
        ("SP6-L", "LR3-L"),  # leg to foot
        ("GV20-M", "ST8-L"),  # crown to the corner of the forehead
    ],
)
def test_pairs_on_one_side_inside_one_region_are_allowed(a: str, b: str) -> None:
    report = check_pair(a, b, CATALOGUE)

    assert report.ok and not report.refusals
    assert rules(report)[1] <= {"mouth", "near-eye"}


# --------------------------------------------------------------------------- refused, by rule


def test_unknown_or_malformed_sites_are_refused_and_the_rest_still_checked() -> None:
    report = check_placement(program(("KI27-L", "ST6-L"), ("ST6", "ST9-L")), CATALOGUE)

    found = [(f.rule, f.channel, f.sites) for f in report.refusals]
    assert ("unknown-site", "A", ("KI27-L",)) in found
    assert ("unknown-site", "B", ("ST6",)) in found
    assert ("front-of-neck", "B", ("ST9-L",)) in found
    message = next(f.message for f in report.refusals if f.sites == ("KI27-L",))
    assert message.startswith("channel A: site 'KI27-L': KI27 is not in the acupoint catalogue")


def test_a_wrong_side_for_the_point_is_an_unknown_site() -> None:
    assert refused("GV20-L", "ST8-L") == {"unknown-site"}
    assert refused("ST6-M", "ST7-L") >= {"unknown-site"}


@pytest.mark.parametrize("sites", [("ST6-L",), ()])
def test_a_channel_without_a_pair_is_refused(sites: tuple[str, ...]) -> None:
    report = check_placement(program(sites), CATALOGUE)

    (finding,) = report.refusals
    assert finding.rule == "incomplete-pair"
    assert "is not a pair; name both electrode sites" in finding.message


@pytest.mark.parametrize(
    "site", ["ST2-L", "BL2-R", "EX-HN4-L", "TE23-L", "GB1-R", "ST1-L", "BL1-L"]
)
def test_a_site_over_or_next_to_the_eye_is_refused(site: str) -> None:
    report = check_pair(site, "ST6-" + site[-1], CATALOGUE)

    eye = [f for f in report.refusals if f.rule == "eye"]
    assert len(eye) == 1 and eye[0].sites == (site,)
    assert "over or next to the eye" in eye[0].message
    # the path rule does not repeat what the site rule already refused
    assert "path-over-eye" not in rules(report)[0]


@pytest.mark.parametrize("site", ["ST9-L", "LI18-R", "SI17-L"])
def test_a_site_on_the_front_of_the_neck_is_refused(site: str) -> None:
    assert "front-of-neck" in refused(site, "ST6-" + site[-1])


@pytest.mark.parametrize(
    ("a", "b"),
    [("ST7-L", "ST7-R"), ("EX-HN5-L", "EX-HN5-R"), ("SI18-L", "ST6-R"), ("GB14-L", "GB20-R")],
)
def test_left_to_right_across_the_head_is_transcerebral(a: str, b: str) -> None:
    report = check_pair(a, b, CATALOGUE)

    assert "transcerebral" in rules(report)[0]
    message = next(f.message for f in report.refusals if f.rule == "transcerebral")
    assert message == (
        f"channel A: {a} + {b} crosses the head from left to right (transcerebral); "
        "keep both sites of a pair on one side of the head"
    )


def test_left_to_right_across_the_neck_is_refused() -> None:
    assert refused("GB20-L", "GB20-R") == {"across-neck"}
    assert refused("BL10-R", "GB20-L") == {"across-neck"}


def test_arm_to_arm_crosses_the_chest() -> None:
    assert refused("LI4-L", "LI4-R") == {"chest"}
    assert refused("PC6-L", "TE5-R") == {"chest"}


def test_leg_to_leg_crosses_the_body() -> None:
    assert refused("ST36-L", "ST36-R") == {"across-body"}
    assert refused("SP6-R", "LR3-L") == {"across-body"}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("LU1-L", "LU1-R"),  # across the chest
        ("CV17-M", "LU1-L"),  # the midline of the chest to one side
        ("LU1-L", "BL15-L"),  # chest to back: through the thorax
        ("BL15-L", "BL15-R"),  # across the upper back at heart level
        ("LU1-L", "LI11-L"),  # chest to arm
    ],
)
def test_a_path_that_may_cross_the_chest_is_refused(a: str, b: str) -> None:
    report = check_pair(a, b, CATALOGUE)

    assert "chest" in rules(report)[0]
    assert "thorax" in rules(report)[1]  # the standard's own warning is kept as well


@pytest.mark.parametrize(
    ("a", "b", "regions"),
    [
        ("ST6-L", "LI4-L", "face and the hand"),
        ("GV20-M", "ST36-L", "head and the leg"),
        ("ST6-L", "GB20-L", "face and the neck"),
        ("LI11-L", "ST36-L", "arm and the leg"),
    ],
)
def test_a_pair_joining_distant_regions_is_refused(a: str, b: str, regions: str) -> None:
    report = check_pair(a, b, CATALOGUE)

    assert rules(report)[0] == {"distant-regions"}
    assert f"joins the {regions}, which are not neighbouring regions" in report.refusals[0].message


@pytest.mark.parametrize(
    ("a", "b"),
    [("GB14-L", "ST3-L"), ("GB14-R", "SI18-R"), ("ST7-L", "GB14-L"), ("LI20-L", "GB14-L")],
)
def test_a_path_over_the_eye_is_refused(a: str, b: str) -> None:
    report = check_pair(a, b, CATALOGUE)

    assert "path-over-eye" in rules(report)[0]
    side = "left" if a.endswith("L") else "right"
    assert f"runs over the {side} eye socket" in report.refusals[0].message


def test_a_path_that_spans_the_head_is_refused_as_through_the_head() -> None:
    report = check_pair("GV20-M", "CV24-M", CATALOGUE)

    assert "through-head" in rules(report)[0]
    message = next(f.message for f in report.refusals if f.rule == "through-head")
    assert "spans 0.73 of the head diagram" in message
    assert f"within {MAX_HEAD_SPAN:g}" in message


# --------------------------------------------------------------------------- warnings


def test_near_eye_points_are_warned_about() -> None:
    report = check_pair("GB14-L", "EX-HN5-L", CATALOGUE)

    assert report.ok
    assert [f.sites for f in report.warnings if f.rule == "near-eye"] == [
        ("GB14-L",),
        ("EX-HN5-L",),
    ]


def test_points_beside_the_mouth_are_warned_about_and_a_path_across_it_is_refused() -> None:
    assert warned("ST4-L", "ST6-L") == {"mouth"}
    # [AS2-10] item h: not covering the mouth. Straight across the lips: refused.
    report = check_pair("GV26-M", "CV24-M", CATALOGUE)
    assert rules(report)[0] == {"across-mouth"}
    (finding,) = report.refusals
    assert finding.sites == ("GV26-M", "CV24-M")
    assert "runs across the lips, covering the mouth" in finding.message
    assert {f.sites for f in report.warnings if f.rule == "mouth"} == {("GV26-M",), ("CV24-M",)}
    assert "across-mouth" in refused("ST4-L", "CV24-M")  # corner of the mouth to the chin
    # beside the mouth without crossing the lips: a warning only
    assert check_pair("ST4-L", "ST6-L", CATALOGUE).ok


def test_two_thorax_points_on_one_side_are_a_warning_only() -> None:
    fake = dict(CATALOGUE)
    fake["X2"] = Acupoint("X2", "x", "x", "below LU1", "chest", hazards=("thorax",))
    report = check_pair("LU1-L", "X2-L", fake)

    assert report.ok
    assert rules(report)[1] == {"thorax"}


def test_left_to_right_on_the_back_away_from_the_rib_cage_straddles_the_spine() -> None:
    fake = dict(CATALOGUE)
    fake["BL23"] = Acupoint("BL23", "Shenshu", "肾俞", "lower back", "back")
    report = check_pair("BL23-L", "BL23-R", fake)

    assert report.ok
    assert rules(report)[1] == {"across-spine"}


def test_channels_that_would_be_refused_as_a_pair_are_refused_unless_isolated() -> None:
    both_sides = program(("ST7-L", "ST6-L"), ("ST7-R", "ST6-R"), ("ST36-L", "SP6-L"))

    # on a device whose outputs are not isolated (or not known to be): refused
    report = check_placement(both_sides, CATALOGUE, device_known=True)

    assert not report.ok
    between = [f for f in report.refusals if f.rule == "between-channels"]
    assert [f.channels for f in between] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert between[0].sites == ("ST7-L", "ST7-R")
    assert "(transcerebral)" in between[0].message
    assert "outputs are not isolated from each other" in between[0].message
    with pytest.raises(PlacementError, match="would be refused as a pair"):
        require_safe_placement(both_sides, CATALOGUE, device_known=True)
    # isolated outputs: current cannot pass between the channels
    isolated = check_placement(both_sides, CATALOGUE, isolated_channels=True, device_known=True)
    assert isolated.ok and isolated.warnings == ()
    # no device (a program checked on its own): a warning that names the device condition
    alone = check_placement(both_sides, CATALOGUE)
    assert alone.ok
    warned_between = [f for f in alone.warnings if f.rule == "between-channels"]
    assert [f.severity for f in warned_between] == ["warn"] * 3
    assert "refused on such a device" in warned_between[0].message
    # two channels on one leg each side of the knee: nothing to refuse or warn about
    same_leg = program(("ST36-L", "SP6-L"), ("GB34-L", "LR3-L"))
    assert check_placement(same_leg, CATALOGUE, device_known=True).warnings == ()
    assert check_placement(same_leg, CATALOGUE, device_known=True).ok


# --------------------------------------------------------------------------- the geometry


def test_the_orbits_cover_every_eye_point_and_no_other_point_of_the_face_map() -> None:
    for point in CATALOGUE.values():
        if point.face_xy is None:
            continue
        for side, orbit in (("L", ORBITS[0]), ("R", ORBITS[1])):
            xy = point.position("face", "M" if point.laterality == "midline" else side)
            assert xy is not None
            inside = orbit.meets_segment(xy, xy)
            assert inside == ("eye" in point.hazards), f"{point.code}-{side}"
        assert not MOUTH.meets_segment(point.face_xy, point.face_xy), point.code


def test_an_ellipse_meets_a_segment_through_near_or_past_it() -> None:
    unit = Ellipse(0.0, 0.0, 1.0, 1.0)

    assert unit.meets_segment((-2.0, 0.0), (2.0, 0.0))  # through
    assert unit.meets_segment((0.5, 0.5), (3.0, 3.0))  # starts inside
    assert not unit.meets_segment((-2.0, 1.5), (2.0, 1.5))  # passes above
    assert not unit.meets_segment((2.0, 0.0), (4.0, 0.0))  # points at it, stops short
    assert not unit.meets_segment((2.0, 2.0), (2.0, 2.0))  # a point outside


# --------------------------------------------------------------------------- the API


def test_require_safe_placement_lists_every_refusal_on_one_line() -> None:
    bad = program(("ST7-L", "ST7-R"), ("ST2-L", "ST6-L"), name="bad-face")

    with pytest.raises(PlacementError) as info:
        require_safe_placement(bad, CATALOGUE)

    message = str(info.value)
    assert isinstance(info.value, LimitError)
    assert "\n" not in message
    assert message.startswith(
        "placement of program 'bad-face' is refused (4 problems): channel A: ST7-L + ST7-R "
        "crosses the head from left to right (transcerebral); "
    )
    # straight across the face at cheekbone level: under both eyes, and further than allowed
    assert "ST7-L + ST7-R runs over the left and the right eye sockets" in message
    assert "ST7-L + ST7-R spans 0.64 of the head diagram" in message
    assert " | channel B: ST2-L (Sibai) is over or next to the eye" in message
    with pytest.raises(PlacementError, match=r"\(1 problem\): channel A"):
        require_safe_placement(program(("ST6-L",)), CATALOGUE)
    good = require_safe_placement(program(("ST7-L", "ST6-L"), ("ST7-R", "ST6-R")), CATALOGUE)
    assert good.ok and [f.rule for f in good.warnings] == ["between-channels"]


def test_reports_are_json_records() -> None:
    report = check_placement(program(("ST7-L", "ST7-R"), ("ST4-L", "ST6-L")), CATALOGUE)

    record = json.loads(json.dumps(report.as_record()))

    assert record["ok"] is False
    assert record["refusals"][0] == {
        "rule": "transcerebral",
        "severity": "refuse",
        "channels": ["A"],
        "sites": ["ST7-L", "ST7-R"],
        "message": report.refusals[0].message,
    }
    assert {w["rule"] for w in record["warnings"]} == {"mouth", "between-channels"}
    assert PlacementReport().ok and PlacementReport().as_record()["ok"] is True


def test_every_rule_is_described_with_its_basis() -> None:
    for name, rule in RULES.items():
        assert rule.name == name and rule.summary and rule.basis
        assert rule.severity in ("refuse", "warn")
    assert {r for r, rule in RULES.items() if rule.severity == "warn"} == {
        "near-eye",
        "mouth",
        "thorax",
        "across-spine",
    }
    assert RULES["between-channels"].severity == "refuse"
    assert RULES["across-mouth"].severity == "refuse"
    assert "item h" in RULES["across-mouth"].basis


def test_sites_with_a_hazard_are_listed_once_in_order() -> None:
    legs = program(("ST36-L", "SP6-L"), ("SP6-L", "ST36-R"), ("KI27-L", "LI4-R"))

    assert sites_with_hazard(legs, CATALOGUE, "pregnancy") == ("SP6-L", "LI4-R")
    assert sites_with_hazard(legs, CATALOGUE, "eye") == ()


def test_a_manual_point_with_a_hazard_is_listed_too() -> None:
    """A point needled by hand carries no current, but its hazard (pregnancy) is its own: the
    screening must see it."""
    legs = program(("ST36-L", "ST36-R"))
    by_hand = dataclasses.replace(legs, manual_points=("LI4-L", "ST36-L", "LI4-L"))

    assert sites_with_hazard(legs, CATALOGUE, "pregnancy") == ()
    assert sites_with_hazard(by_hand, CATALOGUE, "pregnancy") == ("LI4-L",)
