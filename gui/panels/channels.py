"""The channels panel: per program channel a ceiling, a level and the live output.

The level slider sets the *target*: the safety guard raises the delivered level towards it at
the soft-start rate and lowers it at once. Keys on a focused slider: Up/Down or +/- one device
unit, PageUp/PageDown ten, Home to zero. The panel shows the live level (device units, and mA
where the device is calibrated); it never ramps or limits anything itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSlider,
    QSpinBox,
    QWidget,
)

from acustim import ChannelStatus
from gui import theme
from gui.panels.common import Card, muted

PAGE_STEP_DU = 10


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
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.triggerAction(QSlider.SliderAction.SliderSingleStepAdd)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.triggerAction(QSlider.SliderAction.SliderSingleStepSub)
        else:
            super().keyPressEvent(event)


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
        self.live.setToolTip("Level delivered now, in device units")
        self.live_bar = QProgressBar()
        self.live_bar.setTextVisible(False)
        self.live_bar.setStyleSheet(
            f"QProgressBar::chunk {{ background: {colour}; border-radius: 4px; }}"
        )
        self.live_bar.setToolTip("Delivered level: rises at the soft-start rate to the target")
        self.live_unit = muted("du now")
        grid.addWidget(self.live, 0, 0)
        grid.addWidget(self.live_bar, 0, 1)
        grid.addWidget(self.live_unit, 0, 2)
        self.current = muted("")
        self.current.hide()
        grid.addWidget(self.current, 1, 1, 1, 2)

        self.slider = LevelSlider()
        self.slider.setStyleSheet(theme.slider_style(colour))
        self.slider.setAccessibleName(f"Channel {name} level")
        self.slider.setToolTip(
            "Target level. Up/Down or +/-: one step; PageUp/PageDown: ten steps. "
            "Output rises slowly to it and falls at once."
        )
        self.target = QLabel("0 du")
        self.target.setObjectName("value")
        self.target.setMinimumWidth(64)
        grid.addWidget(muted("Target"), 2, 0, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.slider, 2, 1)
        grid.addWidget(self.target, 2, 2)

        self.ceiling = QSpinBox()
        self.ceiling.setSuffix(" du")
        self.ceiling.setMinimumWidth(100)
        self.ceiling.setAccessibleName(f"Channel {name} ceiling")
        self.ceiling.setToolTip("This channel never goes above its ceiling in this session")
        self.ceiling_note = muted("")
        ceiling_row = QHBoxLayout()
        ceiling_row.setSpacing(10)
        ceiling_row.addWidget(self.ceiling)
        ceiling_row.addWidget(self.ceiling_note, 1)
        grid.addWidget(muted("Ceiling"), 3, 0, Qt.AlignmentFlag.AlignRight)
        grid.addLayout(ceiling_row, 3, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnMinimumWidth(0, 64)
        self.body.addLayout(grid)

        self.slider.valueChanged.connect(self._slid)
        self.ceiling.valueChanged.connect(self._ceiling)
        self.set_limit(None)

    # --- from the practitioner ------------------------------------------------------------
    def _slid(self, value: int) -> None:
        self.target.setText(f"{value} du")
        self.level_changed.emit(self.name, value)

    def _ceiling(self, value: int) -> None:
        self.slider.setMaximum(value)
        self.live_bar.setMaximum(max(1, value))
        self.ceiling_changed.emit(self.name, value)

    # --- from the window ------------------------------------------------------------------
    def set_limit(
        self, max_ceiling_du: int | None, ceiling_du: int | None = None, step_du: int = 1
    ) -> None:
        """The highest ceiling the limits allow (None: not known until a device connects);
        ``step_du`` is one key press (PageUp/PageDown move ten)."""
        if max_ceiling_du is None:
            self.ceiling.setRange(0, 0)
            self.slider.setRange(0, 0)
            self.ceiling_note.setText("connect a device")
            self.slider.setEnabled(False)
            self.ceiling.setEnabled(False)
            return
        self.slider.setSingleStep(step_du)
        self.slider.setPageStep(step_du * PAGE_STEP_DU)
        self.ceiling.setSingleStep(step_du)
        self.ceiling.blockSignals(True)
        self.ceiling.setRange(0, max_ceiling_du)
        self.ceiling.setValue(max_ceiling_du if ceiling_du is None else ceiling_du)
        self.ceiling.blockSignals(False)
        self.slider.setMaximum(self.ceiling.value())
        self.live_bar.setMaximum(max(1, self.ceiling.value()))
        self.ceiling_note.setText(f"max {max_ceiling_du} du")
        self.slider.setEnabled(True)
        self.ceiling.setEnabled(True)

    def set_target(self, value: int) -> None:
        """Move the slider without sending anything (the guard changed the target)."""
        self.slider.blockSignals(True)
        self.slider.setValue(value)
        self.slider.blockSignals(False)
        self.target.setText(f"{self.slider.value()} du")

    def set_running(self, running: bool) -> None:
        """The ceiling is fixed for a session (the engine resolves limits once)."""
        self.ceiling.setEnabled(not running and self.ceiling.maximum() > 0)

    def show_status(self, status: ChannelStatus | None, calibrated: bool) -> None:
        """The live level; in mA too where the device is calibrated (else the device panel
        says "not calibrated" once, not on every channel)."""
        level = 0 if status is None else status.level_du
        self.live.setText(str(level))
        self.live_bar.setValue(min(level, self.live_bar.maximum()))
        ma = None if status is None else status.rms_current_ma
        self.current.setVisible(calibrated)
        if calibrated:
            self.current.setText("≈ 0.0 mA rms now" if ma is None else f"≈ {ma:.2f} mA rms now")


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
        return {name: card.slider.value() for name, card in self.cards.items()}

    def ceilings(self) -> dict[str, int]:
        return {name: card.ceiling.value() for name, card in self.cards.items()}
