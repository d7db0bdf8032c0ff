"""The window at the point of care: nothing it shows or does may mislead (issue 11).

Real Qt (offscreen), real key and mouse events (pytest-qt), a real-time engine on the Coyote 3
simulator. Where output matters, what is checked is the simulator's delivery record.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from acustim.engine import Engine
from gui import theme
from gui.panels.channels import LevelSlider
from gui.window import MIN_HEIGHT, MIN_WIDTH, MainWindow
from tests.gui.conftest import on_io, open_window, strength
from tests.programs import continuous_toml


def running(window: MainWindow, qtbot: QtBot) -> None:
    window.start_session()
    qtbot.waitUntil(
        lambda: window.session is not None and window.session.status().state == "running",
        timeout=3000,
    )


def guard_target(window: MainWindow, channel: str = "A") -> int:
    assert window.session is not None
    return window.session.runner.guard.target_du(channel)


# --- Space and Esc -------------------------------------------------------------------------------
def test_space_on_a_focused_start_button_never_starts(qtbot: QtBot, engine: Engine) -> None:
    asked: list[str] = []

    def confirm(title: str, _text: str) -> bool:
        asked.append(title)
        return True

    window = open_window(qtbot, engine, confirm=confirm)
    start = window.header.start_button
    assert start.isEnabled()
    start.setFocus()
    qtbot.waitUntil(start.hasFocus, timeout=1000)
    for key in (Qt.Key.Key_Space, Qt.Key.Key_Escape, Qt.Key.Key_Space):
        qtbot.keyClick(start, key)
    qtbot.wait(100)
    assert window.session is None
    assert asked == []
    qtbot.mouseClick(start, Qt.MouseButton.LeftButton)  # the button itself still works
    qtbot.waitUntil(lambda: window.session is not None, timeout=3000)


def test_space_in_a_confirmation_never_confirms_and_esc_only_cancels(
    window: MainWindow, qtbot: QtBot
) -> None:
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Before the session",
        "Start the session?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        window,
    )
    box.setDefaultButton(QMessageBox.StandardButton.No)
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    yes = box.button(QMessageBox.StandardButton.Yes)
    yes.setFocus()
    qtbot.waitUntil(yes.hasFocus, timeout=1000)
    qtbot.keyClick(yes, Qt.Key.Key_Space)
    qtbot.wait(50)
    assert box.clickedButton() is None and box.isVisible()
    qtbot.keyClick(yes, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=1000)
    assert box.clickedButton() is not yes


def test_space_types_a_space_in_the_notes_when_no_session_is_live(
    window: MainWindow, qtbot: QtBot
) -> None:
    window.side_tabs.setCurrentWidget(window.notes)
    window.notes.setFocus()
    qtbot.waitUntil(window.notes.hasFocus, timeout=1000)
    qtbot.keyClicks(window.notes, "jaw tight")
    assert window.notes.toPlainText() == "jaw tight"
    assert window.session is None


@pytest.mark.parametrize("key", [Qt.Key.Key_Space, Qt.Key.Key_Escape])
def test_space_or_esc_in_the_level_box_stops_a_live_session(
    flat_window: MainWindow, qtbot: QtBot, key: Qt.Key
) -> None:
    window = flat_window
    running(window, qtbot)
    box = window.channels.cards["A"].level_box
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=1000)
    qtbot.keyClick(box, key)
    session = window.session
    assert session is not None
    qtbot.waitUntil(lambda: session.done, timeout=2000)
    assert session.wait(0).outcome == "stopped"


# --- every key press counts ----------------------------------------------------------------------
def test_a_burst_of_level_keys_counts_every_press_in_order(
    flat_window: MainWindow, qtbot: QtBot
) -> None:
    window = flat_window
    running(window, qtbot)
    slider = window.channels.cards["A"].slider
    slider.setFocus()
    qtbot.waitUntil(slider.hasFocus, timeout=1000)
    rng = random.Random(11)
    expected = 0
    seen: list[int] = []
    # presses at typing speed and faster, across many frame boundaries (a frame is 100 ms)
    for key in [Qt.Key.Key_Up] * 14 + [Qt.Key.Key_Down] * 5 + [Qt.Key.Key_Up] * 3:
        qtbot.keyClick(slider, key)
        expected += 1 if key == Qt.Key.Key_Up else -1
        seen.append(slider.value())
        qtbot.wait(rng.choice((0, 15, 40, 70, 95, 130)))
    assert seen == [*range(1, 15), *range(13, 8, -1), 10, 11, 12]
    qtbot.wait(400)  # several frames and refreshes later: still every press
    assert slider.value() == expected == 12
    assert guard_target(window) == 12
    assert window.channels.cards["A"].level_box.value() == 12


def test_a_typed_level_is_one_request(flat_window: MainWindow, qtbot: QtBot) -> None:
    window = flat_window
    running(window, qtbot)
    box = window.channels.cards["A"].level_box
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, "17")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: guard_target(window) == 17, timeout=1000)
    assert window.channels.cards["A"].slider.value() == 17
    levels = [line for line in window.log.lines() if "A set to" in line]
    assert levels == [] or all("17" in line for line in levels)


# --- what "now" means ----------------------------------------------------------------------------
def test_the_big_figure_is_the_delivered_output_with_the_target_beside_it(
    qtbot: QtBot, engine: Engine, tmp_path: Path
) -> None:
    half = tmp_path / "half.toml"
    half.write_text(
        continuous_toml(name="gui-half", title="Half intensity", intensity=0.5, duration_s=60),
        encoding="utf-8",
    )
    window = open_window(qtbot, engine, program=str(half))
    running(window, qtbot)
    card = window.channels.cards["A"]
    card.slider.setValue(20)

    def delivered_on_device() -> float:
        assert window.device is not None
        sim = window.device.simulator

        def recent() -> float:
            now = engine.io.loop.time()
            return float(sim.record.max_output("A", now - 0.5, now))

        return on_io(engine, recent)

    # during the ramp the figure is below the target and follows the device
    qtbot.waitUntil(lambda: int(card.live.text()) >= 3, timeout=5000)
    assert int(card.live.text()) < 10
    assert card.level_box.value() == 20
    # at the top: level 20 x intensity 0.5 = 10 du, which is what the simulator delivers
    qtbot.waitUntil(lambda: card.live.text() == "10", timeout=20000)
    assert delivered_on_device() == pytest.approx(10, abs=1)
    assert card.live_unit.text() == "du delivered"
    # the Coyote 3 sets its own pulse width: the card says so rather than the program's
    assert "20 Hz" in card.mode.text() and "pulse width set by the device" in card.mode.text()


# --- mouse: no accidental raise ------------------------------------------------------------------
def _wheel(widget: QWidget, notches: int) -> None:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_a_track_click_or_the_wheel_never_raises_a_level(window: MainWindow, qtbot: QtBot) -> None:
    card = window.channels.cards["A"]
    slider = card.slider
    assert isinstance(slider, LevelSlider)
    slider.setValue(30)
    right = QPoint(slider.width() - 4, slider.height() // 2)
    left = QPoint(4, slider.height() // 2)
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=right)
    assert slider.value() == 30
    _wheel(slider, +1)
    _wheel(card.level_box, +1)
    assert slider.value() == 30
    _wheel(slider, -1)
    assert slider.value() == 29
    _wheel(card.level_box, -1)
    assert slider.value() == 28
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=left)
    assert slider.value() == 18  # a track click lowers one page
    top = card.ceiling.maximum()
    card.ceiling.setValue(top - 5)
    _wheel(card.ceiling, +1)
    assert card.ceiling.value() == top - 5  # the wheel never raises a ceiling either


def test_a_ceiling_above_the_maximum_is_refused_visibly(window: MainWindow, qtbot: QtBot) -> None:
    card = window.channels.cards["A"]
    box = card.ceiling
    top = box.maximum()
    assert 20 < top < 999
    box.setValue(20)
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, "999")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert box.value() == 20
    assert "999 du refused" in card.ceiling_note.text()
    assert f"0..{top} du" in card.ceiling_note.text()
    box.selectAll()
    qtbot.keyClicks(box, str(top - 1))
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert box.value() == top - 1
    assert card.ceiling_note.text() == f"max {top} du"


# --- closing -------------------------------------------------------------------------------------
def test_closing_mid_session_asks_and_the_default_keeps_it_running(
    qtbot: QtBot, engine: Engine, flat_program: Path
) -> None:
    answers = [False, True]
    asked: list[str] = []

    def confirm(title: str, text: str) -> bool:
        if title == "A session is running":
            asked.append(text)
            return answers.pop(0)
        return True

    window = open_window(qtbot, engine, program=str(flat_program), confirm=confirm)
    running(window, qtbot)
    window.channels.cards["A"].slider.setValue(10)
    qtbot.waitUntil(lambda: strength(engine, window) >= 2, timeout=3000)
    window.close()
    assert len(asked) == 1 and "No keeps the session running" in asked[0]
    assert window.session_live and window.isVisible()
    qtbot.wait(300)
    assert strength(engine, window) >= 2  # still stimulating, as asked
    session, device = window.session, window.device
    assert session is not None and device is not None
    window.close()
    assert session.done and session.wait(0).outcome == "stopped"
    assert device.simulator.strength_du("A") == 0  # the IO thread is gone: safe to read


def _points(curve: object) -> int:
    x = curve.getData()[0]  # type: ignore[attr-defined]
    return 0 if x is None else len(x)


# --- stale figures -------------------------------------------------------------------------------
def test_a_new_program_resets_the_header_traces_and_battery(
    flat_window: MainWindow, qtbot: QtBot
) -> None:
    window = flat_window
    running(window, qtbot)
    window.channels.cards["A"].slider.setValue(10)
    qtbot.waitUntil(lambda: window.header.clock.text() != "00:00", timeout=3000)
    qtbot.waitUntil(lambda: window.device_panel.battery.text() != "—", timeout=3000)
    window.emergency_stop()
    qtbot.waitUntil(lambda: window.header.state.text() == "Stopped", timeout=3000)
    assert any(_points(c) for c in window.plots.output_curves)
    window.program_panel.select("tmj-jaw-pain-right")
    qtbot.wait(100)
    assert window.header.clock.text() == "00:00"
    assert window.header.segment.text() == ""
    assert window.header.state.text() == "Ready"
    assert window.header.elapsed.text() == ""
    assert not window.header.banner.showing
    assert not any(_points(c) for c in window.plots.output_curves)
    assert window.device_panel.battery.text() == "—"


def test_no_figure_carries_over_to_another_device(window: MainWindow, qtbot: QtBot) -> None:
    running(window, qtbot)
    qtbot.waitUntil(lambda: window.device_panel.battery.text() != "—", timeout=3000)
    window.emergency_stop()
    qtbot.waitUntil(lambda: window.session is not None and window.session.done, timeout=3000)
    qtbot.wait(100)
    window.connect_device("sim:pulsepal")
    qtbot.waitUntil(lambda: window.link_state == "connected" and not window.busy, timeout=5000)
    assert window.device is not None and window.device.spec == "sim:pulsepal"
    for _ in range(5):
        qtbot.wait(40)  # several refreshes
        assert window.device_panel.battery.text() == "—"
        assert window.header.clock.text() == "00:00"


# --- pause, resume and the clock -----------------------------------------------------------------
def test_pause_holds_the_clock_and_resume_ramps_back_from_zero(
    flat_window: MainWindow, qtbot: QtBot, engine: Engine
) -> None:
    window = flat_window
    running(window, qtbot)
    window.channels.cards["A"].slider.setValue(6)
    window.channels.cards["B"].slider.setValue(4)
    qtbot.waitUntil(lambda: strength(engine, window, "A") == 6, timeout=5000)
    window.pause_session()
    qtbot.waitUntil(window.header.resume_button.isEnabled, timeout=2000)
    held = window.header.clock.text()
    qtbot.wait(1300)
    assert window.header.clock.text() == held  # the program clock stands still
    assert "paused" in window.header.elapsed.text()
    assert strength(engine, window, "A") == 0
    resumed_at = engine.io.loop.time()
    qtbot.mouseClick(window.header.resume_button, Qt.MouseButton.LeftButton)
    assert window.channels.cards["A"].slider.value() == 6
    assert window.channels.cards["B"].slider.value() == 4
    qtbot.waitUntil(lambda: strength(engine, window, "A") == 6, timeout=5000)
    assert window.device is not None
    sim = window.device.simulator
    first = on_io(engine, lambda: sim.record.output_at("A", resumed_at + 0.15))
    assert first < 6, "resume ramps from zero, it does not jump back"
    assert not window.header.resume_button.isEnabled()
    assert any("resumed by the practitioner" in line for line in window.log.lines())


# --- before Start --------------------------------------------------------------------------------
def test_a_warning_needs_an_explicit_yes_before_start(
    qtbot: QtBot, engine: Engine, tmp_path: Path
) -> None:
    beside_the_mouth = tmp_path / "mouth.toml"
    beside_the_mouth.write_text(
        continuous_toml(name="gui-mouth", channels={"A": ("ST4-L", "ST6-L")}), encoding="utf-8"
    )
    asked: list[str] = []

    def refuse(title: str, text: str) -> bool:
        asked.append(text)
        return False

    window = open_window(qtbot, engine, program=str(beside_the_mouth), confirm=refuse)
    assert window.device is not None and window.program is not None
    from acustim import prepare

    plan = prepare(window.device, window.program)
    warnings = [i for i in plan.items if i.kind == "placement"]
    assert warnings and not any(i.confirm for i in warnings), "a warning, no confirm flag"
    window.start_session()
    assert window.session is None
    assert len(asked) == 1 and warnings[0].text.rstrip(".") in asked[0]
    for item in plan.items:  # every item said, and said once
        assert asked[0].count(item.text.rstrip(".")) == 1, item.kind


# --- sounds --------------------------------------------------------------------------------------
def test_a_sound_at_the_end_unless_turned_off(
    qtbot: QtBot, engine: Engine, flat_program: Path
) -> None:
    window = open_window(qtbot, engine, program=str(flat_program))
    heard: list[str] = []
    window.sound = heard.append
    running(window, qtbot)
    window.emergency_stop()
    qtbot.waitUntil(lambda: heard == ["end"], timeout=3000)
    window.sound_box.setChecked(False)
    running(window, qtbot)
    window.emergency_stop()
    qtbot.waitUntil(lambda: window.header.state.text() == "Stopped", timeout=3000)
    qtbot.wait(100)
    assert heard == ["end"]


# --- layout --------------------------------------------------------------------------------------
def _contrast(a: QColor, b: QColor) -> float:
    def luminance(c: QColor) -> float:
        def chan(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * chan(c.redF()) + 0.7152 * chan(c.greenF()) + 0.0722 * chan(c.blueF())

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("size", [(1366, 768), (1280, 720)])
def test_the_window_fits_a_laptop_screen_with_stop_and_status_in_view(
    window: MainWindow, qtbot: QtBot, size: tuple[int, int]
) -> None:
    width, height = size
    assert width >= MIN_WIDTH and height - 60 >= MIN_HEIGHT  # a task bar and a title bar
    window.resize(MIN_WIDTH, MIN_HEIGHT)
    qtbot.wait(50)
    assert window.width() <= width and window.height() <= height - 60
    inside = window.rect()
    for widget in (window.header.stop_button, window.statusBar(), window.header.start_button):
        top_left = widget.mapTo(window, QPoint(0, 0))
        assert inside.contains(top_left) and inside.contains(
            top_left + QPoint(widget.width() - 1, widget.height() - 1)
        ), widget
        assert widget.isVisible()
    for card in window.channels.cards.values():
        assert card.slider.isVisible() and card.slider.width() >= 80
    # the device's details scroll on a short screen; they are never squeezed into each other
    panel = window.device_panel
    assert panel.height() >= panel.minimumSizeHint().height()
    output = window.plots.output_plot
    assert output is not None and output.isVisible()
    assert output.vb.height() >= 80, "the output plot stays legible"


def test_plot_axis_text_has_a_contrast_of_at_least_4_5(window: MainWindow) -> None:
    background = QColor(theme.PANEL)
    plots = [window.plots.output_plot, window.plots.frequency_plot, *window.plots.pulse_plots]
    assert all(plot is not None for plot in plots) and len(plots) >= 3
    for plot in plots:
        assert plot is not None
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            assert _contrast(axis.textPen().color(), background) >= 4.5, name


def test_banners_do_not_move_the_layout(window: MainWindow, qtbot: QtBot) -> None:
    before = window.channels.mapTo(window, QPoint(0, 0))
    window.header.banner.show_message("Paused: output is zero.", "warn")
    qtbot.wait(50)
    assert window.channels.mapTo(window, QPoint(0, 0)) == before
    window.header.banner.clear_message()
    qtbot.wait(50)
    assert window.channels.mapTo(window, QPoint(0, 0)) == before


def test_tab_follows_the_header_then_the_columns(flat_window: MainWindow, qtbot: QtBot) -> None:
    window = flat_window
    window.header.start_button.setFocus()
    qtbot.waitUntil(window.header.start_button.hasFocus, timeout=1000)
    order: list[QWidget] = []
    for _ in range(60):
        widget = QApplication.focusWidget()
        assert widget is not None
        if widget in order:
            break
        order.append(widget)
        qtbot.keyClick(widget, Qt.Key.Key_Tab)

    def place(widget: QWidget) -> int:
        return order.index(widget)

    a, b = window.channels.cards["A"], window.channels.cards["B"]
    tabs = window.side_tabs.tabBar()
    assert place(window.device_panel.combo) < place(tabs) < place(a.slider)
    assert place(a.slider) < place(a.level_box) < place(a.ceiling) < place(b.slider)
    assert place(b.ceiling) < place(window.program_panel.combo) < place(window.patient)


# --- connect only after the handshake ------------------------------------------------------------
def test_a_port_with_nothing_on_it_is_never_shown_connected(
    window: MainWindow, qtbot: QtBot
) -> None:
    running(window, qtbot)
    qtbot.waitUntil(lambda: window.device_panel.battery.text() != "—", timeout=3000)
    window.emergency_stop()
    qtbot.waitUntil(lambda: window.session is not None and window.session.done, timeout=3000)
    controller, peer = os.openpty()  # a serial port with no box on it: nothing ever answers
    try:
        spec = f"et312@{os.ttyname(peer)}"
        window.connect_device(spec)
        qtbot.waitUntil(lambda: not window.busy, timeout=10000)
        assert window.device is None
        assert window.link_state == "disconnected"
        assert "Connected" not in window.device_panel.link.text()
        assert window.device_panel.battery.text() == "—"
        assert "no answer from an ET-312" in window.device_panel.message.text()
        assert not window.header.start_button.isEnabled()
    finally:
        os.close(controller)
        os.close(peer)


# --- for engineers: the simulator's faults; the report from the window ----------------------------
def test_the_simulator_tab_injects_faults_and_says_so(
    flat_window: MainWindow, qtbot: QtBot, engine: Engine
) -> None:
    window = flat_window
    tabs = window.side_tabs
    index = tabs.indexOf(window.simulator_panel)
    assert tabs.isTabVisible(index)
    running(window, qtbot)
    window.channels.cards["A"].slider.setValue(10)
    qtbot.waitUntil(lambda: strength(engine, window) == 10, timeout=5000)
    tabs.setCurrentIndex(index)
    button = window.simulator_panel.buttons["wheel_up:A"]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert any("Wheel A +" in line for line in window.log.lines())
    qtbot.mouseClick(window.simulator_panel.buttons["drop_link"], Qt.MouseButton.LeftButton)
    session = window.session
    assert session is not None
    qtbot.waitUntil(lambda: session.done, timeout=5000)
    assert session.wait(0).outcome == "fault"
    assert window.device is not None
    sim = window.device.simulator
    dropped = engine.io.loop.time()
    qtbot.wait(600)

    def delivered_since() -> float:
        return float(sim.record.max_output("A", dropped + 0.2, engine.io.loop.time()))

    assert on_io(engine, delivered_since) == 0.0  # what reaches the patient: nothing


def test_the_last_session_report_is_saved_from_the_window(
    flat_window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    window = flat_window
    assert not window.report_button.isEnabled()
    running(window, qtbot)
    window.emergency_stop()
    qtbot.waitUntil(window.report_button.isEnabled, timeout=3000)
    target = tmp_path / "out" / "session.html"
    target.parent.mkdir()
    window.report_path_chooser = lambda _parent, _suggested: target
    qtbot.mouseClick(window.report_button, Qt.MouseButton.LeftButton)
    assert target.is_file()
    assert "gui-test-flat" in target.read_text(encoding="utf-8")
    assert any("saved to" in line for line in window.log.lines())


def test_the_mode_in_words_names_the_rate_and_the_width_only_where_delivered() -> None:
    from acustim import ChannelStatus
    from gui.panels.channels import mode_words

    on = ChannelStatus("A", 12, 12, 50, "2/100 Hz dense-disperse", None, 12.0, 100.0, 200.0)
    assert mode_words(on) == "2/100 Hz dense-disperse · 100 Hz · 200 µs pulses"
    assert mode_words(on, width_known=False) == (
        "2/100 Hz dense-disperse · 100 Hz · pulse width set by the device"
    )
    silent = ChannelStatus("A", 0, 0, 50, "ramp", None, 0.0, 2.0, 200.0)
    assert mode_words(silent) == "ramp · no output"
    assert mode_words(None) == "—"


# --- from the review -----------------------------------------------------------------------------
def test_a_middle_click_or_end_never_raises_a_level(window: MainWindow, qtbot: QtBot) -> None:
    card = window.channels.cards["A"]
    slider = card.slider
    slider.setValue(5)
    right = QPoint(slider.width() - 4, slider.height() // 2)
    for button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton):
        qtbot.mouseClick(slider, button, pos=right)
        assert slider.value() == 5, button
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_End)
    assert slider.value() == 5
    qtbot.keyClick(slider, Qt.Key.Key_Home)
    assert slider.value() == 0


def test_a_target_typed_above_the_ceiling_is_refused_visibly(
    window: MainWindow, qtbot: QtBot
) -> None:
    card = window.channels.cards["A"]
    top = card.ceiling.value()
    box = card.level_box
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, str(top + 10))
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert card.slider.value() == 0  # not its first digit
    assert f"{top + 10} du refused" in card.ceiling_note.text()
    assert f"target must be 0..{top} du" in card.ceiling_note.text()


def test_a_level_set_for_one_device_does_not_carry_to_the_next(
    window: MainWindow, qtbot: QtBot
) -> None:
    window.channels.cards["A"].slider.setValue(30)
    window.connect_device("sim:coyote2")
    qtbot.waitUntil(lambda: window.link_state == "connected" and not window.busy, timeout=5000)
    assert window.device is not None and window.device.spec == "sim:coyote2"
    assert window.channels.cards["A"].slider.value() == 0
    assert window.channels.levels() == {"A": 0}


def test_resume_says_what_it_goes_back_to(flat_window: MainWindow, qtbot: QtBot) -> None:
    window = flat_window
    running(window, qtbot)
    window.channels.cards["A"].slider.setValue(6)
    window.channels.cards["B"].slider.setValue(4)
    window.pause_session()
    qtbot.waitUntil(window.header.resume_button.isEnabled, timeout=2000)
    assert window.header.resume_button.text() == "Resume: A 6, B 4 du"
    window.resume_session()
    assert window.header.resume_button.text() == "Resume"


def test_the_et312_figure_says_its_knob_scales_it_again(qtbot: QtBot, engine: Engine) -> None:
    """The ET-312 delivers level x intensity x its front knob / 256: the window cannot see
    the knob, so its figure is what was sent, and says so (a review saw 6 shown and 3 on the
    box's record at a half knob)."""
    window = open_window(qtbot, engine, device="sim:et312", program="facial-muscle-tension")
    card = window.channels.cards["A"]
    assert card.live_unit.text() == "du sent, x knob"
    assert "front knob" in card.live.toolTip()
    window.connect_device("sim:coyote3")
    qtbot.waitUntil(lambda: window.link_state == "connected" and not window.busy, timeout=5000)
    window.program_panel.select("tmj-jaw-pain-left")
    assert window.channels.cards["A"].live_unit.text() == "du delivered"


def test_calibrate_from_the_window_applies_at_once(qtbot: QtBot, engine: Engine) -> None:
    from acustim.calibration import calibrate, virtual_meter

    window = open_window(qtbot, engine, device="sim:pulsepal")
    button = window.device_panel.calibrate_button
    assert button.isEnabled()

    def dialog(_parent: QWidget, device: object) -> object:
        return calibrate(
            device,  # type: ignore[arg-type]
            [50, 100, 150],
            read=virtual_meter(device),  # type: ignore[arg-type]
            by="GUI test",
            no_person_connected=True,
            cap_du=150,
        )

    window.calibrate_dialog = dialog
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.device is not None and window.device.calibration is not None
    assert any("calibrated on" in line and "GUI test" in line for line in window.log.lines())
    assert window.limits is not None  # the plan made again, with the new figure
    running(window, qtbot)
    assert not button.isEnabled()  # never during a session
