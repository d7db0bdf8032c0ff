"""Screening before a patient's sessions: contraindication questions, and the onset rule for
Bell's palsy programs.

``SCREENING_QUESTIONS`` are yes/no questions taken from the contraindications and warnings of
``../shared/reference/safety.md`` section 5a. ``evaluate(answers, acknowledged)`` sorts the
yes answers: a contraindication blocks the session, a precaution needs the practitioner's
explicit acknowledgement, and an unanswered question keeps the session from starting. The
result is a frozen value; ``as_record()`` gives the JSON object the session record stores.

``bells_palsy_limit(days_since_onset, stage)`` says whether a Bell's palsy program may run so
many days after onset, and at what ceiling (section 4b; see ``docs/library.md``).

Pure: no I/O, no clock, no prompts; the caller asks the questions and passes the answers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from safety.errors import SafetyError
from waveforms.program import Program

__all__ = [
    "BELLS_ACUTE_MAX_LEVEL_FRACTION",
    "BELLS_ACUTE_UNTIL_DAY",
    "BELLS_CHRONIC_FROM_DAY",
    "BELLS_NO_EA_UNTIL_DAY",
    "SCREENING_QUESTIONS",
    "SESSION_REMINDERS",
    "OnsetLimit",
    "Question",
    "ScreeningError",
    "ScreeningFinding",
    "ScreeningResult",
    "bells_palsy_limit",
    "evaluate",
    "onset_limit",
    "require_clear",
]

Kind = Literal["contraindication", "precaution"]


class ScreeningError(SafetyError):
    """Screening blocks a session, or the answers given cannot be screened."""


@dataclass(frozen=True)
class Question:
    """One yes/no screening question and what a yes means."""

    key: str
    text: str
    kind: Kind
    on_yes: str
    sources: tuple[str, ...]


SCREENING_QUESTIONS: tuple[Question, ...] = (
    Question(
        "pacemaker",
        "Does the patient have a cardiac pacemaker?",
        "contraindication",
        "a cardiac demand pacemaker is a contraindication to electrical stimulation",
        ("[FDA-PMS]",),
    ),
    Question(
        "defibrillator",
        "Does the patient have an implanted or a wearable defibrillator?",
        "contraindication",
        "an implanted or wearable defibrillator is a contraindication",
        ("[CFR882]",),
    ),
    Question(
        "head_implant",
        "Is there a metallic or electronic implant in the head (cochlear implant, brain "
        "stimulator, aneurysm clip, metal plate or dental implant)?",
        "contraindication",
        "a metallic or electronic implant in the head is a contraindication to stimulation "
        "on the head, face or neck",
        ("[CFR882]",),
    ),
    Question(
        "other_implant",
        "Does the patient have any other implanted electronic device (a neurostimulator, a "
        "drug or insulin pump)?",
        "precaution",
        "no stimulation without a specialist's medical opinion: acknowledging states that "
        "such an opinion allows it",
        ("[AS2-10]",),
    ),
    Question(
        "undiagnosed_pain",
        "Is the pain to be treated undiagnosed, of unknown cause?",
        "contraindication",
        "undiagnosed pain of unknown cause is a contraindication: diagnose first",
        ("Lumiscope SW1000 manual",),
    ),
    Question(
        "skin_broken",
        "Is the skin broken, irritated, wet or not clean at any electrode site?",
        "contraindication",
        "electrodes go only on clean, dry, intact skin: choose other sites or treat another day",
        ("EMSI TENS-6000 manual", "complete-care TENS instructions"),
    ),
    Question(
        "skin_inflamed",
        "Is there swollen, infected or inflamed skin, an eruption, phlebitis or varicose "
        "veins at or near any electrode site?",
        "contraindication",
        "no electrodes over swollen, infected or inflamed skin, eruptions, phlebitis or "
        "varicose veins",
        ("[FDA-PMS]",),
    ),
    Question(
        "cancer_near_sites",
        "Is there a cancerous lesion at or near any electrode site?",
        "contraindication",
        "no stimulation over or near cancerous lesions",
        ("[FDA-PMS]",),
    ),
    Question(
        "hf_or_diathermy",
        "Is high-frequency surgical equipment connected to the patient, or a shortwave or "
        "microwave therapy unit running within about 1 m?",
        "contraindication",
        "HF surgical equipment can burn at the electrode sites and nearby shortwave or "
        "microwave therapy can make the output unstable: remove it first",
        ("[AS2-10]",),
    ),
    Question(
        "pregnancy",
        "Is the patient pregnant, or could she be?",
        "precaution",
        "the safety of stimulation in pregnancy is not established: acknowledging states that "
        "the practitioner accepts it, and no site is over the uterus",
        ("[FDA-PMS]",),
    ),
    Question(
        "heart_disease",
        "Does the patient have heart disease?",
        "precaution",
        "heart disease is a precaution: acknowledging states that the practitioner accepts it",
        ("[FDA-PMS]",),
    ),
    Question(
        "epilepsy",
        "Does the patient have epilepsy?",
        "precaution",
        "epilepsy is a precaution: acknowledging states that the practitioner accepts it",
        ("[FDA-PMS]",),
    ),
    Question(
        "bleeding_tendency",
        "Is there a bleeding tendency, or a recent injury or fracture near the sites?",
        "precaution",
        "a bleeding tendency after injury or fracture is a precaution",
        ("[FDA-PMS]",),
    ),
    Question(
        "recent_surgery",
        "Has the patient had recent surgery?",
        "precaution",
        "recent surgery is a precaution: keep the electrodes away from the wound",
        ("[FDA-PMS]",),
    ),
    Question(
        "reduced_sensation",
        "Does the skin at any electrode site lack normal sensation?",
        "precaution",
        "the patient cannot report too strong a current there: keep the level low and check "
        "the skin often",
        ("[FDA-PMS]",),
    ),
    Question(
        "monitoring_equipment",
        "Is an ECG monitor or other electronic monitoring equipment connected to the patient?",
        "precaution",
        "monitors and their alarms may not work properly during stimulation",
        ("EMSI TENS-6000 manual", "[CFR882]"),
    ),
)
_BY_KEY: dict[str, Question] = {q.key: q for q in SCREENING_QUESTIONS}

#: Shown before every session; nothing to answer.
SESSION_REMINDERS: tuple[str, ...] = (
    "Not while driving or operating machinery, in a bath or shower, or asleep "
    "([FDA-PMS]; [CFR882]).",
    "Turn the output to zero before applying or removing electrodes (Lumiscope; complete-care).",
    "Keep the stimulator out of the reach of children ([FDA-PMS]).",
)


@dataclass(frozen=True)
class ScreeningFinding:
    """A yes answer that blocks the session or needs an acknowledgement."""

    key: str
    kind: Kind
    question: str
    reason: str

    def as_record(self) -> dict[str, object]:
        return {"key": self.key, "kind": self.kind, "reason": self.reason}


@dataclass(frozen=True)
class ScreeningResult:
    """The screening of one patient for one program.

    ``blocked``: contraindications answered yes; ``needs_ack``: precautions answered yes;
    ``acknowledged``: the keys of ``needs_ack`` the practitioner acknowledged; ``unanswered``:
    questions without an answer. The session may start only when ``ok``.
    """

    answers: tuple[tuple[str, bool], ...]
    blocked: tuple[ScreeningFinding, ...]
    needs_ack: tuple[ScreeningFinding, ...]
    acknowledged: tuple[str, ...]
    unanswered: tuple[str, ...]

    @property
    def pending(self) -> tuple[ScreeningFinding, ...]:
        """Precautions still waiting for an acknowledgement."""
        return tuple(f for f in self.needs_ack if f.key not in self.acknowledged)

    @property
    def ok(self) -> bool:
        return not (self.blocked or self.pending or self.unanswered)

    def message(self) -> str:
        """One line: why the session may not start, or that it may."""
        if self.ok:
            return "screening clear"
        parts = [f"blocked by {f.key} ({f.reason})" for f in self.blocked]
        parts += [f"needs acknowledgement of {f.key} ({f.reason})" for f in self.pending]
        if self.unanswered:
            parts.append("unanswered: " + ", ".join(self.unanswered))
        return "screening does not clear this session: " + " | ".join(parts)

    def as_record(self) -> dict[str, object]:
        """JSON-compatible, for the session record."""
        return {
            "version": 1,
            "answers": dict(self.answers),
            "blocked": [f.as_record() for f in self.blocked],
            "needs_ack": [f.as_record() for f in self.needs_ack],
            "acknowledged": list(self.acknowledged),
            "unanswered": list(self.unanswered),
            "ok": self.ok,
        }


def evaluate(
    answers: Mapping[str, bool],
    acknowledged: Collection[str] = (),
    *,
    head_or_neck: bool = True,
    pregnancy_avoid_sites: Sequence[str] = (),
) -> ScreeningResult:
    """Sort the answers into what blocks the session and what needs an acknowledgement.

    ``answers`` maps question keys to True (yes) or False (no); ``acknowledged`` lists the
    precautions the practitioner acknowledged. ``head_or_neck`` (the program has a site on the
    head, face or neck) makes an implant in the head a contraindication; without such a site
    it is a precaution. ``pregnancy_avoid_sites`` (from
    ``safety.placement.sites_with_hazard(program, catalogue, "pregnancy")``) turns a yes to
    pregnancy into a block. Unknown keys and answers that are not booleans raise
    ``ScreeningError``.
    """
    for key, value in answers.items():
        if key not in _BY_KEY:
            raise ScreeningError(
                f"screening answer {key!r} is not a question; allowed {', '.join(_BY_KEY)}"
            )
        if not isinstance(value, bool):
            raise ScreeningError(
                f"screening answer {key} = {value!r} is not a yes/no answer; allowed true or false"
            )
    for key in acknowledged:
        if key not in _BY_KEY:
            raise ScreeningError(
                f"acknowledged {key!r} is not a question; allowed {', '.join(_BY_KEY)}"
            )
    blocked: list[ScreeningFinding] = []
    needs_ack: list[ScreeningFinding] = []
    unanswered: list[str] = []
    for q in SCREENING_QUESTIONS:
        if q.key not in answers:
            unanswered.append(q.key)
            continue
        if not answers[q.key]:
            continue
        kind, reason = q.kind, q.on_yes
        if q.key == "head_implant" and not head_or_neck:
            kind, reason = "precaution", "an implant in the head: no site is on the head or neck"
        if q.key == "pregnancy" and pregnancy_avoid_sites:
            kind = "contraindication"
            reason = (
                f"the program uses {', '.join(pregnancy_avoid_sites)}, traditionally avoided in "
                "pregnancy: choose a program without them"
            )
        finding = ScreeningFinding(q.key, kind, q.text, reason)
        (blocked if kind == "contraindication" else needs_ack).append(finding)
    return ScreeningResult(
        answers=tuple((q.key, answers[q.key]) for q in SCREENING_QUESTIONS if q.key in answers),
        blocked=tuple(blocked),
        needs_ack=tuple(needs_ack),
        acknowledged=tuple(f.key for f in needs_ack if f.key in acknowledged),
        unanswered=tuple(unanswered),
    )


def require_clear(result: ScreeningResult) -> ScreeningResult:
    """Return ``result`` if the session may start; raise ``ScreeningError`` (one line) if not."""
    if not result.ok:
        raise ScreeningError(result.message())
    return result


# --------------------------------------------------------------------------- onset rules

#: No EA up to and including this day after onset (day 0 is the day of onset). Sources say
#: "no needling or EA in the first 3 days" or "in the first week": the longer wins.
BELLS_NO_EA_UNTIL_DAY = 7
#: The acute phase lasts up to this day (<= 15 days, hanspub review).
BELLS_ACUTE_UNTIL_DAY = 15
#: In the rest of the acute phase, mild stimulation only: project policy (no source gives a
#: figure), a fifth of the device's maximum.
BELLS_ACUTE_MAX_LEVEL_FRACTION = 0.2
#: The chronic-stage program follows Li 2024, whose patients were more than 12 months from
#: onset.
BELLS_CHRONIC_FROM_DAY = 365

Phase = Literal["", "first-week", "acute", "recovery", "chronic"]


@dataclass(frozen=True)
class OnsetLimit:
    """Whether a program may run so long after onset, and the ceiling it may use.

    ``max_level_fraction`` is a fraction of the device's maximum that lowers every channel's
    ceiling (``None``: no extra limit); ``reason`` is one line to show and record.
    """

    rule: str
    days_since_onset: int | None
    phase: Phase
    allowed: bool
    max_level_fraction: float | None
    reason: str

    def require(self) -> OnsetLimit:
        """Return self if the program may run; raise ``ScreeningError`` if not."""
        if not self.allowed:
            raise ScreeningError(self.reason)
        return self

    def lower(self, fraction: float) -> float:
        """A channel's ``max_level_fraction`` after this limit."""
        if self.max_level_fraction is None:
            return fraction
        return min(fraction, self.max_level_fraction)

    def as_record(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "days_since_onset": self.days_since_onset,
            "phase": self.phase,
            "allowed": self.allowed,
            "max_level_fraction": self.max_level_fraction,
            "reason": self.reason,
        }


def bells_palsy_limit(days_since_onset: int | None, stage: str = "") -> OnsetLimit:
    """The Bell's palsy onset rule for a program of ``stage`` ("", "subacute" or "chronic").

    Days 0..7: refused (no EA in the first week). Days 8..15: the rest of the acute phase,
    mild only (at most ``BELLS_ACUTE_MAX_LEVEL_FRACTION`` of the device maximum). From day 16:
    the program's own ceiling. A "chronic" program is refused before day 365. A missing or
    negative day count is refused. Raises only for an unknown stage.
    """
    if stage not in ("", "subacute", "chronic"):
        raise ScreeningError(f"stage = {stage!r} is unknown; allowed subacute, chronic or none")
    rule = "bells-palsy"
    days = days_since_onset
    if days is None or isinstance(days, bool) or not isinstance(days, int) or days < 0:
        return OnsetLimit(
            rule,
            None,
            "",
            False,
            None,
            f"days since onset = {days!r}: a Bell's palsy program needs the days since onset "
            "of the palsy, a whole number from 0 (the day it began)",
        )
    if days <= BELLS_NO_EA_UNTIL_DAY:
        return OnsetLimit(
            rule,
            days,
            "first-week",
            False,
            None,
            f"day {days} after onset of Bell's palsy: no electro-acupuncture in the first "
            f"{BELLS_NO_EA_UNTIL_DAY} days (sources say 3 days or a week; the longer is used)",
        )
    if stage == "chronic" and days < BELLS_CHRONIC_FROM_DAY:
        return OnsetLimit(
            rule,
            days,
            "acute" if days <= BELLS_ACUTE_UNTIL_DAY else "recovery",
            False,
            None,
            f"day {days} after onset: this chronic-stage program follows a trial of patients "
            f"more than 12 months ({BELLS_CHRONIC_FROM_DAY} days) after onset; use the "
            "subacute program",
        )
    if days <= BELLS_ACUTE_UNTIL_DAY:
        return OnsetLimit(
            rule,
            days,
            "acute",
            True,
            BELLS_ACUTE_MAX_LEVEL_FRACTION,
            f"day {days} after onset: acute phase (up to day {BELLS_ACUTE_UNTIL_DAY}), mild "
            f"stimulation only: every channel at most "
            f"{BELLS_ACUTE_MAX_LEVEL_FRACTION:.0%} of the device maximum",
        )
    phase: Phase = "recovery" if days < BELLS_CHRONIC_FROM_DAY else "chronic"
    return OnsetLimit(
        rule,
        days,
        phase,
        True,
        None,
        f"day {days} after onset: past the acute phase; the program's own ceilings apply",
    )


def onset_limit(program: Program, days_since_onset: int | None) -> OnsetLimit:
    """The onset rule of ``program`` applied to ``days_since_onset``; a program without an
    onset rule may always run (the days are not needed, ``None`` is fine)."""
    if program.onset_rule == "bells-palsy":
        return bells_palsy_limit(days_since_onset, program.stage)
    return OnsetLimit("", days_since_onset, "", True, None, "no onset rule for this program")
