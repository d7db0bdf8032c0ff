"""The window's messages after a fault on a device that keeps stimulating by itself.

Wall clock, the ET-312 simulator over the in-process serial link, the flat program.
"""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from acustim.engine import Engine
from firmware_bridge.link import ByteStreamLink
from tests.gui.conftest import open_window


def test_a_lost_et312_link_never_claims_output_is_zero(
    qtbot: QtBot, engine: Engine, flat_program: Path
) -> None:
    """The serial link of an ET-312 (runs on when the host goes silent) drops mid-session.
    The box still delivers its last output; the runner's result says so ("WARNING: zero
    output was not confirmed ... switch it off at the device"). The window must not tell the
    practitioner the opposite."""
    window = open_window(
        qtbot, engine, program=str(flat_program), device="sim:et312", confirm=lambda _t, _x: True
    )
    assert window.device is not None
    sim = window.device.simulator
    link = window.device.transport
    assert isinstance(link, ByteStreamLink)
    window.start_session()
    qtbot.waitUntil(
        lambda: window.session is not None and window.session.status().state == "running",
        timeout=5000,
    )
    window.channels.cards["A"].slider.setValue(3)

    def output() -> float:
        return float(engine.io.call(lambda: sim.record.output_at("A", sim.record.end_s - 1e-3)))

    qtbot.waitUntil(lambda: output() > 0, timeout=5000)
    engine.io.call(lambda: link.drop("cable pulled"))
    session = window.session
    assert session is not None
    qtbot.waitUntil(lambda: session.done, timeout=5000)
    qtbot.wait(200)
    assert output() > 0  # the box runs on: this is the situation under test
    reason = session.wait(0).reason
    assert "WARNING" in reason
    banner = window.header.banner.text()
    assert "switch it off" in banner
    assert "Output is zero" not in banner, f"the banner contradicts the warning: {banner!r}"
