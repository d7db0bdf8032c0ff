"""Electrode placement: which sites a channel may join, and what to warn about.

Every pair of sites on one channel is a path the current can take. The sites are looked up in
an acupoint catalogue that the caller passes (``waveforms.acupoints.load_catalogue()``), and
each rule below reads only the catalogue: the region, the side (L, R or M), the point's
hazards and its position on the face diagram.

Refused (a session must not start):
    unknown-site     the site is not catalogued, or it has the wrong side for the point
    incomplete-pair  a channel with one site: its path cannot be checked
    eye              a site over or next to the eye (on or inside the socket rim)
    front-of-neck    a site over or next to the carotid sinus or the larynx
    transcerebral    a left site paired with a right site on the head or face
    across-neck      a left site paired with a right site on the neck
    chest            a path that may cross the chest: left arm to right arm, chest to
                     anything but a chest point on the same side, chest to back
    across-body      a left site paired with a right site on the legs
    distant-regions  two regions that are not neighbours (face to hand, head to leg)
    path-over-eye    the straight line between the sites passes over an eye socket on the
                     face diagram
    through-head     the sites are further apart on the face diagram than MAX_HEAD_SPAN
    across-mouth     the straight line between the sites crosses the lips on the face
                     diagram (the pair would cover the mouth, e.g. GV26 + CV24)
    between-channels for a session on a device whose outputs are not isolated from each
                     other (``device_known=True, isolated_channels=False``): a site of one
                     channel and a site of another would be refused as a pair, and the
                     current can take that path
Warned (shown and recorded, the session may run):
    near-eye, mouth, thorax, across-spine (see ``RULES``); between-channels when no device
    is known (a program checked on its own: it is refused on such a device)

Pure: no I/O, no clock, no globals read; the catalogue is an argument. ``check_placement``
never raises for a bad placement, it reports; ``require_safe_placement`` raises
``PlacementError`` with every refusal on one line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from safety.errors import LimitError
from waveforms.acupoints import Acupoint, AcupointError, Side, resolve_site
from waveforms.program import Program

__all__ = [
    "MAX_HEAD_SPAN",
    "MOUTH",
    "NEIGHBOUR_REGIONS",
    "ORBITS",
    "RULES",
    "Ellipse",
    "PlacementError",
    "PlacementFinding",
    "PlacementReport",
    "Rule",
    "check_pair",
    "check_placement",
    "require_safe_placement",
    "sites_with_hazard",
]

Severity = Literal["refuse", "warn"]


class PlacementError(LimitError):
    """A program's electrode placement is refused; the message lists every refusal."""


@dataclass(frozen=True)
class Rule:
    """One placement rule: what it refuses or warns about, and what it rests on."""

    name: str
    severity: Severity
    summary: str
    basis: str


_IEC = "IEC 60601-2-10 warnings ([AS2-10] in ../shared/reference/safety.md 1a)"
_RULE_LIST = (
    Rule("unknown-site", "refuse", "the site is not in the acupoint catalogue", "project rule"),
    Rule(
        "incomplete-pair",
        "refuse",
        "a channel names one site, so its path cannot be checked",
        "project rule",
    ),
    Rule("eye", "refuse", "a site over or next to the eye", f"{_IEC}: not on the eyes"),
    Rule(
        "front-of-neck",
        "refuse",
        "a site on the front of the neck (carotid sinus, larynx)",
        f"{_IEC}; [FDA-PMS]",
    ),
    Rule(
        "transcerebral",
        "refuse",
        "a pair from the left to the right side of the head",
        f"{_IEC}: not across or through the head; [FDA-PMS]",
    ),
    Rule(
        "across-neck",
        "refuse",
        "a pair from the left to the right side of the neck",
        f"{_IEC}: not on the neck; same-side pairing (tcmland)",
    ),
    Rule(
        "chest",
        "refuse",
        "a path that may cross the chest and the heart",
        f"{_IEC}: not chest + upper back or across the heart; [FDA-PMS]; itmonline",
    ),
    Rule(
        "across-body",
        "refuse",
        "a pair from the left to the right side of the body",
        "same-side pairing (tcmland, itmonline)",
    ),
    Rule(
        "distant-regions",
        "refuse",
        "a pair joining regions that are not neighbours (face to limb)",
        "project rule: pairs stay inside one region",
    ),
    Rule(
        "path-over-eye",
        "refuse",
        "the straight line between the sites passes over an eye socket",
        f"{_IEC}: not on the eyes",
    ),
    Rule(
        "through-head",
        "refuse",
        "the sites are so far apart on the head that the path may pass through it",
        f"{_IEC}: not through the head; the span limit is a project policy",
    ),
    Rule("near-eye", "warn", "a site close to the eye", f"{_IEC}: not on the eyes"),
    Rule(
        "across-mouth",
        "refuse",
        "a pair whose path crosses the lips, covering the mouth",
        f"{_IEC} item h: not covering the mouth",
    ),
    Rule("mouth", "warn", "a site beside the mouth", f"{_IEC}: not covering the mouth"),
    Rule(
        "thorax",
        "warn",
        "a site over the rib cage",
        f"{_IEC}: electrodes near the thorax may raise the risk of fibrillation",
    ),
    Rule(
        "across-spine",
        "warn",
        "a pair straddling the spine",
        "itmonline: some advise against pairs straddling the spinal cord",
    ),
    Rule(
        "between-channels",
        "refuse",
        "two channels whose sites would be refused as a pair, on a device whose outputs are "
        "not isolated from each other: current can pass between the channels",
        "our policy: a path refused as a pair is refused between channels that are not "
        "isolated (the device profile's isolated_outputs; unknown counts as not isolated)",
    ),
)
#: Every rule by name.
RULES: dict[str, Rule] = {rule.name: rule for rule in _RULE_LIST}

_HEAD = frozenset({"face", "head"})
_ARMS = frozenset({"arm", "hand"})
_LEGS = frozenset({"leg", "foot"})
#: Pairs of different regions that one channel may join; every other mix is refused.
NEIGHBOUR_REGIONS = frozenset(
    {
        frozenset({"face", "head"}),
        frozenset({"head", "neck"}),
        frozenset({"arm", "hand"}),
        frozenset({"leg", "foot"}),
    }
)


@dataclass(frozen=True)
class Ellipse:
    """An area of the face diagram (unit-square coordinates, see ``waveforms.acupoints``)."""

    cx: float
    cy: float
    rx: float
    ry: float

    def meets_segment(self, p: tuple[float, float], q: tuple[float, float]) -> bool:
        """Whether the straight line from ``p`` to ``q`` touches or enters the ellipse."""
        # In coordinates where the ellipse is the unit circle, find the segment's nearest point.
        ax, ay = (p[0] - self.cx) / self.rx, (p[1] - self.cy) / self.ry
        dx, dy = (q[0] - p[0]) / self.rx, (q[1] - p[1]) / self.ry
        t = -(ax * dx + ay * dy) / max(dx * dx + dy * dy, 1e-12)
        t = min(max(t, 0.0), 1.0)
        return math.hypot(ax + t * dx, ay + t * dy) <= 1.0


#: The eye sockets on the face diagram, the patient's left (viewer's right) first: the eye
#: and its bony rim, from the eyebrow to a finger-width below the lower lid.
ORBITS = (Ellipse(0.64, 0.40, 0.10, 0.09), Ellipse(0.36, 0.40, 0.10, 0.09))
_ORBIT_SIDES = ("left", "right")
#: The lips on the face diagram.
MOUTH = Ellipse(0.5, 0.72, 0.08, 0.03)
#: Project policy: the two sites of a pair on the head lie at most this far apart on the face
#: diagram (about the distance from the eyebrow to the chin). A longer path, such as the
#: crown of the head to the upper lip, may pass through the head.
MAX_HEAD_SPAN = 0.45


@dataclass(frozen=True)
class PlacementFinding:
    """One refusal or warning: the rule, where it applies, and a one-line message."""

    rule: str
    severity: Severity
    channels: tuple[str, ...]
    sites: tuple[str, ...]
    message: str

    @property
    def channel(self) -> str:
        """The (first) channel the finding is about."""
        return self.channels[0]

    def as_record(self) -> dict[str, object]:
        """JSON-compatible, for the session record."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "channels": list(self.channels),
            "sites": list(self.sites),
            "message": self.message,
        }


@dataclass(frozen=True)
class PlacementReport:
    """What the placement rules found for a program: refusals and warnings."""

    refusals: tuple[PlacementFinding, ...] = ()
    warnings: tuple[PlacementFinding, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing is refused (warnings may remain: show and record them)."""
        return not self.refusals

    def as_record(self) -> dict[str, object]:
        """JSON-compatible, for the session record."""
        return {
            "ok": self.ok,
            "refusals": [f.as_record() for f in self.refusals],
            "warnings": [f.as_record() for f in self.warnings],
        }


@dataclass(frozen=True)
class _Site:
    text: str
    point: Acupoint
    side: Side

    @property
    def region(self) -> str:
        return self.point.region

    @property
    def face_xy(self) -> tuple[float, float] | None:
        return self.point.position("face", self.side)

    @property
    def on_thorax(self) -> bool:
        return self.region == "chest" or "thorax" in self.point.hazards

    @property
    def shown(self) -> str:
        return f"{self.text} ({self.point.pinyin})"


class _Findings:
    """Collects findings in order, at most one per rule, channels and sites."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, tuple[str, ...], tuple[str, ...]], PlacementFinding] = {}

    def add(
        self,
        rule: str,
        channels: tuple[str, ...],
        sites: tuple[str, ...],
        text: str,
        *,
        warn: bool = False,
    ) -> None:
        severity: Severity = "warn" if warn else RULES[rule].severity
        finding = PlacementFinding(rule, severity, channels, sites, text)
        self._found.setdefault((rule, channels, sites), finding)

    def report(self) -> PlacementReport:
        found = list(self._found.values())
        return PlacementReport(
            refusals=tuple(f for f in found if f.severity == "refuse"),
            warnings=tuple(f for f in found if f.severity == "warn"),
        )


def _point_findings(out: _Findings, channel: str, s: _Site) -> None:
    where = f"channel {channel}: {s.shown}"
    chan, sites = (channel,), (s.text,)
    hazards = s.point.hazards
    if "eye" in hazards:
        out.add(
            "eye",
            chan,
            sites,
            f"{where} is over or next to the eye, where electrical stimulation is refused; "
            "choose a point clear of the eye socket rim",
        )
    if "front-of-neck" in hazards:
        out.add(
            "front-of-neck",
            chan,
            sites,
            f"{where} is on the front of the neck, over or next to the carotid sinus, where "
            "stimulation is refused; choose a point away from the front of the neck",
        )
    if "near-eye" in hazards:
        out.add(
            "near-eye",
            chan,
            sites,
            f"{where} is close to the eye; keep the whole pad clear of the eye socket rim",
        )
    if "mouth" in hazards:
        out.add(
            "mouth",
            chan,
            sites,
            f"{where} is beside the mouth; keep the pad off the lips and never cover the mouth",
        )
    if s.on_thorax:
        out.add(
            "thorax",
            chan,
            sites,
            f"{where} is over the rib cage: electrodes near the thorax may raise the risk of "
            "fibrillation (IEC 60601-2-10)",
        )


def _pair_findings(out: _Findings, channels: tuple[str, ...], a: _Site, b: _Site) -> None:
    where = f"channel {channels[0]}: {a.text} + {b.text}"
    sites = (a.text, b.text)
    regions = {a.region, b.region}

    def add(rule: str, problem: str, fix: str) -> None:
        out.add(rule, channels, sites, f"{where} {problem}; {fix}")

    if {a.side, b.side} == {"L", "R"}:
        if regions & _HEAD:
            add(
                "transcerebral",
                "crosses the head from left to right (transcerebral)",
                "keep both sites of a pair on one side of the head",
            )
        elif "neck" in regions:
            add(
                "across-neck",
                "crosses the neck from left to right",
                "keep both sites of a pair on one side of the neck",
            )
        elif regions & _ARMS:
            add(
                "chest",
                "joins the left and the right arm, so the current crosses the chest",
                "pair points on one arm",
            )
        elif regions & _LEGS:
            add(
                "across-body",
                "joins the left and the right side of the body",
                "pair points on one side (one leg)",
            )
        elif not (a.on_thorax or b.on_thorax):
            add(
                "across-spine",
                "straddles the spine",
                "prefer a pair on one side of the spine",
            )
    if (a.on_thorax or b.on_thorax) and not (
        a.on_thorax and b.on_thorax and a.region == b.region and a.side == b.side != "M"
    ):
        add(
            "chest",
            "may carry current across the chest and the heart",
            "pair a point on the rib cage only with one on the same side and surface",
        )
    if a.region != b.region and frozenset(regions) not in NEIGHBOUR_REGIONS:
        add(
            "distant-regions",
            f"joins the {a.region} and the {b.region}, which are not neighbouring regions",
            "keep a pair inside one region (or face-head, head-neck, arm-hand, leg-foot); "
            "a distal point gets its own channel",
        )
    pa, pb = a.face_xy, b.face_xy
    if pa is None or pb is None:
        return
    eye_site = "eye" in a.point.hazards or "eye" in b.point.hazards
    crossed = [
        side
        for orbit, side in zip(ORBITS, _ORBIT_SIDES, strict=True)
        if orbit.meets_segment(pa, pb)
    ]
    if crossed and not eye_site:  # an eye site is refused already; its path always meets
        sockets = "eye sockets" if len(crossed) > 1 else "eye socket"
        add(
            "path-over-eye",
            f"runs over the {' and the '.join(crossed)} {sockets}",
            "choose sites whose straight line stays clear of the eyes",
        )
    span = math.dist(pa, pb)
    if span > MAX_HEAD_SPAN:
        add(
            "through-head",
            f"spans {span:.2f} of the head diagram, so the path may pass through the head",
            f"keep the two sites of a pair within {MAX_HEAD_SPAN:g} of it (about brow to chin)",
        )
    if MOUTH.meets_segment(pa, pb):
        add(
            "across-mouth",
            "runs across the lips, covering the mouth (IEC 60601-2-10: not covering the mouth)",
            "choose a pair on one side of the mouth, whose straight line stays off the lips",
        )


def _resolve(
    out: _Findings, channel: str, texts: Sequence[str], catalogue: Mapping[str, Acupoint]
) -> list[_Site]:
    sites: list[_Site] = []
    for text in texts:
        try:
            point, side = resolve_site(text, catalogue)
        except AcupointError as exc:
            out.add("unknown-site", (channel,), (text,), f"channel {channel}: {exc}")
            continue
        sites.append(_Site(text, point, side))
    if len(texts) < 2:
        out.add(
            "incomplete-pair",
            (channel,),
            tuple(texts),
            f"channel {channel}: {' + '.join(texts) or 'no site'} is not a pair; name both "
            "electrode sites of the channel so that its path can be checked",
        )
    return sites


def _channel_findings(
    out: _Findings, channel: str, texts: Sequence[str], catalogue: Mapping[str, Acupoint]
) -> list[_Site]:
    sites = _resolve(out, channel, texts, catalogue)
    for s in sites:
        _point_findings(out, channel, s)
    for a, b in itertools.combinations(sites, 2):
        _pair_findings(out, (channel,), a, b)
    return sites


def _between(
    out: _Findings, x: str, xs: list[_Site], y: str, ys: list[_Site], *, refuse: bool
) -> None:
    """Once, when some site of channel ``x`` and some site of ``y`` would be refused as a
    pair: on a device whose outputs are not isolated, current can flow between them. Refused
    when the device is known not to be isolated (``refuse``), else a warning."""
    for a, b in itertools.product(xs, ys):
        probe = _Findings()
        _pair_findings(probe, (x,), a, b)
        refused = probe.report().refusals
        if refused:
            rule = refused[0].rule
            start = (
                f"channels {x} and {y}: {a.text} ({x}) and {b.text} ({y}) would be refused as "
                f"a pair ({rule})"
            )
            if refuse:
                text = (
                    f"{start}, and this device's outputs are not isolated from each other "
                    "(or not known to be), so current can take that path; run one channel at "
                    "a time or use a device with isolated outputs"
                )
            else:
                text = (
                    f"{start}; current can pass between channels whose outputs are not "
                    "isolated, so this is refused on such a device: use them together only "
                    "on a device with isolated outputs, or run one channel at a time"
                )
            out.add("between-channels", (x, y), (a.text, b.text), text, warn=not refuse)
            return


def check_placement(
    program: Program,
    catalogue: Mapping[str, Acupoint],
    *,
    isolated_channels: bool = False,
    device_known: bool = False,
) -> PlacementReport:
    """Check every channel's sites of ``program`` against the placement rules.

    Never raises for a bad placement: the report lists refusals and warnings, each with a
    one-line message. ``isolated_channels``: the device's outputs are isolated from each
    other (no check between channels). Otherwise a path between channels that would be
    refused as a pair is refused when ``device_known`` (a session on a device whose outputs
    are not isolated, or not known to be), and warned about when not (a program checked on
    its own, without a device).
    """
    out = _Findings()
    placed = [
        (channel.name, _channel_findings(out, channel.name, channel.sites, catalogue))
        for channel in program.channels
    ]
    if not isolated_channels:
        for (x, xs), (y, ys) in itertools.combinations(placed, 2):
            _between(out, x, xs, y, ys, refuse=device_known)
    return out.report()


def check_pair(
    site_a: str, site_b: str, catalogue: Mapping[str, Acupoint], *, channel: str = "A"
) -> PlacementReport:
    """Check one pair of sites as one channel (e.g. while a practitioner picks points)."""
    out = _Findings()
    _channel_findings(out, channel, (site_a, site_b), catalogue)
    return out.report()


def require_safe_placement(
    program: Program,
    catalogue: Mapping[str, Acupoint],
    *,
    isolated_channels: bool = False,
    device_known: bool = False,
) -> PlacementReport:
    """``check_placement``, raising ``PlacementError`` (every refusal, on one line) when
    anything is refused; otherwise the report, whose warnings must be shown and recorded."""
    report = check_placement(
        program, catalogue, isolated_channels=isolated_channels, device_known=device_known
    )
    if report.refusals:
        count = len(report.refusals)
        raise PlacementError(
            f"placement of program {program.name!r} is refused ({count} problem"
            f"{'' if count == 1 else 's'}): " + " | ".join(f.message for f in report.refusals)
        )
    return report


def sites_with_hazard(
    program: Program, catalogue: Mapping[str, Acupoint], hazard: str
) -> tuple[str, ...]:
    """The program's sites whose point carries ``hazard`` (e.g. "pregnancy"), in order: the
    channels' sites, then the points needled by hand (``manual_points``: no current, but the
    hazard of a point is its own); sites that are not catalogued are left out
    (``check_placement`` refuses them)."""
    found: list[str] = []
    sites = [text for channel in program.channels for text in channel.sites]
    for text in (*sites, *program.manual_points):
        try:
            point, _side = resolve_site(text, catalogue)
        except AcupointError:
            continue
        if hazard in point.hazards and text not in found:
            found.append(text)
    return tuple(found)
