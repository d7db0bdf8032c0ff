"""The acupoint catalogue: what a program's electrode sites are and where they sit on a diagram.

``waveforms/acupoints.toml`` holds one entry per point: its WHO standard code (``ST6``), pinyin
and Chinese names, a one-line location, the body region, whether the point is bilateral or on
the midline, positions on a face/head diagram and on a whole-body diagram, the hazards the
placement rules read (``eye``, ``front-of-neck``, ...), and cautions. Positions are for the
patient's LEFT side in unit-square coordinates of a front view as the practitioner facing the
patient sees it (x 0..1 from the viewer's left, y 0..1 from the top), so left-side points have
x > 0.5; ``Acupoint.position`` mirrors them for the right side. ``parse_site("ST6-L")`` reads a
program's site into (point, side); ``resolve_site`` does the same against a given catalogue.

Data only: never talks to devices and never decides what is safe. The placement rules in
``safety.placement`` read the regions, sides, hazards and face positions from here; the
cautions are reminders shown next to the point.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from waveforms.errors import AcustimError

__all__ = [
    "HAZARDS",
    "LATERALITIES",
    "REGIONS",
    "SIDE_NAMES",
    "Acupoint",
    "AcupointError",
    "Hazard",
    "Laterality",
    "Side",
    "load_catalogue",
    "parse_catalogue",
    "parse_site",
    "resolve_site",
]

Side = Literal["L", "R", "M"]
#: Body regions. "chest" is the front of the rib cage, "back" the back of the trunk.
REGIONS = ("face", "head", "neck", "hand", "arm", "leg", "foot", "chest", "back")
SIDE_NAMES: dict[str, str] = {"L": "left", "R": "right", "M": "midline"}
Laterality = Literal["bilateral", "midline"]
LATERALITIES: tuple[Laterality, ...] = ("bilateral", "midline")
Hazard = Literal["eye", "near-eye", "front-of-neck", "mouth", "thorax", "pregnancy"]
#: What each hazard means; ``safety.placement`` decides what follows from it.
HAZARDS: dict[str, str] = {
    "eye": "over or next to the eye (on or inside the bony rim of the eye socket)",
    "near-eye": "within about two finger-widths of the eye, outside the rim of the socket",
    "front-of-neck": "on the front or side of the neck, over or next to the carotid sinus or "
    "the larynx",
    "mouth": "beside the lips, where a pad can reach or cover the mouth",
    "thorax": "over the rib cage (chest or upper back)",
    "pregnancy": "traditionally avoided in pregnancy",
}

_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
_SITE = re.compile(r"(?P<code>[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)-(?P<side>[LRM])")
_SOURCE = "waveforms/acupoints.toml"
_KEYS = (
    "code",
    "pinyin",
    "chinese",
    "location",
    "region",
    "side",
    "face_xy",
    "body_xy",
    "hazards",
    "cautions",
)


class AcupointError(AcustimError):
    """A site that is not in the catalogue, or a catalogue entry that is malformed."""


@dataclass(frozen=True)
class Acupoint:
    """One acupoint; positions are for the patient's left side (see the module docstring).

    ``laterality`` says whether the point exists on both sides (written ``-L``/``-R`` in a
    program) or once on the midline (written ``-M``).
    """

    code: str
    pinyin: str
    chinese: str
    location: str
    region: str
    face_xy: tuple[float, float] | None = None
    body_xy: tuple[float, float] | None = None
    cautions: tuple[str, ...] = ()
    laterality: Laterality = "bilateral"
    hazards: tuple[Hazard, ...] = ()

    @property
    def name(self) -> str:
        """``ST6 Jiache``: how a person refers to the point."""
        return f"{self.code} {self.pinyin}"

    def position(self, diagram: Literal["face", "body"], side: Side) -> tuple[float, float] | None:
        """Where the point of ``side`` sits on a diagram (None if it is not on that diagram).
        The right side mirrors the left (x -> 1 - x); a midline point keeps its x."""
        xy = self.face_xy if diagram == "face" else self.body_xy
        if xy is None:
            return None
        x, y = xy
        return (1.0 - x, y) if side == "R" else (x, y)


def _fail(index: int, key: str, problem: str) -> AcupointError:
    return AcupointError(f"{_SOURCE}: point {index + 1} {key} {problem}")


def _xy(index: int, key: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(index, key, f"= {value!r} is not [x, y]; allowed two numbers 0..1")
    x, y = float(value[0]), float(value[1])
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise _fail(index, key, f"= {value!r} is outside the diagram; allowed 0..1 each")
    return (x, y)


def _text(index: int, entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(index, key, f"= {value!r} is missing or empty; allowed text")
    return value.strip()


def parse_catalogue(text: str) -> dict[str, Acupoint]:
    """Parse catalogue TOML (``[[point]]`` tables) into points by code."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AcupointError(f"{_SOURCE}: TOML syntax error: {exc}") from None
    entries = data.get("point", [])
    if not isinstance(entries, list):
        raise AcupointError(f"{_SOURCE}: expected [[point]] tables")
    out: dict[str, Acupoint] = {}
    for index, entry in enumerate(entries):
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise _fail(index, unknown[0], f"is an unknown key; allowed {', '.join(_KEYS)}")
        code = _text(index, entry, "code")
        if not _CODE.fullmatch(code):
            raise _fail(index, "code", f"= {code!r} is not an acupoint code like ST6 or EX-HN5")
        if code in out:
            raise _fail(index, "code", f"= {code!r} is listed twice")
        region = _text(index, entry, "region")
        if region not in REGIONS:
            raise _fail(index, "region", f"= {region!r} is unknown; allowed {', '.join(REGIONS)}")
        cautions = entry.get("cautions", [])
        if not isinstance(cautions, list) or not all(isinstance(c, str) for c in cautions):
            raise _fail(index, "cautions", "must be a list of text")
        laterality = entry.get("side", "bilateral")
        if laterality not in LATERALITIES:
            raise _fail(
                index, "side", f"= {laterality!r} is unknown; allowed {', '.join(LATERALITIES)}"
            )
        hazards = entry.get("hazards", [])
        if not isinstance(hazards, list) or not all(
            isinstance(h, str) and h in HAZARDS for h in hazards
        ):
            raise _fail(index, "hazards", f"= {hazards!r} is not a list of {', '.join(HAZARDS)}")
        face_xy = _xy(index, "face_xy", entry.get("face_xy"))
        if laterality == "midline" and face_xy is not None and face_xy[0] != 0.5:
            raise _fail(index, "face_xy", f"= {list(face_xy)!r}: a midline point has x = 0.5")
        out[code] = Acupoint(
            code=code,
            pinyin=_text(index, entry, "pinyin"),
            chinese=_text(index, entry, "chinese"),
            location=_text(index, entry, "location"),
            region=region,
            face_xy=face_xy,
            body_xy=_xy(index, "body_xy", entry.get("body_xy")),
            cautions=tuple(cautions),
            laterality=laterality,
            hazards=tuple(hazards),
        )
    return out


@functools.cache
def _catalogue() -> dict[str, Acupoint]:
    text = resources.files("waveforms").joinpath("acupoints.toml").read_text(encoding="utf-8")
    return parse_catalogue(text)


def load_catalogue() -> dict[str, Acupoint]:
    """Every catalogued point by code (a fresh dict; the points themselves are frozen)."""
    return dict(_catalogue())


def resolve_site(site: str, catalogue: Mapping[str, Acupoint]) -> tuple[Acupoint, Side]:
    """A program's site (``"ST6-L"``, ``"EX-HN5-R"``, ``"GV20-M"``) as (point, side), looked
    up in ``catalogue``. A bilateral point needs ``-L`` or ``-R``, a midline point ``-M``."""
    match = _SITE.fullmatch(site.strip())
    if match is None:
        raise AcupointError(
            f"site {site!r} is not a code and a side; allowed e.g. ST6-L, EX-HN5-R, GV20-M"
        )
    code, side = match["code"], match["side"]
    point = catalogue.get(code)
    if point is None:
        known = ", ".join(sorted(catalogue))
        raise AcupointError(f"site {site!r}: {code} is not in the acupoint catalogue ({known})")
    if point.laterality == "midline" and side != "M":
        raise AcupointError(f"site {site!r}: {code} is a midline point; write {code}-M")
    if point.laterality == "bilateral" and side == "M":
        raise AcupointError(
            f"site {site!r}: {code} is on both sides of the body; write {code}-L or {code}-R"
        )
    resolved: Side = "L" if side == "L" else "R" if side == "R" else "M"
    return point, resolved


def parse_site(site: str) -> tuple[Acupoint, Side]:
    """A program's site (``"ST6-L"``, ``"EX-HN5-R"``, ``"GV20-M"``) as (point, side), looked
    up in the shipped catalogue."""
    return resolve_site(site, _catalogue())
