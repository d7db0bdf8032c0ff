"""Admission: the checks before a session (electrode placement, days since onset, patient
screening, the ceiling of an uncalibrated device on the head). Not the safety guard
(``safety.guard``, "the gate" every frame passes): these run once, before a session is made.

``admit`` runs them in that order and either raises (a one-line ``AcustimError``: nothing is
sent to any device) or returns what the session may run: the program with every limit the
onset rule and the uncalibrated-device policy lower, the warnings to show and record, and the
screening to record.

Screening comes in two parts (``safety.screening``). The day-of part is answered before every
session. The full part is answered at a patient's first session and kept in the records store
(in the screening JSON of the session row, with the time it was answered); a later session of
the same patient reuses it, re-evaluated against the new program, while it is valid: not older
than ``FULL_SCREENING_VALID_DAYS`` (our policy, 12 months; ``ACUSTIM_SCREENING_VALID_DAYS`` or
``valid_days`` may lower it) and not overtaken by a day-of answer that says the history changed
or an implant was fitted. The record says which part was reused, from which session, and when
it was answered. Times are the records store's clock (``acustim.records.columns.utc_now``, the
clock of each session's ``started_at``) unless ``now`` is given. Sessions on real devices
always need a clear screening; sessions on simulators need one only when a patient code is
given.

Never talks to a device; the rules themselves live in ``safety.placement``,
``safety.screening`` and ``safety.limits``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from acustim.records import RecordStore
from acustim.records.columns import utc_now
from safety.limits import DeviceLimits, uncalibrated_head_fraction
from safety.placement import PlacementReport, require_safe_placement, sites_with_hazard
from safety.screening import (
    DAY_OF_QUESTIONS,
    SCREENING_QUESTIONS,
    OnsetLimit,
    Question,
    RecordedScreening,
    ScreeningError,
    ScreeningResult,
    evaluate,
    gather,
    onset_limit,
    require_clear,
    screening_valid_days,
)
from waveforms.acupoints import load_catalogue
from waveforms.program import Program

#: regions whose sites make an implant in the head a contraindication
HEAD_REGIONS = frozenset({"face", "head", "neck"})
LEG_REGIONS = frozenset({"leg", "foot"})
#: the setting that may lower how long a full screening is reused (whole days)
VALID_DAYS_SETTING = "ACUSTIM_SCREENING_VALID_DAYS"


@dataclass(frozen=True)
class Admission:
    """What the checks let through."""

    program: Program  # with every channel ceiling the onset rule and the policy lower
    warnings: tuple[str, ...]
    placement: dict[str, object]
    onset: dict[str, object] | None
    screening: ScreeningResult | None
    #: the device's current: whether it is known, and the ceiling our policy set if not
    current: dict[str, object] | None = None

    def record(self) -> dict[str, object]:
        """For the session record (JSON)."""
        out: dict[str, object] = {"placement": self.placement}
        if self.onset is not None:
            out["onset"] = self.onset
        if self.current is not None:
            out["current"] = self.current
        if self.screening is not None:
            out.update(self.screening.as_record())
        return out


def screening_needed(*, simulated: bool, patient: str | None) -> bool:
    return not simulated or patient is not None


def now_utc() -> datetime:
    """Now, on the clock the records store stamps sessions with."""
    return datetime.fromisoformat(utc_now())


def configured_valid_days(environ: Mapping[str, str] | None = None) -> int:
    """How long a full screening is reused: ``FULL_SCREENING_VALID_DAYS``, or the lower number
    of days set in ``ACUSTIM_SCREENING_VALID_DAYS``; a bad setting is one line."""
    env = os.environ if environ is None else environ
    raw = env.get(VALID_DAYS_SETTING)
    if raw is None or raw.strip() == "":
        return screening_valid_days()
    try:
        value: object = int(raw.strip())
    except ValueError:
        value = raw
    return screening_valid_days(value, VALID_DAYS_SETTING)


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def recorded_screening(store: RecordStore | None, patient: str | None) -> RecordedScreening | None:
    """The full part of this patient's latest clear screening on record, if it can be reused
    at all (a record of version 2 that says when it was answered); its age is ``gather``'s."""
    if store is None or patient is None:
        return None
    for info in reversed(store.sessions(patient=patient)):
        screening = info.screening or {}
        if not screening.get("ok"):
            continue
        answers = screening.get("answers")
        parts = screening.get("parts")
        full = parts.get("full") if isinstance(parts, dict) else None
        answered_at = _moment(full.get("answered_at")) if isinstance(full, dict) else None
        if not isinstance(answers, dict) or not isinstance(full, dict) or answered_at is None:
            return None  # an older record: it lacks the parts (and today's questions)
        acknowledged = screening.get("acknowledged", [])
        acks = (
            tuple(a for a in acknowledged if isinstance(a, str))
            if isinstance(acknowledged, list)
            else ()
        )
        first = _int_or_none(full.get("answered_in_session"))
        if first is None and not full.get("reused"):
            first = info.id  # answered for that session
        return RecordedScreening(
            answers={str(k): v for k, v in answers.items() if isinstance(v, bool)},
            acknowledged=acks,
            answered_at=answered_at,
            session_id=info.id,
            session_started_at=info.started_at,
            answered_in_session=first,
        )
    return None


def questions_to_ask(
    recorded: RecordedScreening | None, *, now: datetime, valid_days: int
) -> tuple[Question, ...]:
    """The questions a pending screening asks: the day-of part when the recorded full part
    may be reused today, else every question."""
    if recorded is None:
        return SCREENING_QUESTIONS
    if gather({}, (), recorded, now=now, valid_days=valid_days).refresh is not None:
        return SCREENING_QUESTIONS
    return DAY_OF_QUESTIONS


def _regions(program: Program) -> set[str]:
    catalogue = load_catalogue()
    return {
        catalogue[site.rsplit("-", 1)[0]].region
        for ch in program.channels
        for site in ch.sites
        if site.rsplit("-", 1)[0] in catalogue
    }


def head_or_neck(program: Program) -> bool:
    """Whether the program has a site on the head, face or neck."""
    return bool(_regions(program) & HEAD_REGIONS)


def screen(
    program: Program,
    answers: Mapping[str, bool],
    acknowledged: Collection[str] = (),
    *,
    recorded: RecordedScreening | None = None,
    now: datetime | None = None,
    valid_days: int | None = None,
) -> ScreeningResult:
    """Evaluate answers for this program (its sites and kind decide some of the rules), with
    the recorded full part when it may be reused (``safety.screening.gather``)."""
    catalogue = load_catalogue()
    regions = _regions(program)
    gathered = gather(
        answers,
        acknowledged,
        recorded,
        now=now_utc() if now is None else now,
        valid_days=configured_valid_days() if valid_days is None else valid_days,
    )
    return evaluate(
        gathered.answers,
        gathered.acknowledged,
        head_or_neck=bool(regions & HEAD_REGIONS),
        face="face" in regions,
        legs=bool(regions & LEG_REGIONS),
        bells_palsy=program.onset_rule == "bells-palsy",
        chronic_bells_palsy=program.onset_rule == "bells-palsy" and program.stage == "chronic",
        pregnancy_avoid_sites=sites_with_hazard(program, catalogue, "pregnancy"),
        parts=gathered.parts,
        refresh=gathered.refresh,
    )


def check_placement(program: Program, *, isolated_channels: bool = False) -> PlacementReport:
    """The placement rules against the catalogue, for a device whose outputs are isolated
    from each other or not (unknown: not): raises ``PlacementError`` for a refusal; the
    report's warnings must be shown and recorded."""
    return require_safe_placement(
        program, load_catalogue(), isolated_channels=isolated_channels, device_known=True
    )


def apply_onset(program: Program, onset_days: int | None) -> tuple[Program, OnsetLimit]:
    """The onset rule: raises ``ScreeningError`` when the program may not run so soon (or
    the days are missing for a program that needs them); else the program with every
    channel ceiling the rule lowers, and the rule's finding."""
    limit = onset_limit(program, onset_days).require()
    if limit.max_level_fraction is not None:
        program = _lowered(program, limit.max_level_fraction)
    return program, limit


def _lowered(program: Program, fraction: float) -> Program:
    return dataclasses.replace(
        program,
        channels=tuple(
            dataclasses.replace(ch, max_level_fraction=min(ch.max_level_fraction, fraction))
            for ch in program.channels
        ),
    )


def current_unknown_text(device_name: str, fraction: float) -> str:
    """The plain statement, shown before Start and recorded, that the current on the head is
    unknown on an uncalibrated device and what ceiling our policy sets."""
    return (
        f"current unknown: {device_name} is not calibrated, so the current (mA) this "
        "program delivers on the head, face or neck is not known and no current limit can be "
        f"checked; every channel is held at most {fraction:.0%} of the device's full scale "
        "(our policy until the device is calibrated)"
    )


def apply_uncalibrated_ceiling(
    program: Program, *, calibrated: bool, device_name: str
) -> tuple[Program, dict[str, object] | None]:
    """Our policy for a program with a site on the head, face or neck on a device that is not
    calibrated: every channel's ceiling lowered to ``UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION``.
    Returns the program and the record of it (None when the policy does not apply)."""
    fraction = uncalibrated_head_fraction(calibrated, head_or_neck(program))
    if fraction is None:
        return program, None
    record: dict[str, object] = {
        "calibrated": False,
        "current_known": False,
        "max_level_fraction": fraction,
        "rule": "uncalibrated-head-ceiling (our policy)",
        "text": current_unknown_text(device_name, fraction),
    }
    return _lowered(program, fraction), record


def reuse_text(result: ScreeningResult) -> str | None:
    """The line, shown before Start and recorded, that says which screening part is reused
    and from when (None when nothing is reused)."""
    full = next((p for p in result.reused if p.part == "full"), None)
    if full is None:
        return None
    answered = full.answered_at[:10]
    first = f" in session {full.answered_in_session}" if full.answered_in_session else ""
    taken = f"session {full.reused_from_session}"
    if full.reused_from_started_at:
        taken += f" of {full.reused_from_started_at[:10]}"
    return (
        f"screening: the full screening answered on {answered}{first} is reused (from the "
        f"record of {taken}); the day-of questions were answered for this session"
    )


def onset_warning(limit: OnsetLimit) -> str | None:
    """The onset rule's line to show and record, when it lowered the ceilings."""
    return limit.reason if limit.max_level_fraction is not None else None


def no_screening_error(patient: str | None) -> ScreeningError:
    """The refusal of a session that needs a screening and has none."""
    who = f"patient {patient}" if patient else "this session"
    return ScreeningError(
        f"{who} has no screening for this session: answer the day-of questions (and the "
        f"full screening when none is on record, it is older than {configured_valid_days()} "
        "days or the history changed) first (acustim run --screening FILE, "
        "'acustim screening' prints them; the app asks them)"
    )


def admit(
    program: Program,
    *,
    simulated: bool,
    patient: str | None = None,
    onset_days: int | None = None,
    answers: Mapping[str, bool] | None = None,
    acknowledged: Collection[str] = (),
    store: RecordStore | None = None,
    isolated_channels: bool = False,
    device: DeviceLimits | None = None,
    device_name: str = "the device",
    now: datetime | None = None,
    valid_days: int | None = None,
) -> Admission:
    """Run every check; raise before anything is sent, or say what may run. ``device``: the
    device's limits (None: not known, so treated as uncalibrated)."""
    report = check_placement(program, isolated_channels=isolated_channels)
    warnings = [f.message for f in report.warnings]

    program, limit = apply_onset(program, onset_days)
    if (warning := onset_warning(limit)) is not None:
        warnings.append(warning)
    program, current = apply_uncalibrated_ceiling(
        program,
        calibrated=device is not None and device.calibration is not None,
        device_name=device_name,
    )
    if current is not None:
        warnings.append(str(current["text"]))

    result: ScreeningResult | None = None
    if answers is not None:
        recorded = recorded_screening(store, patient)
        result = require_clear(
            screen(
                program, answers, acknowledged, recorded=recorded, now=now, valid_days=valid_days
            )
        )
    elif screening_needed(simulated=simulated, patient=patient):
        raise no_screening_error(patient)
    return Admission(
        program=program,
        warnings=tuple(warnings),
        placement=report.as_record(),
        onset=limit.as_record() if program.onset_rule else None,
        screening=result,
        current=current,
    )
