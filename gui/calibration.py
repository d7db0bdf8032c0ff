"""The calibration dialog (issue 13): measure a device's output into a load resistor.

``CalibrationDialog(device, parent)`` explains the set-up (a 500 ohm resistor and a scope or
true-rms meter on each output, no person connected), asks who measured, the meter kind, the
load and the cap, and runs ``acustim.calibration.calibrate`` on a worker thread. While the
device holds each level, the worker waits for the reading typed here ("Enter reading"); a
simulator may use its virtual meter instead. Every rule (the meter kinds a profile allows, the
load range, the readings' checks) is ``acustim.calibration``'s: a refusal is its one-line
``CalibrationError``, shown here, never a traceback.

Stop, Esc and closing the dialog all stop output at once (``Session.stop``: the zero frame
goes on the wire), and the run ends with nothing stored. News from the worker reaches the
GUI thread by Qt signals only (queued connections, as ``gui.bridge``).

``run_calibration_dialog(parent, device)`` shows it modally and returns the stored record
(also applied to the device: ``Device.apply_calibration``), or None.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from acustim import AcustimError
from acustim.calibration import (
    DEFAULT_CAP_FRACTION,
    DEFAULT_LOAD_OHM,
    FIT_TOLERANCE,
    CalibrationRecord,
    Step,
    calibrate,
    default_levels,
    virtual_meter,
)
from acustim.commands.calibrate import MAX_READING_CHARS, describe
from gui.bridge import Bridge
from gui.panels.common import Banner, muted
from gui.theme import ACCENT

if TYPE_CHECKING:
    from acustim.engine import Device
    from acustim.prestart import StartPlan

__all__ = ["CalibrationDialog", "run_calibration_dialog"]

STOP_REASON = "calibration stopped by the practitioner (STOP)"
STOPPED_TEXT = "Stopped: output went to zero at once; nothing was stored."
#: how often the worker, waiting for a reading, looks whether it should stop
_POLL_S = 0.05


class _Stopped(Exception):
    """Raised in the worker's ``read`` when the practitioner stopped the run."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Signals(QObject):
    """From the worker thread to the dialog (queued: the slots run on the GUI thread)."""

    plan = Signal(object)  # StartPlan
    step = Signal(object)  # Step
    asked = Signal(str, int)  # channel, level: type a reading
    reading = Signal(str, int, float)  # channel, level, the reading taken


class CalibrationDialog(QDialog):
    """Calibrate ``device`` into a load resistor; ``record`` once one is stored."""

    def __init__(self, device: Device, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device = device
        profile = device.profile
        self._unit = profile.level_unit
        self._channels = list(profile.channels)
        self._full = profile.limits.max_level_du
        self.record: CalibrationRecord | None = None
        self.outcome = ""  # "stored", "refused", "stopped" once a run ended
        self._thread: threading.Thread | None = None
        self._answers: queue.Queue[float] = queue.Queue()
        self._stop = threading.Event()
        self._close_when_done = False
        self._asked: tuple[str, int] | None = None
        self._levels: list[int] = []
        self._taken = 0
        self._bridge = Bridge(self)
        self._signals = _Signals(self)
        self._signals.plan.connect(self._on_plan)
        self._signals.step.connect(self._on_step)
        self._signals.asked.connect(self._on_asked)
        self._signals.reading.connect(self._on_reading)
        #: after a stop, until the run ended: stop the device's session whenever one is live
        #: (a stop pressed while the session was being started still reaches it)
        self._stopper = QTimer(self)
        self._stopper.setInterval(20)
        self._stopper.timeout.connect(self._stop_session)

        self.setWindowTitle(f"Calibrate {device.spec} ({profile.name})")
        self.setModal(True)
        self.resize(680, 820)
        # the theme's red STOP has no disabled look: when no run is live it must not look live
        self.setStyleSheet(
            "QPushButton#stop:disabled { background: #f1d4d4; color: #ffffff; "
            "border: 2px solid #e7b8b8; }"
            f"QProgressBar::chunk {{ background: {ACCENT}; }}"
        )
        layout = QVBoxLayout(self)

        setup = (
            f"<b>Set-up.</b> Connect a <b>{DEFAULT_LOAD_OHM:g} ohm</b> resistor (at most "
            f"{DEFAULT_LOAD_OHM:g} ohm) across <b>every</b> output "
            f"({', '.join(self._channels)}), and a scope (peak meter) or a true-rms meter "
            "across the one being measured. <b>No person may be connected.</b> Each channel "
            "in turn steps up through the levels below and holds each until you enter the "
            "reading, then a verification level; the other channels stay at zero. Every "
            f"reading must be within {FIT_TOLERANCE:.0%} of the fit. Stop or Esc ends the run "
            "at zero; nothing is stored unless every check passed."
        )
        scaled = device.level_scaled_by
        if scaled:
            setup += (
                f" <b>{profile.name}:</b> every level is scaled by {scaled}: turn the knobs "
                "fully up before starting."
            )
        intro = QLabel(setup)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(intro)
        current = self._current_text()
        if current:
            layout.addWidget(muted(current))

        form = QFormLayout()
        self.by = QLineEdit()
        self.by.setPlaceholderText("who measured (required; stored)")
        self.by.setMaxLength(80)
        form.addRow("Measured by", self.by)
        self.meter = QComboBox()
        self.meter.addItem("peak (a scope)", "peak")
        self.meter.addItem("rms (a true-rms meter)", "rms")
        # only a default: the rules of which kind a profile takes are calibrate()'s
        self.meter.setCurrentIndex(0 if profile.limits.biphasic else 1)
        form.addRow("Meter", self.meter)
        self.load = QDoubleSpinBox()
        self.load.setRange(1.0, 100000.0)
        self.load.setDecimals(1)
        self.load.setSuffix(" ohm")
        self.load.setValue(DEFAULT_LOAD_OHM)
        form.addRow("Load resistor", self.load)
        self.cap = QSpinBox()
        self.cap.setRange(1, self._full)
        self.cap.setValue(max(1, math.floor(self._full * DEFAULT_CAP_FRACTION)))
        self.cap.setSuffix(f" {self._unit}")
        form.addRow("Cap (highest level)", self.cap)
        self.levels_label = QLabel()
        self.levels_label.setWordWrap(True)
        form.addRow("Levels", self.levels_label)
        layout.addLayout(form)

        self.virtual = QCheckBox("Use the simulator's virtual meter (no readings to type)")
        self.virtual.setVisible(device.simulator is not None)
        layout.addWidget(self.virtual)
        self.no_person = QCheckBox("No person is connected to the device (load resistors only)")
        layout.addWidget(self.no_person)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start calibration")
        self.start_button.setObjectName("primary")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stop")
        self.stop_button.setMinimumHeight(48)
        self.stop_button.setToolTip("Output to zero at once; nothing stored (also Esc)")
        self.close_button = QPushButton("Close")
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button, 1)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

        self.progress_label = QLabel("Not started.")
        layout.addWidget(self.progress_label)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        layout.addWidget(self.progress)

        self.prompt = QLabel()
        self.prompt.setWordWrap(True)
        self.prompt.setObjectName("value")
        layout.addWidget(self.prompt)
        entry = QHBoxLayout()
        self.reading = QLineEdit()
        self.reading.setPlaceholderText("mA, e.g. 12.5")
        self.reading.setMaxLength(MAX_READING_CHARS)
        self.enter_button = QPushButton("Enter reading")
        entry.addWidget(self.reading, 1)
        entry.addWidget(self.enter_button)
        layout.addLayout(entry)
        self.reading_error = muted()
        layout.addWidget(self.reading_error)

        self.log = QListWidget()
        self.log.setWordWrap(True)  # a plan item is a sentence: wrapped, never cut off
        self.log.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.log.setMinimumHeight(120)
        layout.addWidget(self.log, 1)
        self.result_banner = Banner()
        self.result_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.result_banner)

        for button in (self.start_button, self.stop_button, self.close_button, self.enter_button):
            button.setAutoDefault(False)  # Enter in a field never starts or stops anything
            button.setDefault(False)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.close_button.clicked.connect(self.close)
        self.enter_button.clicked.connect(self.enter_reading)
        self.reading.returnPressed.connect(self.enter_reading)
        self.by.textChanged.connect(self._update)
        self.no_person.toggled.connect(self._update)
        self.virtual.toggled.connect(self._update)
        self.meter.currentIndexChanged.connect(self._update)
        self.cap.valueChanged.connect(self._update)
        self._update()

    # --- state ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def _current_text(self) -> str:
        device = self.device
        if device.calibration is not None:
            return "Replaces: " + describe(device.calibration, self._unit)[0]
        if device.calibration_note:
            return device.calibration_note
        return f"{device.spec} is not calibrated."

    def _planned_levels(self) -> list[int]:
        return default_levels(self.cap.value())

    def _update(self) -> None:
        running = self.running
        self._levels = self._planned_levels() if not running else self._levels
        kind = self.meter.currentData()
        self.levels_label.setText(
            f"{', '.join(str(x) for x in self._levels)} {self._unit} on each channel "
            f"({', '.join(self._channels)}), then a verification level between the last two; "
            f"{'an' if kind == 'rms' else 'a'} {kind} reading at each"
        )
        missing = []
        if not self.by.text().strip():
            missing.append("who measured")
        if not self.no_person.isChecked():
            missing.append("the tick that no person is connected")
        ready = not running and not missing
        self.start_button.setEnabled(ready)
        self.start_button.setToolTip("" if ready or running else "first: " + ", ".join(missing))
        self.stop_button.setEnabled(running)
        for w in (self.by, self.meter, self.load, self.cap, self.virtual, self.no_person):
            w.setEnabled(not running)
        asking = running and self._asked is not None
        self.reading.setEnabled(asking)
        self.enter_button.setEnabled(asking)
        if not asking:
            self.prompt.setText("")

    # --- the run --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the run (the Start button); refused until who measured and the tick."""
        if self.running or not self.start_button.isEnabled():
            return
        device = self.device
        by = self.by.text()
        kind = str(self.meter.currentData())
        load = float(self.load.value())
        cap = int(self.cap.value())
        levels = self._planned_levels()
        no_person = self.no_person.isChecked()
        use_virtual = self.virtual.isVisible() and self.virtual.isChecked()
        self._levels = levels
        self._stop.clear()
        self._answers = queue.Queue()
        answers = self._answers
        stop = self._stop
        signals = self._signals
        self.record = None
        self.outcome = ""
        self._taken = 0
        self._asked = None
        self.log.clear()
        self.result_banner.clear_message()
        self.progress.setRange(0, len(self._channels) * (len(levels) + 1))
        self.progress.setValue(0)
        self.progress_label.setText("Starting: the load program at zero…")

        def wait_for_reading(level: int, channel: str) -> float:
            signals.asked.emit(channel, level)
            while True:
                if stop.is_set():
                    raise _Stopped
                session = device.session
                if session is not None and session.done:
                    raise AcustimError(
                        "the calibration session ended while waiting for a reading; nothing stored"
                    )
                try:
                    return answers.get(timeout=_POLL_S)
                except queue.Empty:
                    continue

        def work() -> CalibrationRecord:
            meter = virtual_meter(device, kind, load) if use_virtual else None  # type: ignore[arg-type]

            def read(level: int, channel: str) -> float:
                if stop.is_set():
                    raise _Stopped
                value = (
                    meter(level, channel) if meter is not None else wait_for_reading(level, channel)
                )
                signals.reading.emit(channel, level, float(value))
                return value

            def on_plan(plan: StartPlan) -> None:
                if stop.is_set():
                    raise _Stopped
                signals.plan.emit(plan)

            return calibrate(
                device,
                levels,
                read=read,
                by=by,
                no_person_connected=no_person,
                meter=kind,  # type: ignore[arg-type]
                load_ohm=load,
                cap_du=cap,
                on_step=signals.step.emit,
                on_plan=on_plan,
            )

        self._thread = self._bridge.run_in_thread(work, self._finished, name="acustim-calibration")
        self._update()

    def stop(self) -> None:
        """STOP: output to zero at once, and the run ends with nothing stored."""
        if not self.running:
            return
        self._stop.set()
        self._asked = None
        self._stop_session()
        self._stopper.start()
        self.progress_label.setText("Stopping: output to zero…")
        self._update()

    def _stop_session(self) -> None:
        session = self.device.session
        if session is not None and not session.done:
            session.stop(STOP_REASON)

    def enter_reading(self) -> None:
        """Hand the typed reading to the run (the worker waits for it)."""
        if self._asked is None:
            return
        text = self.reading.text().strip()
        try:
            value = float(text) if text else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.reading_error.setText(
                f"{text!r} is not a number: type the current in mA, e.g. 12.5 (the level is "
                "still held)"
                if text
                else "type the measured current in mA, e.g. 12.5"
            )
            return
        self.reading_error.setText("")
        self._asked = None
        self.reading.clear()
        self._answers.put(value)
        self._update()

    # --- news from the worker (GUI thread) ------------------------------------------------
    def _on_plan(self, plan: StartPlan) -> None:
        for item in plan.items:
            self.log.addItem(f"{'WARNING' if item.confirm else 'note'}: {_one_line(item.text)}")

    def _on_step(self, step: Step) -> None:
        if step.what == "done" or self._stop.is_set():
            return
        index = self._channels.index(step.channel) if step.channel in self._channels else 0
        n = len(self._levels) + 1
        if step.what == "verify":
            k = n
            what = f"verification at {step.level_du} {self._unit}"
        else:
            k = self._levels.index(step.level_du) + 1 if step.level_du in self._levels else 1
            what = f"holding {step.level_du} {self._unit}"
        self.progress_label.setText(
            f"Channel {step.channel} ({index + 1} of {len(self._channels)}): step {k} of {n}, "
            f"{what}"
        )

    def _on_asked(self, channel: str, level: int) -> None:
        if self._stop.is_set() or not self.running:
            return
        self._asked = (channel, level)
        kind = self.meter.currentData()
        self.prompt.setText(
            f"Channel {channel} holds {level} {self._unit}: measured {kind} current in mA"
        )
        self._update()
        self.reading.setFocus()

    def _on_reading(self, channel: str, level: int, value: float) -> None:
        self._taken += 1
        self.progress.setValue(self._taken)
        kind = self.meter.currentData()
        verify = "" if level in self._levels else " (verification)"
        self.log.addItem(f"{channel} at {level} {self._unit}{verify}: {value:.4g} mA {kind}")
        self.log.scrollToBottom()

    def _finished(self, result: object, error: BaseException | None) -> None:
        self._thread = None
        self._asked = None
        self._stopper.stop()
        self._stop_session()  # calibrate() ended its session; make sure of it all the same
        stopped = self._stop.is_set()
        if error is None and isinstance(result, CalibrationRecord):
            self.record = result
            self.outcome = "stored"
            self.device.apply_calibration()  # later sessions on this device use it
            lines = describe(result, self._unit)
            self.progress.setValue(self.progress.maximum())
            self.progress_label.setText("Done: output at zero.")
            applied = (
                "Applied: later sessions on this device run with rms current and "
                "current-density caps from this figure."
                if self.device.calibration is not None
                else f"Not applied: {self.device.calibration_note or 'see the file'}"
            )
            self.result_banner.show_message("Stored: " + "\n".join([*lines, applied]), "ok")
        elif stopped:
            self.outcome = "stopped"
            self.progress_label.setText("Stopped.")
            self.result_banner.show_message(STOPPED_TEXT, "warn")
        else:
            self.outcome = "refused"
            self.progress_label.setText("Ended at zero.")
            if isinstance(error, AcustimError):
                text = _one_line(str(error))
            else:
                text = _one_line(f"{type(error).__name__}: {error}")
            self.result_banner.show_message(f"Not calibrated: {text}", "danger")
        self._update()
        if self._close_when_done:
            self._close_when_done = False
            self.close()

    # --- Esc and closing stop -------------------------------------------------------------
    def reject(self) -> None:
        """Esc: while running, STOP (the dialog stays, to say so); else close."""
        if self.running:
            self.stop()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.running:
            self.stop()
            self._close_when_done = True  # closes once the run ended at zero
            event.ignore()
            return
        super().closeEvent(event)

    def done(self, r: int) -> None:
        if self.running:  # never leave a run behind a closed dialog
            self.stop()
            self._close_when_done = True
            return
        super().done(r)

    def wait_finished(self, timeout_s: float = 15.0) -> bool:
        """For tests and shutdown: join the worker (the run ended); True if it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()


def run_calibration_dialog(parent: QWidget | None, device: Device) -> CalibrationRecord | None:
    """Show the dialog modally; the record stored (and applied to ``device``), or None."""
    dialog = CalibrationDialog(device, parent)
    try:
        dialog.exec()
        return dialog.record
    finally:
        dialog.deleteLater()
