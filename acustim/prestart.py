"""The pre-start flow: everything that must be shown, asked and confirmed before Start.

``prepare(device, program, ...)`` takes the device, the program and what the practitioner gave
(levels, ceilings, patient code, days since onset, screening answers and acknowledgements) and
returns a ``StartPlan``:

- a refusal raises at once, with the same one-line error ``Device.start`` gives (a program
  that breaks the program format, an unsafe electrode placement, a Bell's palsy onset too
  recent, a screening that does not clear, a bad level or ceiling, a program the device cannot
  deliver: that one names the built-in programs the device can run);
- ``plan.items``: the warnings (placement, between channels, the onset rule's lower ceiling) and
  the device's caveats (a box that keeps stimulating by itself, pulse widths the device sets or
  shortens, uncalibrated output), each a ``PlanItem`` with a kind and a text. An item with
  ``confirm`` set needs an explicit yes; every other item is shown;
- ``plan.pending``: the questions that still need answers (the days since onset, the
  screening); ask them and ``prepare`` again with the answers.

``acustim run`` and the app both make their pre-start flow from the plan, and pass its items as
``Device.start(..., confirmed=plan.items)``. ``Device.start`` makes the plan again from its own
inputs and refuses (``UnconfirmedError``) a session with an item that was not confirmed, so
the command line and the app can never show different things before a session.

The session repeats the warnings and the pulse-width notes as events for its record
(``SHOWN_BEFORE_START``); a display that showed the plan skips them.

Never talks to a device; the rules themselves are ``acustim.admission``'s and ``safety``'s.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from acustim.admission import (
    Admission,
    apply_onset,
    apply_uncalibrated_ceiling,
    check_placement,
    configured_valid_days,
    no_screening_error,
    now_utc,
    onset_warning,
    questions_to_ask,
    recorded_screening,
    reuse_text,
    screen,
    screening_needed,
)
from acustim.events import EventKind
from acustim.records import validate_patient_code
from safety.errors import LimitError
from safety.fit import check_program_fits
from safety.guard import check_levels
from safety.limits import SessionLimits, resolve_limits
from safety.screening import (
    DAY_OF_QUESTIONS,
    SCREENING_QUESTIONS,
    OnsetLimit,
    Question,
    require_clear,
    screening_valid_days,
)
from waveforms.builtin import builtin_names, load_builtin
from waveforms.errors import AcustimError
from waveforms.program import Program
from waveforms.render import render

if TYPE_CHECKING:
    from acustim.engine import Device
    from device_profiles.profile import DeviceProfile


class ItemKind(StrEnum):
    """What a plan item is about."""

    # the device's caveats
    RUNS_ON = "runs_on"  # keeps stimulating when the host goes silent: needs a yes
    DEVICE_PULSE_WIDTH = "device_pulse_width"  # sets pulse width itself
    PULSE_WIDTH = "pulse_width"  # delivers the program's longer pulses shorter
    UNCALIBRATED = "uncalibrated"  # device units only
    # the warnings
    PLACEMENT = "placement"
    CROSS_CHANNEL = "cross_channel"  # two channels' sites, on channels that share a return
    ONSET = "onset"  # the onset rule lowered every ceiling
    #: an uncalibrated device and a site on the head: current unknown, our policy's ceiling
    CURRENT_UNKNOWN = "current_unknown"
    SCREENING_REUSED = "screening_reused"  # the full screening of an earlier session reused
    #: a calibration into a load resistor (``load_test``): no person connected; needs a yes
    LOAD_TEST = "load_test"
    #: this device's stored calibration is not applied (expired, unreadable): why
    CALIBRATION_NOTE = "calibration_note"


#: the kinds that are the device's caveats (the others are warnings)
CAVEAT_KINDS = frozenset(
    {ItemKind.RUNS_ON, ItemKind.DEVICE_PULSE_WIDTH, ItemKind.PULSE_WIDTH, ItemKind.UNCALIBRATED}
)

#: the session events that repeat plan items for the record (at the start of streaming); a
#: display that showed the plan before Start skips them
SHOWN_BEFORE_START = frozenset({EventKind.PLACEMENT, EventKind.PULSE_WIDTH})


@dataclass(frozen=True)
class PlanItem:
    """One thing to show before Start; ``confirm``: it needs an explicit yes."""

    kind: ItemKind
    text: str
    confirm: bool = False
    channels: tuple[str, ...] = ()

    @property
    def caveat(self) -> bool:
        """A caveat of the device (else a warning about this program or patient)."""
        return self.kind in CAVEAT_KINDS


class Pending(StrEnum):
    """A question that must be answered before Start."""

    ONSET_DAYS = "onset_days"
    SCREENING = "screening"


class UnconfirmedError(AcustimError):
    """A session was started without confirming every item of its pre-start plan."""


@dataclass(frozen=True)
class StartPlan:
    """What must be shown, asked and confirmed before a session (see the module)."""

    device: str  # the device spec
    device_name: str
    #: the program as it will run (with every ceiling the onset rule lowers, once known)
    program: Program
    patient: str | None  # the checked patient code
    #: the limits the session would run under (as ``Session.limits`` will be)
    limits: SessionLimits
    items: tuple[PlanItem, ...]
    pending: tuple[Pending, ...]
    _admission: Admission | None = field(default=None, repr=False, compare=False)
    #: what a pending screening asks: the day-of part, or every question
    _questions: tuple[Question, ...] = field(default=SCREENING_QUESTIONS, repr=False)

    @property
    def ready(self) -> bool:
        """No question is pending."""
        return not self.pending

    @property
    def warnings(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if not i.caveat)

    @property
    def caveats(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.caveat)

    @property
    def to_confirm(self) -> tuple[PlanItem, ...]:
        """The items that need an explicit yes before Start."""
        return tuple(i for i in self.items if i.confirm)

    @property
    def needs_yes(self) -> tuple[PlanItem, ...]:
        """What a practitioner must say yes to before Start: the items that need one and
        every warning (placement, current between channels, the onset rule, current unknown);
        the device's other caveats are shown with them. The app and ``acustim run`` on a real
        device ask for this one yes."""
        return tuple(i for i in self.items if i.confirm or i.kind not in CAVEAT_KINDS)

    def of_kind(self, *kinds: ItemKind) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.kind in kinds)

    @property
    def questions(self) -> tuple[Question, ...]:
        """The screening questions, when the screening is pending (else none): the day-of
        part when the patient's full screening on record may be reused, else every question
        (a yes to a day-of question that ``forces_full`` asks the full part again)."""
        return self._questions if Pending.SCREENING in self.pending else ()

    @property
    def day_of_only(self) -> bool:
        """A pending screening asks only the day-of part (the full part is on record)."""
        return self.questions == DAY_OF_QUESTIONS

    def prompt(self, pending: Pending) -> str:
        """One line that asks a pending question."""
        if pending is Pending.ONSET_DAYS:
            return f"{self.program.title}: how many days ago did the facial palsy begin?"
        who = f"patient {self.patient}" if self.patient else "this session"
        if self.day_of_only:
            return (
                f"Screening for {who}: answer the {len(DAY_OF_QUESTIONS)} day-of questions "
                "(the full screening on record is reused)"
            )
        return (
            f"Screening for {who}: answer the {len(SCREENING_QUESTIONS)} contraindication "
            "questions (the day-of part and the full screening)"
        )

    def require_answers(self) -> Admission:
        """What the checks let through; raises the refusal of the first pending question
        (the days since onset, then the screening), as ``Device.start`` would."""
        if Pending.ONSET_DAYS in self.pending:
            apply_onset(self.program, None)  # raises: the days are needed
        if Pending.SCREENING in self.pending:
            raise no_screening_error(self.patient)
        assert self._admission is not None
        return self._admission

    def admission(self, confirmed: Collection[PlanItem] | None) -> Admission:
        """``require_answers``, and (unless ``confirmed`` is None) refuse when an item was
        not among those confirmed."""
        admission = self.require_answers()
        if confirmed is not None:
            given = set(confirmed)
            missing = [i for i in self.items if i not in given]
            if missing:
                raise UnconfirmedError(
                    f"not started: {len(missing)} pre-start item"
                    f"{'' if len(missing) == 1 else 's'} not confirmed: "
                    + " | ".join(i.text for i in missing)
                    + " (show the plan of acustim.prestart.prepare and pass its items as "
                    "confirmed=)"
                )
        return admission


def prepare(
    device: Device,
    program: Program,
    *,
    levels: Mapping[str, int] | None = None,
    ceilings: Mapping[str, int] | None = None,
    duration_s: float | None = None,
    rise_fraction_per_s: float | None = None,
    electrode_area_cm2: float | None = None,
    patient: str | None = None,
    onset_days: int | None = None,
    screening: Mapping[str, bool] | None = None,
    acknowledged: Collection[str] = (),
    now: datetime | None = None,
    valid_days: int | None = None,
    load_test: bool = False,
) -> StartPlan:
    """The pre-start plan of a session of ``program`` on ``device`` (see the module). Raises
    every refusal ``Device.start`` would raise for the same inputs, except a pending
    question's (``StartPlan.require_answers`` raises those).

    ``now``: the time the screening's parts are dated and aged with (default: the records
    store's clock, which stamps the session's start). ``valid_days``: how long a full
    screening is reused, at most ``FULL_SCREENING_VALID_DAYS`` (default: the setting
    ``ACUSTIM_SCREENING_VALID_DAYS``, else the policy). ``load_test``: a calibration into a
    load resistor (``acustim.calibration``): no screening is asked, and a patient code,
    screening answers or any other program is refused (``check_load_test``)."""
    profile = device.profile
    program = Program.checked(program)  # a program that breaks the format: refused first
    code = validate_patient_code(patient) if patient is not None else None
    if load_test:  # a calibration into a resistor: never a patient's session (see below)
        check_load_test(program, patient=code, screening=screening)
    days = configured_valid_days() if valid_days is None else screening_valid_days(valid_days)
    moment = now_utc() if now is None else now
    report = check_placement(program, isolated_channels=profile.isolated_outputs)
    warnings = [
        PlanItem(
            ItemKind.CROSS_CHANNEL if f.rule == "between-channels" else ItemKind.PLACEMENT,
            f.message,
            channels=f.channels,
        )
        for f in report.warnings
    ]
    pending: list[Pending] = []
    admitted = program
    limit: OnsetLimit | None = None
    if program.onset_rule and onset_days is None:
        pending.append(Pending.ONSET_DAYS)
    else:
        admitted, limit = apply_onset(program, onset_days)
        if (line := onset_warning(limit)) is not None:
            warnings.append(PlanItem(ItemKind.ONSET, line))
    admitted, current = apply_uncalibrated_ceiling(
        admitted, calibrated=profile.calibrated, device_name=profile.name
    )
    if current is not None:
        warnings.append(PlanItem(ItemKind.CURRENT_UNKNOWN, str(current["text"])))

    if load_test:
        warnings.append(PlanItem(ItemKind.LOAD_TEST, load_test_text(profile.name), confirm=True))
    recorded = recorded_screening(device.engine.store, code)
    result = None
    questions = SCREENING_QUESTIONS
    if screening is not None:
        result = require_clear(
            screen(
                admitted, screening, acknowledged, recorded=recorded, now=moment, valid_days=days
            )
        )
        if (line := reuse_text(result)) is not None:
            warnings.append(PlanItem(ItemKind.SCREENING_REUSED, line))
    elif not load_test and screening_needed(simulated=device.simulator is not None, patient=code):
        pending.append(Pending.SCREENING)
        questions = questions_to_ask(recorded, now=moment, valid_days=days)

    limits, notes = _limits_and_notes(
        program,
        admitted,
        profile,
        levels=levels or {},
        ceilings=ceilings,
        duration_s=duration_s,
        rise_fraction_per_s=rise_fraction_per_s,
        electrode_area_cm2=electrode_area_cm2,
    )
    caveats = device_caveats(profile)
    if (calibration_note := getattr(device, "calibration_note", None)) is not None:
        warnings.append(PlanItem(ItemKind.CALIBRATION_NOTE, str(calibration_note)))
    caveats += [PlanItem(ItemKind.PULSE_WIDTH, note) for note in notes]
    admission = None
    if not pending:
        admission = Admission(
            program=admitted,
            warnings=tuple(i.text for i in warnings),
            placement=report.as_record(),
            onset=limit.as_record() if limit is not None and program.onset_rule else None,
            screening=result,
            current=current,
        )
    return StartPlan(
        device=device.spec,
        device_name=profile.name,
        program=admitted,
        patient=code,
        limits=limits,
        items=(*caveats, *warnings),
        pending=tuple(pending),
        _admission=admission,
        _questions=questions,
    )


def device_caveats(profile: DeviceProfile) -> list[PlanItem]:
    """What this device does that the practitioner must know before any session on it."""
    out: list[PlanItem] = []
    if not profile.stops_when_host_silent:
        why = profile.stops_when_host_silent_note or "declared in its profile"
        out.append(
            PlanItem(
                ItemKind.RUNS_ON,
                f"{profile.name} keeps stimulating if this computer or this app stops "
                f"({why}): keep the device's own off switch within reach, and stop it on the "
                "device itself if the app fails",
                confirm=True,
            )
        )
    if not profile.pulse_width_controlled:
        out.append(
            PlanItem(
                ItemKind.DEVICE_PULSE_WIDTH,
                f"{profile.name} sets pulse width itself; program pulse widths are not delivered",
            )
        )
    if not profile.calibrated:
        out.append(
            PlanItem(
                ItemKind.UNCALIBRATED,
                f"{profile.name} is uncalibrated: levels are device units only; the current "
                "(mA) and current density it delivers are unknown, so no current limit is "
                "checked",
            )
        )
    return out


def _limits_and_notes(
    program: Program,
    admitted: Program,
    profile: DeviceProfile,
    *,
    levels: Mapping[str, int],
    ceilings: Mapping[str, int] | None,
    duration_s: float | None,
    rise_fraction_per_s: float | None,
    electrode_area_cm2: float | None,
) -> tuple[SessionLimits, list[str]]:
    """The session's limits and the fit notes, as the session resolves them; a program the
    device cannot deliver is refused with the built-in programs it can run."""
    names = [c.name for c in admitted.channels]
    for name in levels:
        if name not in names:
            raise LimitError(
                f"level for channel {name}: program {admitted.name} has channel"
                f"{'s' if len(names) > 1 else ''} {', '.join(names)}"
            )
    try:
        limits = resolve_limits(
            profile.limits,
            admitted,
            ceilings_du=ceilings,
            rise_fraction_per_s=rise_fraction_per_s,
            session_s=duration_s,
            electrode_area_cm2=electrode_area_cm2,
        )
        check_levels(limits, levels)
        notes = check_program_fits(
            admitted,
            render(admitted, profile.limits.sample_period_s),
            profile.limits,
            device_name=profile.name,
            pulse_width_controlled=profile.pulse_width_controlled,
        )
    except LimitError as exc:
        raise _with_deliverable(exc, program, profile) from None
    return limits, notes


def refuse_undeliverable(program: Program, profile: DeviceProfile) -> None:
    """Refuse (``LimitError``, naming the built-in programs it can run) a program that
    ``profile``'s device cannot deliver as written: a check from the profile alone, so that a
    command can make it before it opens the device."""
    why = fit_error(Program.checked(program), profile)
    if why is not None:
        raise _with_deliverable(LimitError(why), program, profile)


def fit_error(program: Program, profile: DeviceProfile) -> str | None:
    """Why ``profile``'s device cannot deliver ``program`` as written, or None if it can
    (the checks a session makes before anything is sent: ``safety.limits`` and
    ``safety.fit``, on the render the session would stream)."""
    limits = profile.limits
    try:
        resolve_limits(limits, program)
        check_program_fits(
            program,
            render(program, limits.sample_period_s),
            limits,
            device_name=profile.name,
            pulse_width_controlled=profile.pulse_width_controlled,
        )
    except LimitError as exc:
        return str(exc)
    return None


def deliverable_builtins(profile: DeviceProfile) -> list[str]:
    """The built-in programs ``profile``'s device can deliver as written."""
    return [name for name in builtin_names() if fit_error(load_builtin(name), profile) is None]


def _with_deliverable(exc: LimitError, program: Program, profile: DeviceProfile) -> LimitError:
    """A refusal because the device cannot deliver the program says what it can run."""
    if fit_error(program, profile) != str(exc):
        return exc  # another refusal (a level, a ceiling): nothing to add
    names = deliverable_builtins(profile)
    can = ", ".join(names) if names else "none"
    return LimitError(
        f"{str(exc).rstrip('. ')}; built-in programs {profile.name} can run: {can} "
        "('acustim show NAME' describes one)"
    )


#: the one program a load test runs (``acustim.calibration``): made in code, never a file
LOAD_TEST_PROGRAM = "calibration-load-test"


def load_test_text(device_name: str) -> str:
    """The plan item a load test must confirm."""
    return (
        f"load test: {device_name} is connected to load resistors and a meter only; no person "
        "is connected (a calibration, not a treatment: no screening is asked)"
    )


def check_load_test(
    program: Program, *, patient: str | None, screening: Mapping[str, bool] | None
) -> None:
    """``load_test`` (a calibration into a resistor, with no screening) is refused for
    anything that could be a patient's session: a patient code, screening answers, or a
    program other than the built-in load program (made in code, not read from a file)."""
    if patient is not None or screening is not None:
        raise LimitError(
            "a load test (calibration into a resistor) takes no patient code and no screening; "
            "allowed only with no person connected"
        )
    if program.name != LOAD_TEST_PROGRAM or program.source_path is not None:
        raise LimitError(
            f"program {program.name!r} cannot run as a load test; allowed only the built-in "
            f"calibration program {LOAD_TEST_PROGRAM!r} (acustim calibrate)"
        )
