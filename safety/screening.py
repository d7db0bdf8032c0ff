"""Screening before a patient's sessions: contraindication questions in two parts, when answers
may be reused, and the onset rule for Bell's palsy programs.

``SCREENING_QUESTIONS`` are yes/no questions taken from the contraindications and warnings of
``../shared/reference/safety.md`` section 5a (each names its source key, or "our policy").
They come in two parts:

- the **day-of** part (``part == "day"``: the skin at the sites, HF surgery or diathermy
  nearby, monitors, pregnancy, recent facial procedures, a new implant, a changed history) is
  asked before **every** session and never reused;
- the **full** part (``part == "full"``: implants, diagnoses, medicines, history) is asked
  at the first session and reused for later sessions of the same patient until it is older
  than ``FULL_SCREENING_VALID_DAYS`` (our policy: 12 months; a setting may only lower it,
  ``screening_valid_days``) or until the day-of answers say the history changed or an implant
  was fitted (``Question.forces_full``): then it is asked again.

``gather(given, acknowledged, recorded, now=..., valid_days=...)`` decides which answers a
session uses (the ones given, and the recorded full part when it may be reused) and says when
each part was answered and where a reused part comes from (``PartRecord``).
``evaluate(answers, acknowledged, ...)`` sorts the yes answers for one program: a
contraindication blocks the session, a precaution needs the practitioner's explicit
acknowledgement, and an unanswered question keeps the session from starting. The result is a
frozen value; ``as_record()`` gives the JSON object the session record stores (version 2:
the answers, the question texts, and the parts with their dates).

``bells_palsy_limit(days_since_onset, stage)`` says whether a Bell's palsy program may run so
many days after onset, and at what ceiling (section 4b; see ``docs/library.md``).

Pure: no I/O, no clock, no prompts; the caller asks the questions, passes the answers and
the time (``now``) that the session record uses.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from safety.errors import SafetyError
from waveforms.program import Program

__all__ = [
    "BELLS_ACUTE_MAX_LEVEL_FRACTION",
    "BELLS_ACUTE_UNTIL_DAY",
    "BELLS_CHRONIC_FROM_DAY",
    "BELLS_NO_EA_UNTIL_DAY",
    "DAY_OF_QUESTIONS",
    "FULL_QUESTIONS",
    "FULL_SCREENING_VALID_DAYS",
    "SCREENING_QUESTIONS",
    "SESSION_REMINDERS",
    "Gathered",
    "OnsetLimit",
    "PartRecord",
    "Question",
    "RecordedScreening",
    "ScreeningError",
    "ScreeningFinding",
    "ScreeningResult",
    "bells_palsy_limit",
    "evaluate",
    "gather",
    "onset_limit",
    "question",
    "require_clear",
    "screening_valid_days",
]

Kind = Literal["contraindication", "precaution"]
Part = Literal["day", "full"]
#: Which programs a question's yes matters for: "any" program, a program with a site on the
#: head, face or neck ("head"), on the face ("face"), on the leg or foot ("legs"), a Bell's
#: palsy program ("bells") or a chronic-stage Bell's palsy program ("bells-chronic"). For any
#: other program a yes is recorded but neither blocks nor needs an acknowledgement.
Scope = Literal["any", "head", "face", "legs", "bells", "bells-chronic"]

_POLICY = "our policy"


class ScreeningError(SafetyError):
    """Screening blocks a session, or the answers given cannot be screened."""


@dataclass(frozen=True)
class Question:
    """One yes/no screening question and what a yes means.

    ``part``: "day" (asked every session) or "full" (asked at the first session and reused
    while valid). ``scope``: the programs a yes matters for (``Scope``). ``forces_full``: a yes
    means the full part must be answered again before this session.
    """

    key: str
    text: str
    kind: Kind
    on_yes: str
    sources: tuple[str, ...]
    part: Part = "full"
    scope: Scope = "any"
    forces_full: bool = False


SCREENING_QUESTIONS: tuple[Question, ...] = (
    # ---- the day-of part: asked before every session, never reused
    Question(
        "skin_broken",
        "Today, is the skin broken, irritated, wet or not clean at any electrode site?",
        "contraindication",
        "electrodes go only on clean, dry, intact skin: choose other sites or treat another day",
        ("EMSI TENS-6000 manual", "complete-care TENS instructions"),
        part="day",
    ),
    Question(
        "skin_inflamed",
        "Today, is there swollen, infected or inflamed skin, an eruption, phlebitis or "
        "varicose veins at or near any electrode site?",
        "contraindication",
        "no electrodes over swollen, infected or inflamed skin, eruptions, phlebitis or "
        "varicose veins",
        ("[FDA-PMS]",),
        part="day",
    ),
    Question(
        "hf_or_diathermy",
        "Is high-frequency surgical equipment connected to the patient, or a shortwave or "
        "microwave therapy unit running within about 1 m?",
        "contraindication",
        "HF surgical equipment can burn at the electrode sites and nearby shortwave or "
        "microwave therapy can make the output unstable: remove it first",
        ("[AS2-10]",),
        part="day",
    ),
    Question(
        "monitoring_equipment",
        "Is an ECG monitor or other electronic monitoring equipment connected to the patient?",
        "precaution",
        "monitors and their alarms may not work properly during stimulation",
        ("EMSI TENS-6000 manual", "[CFR882]"),
        part="day",
    ),
    Question(
        "pregnancy",
        "Is the patient pregnant, or could she be?",
        "precaution",
        "the safety of stimulation in pregnancy is not established: acknowledging states that "
        "the practitioner accepts it, and no site is over the uterus",
        ("[FDA-PMS]",),
        part="day",
    ),
    Question(
        "recent_facial_procedure",
        "In the last 4 weeks, has the patient had botulinum toxin (botox), dermal fillers, a "
        "thread lift, a chemical peel or facial surgery?",
        "contraindication",
        "stimulation over recently treated facial tissue may move toxin or filler or disturb "
        "healing: no facial program until 4 weeks have passed (our policy)",
        (_POLICY,),
        part="day",
        scope="face",
    ),
    Question(
        "new_implant",
        "Since the last full screening, has the patient had any implant fitted (an electronic "
        "device, a metal plate, screw or clip, a dental implant)?",
        "contraindication",
        "a new implant since the full screening: answer the full screening again",
        (_POLICY,),
        part="day",
        forces_full=True,
    ),
    Question(
        "history_changed",
        "Since the last full screening, has anything in the patient's health changed (a new "
        "diagnosis, medicine, operation or treatment)?",
        "contraindication",
        "the history changed since the full screening: answer the full screening again",
        (_POLICY,),
        part="day",
        forces_full=True,
    ),
    # ---- the full part: asked at the first session, reused while valid
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
        "head_implant_active",
        "Is there an active (electronic) implant in the head, such as a cochlear implant or a "
        "brain or nerve stimulator, or metal inside the skull, such as an aneurysm clip?",
        "contraindication",
        "an electronic implant in the head, or metal inside the skull, is a contraindication "
        "to stimulation on the head, face or neck",
        ("[CFR882]",),
    ),
    Question(
        "head_metal_passive",
        "Is there passive metal in the face or jaw: dental implants, or plates, screws or "
        "wires from surgery?",
        "precaution",
        "passive metal in the face or jaw (not electronic): keep every pad off the skin "
        "directly over it; acknowledging states that the sites are clear of it",
        ("[CFR882]", _POLICY),
        scope="head",
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
        "cancer_near_sites",
        "Is there a cancerous lesion at or near any electrode site?",
        "contraindication",
        "no stimulation over or near cancerous lesions",
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
        "anticoagulants",
        "Does the patient take anticoagulant or antiplatelet medicine (e.g. warfarin, a DOAC, "
        "heparin, clopidogrel)?",
        "precaution",
        "anticoagulants make bleeding and bruising more likely (a bleeding tendency): press "
        "on needle sites longer and check for bruising",
        ("[FDA-PMS]", _POLICY),
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
        "electrode_allergy",
        "Is the patient allergic to nickel, electrode gel or adhesive?",
        "precaution",
        "skin irritation and burns under electrodes are the known adverse reactions: use "
        "nickel-free, hypoallergenic electrodes and gel, and check the skin after the session",
        ("[FDA-PMS]", _POLICY),
    ),
    Question(
        "dvt",
        "Does the patient have, or is suspected of having, a deep vein thrombosis (DVT), or "
        "thrombophlebitis in a leg?",
        "contraindication",
        "a deep vein thrombosis: muscle contractions in the leg may move the clot; no "
        "program with sites on the legs or feet",
        ("[FDA-PMS]", _POLICY),
        scope="legs",
    ),
    Question(
        "fainting",
        "Has the patient fainted before during needling, injections or electrical stimulation?",
        "precaution",
        "a history of fainting: treat the patient lying down, start low and watch them throughout",
        (_POLICY,),
    ),
    Question(
        "immunosuppressed",
        "Is the patient immunosuppressed (by medicine, chemotherapy or an illness)?",
        "precaution",
        "immunosuppression raises the risk of infection at needle and electrode sites: "
        "use sterile single-use needles and check the skin",
        (_POLICY,),
    ),
    Question(
        "bells_red_flags",
        "For facial palsy: is there any red flag against Bell's palsy (the forehead spared, "
        "other nerves or the limbs affected, onset over more than 3 days, ear vesicles, a "
        "parotid lump, hearing loss, or a second palsy on the same side)?",
        "contraindication",
        "a red flag suggests another cause of the palsy: refer for diagnosis before any "
        "Bell's palsy program",
        ("Lumiscope SW1000 manual", _POLICY),
        scope="bells",
    ),
    Question(
        "eye_not_closing",
        "For facial palsy: does the eye on the affected side not close fully?",
        "precaution",
        "an eye that does not close needs protection (lubricant, a shield or tape) during "
        "the session, and the pads stay clear of it",
        ("[AS2-10]", _POLICY),
        scope="bells",
    ),
    Question(
        "synkinesis",
        "For facial palsy: does the patient have synkinesis (one part of the face moving "
        "when another is moved)?",
        "precaution",
        "the chronic program aims for a visible twitch, which may reinforce synkinesis: keep "
        "the level below a twitch in the synkinetic muscles or choose another program",
        (_POLICY,),
        scope="bells-chronic",
    ),
)
_BY_KEY: dict[str, Question] = {q.key: q for q in SCREENING_QUESTIONS}
#: The day-of part, asked before every session.
DAY_OF_QUESTIONS: tuple[Question, ...] = tuple(q for q in SCREENING_QUESTIONS if q.part == "day")
#: The full part, reused while it is valid.
FULL_QUESTIONS: tuple[Question, ...] = tuple(q for q in SCREENING_QUESTIONS if q.part == "full")
_FULL_KEYS = frozenset(q.key for q in FULL_QUESTIONS)

#: Our policy: the full part of a screening is reused for at most 12 months (365 days); a
#: setting may lower it (``screening_valid_days``), never raise it.
FULL_SCREENING_VALID_DAYS = 365

#: Shown before every session; nothing to answer.
SESSION_REMINDERS: tuple[str, ...] = (
    "Not while driving or operating machinery, in a bath or shower, or asleep "
    "([FDA-PMS]; [CFR882]).",
    "Turn the output to zero before applying or removing electrodes (Lumiscope; complete-care).",
    "Keep the stimulator out of the reach of children ([FDA-PMS]).",
)


def question(key: str) -> Question | None:
    """The question ``key``, or None when there is no such question (an older record's)."""
    return _BY_KEY.get(key)


def screening_valid_days(days: object = None, where: str = "screening validity") -> int:
    """How many days a full screening may be reused: ``FULL_SCREENING_VALID_DAYS``, or a
    lower whole number of days given by a setting (``where`` names it in the message).
    Anything else raises ``ScreeningError`` (one line, with the allowed range)."""
    if days is None:
        return FULL_SCREENING_VALID_DAYS
    if isinstance(days, bool) or not isinstance(days, int):
        raise ScreeningError(
            f"{where} = {days!r} is not a whole number of days; allowed 1.."
            f"{FULL_SCREENING_VALID_DAYS} (a setting can only lower the 12-month policy)"
        )
    if not 1 <= days <= FULL_SCREENING_VALID_DAYS:
        raise ScreeningError(
            f"{where} = {days} days; allowed 1..{FULL_SCREENING_VALID_DAYS} (a setting can "
            "only lower the 12-month policy)"
        )
    return days


# --------------------------------------------------------------------------- which answers


@dataclass(frozen=True)
class PartRecord:
    """When one part of the screening was answered, and where a reused part comes from.

    ``answered_at``: ISO-8601 time the part was answered; ``answered_in_session``: the
    session whose record first held these answers (None: this session, or not known);
    ``reused_from_session`` and ``reused_from_started_at``: the recorded session the answers
    were taken from (None when they were given for this session)."""

    part: Part
    answered_at: str
    answered_in_session: int | None = None
    reused_from_session: int | None = None
    reused_from_started_at: str | None = None

    @property
    def reused(self) -> bool:
        return self.reused_from_session is not None

    def as_record(self) -> dict[str, object]:
        return {
            "answered_at": self.answered_at,
            "answered_in_session": self.answered_in_session,
            "reused": self.reused,
            "reused_from_session": self.reused_from_session,
            "reused_from_started_at": self.reused_from_started_at,
        }


@dataclass(frozen=True)
class RecordedScreening:
    """The full part of a patient's latest clear screening on record (``acustim.admission``
    reads it from the session rows)."""

    answers: Mapping[str, bool]
    acknowledged: tuple[str, ...]
    answered_at: datetime  # when the full part was answered (aware, UTC)
    session_id: int | None = None  # the session whose record it was read from
    session_started_at: str | None = None
    answered_in_session: int | None = None  # where it was first answered, if known


@dataclass(frozen=True)
class Gathered:
    """The answers a session uses and where they come from (``gather``).

    ``refresh``: why the full part must be answered again (it expired, or the day-of answers
    say the history changed), else None."""

    answers: dict[str, bool]
    acknowledged: tuple[str, ...]
    parts: tuple[PartRecord, ...]
    refresh: str | None = None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def gather(
    given: Mapping[str, bool],
    acknowledged: Collection[str],
    recorded: RecordedScreening | None,
    *,
    now: datetime,
    valid_days: int = FULL_SCREENING_VALID_DAYS,
) -> Gathered:
    """The answers for this session: ``given`` (the day-of part, and the full part when it is
    asked again), plus the recorded full part when ``given`` has none of it and it may be
    reused: not older than ``valid_days`` (``screening_valid_days`` checks the figure) at
    ``now``, and no day-of answer that forces a new full screening is yes. The day-of part and
    its acknowledgements are never reused."""
    valid_days = screening_valid_days(valid_days)
    today = PartRecord("day", _iso(now))
    full_given = any(key in _FULL_KEYS for key in given)
    if full_given or recorded is None:
        parts = (today, PartRecord("full", _iso(now))) if full_given else (today,)
        return Gathered(dict(given), tuple(acknowledged), parts)
    since = recorded.answered_at.date().isoformat()
    age = now - recorded.answered_at
    refresh = None
    if age > timedelta(days=valid_days) or age < -timedelta(days=1):
        refresh = (
            f"the full screening of {since} is older than {valid_days} days (our policy) or "
            "dated in the future: answer the full screening again"
        )
    else:
        changed = [q.key for q in DAY_OF_QUESTIONS if q.forces_full and given.get(q.key)]
        if changed:
            refresh = (
                f"{' and '.join(changed)} answered yes: the full screening of {since} no longer "
                "holds; answer the full screening again"
            )
    if refresh is not None:
        return Gathered(dict(given), tuple(acknowledged), (today,), refresh)
    answers = {k: v for k, v in recorded.answers.items() if k in _FULL_KEYS}
    answers.update(given)
    acks = tuple(acknowledged) + tuple(
        a for a in recorded.acknowledged if a in _FULL_KEYS and a not in acknowledged
    )
    full = PartRecord(
        "full",
        _iso(recorded.answered_at),
        answered_in_session=recorded.answered_in_session,
        reused_from_session=recorded.session_id,
        reused_from_started_at=recorded.session_started_at,
    )
    return Gathered(answers, acks, (today, full))


# --------------------------------------------------------------------------- evaluate


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
    questions without an answer; ``refresh``: why the full part must be answered again;
    ``parts``: when each part was answered (``PartRecord``). The session may start only when
    ``ok``.
    """

    answers: tuple[tuple[str, bool], ...]
    blocked: tuple[ScreeningFinding, ...]
    needs_ack: tuple[ScreeningFinding, ...]
    acknowledged: tuple[str, ...]
    unanswered: tuple[str, ...]
    parts: tuple[PartRecord, ...] = ()
    refresh: str | None = None

    @property
    def pending(self) -> tuple[ScreeningFinding, ...]:
        """Precautions still waiting for an acknowledgement."""
        return tuple(f for f in self.needs_ack if f.key not in self.acknowledged)

    @property
    def ok(self) -> bool:
        return not (self.blocked or self.pending or self.unanswered or self.refresh)

    @property
    def reused(self) -> tuple[PartRecord, ...]:
        """The parts taken from an earlier session's record."""
        return tuple(p for p in self.parts if p.reused)

    def message(self) -> str:
        """One line: why the session may not start, or that it may."""
        if self.ok:
            return "screening clear"
        parts = [f"blocked by {f.key} ({f.reason})" for f in self.blocked]
        parts += [f"needs acknowledgement of {f.key} ({f.reason})" for f in self.pending]
        unanswered = self.unanswered
        if self.refresh:
            parts.append(self.refresh)
            unanswered = tuple(k for k in unanswered if k not in _FULL_KEYS)
        if unanswered:
            parts.append("unanswered: " + ", ".join(unanswered))
        return "screening does not clear this session: " + " | ".join(parts)

    def as_record(self) -> dict[str, object]:
        """JSON-compatible, for the session record: the answers, the text of each question
        answered, and each part's dates (which part was reused, from which session)."""
        return {
            "version": 2,
            "answers": dict(self.answers),
            "questions": {k: _BY_KEY[k].text for k, _ in self.answers},
            "parts": {p.part: p.as_record() for p in self.parts},
            "blocked": [f.as_record() for f in self.blocked],
            "needs_ack": [f.as_record() for f in self.needs_ack],
            "acknowledged": list(self.acknowledged),
            "unanswered": list(self.unanswered),
            "refresh": self.refresh,
            "ok": self.ok,
        }


def _check(answers: Mapping[str, bool], acknowledged: Collection[str]) -> None:
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


def evaluate(
    answers: Mapping[str, bool],
    acknowledged: Collection[str] = (),
    *,
    head_or_neck: bool = True,
    face: bool = True,
    legs: bool = True,
    bells_palsy: bool = True,
    chronic_bells_palsy: bool = True,
    pregnancy_avoid_sites: Sequence[str] = (),
    parts: Sequence[PartRecord] = (),
    refresh: str | None = None,
) -> ScreeningResult:
    """Sort the answers into what blocks the session and what needs an acknowledgement.

    ``answers`` maps question keys to True (yes) or False (no); ``acknowledged`` lists the
    precautions the practitioner acknowledged. The program's sites and kind decide the
    questions whose ``scope`` is narrower than any program: ``head_or_neck`` (a site on the
    head, face or neck; it also makes an active implant in the head a contraindication, else
    a precaution), ``face``, ``legs``, ``bells_palsy`` and ``chronic_bells_palsy``; each
    defaults to True, the safe reading. With ``head_or_neck``, a yes to epilepsy needs a
    specialist's clearance. ``pregnancy_avoid_sites`` (from
    ``safety.placement.sites_with_hazard(program, catalogue, "pregnancy")``) turns a yes to
    pregnancy into a block. A question answered yes whose scope the program is outside is
    recorded and nothing more. A ``forces_full`` question answered yes blocks only when
    ``refresh`` is given (``gather`` sets it when the full part would be reused).
    ``parts`` and ``refresh`` (from ``gather``) are kept in the result. Unknown keys and
    answers that are not booleans raise ``ScreeningError``.
    """
    _check(answers, acknowledged)
    in_scope = {
        "any": True,
        "head": head_or_neck,
        "face": face,
        "legs": legs,
        "bells": bells_palsy,
        "bells-chronic": chronic_bells_palsy,
    }
    blocked: list[ScreeningFinding] = []
    needs_ack: list[ScreeningFinding] = []
    unanswered: list[str] = []
    for q in SCREENING_QUESTIONS:
        if q.key not in answers:
            unanswered.append(q.key)
            continue
        if not answers[q.key] or not in_scope[q.scope] or q.forces_full:
            continue  # a forces_full yes is gather's: it sets refresh when it matters
        kind, reason = q.kind, q.on_yes
        if q.key == "head_implant_active" and not head_or_neck:
            kind = "precaution"
            reason = "an implant in the head: no site is on the head, face or neck"
        if q.key == "epilepsy" and head_or_neck:
            reason = (
                "epilepsy with sites on the head, face or neck: acknowledging states that the "
                "patient's specialist has cleared stimulation there"
            )
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
        parts=tuple(parts),
        refresh=refresh,
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
