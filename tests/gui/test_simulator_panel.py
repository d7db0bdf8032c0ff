"""The simulator fault panel: each button does its fault to the simulator (on the IO loop),
the session answers as it does to a real device, and one sentence goes to the event log.

Wall-clock engine (tests/gui/conftest.py), the simulators over their in-process links.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from acustim.engine import Device, Engine, Session
from acustim.events import EventKind, SessionEvent
from gui import theme
from gui.panels.simulator import LOW_BATTERY_PERCENT, SimulatorPanel
from simulators.clock import WallClock
from simulators.et312 import Et312Simulator
from simulators.hosting.pty import PtyHost
from tests.gui.conftest import on_io
from tests.programs import ONE_CHANNEL

#: a level well inside each device's scale (as tests/faults uses)
LEVELS = {"coyote3": 10, "coyote2": 100, "et312": 10, "pulsepal": 500}


class Log:
    """The event log's side: every sentence the panel emitted."""

    def __init__(self, panel: SimulatorPanel) -> None:
        self.lines: list[str] = []
        panel.fault_injected.connect(self.lines.append)


def make(qtbot: QtBot, device: Device | None = None) -> SimulatorPanel:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply(app)
    panel = SimulatorPanel()
    qtbot.addWidget(panel)
    panel.set_device(device)
    return panel


def start(
    engine: Engine, device_id: str, *, reconnect_s: float = 0.0
) -> tuple[Device, Session, list[SessionEvent]]:
    """A running session at a steady level on ``sim:<device_id>``."""
    device = engine.connect(f"sim:{device_id}")
    events: list[SessionEvent] = []
    session = device.start(
        ONE_CHANNEL,
        levels={"A": LEVELS[device_id]},
        rise_fraction_per_s=0.05,
        reconnect_s=reconnect_s,
        on_notice=events.append,
    )
    return device, session, events


def wait_running(qtbot: QtBot, session: Session, level: int) -> None:
    def ready() -> bool:
        if session.done:  # say why instead of timing out (a watchdog under load, say)
            raise AssertionError(f"the session ended before the fault: {session.wait(0)}")
        status = session.status()
        return (
            status.state == "running"
            and bool(status.channels)
            and status.channels[0].level_du == level
        )

    qtbot.waitUntil(ready, timeout=8000)


def kinds(events: list[SessionEvent]) -> list[EventKind]:
    return [e.kind for e in list(events)]


# --- which faults, and when ------------------------------------------------------------------


def test_hidden_without_a_device(qtbot: QtBot) -> None:
    panel = make(qtbot)
    assert panel.isHidden() and panel.buttons == {}


def test_hidden_for_a_real_serial_device(qtbot: QtBot, engine: Engine) -> None:
    """A device reached through a serial port (here a pty the ET-312 simulator serves, as
    ``acustim simulate et312 --pty`` does) is a real device to the app: no fault buttons."""
    clock = WallClock()
    host = PtyHost(Et312Simulator(clock), clock.now_s).start()
    try:
        device = engine.connect(f"et312@{host.path}")
        assert device.simulator is None
        panel = make(qtbot, engine.connect("sim:et312"))
        assert not panel.isHidden() and panel.buttons
        panel.set_device(device)
        assert panel.isHidden() and panel.buttons == {} and panel.device is None
        device.close()
    finally:
        host.stop()


@pytest.mark.parametrize(
    ("device_id", "expected"),
    [
        (
            "coyote3",
            {"drop_link", "reboot", "low_battery", "wheel_down:A", "wheel_up:A"}
            | {"wheel_down:B", "wheel_up:B"},
        ),
        (
            "coyote2",
            {"drop_link", "reboot", "low_battery", "wheel_down:A", "wheel_up:A"}
            | {"wheel_down:B", "wheel_up:B"},
        ),
        (
            "et312",
            {"drop_link", "reboot", "low_battery", "stop_answering", "panel_key"}
            | {"knob_down:A", "knob_up:A", "knob_down:B", "knob_up:B"},
        ),
        ("pulsepal", {"drop_link", "reboot", "stop_answering"}),
    ],
)
def test_each_simulator_gets_the_faults_it_has(
    qtbot: QtBot, engine: Engine, device_id: str, expected: set[str]
) -> None:
    device = engine.connect(f"sim:{device_id}")
    panel = make(qtbot, device)
    panel.show()
    assert panel.isVisible()
    assert set(panel.buttons) == expected
    for key, button in panel.buttons.items():
        assert button.toolTip(), key
        assert button.accessibleName(), key
        assert button.shortcut().isEmpty(), key  # Space and Esc are STOP; no shortcut at all
    assert device.spec in panel.note.text()
    panel.set_device(None)
    assert panel.isHidden() and panel.buttons == {} and panel.device is None


# --- each fault, seen on the simulator and in the session ------------------------------------


def test_wheel_up_and_down_move_the_device_and_the_guard_follows(
    qtbot: QtBot, engine: Engine
) -> None:
    device, session, events = start(engine, "coyote3")
    sim = device.simulator
    panel = make(qtbot, device)
    log = Log(panel)
    wait_running(qtbot, session, 10)
    qtbot.waitUntil(lambda: on_io(engine, lambda: sim.strength_du("A")) == 10, timeout=3000)

    panel.buttons["wheel_up:A"].click()
    assert on_io(engine, lambda: sim.strength_du("A")) == 20  # the device's own wheel moved
    assert log.lines == [
        "Simulator fault \u201cWheel A +\u201d on sim:coyote3:"
        " the device's strength A went from 10 to 20 du."
    ]
    # the session hears of it; the guard follows the device up, at the soft-start rate from
    # the level it had (the host writes that level back, then ramps)
    qtbot.waitUntil(
        lambda: any(
            e.kind is EventKind.DEVICE_LEVEL and "ramping to 20 du" in e.message for e in events
        ),
        timeout=3000,
    )
    assert session.status().channels[0].target_du == 20
    qtbot.waitUntil(lambda: session.status().channels[0].level_du == 20, timeout=3000)
    qtbot.waitUntil(lambda: on_io(engine, lambda: sim.strength_du("A")) == 20, timeout=3000)

    panel.buttons["wheel_down:A"].click()  # a fall is followed at once
    assert on_io(engine, lambda: sim.strength_du("A")) == 10
    qtbot.waitUntil(lambda: session.status().channels[0].target_du == 10, timeout=3000)
    assert session.status().channels[0].level_du == 10
    assert "from 20 to 10 du" in log.lines[-1]
    assert not session.done
    session.stop("test over")
    assert session.wait(5).outcome == "stopped"


def test_drop_link_ends_the_session_as_a_fault(qtbot: QtBot, engine: Engine) -> None:
    device, session, events = start(engine, "coyote3")
    panel = make(qtbot, device)
    log = Log(panel)
    wait_running(qtbot, session, 10)
    panel.buttons["drop_link"].click()
    result = session.wait(5)
    assert result.outcome == "fault"
    assert EventKind.LINK_LOST in kinds(events)
    assert log.lines == ["Simulator fault \u201cDrop link\u201d on sim:coyote3: the link is down."]
    panel.buttons["drop_link"].click()
    assert log.lines[-1].endswith("the link was already down.")


def test_drop_link_with_reconnect_comes_back_at_zero(qtbot: QtBot, engine: Engine) -> None:
    device, session, events = start(engine, "coyote3", reconnect_s=10.0)
    sim = device.simulator
    panel = make(qtbot, device)
    wait_running(qtbot, session, 10)
    panel.buttons["drop_link"].click()
    qtbot.waitUntil(lambda: EventKind.RECONNECTED in kinds(events), timeout=8000)
    assert not session.done
    # levels never come back by themselves
    qtbot.waitUntil(lambda: session.status().channels[0].level_du == 0, timeout=3000)
    back = on_io(engine, lambda: sim.record.end_s)
    qtbot.wait(1000)
    assert not session.done and session.status().channels[0].level_du == 0
    assert on_io(engine, lambda: sim.record.max_output("A", back, sim.record.end_s)) == 0.0
    assert on_io(engine, lambda: sim.strength_du("A")) == 0
    session.stop("test over")
    session.wait(5)


@pytest.mark.parametrize("device_id", ["coyote3", "et312"])
def test_low_battery_sets_the_simulator_to_5_percent(
    qtbot: QtBot, engine: Engine, device_id: str
) -> None:
    device, session, events = start(engine, device_id)
    sim = device.simulator
    panel = make(qtbot, device)
    log = Log(panel)
    wait_running(qtbot, session, LEVELS[device_id])
    button = panel.buttons["low_battery"]
    button.click()
    assert button.isChecked()
    assert on_io(engine, lambda: sim.record.events_of("battery"))[-1][2] == "battery 5 %"
    assert log.lines[-1].endswith(f" {LOW_BATTERY_PERCENT} %.")
    if device_id == "coyote3":  # it notifies at once (the ET-312 is read every few seconds)
        assert on_io(engine, lambda: sim.battery_percent) == LOW_BATTERY_PERCENT
        qtbot.waitUntil(lambda: EventKind.LOW_BATTERY in kinds(events), timeout=3000)
    button.click()  # back to full
    assert not button.isChecked()
    assert on_io(engine, lambda: sim.record.events_of("battery"))[-1][2] == "battery 100 %"
    assert log.lines[-1].startswith("Simulator fault \u201cLow battery ended\u201d")
    session.stop("test over")
    session.wait(5)


def test_et312_knob_is_reported_by_the_session(qtbot: QtBot, engine: Engine) -> None:
    device, session, events = start(engine, "et312")
    sim = device.simulator
    panel = make(qtbot, device)
    log = Log(panel)
    wait_running(qtbot, session, 10)
    knobs_before = len(on_io(engine, lambda: sim.record.events_of("knob")))
    reported_before = kinds(events).count(EventKind.KNOB)
    panel.buttons["knob_down:A"].click()
    knobs = on_io(engine, lambda: sim.record.events_of("knob"))
    assert len(knobs) == knobs_before + 1
    position = int(knobs[-1][2].split()[-1])
    assert log.lines[-1].endswith(f"its front knob now reads {position} of 255.")
    qtbot.waitUntil(lambda: kinds(events).count(EventKind.KNOB) > reported_before, timeout=5000)
    assert not session.done
    session.stop("test over")
    session.wait(5)


def test_et312_front_panel_key_ends_the_session(qtbot: QtBot, engine: Engine) -> None:
    device, session, _events = start(engine, "et312")
    sim = device.simulator
    panel = make(qtbot, device)
    log = Log(panel)
    wait_running(qtbot, session, 10)
    before = len(on_io(engine, lambda: sim.record.events))
    panel.buttons["panel_key"].click()
    new = [k for _t, k, _m in on_io(engine, lambda: sim.record.events)[before:]]
    assert new[:1] == ["key_press"] and "mode_start" in new
    assert log.lines[-1].endswith("the box started its favourite mode.")
    result = session.wait(8)  # the host sees the box change its own settings
    assert result.outcome == "fault" and "Press no keys on the box" in result.reason


def test_et312_that_stops_answering_ends_the_session(qtbot: QtBot, engine: Engine) -> None:
    device, session, _events = start(engine, "et312")
    sim = device.simulator
    panel = make(qtbot, device)
    log = Log(panel)
    wait_running(qtbot, session, 10)
    silent = panel.buttons["stop_answering"]
    silent.click()
    assert silent.isChecked()
    assert log.lines[-1].endswith("it reads and obeys bytes but sends nothing back.")
    result = session.wait(8)
    assert result.outcome == "fault"
    assert "WARNING" in result.reason  # the box runs on: switch it off at the device
    silent.click()
    assert not silent.isChecked()
    assert on_io(engine, lambda: sim.record.events_of("stop_answering"))[-1][2] == "off"
    assert log.lines[-1].endswith("it answers again.")


def test_reboot_ends_the_session(qtbot: QtBot, engine: Engine) -> None:
    device, session, _events = start(engine, "coyote3")
    sim = device.simulator
    panel = make(qtbot, device)
    wait_running(qtbot, session, 10)
    panel.buttons["reboot"].click()
    assert on_io(engine, lambda: sim.record.events_of("power_cycle"))
    assert session.wait(8).outcome == "fault"


# --- every call on the IO loop; a failure is a sentence ----------------------------------------


def test_electrode_off_where_a_simulator_has_it_runs_on_the_io_loop(
    qtbot: QtBot, engine: Engine
) -> None:
    device = engine.connect("sim:coyote3")
    sim = device.simulator
    calls: list[tuple[str, bool, str]] = []

    def set_electrode_off(channel: str, off: bool) -> None:
        calls.append((channel, off, threading.current_thread().name))

    # no built-in simulator has the fault yet: give this one the method the panel looks for
    sim.set_electrode_off = set_electrode_off
    panel = make(qtbot, device)
    log = Log(panel)
    button = panel.buttons["electrode_off:B"]
    button.click()
    button.click()
    io_thread = on_io(engine, lambda: threading.current_thread().name)
    assert calls == [("B", True, io_thread), ("B", False, io_thread)]
    assert io_thread != threading.current_thread().name
    assert log.lines[0].endswith("electrode B is off the skin.")
    assert log.lines[1].endswith("electrode B is back on.")


def test_the_simulator_is_only_touched_on_the_io_loop(qtbot: QtBot, engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    sim = device.simulator
    seen: list[str] = []
    original: Callable[..., Any] = sim.turn_wheel

    def watched(channel: str, delta: int) -> None:
        seen.append(threading.current_thread().name)
        original(channel, delta)

    sim.turn_wheel = watched
    panel = make(qtbot, device)
    panel.buttons["wheel_up:A"].click()
    assert seen == [on_io(engine, lambda: threading.current_thread().name)]
    assert seen[0] != threading.current_thread().name


def test_a_fault_that_fails_is_a_sentence_not_a_traceback(qtbot: QtBot, engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    sim = device.simulator

    def broken(percent: int) -> None:
        raise ValueError(f"battery percent must be within 0..100, got {percent}")

    sim.set_battery = broken
    panel = make(qtbot, device)
    log = Log(panel)
    button = panel.buttons["low_battery"]
    button.click()
    assert not button.isChecked()  # it did not happen: the toggle says so
    assert log.lines == [
        "Simulator fault \u201cLow battery\u201d on sim:coyote3 failed:"
        " battery percent must be within 0..100, got 5"
    ]
    assert panel.last.text() == log.lines[0]
