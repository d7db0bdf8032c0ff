"""What a report holds: the frozen ``Report`` and its parts, and ``ReportError``.

Plain data only. The model computes nothing from frames (``analysis``), reads no store
(``build``), lays nothing out (``html``, ``pdf``) and never imports Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from acustim.records import EventRow, SessionInfo
from acustim.report.text import clock
from waveforms.errors import AcustimError

__all__ = [
    "DEVICE_REPORT_KINDS",
    "UNCALIBRATED",
    "CalibrationInfo",
    "ChannelReport",
    "FrequencyShare",
    "LevelStep",
    "Plot",
    "Report",
    "ReportError",
    "StrictaItem",
    "WaveformPhase",
]

#: event kinds that are the device's own reports (shown in their own section too)
DEVICE_REPORT_KINDS: Final = frozenset(
    {
        "device_level",
        "battery",
        "low_battery",
        "knob",
        "firmware",
        "config",
        "electrode_off",
        "link_lost",
        "reconnected",
        "reconnect_failed",
    }
)
#: what every value that would need a calibration says without one
UNCALIBRATED: Final = "uncalibrated: device units only"
#: waveform phases listed in words (the plot shows the rest)
_MAX_PHASES: Final = 10


class ReportError(AcustimError):
    """A report or export cannot be made or written; the message says which file and why."""


@dataclass(frozen=True)
class CalibrationInfo:
    """Device units to mA for this session, or why there is none."""

    calibrated: bool
    peak_ma_per_du: float | None
    load_ohm: float | None
    source: str  # where the calibration came from, or why the session is uncalibrated


@dataclass(frozen=True)
class FrequencyShare:
    frequency_hz: float
    share: float  # of the channel's time with output


@dataclass(frozen=True)
class LevelStep:
    """The channel's level held for a while (ramps between steps are not listed)."""

    start_s: float
    end_s: float
    level_du: int


@dataclass(frozen=True)
class WaveformPhase:
    """A stretch of the session with one mode: continuous (one rate) or dense-disperse (two
    rates alternating); ``bursts`` counts the on/off gaps of an intermittent wave."""

    mode: str  # "continuous" | "dense-disperse"
    frequencies_hz: tuple[float, ...]
    start_s: float
    end_s: float
    bursts: int

    @property
    def text(self) -> str:
        rates = "/".join(f"{f:g}" for f in self.frequencies_hz)
        burst = " in on/off bursts (intermittent)" if self.bursts >= 2 else ""
        return f"{self.mode} {rates} Hz{burst}, {clock(self.start_s)} to {clock(self.end_s)}"


@dataclass(frozen=True)
class ChannelReport:
    """One channel's electrical characterisation, computed from the stored frames.

    Currents, charge and density are None where they cannot be known: the profile is not
    calibrated, or the device chooses its own pulse width, or the electrode area is unknown."""

    name: str
    sites: tuple[str, ...]
    phases: tuple[WaveformPhase, ...]
    frequencies: tuple[FrequencyShare, ...]
    pulse_widths_us: tuple[float, ...]
    pulse_width_delivered: bool
    output_s: float
    level_max_du: int
    output_max_du: float
    level_history: tuple[LevelStep, ...]
    peak_current_ma: float | None
    rms_current_ma: float | None
    rms_current_mean_ma: float | None
    charge_per_phase_uc: float | None
    current_density_ma_per_cm2: float | None
    electrode_area_cm2: float | None

    @property
    def waveform(self) -> str:
        if not self.phases:
            return "no output"
        shown = [p.text for p in self.phases[:_MAX_PHASES]]
        if len(self.phases) > _MAX_PHASES:
            shown.append(f"and {len(self.phases) - _MAX_PHASES} more (see the plot)")
        return "; ".join(shown)


@dataclass(frozen=True)
class StrictaItem:
    code: str
    item: str
    value: str
    applies: bool


@dataclass(frozen=True)
class Plot:
    title: str
    svg: str
    width: int
    height: int


@dataclass(frozen=True)
class Report:
    """Everything a report shows; ``render_html`` / ``render_pdf`` only lay it out."""

    session: SessionInfo
    store_path: Path
    generated_at: str
    acustim_version: str
    profile_name: str
    biphasic: bool | None
    calibration: CalibrationInfo
    frame_count: int
    zero_frames: int
    first_frame_s: float | None
    last_frame_s: float | None
    #: from the session's start to the end of its last frame, on the session clock
    session_clock_s: float | None
    max_lateness_ms: float
    output_s: float
    channels: tuple[ChannelReport, ...]
    unused_channels: tuple[str, ...]
    stricta: tuple[StrictaItem, ...]
    events: tuple[EventRow, ...]
    device_reports: tuple[EventRow, ...]
    plots: tuple[Plot, ...]
    caveats: tuple[str, ...]

    @property
    def outcome_text(self) -> str:
        s = self.session
        if s.outcome is None:
            last = (
                "no frame was recorded"
                if self.last_frame_s is None
                else f"the record stops with the last frame at {clock(self.last_frame_s)}"
            )
            return (
                f"did not end: {last} (the program or the computer stopped during the session,"
                " or it is still running)"
            )
        return f"{s.outcome}: {s.reason}" if s.reason else s.outcome
