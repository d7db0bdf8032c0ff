"""The calibration dialog (real Qt offscreen, a real-time engine on the simulators): a run with
the virtual meter and one with readings typed by hand store a record; Stop mid-run stores
nothing and leaves the simulator's output at zero; no tick, no Start; a refusal is one line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from acustim.engine import Device, Engine
from gui import theme
from gui.calibration import STOPPED_TEXT, CalibrationDialog

#: small levels: the guard's soft start ramps 2 % of full scale a second, on the wall clock
CAP = 60


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(virtual_time=False, records=tmp_path / "records.sqlite3")
    try:
        yield e
    finally:
        e.close()


def stored() -> list[Path]:
    folder = Path(os.environ["ACUSTIM_DATA_DIR"]) / "calibrations"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def click(qtbot: QtBot, widget: QWidget) -> None:
    """A mouse click (never Space: the app's key filter swallows it on buttons)."""
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def open_dialog(qtbot: QtBot, device: Device) -> CalibrationDialog:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply(app)  # as the app does (the screenshots show it)
    dialog = CalibrationDialog(device)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def fill(qtbot: QtBot, dialog: CalibrationDialog, *, virtual: bool, tick: bool = True) -> None:
    dialog.by.setText("J. Smith")
    dialog.cap.setValue(CAP)
    if virtual:
        click(qtbot, dialog.virtual)
        assert dialog.virtual.isChecked()
    if tick:
        click(qtbot, dialog.no_person)
        assert dialog.no_person.isChecked()


def finish(qtbot: QtBot, dialog: CalibrationDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.running, timeout=30000)


def delivered_now(device: Device) -> dict[str, float]:
    """The simulator's virtual scope on each output (mA peak), from its own record."""
    return device.on_simulator(lambda sim: {ch: sim.meter(ch) for ch in "ABCD"})


def test_a_run_with_the_virtual_meter_is_stored_and_shown(qtbot: QtBot, engine: Engine) -> None:
    device = engine.connect("sim:pulsepal")
    dialog = open_dialog(qtbot, device)
    assert dialog.virtual.isVisible()
    fill(qtbot, dialog, virtual=True)
    assert "15, 30, 45, 60 mV" in dialog.levels_label.text()
    assert dialog.start_button.isEnabled()
    click(qtbot, dialog.start_button)
    assert dialog.running
    finish(qtbot, dialog)
    assert dialog.outcome == "stored", dialog.result_banner.text()
    assert dialog.record is not None
    [path] = stored()
    data = json.loads(path.read_text())
    assert data["by"] == "J. Smith" and data["meter"] == "peak"
    true = device.on_simulator(lambda sim: max(g for _c, g in sim.output_stage.gains_ma_per_du))
    assert data["peak_ma_per_du"] == pytest.approx(true, rel=0.02)
    text = dialog.result_banner.text()
    assert "Stored: calibrated on" in text and "by J. Smith" in text and "expires" in text
    assert "worst reading" in text and "verification" in text and str(path) in text
    assert dialog.log.count() >= 4 * 5  # every reading taken is listed
    assert device.calibration is not None  # applied to the device at once
    assert max(delivered_now(device).values()) == 0
    dialog.grab().save("/tmp/cal-virtual.png")


def test_readings_typed_by_hand_are_stored(qtbot: QtBot, engine: Engine) -> None:
    device = engine.connect("sim:pulsepal")
    gains = device.on_simulator(lambda sim: dict(sim.output_stage.gains_ma_per_du))
    dialog = open_dialog(qtbot, device)
    fill(qtbot, dialog, virtual=False)
    click(qtbot, dialog.start_button)
    for _ in range(4 * 5):  # four levels and the verification, on each channel
        qtbot.waitUntil(lambda: dialog.enter_button.isEnabled(), timeout=15000)
        assert dialog._asked is not None
        channel, level = dialog._asked
        assert dialog.prompt.text() == (
            f"Channel {channel} holds {level} mV: measured peak current in mA"
        )
        if channel == "B" and level == 30:
            dialog.grab().save("/tmp/cal-asking.png")
            dialog.reading.setText("abc")  # not a number: asked again, the level still held
            click(qtbot, dialog.enter_button)
            assert "not a number" in dialog.reading_error.text()
            assert dialog.enter_button.isEnabled()
        dialog.reading.setText(f"{gains[channel] * level:.6f}")
        click(qtbot, dialog.enter_button)
    finish(qtbot, dialog)
    assert dialog.outcome == "stored", dialog.result_banner.text()
    [path] = stored()
    assert json.loads(path.read_text())["peak_ma_per_du"] == pytest.approx(
        max(gains.values()), rel=1e-3
    )
    assert "Stored: calibrated on" in dialog.result_banner.text()


@pytest.mark.parametrize("how", ["button", "esc", "close"])
def test_stop_mid_run_stores_nothing_and_output_is_zero(
    qtbot: QtBot, engine: Engine, how: str
) -> None:
    device = engine.connect("sim:pulsepal")
    dialog = open_dialog(qtbot, device)
    fill(qtbot, dialog, virtual=False)
    click(qtbot, dialog.start_button)
    qtbot.waitUntil(lambda: dialog.enter_button.isEnabled(), timeout=15000)
    assert dialog._asked == ("A", 15)
    # the device holds the level: output is on
    gain = device.on_simulator(lambda sim: sim.output_stage.gain_ma_per_du("A"))
    assert delivered_now(device)["A"] == pytest.approx(gain * 15, rel=1e-3)
    if how == "button":
        click(qtbot, dialog.stop_button)
    elif how == "esc":
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
    else:
        dialog.close()
    finish(qtbot, dialog)
    assert dialog.outcome == "stopped"
    assert stored() == []
    assert device.session is not None and device.session.done
    assert device.session.wait(1).outcome == "stopped"
    assert max(delivered_now(device).values()) == 0
    assert device.on_simulator(lambda sim: sim.record.first_time_output_zero_after("A", 0.0))
    if how == "close":
        qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5000)  # closed once at zero
    else:
        assert dialog.isVisible() and STOPPED_TEXT in dialog.result_banner.text()


def test_stop_while_the_level_ramps_up_stores_nothing(qtbot: QtBot, engine: Engine) -> None:
    """Stop before any reading is asked (the guard's soft start still raising A): the
    session is stopped from the GUI thread at once, not at the next reading."""
    device = engine.connect("sim:pulsepal")
    dialog = open_dialog(qtbot, device)
    fill(qtbot, dialog, virtual=True)
    dialog.cap.setValue(2000)  # 500 mV first: several seconds of ramp
    click(qtbot, dialog.start_button)
    qtbot.waitUntil(
        lambda: device.session is not None and delivered_now(device)["A"] > 0, timeout=10000
    )
    click(qtbot, dialog.stop_button)
    finish(qtbot, dialog)
    assert dialog.outcome == "stopped" and STOPPED_TEXT in dialog.result_banner.text()
    assert dialog.log.count() == 2  # the plan's two items; no reading was taken
    assert stored() == []
    assert device.session is not None and device.session.wait(1).outcome == "stopped"
    assert max(delivered_now(device).values()) == 0


def test_start_needs_the_no_person_tick_and_who_measured(qtbot: QtBot, engine: Engine) -> None:
    device = engine.connect("sim:pulsepal")
    dialog = open_dialog(qtbot, device)
    fill(qtbot, dialog, virtual=True, tick=False)
    assert not dialog.start_button.isEnabled()
    assert "no person" in dialog.start_button.toolTip()
    click(qtbot, dialog.start_button)
    assert not dialog.running
    click(qtbot, dialog.no_person)
    assert dialog.start_button.isEnabled()
    dialog.by.setText("  ")
    assert not dialog.start_button.isEnabled()
    assert device.session is None  # nothing was started


def test_a_refused_calibration_is_one_line(qtbot: QtBot, engine: Engine) -> None:
    device = engine.connect("sim:coyote2")
    dialog = open_dialog(qtbot, device)
    fill(qtbot, dialog, virtual=True)
    click(qtbot, dialog.start_button)
    finish(qtbot, dialog)
    assert dialog.outcome == "refused"
    text = dialog.result_banner.text()
    assert text.startswith("Not calibrated: ") and "bursts" in text and "\n" not in text
    assert "Traceback" not in text
    assert stored() == [] and device.session is None
    dialog.grab().save("/tmp/cal-refused.png")
