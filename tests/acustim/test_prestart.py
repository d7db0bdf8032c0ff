"""The pre-start plan (``acustim.prestart``): one flow for the command line and the app.

What a plan holds (refusals raise; warnings and caveats as items; pending questions), that
``Device.start`` refuses a session whose plan items were not all confirmed, and that
``acustim run`` prints every item of the plan, each once, before streaming.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from acustim import (
    SCREENING_QUESTIONS,
    Device,
    Engine,
    ItemKind,
    Pending,
    PlanItem,
    UnconfirmedError,
    load_program,
    prepare,
)
from acustim.cli import main
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from safety.errors import LimitError
from safety.placement import PlacementError
from safety.screening import ScreeningError

NO = {q.key: False for q in SCREENING_QUESTIONS}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(virtual_time=True, records=tmp_path / "r.sqlite3")
    try:
        yield e
    finally:
        e.close()


def writes(device: Device) -> int:
    link = device.transport
    assert isinstance(link, ByteStreamLink | SimulatorLink)
    return link.writes


def kinds(items: tuple[PlanItem, ...]) -> list[ItemKind]:
    return [i.kind for i in items]


def test_a_device_that_stops_by_itself_shows_its_caveats_and_that_current_is_unknown(
    engine: Engine,
) -> None:
    device = engine.connect("sim:coyote3")
    plan = prepare(device, load_program("tmj-jaw-pain-left"), levels={"A": 20})
    assert plan.ready and plan.pending == () and plan.questions == ()
    assert kinds(plan.items) == [
        ItemKind.DEVICE_PULSE_WIDTH,
        ItemKind.UNCALIBRATED,
        ItemKind.CURRENT_UNKNOWN,
    ]
    assert plan.to_confirm == ()
    # uncalibrated and on the face: a quarter of full scale (our policy), not the program's 0.4
    assert [c.ceiling_du for c in plan.limits.channels] == [50]
    assert "sets pulse width itself" in plan.items[0].text
    assert "current (mA) and current density it delivers are unknown" in plan.items[1].text
    [unknown] = plan.warnings
    assert unknown.text.startswith("current unknown: DG-LAB Coyote 3.0 is not calibrated")
    assert "at most 25% of the device's full scale (our policy" in unknown.text


def test_a_box_that_runs_on_needs_a_yes_and_its_isolated_outputs_allow_both_sides(
    engine: Engine,
) -> None:
    device = engine.connect("sim:et312")
    plan = prepare(device, load_program("facial-muscle-tension"))
    assert kinds(plan.to_confirm) == [ItemKind.RUNS_ON]
    assert "keeps stimulating" in plan.to_confirm[0].text
    assert "runs its program on its own" in plan.to_confirm[0].text  # the profile's note
    assert kinds(plan.of_kind(ItemKind.PULSE_WIDTH)) == [ItemKind.PULSE_WIDTH] * 2
    # one output transformer per channel: no path between A and B to refuse or warn about
    assert plan.of_kind(ItemKind.CROSS_CHANNEL) == ()
    assert kinds(plan.warnings) == [ItemKind.CURRENT_UNKNOWN]
    assert all(i.caveat for i in plan.caveats) and not plan.warnings[0].caveat


def test_a_program_the_device_cannot_deliver_is_refused_with_what_it_can_run(
    engine: Engine,
) -> None:
    device = engine.connect("sim:et312")
    with pytest.raises(LimitError, match=r"Hz on channel A.*can run: facial-muscle-tension"):
        prepare(device, load_program("tmj-jaw-pain-left"))
    with pytest.raises(LimitError, match="can run: facial-muscle-tension"):
        device.start("tmj-jaw-pain-left")  # the engine says the same


def test_the_questions_still_open_are_pending_and_refused_when_left_open(
    engine: Engine,
) -> None:
    device = engine.connect("sim:coyote3")
    bells = load_program("bells-palsy-subacute-left")
    program = dataclasses.replace(bells, channels=bells.channels[:1])  # one channel: see below
    plan = prepare(device, program, patient="P-7")
    assert plan.pending == (Pending.ONSET_DAYS, Pending.SCREENING)
    assert plan.questions == SCREENING_QUESTIONS
    with pytest.raises(ScreeningError, match="days since onset"):
        plan.require_answers()
    plan = prepare(device, program, patient="P-7", onset_days=10)
    assert plan.pending == (Pending.SCREENING,)
    with pytest.raises(ScreeningError, match="patient P-7 has no screening for this session"):
        plan.require_answers()
    plan = prepare(device, program, patient="P-7", onset_days=10, screening=NO)
    assert plan.ready
    [onset] = plan.of_kind(ItemKind.ONSET)
    assert "mild stimulation only" in onset.text
    assert max(c.ceiling_du for c in plan.limits.channels) <= 0.2 * 200
    # refusals raise at once, pending or not
    with pytest.raises(ScreeningError, match="first 7 days"):
        prepare(device, program, onset_days=3)
    with pytest.raises(ScreeningError, match="blocked by pacemaker"):
        prepare(device, program, patient="P-7", screening={**NO, "pacemaker": True})
    # both channels: GB14-L (A) and ST4-L (B) would be refused as a pair (over the eye), and
    # the Coyote's outputs are not known to be isolated
    with pytest.raises(PlacementError, match="would be refused as a pair"):
        prepare(device, bells, patient="P-7", onset_days=10, screening=NO)


def test_start_refuses_a_session_whose_items_were_not_all_confirmed(engine: Engine) -> None:
    device = engine.connect("sim:et312")
    program = load_program("facial-muscle-tension")
    plan = prepare(device, program, levels={"A": 5})
    unconfirmed = [i for i in plan.items if i.kind is not ItemKind.RUNS_ON]
    before = writes(device)  # what connecting wrote
    with pytest.raises(UnconfirmedError, match=r"1 pre-start item not confirmed: .*keeps"):
        device.start(program, levels={"A": 5}, confirmed=unconfirmed)
    assert device.session is None
    assert writes(device) == before
    # every item confirmed: the session runs under the limits the plan showed
    session = device.start(program, levels={"A": 5}, confirmed=plan.items)
    assert session.limits == plan.limits
    session.stop()
    assert session.wait(30).outcome == "stopped"


def test_a_script_without_confirmed_is_not_checked(engine: Engine) -> None:
    session = engine.connect("sim:et312").start("facial-muscle-tension", duration_s=2)
    assert session.wait(30).outcome == "completed"


def test_acustim_run_prints_every_plan_item_once_before_streaming(engine: Engine) -> None:
    plan = prepare(engine.connect("sim:et312"), load_program("facial-muscle-tension"))
    out, err = io.StringIO(), io.StringIO()
    argv = ["run", "facial-muscle-tension", "--device", "sim:et312", "--level", "A=5"]
    code = main([*argv, "--duration", "3", "--virtual-time", "--no-record"], out=out, err=err)
    assert code == 0, err.getvalue()
    printed = out.getvalue() + err.getvalue()
    for item in plan.items:
        if item.kind is ItemKind.UNCALIBRATED:
            assert "ET-312B / MK-312BT, uncalibrated)" in out.getvalue()
        else:  # once: the session's own repeat for the record is not printed again
            assert printed.count(item.text) == 1, (item.text, printed)
    assert f"  WARNING: {plan.to_confirm[0].text}\n" in err.getvalue()
    before_stream = out.getvalue().split("Ctrl-C stops output at once.")[0]
    assert "[00:" not in before_stream
