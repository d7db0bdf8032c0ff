"""The rows of the store as the rest of acustim sees them: frozen values, nothing more.

``FrameRow`` (with its ``ChannelFrame``s) and ``EventRow`` are what the session runner records;
``SessionInfo`` and ``PatientInfo`` are what readers get back; ``WriterStats`` is what the
writer thread reports. The rows never touch SQLite, the disk or a clock, and never check or
encode anything: ``columns.py`` turns them into column values and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

__all__ = [
    "OUTCOMES",
    "AdverseEventRow",
    "ChannelFrame",
    "CourseInfo",
    "EventRow",
    "FrameRow",
    "OutcomeRow",
    "PatientInfo",
    "SessionInfo",
    "WriterStats",
]

#: how a session may end (``sessions.outcome``; the schema's CHECK holds the same three)
OUTCOMES: Final = frozenset({"completed", "stopped", "fault"})


@dataclass(frozen=True)
class ChannelFrame:
    """One channel of a vetted frame as it was sent: level in device units, per-slot shape."""

    name: str
    level_du: int
    frequency_hz: tuple[float, ...]
    pulse_width_us: tuple[float, ...]
    intensity: tuple[float, ...]


@dataclass(frozen=True)
class FrameRow:
    """One vetted frame: its index, scheduled time (s on the session clock), how late it went."""

    index: int
    t_s: float
    lateness_ms: float
    zero: bool
    channels: tuple[ChannelFrame, ...]


@dataclass(frozen=True)
class EventRow:
    """Something that happened in a session; ``data`` must be JSON-compatible (tuples read back
    as lists)."""

    t_s: float
    kind: str
    message: str
    data: dict[str, object] | None = None


@dataclass(frozen=True)
class SessionInfo:
    """One session's row. ``ended_at`` and ``outcome`` are None while it runs, or if the process
    died before ending it."""

    id: int
    started_at: str
    ended_at: str | None
    program: str
    device: str
    profile: str
    outcome: str | None
    reason: str | None
    meta: dict[str, object]
    acustim_version: str = ""
    patient: str | None = None
    notes: str = ""
    screening: dict[str, object] = field(default_factory=dict)
    firmware: str | None = None
    #: the treatment course the session belongs to and its number there (schema 3), or None
    course_id: int | None = None
    course_number: int | None = None

    @property
    def duration_s(self) -> float | None:
        """Start to end in seconds, or None while running (or if the process died, or the
        times cannot be read)."""
        if self.ended_at is None:
            return None
        try:
            started = datetime.fromisoformat(self.started_at)
            return (datetime.fromisoformat(self.ended_at) - started).total_seconds()
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class PatientInfo:
    """One patient code and how many sessions the store holds for it."""

    code: str
    created_at: str
    session_count: int
    last_session_at: str | None


@dataclass(frozen=True)
class WriterStats:
    """What the writer thread has committed so far, and how long its commits took."""

    batches: int = 0
    rows: int = 0
    last_commit_s: float = 0.0
    max_commit_s: float = 0.0
    total_commit_s: float = 0.0


@dataclass(frozen=True)
class CourseInfo:
    """A treatment course: one patient, one indication, a plan of sessions and their interval.

    ``indication`` is a key of ``measures.CONDITIONS`` (or text the outcome table does not
    know: VAS only); ``session_count`` is how many sessions are linked to it."""

    id: int
    patient: str
    indication: str
    planned_sessions: int
    interval_days: int
    notes: str
    created_at: str
    session_count: int = 0


@dataclass(frozen=True)
class OutcomeRow:
    """One outcome value entered before or after a session (``measures.MEASURES`` key)."""

    id: int
    session_id: int
    timing: str
    measure: str
    value: float
    recorded_at: str


@dataclass(frozen=True)
class AdverseEventRow:
    """An adverse event of a session, with its severity (``measures.SEVERITIES``)."""

    id: int
    session_id: int
    severity: str
    what: str
    action: str
    recorded_at: str
