"""THE GATE: limits, the guard that turns demands into vetted frames, electrical checks.

Pure: no I/O, no threads, no Qt, no clock of its own. Nothing reaches a device except a
``VettedFrame`` made by ``Guard``.
"""

from safety.errors import LimitError, SafetyError, UnvettedFrameError
from safety.guard import Guard, Notice, Phase, VettedChannel, VettedFrame, require_vetted
from safety.limits import (
    Calibration,
    ChannelLimits,
    DeviceLimits,
    SessionLimits,
    resolve_limits,
)

__all__ = [
    "Calibration",
    "ChannelLimits",
    "DeviceLimits",
    "Guard",
    "LimitError",
    "Notice",
    "Phase",
    "SafetyError",
    "SessionLimits",
    "UnvettedFrameError",
    "VettedChannel",
    "VettedFrame",
    "require_vetted",
    "resolve_limits",
]
