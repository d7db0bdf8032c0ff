"""The device panel: what to connect to, the link, and what the connected device can do.

Lists the built-in simulators, serial ports and BLE devices found by a scan; shows the link
state, battery and frame lateness; shows the profile's limits and, when the device keeps
stimulating if the host goes silent, a warning that stays in view. Emits requests; the window
does the work through the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from acustim import DeviceProfile, Found
from gui import theme
from gui.panels.common import Banner, Card, muted, set_colour, value_label

LINK_TEXT = {
    "disconnected": ("Not connected", theme.MUTED),
    "connecting": ("Connecting…", theme.ACCENT),
    "connected": ("● Connected", theme.OK),
    "idle": ("○ Ready (opens at start)", theme.OK),
    "lost": ("● Link lost", theme.DANGER),
}


class DevicePanel(Card):
    connect_requested = Signal(str)
    disconnect_requested = Signal()
    scan_requested = Signal()
    refresh_requested = Signal()
    calibrate_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Device", parent)
        self.found: list[Found] = []
        self.combo = QComboBox()
        self.combo.setToolTip("Simulators, serial ports and Bluetooth devices found")
        self.combo.setMinimumContentsLength(18)
        self.body.addWidget(self.combo)

        row = QHBoxLayout()
        row.setSpacing(6)
        self.connect_button = QPushButton("Connect")
        self.connect_button.setObjectName("primary")
        self.disconnect_button = QPushButton("Disconnect")
        row.addWidget(self.connect_button)
        row.addWidget(self.disconnect_button)
        self.body.addLayout(row)
        row2 = QHBoxLayout()
        row2.setSpacing(6)
        self.scan_button = QPushButton("Scan BLE")
        self.scan_button.setToolTip("Look for Bluetooth stimulators nearby (a few seconds)")
        self.refresh_button = QPushButton("Refresh ports")
        row2.addWidget(self.scan_button)
        row2.addWidget(self.refresh_button)
        self.body.addLayout(row2)
        self.calibrate_button = QPushButton("Calibrate…")
        self.calibrate_button.setToolTip(
            "Measure this device's current in mA on a 500 ohm load (no person connected)"
        )
        self.calibrate_button.setAccessibleName("Calibrate the connected device")
        self.body.addWidget(self.calibrate_button)
        self.message = Banner()
        self.body.addWidget(self.message)

        form = QFormLayout()
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(5)
        self.model = value_label()
        self.model.setWordWrap(True)
        self.link = value_label("Not connected")
        self.battery = value_label()
        self.lateness = value_label()
        self.channels = value_label()
        self.max_level = value_label()
        self.calibrated = value_label()
        self.silent = value_label()
        self.silent.setWordWrap(True)
        form.addRow(muted("Model"), self.model)
        form.addRow(muted("Link"), self.link)
        form.addRow(muted("Battery"), self.battery)
        form.addRow(muted("Frame lateness"), self.lateness)
        form.addRow(muted("Channels"), self.channels)
        form.addRow(muted("Max level"), self.max_level)
        form.addRow(muted("Current (mA)"), self.calibrated)
        form.addRow(muted("If this app stops"), self.silent)
        self.body.addLayout(form)
        self.warning = QLabel()
        self.warning.setObjectName("warning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        self.body.addWidget(self.warning)

        self.connect_button.clicked.connect(self._connect_clicked)
        self.disconnect_button.clicked.connect(self.disconnect_requested)
        self.scan_button.clicked.connect(self.scan_requested)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.calibrate_button.clicked.connect(self.calibrate_requested)
        self.combo.currentIndexChanged.connect(lambda _: self._sync_buttons())
        self._free = True
        self._connected_spec: str | None = None
        self.set_device(None)

    # --- the list ---------------------------------------------------------------------------
    def set_found(self, found: Sequence[Found], select: str | None = None) -> None:
        """Replace the list (keeping BLE finds unless new ones are given)."""
        current = select or self.selected_spec()
        self.found = list(found)
        self.combo.clear()
        for item in self.found:
            self.combo.addItem(item.label, item.spec)
        index = self.combo.findData(current) if current else -1
        self.combo.setCurrentIndex(max(0, index))

    def add_found(self, found: Sequence[Found]) -> None:
        known = {f.spec for f in self.found}
        merged = self.found + [f for f in found if f.spec not in known]
        self.set_found(merged)

    def selected_spec(self) -> str | None:
        data = self.combo.currentData()
        return data if isinstance(data, str) else None

    def _connect_clicked(self) -> None:
        spec = self.selected_spec()
        if spec:
            self.connect_requested.emit(spec)

    # --- the device -------------------------------------------------------------------------
    def set_device(self, profile: DeviceProfile | None, spec: str = "") -> None:
        if profile is None:
            for label in (self.model, self.battery, self.lateness, self.channels):
                label.setText("—")
            for label in (self.max_level, self.calibrated, self.silent):
                label.setText("—")
            self.warning.hide()
            return
        where = "simulator" if spec.startswith("sim:") else spec.split("@", 1)[-1]
        self.model.setText(f"{profile.name} ({where})")
        self.channels.setText(", ".join(profile.channels))
        self.max_level.setText(f"{profile.limits.max_level_du} du")
        self.calibrated.setText("calibrated" if profile.calibrated else "not calibrated (du only)")
        if profile.stops_when_host_silent:
            self.silent.setText("output stops by itself")
            set_colour(self.silent, theme.INK)
            self.silent.setToolTip(profile.stops_when_host_silent_note)
            self.warning.hide()
        else:
            self.silent.setText("KEEPS STIMULATING")
            set_colour(self.silent, theme.DANGER_DARK)
            self.warning.setText(
                f"⚠ {profile.name} keeps stimulating if this app stops: keep its own off "
                "switch within reach."
            )
            self.warning.show()
        self.battery.setText("—")
        self.lateness.setText("—")

    def set_identity(self, said: str, firmware: str | None) -> None:
        """What the device said in its handshake: the firmware beside the model's name, the
        whole of it in the tooltip."""
        self.model.setToolTip(f"The device said: {said}")
        if firmware:
            self.model.setText(f"{self.model.text()} · firmware {firmware}")

    def set_link(self, state: str) -> None:
        text, colour = LINK_TEXT.get(state, (state, theme.MUTED))
        self.link.setText(text)
        set_colour(self.link, colour)

    def set_battery(self, percent: int | None) -> None:
        self.battery.setText("—" if percent is None else f"{percent} %")
        colour = theme.DANGER if percent is not None and percent <= 15 else theme.INK
        set_colour(self.battery, colour)

    def set_lateness(self, last_ms: float | None, p99_ms: float | None) -> None:
        if last_ms is None or p99_ms is None:
            self.lateness.setText("—")
            return
        self.lateness.setText(f"{last_ms:.1f} ms  (p99 {p99_ms:.1f} ms)")

    def set_busy(self, busy: bool, *, connected_spec: str | None, session_live: bool) -> None:
        """Enable what makes sense: nothing changes devices while a session runs."""
        self._free = not busy and not session_live
        self._connected_spec = connected_spec
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        free = self._free
        connected = self._connected_spec is not None
        already = connected and self.selected_spec() == self._connected_spec
        self.combo.setEnabled(free)
        self.connect_button.setEnabled(free and not already)
        self.connect_button.setText("Switch" if connected and not already else "Connect")
        self.disconnect_button.setEnabled(free and connected)
        self.scan_button.setEnabled(free)
        self.refresh_button.setEnabled(free)
        self.calibrate_button.setEnabled(free and connected)
