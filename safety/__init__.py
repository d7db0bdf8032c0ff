"""THE GATE: limits, the guard that turns demands into vetted frames, electrical checks,
electrode placement rules and patient screening.

Pure: no I/O, no threads, no Qt, no clock of its own. Nothing reaches a device except a
``VettedFrame`` made by ``Guard``.
"""

from safety.errors import LimitError, SafetyError, UnvettedFrameError
from safety.guard import (
    Guard,
    Notice,
    NoticeKind,
    Phase,
    VettedChannel,
    VettedFrame,
    require_vetted,
)
from safety.limits import (
    Calibration,
    ChannelLimits,
    DeviceLimits,
    SessionLimits,
    resolve_limits,
)
from safety.placement import (
    PlacementError,
    PlacementFinding,
    PlacementReport,
    check_pair,
    check_placement,
    require_safe_placement,
    sites_with_hazard,
)
from safety.screening import (
    SCREENING_QUESTIONS,
    SESSION_REMINDERS,
    OnsetLimit,
    Question,
    ScreeningError,
    ScreeningFinding,
    ScreeningResult,
    bells_palsy_limit,
    evaluate,
    onset_limit,
    require_clear,
)

__all__ = [
    "SCREENING_QUESTIONS",
    "SESSION_REMINDERS",
    "Calibration",
    "ChannelLimits",
    "DeviceLimits",
    "Guard",
    "LimitError",
    "Notice",
    "NoticeKind",
    "OnsetLimit",
    "Phase",
    "PlacementError",
    "PlacementFinding",
    "PlacementReport",
    "Question",
    "SafetyError",
    "ScreeningError",
    "ScreeningFinding",
    "ScreeningResult",
    "SessionLimits",
    "UnvettedFrameError",
    "VettedChannel",
    "VettedFrame",
    "bells_palsy_limit",
    "check_pair",
    "check_placement",
    "evaluate",
    "onset_limit",
    "require_clear",
    "require_safe_placement",
    "require_vetted",
    "resolve_limits",
    "sites_with_hazard",
]
