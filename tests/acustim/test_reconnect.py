"""After a lost link, output never resumes by itself: the practitioner raises a level again
once the device is back (its limits written again)."""

from __future__ import annotations

import asyncio

import pytest

from acustim import Engine
from firmware_bridge.link import SimulatorLink
from safety import LimitError
from tests.programs import TWO_CHANNELS


def test_a_level_set_while_the_link_is_down_does_not_resume_output_on_reconnect() -> None:
    """The link drops at 3 s (reconnect_s = 10) and the device is out of reach for ~3 s.
    Meanwhile a level command arrives (a key press on a slider, a script). The guard takes it
    as the target although no output is possible, so the moment the reconnect succeeds the
    output ramps up by itself, while the runner says "levels are at zero, raise a level to
    resume"."""
    notices: list[tuple[float, str, str]] = []
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        link = device.transport
        assert isinstance(link, SimulatorLink)
        sim = device.simulator
        marks: dict[str, float] = {}
        session = device.start(
            TWO_CHANNELS,
            levels={"A": 10},
            reconnect_s=10.0,
            on_notice=lambda e: notices.append((0.0, e.kind, e.message)),
        )

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(3.013)
            link.refuse_open = True
            link.drop("radio gone (test)")
            await asyncio.sleep(1.0)
            with pytest.raises(LimitError, match="reconnecting"):
                session.runner.set_level("A", 10)  # while nothing can be delivered: refused
            await asyncio.sleep(1.0)
            link.refuse_open = False  # the device is back; the next attempt reconnects
            await asyncio.sleep(2.0)
            marks["reconnected"] = loop.time()
            await asyncio.sleep(4.0)
            marks["end"] = loop.time()
            session.runner.stop("test over")

        engine.io.run(scenario(), timeout_s=20)
        session.wait(10)
        kinds = [k for _, k, _ in notices]
        assert "reconnected" in kinds
        resumed = sim.record.max_output("A", marks["reconnected"], marks["end"])
    assert resumed == 0.0, (
        f"output came back to {resumed} du after the reconnect with no level raised since"
    )
