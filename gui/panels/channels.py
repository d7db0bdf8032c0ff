"""The channels panel: per program channel a ceiling, a level and the live output.

The level slider (and the number box beside it) sets the *target*: the safety guard raises the
delivered output towards it at the soft-start rate and lowers it at once. Keys on a focused
slider: Up/Down or +/- one step, PageUp/PageDown ten, Home to zero (End does nothing: never
the ceiling in one press); every press counts. A mouse
can raise a level only by dragging the handle: a click on the track or a wheel notch may lower
it, never raise it. The big figure is what is delivered now (level x the program's intensity,
as the guard let it through), with the target beside it; in mA too where the device is
calibrated. The panel never ramps or limits anything itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QValidator, QWheelEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSlider,
    QSpinBox,
    QStyle,
    QStyleOptionSlider,
    QWidget,
)

from acustim import ChannelStatus
from gui import theme
from gui.panels.common import Card, muted, set_colour

PAGE_STEP_DU = 10


def lower_only_wheel(widget: QSlider | QSpinBox, event: QWheelEvent) -> None:
    """A wheel notch down lowers by one step; a notch up does nothing (no accidental raise)."""
    if event.angleDelta().y() < 0 or event.angleDelta().x() < 0:
        widget.setValue(widget.value() - widget.singleStep())
    event.accept()


class LevelSlider(QSlider):
    """A horizontal slider that also takes + and - (one step each)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSingleStep(1)
        self.setPageStep(PAGE_STEP_DU)
        self.setTracking(True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_End:
            event.accept()  # End would jump the target to the ceiling in one press: nothing
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.triggerAction(QSlider.SliderAction.SliderSingleStepAdd)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.triggerAction(QSlider.SliderAction.SliderSingleStepSub)
        else:
            super().keyPressEvent(event)

    def _on_handle(self, event: QMouseEvent) -> bool:
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        hit = self.style().hitTestComplexControl(
            QStyle.ComplexControl.CC_Slider, option, event.position().toPoint(), self
        )
        return hit == QStyle.SubControl.SC_SliderHandle

    def _value_at(self, event: QMouseEvent) -> int:
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        groove = self.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, self
        )
        return QStyle.sliderValueFromPosition(
            self.minimum(),
            self.maximum(),
            int(event.position().x()) - groove.x(),
            max(1, groove.width()),
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """The handle may be dragged with the left button; any other press (a click on the
        track, a middle click, which the style would make jump to the click) only ever lowers,
        by one page, and only with the left button."""
        left = event.button() == Qt.MouseButton.LeftButton
        if left and self._on_handle(event):
            super().mousePressEvent(event)
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if left and self._value_at(event) < self.value():
            self.setValue(max(self.minimum(), self.value() - self.pageStep()))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self.isSliderDown():  # a drag of the handle (begun with the left button)
            super().mouseMoveEvent(event)
        else:
            event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.isSliderDown():
            super().mouseReleaseEvent(event)
        else:
            event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        lower_only_wheel(self, event)


class RefusingBox(QSpinBox):
    """A number typed above the maximum is refused out loud (``refused``), never cut short to
    its first digits (Qt's box would make 999 a 9). The wheel only lowers; a typed number is
    one value, taken on Enter."""

    refused = Signal(str)

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.what = what  # "ceiling", "target"
        self.setKeyboardTracking(False)  # a typed "12" is one request, not "1" then "12"
        self.setSuffix(" du")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._over: str | None = None
        self.editingFinished.connect(self._finished)

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        digits = text.removesuffix(self.suffix()).strip()
        if digits.isdigit() and len(digits) <= 9 and int(digits) > self.maximum():
            self._over = digits
            return QValidator.State.Intermediate, text, pos
        if digits != str(self.value()):  # not the box putting the kept value back
            self._over = None
        return super().validate(text, pos)

    def _finished(self) -> None:
        """Says what became of the typed text: refused (a message) or taken ("")."""
        over, self._over = self._over, None
        self.refused.emit(
            ""
            if over is None
            else f"{over} du refused: this channel's {self.what} must be 0..{self.maximum()} du"
        )

    def wheelEvent(self, event: QWheelEvent) -> None:
        lower_only_wheel(self, event)


class ChannelCard(Card):
    """One channel: its sites, live output, level slider and ceiling."""

    level_changed = Signal(str, int)
    ceiling_changed = Signal(str, int)

    def __init__(
        self, name: str, sites: Sequence[str], colour: str, parent: QWidget | None = None
    ) -> None:
        super().__init__("", parent)
        self.name = name
        self.colour = colour
        self.body.setSpacing(6)
        head = QHBoxLayout()
        badge = QLabel(f"Channel {name}")
        badge.setStyleSheet(
            f"color: white; background: {colour}; border-radius: 4px; padding: 2px 8px;"
            "font-weight: 600;"
        )
        head.addWidget(badge)
        where = QLabel(" \N{EN DASH} ".join(sites))
        where.setObjectName("value")
        where.setToolTip("Electrode sites of this channel (see the placement map)")
        head.addWidget(where)
        head.addStretch(1)
        self.body.addLayout(head)

        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(4)
        self.live = QLabel("0")
        self.live.setObjectName("big")
        self.live.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.live.setToolTip(
            "Delivered now: the level times the program's intensity at this moment, in device "
            "units (what the guard let through to the device)"
        )
        self.live_bar = QProgressBar()
        self.live_bar.setTextVisible(False)
        self.live_bar.setStyleSheet(
            f"QProgressBar::chunk {{ background: {colour}; border-radius: 4px; }}"
        )
        self.live_bar.setToolTip("Delivered output: rises at the soft-start rate, falls at once")
        self.live_unit = muted("du delivered")
        grid.addWidget(self.live, 0, 0)
        grid.addWidget(self.live_bar, 0, 1)
        grid.addWidget(self.live_unit, 0, 2)
        #: the rate, mode and pulse width now, in words (and mA where calibrated)
        self.mode = muted("—")
        self.mode.setToolTip("What this channel delivers now: mode, rate and pulse width")
        grid.addWidget(self.mode, 1, 1, 1, 2)
        self.current = muted("")
        self.current.hide()
        grid.addWidget(self.current, 2, 1, 1, 2)

        self.slider = LevelSlider()
        self.slider.setStyleSheet(theme.slider_style(colour))
        self.slider.setAccessibleName(f"Channel {name} target level")
        self.slider.setToolTip(
            "Target level. Up/Down or +/-: one step; PageUp/PageDown: ten steps. Drag the "
            "handle to raise; a click on the track or the wheel only lowers. Output rises "
            "slowly to the target and falls at once."
        )
        self.level_box = RefusingBox("target")
        self.level_box.setAccessibleName(f"Channel {name} target level, as a number")
        self.level_box.setToolTip("Type a target level and press Enter")
        self.level_box.setMinimumWidth(84)
        grid.addWidget(muted("Target"), 3, 0, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.slider, 3, 1)
        grid.addWidget(self.level_box, 3, 2)

        self.ceiling = RefusingBox("ceiling")
        self.ceiling.setMinimumWidth(100)
        self.ceiling.setAccessibleName(f"Channel {name} ceiling")
        self.ceiling.setToolTip("This channel never goes above its ceiling in this session")
        self.ceiling_note = muted("")
        ceiling_row = QHBoxLayout()
        ceiling_row.setSpacing(10)
        ceiling_row.addWidget(self.ceiling)
        ceiling_row.addWidget(self.ceiling_note, 1)
        grid.addWidget(muted("Ceiling"), 4, 0, Qt.AlignmentFlag.AlignRight)
        grid.addLayout(ceiling_row, 4, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnMinimumWidth(0, 64)
        self.body.addLayout(grid)
        self._max_note = ""

        self.slider.valueChanged.connect(self._slid)
        self.level_box.valueChanged.connect(self._typed)
        self.ceiling.valueChanged.connect(self._ceiling)
        self.ceiling.refused.connect(self._ceiling_refused)
        self.level_box.refused.connect(self._ceiling_refused)
        self.set_limit(None)

    # --- from the practitioner ------------------------------------------------------------
    @property
    def target(self) -> int:
        return self.slider.value()

    def _slid(self, value: int) -> None:
        self._show_target(value)
        self.level_changed.emit(self.name, value)

    def _typed(self, value: int) -> None:
        if value != self.slider.value():
            self.slider.setValue(value)  # one request, through the slider's signal

    def _ceiling(self, value: int) -> None:
        self.slider.setMaximum(value)
        self.level_box.setMaximum(value)
        self.live_bar.setMaximum(max(1, value))
        self._note(self._max_note)
        self.ceiling_changed.emit(self.name, value)

    def _ceiling_refused(self, message: str) -> None:
        if message:
            self._note(message, theme.DANGER_DARK)
        else:
            self._note(self._max_note)

    def _note(self, text: str, colour: str = theme.MUTED) -> None:
        self.ceiling_note.setText(text)
        set_colour(self.ceiling_note, colour)

    def _show_target(self, value: int) -> None:
        self.level_box.blockSignals(True)
        self.level_box.setValue(value)
        self.level_box.blockSignals(False)

    # --- from the window ------------------------------------------------------------------
    def set_limit(
        self, max_ceiling_du: int | None, ceiling_du: int | None = None, step_du: int = 1
    ) -> None:
        """The highest ceiling the limits allow (None: not known until a device connects);
        ``step_du`` is one key press (PageUp/PageDown move ten)."""
        if max_ceiling_du is None:
            self.ceiling.setRange(0, 0)
            self.slider.setRange(0, 0)
            self.level_box.setRange(0, 0)
            self._max_note = "connect a device"
            self._note(self._max_note)
            for widget in (self.slider, self.level_box, self.ceiling):
                widget.setEnabled(False)
            return
        self.slider.setSingleStep(step_du)
        self.slider.setPageStep(step_du * PAGE_STEP_DU)
        self.level_box.setSingleStep(step_du)
        self.ceiling.setSingleStep(step_du)
        self.ceiling.blockSignals(True)
        self.ceiling.setRange(0, max_ceiling_du)
        self.ceiling.setValue(max_ceiling_du if ceiling_du is None else ceiling_du)
        self.ceiling.blockSignals(False)
        self.slider.setMaximum(self.ceiling.value())
        self.level_box.setMaximum(self.ceiling.value())
        self.live_bar.setMaximum(max(1, self.ceiling.value()))
        self._max_note = f"max {max_ceiling_du} du"
        self._note(self._max_note)
        for widget in (self.slider, self.level_box, self.ceiling):
            widget.setEnabled(True)

    def set_target(self, value: int) -> None:
        """Move the slider without sending anything (the guard changed the target)."""
        self.slider.blockSignals(True)
        self.slider.setValue(value)
        self.slider.blockSignals(False)
        self._show_target(self.slider.value())

    def set_scaled_by(self, what: str) -> None:
        """The device scales what it is sent again (``what``, in words; "" when it does not):
        the figure is then what was sent, and its label and tooltip say by what."""
        self.live_unit.setText("du sent, x knob" if what else "du delivered")
        self.live.setToolTip(
            f"Sent now: the level times the program's intensity, in device units; the device "
            f"scales it again by {what}"
            if what
            else "Delivered now: the level times the program's intensity at this moment, in "
            "device units (what the guard let through to the device)"
        )

    def set_running(self, running: bool) -> None:
        """The ceiling is fixed for a session (the engine resolves limits once)."""
        self.ceiling.setEnabled(not running and self.ceiling.maximum() > 0)

    def show_status(
        self, status: ChannelStatus | None, calibrated: bool, *, width_known: bool = True
    ) -> None:
        """What is delivered now, the mode in words; in mA too where the device is
        calibrated (else the device panel says "not calibrated" once, not on every channel)."""
        delivered = 0.0 if status is None else status.delivered_du
        shown = int(delivered)  # the codecs round down: never show more than is delivered
        self.live.setText(str(shown))
        self.live_bar.setValue(min(shown, self.live_bar.maximum()))
        self.mode.setText(mode_words(status, width_known=width_known))
        ma = None if status is None else status.rms_current_ma
        self.current.setVisible(calibrated)
        if calibrated:
            self.current.setText("≈ 0.0 mA rms now" if ma is None else f"≈ {ma:.2f} mA rms now")


def mode_words(status: ChannelStatus | None, *, width_known: bool = True) -> str:
    """The channel's output now in words: segment, rate and pulse width (``width_known``:
    the device delivers the program's widths; else it sets its own, and that is said)."""
    if status is None:
        return "—"
    parts = [status.segment] if status.segment else []
    if status.delivered_du <= 0 or status.frequency_hz <= 0:
        parts.append("no output")
    else:
        parts.append(f"{status.frequency_hz:.3g} Hz")
        if not width_known:
            parts.append("pulse width set by the device")
        elif status.pulse_width_us > 0:
            parts.append(f"{status.pulse_width_us:.0f} µs pulses")
    return " · ".join(parts)


class ChannelsPanel(Card):
    """One card per program channel, side by side."""

    level_changed = Signal(str, int)
    ceiling_changed = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Channels", parent)
        self.row = QHBoxLayout()
        self.row.setSpacing(10)
        self.body.addLayout(self.row)
        self.cards: dict[str, ChannelCard] = {}

    def set_channels(self, channels: Sequence[tuple[str, Sequence[str]]]) -> None:
        for card in self.cards.values():
            self.row.removeWidget(card)
            card.hide()  # deleteLater waits for the event loop proper; never show a stale card
            card.deleteLater()
        self.cards = {}
        for k, (name, sites) in enumerate(channels):
            card = ChannelCard(name, sites, theme.channel_colour(k))
            card.setStyleSheet("QFrame#card { background: #fbfcfd; }")
            card.level_changed.connect(self.level_changed)
            card.ceiling_changed.connect(self.ceiling_changed)
            self.row.addWidget(card, 1)
            self.cards[name] = card

    def levels(self) -> dict[str, int]:
        return {name: card.target for name, card in self.cards.items()}

    def ceilings(self) -> dict[str, int]:
        return {name: card.ceiling.value() for name, card in self.cards.items()}
