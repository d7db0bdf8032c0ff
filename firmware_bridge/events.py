"""What devices tell the host, decoded: values only, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StrengthReport:
    """The device's channel levels (device units) after a change.

    ``by_device`` is true when the device changed them itself (a wheel or knob), false when
    it acknowledges a host command (``seq`` echoes the command's sequence number).
    """

    levels_du: dict[str, int]
    seq: int
    by_device: bool


@dataclass(frozen=True)
class BatteryReport:
    percent: int


@dataclass(frozen=True)
class LinkLost:
    reason: str


@dataclass(frozen=True)
class DeviceNotice:
    """Something else the device reported that the session must show and record.

    Kinds: ``knob`` (a front-panel control moved; ``data`` has the values), ``firmware``
    (model and version), ``electrode_off`` (``data["channel"]``), ``low_battery``.
    """

    kind: str
    message: str
    data: dict[str, object]


DeviceEvent = StrengthReport | BatteryReport | LinkLost | DeviceNotice
