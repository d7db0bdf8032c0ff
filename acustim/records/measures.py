"""Outcome measures, adverse-event severities, the indications a course can have, and the
STRICTA items a practitioner enters: the tables and the checks of what may be stored.

Each check turns a value into what the store keeps, or raises ``RecordsError`` in one line
naming the field and the allowed range. This module never touches SQLite or a file; the
schema's CHECKs (``schema.py``, version 3) hold the same bounds in the file.

Where a bound comes from:

- VAS pain: 0 (no pain) to 10 (worst pain imaginable), the 10 cm line (or 0-10 numeric
  scale) as pain trials report it.
- Maximal mouth opening (interincisal distance, mm): 0..80 is **our policy**, a bound for
  typing errors only: it is above the largest normal adult opening measured in a sample of
  894 adults (39-70 mm in men; Khare et al. 2012, https://pmc.ncbi.nlm.nih.gov/articles/PMC3428458).
- House-Brackmann facial nerve grade I (normal) to VI (total paralysis), House and Brackmann
  1985.
- Sunnybrook facial grading composite score 0..100 (100 normal), Ross et al. 1996.
- Headache days per month: 0..31 (a month has at most 31 days).
- Adverse-event severity: mild / moderate / severe / serious is **our policy**: the three
  severity words trials use, plus "serious" for an event that is serious in the regulatory
  sense (death, threat to life, hospital admission, lasting harm), which is about outcome,
  not intensity, and must always be reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from acustim.records.errors import RecordsError

__all__ = [
    "CONDITIONS",
    "MEASURES",
    "SEVERITIES",
    "STRICTA_ITEMS",
    "TIMINGS",
    "Condition",
    "Measure",
    "StrictaField",
    "check_course_text",
    "check_measure",
    "check_severity",
    "check_stricta",
    "check_timing",
    "condition_of",
    "measure_text",
    "measures_for",
]


@dataclass(frozen=True)
class Measure:
    """One outcome measure: its key (``outcomes.measure``), the CLI option, the bounds."""

    key: str
    option: str
    label: str
    unit: str
    lo: float
    hi: float
    whole: bool
    allowed: str
    source: str


MEASURES: Final[dict[str, Measure]] = {
    m.key: m
    for m in (
        Measure(
            "vas",
            "--vas",
            "VAS pain",
            "",
            0,
            10,
            False,
            "0..10 (0 no pain, 10 worst pain imaginable)",
            "visual analogue scale, 0-10",
        ),
        Measure(
            "mouth_mm",
            "--mouth-mm",
            "maximal mouth opening",
            "mm",
            0,
            80,
            False,
            "0..80 mm (interincisal distance; 80 is our policy, above the largest normal"
            " adult opening)",
            "interincisal distance; bound: our policy (Khare 2012: 39-70 mm in adult men)",
        ),
        Measure(
            "house_brackmann",
            "--house-brackmann",
            "House-Brackmann grade",
            "",
            1,
            6,
            True,
            "I..VI (or 1..6; I normal, VI total paralysis)",
            "House and Brackmann 1985",
        ),
        Measure(
            "sunnybrook",
            "--sunnybrook",
            "Sunnybrook composite score",
            "",
            0,
            100,
            True,
            "0..100 (whole number; 100 normal)",
            "Sunnybrook facial grading system, Ross 1996",
        ),
        Measure(
            "headache_days",
            "--headache-days",
            "headache days per month",
            "days",
            0,
            31,
            True,
            "0..31 (whole days in the last month)",
            "days with headache in the last month",
        ),
    )
}

TIMINGS: Final = ("before", "after")
#: adverse-event severity, mildest first (our policy; see the module docstring)
SEVERITIES: Final = ("mild", "moderate", "severe", "serious")

_ROMAN: Final = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
_ROMAN_OF: Final = {v: k for k, v in _ROMAN.items()}


@dataclass(frozen=True)
class Condition:
    """An indication of the outcome table and the measures that apply to it."""

    key: str
    label: str
    measures: tuple[str, ...]


CONDITIONS: Final[dict[str, Condition]] = {
    c.key: c
    for c in (
        Condition("tmd", "temporomandibular disorder (TMJ and jaw pain)", ("vas", "mouth_mm")),
        Condition("facial-muscle-tension", "facial muscle tension (masseter)", ("vas", "mouth_mm")),
        Condition(
            "bells-palsy",
            "Bell's palsy (peripheral facial paralysis)",
            ("vas", "house_brackmann", "sunnybrook"),
        ),
        Condition("tension-headache", "tension-type headache", ("vas", "headache_days")),
        Condition("migraine", "migraine", ("vas", "headache_days")),
        Condition("trigeminal-pain", "trigeminal neuralgia or facial nerve pain", ("vas",)),
        Condition("general-pain", "pain away from the face", ("vas",)),
    )
}
#: unknown indications (a program added later, free text): VAS only
UNKNOWN_MEASURES: Final = ("vas",)

#: the built-in programs' names (``waveforms/library``) to the condition they treat; a program
#: file has no condition field, so its name decides, and an unknown one is "VAS only"
_PROGRAM_CONDITIONS: Final = (
    ("tmj-", "tmd"),
    ("facial-muscle-tension", "facial-muscle-tension"),
    ("combined-release", "facial-muscle-tension"),
    ("bells-palsy", "bells-palsy"),
    ("tension-headache", "tension-headache"),
    ("migraine", "migraine"),
    ("trigeminal-", "trigeminal-pain"),
    ("han-2-100", "general-pain"),
)


def condition_of(indication: str) -> Condition | None:
    """The outcome table's condition for a course indication or a program name, or None
    (unknown: VAS only)."""
    key = indication.strip().lower()
    if key in CONDITIONS:
        return CONDITIONS[key]
    for prefix, condition in _PROGRAM_CONDITIONS:
        if key.startswith(prefix):
            return CONDITIONS[condition]
    return None


def measures_for(indication: str) -> tuple[Measure, ...]:
    """The measures that apply to an indication (or program name); unknown: VAS only."""
    condition = condition_of(indication)
    keys = condition.measures if condition is not None else UNKNOWN_MEASURES
    return tuple(MEASURES[k] for k in keys)


def _number(text: object) -> float | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    if isinstance(text, str) and re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,3})?", text.strip()):
        return float(text)
    return None


def check_measure(key: str, value: object) -> float:
    """``value`` (a number, or text as typed) as the store keeps it, or RecordsError naming
    the measure's option and its allowed range."""
    measure = MEASURES.get(key)
    if measure is None:
        raise RecordsError(f"outcome measure {key!r} is unknown; allowed {', '.join(MEASURES)}")
    number: float | None
    if key == "house_brackmann" and isinstance(value, str) and value.strip().upper() in _ROMAN:
        number = float(_ROMAN[value.strip().upper()])
    else:
        number = _number(value)
    shown = repr(value) if isinstance(value, str) else str(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    if (
        number is None
        or not math.isfinite(number)
        or not measure.lo <= number <= measure.hi
        or (measure.whole and number != int(number))
    ):
        raise RecordsError(
            f"{measure.option} {shown}: {measure.label} is out of range; allowed {measure.allowed}"
        )
    return number


def measure_text(key: str, value: float) -> str:
    """A stored value as a reader sees it: House-Brackmann in Roman numerals, whole numbers
    without a point, the unit after."""
    measure = MEASURES.get(key)
    if key == "house_brackmann" and value in _ROMAN_OF:
        return _ROMAN_OF[int(value)]
    text = f"{int(value)}" if value == int(value) else f"{value:g}"
    return f"{text} {measure.unit}" if measure is not None and measure.unit else text


def check_timing(value: object) -> str:
    if value not in TIMINGS:
        raise RecordsError(f"outcome timing {value!r} is unknown; allowed before or after")
    return str(value)


def check_severity(value: object) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in SEVERITIES:
        raise RecordsError(
            f"--severity {value!r}: adverse-event severity is not one of ours; allowed"
            f" {', '.join(SEVERITIES)} (serious: death, threat to life, hospital admission or"
            " lasting harm)"
        )
    return str(text)


#: the longest free text a course, an adverse event or a STRICTA item takes
TEXT_MAX: Final = 500


def check_course_text(value: object, option: str, *, required: bool, limit: int = TEXT_MAX) -> str:
    """Free text for the record: at most ``limit`` characters, no control characters (a tab
    or new line becomes a space); ``required``: at least one character that is not blank."""
    if not isinstance(value, str):
        raise RecordsError(f"{option} must be text, got {type(value).__name__}")
    text = " ".join(re.split(r"[\t\r\n]+", value)).strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise RecordsError(f"{option}: control characters are not allowed; allowed plain text")
    if required and not text:
        raise RecordsError(f"{option} is empty; allowed 1..{limit} characters of text")
    if len(text) > limit:
        raise RecordsError(
            f"{option} is {len(text)} characters long; allowed at most {limit} characters"
        )
    return text


@dataclass(frozen=True)
class StrictaField:
    """A STRICTA item the practitioner enters: its key (``meta["stricta"]``), the item number
    and what it asks (``../shared/reference/safety.md`` section 6)."""

    key: str
    item: str
    label: str
    count: bool = False  # a whole number (needle insertions), else text


STRICTA_ITEMS: Final[dict[str, StrictaField]] = {
    f.key: f
    for f in (
        StrictaField("style", "1a", "style of acupuncture (TCM, Western medical...)"),
        StrictaField("rationale", "1b", "reasoning for treatment, with references"),
        StrictaField("individualisation", "1c", "extent to which treatment was varied"),
        StrictaField("needle_count", "2a", "needle insertions per session", count=True),
        StrictaField("manual_points", "2b", "points needled by hand, not on a channel"),
        StrictaField("depth", "2c", "depth of insertion (units or tissue level)"),
        StrictaField("response", "2d", "response sought (de qi, muscle twitch)"),
        StrictaField("retention", "2f", "needle retention time"),
        StrictaField("needle_type", "2g", "needle type (length, maker, material)"),
        StrictaField("needle_gauge", "2g", "needle diameter (gauge or mm)"),
        StrictaField("regimen", "3b", "frequency and duration of sessions"),
        StrictaField("co_interventions", "4a", "other interventions (moxa, exercise advice...)"),
        StrictaField("setting", "4b", "setting and information given to the patient"),
        StrictaField("practitioner", "5", "practitioner background (qualification, years)"),
        StrictaField("control", "6a-b", "control or comparator"),
    )
}
#: needle insertions per session: 0..100 is our policy (a bound for typing errors)
NEEDLE_COUNT_MAX: Final = 100


def check_stricta(key: str, value: object) -> str:
    """One STRICTA item as the store keeps it ('' clears it), or RecordsError in one line."""
    field = STRICTA_ITEMS.get(key)
    if field is None:
        raise RecordsError(f"STRICTA item {key!r} is unknown; allowed {', '.join(STRICTA_ITEMS)}")
    option = f"--{key.replace('_', '-')}"
    if field.count:
        text = value.strip() if isinstance(value, str) else str(value)
        if text == "":
            return ""
        if (
            not (text.isascii() and text.isdigit() and len(text) <= 3)
            or int(text) > NEEDLE_COUNT_MAX
        ):
            raise RecordsError(
                f"{option} {value!r}: needle insertions per session is not a whole number in"
                f" range; allowed 0..{NEEDLE_COUNT_MAX} (our policy)"
            )
        return str(int(text))
    return check_course_text(value, option, required=False)
