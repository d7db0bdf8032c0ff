"""What a session tells its displays and its record: one ``SessionEvent`` per happening.

A display (the CLI's status lines, the window's event log) reads ``kind`` and ``channel``;
it never parses ``message``, which is for people. ``EventKind`` names every kind a session can
report: its own (start, level, pause, ...), the safety guard's notices
(``safety.guard.NoticeKind``; a test keeps the two in step) and the devices' own notices
(``firmware_bridge.events.DeviceNotice``: firmware, knob, config, electrode_off; any other a
device sends is ``DEVICE_NOTICE``).

Holds data only: no I/O, no clock, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class EventKind(StrEnum):
    """Every kind of session event. Values are the strings stored in the records."""

    # the session's own
    START = "start"
    LEVEL = "level"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"
    PLACEMENT = "placement"
    PULSE_WIDTH = "pulse_width"
    BATTERY = "battery"
    LOW_BATTERY = "low_battery"
    RECONNECT_FAILED = "reconnect_failed"
    RECONNECTED = "reconnected"
    RUNS_ON = "runs_on"
    CLOSE_FAILED = "close_failed"
    # the safety guard's notices (safety.guard.NoticeKind)
    STOP = "stop"
    LIMITED = "limited"
    DENSITY_WARNING = "density_warning"
    CLAMPED = "clamped"
    ENVELOPE = "envelope"
    TIME_LIMIT = "time_limit"
    ENDED = "ended"
    LINK_LOST = "link_lost"
    DEVICE_LEVEL = "device_level"
    # the devices' own notices (firmware_bridge.events.DeviceNotice)
    FIRMWARE = "firmware"
    KNOB = "knob"
    CONFIG = "config"
    ELECTRODE_OFF = "electrode_off"
    DEVICE_NOTICE = "device_notice"


def event_kind(kind: str) -> EventKind:
    """The kind for a device's or the guard's own kind string; a device notice this app does
    not know yet is ``DEVICE_NOTICE`` (shown and recorded, never dropped)."""
    try:
        return EventKind(kind)
    except ValueError:
        return EventKind.DEVICE_NOTICE


@dataclass(frozen=True)
class SessionEvent:
    """One thing that happened in a session, as displays and the record see it."""

    kind: EventKind
    message: str
    #: the channel it concerns, if one (a level change, a guard notice on one channel)
    channel: str | None = None
    #: figures that go with it (a level, a battery percentage, ...), also kept in the record
    data: Mapping[str, object] = field(default_factory=dict)


NoticeHandler = Callable[[SessionEvent], None]
"""Called on the IO thread for every session event; must not block."""
