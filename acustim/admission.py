"""Admission: the checks before a session (electrode placement, days since onset, patient
screening). Not the safety guard (``safety.guard``, "the gate" every frame passes): these run
once, before a session is made.

``admit`` runs them in that order and either raises (a one-line ``AcustimError``: nothing is
sent to any device) or returns what the session may run: the program with every limit the
onset rule lowers, the warnings to show and record, and the screening to record.

Screening is asked before the first run for a patient and kept in the records store; a later
run for the same patient re-evaluates the recorded answers against the new program (an
implant in the head matters only for head and neck sites, some sites are avoided in
pregnancy). Sessions on real devices always need a clear screening; sessions on simulators
need one only when a patient code is given.

Never talks to a device; the rules themselves live in ``safety.placement`` and
``safety.screening``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from acustim.records import RecordStore
from safety.placement import PlacementReport, require_safe_placement, sites_with_hazard
from safety.screening import (
    SCREENING_QUESTIONS,
    OnsetLimit,
    ScreeningError,
    ScreeningResult,
    evaluate,
    onset_limit,
    require_clear,
)
from waveforms.acupoints import load_catalogue
from waveforms.program import Program

#: regions whose sites make an implant in the head a contraindication
HEAD_REGIONS = frozenset({"face", "head", "neck"})


@dataclass(frozen=True)
class Admission:
    """What the checks let through."""

    program: Program  # with every channel ceiling the onset rule lowers
    warnings: tuple[str, ...]
    placement: dict[str, object]
    onset: dict[str, object] | None
    screening: ScreeningResult | None

    def record(self) -> dict[str, object]:
        """For the session record (JSON)."""
        out: dict[str, object] = {"placement": self.placement}
        if self.onset is not None:
            out["onset"] = self.onset
        if self.screening is not None:
            out.update(self.screening.as_record())
        return out


def screening_needed(*, simulated: bool, patient: str | None) -> bool:
    return not simulated or patient is not None


def recorded_answers(
    store: RecordStore | None, patient: str | None
) -> tuple[dict[str, bool], tuple[str, ...]] | None:
    """The answers and acknowledgements of this patient's latest clear screening, if any."""
    if store is None or patient is None:
        return None
    for info in reversed(store.sessions(patient=patient)):
        screening = info.screening or {}
        answers = screening.get("answers")
        if screening.get("ok") and isinstance(answers, dict):
            acknowledged = screening.get("acknowledged", [])
            acks = (
                tuple(a for a in acknowledged if isinstance(a, str))
                if isinstance(acknowledged, list)
                else ()
            )
            return {k: bool(v) for k, v in answers.items()}, acks
    return None


def screen(
    program: Program, answers: Mapping[str, bool], acknowledged: Collection[str] = ()
) -> ScreeningResult:
    """Evaluate answers for this program (its sites decide two of the rules)."""
    catalogue = load_catalogue()
    regions = {
        catalogue[site.rsplit("-", 1)[0]].region
        for ch in program.channels
        for site in ch.sites
        if site.rsplit("-", 1)[0] in catalogue
    }
    return evaluate(
        answers,
        acknowledged,
        head_or_neck=bool(regions & HEAD_REGIONS),
        pregnancy_avoid_sites=sites_with_hazard(program, catalogue, "pregnancy"),
    )


def check_placement(program: Program, *, isolated_channels: bool = False) -> PlacementReport:
    """The placement rules against the catalogue: raises ``PlacementError`` for a refusal;
    the report's warnings must be shown and recorded."""
    return require_safe_placement(program, load_catalogue(), isolated_channels=isolated_channels)


def apply_onset(program: Program, onset_days: int | None) -> tuple[Program, OnsetLimit]:
    """The onset rule: raises ``ScreeningError`` when the program may not run so soon (or
    the days are missing for a program that needs them); else the program with every
    channel ceiling the rule lowers, and the rule's finding."""
    limit = onset_limit(program, onset_days).require()
    if limit.max_level_fraction is not None:
        program = dataclasses.replace(
            program,
            channels=tuple(
                dataclasses.replace(ch, max_level_fraction=limit.lower(ch.max_level_fraction))
                for ch in program.channels
            ),
        )
    return program, limit


def onset_warning(limit: OnsetLimit) -> str | None:
    """The onset rule's line to show and record, when it lowered the ceilings."""
    return limit.reason if limit.max_level_fraction is not None else None


def no_screening_error(patient: str | None) -> ScreeningError:
    """The refusal of a session that needs a screening and has none."""
    who = f"patient {patient}" if patient else "this session"
    return ScreeningError(
        f"{who} has no screening on record: answer the {len(SCREENING_QUESTIONS)} "
        "contraindication questions first (acustim run --screening FILE, "
        "'acustim screening' prints them; the app asks them)"
    )


def answers_to_use(
    store: RecordStore | None,
    patient: str | None,
    answers: Mapping[str, bool] | None,
    acknowledged: Collection[str],
) -> tuple[Mapping[str, bool] | None, tuple[str, ...]]:
    """The answers given, or else the patient's latest clear screening on record (None when
    there is neither), with the acknowledgements that go with them."""
    if answers is None:
        recorded = recorded_answers(store, patient)
        if recorded is not None:
            return recorded[0], (*acknowledged, *recorded[1])
    return answers, tuple(acknowledged)


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
) -> Admission:
    """Run every check; raise before anything is sent, or say what may run."""
    report = check_placement(program, isolated_channels=isolated_channels)
    warnings = [f.message for f in report.warnings]

    program, limit = apply_onset(program, onset_days)
    if (warning := onset_warning(limit)) is not None:
        warnings.append(warning)

    result: ScreeningResult | None = None
    answers, acks = answers_to_use(store, patient, answers, acknowledged)
    if answers is not None:
        result = require_clear(screen(program, answers, acks))
    elif screening_needed(simulated=simulated, patient=patient):
        raise no_screening_error(patient)
    return Admission(
        program=program,
        warnings=tuple(warnings),
        placement=report.as_record(),
        onset=limit.as_record() if program.onset_rule else None,
        screening=result,
    )
