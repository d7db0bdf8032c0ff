"""The practitioner's window: wires the panels to the engine the CLI uses.

Everything that reaches a device goes through ``acustim`` (``Engine``, ``Device``,
``Session``); the GUI thread never touches a transport, the guard or the streamer. What is
shown, asked and confirmed before Start is the pre-start plan of ``acustim.prestart`` (the one
``acustim run`` prints), and ``Device.start`` checks that its items were confirmed. From the IO
thread, frames go into a ``LiveBuffer`` (``on_frame``) and notices into a queued Qt signal
(``on_notice``); a ~30 Hz timer on the GUI thread reads the buffer and the session status.
Slow work (connect, disconnect, BLE scan) runs off the GUI thread and reports back by signal.

STOP is always in reach: the red button, and Space and Esc while a session is live, whatever
widget (or dialog) has focus. Space and Esc never start, confirm or raise anything, in any
state: with no session live, Space does nothing except type a space in a text field, and Esc
only cancels. Closing the window during a session asks first (the default keeps it running)
and stops output before anything closes. The window owns no logic of its own about output.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from acustim import (
    SHOWN_BEFORE_START,
    AcustimError,
    Device,
    Engine,
    Found,
    ItemKind,
    Pending,
    Program,
    ScreeningQuestion,
    Session,
    SessionLimits,
    StartPlan,
    builtin_names,
    builtin_programs,
    list_serial_ports,
    list_simulators,
    load_program,
    prepare,
)
from acustim.events import EventKind, SessionEvent
from acustim.live import LiveBuffer
from gui import theme
from gui.bridge import Bridge
from gui.calibration import run_calibration_dialog
from gui.history import HistoryView
from gui.panels.channels import ChannelsPanel
from gui.panels.common import Card, muted
from gui.panels.device import DevicePanel
from gui.panels.log import EventLog
from gui.panels.program import ProgramPanel
from gui.panels.session import SessionHeader
from gui.panels.simulator import SimulatorPanel
from gui.plots import WINDOW_S, LivePlots
from gui.reports import print_report, save_report
from gui.screening import ask_screening

REFRESH_MS = 33  # ~30 Hz
#: the smallest window: a 1280x720 screen, less a task bar and the window's frame
MIN_WIDTH, MIN_HEIGHT = 1260, 660
STOP_KEYS = (Qt.Key.Key_Space, Qt.Key.Key_Escape)
#: where a Space is only ever a typed character (never a click) when no session is live
TEXT_FIELDS = (QLineEdit, QPlainTextEdit, QTextEdit)
KEY_EVENTS = (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
#: how long closing waits for the session to end (its zero frame goes out at once)
CLOSE_WAIT_S = 3.0

Confirm = Callable[[str, str], bool]
Sound = Callable[[str], None]
#: (patient code, the questions to ask: the plan's) -> (answers, acknowledged), None: cancelled
ScreeningAsk = Callable[
    [str | None, Sequence[ScreeningQuestion]], tuple[dict[str, bool], list[str]] | None
]
OnsetAsk = Callable[[Program], int | None]
#: Link states in which a session may start. "idle": the engine closes the link when a
#: session ends and the next session opens it again (with the device's limits, then zero).
READY_LINKS = ("connected", "idle")


def ask(parent: QWidget) -> Confirm:
    """The default confirmation: a modal question, "No" unless the practitioner says yes."""

    def confirm(title: str, text: str) -> bool:
        answer = QMessageBox.warning(
            parent,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    return confirm


def _beep(_: str) -> None:
    """The default sound: the platform's alert (silent where there is none)."""
    QApplication.beep()


def sentence(text: str) -> str:
    """A plan item's text as a sentence (ending with a full stop)."""
    return text if text.endswith((".", "!", "?")) else f"{text}."


def program_max_frequency_hz(program: Program) -> float:
    rates = [0.0]
    for channel in program.channels:
        for seg in channel.segments:
            rates.append(seg.high_hz if seg.kind == "dense_disperse" else seg.frequency_hz)
    return max(rates)


class _KeyGuard(QObject):
    """Space and Esc are STOP and nothing else, application-wide.

    While a session is live, a press of either stops it, whatever has focus (a spin box, a
    combo box or a dialog never keeps the key). With no session live, Space never reaches a
    button, check box, combo box or slider (so it can never start, confirm or raise anything;
    in a text field it types a space) and Esc keeps its one meaning, cancel."""

    def __init__(
        self, live: Callable[[], bool], stop: Callable[[], None], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._live = live
        self._stop = stop

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() not in KEY_EVENTS or not isinstance(event, QKeyEvent):
            return False
        key = event.key()
        if key not in STOP_KEYS:
            return False
        if self._live():
            if event.type() == QEvent.Type.KeyPress:
                self._stop()
            event.accept()  # a ShortcutOverride accepted: the press comes here, as a KeyPress
            return True
        if key == Qt.Key.Key_Escape or isinstance(watched, TEXT_FIELDS):
            return False
        event.accept()
        return True


class _FittingScroll(QScrollArea):
    """A scroll area that asks for all of its widget's height (and scrolls only when the
    window cannot give it)."""

    def sizeHint(self) -> QSize:
        inner = self.widget()
        if inner is None:
            return super().sizeHint()
        return inner.sizeHint() + QSize(2 * self.frameWidth(), 2 * self.frameWidth())


class MainWindow(QMainWindow):
    """One window, one engine, one device at a time, one session at a time."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        device: str | None = "sim:coyote3",
        program: str | None = None,
        confirm: Confirm | None = None,
        screening: ScreeningAsk | None = None,
        onset: OnsetAsk | None = None,
        sound: Sound | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("acustim")
        self.setMinimumSize(MIN_WIDTH, MIN_HEIGHT)
        self.resize(1440, 900)
        self.engine = engine if engine is not None else Engine(virtual_time=False)
        self.bridge = Bridge(self)
        self.confirm: Confirm = confirm or ask(self)
        self.ask_screening: ScreeningAsk = screening or (
            lambda patient, questions: ask_screening(self, patient, questions)
        )
        self.ask_onset: OnsetAsk = onset or self._ask_onset_days
        self.sound: Sound = sound or _beep
        #: the calibration dialog (a test gives a function instead)
        self.calibrate_dialog: Callable[[QWidget, Device], Any] = run_calibration_dialog
        #: where "Save report…" asks for a file name (a test gives a function instead)
        self.report_path_chooser: Callable[[QWidget | None, Path], Path | None] | None = None
        self.device: Device | None = None
        self.session: Session | None = None
        self._history: HistoryView | None = None
        self.live: LiveBuffer | None = None
        self.program: Program | None = None
        self.limits: SessionLimits | None = None
        self.link_state = "disconnected"
        self.busy = False
        self.closed = False
        self._workers: list[threading.Thread] = []
        self._end_handled = True
        self._result: tuple[str, str] | None = None
        self._sent: dict[str, int] = {}
        self._seen_targets: dict[str, int] = {}
        #: level requests this window made in the current session (see SessionStatus)
        self._requests = 0
        self._build()
        self._wire()

        self.refresh_timer = QTimer(self)
        self.refresh_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh)
        self.refresh_timer.start()

        self.refresh_devices(select=device)
        first = program or "tmj-jaw-pain-left"
        if first not in builtin_names():
            try:
                loaded = load_program(first)
            except AcustimError as exc:
                self.log.add("error", str(exc), "danger")
                first = "tmj-jaw-pain-left"
            else:
                self.program_panel.add_program(loaded)
                first = loaded.name
        self.program_panel.select(first)
        self._update_controls()
        if device:
            QTimer.singleShot(0, lambda: self.connect_device(device))

    # --- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget()
        central.setObjectName("central")
        outer = QVBoxLayout(central)
        outer.setContentsMargins(14, 12, 14, 10)
        outer.setSpacing(12)
        self.header = SessionHeader()
        outer.addWidget(self.header)

        columns = QHBoxLayout()
        columns.setSpacing(12)
        left = QVBoxLayout()
        left.setSpacing(12)
        self.device_panel = DevicePanel()
        self.log = EventLog(title="")
        self.log.setObjectName("plain")  # inside the Session card's tabs: no card of its own
        self.log.body.setContentsMargins(0, 4, 0, 0)
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText(
            "Notes for this session's record (no names). Saved with the session when it starts."
        )
        self.notes.setAccessibleName("Practitioner notes")
        self.notes.setTabChangesFocus(True)
        self.notes_card = notes_card = Card("Session")
        self.side_tabs = QTabWidget()
        self.side_tabs.setDocumentMode(True)
        self.side_tabs.addTab(self.log, "Event log")
        self.side_tabs.addTab(self.notes, "Notes")
        self.simulator_panel = SimulatorPanel()
        self.simulator_panel.setObjectName("plain")
        self.side_tabs.addTab(self.simulator_panel, "Simulator")
        self.side_tabs.setTabVisible(2, False)
        notes_card.body.addWidget(self.side_tabs, 1)
        # on a short screen the device's details scroll rather than overlap
        device_scroll = _FittingScroll()
        device_scroll.setWidget(self.device_panel)
        device_scroll.setWidgetResizable(True)
        device_scroll.setFrameShape(QFrame.Shape.NoFrame)
        device_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        device_scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.device_scroll = device_scroll
        notes_card.setMinimumHeight(110)
        left.addWidget(device_scroll)
        left.addWidget(notes_card, 1)
        left_box = QWidget()
        left_box.setLayout(left)
        left.setContentsMargins(0, 0, 0, 0)
        left_box.setFixedWidth(320)
        columns.addWidget(left_box)

        middle = QVBoxLayout()
        middle.setSpacing(12)
        self.channels = ChannelsPanel()
        self.ramp_note = muted("")
        self.channels.body.addWidget(self.ramp_note)
        middle.addWidget(self.channels)
        plots_card = Card("Live output")
        self.plots = LivePlots()
        plots_card.body.addWidget(self.plots, 1)
        middle.addWidget(plots_card, 1)
        columns.addLayout(middle, 1)

        self.program_panel = ProgramPanel(builtin_programs())
        self.program_panel.setFixedWidth(390)
        columns.addWidget(self.program_panel)
        outer.addLayout(columns, 1)
        self.setCentralWidget(central)

        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.status_link = QLabel()
        self.status_session = QLabel()
        self.status_lateness = QLabel()
        for label in (
            self.status_link,
            self.status_session,
            self.header.elapsed,
            self.status_lateness,
        ):
            bar.addWidget(label)
        # the only identifier the app asks for: a pseudonymous code, never a name
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("patient code, e.g. P-0042")
        self.patient.setMaxLength(32)
        self.patient.setFixedWidth(190)
        self.patient.setAccessibleName("Patient code")
        self.patient.setToolTip("A pseudonymous code for the session record; never a name")
        bar.addPermanentWidget(QLabel("Patient"))
        bar.addPermanentWidget(self.patient)
        self.history_button = QPushButton("History…")
        self.history_button.setToolTip("Past sessions and their reports (Ctrl+H)")
        self.history_button.setShortcut(QKeySequence("Ctrl+H"))
        self.history_button.clicked.connect(self.show_history)
        self.history_button.setEnabled(self.engine.store is not None)
        bar.addPermanentWidget(self.history_button)
        self.report_button = QPushButton("Save report…")
        self.report_button.setToolTip("Save the last session's report as HTML or PDF (Ctrl+S)")
        self.report_button.setShortcut(QKeySequence("Ctrl+S"))
        self.report_button.clicked.connect(self.save_last_report)
        self.print_button = QPushButton("Print…")
        self.print_button.setToolTip("Print the last session's report (Ctrl+P)")
        self.print_button.setShortcut(QKeySequence("Ctrl+P"))
        self.print_button.clicked.connect(self.print_last_report)
        for button in (self.report_button, self.print_button):
            button.setEnabled(False)
            bar.addPermanentWidget(button)
        self.sound_box = QCheckBox("Sounds")
        self.sound_box.setChecked(True)
        self.sound_box.setToolTip("A sound when a session ends and on a fault")
        bar.addPermanentWidget(self.sound_box)

        self._key_filter = _KeyGuard(lambda: self.session_live, self.emergency_stop, self)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self._key_filter)

    def _tab_order(self) -> None:
        """Tab goes through the header, then the columns left to right, then the status bar;
        within each, in reading order."""
        chain: list[QWidget] = []
        for box in (
            self.header,
            self.device_panel,
            self.notes_card,
            self.channels,
            self.program_panel,
            self.statusBar(),
        ):
            for widget in box.findChildren(QWidget):
                parent = widget.parentWidget()
                if (
                    widget.focusPolicy() & Qt.FocusPolicy.TabFocus
                    and widget.focusProxy() is None
                    and widget.window() is self  # not a combo box's pop-up list
                    and not isinstance(parent, QAbstractSpinBox | QComboBox)
                ):
                    chain.append(widget)
        for a, b in itertools.pairwise(chain):
            QWidget.setTabOrder(a, b)

    def _wire(self) -> None:
        self.header.start_requested.connect(self.start_session)
        self.header.pause_requested.connect(self.pause_session)
        self.header.resume_requested.connect(self.resume_session)
        self.header.stop_requested.connect(self.emergency_stop)
        self.device_panel.connect_requested.connect(self.connect_device)
        self.device_panel.disconnect_requested.connect(self.disconnect_device)
        self.device_panel.scan_requested.connect(self.scan_ble)
        self.device_panel.refresh_requested.connect(lambda: self.refresh_devices())
        self.device_panel.calibrate_requested.connect(self.calibrate_device)
        self.program_panel.program_changed.connect(self._program_chosen)
        self.channels.level_changed.connect(self._level_changed)
        self.bridge.notice.connect(self._notice)
        self.simulator_panel.fault_injected.connect(
            lambda text: self.log.add("simulator", text, "warn")
        )

    # --- state -----------------------------------------------------------------------------------
    @property
    def session_live(self) -> bool:
        return self.session is not None and not self.session.done

    def _update_controls(self) -> None:
        live = self.session_live
        connected = self.device is not None and self.link_state in READY_LINKS
        self.device_panel.set_busy(
            self.busy,
            connected_spec=self.device.spec if connected and self.device else None,
            session_live=live,
        )
        self.program_panel.combo.setEnabled(not live)
        self.header.start_button.setEnabled(
            not live and connected and self.limits is not None and not self.closed
        )
        self.header.pause_button.setEnabled(live)
        self.header.resume_button.setEnabled(
            live and self.session is not None and self.session.status().state == "paused"
        )
        for card in self.channels.cards.values():
            card.set_running(live)
        self.notes.setReadOnly(live)
        recorded = self._last_recorded() is not None
        self.report_button.setEnabled(recorded)
        self.print_button.setEnabled(recorded)

    # --- devices ---------------------------------------------------------------------------------
    def refresh_devices(self, select: str | None = None) -> None:
        """List simulators and serial ports (this opens nothing)."""
        found: list[Found] = list(list_simulators())
        try:
            found += list_serial_ports()
        except Exception as exc:  # no pyserial port listing on this system: say so
            self.log.add("error", f"could not list serial ports: {exc}", "warn")
        ble = [f for f in self.device_panel.found if f.kind == "ble"]
        self.device_panel.set_found(found + ble, select=select)

    def connect_device(self, spec: str) -> None:
        if self.session_live or self.busy or self.closed:
            return
        old = self.device
        self._forget_ended_session()
        self.device_panel.set_device(None)
        self.busy = True
        self.link_state = "connecting"
        self.device_panel.set_link("connecting")
        self.device_panel.message.clear_message()
        self._update_controls()
        engine = self.engine

        def work() -> Device:
            if old is not None:
                old.close()
            return engine.connect(spec)

        def done(device: Any, error: BaseException | None) -> None:
            self._connected(spec, device, error)

        self._start_worker(work, done, "acustim-gui-connect")

    def _connected(self, spec: str, device: Any, error: BaseException | None) -> None:
        self.busy = False
        if self.closed:
            return
        if error is not None or not isinstance(device, Device):
            self.device = None
            self.link_state = "disconnected"
            self.device_panel.set_link("disconnected")
            self.device_panel.set_device(None)
            self.device_panel.message.show_message(f"Could not connect: {error}", "danger")
            self.log.add("error", f"could not connect to {spec}: {error}", "danger")
        else:
            self.device = device
            self.link_state = "connected"
            self.device_panel.set_link("connected")
            self.device_panel.set_device(device.profile, spec)
            identity = device.identity
            said = ""
            if identity is not None:
                self.device_panel.set_identity(identity.describe(), identity.firmware)
                self.device_panel.set_battery(identity.battery_percent)
                said = f": {identity.describe()}"
            self.log.add("connected", f"connected to {device.profile.name} ({spec}){said}", "ok")
        self._show_simulator(self.device)
        self.device_scroll.updateGeometry()  # the panel's height changed with its device
        self._preview()
        self._update_controls()

    def disconnect_device(self) -> None:
        device = self.device
        if device is None or self.session_live or self.busy:
            return
        self.busy = True
        self._update_controls()

        def done(_: Any, error: BaseException | None) -> None:
            self.busy = False
            if self.closed:
                return
            self._forget_ended_session()
            self.device = None
            self.link_state = "disconnected"
            self.device_panel.set_link("disconnected")
            self.device_panel.set_device(None)
            self._show_simulator(None)
            self.log.add("disconnected", f"disconnected from {device.spec}")
            if error is not None:
                self.log.add("error", f"closing the link: {error}", "warn")
            self._preview()
            self._update_controls()

        self._start_worker(device.close, done, "acustim-gui-disconnect")

    def _start_worker(
        self,
        work: Callable[[], Any],
        done: Callable[[Any, BaseException | None], None],
        name: str,
    ) -> None:
        self._workers = [t for t in self._workers if t.is_alive()]
        self._workers.append(self.bridge.run_in_thread(work, done, name=name))

    def scan_ble(self) -> None:
        """Scan for BLE stimulators on the IO thread; the result comes back by signal."""
        if self.closed:
            return
        self.busy = True
        self.device_panel.message.show_message("Scanning for Bluetooth devices…", "info")
        self._update_controls()
        report = self.bridge.callback(self._scanned)
        future = self.engine.scan_ble(timeout_s=4.0)

        def finished(f: Any) -> None:
            if f.cancelled():
                report(None, RuntimeError("scan cancelled"))
                return
            error = f.exception()
            report(None if error else f.result(), error)

        future.add_done_callback(finished)

    def _scanned(self, found: Any, error: BaseException | None) -> None:
        self.busy = False
        if self.closed:
            return
        if error is not None:
            self.device_panel.message.show_message(str(error), "warn")
            self.log.add("error", f"Bluetooth scan: {error}", "warn")
        else:
            items = list(found or [])
            self.device_panel.add_found(items)
            text = (
                f"Found {len(items)} Bluetooth stimulator{'s' if len(items) != 1 else ''}."
                if items
                else "No Bluetooth stimulators found nearby."
            )
            self.device_panel.message.show_message(text, "info")
            self.log.add("scan", text)
        self._update_controls()

    # --- programs and limits ---------------------------------------------------------------------
    def calibrate_device(self) -> None:
        """The calibration dialog for the connected device (no session may run meanwhile);
        a stored calibration applies at once: the limits and the plan are made again."""
        device = self.device
        if device is None or self.session_live or self.busy or self.closed:
            return
        self._forget_ended_session()
        record = self.calibrate_dialog(self, device)
        if record is not None:
            device.apply_calibration()  # the stored file, read back and checked as on connect
            self.log.add(
                "calibrated",
                f"{device.profile.name} calibrated on {record.day} by {record.by}: "
                f"{record.peak_ma_per_du:.4g} mA peak per du into {record.load_ohm:g} ohm",
                "ok",
            )
            self.device_panel.set_device(device.profile, device.spec)
        self._preview()
        self._update_controls()

    def _fault_injected(self, sentence: str) -> None:
        self.log.add("simulator", sentence, "warn")

    def _show_simulator(self, device: Device | None) -> None:
        """The simulator's fault panel, as a tab, for a ``sim:`` device only."""
        self.simulator_panel.set_device(device)
        shown = device is not None and device.simulator is not None
        index = self.side_tabs.indexOf(self.simulator_panel)
        self.side_tabs.setTabVisible(index, shown)
        if not shown and self.side_tabs.currentIndex() == index:
            self.side_tabs.setCurrentIndex(0)

    def _last_recorded(self) -> int | None:
        session = self.session
        if self.engine.store is None or session is None or not session.done:
            return None
        return session.session_id

    def save_last_report(self) -> None:
        """The last session's report, saved as HTML or PDF where the practitioner chooses."""
        session_id = self._last_recorded()
        if session_id is not None and self.engine.store is not None:
            saved = save_report(
                self, self.engine.store, session_id, choose=self.report_path_chooser
            )
            if saved is not None:
                self.log.add("report", f"report of session {session_id} saved to {saved}")

    def print_last_report(self) -> None:
        session_id = self._last_recorded()
        store = self.engine.store
        if session_id is not None and store is not None and print_report(self, store, session_id):
            self.log.add("report", f"report of session {session_id} printed")

    def _forget_ended_session(self) -> None:
        """A new program or device: nothing of the last session stays on screen (its clock,
        segment, traces, battery or end banner)."""
        if self.session is not None and self.session.done:
            self.session = None
            self.live = None
            self._result = None
            self.header.banner.clear_message()
            self.header.set_program(self.program)  # the clock, segment and state afresh
            self.plots.clear()
            self.device_panel.set_battery(None)
            self.device_panel.set_lateness(None, None)

    def _program_chosen(self, program: Program) -> None:
        self._forget_ended_session()
        self.program = program
        self.header.set_program(program)
        self.channels.set_channels([(c.name, c.sites) for c in program.channels])
        self._tab_order()
        self._sent = {}
        self._preview()
        self._update_controls()

    def _preview(self) -> None:
        """The pre-start plan of this program on this device, before any level, patient or
        answer: the limits it would run under and the device's caveats (pure; the engine
        makes the plan again, identically, when the session starts)."""
        program, device = self.program, self.device
        self.limits = None
        self.header.banner.clear_message()
        self.program_panel.set_device_note("")
        if program is None:
            return
        if device is None:
            for card in self.channels.cards.values():
                card.set_limit(None)
            self.ramp_note.setText("Connect a device to set levels.")
            self._configure_plots(None)
            return
        profile = device.profile
        try:
            plan = prepare(device, program)
        except AcustimError as exc:
            for card in self.channels.cards.values():
                card.set_limit(None)
            self.header.banner.show_message(
                f"{program.title} cannot run on {profile.name}: {exc}", "danger"
            )
            self.ramp_note.setText("")
            self._configure_plots(None)
            return
        self.limits = plan.limits
        step = max(1, round(profile.limits.max_level_du / 200))
        for ch in self.limits.channels:
            if ch.name in self.channels.cards:
                card = self.channels.cards[ch.name]
                card.set_limit(ch.ceiling_du, step_du=step)
                card.set_target(0)  # a level set for another device or program never carries
                card.set_scaled_by(device.level_scaled_by)
        self._sent = {}
        rise = self.limits.rise_du_per_s
        self.ramp_note.setText(
            f"Output rises at most {rise:g} du/s and falls at once · keys on a slider: "
            f"±{step} du, PageUp/PageDown ±{10 * step} du"
        )
        if plan.of_kind(ItemKind.RUNS_ON):  # the whole text is in the confirmation
            self.header.banner.show_message(
                f"{profile.name} keeps stimulating if this computer or app stops: keep the "
                "device's own off switch within reach. You will be asked to confirm before "
                "the session.",
                "warn",
            )
        notes = plan.of_kind(ItemKind.DEVICE_PULSE_WIDTH, ItemKind.PULSE_WIDTH)
        self.program_panel.set_device_note("\n".join(sentence(item.text) for item in notes))
        self._configure_plots(device)

    def _configure_plots(self, device: Device | None) -> None:
        program = self.program
        if program is None:
            return
        names = [c.name for c in program.channels]
        colours = [theme.channel_colour(k) for k in range(len(names))]
        period = device.profile.limits.sample_period_s if device is not None else 0.025
        self.plots.configure(
            names,
            colours,
            period,
            biphasic=device.profile.limits.biphasic if device is not None else False,
            frequency_max_hz=program_max_frequency_hz(program),
        )

    # --- the session -----------------------------------------------------------------------------
    def start_session(self) -> None:
        device, program, limits = self.device, self.program, self.limits
        if self.session_live or self.closed:
            return
        if (
            device is None
            or program is None
            or limits is None
            or self.link_state not in READY_LINKS
        ):
            self.header.banner.show_message("Connect a device and choose a program first.", "warn")
            return
        profile = device.profile
        all_levels = self.channels.levels()
        levels = {name: du for name, du in all_levels.items() if du > 0}  # the rest start at 0
        ceilings = self.channels.ceilings()
        patient = self.patient.text().strip() or None
        plan = self._plan(device, program, levels, ceilings, patient)
        if plan is None:
            return
        onset_days: int | None = None
        if Pending.ONSET_DAYS in plan.pending:
            onset_days = self.ask_onset(program)
            if onset_days is None:
                self.log.add("cancelled", "start cancelled: days since onset not given")
                return
        answers: dict[str, bool] | None = None
        acknowledged: list[str] = []
        if Pending.SCREENING in plan.pending:
            asked = self.ask_screening(plan.patient, plan.questions)
            if asked is None:
                self.log.add("cancelled", "start cancelled: screening not answered")
                return
            answers, acknowledged = asked
        if plan.pending:
            plan = self._plan(
                device, program, levels, ceilings, patient, onset_days, answers, acknowledged
            )
            if plan is None:
                return
        if not self._confirm_plan(plan):
            return
        for item in plan.items:  # shown before Start; the session's own repeats are skipped
            self.log.add(item.kind, item.text, "warn" if item.confirm else None)
        live = LiveBuffer.for_window(
            [c.name for c in program.channels],
            sample_period_s=profile.limits.sample_period_s,
            window_s=WINDOW_S,
        )
        signal = self.bridge.notice

        def on_notice(event: SessionEvent) -> None:  # IO thread: hand over, nothing else
            signal.emit(event)

        try:
            session = device.start(
                program,
                levels=levels,
                ceilings=ceilings,
                on_notice=on_notice,
                on_frame=live.on_frame,
                patient=patient,
                screening=answers,
                acknowledged=acknowledged,
                onset_days=onset_days,
                confirmed=plan.items,
                notes=self.notes.toPlainText().strip(),
            )
        except (AcustimError, RuntimeError) as exc:
            self.header.banner.show_message(f"Not started: {exc}", "danger")
            self.log.add("error", f"not started: {exc}", "danger")
            return
        self.session = session
        self.live = live
        self._end_handled = False
        self._result = None
        self._sent = dict(all_levels)
        self._seen_targets = {}
        self._requests = 0
        self._configure_plots(device)
        self.plots.set_floor_top(max(levels.values(), default=0))
        self.header.banner.clear_message()
        self.header.set_state("connecting")
        self.link_state = "connected"
        self.device_panel.set_link("connected")
        self._update_controls()
        first = next(iter(self.channels.cards.values()), None)
        if first is not None:
            first.slider.setFocus(Qt.FocusReason.OtherFocusReason)

    def _plan(
        self,
        device: Device,
        program: Program,
        levels: dict[str, int],
        ceilings: dict[str, int],
        patient: str | None,
        onset_days: int | None = None,
        answers: dict[str, bool] | None = None,
        acknowledged: list[str] | None = None,
    ) -> StartPlan | None:
        """The pre-start plan for these inputs; None (and the refusal shown) if refused."""
        try:
            return prepare(
                device,
                program,
                levels=levels,
                ceilings=ceilings,
                patient=patient,
                onset_days=onset_days,
                screening=answers,
                acknowledged=acknowledged or (),
            )
        except AcustimError as exc:
            self.header.banner.show_message(f"Not started: {exc}", "danger")
            self.log.add("error", f"not started: {exc}", "danger")
            return None

    def _confirm_plan(self, plan: StartPlan) -> bool:
        """Ask for an explicit yes to the plan's items that need one and to every warning
        (placement, current between channels, the onset rule); the device's other caveats are
        listed with them. True if there is nothing to confirm."""
        to_confirm = plan.needs_yes
        if not to_confirm:
            return True
        runs_on = bool(plan.of_kind(ItemKind.RUNS_ON))
        text = "\n\n".join(sentence(item.text) for item in to_confirm)
        others = [item for item in plan.items if item not in to_confirm]  # each said once
        if others:
            text += "\n\nAlso:\n" + "\n".join(f"• {sentence(item.text)}" for item in others)
        title = "This device keeps stimulating" if runs_on else "Before the session"
        if self.confirm(title, f"{text}\n\nStart the session?"):
            self.log.add("confirmed", f"confirmed before Start: {len(to_confirm)} item(s)")
            return True
        why = "the device keeps stimulating on its own" if runs_on else "not confirmed"
        self.log.add("cancelled", f"start cancelled: {why}")
        return False

    def emergency_stop(self) -> None:
        """STOP: zero output at once and end the session (safe to press at any time)."""
        session = self.session
        if session is None or session.done:
            return
        session.stop("stopped by the practitioner (STOP)")
        self.log.add("stop", "STOP: output to zero, session ending", "danger")
        for card in self.channels.cards.values():
            card.set_target(0)
        self._sent = dict.fromkeys(self._sent, 0)

    def pause_session(self) -> None:
        session = self.session
        if session is None or session.done:
            return
        try:
            session.pause()
        except Exception as exc:  # the session ended meanwhile: STOP stays available
            self.log.add("error", f"pause: {exc}", "warn")
            return
        before = {name: du for name, du in self._sent.items() if du > 0}
        for card in self.channels.cards.values():
            card.set_target(0)
        self._sent = dict.fromkeys(self._sent, 0)
        if before:  # Resume says what it will go back to
            said = ", ".join(f"{name} {du}" for name, du in before.items())
            self.header.resume_button.setText(f"Resume: {said} du")
        self.header.banner.show_message(
            "Paused: output is zero and the program clock stands still. Resume (or raise a "
            "level) to go on: output rises again from zero.",
            "warn",
        )
        QTimer.singleShot(0, self._update_controls)  # Resume, once the pause has been taken

    def resume_session(self) -> None:
        """After a pause: every channel back to its level before it, ramping from zero."""
        session = self.session
        if session is None or session.done:
            return
        try:
            targets = session.resume()
        except Exception as exc:  # the session ended meanwhile: STOP stays available
            self.log.add("error", f"resume: {exc}", "warn")
            return
        for name, du in targets.items():
            card = self.channels.cards.get(name)
            if card is not None:
                card.set_target(du)
            self._sent[name] = du
        self.plots.set_floor_top(max(self._sent.values(), default=0))
        self.header.banner.clear_message()
        self.header.resume_button.setText("Resume")
        self._update_controls()

    def _level_changed(self, channel: str, level_du: int) -> None:
        self._sent[channel] = level_du
        self.plots.set_floor_top(max(self._sent.values(), default=0))
        session = self.session
        if session is None or session.done:
            return
        try:
            session.set_level(channel, level_du)
        except Exception as exc:  # e.g. the session is ending: show it, never crash
            self.log.add("error", f"level {channel}: {exc}", "warn")
        else:
            self._requests += 1

    def _notice(self, event: SessionEvent) -> None:
        if self.closed:
            return
        kind, message = event.kind, event.message
        if kind in SHOWN_BEFORE_START:
            return  # the session repeats the plan's items for its record: shown before Start
        if kind in (EventKind.END, EventKind.STOP):
            # the end is reported once, with its figures, by _session_ended; the guard's
            # "stop" repeats the pause or STOP line this window already wrote
            return
        self.log.add(kind, message, channel=event.channel)
        if kind == EventKind.LINK_LOST:
            self.link_state = "lost"
            self.device_panel.set_link("lost")
            for card in self.channels.cards.values():
                card.set_target(0)
                card.show_status(None, self._calibrated())
            self._sent = dict.fromkeys(self._sent, 0)
            if self._end_handled:
                self._show_end_banner()
            else:
                self.header.banner.show_message(f"{message}. {self._output_now()}", "danger")
            self._update_controls()
        elif kind == EventKind.RESUME:
            self.header.banner.clear_message()
        elif kind == EventKind.RECONNECTED:
            self.link_state = "connected"
            self.device_panel.set_link("connected")

    def _width_known(self) -> bool:
        """The device delivers the program's pulse widths (some set their own)."""
        return self.device is not None and self.device.profile.pulse_width_controlled

    def _calibrated(self) -> bool:
        return self.device is not None and self.device.profile.calibrated

    # --- the 30 Hz refresh -----------------------------------------------------------------------
    def refresh(self) -> None:
        session = self.session
        if session is not None:
            status = session.status()
            self.header.show_status(status)
            if not self._end_handled and status.state != "ended":
                self.header.set_state(status.state)
            calibrated = self._calibrated()
            by_name = {c.name: c for c in status.channels}
            for name, card in self.channels.cards.items():
                cs = by_name.get(name)
                if self._end_handled:
                    card.show_status(None, calibrated)
                    continue
                card.show_status(cs, calibrated, width_known=self._width_known())
                if status.level_requests != self._requests:
                    continue  # a request of ours is still in flight: its target is not seen yet
                if cs is not None and self._seen_targets.get(name) != cs.target_du:
                    # the guard changed the target (pause, link loss, the device's own wheel)
                    self._seen_targets[name] = cs.target_du
                    if cs.target_du != self._sent.get(name) and not card.slider.isSliderDown():
                        card.set_target(cs.target_du)
                        self._sent[name] = cs.target_du
            resumable = status.state == "paused" and not session.done
            if self.header.resume_button.isEnabled() != resumable:
                self.header.resume_button.setEnabled(resumable)
                if not resumable:
                    self.header.resume_button.setText("Resume")
            if status.state != "connecting":
                self.device_panel.set_battery(status.battery_percent)
                self.device_panel.set_lateness(status.lateness_ms, status.lateness_p99_ms)
            self.status_lateness.setText(f"Lateness p99: {status.lateness_p99_ms:.1f} ms")
            self.plots.refresh(self.live)
            if session.done and not self._end_handled:
                self._session_ended(session)
        else:
            self.status_lateness.setText("Lateness p99: —")
        self.status_link.setText(f"Link: {self.link_state}")
        self.status_session.setText(f"Session: {self._session_word()}")

    def _session_word(self) -> str:
        session = self.session
        if session is None:
            return "none"
        status = session.status()
        if status.state == "ended":
            return status.outcome or "ended"
        return status.state

    def _session_ended(self, session: Session) -> None:
        self._end_handled = True
        outcome: str
        reason: str
        try:
            result = session.wait(0.0)
            outcome, reason = result.outcome, result.reason
        except Exception as exc:  # the session's task failed: output was ended by the runner
            outcome, reason = "fault", f"{type(exc).__name__}: {exc}"
        status = session.status()
        if outcome == "fault" and reason.startswith("could not connect"):
            self.link_state = "lost"
            self.device_panel.set_link("lost")
        elif self.link_state != "lost":
            self.link_state = "idle"  # the engine closed the link; the next session reopens it
            self.device_panel.set_link("idle")
        self.header.set_state(outcome)
        self._result = (outcome, reason)
        self._show_end_banner()
        if self.sound_box.isChecked():
            self.sound("fault" if outcome == "fault" else "end")
        tone = {"completed": "ok", "stopped": "info"}.get(outcome, "danger")
        for card in self.channels.cards.values():
            card.set_target(0)
            card.show_status(None, self._calibrated())
        self._sent = dict.fromkeys(self._sent, 0)
        where = ""
        if self.engine.store is not None and session.session_id is not None:
            where = f"; recorded as session {session.session_id}"
        self.log.add(
            "fault" if outcome == "fault" else "ended",
            f"session {outcome}: {reason} ({status.frames_sent} frames, "
            f"{status.frames_skipped} skipped, lateness p99 {status.lateness_p99_ms:.1f} ms"
            f"{where})",
            tone,
        )
        self._update_controls()

    def _ask_onset_days(self, program: Program) -> int | None:
        days, ok = QInputDialog.getInt(
            self,
            "Days since onset",
            f"{program.title}: how many days ago did the facial palsy begin?",
            0,
            0,
            36500,
        )
        return days if ok else None

    def show_history(self) -> None:
        """Past sessions in this store, with their reports (a separate, non-modal window)."""
        if self.engine.store is None:
            return
        if self._history is None:
            self._history = HistoryView(self.engine.store)
            self._history.setWindowTitle("acustim: session history")
            self._history.resize(900, 520)
        else:
            self._history.refresh()
        self._history.show()
        self._history.raise_()

    def _show_end_banner(self) -> None:
        if self._result is None:
            return
        outcome, reason = self._result
        tone = {"completed": "ok", "stopped": "info"}.get(outcome, "danger")
        what = {"completed": "Session completed", "stopped": "Stopped"}.get(outcome, "Fault")
        after = " Reconnect the device to start again." if self.link_state == "lost" else ""
        said = "" if "WARNING" in reason else f" {self._output_now()}"
        self.header.banner.show_message(f"{what}: {reason}.{said}{after}", tone)

    def _output_now(self) -> str:
        """What can honestly be said about the output after a stop, fault or lost link."""
        device = self.device
        runs_on = device is not None and not device.profile.stops_when_host_silent
        if runs_on and self.link_state == "lost" and device is not None:
            return (
                f"{device.profile.name} keeps stimulating by itself: switch it off at the device."
            )
        return "Output is zero; nothing resumes by itself."

    # --- the end ---------------------------------------------------------------------------------
    def shutdown(self, reason: str = "window closed") -> None:
        """Stop output first, then close the engine (idempotent). Used on close, on an
        uncaught exception and on a signal."""
        if self.closed:
            return
        self.closed = True
        self.refresh_timer.stop()
        session = self.session
        try:
            if session is not None and not session.done:
                session.stop(reason)
                with contextlib.suppress(Exception):
                    session.wait(CLOSE_WAIT_S)
        finally:
            for worker in self._workers:
                worker.join(CLOSE_WAIT_S)
            if self._history is not None:
                self._history.close()
                self._history.deleteLater()
            self.engine.close()
            app = QApplication.instance()
            if app is not None:
                app.removeEventFilter(self._key_filter)

    def emergency_shutdown(self, reason: str) -> None:
        """After an uncaught exception: stop output, close the engine, say so, keep the window
        open (read-only) so the practitioner sees what happened."""
        try:
            self.shutdown(reason)
        finally:
            self.header.set_state("fault")
            self.header.banner.show_message(
                f"An internal error stopped all output and closed the device link ({reason}). "
                "Restart acustim to continue.",
                "danger",
            )
            self.log.add("error", f"internal error: {reason}; output stopped", "danger")
            for widget in (self.device_panel, self.channels, self.program_panel):
                widget.setEnabled(False)
            self.header.start_button.setEnabled(False)
            self.header.pause_button.setEnabled(False)

    def closeEvent(self, event: QCloseEvent) -> None:
        """During a session, ask first; the default answer keeps the session running."""
        if self.session_live and not self.closed:
            name = self.device.profile.name if self.device is not None else "the device"
            close = self.confirm(
                "A session is running",
                f"A session is running on {name}. Stop its output now and close acustim?\n\n"
                "No keeps the session running.",
            )
            if not close:
                self.log.add("close", "close cancelled: the session keeps running")
                event.ignore()
                return
        self.shutdown("window closed")
        event.accept()
