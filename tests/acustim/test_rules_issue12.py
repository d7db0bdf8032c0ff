"""The safety rules of the clinical review (issue 12), end to end on real SQLite records and
the simulators: the screening's two parts and its expiry, current between channels on devices
whose outputs are not isolated, the uncalibrated ceiling on the face, the mouth, and the
report's screening section in words."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from acustim import Engine, ItemKind, Pending, load_program, prepare
from acustim.admission import VALID_DAYS_SETTING, configured_valid_days, now_utc
from acustim.cli import main
from acustim.commands.screening import ask, template
from acustim.report.html import render_html
from acustim.report.text import screening_view
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from safety.placement import PlacementError
from safety.screening import (
    DAY_OF_QUESTIONS,
    FULL_QUESTIONS,
    FULL_SCREENING_VALID_DAYS,
    SCREENING_QUESTIONS,
    ScreeningError,
)
from tests.programs import continuous
from waveforms.program import Program

NO = {q.key: False for q in SCREENING_QUESTIONS}
DAY_NO = {q.key: False for q in DAY_OF_QUESTIONS}
TMJ = "tmj-jaw-pain-left"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(virtual_time=True, records=tmp_path / "r.sqlite3")
    try:
        yield e
    finally:
        e.close()


def writes(device: object) -> int:
    link = device.transport  # type: ignore[attr-defined]
    assert isinstance(link, ByteStreamLink | SimulatorLink)
    return link.writes


def run_once(engine: Engine, patient: str, screening: dict[str, bool]) -> int:
    """One short session of the TMJ program on the Coyote 3 simulator; its session id."""
    session = engine.connect("sim:coyote3").start(
        TMJ, patient=patient, screening=screening, duration_s=3
    )
    assert session.wait(30).outcome == "completed"
    assert engine.store is not None and session.session_id is not None
    engine.store.flush()
    return session.session_id


# --- the screening: two parts, the full part expires ---------------------------------------


def test_a_pending_screening_asks_the_day_of_part_when_the_full_one_is_valid(
    engine: Engine,
) -> None:
    device = engine.connect("sim:coyote3")
    program = load_program(TMJ)
    first = prepare(device, program, patient="P-1")
    assert first.pending == (Pending.SCREENING,)
    assert first.questions == SCREENING_QUESTIONS and not first.day_of_only
    run_once(engine, "P-1", NO)
    second = prepare(device, program, patient="P-1")
    assert second.pending == (Pending.SCREENING,)  # the day-of part: every session
    assert second.questions == DAY_OF_QUESTIONS and second.day_of_only
    assert "answer the 8 day-of questions" in second.prompt(Pending.SCREENING)
    # a year and a day later the full part is asked again
    later = prepare(device, program, patient="P-1", now=now_utc() + timedelta(days=366))
    assert later.questions == SCREENING_QUESTIONS


def test_the_plan_and_the_record_say_what_was_reused_and_from_when(engine: Engine) -> None:
    first_id = run_once(engine, "P-2", NO)
    device = engine.connect("sim:coyote3")
    plan = prepare(device, load_program(TMJ), patient="P-2", screening=DAY_NO)
    [reused] = plan.of_kind(ItemKind.SCREENING_REUSED)
    today = now_utc().date().isoformat()
    assert reused.text == (
        f"screening: the full screening answered on {today} in session {first_id} is reused "
        f"(from the record of session {first_id} of {today}); the day-of questions were "
        "answered for this session"
    )
    second_id = run_once(engine, "P-2", DAY_NO)
    assert engine.store is not None
    record = engine.store.session(second_id).screening
    view = screening_view(record)
    assert any("reused from session" in when for _q, _a, when in view.rows)
    assert f"The full screening: answered {today} in session {first_id}; reused from session" in (
        " ".join(view.notes)
    )


def test_an_expired_full_screening_is_refused_until_answered_again(engine: Engine) -> None:
    run_once(engine, "P-3", NO)
    device = engine.connect("sim:coyote3")
    program = load_program(TMJ)
    later = now_utc() + timedelta(days=FULL_SCREENING_VALID_DAYS + 1)
    with pytest.raises(ScreeningError) as info:
        prepare(device, program, patient="P-3", screening=DAY_NO, now=later)
    assert "is older than 365 days (our policy)" in str(info.value)
    assert "answer the full screening again" in str(info.value)
    assert "\n" not in str(info.value)
    assert prepare(device, program, patient="P-3", screening=NO, now=later).ready


def test_a_setting_can_lower_the_validity_but_never_raise_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_once(engine, "P-4", NO)
    device = engine.connect("sim:coyote3")
    program = load_program(TMJ)
    in_40_days = now_utc() + timedelta(days=40)
    assert prepare(device, program, patient="P-4", screening=DAY_NO, now=in_40_days).ready
    monkeypatch.setenv(VALID_DAYS_SETTING, "30")
    assert configured_valid_days() == 30
    with pytest.raises(ScreeningError, match="older than 30 days"):
        prepare(device, program, patient="P-4", screening=DAY_NO, now=in_40_days)
    with pytest.raises(ScreeningError, match="older than 10 days"):  # an argument lowers too
        prepare(device, program, patient="P-4", screening=DAY_NO, now=in_40_days, valid_days=10)
    monkeypatch.setenv(VALID_DAYS_SETTING, "400")
    with pytest.raises(ScreeningError) as info:
        prepare(device, program, patient="P-4", screening=DAY_NO)
    assert str(info.value) == (
        "ACUSTIM_SCREENING_VALID_DAYS = 400 days; allowed 1..365 (a setting can only lower "
        "the 12-month policy)"
    )
    monkeypatch.setenv(VALID_DAYS_SETTING, "a year")
    with pytest.raises(ScreeningError, match="'a year' is not a whole number of days"):
        configured_valid_days()
    monkeypatch.delenv(VALID_DAYS_SETTING)
    with pytest.raises(ScreeningError, match=r"= 366 days; allowed 1\.\.365"):
        prepare(device, program, patient="P-4", screening=DAY_NO, valid_days=366)


@pytest.mark.parametrize("key", ["history_changed", "new_implant"])
def test_a_changed_history_asks_the_full_screening_again(engine: Engine, key: str) -> None:
    run_once(engine, "P-5", NO)
    device = engine.connect("sim:coyote3")
    program = load_program(TMJ)
    with pytest.raises(ScreeningError, match=f"{key} answered yes: the full screening of"):
        prepare(device, program, patient="P-5", screening={**DAY_NO, key: True})
    fresh = prepare(device, program, patient="P-5", screening={**NO, key: True})
    assert fresh.ready and fresh.of_kind(ItemKind.SCREENING_REUSED) == ()


def test_an_older_record_without_parts_is_not_reused(engine: Engine) -> None:
    assert engine.store is not None
    old = {"version": 1, "answers": {"pacemaker": False}, "acknowledged": [], "ok": True}
    engine.store.start_session(program=TMJ, device="d", profile="p", patient="P-6", screening=old)
    plan = prepare(engine.connect("sim:coyote3"), load_program(TMJ), patient="P-6")
    assert plan.questions == SCREENING_QUESTIONS


# --- current between channels -------------------------------------------------------------


def test_a_cross_channel_path_is_refused_on_a_device_without_isolated_outputs(
    engine: Engine,
) -> None:
    program = load_program("facial-muscle-tension")  # ST7-L (A) and ST7-R (B): transcerebral
    for spec in ("sim:coyote3", "sim:coyote2", "sim:pulsepal"):
        device = engine.connect(spec)
        before = writes(device)
        with pytest.raises(PlacementError) as info:
            device.start(program, levels={"A": 5})
        assert "ST7-L (A) and ST7-R (B) would be refused as a pair (transcerebral)" in str(
            info.value
        )
        assert "outputs are not isolated from each other" in str(info.value)
        assert writes(device) == before
    # the ET-312: one output transformer per channel
    session = engine.connect("sim:et312").start(program, levels={"A": 5}, duration_s=2)
    assert session.wait(30).outcome == "completed"


def test_a_user_profile_may_only_give_up_isolation(engine: Engine, tmp_path: Path) -> None:
    from device_profiles.profile import builtin_folder

    text = (builtin_folder() / "et312.toml").read_text(encoding="utf-8")
    lowered = tmp_path / "et312-mine.toml"
    lowered.write_text(text.replace("isolated_outputs = true", "isolated_outputs = false"))
    device = engine.connect(f"sim:{lowered}")
    assert not device.profile.isolated_outputs
    with pytest.raises(PlacementError, match="would be refused as a pair"):
        device.start("facial-muscle-tension", levels={"A": 5})
    coyote = (builtin_folder() / "coyote3.toml").read_text(encoding="utf-8")
    claimed = tmp_path / "coyote3-mine.toml"
    claimed.write_text(coyote.replace("isolated_outputs = false", "isolated_outputs = true"))
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", TMJ, "--device", f"sim:{claimed}", "--virtual-time"], out=out, err=err)
    assert code == 2
    assert "[output] isolated_outputs = true: the built-in coyote3 profile has false" in (
        err.getvalue()
    )


# --- the ceiling on the face of an uncalibrated device --------------------------------------


def test_an_uncalibrated_device_on_the_face_runs_under_our_ceiling_and_records_it(
    engine: Engine,
) -> None:
    session = engine.connect("sim:coyote3").start(TMJ, levels={"A": 10}, duration_s=2)
    assert [c.ceiling_du for c in session.limits.channels] == [50]  # 0.25 x 200, not 0.4
    assert session.wait(30).outcome == "completed"
    assert engine.store is not None and session.session_id is not None
    engine.store.flush()
    current = engine.store.session(session.session_id).screening["current"]
    assert current["current_known"] is False  # type: ignore[index]
    assert current["max_level_fraction"] == 0.25  # type: ignore[index]
    assert "current unknown" in str(current["text"])  # type: ignore[index]
    with pytest.raises(Exception, match=r"allowed 0\.\.50 du"):
        engine.connect("sim:coyote3").start(TMJ, ceilings={"A": 60})


def test_the_ceiling_is_for_uncalibrated_devices_and_head_sites_only(engine: Engine) -> None:
    # the Pulse Pal is calibrated (nominal): its current caps apply, not our ceiling
    plan = prepare(engine.connect("sim:pulsepal"), load_program(TMJ))
    assert plan.of_kind(ItemKind.CURRENT_UNKNOWN) == ()
    assert [c.ceiling_du for c in plan.limits.channels] == [4000]  # the program's 0.4
    legs = continuous(channels={"A": ("ST36-L", "SP6-L")})
    plan = prepare(engine.connect("sim:coyote3"), legs)
    assert plan.of_kind(ItemKind.CURRENT_UNKNOWN) == ()
    assert [c.ceiling_du for c in plan.limits.channels] == [200]


# --- the mouth ------------------------------------------------------------------------------


def test_a_pair_straight_across_the_lips_is_refused(engine: Engine) -> None:
    program: Program = continuous(channels={"A": ("GV26-M", "CV24-M")})
    for spec in ("sim:coyote3", "sim:pulsepal"):
        device = engine.connect(spec)
        before = writes(device)
        with pytest.raises(PlacementError, match="runs across the lips, covering the mouth"):
            device.start(program, levels={"A": 5})
        assert writes(device) == before and device.session is None


# --- the questions: the template, the terminal ----------------------------------------------


def test_the_template_shows_the_day_of_part_and_the_full_part() -> None:
    full = template()
    assert full.index("# --- part 1: the day of treatment") < full.index(
        "# --- part 2: the full screening"
    )
    for q in SCREENING_QUESTIONS:
        assert f'\n{q.key} = "?"\n' in full
    day = template(day_of_only=True)
    assert "part 2" not in day.split("[answers]")[1]
    assert all(f'\n{q.key} = "?"' in day for q in DAY_OF_QUESTIONS)
    assert not any(f'\n{q.key} = "?"' in day for q in FULL_QUESTIONS)
    out, err = io.StringIO(), io.StringIO()
    assert main(["screening", "--day-of"], out=out, err=err) == 0
    assert out.getvalue() == day


def test_the_terminal_asks_the_full_part_when_the_history_changed() -> None:
    day_keys = [q.key for q in DAY_OF_QUESTIONS]
    replies = iter(["y" if k == "history_changed" else "n" for k in day_keys] + ["n"] * 40)
    out = io.StringIO()
    answers, acknowledged = ask(out, lambda _prompt: next(replies), DAY_OF_QUESTIONS)
    assert set(answers) == set(NO)  # the full part was asked too
    assert answers["history_changed"] is True and acknowledged == []
    assert "answer the full screening again" in out.getvalue()
    replies = iter(["n"] * len(day_keys))
    answers, _ = ask(io.StringIO(), lambda _prompt: next(replies), DAY_OF_QUESTIONS)
    assert set(answers) == set(day_keys)


# --- the report's screening section ---------------------------------------------------------


def test_the_report_shows_the_screening_in_words_and_what_was_reused(engine: Engine) -> None:
    from acustim.report import build_report

    run_once(engine, "P-8", NO)
    second_id = run_once(engine, "P-8", DAY_NO)
    assert engine.store is not None
    page = render_html(build_report(engine.store, second_id))
    section = page.split('<h2 id="screening">')[1].split("<h2 ")[0]
    assert "Does the patient have a cardiac pacemaker?" in section
    assert "<td>no</td>" in section
    assert "reused from session" in section
    assert "Today, is the skin broken" in section and "for this session" in section
    for raw in ("{", "}", "[", "'answers'", "True", "False", "head_implant_active", "skin_broken"):
        assert raw not in section, raw


def test_an_older_record_shows_its_answers_in_words_and_says_no_dates() -> None:
    view = screening_view({"pacemaker": False, "epilepsy": None, "head_implant": True})
    assert view.rows == [
        ("Does the patient have a cardiac pacemaker?", "no", "not recorded"),
        ("Does the patient have epilepsy?", "not answered", "not recorded"),
        ("head implant", "yes", "not recorded"),
    ]
    assert "is not recorded (an older record)" in view.notes[0]
    assert screening_view({}).rows == []


def test_one_channel_of_a_bilateral_program_still_runs(engine: Engine) -> None:
    program = load_program("facial-muscle-tension")
    left = dataclasses.replace(program, channels=program.channels[:1])
    session = engine.connect("sim:coyote3").start(left, levels={"A": 5}, duration_s=2)
    assert session.wait(30).outcome == "completed"
