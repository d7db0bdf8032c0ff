"""A front-panel key on the ET-312 mid-session: the box's own program restarts, and the session
puts the box at zero and ends as a fault. Judged on the simulator's record.

Found by the fresh-eyes review: a mode start on the box reloads its defaults (intensity 0xFF,
moving selects), and a codec that writes only what changed never wrote the intensity again:
level A=20 (10 du delivered at knob 128) became 78 du 33 ms after the key and 127 du from about
14 s to the end, at 156 Hz, and the session "completed". Now every output frame reads the
intensity registers back; a register that does not read what was written ends the session.
"""

from __future__ import annotations

import asyncio

from acustim import Engine
from tests.programs import continuous


def test_a_front_panel_key_stops_output_and_ends_the_session_as_a_fault() -> None:
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:et312")
        sim = device.simulator
        sessions = []

        async def scenario() -> float:  # on the IO loop: virtual time cannot run ahead of it
            loop = asyncio.get_running_loop()
            sessions.append(
                device.start(
                    continuous(frequency_hz=50.0, pulse_width_us=150.0),
                    levels={"A": 20},
                    duration_s=30,
                )
            )
            await asyncio.sleep(10.0)
            sim.press_any_key()  # a front-panel key: the favourite mode (re)starts
            return loop.time()

        pressed_at = engine.io.run(scenario(), timeout_s=60)
        result = sessions[0].wait(60)
        record = sim.record
        before = record.max_output("A", pressed_at - 5.0, pressed_at - 0.01)
        # within two frames and their writes the box is driven to zero, and stays there
        after = record.max_output("A", pressed_at + 0.25, pressed_at + 20.0)
    assert 0 < before <= 10.0, before  # 20/256 of knob 128: what the guard vetted
    assert after == 0.0, after
    assert result.outcome == "fault", result
    assert "changed its own settings" in result.reason
    assert "switch it off at the device" in result.reason or "front-panel key" in result.reason
