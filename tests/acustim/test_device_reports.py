"""Device-side strength reports (the Coyote wheel, a soft-limit clamp) must never become output
the practitioner did not raise: not at session start, not across an emergency stop / pause.

Virtual time, in-process links, the simulators as the oracle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from acustim import Engine
from tests.programs import TWO_CHANNELS

#: the guard's default rise on a Coyote 3: 2 % of 200 du per second
COYOTE3_RISE_DU_PER_S = 4.0


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(virtual_time=True, records=False) as e:
        yield e


def test_persisted_device_strength_never_becomes_a_level_at_session_start(engine: Engine) -> None:
    """The Coyote 3 keeps its strength between connections. A new session with a lower
    ceiling writes BF (the device clamps 50 -> 30 and notifies B1 seq 0), then an absolute
    zero. The clamp's notification arrives after connect() returned and must not be taken
    for "the wheel": the practitioner asked for no level at all."""
    device = engine.connect("sim:coyote3")
    sim = device.simulator
    engine.io.call(lambda: sim.turn_wheel("A", 50))  # left there by earlier use of the box
    session = device.start(TWO_CHANNELS, levels={}, ceilings={"A": 30, "B": 30})
    seen: dict[str, object] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2.013)
        seen["level_before"] = session.runner.guard.level_du("A")
        seen["target_before"] = session.runner.guard.target_du("A")
        seen["t_raise"] = loop.time()
        session.runner.set_level("A", 10)
        await asyncio.sleep(0.307)
        seen["device_after_0_3s"] = sim.strength_du("A")
        session.runner.stop("test over")

    engine.io.run(scenario(), timeout_s=20)
    session.wait(10)
    # nobody raised channel A: the guard must still hold it at zero
    assert seen["level_before"] == 0, f"guard level jumped to {seen['level_before']} du"
    assert seen["target_before"] == 0
    # and a raise to 10 du must ramp on the device (4 du/s: ~1 du after 0.3 s), not jump
    assert seen["device_after_0_3s"] <= COYOTE3_RISE_DU_PER_S * 0.31 + 1, (
        f"device strength jumped to {seen['device_after_0_3s']} du 0.3 s after a raise"
    )


@pytest.mark.parametrize(("device_id", "level"), [("coyote3", 20), ("coyote2", 100)])
def test_a_pause_holds_when_a_wheel_report_crosses_it(
    engine: Engine, device_id: str, level: int
) -> None:
    """The wheel is turned (the device notifies its new strength) and, before that
    notification reaches the host, the practitioner presses pause. The device applies the
    host's zero after the wheel; the host must not follow the in-flight report back up."""
    device = engine.connect(f"sim:{device_id}")
    sim = device.simulator
    session = device.start(TWO_CHANNELS, levels={"A": level}, rise_fraction_per_s=0.05)
    marks: dict[str, float] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(8.013)  # the level has ramped up fully
        sim.turn_wheel("A", 5)  # its B1 / PWM_AB2 notification is now in flight
        session.runner.pause()  # ... and the practitioner pauses
        marks["pause"] = loop.time()
        await asyncio.sleep(3.007)
        marks["end"] = loop.time()
        session.runner.stop("test over")

    engine.io.run(scenario(), timeout_s=20)
    session.wait(10)
    record = sim.record
    after = record.max_output("A", marks["pause"] + 0.2, marks["end"])
    assert after == 0.0, f"{device_id}: output came back to {after} du after a pause"
    assert session.runner.guard.level_du("A") == 0
