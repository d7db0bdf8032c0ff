"""One rule set for programs: check a ``Program`` against every rule of the program format.

A program may come from a file (``waveforms.files``), from the built-in library or straight
from code (``Program(...)``, ``Device.start(program=...)``); all of them pass through
``check_program`` here, so a rule is written once. The loader only reads the file's keys
(unknown keys, "did you mean", required keys, tables and arrays) and maps each problem's
*path* to the line of the file.

The rules are tables: ``PROGRAM_FIELDS``, ``CHANNEL_FIELDS``, ``MARKER_FIELDS`` and
``SEGMENT_FIELDS`` (one per kind) give each field's spec (a number range, a text, a choice, an
array), and ``PROGRAM_RULES`` / ``SEGMENT_RULES`` hold the rules that relate several fields
(counts, totals, unique names, ``low_hz < high_hz``, evidence support). Each problem is a
``Problem`` with the path of the value (``channels[1].segments[0].intensity``), where it is
in words, the value, what is wrong and what is allowed.

This module never reads files, never knows device units and never decides what is safe: these
are program-format ranges, independent of any device; the safety core applies its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from waveforms.acupoints import load_catalogue
from waveforms.errors import ProgramError
from waveforms.program import (
    Channel,
    Continuous,
    DenseDisperse,
    ElectrodeKind,
    Entry,
    EvidenceLevel,
    EvidenceMarker,
    EvidenceStatus,
    Intermittent,
    ManualEntry,
    OnsetRule,
    Program,
    Ramp,
    Segment,
    SourcedFor,
    Stage,
    source_key,
)
from waveforms.render import US_PER_S, seconds_to_us

__all__ = [
    "CHANNEL_FIELDS",
    "CORE_EVIDENCE",
    "EVIDENCE_ABOUT",
    "MANUAL_FIELDS",
    "MANUAL_RULES",
    "MARKER_FIELDS",
    "PROGRAM_FIELDS",
    "PROGRAM_RULES",
    "SEGMENT_FIELDS",
    "SEGMENT_KINDS",
    "SEGMENT_RULES",
    "InvalidProgramError",
    "Path",
    "Problem",
    "Range",
    "check_entry",
    "check_program",
    "derive_evidence",
    "path_text",
    "segment_problems",
    "validate_entry",
    "validate_program",
]

#: A place in a program: attribute names and indexes, e.g. ("channels", 1, "segments", 0).
Path = tuple[str | int, ...]


# --------------------------------------------------------------------------- value text


class Raw(str):
    """Text shown as is in a message (a count or a summary), not as a quoted string."""


#: A value that is not there (shown as ``(missing)``).
MISSING: Final = object()


def number_text(value: float) -> str:
    """``100.0`` as ``100``, ``0.5`` as ``0.5``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def value_text(value: object, depth: int = 0) -> str:
    """A value as it would be written in TOML, kept short and on one line (arrays nested
    deeper than two levels are shown as ``[...]``: never a recursion as deep as the value)."""
    if isinstance(value, Raw):
        return str(value)
    if value is MISSING:
        return "(missing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        bits = value.bit_length()
        if bits > 100:  # too long to show; and beyond ~4300 digits Python refuses str()
            digits = len(str(abs(value))) if bits < 14000 else int(bits * math.log10(2)) + 1
            return f"(an integer of about {digits} digits)"
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, list | tuple):
        if depth >= 2:
            return "[...]" if value else "[]"
        shown = ", ".join(value_text(v, depth + 1) for v in value[:3])
        return f"[{shown}, ...]" if len(value) > 3 else f"[{shown}]"
    if isinstance(value, dict):
        return "{table}"
    return " ".join(str(value).split())


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def quoted(values: Sequence[str]) -> str:
    return " or ".join(f'"{v}"' for v in values)


def path_text(path: Path) -> str:
    """``("channels", 1, "segments", 0, "intensity")`` as ``channels[1].segments[0].intensity``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "program"


def _valid(value: object, allowed: Range) -> float | None:
    """``value`` if it is a number (not a boolean) within ``allowed``, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value not in allowed:
        return None
    return value


def _is_array(value: object) -> bool:
    return isinstance(value, tuple | list)


# --------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class Range:
    """A closed range ``lo..hi`` (or ``lo < x <= hi`` when ``lo_exclusive``) with its unit."""

    lo: float
    hi: float
    unit: str
    lo_exclusive: bool = False

    def __contains__(self, value: float) -> bool:
        if self.lo_exclusive:
            return self.lo < value <= self.hi
        return self.lo <= value <= self.hi  # NaN fails both comparisons, so it is refused

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.lo_exclusive:
            return f"{number_text(self.lo)} < x <= {number_text(self.hi)}{unit}"
        return f"{number_text(self.lo)}..{number_text(self.hi)}{unit}"


FREQUENCY_HZ = Range(0.5, 200.0, "Hz")
PULSE_WIDTH_US = Range(20.0, 1000.0, "us")
INTENSITY = Range(0.0, 1.0, "(fraction of the channel's treatment level)")
SEGMENT_DURATION_S = Range(0.1, 3600.0, "s")
ON_OFF_S = Range(0.1, 60.0, "s")
LOW_HIGH_S = Range(0.5, 60.0, "s")
MAX_LEVEL_FRACTION = Range(0.0, 1.0, "(fraction of the device maximum)", lo_exclusive=True)
MAX_CURRENT_MA = Range(0.0, 50.0, "mA", lo_exclusive=True)
ELECTRODE_AREA_CM2 = Range(0.0, 500.0, "cm^2", lo_exclusive=True)
# The same two ranges as plain (lo, hi) tuples, for the safety core's consistency checks.
FREQUENCY_RANGE_HZ = (FREQUENCY_HZ.lo, FREQUENCY_HZ.hi)
PULSE_WIDTH_RANGE_US = (PULSE_WIDTH_US.lo, PULSE_WIDTH_US.hi)
MAX_PROGRAM_DURATION_S = 3600.0
MAX_CHANNELS = 8
MAX_SEGMENTS_PER_CHANNEL = 500
MAX_SITES_PER_CHANNEL = 8
MAX_LABEL_CHARS = 80
MAX_TITLE_CHARS = 120
MAX_TEXT_CHARS = 4000
MAX_EVIDENCE_MARKERS = 32
MAX_MARKER_SOURCES = 16
MAX_NAME_CHARS = 64
MAX_SITE_CHARS = 16
#: Manual points of a program (needles placed by hand, no current), and points of a
#: manual-acupuncture entry.
MAX_MANUAL_POINTS = 16
MAX_ENTRY_POINTS = 24
#: ``why_no_ea`` of a manual entry: one short reason, shown in the one-line refusal.
MAX_WHY_CHARS = 300

#: What an evidence marker can be about.
EVIDENCE_ABOUT = (
    "points",
    "waveform",
    "frequency",
    "pulse_width",
    "intensity",
    "ceiling",
    "duration",
    "sessions",
    "timing",
    "onset",
    "electrode",
)
#: A program is "sourced" only if each of these has a sourced marker (and no marker is a
#: practice default).
CORE_EVIDENCE = ("points", "waveform", "frequency", "pulse_width", "duration")
EVIDENCE_STATUSES: tuple[EvidenceStatus, ...] = ("sourced", "practice-default")
#: The levels a file may declare; a program built in code may also be "unstated".
EVIDENCE_LEVELS: tuple[EvidenceLevel, ...] = ("sourced", "practice-default")
ONSET_RULES: tuple[OnsetRule, ...] = ("bells-palsy",)
STAGES: tuple[Stage, ...] = ("subacute", "chronic")
ELECTRODES: tuple[ElectrodeKind, ...] = ("pad", "needle")
SOURCED_FOR: tuple[SourcedFor, ...] = ("pad", "needle")

PROGRAM_NAME_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
CHANNEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,7}")
# An acupoint (or site) code, then the side: L(eft), R(ight) or M(idline). "EX-HN5-R" works.
SITE_PATTERN = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-[LRM]")

PROGRAM_NAME_RULE = (
    f"a lowercase slug of a-z, 0-9 and single '-' (at most {MAX_NAME_CHARS} characters), "
    'e.g. "tmj-jaw-pain-left"'
)
CHANNEL_NAME_RULE = "1..8 characters of letters, digits, '-' or '_', e.g. \"A\""
SITE_RULE = 'an acupoint code and a side L, R or M, e.g. "ST6-L", "EX-HN5-R", "GV20-M"'
SOURCE_KEY_RULE = (
    "a source key in brackets, 1..32 letters, digits, '.', '_' or '-', then a space and the "
    'citation, e.g. "[Sung2021] Sung 2021, Healthcare 9:1497"'
)
DENSE_DISPERSE_RULE = (
    f"low_hz below high_hz, both {FREQUENCY_HZ} (the sparse rate, then the dense one; "
    "defaults 2 and 100)"
)
SOURCED_RULE = (
    '"practice-default", or a sourced marker for each of '
    + ", ".join(CORE_EVIDENCE)
    + " and no practice default"
)


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``<where> <field> = <value> is <problem>; allowed <allowed>``.

    ``path`` is the value's place in the program (``path_text`` writes it as
    ``channels[1].segments[0].intensity``). ``problem`` may say ``{other}``: with
    ``other_value`` it is that related field's value (``high_hz = 100``), else the place of
    ``other``, the earlier item a duplicate repeats. ``locate`` is the better place to point
    at in a file, when that is not ``path`` (the first item over a limit, the segment that
    passes the total).
    """

    path: Path
    where: str
    field: str
    value: object
    problem: str
    allowed: str
    other: Path | None = None
    other_value: object = None
    locate: Path | None = None

    @property
    def path_text(self) -> str:
        return path_text(self.path)

    def text(self, value: Callable[[Path, object], str], place: Callable[[Path], str]) -> str:
        """The message without its source; ``value`` shows a value at a path, ``place`` names
        a place (a path, or a file's line)."""
        problem = self.problem
        if self.other is not None:
            shown = (
                place(self.other)
                if self.other_value is None
                else value(self.other, self.other_value)
            )
            problem = problem.replace("{other}", shown)
        name = f"{self.where} {self.field}" if self.where else self.field
        return f"{name} = {value(self.path, self.value)} is {problem}; allowed {self.allowed}"

    def message(self, source: str) -> str:
        """``<source>: <path>: <where> <field> = <value> is <problem>; allowed <range>``."""
        shown = self.text(lambda _path, v: value_text(v), path_text)
        return f"{source}: {self.path_text}: {shown}"


class InvalidProgramError(ProgramError):
    """A program breaks at least one rule: the message names the first, ``problems`` has all."""

    def __init__(self, message: str, problems: Sequence[Problem]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


# --------------------------------------------------------------------------- field specs


class Spec:
    """The rule for one field: its ``name``, what is ``allowed`` and ``problem(value)``."""

    name: str

    @property
    def allowed(self) -> str:
        raise NotImplementedError

    def problem(self, value: object) -> str | None:
        raise NotImplementedError

    def check(self, value: object, path: Path, where: str, program: Entry) -> Iterator[Problem]:
        problem = self.problem(value)
        if problem is not None:
            yield Problem(path, where, self.name, value, problem, self.allowed)


@dataclass(frozen=True)
class Number(Spec):
    """A number (not a boolean) within ``range``; ``None`` too when ``optional``."""

    name: str
    range: Range
    optional: bool = False

    @property
    def allowed(self) -> str:
        return str(self.range)

    def problem(self, value: object) -> str | None:
        if value is None and self.optional:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{type_name(value)}, not a number"
        return None if value in self.range else "out of range"


@dataclass(frozen=True)
class Text(Spec):
    """A string of at most ``max_chars`` (not blank when ``required``), matching ``pattern``."""

    name: str
    max_chars: int
    required: bool = False
    pattern: re.Pattern[str] | None = None
    mismatch: str = ""
    rule: str = ""
    too_long: str = "too long"

    @property
    def allowed(self) -> str:
        return self.rule or f"a string of {int(self.required)}..{self.max_chars} characters"

    def problem(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"{type_name(value)}, not a string"
        if self.required and not value.strip():
            return "empty"
        if len(value) > self.max_chars:
            return self.too_long
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return self.mismatch
        return None


@dataclass(frozen=True)
class Choice(Spec):
    """One of ``values``; messages list ``shown`` (default: the non-empty values)."""

    name: str
    values: tuple[str, ...]
    mismatch: str
    shown: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        return quoted(self.shown or tuple(v for v in self.values if v))

    def problem(self, value: object) -> str | None:
        return None if isinstance(value, str) and value in self.values else self.mismatch


@dataclass(frozen=True)
class Array(Spec):
    """An array (tuple or list) of ``least``..``most`` items, each passing ``item``; with
    ``unique``, no item twice. Items are not checked one by one past ``most``."""

    name: str
    item: Text
    least: int = 0
    most: int | None = None
    unique: bool = False
    rule: str = ""

    @property
    def allowed(self) -> str:
        return self.rule or f"an array of strings of 1..{self.item.max_chars} characters"

    def check(self, value: object, path: Path, where: str, program: Entry) -> Iterator[Problem]:
        if not isinstance(value, tuple | list):
            problem = f"{type_name(value)}, not an array"
            yield Problem(path, where, self.name, value, problem, self.allowed)
            return
        if len(value) < self.least or (self.most is not None and len(value) > self.most):
            problem = "too few" if len(value) < self.least else "too many"
            yield Problem(path, where, self.name, value, problem, self.allowed)
            if problem == "too many":
                return  # absurd sizes are not checked one by one
        yield from self._items(value, path, where)

    def _items(self, items: Sequence[object], path: Path, where: str) -> Iterator[Problem]:
        seen: set[str] = set()
        for j, item in enumerate(items):
            problem = self.item.problem(item)
            if problem is None and self.unique and isinstance(item, str):
                problem = "listed twice" if item in seen else None
                seen.add(item)
            if problem is not None:
                yield Problem((*path, j), where, self.name, item, problem, self.allowed)


@dataclass(frozen=True)
class SourceRefs(Spec):
    """An evidence marker's sources: 0..16 keys of the program's keyed sources."""

    name: str

    @property
    def allowed(self) -> str:
        return f"0..{MAX_MARKER_SOURCES} keys of this program's sources"

    def check(self, value: object, path: Path, where: str, program: Entry) -> Iterator[Problem]:
        keys = _source_keys(program)
        rule = f"0..{MAX_MARKER_SOURCES} keys of this program's sources ({_known(keys)})"
        if not isinstance(value, tuple | list):
            yield Problem(path, where, self.name, value, f"{type_name(value)}, not an array", rule)
            return
        if len(value) > MAX_MARKER_SOURCES:
            yield Problem(path, where, self.name, value, "too many", rule)
            return
        for j, ref in enumerate(value):
            if not isinstance(ref, str):
                problem: str | None = f"{type_name(ref)}, not a string"
            else:
                problem = None if ref.casefold() in keys else "not a source key"
            if problem is not None:
                yield Problem((*path, j), where, self.name, ref, problem, rule)


@dataclass(frozen=True)
class Flag(Spec):
    """A boolean (``true`` or ``false``)."""

    name: str

    @property
    def allowed(self) -> str:
        return "true or false"

    def problem(self, value: object) -> str | None:
        return None if isinstance(value, bool) else f"{type_name(value)}, not a boolean"


@dataclass(frozen=True)
class Points(Spec):
    """An array of ``least``..``most`` sites, each an acupoint of the catalogue
    (``waveforms/acupoints.toml``) written with a side that fits it, no site twice: for
    points that no channel drives (placement does not look at them, so this is their check)."""

    name: str
    least: int
    most: int

    @property
    def allowed(self) -> str:
        return f"{self.least}..{self.most} catalogued sites, each {SITE_RULE}"

    def check(self, value: object, path: Path, where: str, program: Entry) -> Iterator[Problem]:
        if not isinstance(value, tuple | list):
            problem = f"{type_name(value)}, not an array"
            yield Problem(path, where, self.name, value, problem, self.allowed)
            return
        if not self.least <= len(value) <= self.most:
            problem = "too few" if len(value) < self.least else "too many"
            yield Problem(path, where, self.name, value, problem, self.allowed)
            return
        seen: set[str] = set()
        for j, site in enumerate(value):
            found = _site_problem(site, seen)
            if found is not None:
                yield Problem((*path, j), where, self.name, site, *found)
            if isinstance(site, str):
                seen.add(site)


def _site_problem(site: object, seen: set[str]) -> tuple[str, str] | None:
    """(problem, allowed) for one site that must be catalogued, else None."""
    if not isinstance(site, str):
        return f"{type_name(site)}, not a string", SITE_RULE
    if len(site) > MAX_SITE_CHARS or not SITE_PATTERN.fullmatch(site):
        return "not a site code", SITE_RULE
    if site in seen:
        return "listed twice", "each site once"
    code, side = site[:-2], site[-1]
    catalogue = load_catalogue()
    point = catalogue.get(code)
    if point is None:
        codes = ", ".join(sorted(catalogue))
        return "not in the acupoint catalogue", f"a catalogued acupoint and a side ({codes})"
    if point.laterality == "midline" and side != "M":
        return "a midline point with a side", f'"{code}-M"'
    if point.laterality == "bilateral" and side == "M":
        return "a point of both sides written as midline", f'"{code}-L" or "{code}-R"'
    return None


def _check_fields(
    obj: object, specs: Iterable[Spec], path: Path, where: str, program: Entry
) -> Iterator[Problem]:
    for spec in specs:
        value = getattr(obj, spec.name, MISSING)
        yield from spec.check(value, (*path, spec.name), where, program)


# --------------------------------------------------------------------------- the tables

_TEXT_ITEM = Text("text", MAX_TEXT_CHARS, required=True)
_SITES_RULE = f"1..{MAX_SITES_PER_CHANNEL} sites, each {SITE_RULE}"

PROGRAM_FIELDS: tuple[Spec, ...] = (
    Text(
        "name",
        MAX_NAME_CHARS,
        required=True,
        pattern=PROGRAM_NAME_PATTERN,
        mismatch="not a slug",
        rule=PROGRAM_NAME_RULE,
    ),
    Text("title", MAX_TITLE_CHARS, required=True),
    Text("indication", MAX_TEXT_CHARS, required=True),
    Text("description", MAX_TEXT_CHARS),
    Choice("electrode", ELECTRODES, "not an electrode kind"),
    Number("electrode_area_cm2", ELECTRODE_AREA_CM2, optional=True),
    Array("cautions", _TEXT_ITEM),
    Array("sources", _TEXT_ITEM),
    Choice("evidence", (*EVIDENCE_LEVELS, "unstated"), "not an evidence level", EVIDENCE_LEVELS),
    Choice("onset_rule", ("", *ONSET_RULES), "not an onset rule"),
    Choice("stage", ("", *STAGES), "not a stage"),
    Points("manual_points", 0, MAX_MANUAL_POINTS),
    Choice("sourced_for", ("", *SOURCED_FOR), "not an electrode kind"),
    Flag("needle_variant"),
)
CHANNEL_NAME = Text(
    "name",
    8,
    required=True,
    pattern=CHANNEL_NAME_PATTERN,
    mismatch="not a channel name",
    rule=CHANNEL_NAME_RULE,
)
CHANNEL_FIELDS: tuple[Spec, ...] = (
    CHANNEL_NAME,
    Array(
        "sites",
        Text(
            "site",
            MAX_SITE_CHARS,
            pattern=SITE_PATTERN,
            mismatch="not a site code",
            too_long="not a site code",
        ),
        least=1,
        most=MAX_SITES_PER_CHANNEL,
        unique=True,
        rule=_SITES_RULE,
    ),
    Number("max_level_fraction", MAX_LEVEL_FRACTION),
    Number("max_current_ma", MAX_CURRENT_MA, optional=True),
)
#: A manual-acupuncture entry (``kind = "manual"`` in a file): no channels, no timeline.
MANUAL_FIELDS: tuple[Spec, ...] = (
    PROGRAM_FIELDS[0],
    PROGRAM_FIELDS[1],
    PROGRAM_FIELDS[2],
    PROGRAM_FIELDS[3],
    Points("points", 1, MAX_ENTRY_POINTS),
    Text("why_no_ea", MAX_WHY_CHARS, required=True),
    Array("cautions", _TEXT_ITEM),
    Array("sources", _TEXT_ITEM),
)
EVIDENCE_ABOUT_SPEC = Choice("about", EVIDENCE_ABOUT, "not a parameter name")
MARKER_FIELDS: tuple[Spec, ...] = (
    EVIDENCE_ABOUT_SPEC,
    Choice("status", EVIDENCE_STATUSES, "not an evidence status"),
    SourceRefs("sources"),
    Text("note", MAX_TEXT_CHARS),
)

_DURATION = Number("duration_s", SEGMENT_DURATION_S)
_PULSE_WIDTH = Number("pulse_width_us", PULSE_WIDTH_US)
_LABEL = Text("label", MAX_LABEL_CHARS)
#: Each kind's fields in the documented order (a file's keys are these, "kind" and "label").
SEGMENT_FIELDS: dict[type[Segment], tuple[Spec, ...]] = {
    Continuous: (
        _DURATION,
        Number("frequency_hz", FREQUENCY_HZ),
        _PULSE_WIDTH,
        Number("intensity", INTENSITY),
        _LABEL,
    ),
    DenseDisperse: (
        _DURATION,
        Number("low_hz", FREQUENCY_HZ),
        Number("high_hz", FREQUENCY_HZ),
        Number("low_s", LOW_HIGH_S),
        Number("high_s", LOW_HIGH_S),
        _PULSE_WIDTH,
        Number("intensity", INTENSITY),
        _LABEL,
    ),
    Intermittent: (
        _DURATION,
        Number("frequency_hz", FREQUENCY_HZ),
        Number("on_s", ON_OFF_S),
        Number("off_s", ON_OFF_S),
        _PULSE_WIDTH,
        Number("intensity", INTENSITY),
        _LABEL,
    ),
    Ramp: (
        _DURATION,
        Number("frequency_hz", FREQUENCY_HZ),
        _PULSE_WIDTH,
        Number("intensity_from", INTENSITY),
        Number("intensity_to", INTENSITY),
        _LABEL,
    ),
}
#: A segment kind's name (the file's ``kind``) and its class.
SEGMENT_KINDS: dict[str, type[Segment]] = {
    "continuous": Continuous,
    "dense_disperse": DenseDisperse,
    "intermittent": Intermittent,
    "ramp": Ramp,
}
SEGMENT_KINDS_BY_CLASS: dict[type[Segment], str] = {c: k for k, c in SEGMENT_KINDS.items()}
KINDS_TEXT = ", ".join(f'"{k}"' for k in SEGMENT_KINDS)


def allowed_of(specs: Iterable[Spec], name: str) -> str:
    """What the field ``name`` of a table of specs allows."""
    return next(s.allowed for s in specs if s.name == name)


def channel_where(index: int, name: object) -> str:
    """``channel A`` once the channel's name is a valid one, else ``channel 2``."""
    if CHANNEL_NAME.problem(name) is None:
        return f"channel {name}"
    return f"channel {index + 1}"


def marker_where(index: int, about: object) -> str:
    """``evidence 2 (points)`` once the marker's ``about`` is valid, else ``evidence 2``."""
    if EVIDENCE_ABOUT_SPEC.problem(about) is None:
        return f"evidence {index + 1} ({about})"
    return f"evidence {index + 1}"


# --------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class _Count:
    """``least``..``most`` items of one collection, counted in ``noun``."""

    field: str
    noun: str
    least: int
    most: int
    allowed: str

    def problems(self, items: object, path: Path, where: str) -> list[Problem]:
        if not isinstance(items, tuple | list):
            problem = f"{type_name(items)}, not an array"
            return [Problem(path, where, self.field, items, problem, self.allowed)]
        n = len(items)
        if self.least <= n <= self.most:
            return []
        counted = Raw(f"{n} {self.noun}")
        if n < self.least:
            return [Problem(path, where, self.field, counted, "too few", self.allowed)]
        locate = (*path, self.most)
        return [Problem(path, where, self.field, counted, "too many", self.allowed, locate=locate)]

    def members(self, items: object) -> Sequence[object]:
        """The items to check one by one: none if not an array or too many."""
        if isinstance(items, tuple | list) and len(items) <= self.most:
            return items
        return ()


_CHANNELS = _Count("channels", "channels", 1, MAX_CHANNELS, f"1..{MAX_CHANNELS} channels")
_SEGMENTS = _Count(
    "segments",
    "segments",
    1,
    MAX_SEGMENTS_PER_CHANNEL,
    f"1..{MAX_SEGMENTS_PER_CHANNEL} segments per channel",
)
_MARKERS = _Count(
    "evidence_markers",
    "markers",
    0,
    MAX_EVIDENCE_MARKERS,
    f"0..{MAX_EVIDENCE_MARKERS} evidence markers ([[evidence]] tables in a file)",
)


def _not_a(what: str, value: object, path: Path, where: str, field: str, allowed: str) -> Problem:
    return Problem(path, where, field, value, f"{type_name(value)}, not {what}", allowed)


# --------------------------------------------------------------------------- segments


def segment_problems(segments: object, path: Path, owner: str, program: Program) -> list[Problem]:
    """Every problem of one timeline (``owner`` is ``channel A`` or ``program``): its count,
    each segment, and its total length."""
    problems = _SEGMENTS.problems(segments, path, owner)
    members = _SEGMENTS.members(segments)
    for k, segment in enumerate(members):
        problems.extend(_segment(segment, (*path, k), owner, k + 1, program))
    problems.extend(_total(members, path, owner))
    return problems


def _segment(
    segment: object, path: Path, owner: str, number: int, program: Program
) -> Iterator[Problem]:
    cls = next((c for c in SEGMENT_FIELDS if isinstance(segment, c)), None)
    if cls is None:
        allowed = "a Continuous, DenseDisperse, Intermittent or Ramp segment"
        yield _not_a("a segment", segment, path, owner, f"segment {number}", allowed)
        return
    where = f"{owner} segment {number} ({SEGMENT_KINDS_BY_CLASS[cls]})"
    yield from _check_fields(segment, SEGMENT_FIELDS[cls], path, where, program)
    for rule in SEGMENT_RULES.get(cls, ()):
        yield from rule(segment, path, where)


def _low_below_high(segment: object, path: Path, where: str) -> Iterator[Problem]:
    """dense_disperse: the sparse rate (``low_hz``) is below the dense one (``high_hz``)."""
    low = _valid(getattr(segment, "low_hz", None), FREQUENCY_HZ)
    high = _valid(getattr(segment, "high_hz", None), FREQUENCY_HZ)
    # (a rate out of range is its own problem)
    if low is not None and high is not None and not low < high:
        yield Problem(
            (*path, "low_hz"),
            where,
            "low_hz",
            low,
            "not below high_hz = {other}",
            DENSE_DISPERSE_RULE,
            other=(*path, "high_hz"),
            other_value=high,
        )


def _total(segments: Sequence[object], path: Path, owner: str) -> Iterator[Problem]:
    """A timeline lasts at most an hour; pointed at the segment that passes the limit."""
    durations = [_valid(getattr(s, "duration_s", None), SEGMENT_DURATION_S) for s in segments]
    if None in durations:
        return  # a bad duration is its own problem
    limit_us = MAX_PROGRAM_DURATION_S * US_PER_S
    running = list(itertools.accumulate(seconds_to_us(d) for d in durations if d is not None))
    passing = next((k for k, total_us in enumerate(running) if total_us > limit_us), None)
    if passing is None:
        return
    yield Problem(
        (*path[:-1], "duration_s"),
        owner,
        "total duration_s",
        Raw(value_text(running[-1] / US_PER_S)),
        f"too long (passes the limit at segment {passing + 1})",
        f"at most {number_text(MAX_PROGRAM_DURATION_S)} s per channel and program",
        locate=(*path, passing, "duration_s"),
    )


SegmentRule = Callable[[object, Path, str], Iterable[Problem]]
#: The rules that relate fields of one segment, per kind.
SEGMENT_RULES: dict[type[Segment], tuple[SegmentRule, ...]] = {
    DenseDisperse: (_low_below_high,),
}


# --------------------------------------------------------------------------- program rules


def _program_fields(program: Program) -> Iterator[Problem]:
    yield from _check_fields(program, PROGRAM_FIELDS, (), "program", program)


def _source_keys(program: Entry) -> dict[str, str]:
    """The program's source keys, case-folded: ``{"sung2021": "Sung2021"}``."""
    sources = program.sources if _is_array(program.sources) else ()
    keys = (source_key(s) for s in sources if isinstance(s, str))
    return {k.casefold(): k for k in keys if k is not None}


def _known(keys: dict[str, str]) -> str:
    return ", ".join(keys.values()) or "none (give sources as [key] citation)"


def _keyed_sources(program: Entry) -> Iterator[Problem]:
    """A source that starts with ``[`` has a well-formed key; no key twice."""
    sources = program.sources if _is_array(program.sources) else ()
    seen: set[str] = set()
    for j, text in enumerate(sources):
        key = source_key(text) if isinstance(text, str) else None
        if key is None and isinstance(text, str) and text.startswith("["):
            yield Problem(
                ("sources", j), "program", "sources", text, "a malformed key", SOURCE_KEY_RULE
            )
        elif key is not None and key.casefold() in seen:
            yield Problem(
                ("sources", j),
                "program",
                "sources",
                Raw(value_text(key)),
                "a duplicate source key",
                SOURCE_KEY_RULE,
            )
        if key is not None:
            seen.add(key.casefold())


def _stage_needs_onset_rule(program: Program) -> Iterator[Problem]:
    if program.stage in STAGES and program.onset_rule == "":
        allowed = 'an onset_rule (e.g. "bells-palsy") whenever a stage is given'
        yield Problem(
            ("stage",), "program", "stage", program.stage, "set without an onset_rule", allowed
        )


def _channels(program: Program) -> Iterator[Problem]:
    yield from _CHANNELS.problems(program.channels, ("channels",), "program")
    for i, channel in enumerate(_CHANNELS.members(program.channels)):
        path: Path = ("channels", i)
        if not isinstance(channel, Channel):
            yield _not_a(
                "a channel", channel, path, "program", f"channel {i + 1}", "a waveforms.Channel"
            )
            continue
        yield from _check_fields(channel, CHANNEL_FIELDS[:1], path, f"channel {i + 1}", program)
        where = channel_where(i, channel.name)
        yield from _check_fields(channel, CHANNEL_FIELDS[1:], path, where, program)
        yield from segment_problems(channel.segments, (*path, "segments"), where, program)


def _first_seen(keys: Iterable[tuple[int, str | None]]) -> Iterator[tuple[int, int]]:
    """``(index, index of the first with the same key)`` for every repeated key."""
    first: dict[str, int] = {}
    for index, key in keys:
        if key is None:
            continue
        if key in first:
            yield index, first[key]
        else:
            first[key] = index


def _channel_names(program: Program) -> Iterator[Problem]:
    """Channel names are unique, case-insensitive."""
    channels = _CHANNELS.members(program.channels)
    names = [getattr(c, "name", None) if isinstance(c, Channel) else None for c in channels]
    valid = [
        n.casefold() if isinstance(n, str) and not CHANNEL_NAME.problem(n) else None for n in names
    ]
    for i, first in _first_seen(enumerate(valid)):
        yield Problem(
            ("channels", i, "name"),
            f"channel {i + 1}",
            "name",
            names[i],
            f"a duplicate of channel {names[first]} ({{other}})",
            "a unique name per channel (case-insensitive)",
            other=("channels", first, "name"),
        )


def _markers(program: Entry) -> Iterator[Problem]:
    markers = program.evidence_markers
    yield from _MARKERS.problems(markers, ("evidence_markers",), "program")
    for i, marker in enumerate(_MARKERS.members(markers)):
        path: Path = ("evidence_markers", i)
        if not isinstance(marker, EvidenceMarker):
            yield _not_a(
                "an evidence marker",
                marker,
                path,
                "program",
                f"evidence marker {i + 1}",
                "a waveforms.program.EvidenceMarker",
            )
            continue
        where = marker_where(i, marker.about)
        yield from _check_fields(marker, MARKER_FIELDS, path, where, program)
        if marker.status == "sourced" and _is_array(marker.sources) and not marker.sources:
            keys = _known(_source_keys(program))
            yield Problem(
                (*path, "sources"),
                where,
                "sources",
                marker.sources,
                'required for status = "sourced"',
                f"1..{MAX_MARKER_SOURCES} keys of this program's sources ({keys})",
            )


def _marker_abouts(program: Entry) -> Iterator[Problem]:
    """One marker per parameter."""
    markers = _MARKERS.members(program.evidence_markers)
    abouts = [m.about if isinstance(m, EvidenceMarker) else None for m in markers]
    valid = [a if EVIDENCE_ABOUT_SPEC.problem(a) is None else None for a in abouts]
    for i, first in _first_seen(enumerate(valid)):
        yield Problem(
            ("evidence_markers", i, "about"),
            marker_where(i, abouts[i]),
            "about",
            abouts[i],
            "a duplicate of the marker on {other}",
            "one marker per parameter",
            other=("evidence_markers", first, "about"),
        )


def _derive(markers: Sequence[object]) -> tuple[EvidenceLevel, str]:
    """The evidence level the markers support, and why not "sourced" (empty if it is)."""
    if not markers:
        return "unstated", "there are no markers"
    given = [getattr(m, "about", None) for m in markers]
    statuses = [getattr(m, "status", None) for m in markers]
    defaults = [str(a) for a, s in zip(given, statuses, strict=True) if s == "practice-default"]
    missing = [a for a in CORE_EVIDENCE if a not in given]
    if not defaults and not missing:
        return "sourced", ""
    parts = []
    if defaults:
        parts.append(
            ", ".join(defaults) + (" is" if len(defaults) == 1 else " are") + " a practice default"
        )
    if missing:
        parts.append(", ".join(missing) + (" has" if len(missing) == 1 else " have") + " no marker")
    return "practice-default", " and ".join(parts)


def derive_evidence(markers: Sequence[EvidenceMarker]) -> EvidenceLevel:
    """The evidence level a set of markers supports: "sourced" only when every parameter of
    ``CORE_EVIDENCE`` has a sourced marker and no marker is a practice default; "unstated"
    when there are no markers; otherwise "practice-default"."""
    return _derive(markers)[0]


def _evidence_level(program: Program) -> Iterator[Problem]:
    """A program is "sourced" only where its markers support it, "unstated" only without
    markers."""
    markers = _MARKERS.members(program.evidence_markers)
    if program.evidence == "sourced":
        derived, why_not = _derive(markers)
        if derived != "sourced":
            problem = f"not supported by the [[evidence]] markers ({why_not})"
            yield Problem(
                ("evidence",), "program", "evidence", program.evidence, problem, SOURCED_RULE
            )
    elif program.evidence == "unstated" and markers:
        yield Problem(
            ("evidence",),
            "program",
            "evidence",
            program.evidence,
            "unstated despite markers",
            quoted(EVIDENCE_LEVELS),
        )


def _manual_points_off_channels(program: Program) -> Iterator[Problem]:
    """A manual point carries no current: it is not also a channel's site."""
    points = program.manual_points if _is_array(program.manual_points) else ()
    channels = [c for c in _CHANNELS.members(program.channels) if isinstance(c, Channel)]
    for j, site in enumerate(points):
        owner = next((c for c in channels if _is_array(c.sites) and site in c.sites), None)
        if owner is not None:
            yield Problem(
                ("manual_points", j),
                "program",
                "manual_points",
                site,
                f"also a site of channel {owner.name}",
                "sites that no channel drives (manual points carry no current)",
            )


def _electrode_evidence(program: Program) -> Iterator[Problem]:
    """A program whose sources used another electrode says so: an ``electrode`` marker that
    is a practice default; an ``electrode`` marker is sourced only for the sources' electrode."""
    marker = next(
        (
            (i, m)
            for i, m in enumerate(_MARKERS.members(program.evidence_markers))
            if isinstance(m, EvidenceMarker) and m.about == "electrode"
        ),
        None,
    )
    given, electrode = program.sourced_for, program.electrode
    if given not in SOURCED_FOR or electrode not in ELECTRODES:
        given = ""  # a bad value is its own problem
    if given and given != electrode and (marker is None or marker[1].status != "practice-default"):
        yield Problem(
            ("sourced_for",),
            "program",
            "sourced_for",
            given,
            f'not the program\'s electrode ("{electrode}") and no practice-default marker '
            "about the electrode says so",
            'an [[evidence]] marker with about = "electrode" and status = "practice-default" '
            "whenever sourced_for differs from electrode",
        )
    if marker is not None and marker[1].status == "sourced" and given != electrode:
        i, m = marker
        shown = f'sourced_for = "{given}"' if given else "no sourced_for"
        yield Problem(
            ("evidence_markers", i, "status"),
            marker_where(i, m.about),
            "status",
            m.status,
            f'"sourced" for electrode "{electrode}" with {shown}',
            '"sourced" only when sourced_for equals electrode; else "practice-default"',
        )


def _needle_variant(program: Program) -> Iterator[Problem]:
    """Only a pad program whose sources used needles offers a needle variant."""
    if program.needle_variant is True and not (
        program.electrode == "pad" and program.sourced_for == "needle"
    ):
        yield Problem(
            ("needle_variant",),
            "program",
            "needle_variant",
            True,
            "set on a program that is not a pad program sourced for needles",
            'needle_variant = true only with electrode = "pad" and sourced_for = "needle"',
        )


ProgramRule = Callable[[Program], Iterable[Problem]]
#: Every rule of a program, in the order its problems are listed.
PROGRAM_RULES: tuple[ProgramRule, ...] = (
    _program_fields,
    _keyed_sources,
    _stage_needs_onset_rule,
    _channels,
    _channel_names,
    _markers,
    _marker_abouts,
    _evidence_level,
    _manual_points_off_channels,
    _electrode_evidence,
    _needle_variant,
)


def _manual_fields(entry: ManualEntry) -> Iterator[Problem]:
    yield from _check_fields(entry, MANUAL_FIELDS, (), "program", entry)


ManualRule = Callable[[ManualEntry], Iterable[Problem]]
#: Every rule of a manual-acupuncture entry.
MANUAL_RULES: tuple[ManualRule, ...] = (
    _manual_fields,
    _keyed_sources,
    _markers,
    _marker_abouts,
)


# --------------------------------------------------------------------------- entry points


def check_program(program: object) -> tuple[Problem, ...]:
    """Every problem of a program against every rule of the program format (none: valid).

    A manual-acupuncture entry is never a valid program: it carries no current, so the one
    problem names it and why (``ManualEntry.why_no_ea``)."""
    if isinstance(program, ManualEntry):
        why = " ".join(str(program.why_no_ea).split())
        return (
            Problem(
                ("kind",),
                "program",
                "kind",
                "manual",
                "a manual-acupuncture entry that carries no current and cannot be run: " + why,
                "an EA program with channels",
            ),
        )
    if not isinstance(program, Program):
        return (_not_a("a Program", program, (), "", "program", "a waveforms.Program"),)
    return tuple(itertools.chain.from_iterable(rule(program) for rule in PROGRAM_RULES))


def check_entry(entry: object) -> tuple[Problem, ...]:
    """Every problem of a library entry: a program (``check_program``) or a manual-acupuncture
    entry (``MANUAL_RULES``)."""
    if isinstance(entry, ManualEntry):
        return tuple(itertools.chain.from_iterable(rule(entry) for rule in MANUAL_RULES))
    return check_program(entry)


def validate_entry(entry: object) -> None:
    """``validate_program`` for any library entry: a manual entry is checked against its own
    rules (and never refused for being manual)."""
    problems = check_entry(entry)
    if problems:
        raise InvalidProgramError(problems[0].message(source_of(entry)), problems)


def source_of(program: object) -> str:
    """How messages name a program built in code: its source path, else its name."""
    for name in ("source_path", "name"):
        value = getattr(program, name, None)
        if isinstance(value, str) and value:
            return value
    return "<program>"


def validate_program(program: object) -> None:
    """Check a program however it was made; raise ``InvalidProgramError`` (a
    ``ProgramError``) whose one-line message names the first problem: the program, the
    path of the value, where it is, the value and what is allowed; ``problems`` has all."""
    problems = check_program(program)
    if problems:
        raise InvalidProgramError(problems[0].message(source_of(program)), problems)


def number_fields(specs: Iterable[Spec]) -> tuple[str, ...]:
    """The names of the number fields of a table of specs."""
    return tuple(s.name for s in specs if isinstance(s, Number))


def required_fields(cls: type[Segment]) -> tuple[str, ...]:
    """The fields of a dataclass that have no default (a file must give them)."""
    return tuple(
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
