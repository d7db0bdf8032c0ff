"""Simulator faults, for engineers: a card of buttons that do to a ``sim:`` device what
happens to a real one (the link drops, the box reboots, the battery runs low, a hand turns
the device's own wheel or knob, a front-panel key is pressed, the box stops answering).

``SimulatorPanel(parent)``; ``set_device(device)`` shows the faults that device's simulator
has (the panel hides itself for ``None`` or a device that is not a simulator); each press
emits ``fault_injected`` with one sentence for the event log, saying what was done and what
the simulator shows after it.

The simulator lives on the engine's IO thread and is not thread-safe, so every call to it is
made on the IO loop (``Device.on_simulator``), never from the GUI thread; the link is dropped with
``Device.drop_link``, which does the same. The panel decides nothing about safety: what the
session does about a fault is the runner's and the guard's, shown by the rest of the window.
No button has a keyboard shortcut (Space and Esc are STOP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QPushButton, QWidget

from acustim import Device
from gui import theme
from gui.panels.common import Card, muted

__all__ = ["SimulatorPanel", "faults_for"]

#: the battery level "Low battery" sets, and the one pressing it again restores
LOW_BATTERY_PERCENT = 5
FULL_BATTERY_PERCENT = 100
#: one wheel step of a Coyote: this share of the channel's full scale (in device units)
WHEEL_STEP_FRACTION = 0.05
#: one knob step of an ET-312 front level pot (positions 0..255)
KNOB_STEP = 16
#: how long a call on the IO loop may take before it counts as failed
IO_TIMEOUT_S = 2.0
#: the simulator method an electrode-off fault would use, ``(channel, off: bool)``; no
#: built-in simulator has it yet, so its buttons appear only for one that does
ELECTRODE_OFF_METHOD = "set_electrode_off"

IoCall = Callable[[Any], str]

_CHECKED_STYLE = f"""
QPushButton:checked {{
    background: {theme.WARN_BG};
    color: {theme.WARN_INK};
    border: 1px solid #e8c66a;
    font-weight: 600;
}}
QPushButton:checked:focus {{ border: 2px solid {theme.ACCENT}; }}
"""


@dataclass(frozen=True)
class _Fault:
    key: str
    label: str
    tooltip: str
    accessible: str
    #: runs on the IO loop with the simulator; returns what the simulator shows after it.
    #: None: ``Device.drop_link`` (which goes to the IO loop itself)
    call: IoCall | None
    checkable: bool = False
    #: for a checkable fault: the call that undoes it
    undo: IoCall | None = None
    #: the channel a fault of the device's own controls acts on (one row per channel)
    channel: str | None = None


def _wheel(channel: str, delta: int, unit: str) -> IoCall:
    def call(sim: Any) -> str:
        before = sim.strength_du(channel)
        sim.turn_wheel(channel, delta)
        after = sim.strength_du(channel)
        if after == before:
            return f"the strength stays at {after} {unit} (at its end stop)"
        return f"the device's strength {channel} went from {before} to {after} {unit}"

    return call


def _knob(channel: str, delta: int) -> IoCall:
    def call(sim: Any) -> str:
        sim.turn_knob(channel, delta)
        knobs = sim.record.events_of("knob")
        position = knobs[-1][2] if knobs else f"{channel} pot ?"
        return f"its front knob now reads {position.split()[-1]} of 255"

    return call


def _battery(percent: int) -> IoCall:
    def call(sim: Any) -> str:
        sim.set_battery(percent)
        now = getattr(sim, "battery_percent", None)
        if now is None:  # the ET-312 keeps it in its RAM: read what the simulator recorded
            told = sim.record.events_of("battery")
            return f"the simulator reports {told[-1][2]}" if told else "the battery was set"
        return f"the simulator's battery is at {now} %"

    return call


def _stop_answering(on: bool) -> IoCall:
    def call(sim: Any) -> str:
        sim.stop_answering(on)
        return "it reads and obeys bytes but sends nothing back" if on else "it answers again"

    return call


def _press_key(sim: Any) -> str:
    before = len(sim.record.events)
    sim.press_any_key()
    new = [kind for _t, kind, _m in sim.record.events[before:]]
    if "key_ignored" in new:
        return "the box ignored it (the host disabled its buttons)"
    if "key_press" in new:
        return "the box started its favourite mode"
    return "the box did nothing (it is booting or failed)"


def _power_cycle(sim: Any) -> str:
    sim.power_cycle()
    return "it restarted with its settings reset"


def _electrode(channel: str, off: bool) -> IoCall:
    def call(sim: Any) -> str:
        getattr(sim, ELECTRODE_OFF_METHOD)(channel, off)
        return f"electrode {channel} is {'off the skin' if off else 'back on'}"

    return call


def faults_for(device: Device) -> list[_Fault]:
    """The faults ``device``'s simulator can show, in the order of the panel."""
    sim = device.simulator
    name = device.profile.name
    unit = device.profile.level_unit
    faults: list[_Fault] = [
        _Fault(
            "drop_link",
            "Drop link",
            "the link to the simulator breaks, as a pulled cable or a BLE drop-out does",
            "Simulate a lost link",
            None,
        )
    ]
    if hasattr(sim, "power_cycle"):
        faults.append(
            _Fault(
                "reboot",
                "Reboot",
                f"switch the {name} off and on: its settings and output are reset",
                "Simulate a device reboot",
                _power_cycle,
            )
        )
    if hasattr(sim, "set_battery"):
        faults.append(
            _Fault(
                "low_battery",
                "Low battery",
                f"the battery drops to {LOW_BATTERY_PERCENT} %; press again for"
                f" {FULL_BATTERY_PERCENT} %",
                "Simulate a low battery",
                _battery(LOW_BATTERY_PERCENT),
                checkable=True,
                undo=_battery(FULL_BATTERY_PERCENT),
            )
        )
    if hasattr(sim, "stop_answering"):
        faults.append(
            _Fault(
                "stop_answering",
                "Stop answering",
                "the box keeps obeying bytes but sends no reply; press again to end it",
                "Simulate a device that stops answering",
                _stop_answering(True),
                checkable=True,
                undo=_stop_answering(False),
            )
        )
    if hasattr(sim, "press_any_key"):
        faults.append(
            _Fault(
                "panel_key",
                "Front-panel key",
                f"press a key on the {name}'s front panel, as a hand would",
                "Simulate a front-panel key press",
                _press_key,
            )
        )
    step = max(1, round(device.profile.limits.max_level_du * WHEEL_STEP_FRACTION))
    for channel in device.profile.channels:
        for sign, word in ((-1, "down"), (+1, "up")):
            arrow = "\u2212" if sign < 0 else "+"  # a minus sign, as wide as the plus
            if hasattr(sim, "turn_wheel"):
                faults.append(
                    _Fault(
                        f"wheel_{word}:{channel}",
                        f"Wheel {channel} {arrow}",
                        f"turn the {name}'s own wheel {channel} {word} by {step} {unit}",
                        f"Turn the device wheel of channel {channel} {word}",
                        _wheel(channel, sign * step, unit),
                        channel=channel,
                    )
                )
            elif hasattr(sim, "turn_knob"):
                faults.append(
                    _Fault(
                        f"knob_{word}:{channel}",
                        f"Knob {channel} {arrow}",
                        f"turn the {name}'s front level knob {channel} {word} by {KNOB_STEP}"
                        " of 255 positions (the box's own ceiling)",
                        f"Turn the front knob of channel {channel} {word}",
                        _knob(channel, sign * KNOB_STEP),
                        channel=channel,
                    )
                )
        if hasattr(sim, ELECTRODE_OFF_METHOD):
            faults.append(
                _Fault(
                    f"electrode_off:{channel}",
                    f"Electrode {channel} off",
                    f"an electrode of channel {channel} comes off the skin; press again to"
                    " put it back",
                    f"Simulate electrode {channel} coming off",
                    _electrode(channel, True),
                    checkable=True,
                    undo=_electrode(channel, False),
                    channel=channel,
                )
            )
    return faults


class SimulatorPanel(Card):
    """Fault buttons for a ``sim:`` device; hidden for any other."""

    #: one sentence per fault injected (or that failed), for the event log
    fault_injected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Simulator faults", parent)
        self.setAccessibleName("Simulator faults")
        self.device: Device | None = None
        self.note = muted("")
        self.body.addWidget(self.note)
        self._grid_box = QWidget()
        self.grid = QGridLayout(self._grid_box)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(6)
        self.body.addWidget(self._grid_box)
        self.last = muted("")
        self.last.setAccessibleName("The last simulator fault")
        self.body.addWidget(self.last)
        self.last.hide()
        # a fault that stays on (low battery, silence, an electrode off) looks pressed
        self.setStyleSheet(_CHECKED_STYLE)
        #: the buttons by fault: "drop_link", "reboot", "low_battery", "stop_answering",
        #: "panel_key", "wheel_up:A", "wheel_down:A", "knob_up:A", ..., "electrode_off:A"
        self.buttons: dict[str, QPushButton] = {}
        self.hide()

    def set_device(self, device: Device | None) -> None:
        """Show the faults of ``device``'s simulator; hide for None or a real device."""
        for button in self.buttons.values():
            self.grid.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        self.last.setText("")
        self.last.hide()
        sim = None if device is None else _simulator(device)
        if device is None or sim is None:
            self.device = None
            self.hide()
            return
        self.device = device
        self.note.setText(
            f"For engineers: faults injected into {device.spec} ({device.profile.name}),"
            " as they happen to a real device."
        )
        general = 0
        columns: dict[str, int] = {}
        rows: dict[str, int] = {}
        faults = faults_for(device)
        first_channel_row = (sum(1 for f in faults if f.channel is None) + 1) // 2
        for fault in faults:
            if fault.channel is None:  # two a row, in order
                row, column = divmod(general, 2)
                general += 1
            else:  # one row per channel: down, up, then the electrode
                row = rows.setdefault(fault.channel, first_channel_row + len(rows))
                column = columns.get(fault.channel, 0)
                columns[fault.channel] = column + 1
            button = QPushButton(fault.label)
            button.setToolTip(fault.tooltip)
            button.setAccessibleName(fault.accessible)
            button.setCheckable(fault.checkable)
            button.setAutoDefault(False)
            button.clicked.connect(lambda checked, f=fault: self._inject(f, checked))
            self.grid.addWidget(button, row, column)
            self.buttons[fault.key] = button
        self.show()

    def _inject(self, fault: _Fault, checked: bool) -> None:
        device = self.device
        if device is None:
            return
        label = fault.label if not fault.checkable or checked else f"{fault.label} ended"
        try:
            if fault.call is None:
                was_open = device.link_open
                device.drop_link("link lost (simulated from the fault panel)")
                effect = "the link is down" if was_open else "the link was already down"
            else:
                call = fault.call if not fault.checkable or checked else fault.undo
                assert call is not None
                effect = device.on_simulator(call, timeout_s=IO_TIMEOUT_S)
        except Exception as exc:  # a fault that fails is told, never a traceback
            if fault.checkable:
                button = self.buttons.get(fault.key)
                if button is not None:
                    button.blockSignals(True)
                    button.setChecked(not checked)
                    button.blockSignals(False)
            sentence = f"Simulator fault \u201c{label}\u201d on {device.spec} failed: {exc}"
        else:
            sentence = f"Simulator fault \u201c{label}\u201d on {device.spec}: {effect}."
        self.last.setText(sentence)
        self.last.show()
        self.fault_injected.emit(sentence)


def _simulator(device: Device) -> object | None:
    try:
        sim: object | None = device.simulator
    except Exception:  # a simulator link that never opened has no simulator yet
        return None
    return sim
