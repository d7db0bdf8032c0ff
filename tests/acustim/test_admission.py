"""Admission, the checks before a session (placement, onset, screening; ``acustim.admission``):
refused before anything is sent."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from acustim import Engine
from acustim.cli import main
from acustim.commands._common import UsageError
from acustim.commands.screening import ask, load_answers, template
from firmware_bridge.link import SimulatorLink
from safety.placement import PlacementError
from safety.screening import DAY_OF_QUESTIONS, FULL_QUESTIONS, SCREENING_QUESTIONS, ScreeningError
from tests.programs import continuous
from waveforms.builtin import load_builtin
from waveforms.program import Program

NO = {q.key: False for q in SCREENING_QUESTIONS}
DAY_NO = {q.key: False for q in DAY_OF_QUESTIONS}


def one_channel(name: str) -> Program:
    """A built-in program with its first channel only (two channels whose sites would be
    refused as a pair are refused on a device whose outputs are not isolated)."""
    program = load_builtin(name)
    return dataclasses.replace(program, channels=program.channels[:1])


#: one pair from one side of the head to the other: refused (transcerebral)
ACROSS_THE_HEAD = continuous(
    name="across", title="Across the head", channels={"A": ("ST6-L", "ST6-R")}
)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(virtual_time=True, records=tmp_path / "r.sqlite3")
    yield e  # type: ignore[misc]
    e.close()


def writes(device: object) -> int:
    link = device.transport  # type: ignore[attr-defined]
    assert isinstance(link, SimulatorLink)
    return link.writes


def test_a_pair_across_the_head_is_refused_before_anything_is_sent(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    with pytest.raises(PlacementError, match="transcerebral"):
        device.start(ACROSS_THE_HEAD, levels={"A": 5})
    assert writes(device) == 0


def test_bells_palsy_in_the_first_week_is_refused_and_later_capped(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    bells = one_channel("bells-palsy-subacute-left")
    with pytest.raises(ScreeningError, match="first 7 days"):
        device.start(bells, onset_days=5)
    assert writes(device) == 0
    session = device.start(bells, onset_days=10, duration_s=5)
    ceilings = [c.ceiling_du for c in session.limits.channels]
    assert max(ceilings) <= 0.2 * 200  # mild only in the rest of the acute phase
    session.wait(30)


def test_the_full_screening_is_reused_and_the_day_of_part_asked_every_session(
    engine: Engine,
) -> None:
    device = engine.connect("sim:coyote3")
    with pytest.raises(ScreeningError, match="patient P-1 has no screening for this session"):
        device.start("tmj-jaw-pain-left", patient="P-1")
    with pytest.raises(ScreeningError, match="blocked by pacemaker"):
        device.start("tmj-jaw-pain-left", patient="P-1", screening={**NO, "pacemaker": True})
    with pytest.raises(ScreeningError, match="unanswered: pacemaker"):
        device.start("tmj-jaw-pain-left", patient="P-1", screening=DAY_NO)  # none on record
    assert writes(device) == 0
    first = device.start("tmj-jaw-pain-left", patient="P-1", screening=NO, duration_s=5)
    first.wait(30)
    assert engine.store is not None
    engine.store.flush()
    recorded = engine.store.session(first.session_id or -1).screening
    assert recorded["ok"] is True
    assert recorded["answers"] == NO
    assert recorded["parts"]["full"]["reused"] is False  # type: ignore[index]
    # the next session: no answers is refused (the day-of part is asked every session) ...
    with pytest.raises(ScreeningError, match="no screening for this session"):
        device.start("tmj-jaw-pain-left", patient="P-1", duration_s=5)
    # ... the day-of answers alone are enough: the full part is reused, and says so
    second = device.start("tmj-jaw-pain-left", patient="P-1", screening=DAY_NO, duration_s=5)
    assert second.wait(30).outcome == "completed"
    engine.store.flush()
    again = engine.store.session(second.session_id or -1).screening
    assert again["answers"] == NO
    full = again["parts"]["full"]  # type: ignore[index]
    assert full["reused"] is True and full["reused_from_session"] == first.session_id
    assert full["answered_in_session"] == first.session_id
    assert full["answered_at"] == recorded["parts"]["full"]["answered_at"]  # type: ignore[index]
    assert again["parts"]["day"]["reused"] is False  # type: ignore[index]
    assert {q.key for q in FULL_QUESTIONS} <= set(again["answers"])  # type: ignore[arg-type]


def test_a_precaution_needs_an_acknowledgement(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    answers = {**NO, "epilepsy": True}
    with pytest.raises(ScreeningError, match="needs acknowledgement of epilepsy"):
        device.start("tmj-jaw-pain-left", patient="P-2", screening=answers)
    session = device.start(
        "tmj-jaw-pain-left",
        patient="P-2",
        screening=answers,
        acknowledged=["epilepsy"],
        duration_s=5,
    )
    assert session.wait(30).outcome == "completed"


def test_an_engineer_on_a_simulator_without_a_patient_needs_no_screening(engine: Engine) -> None:
    session = engine.connect("sim:coyote3").start("tmj-jaw-pain-left", duration_s=5)
    assert session.wait(30).outcome == "completed"


def test_the_screening_template_must_be_answered(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(template(), encoding="utf-8")
    with pytest.raises(UsageError, match="is not answered; allowed true or false"):
        load_answers(str(path))
    path.write_text(template().replace('= "?"', "= false"), encoding="utf-8")
    answers, acknowledged = load_answers(str(path))
    assert answers == NO
    assert acknowledged == []
    path.write_text("[answers\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not a screening file"):
        load_answers(str(path))
    with pytest.raises(UsageError, match="cannot read"):
        load_answers(str(tmp_path / "missing.toml"))
    path.write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"no \[answers\] table"):
        load_answers(str(path))


def test_the_terminal_asks_every_question_and_precautions_are_acknowledged() -> None:
    precaution = next(
        q for q in SCREENING_QUESTIONS if q.kind != "contraindication" and not q.forces_full
    )
    index = [q.key for q in SCREENING_QUESTIONS].index(precaution.key)
    scripted = ["maybe", "n"] + ["n"] * (len(SCREENING_QUESTIONS) - 1)
    scripted[index + 1] = "y"  # +1: the refused "maybe" comes first
    scripted.insert(index + 2, "ack")
    replies = iter(scripted)
    answers, acknowledged = ask(io.StringIO(), lambda prompt: next(replies))
    assert answers[precaution.key] is True
    assert acknowledged == [precaution.key]
    assert sum(answers.values()) == 1


def test_cli_screening_prints_a_template_and_run_uses_answers(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["screening"], out=out, err=err) == 0
    assert "[answers]" in out.getvalue()
    path = tmp_path / "a.toml"
    path.write_text(out.getvalue(), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "run",
            "tmj-jaw-pain-left",
            "--patient",
            "P-9",
            "--screening",
            str(path),
            "--virtual-time",
            "--no-record",
            "--quiet",
        ],
        out=out,
        err=err,
    )
    assert code == 2
    assert "is not answered" in err.getvalue()
