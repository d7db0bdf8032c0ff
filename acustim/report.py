"""Session reports: what one session delivered, built from the records store, as HTML or PDF.

``build_report(store, session_id)`` reads the session row, every stored frame and every event
and makes a ``Report``: the STRICTA items that apply (``../shared/reference/safety.md``
section 6), per channel the electrical characterisation computed from the frames (waveform and
mode, frequency, pulse width, level history, and, where the device profile is calibrated, peak
and rms current, charge per phase and current density with ``safety.electrical``), the device's
own reports, the events, and plots of output and frequency over the session as SVG.
``render_html`` makes one self-contained page; ``render_pdf`` lays the same page out with Qt's
own PDF writer (``QTextDocument`` on a ``QPdfWriter``, plots drawn by ``QSvgRenderer``).
``write_html`` / ``write_pdf`` write it readable by its owner only (0600), whole or not at all.

Every value says where it came from: the recorded frames, the session record, or the device
profile's calibration; without a calibration the report says "uncalibrated" and gives device
units only. It never guesses a current.

Never writes to the store, never talks to a device, never loads anything from the network:
the HTML holds its plots and style inline and forbids loading anything (Content-Security-Policy).
"""

from __future__ import annotations

import contextlib
import html
import itertools
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from acustim.records import EventRow, FrameRow, RecordStore, SessionInfo, _acustim_version
from device_profiles.profile import DeviceProfile, ProfileError, load_profile
from safety import electrical
from waveforms.errors import AcustimError

__all__ = [
    "DEVICE_REPORT_KINDS",
    "CalibrationInfo",
    "ChannelReport",
    "FrequencyShare",
    "LevelStep",
    "Plot",
    "Report",
    "ReportError",
    "StrictaItem",
    "WaveformPhase",
    "build_report",
    "check_output_path",
    "render_html",
    "render_pdf",
    "write_html",
    "write_pdf",
    "write_private_file",
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
#: event kinds drawn as markers on the output plot
_MARKED_KINDS: Final = frozenset(
    {
        "pause",
        "resume",
        "stop",
        "fault",
        "link_lost",
        "reconnected",
        "electrode_off",
        "device_level",
        "time_limit",
        "limited",
        "density_warning",
    }
)
_CHANNEL_COLOURS: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
_PLATEAU_MIN_S: Final = 1.0
_MAX_PLATEAUS: Final = 12
_MAX_PHASES: Final = 10
_BURST_GAP_S: Final = 0.3
_UNCALIBRATED: Final = "uncalibrated: device units only"


class ReportError(AcustimError):
    """A report or export cannot be made or written; the message says which file and why."""


# --- the model -------------------------------------------------------------------------------


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
        return f"{self.mode} {rates} Hz{burst}, {_clock(self.start_s)} to {_clock(self.end_s)}"


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
                else f"the record stops with the last frame at {_clock(self.last_frame_s)}"
            )
            return (
                f"did not end: {last} (the program or the computer stopped during the session,"
                " or it is still running)"
            )
        return f"{s.outcome}: {s.reason}" if s.reason else s.outcome


# --- building --------------------------------------------------------------------------------


def build_report(
    store: RecordStore,
    session_id: int,
    *,
    profile_loader: Callable[[str], DeviceProfile] = load_profile,
) -> Report:
    """The report of one session, from what the store holds (RecordsError if it cannot)."""
    info = store.session(session_id)
    frames = store.frames(session_id)
    events = store.events(session_id)
    history = store.sessions(patient=info.patient) if info.patient else [info]
    caveats: list[str] = []
    profile: DeviceProfile | None
    try:
        profile = profile_loader(info.profile)
    except ProfileError as exc:
        profile = None
        caveats.append(f"the device profile {info.profile!r} could not be loaded ({exc})")
    calibration = _calibration(info, profile)
    biphasic = profile.limits.biphasic if profile is not None else _meta_bool(info, "biphasic")
    pw_delivered = profile.pulse_width_controlled if profile is not None else True
    frame_s = profile.limits.frame_period_s if profile is not None else _frame_period(frames)
    meta_channels = _meta_channels(info)
    names = _channel_names(frames, meta_channels)
    used = [n for n in names if n in meta_channels or _has_output(frames, n)]
    channels = tuple(
        _channel_report(
            name,
            frames,
            frame_s,
            calibration,
            biphasic,
            pw_delivered,
            meta_channels.get(name, {}),
            _area(info, meta_channels.get(name, {})),
        )
        for name in used
    )
    if not pw_delivered:
        caveats.append(
            f"{profile.name if profile else info.profile} chooses its own pulse width: the pulse"
            " widths shown are what the program asked for, not what was delivered, so rms"
            " current and charge per phase are not known"
        )
    if calibration.calibrated and biphasic is None:
        caveats.append("whether the output is biphasic is not known: rms current not computed")
    if info.outcome is None:
        caveats.append("the session has no recorded end (see 'Outcome')")
    on_s = _output_time(frames, frame_s)
    clock_s = frames[-1].t_s + frame_s if frames else None
    return Report(
        session=info,
        store_path=store.path,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        acustim_version=_acustim_version(),
        profile_name=profile.name if profile is not None else info.profile,
        biphasic=biphasic,
        calibration=calibration,
        frame_count=len(frames),
        zero_frames=sum(1 for f in frames if f.zero),
        first_frame_s=frames[0].t_s if frames else None,
        last_frame_s=frames[-1].t_s if frames else None,
        session_clock_s=clock_s,
        max_lateness_ms=max((f.lateness_ms for f in frames), default=0.0),
        output_s=on_s,
        channels=channels,
        unused_channels=tuple(n for n in names if n not in used),
        stricta=_stricta(info, history, channels, on_s, clock_s),
        events=tuple(events),
        device_reports=tuple(e for e in events if e.kind in DEVICE_REPORT_KINDS),
        plots=_plots(frames, frame_s, used, calibration, events),
        caveats=tuple(caveats),
    )


def _meta_bool(info: SessionInfo, key: str) -> bool | None:
    value = info.meta.get(key)
    return value if isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def _calibration(info: SessionInfo, profile: DeviceProfile | None) -> CalibrationInfo:
    recorded = info.meta.get("calibration")
    if isinstance(recorded, dict):
        peak = _number(recorded.get("peak_ma_per_du"))
        load = _number(recorded.get("load_ohm"))
        if peak is not None:
            return CalibrationInfo(
                True,
                peak,
                load,
                f"calibrated: {peak:g} mA per du"
                + (f" into {load:g} ohm" if load else "")
                + " (the calibration recorded with the session)",
            )
    if info.meta.get("calibrated") is False:
        return CalibrationInfo(
            False,
            None,
            None,
            f"{_UNCALIBRATED} (profile {info.profile} was not calibrated to mA when the"
            " session ran)",
        )
    if profile is None:
        return CalibrationInfo(
            False, None, None, f"{_UNCALIBRATED} (profile {info.profile} not available)"
        )
    cal = profile.limits.calibration
    if cal is None:
        return CalibrationInfo(
            False, None, None, f"{_UNCALIBRATED} (profile {profile.id} is not calibrated to mA)"
        )
    return CalibrationInfo(
        True,
        cal.peak_ma_per_du,
        cal.load_ohm,
        f"calibrated: {cal.peak_ma_per_du:g} mA per du into {cal.load_ohm:g} ohm (profile"
        f" {profile.id} as installed now; the session record holds no calibration of its own)",
    )


def _frame_period(frames: Sequence[FrameRow]) -> float:
    gaps = [b.t_s - a.t_s for a, b in itertools.pairwise(frames) if b.t_s > a.t_s]
    return statistics.median(gaps) if gaps else 0.1


def _meta_channels(info: SessionInfo) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    channels = info.meta.get("channels")
    if isinstance(channels, list):
        for ch in channels:
            if isinstance(ch, dict) and isinstance(ch.get("name"), str):
                out[ch["name"]] = ch
    return out


def _channel_names(frames: Sequence[FrameRow], meta: dict[str, dict[str, Any]]) -> list[str]:
    names = list(meta)
    for frame in frames:
        for ch in frame.channels:
            if ch.name not in names:
                names.append(ch.name)
    return names


def _has_output(frames: Sequence[FrameRow], name: str) -> bool:
    return any(
        ch.name == name and ch.level_du > 0 and max(ch.intensity, default=0.0) > 0
        for f in frames
        for ch in f.channels
    )


def _area(info: SessionInfo, meta_channel: dict[str, Any]) -> float | None:
    own = _number(meta_channel.get("electrode_area_cm2", meta_channel.get("area_cm2")))
    return own if own is not None else _number(info.meta.get("electrode_area_cm2"))


def _output_time(frames: Sequence[FrameRow], frame_s: float) -> float:
    total = 0.0
    for f in frames:
        if f.zero:
            continue
        slots = max((len(c.intensity) for c in f.channels), default=0)
        for k in range(slots):
            if any(
                c.level_du > 0 and k < len(c.intensity) and c.intensity[k] > 0 for c in f.channels
            ):
                total += frame_s / slots
    return total


@dataclass
class _Run:
    frequency_hz: float
    start_s: float
    end_s: float
    bursts: int = 0


def _channel_report(
    name: str,
    frames: Sequence[FrameRow],
    frame_s: float,
    cal: CalibrationInfo,
    biphasic: bool | None,
    pw_delivered: bool,
    meta_channel: dict[str, Any],
    area_cm2: float | None,
) -> ChannelReport:
    shares: dict[float, float] = {}
    widths: set[float] = set()
    runs: list[_Run] = []
    off_since: float | None = None
    output_s = 0.0
    level_max = 0
    output_max = 0.0
    levels: list[tuple[float, int]] = []
    peak_max: float | None = None
    rms_max: float | None = None
    rms_sq_s = 0.0
    charge_max: float | None = None
    currents = cal.calibrated and cal.peak_ma_per_du is not None
    shape_known = pw_delivered and biphasic is not None
    for frame in frames:
        ch = next((c for c in frame.channels if c.name == name), None)
        # a zero frame (no output anywhere: an intermittent pause) keeps the levels set
        level = 0 if ch is None else ch.level_du
        if not levels or levels[-1][1] != level:
            levels.append((frame.t_s, level))
        level_max = max(level_max, level)
        if ch is None:
            continue
        n = len(ch.intensity)
        slot_s = frame_s / n if n else frame_s
        for k in range(n):
            t = frame.t_s + k * slot_s
            intensity = ch.intensity[k]
            out = level * intensity
            if out <= 0:
                if off_since is None:
                    off_since = t
                continue
            f = ch.frequency_hz[k] if k < len(ch.frequency_hz) else 0.0
            w = ch.pulse_width_us[k] if k < len(ch.pulse_width_us) else 0.0
            output_s += slot_s
            output_max = max(output_max, out)
            shares[f] = shares.get(f, 0.0) + slot_s
            widths.add(w)
            gap = off_since is not None and t - off_since >= _BURST_GAP_S
            off_since = None
            if runs and runs[-1].frequency_hz == f:
                runs[-1].end_s = t + slot_s
                runs[-1].bursts += 1 if gap else 0
            else:
                runs.append(_Run(f, t, t + slot_s))
            if currents:
                assert cal.peak_ma_per_du is not None
                peak = out * cal.peak_ma_per_du
                peak_max = peak if peak_max is None else max(peak_max, peak)
                if shape_known:
                    assert biphasic is not None
                    rms = electrical.rms_current_ma(peak, w, f, biphasic=biphasic)
                    rms_max = rms if rms_max is None else max(rms_max, rms)
                    rms_sq_s += rms * rms * slot_s
                    charge = electrical.charge_per_phase_uc(peak, w)
                    charge_max = charge if charge_max is None else max(charge_max, charge)
    if frames:
        levels.append((frames[-1].t_s + frame_s, -1))  # the end, to close the last step
    rms_mean = math.sqrt(rms_sq_s / output_s) if rms_max is not None and output_s > 0 else None
    density = (
        electrical.current_density_ma_per_cm2(rms_max, area_cm2)
        if rms_max is not None and area_cm2
        else None
    )
    sites = meta_channel.get("sites")
    return ChannelReport(
        name=name,
        sites=tuple(str(s) for s in sites) if isinstance(sites, list) else (),
        phases=_phases(runs),
        frequencies=tuple(
            FrequencyShare(f, s / output_s) for f, s in sorted(shares.items()) if output_s > 0
        ),
        pulse_widths_us=tuple(sorted(widths)),
        pulse_width_delivered=pw_delivered,
        output_s=output_s,
        level_max_du=level_max,
        output_max_du=output_max,
        level_history=_plateaus(levels),
        peak_current_ma=peak_max,
        rms_current_ma=rms_max,
        rms_current_mean_ma=rms_mean,
        charge_per_phase_uc=charge_max,
        current_density_ma_per_cm2=density,
        electrode_area_cm2=area_cm2,
    )


def _phases(runs: Sequence[_Run]) -> tuple[WaveformPhase, ...]:
    """Runs of one rate become continuous phases; runs alternating between two rates become
    one dense-disperse phase."""
    phases: list[WaveformPhase] = []
    i = 0
    while i < len(runs):
        run = runs[i]
        if (
            i + 2 < len(runs)
            and runs[i + 2].frequency_hz == run.frequency_hz
            and runs[i + 1].frequency_hz != run.frequency_hz
        ):
            pair = (run.frequency_hz, runs[i + 1].frequency_hz)
            j = i + 1
            while j + 1 < len(runs) and runs[j + 1].frequency_hz == pair[(j + 1 - i) % 2]:
                j += 1
            phases.append(
                WaveformPhase(
                    "dense-disperse",
                    tuple(sorted(pair)),
                    run.start_s,
                    runs[j].end_s,
                    sum(r.bursts for r in runs[i : j + 1]),
                )
            )
            i = j + 1
            continue
        phases.append(
            WaveformPhase("continuous", (run.frequency_hz,), run.start_s, run.end_s, run.bursts)
        )
        i += 1
    return tuple(phases)


def _plateaus(levels: Sequence[tuple[float, int]]) -> tuple[LevelStep, ...]:
    """Levels held for at least a second, in time order (ramps in between are left out)."""
    steps = [
        LevelStep(t, t_next, level)
        for (t, level), (t_next, _) in itertools.pairwise(levels)
        if t_next - t >= _PLATEAU_MIN_S
    ]
    merged: list[LevelStep] = []
    for step in steps:
        if merged and merged[-1].level_du == step.level_du:
            merged[-1] = LevelStep(merged[-1].start_s, step.end_s, step.level_du)
        else:
            merged.append(step)
    return tuple(merged)


# --- STRICTA ---------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _laterality(sites: Iterable[str]) -> str:
    sides = {s.rsplit("-", 1)[-1].upper() for s in sites if "-" in s}
    if {"L", "R"} <= sides:
        return "bilateral"
    if sides == {"L"}:
        return "unilateral, left"
    if sides == {"R"}:
        return "unilateral, right"
    return "side not recorded"


def _stricta(
    info: SessionInfo,
    history: Sequence[SessionInfo],
    channels: Sequence[ChannelReport],
    output_s: float,
    session_clock_s: float | None,
) -> tuple[StrictaItem, ...]:
    meta = info.meta
    given = meta.get("stricta")
    st: dict[str, object] = given if isinstance(given, dict) else {}
    needles = meta.get("electrode") == "needle"
    not_recorded = "not recorded"
    pads = "not applicable: surface electrodes (pads)"
    title = _text(meta.get("program_title")) or info.program
    indication = _text(meta.get("indication"))
    sites = [s for ch in channels for s in ch.sites]
    levels = meta.get("levels_du")
    length_s = session_clock_s if session_clock_s is not None else info.duration_s
    length = "unknown" if length_s is None else _clock(length_s)
    items = [
        StrictaItem(
            "1a", "Style of acupuncture", _text(st.get("style")) or not_recorded, applies=True
        ),
        StrictaItem(
            "1b",
            "Reasoning for treatment",
            _text(st.get("rationale"))
            or f"program {info.program} ({title})" + (f": {indication}" if indication else ""),
            applies=True,
        ),
        StrictaItem(
            "1c",
            "Extent of individualisation",
            _text(st.get("individualisation"))
            or "standard program; treatment levels set by the practitioner"
            + (f" ({_text(levels)} du at the start)" if _text(levels) else ""),
            applies=True,
        ),
        StrictaItem(
            "2a",
            "Needle insertions per session",
            (_text(st.get("needle_count")) or f"{len(set(sites))} sites (from the channels)")
            if needles
            else pads,
            applies=needles,
        ),
        StrictaItem(
            "2b",
            "Points used",
            (
                "; ".join(f"{ch.name}: {' - '.join(ch.sites)}" for ch in channels if ch.sites)
                + f" ({_laterality(sites)})"
            )
            if sites
            else not_recorded,
            applies=True,
        ),
        StrictaItem(
            "2c",
            "Depth of insertion",
            (_text(st.get("depth")) or not_recorded) if needles else pads,
            applies=needles,
        ),
        StrictaItem(
            "2d", "Response sought", _text(st.get("response")) or not_recorded, applies=True
        ),
        StrictaItem(
            "2e",
            "Stimulation (manual or electrical)",
            f"electrical, {info.device}; see the electrical characterisation below",
            applies=True,
        ),
        StrictaItem(
            "2f",
            "Needle retention time" if needles else "Electrodes in place (session length)",
            (_text(st.get("retention")) if needles else None)
            or f"{length} (output for {_clock(output_s)})",
            applies=True,
        ),
        StrictaItem(
            "2g",
            "Needle type",
            (_text(st.get("needle_type")) or not_recorded) if needles else pads,
            applies=needles,
        ),
        StrictaItem("3a", "Number of treatment sessions", _regimen(info, history), applies=True),
        StrictaItem(
            "3b",
            "Frequency and duration of sessions",
            _text(st.get("regimen")) or _dates(history),
            applies=True,
        ),
        StrictaItem(
            "4a",
            "Other interventions",
            _text(st.get("co_interventions")) or not_recorded,
            applies=True,
        ),
        StrictaItem(
            "4b",
            "Setting and information to the patient",
            _text(st.get("setting")) or not_recorded,
            applies=True,
        ),
        StrictaItem(
            "5", "Practitioner background", _text(st.get("practitioner")) or not_recorded, True
        ),
        StrictaItem(
            "6a-b",
            "Control or comparator",
            _text(st.get("control")) or "not applicable: a treatment session",
            applies=bool(_text(st.get("control"))),
        ),
    ]
    return tuple(items)


def _regimen(info: SessionInfo, history: Sequence[SessionInfo]) -> str:
    if not info.patient:
        return "no patient code recorded: sessions cannot be counted"
    ids = [s.id for s in history]
    number = ids.index(info.id) + 1 if info.id in ids else len(ids)
    return f"session {number} of {len(ids)} recorded for patient {info.patient} in this store"


def _dates(history: Sequence[SessionInfo]) -> str:
    parts = []
    for s in history:
        length = s.duration_s
        parts.append(
            f"{_local(s.started_at, '%Y-%m-%d')}"
            + ("" if length is None else f" ({_clock(length)})")
        )
    return "; ".join(parts) if parts else "not recorded"


# --- plots -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    name: str
    colour: str
    points: tuple[tuple[float, float | None], ...]  # None breaks the line
    dashed: bool = False


_W: Final = 720
_H: Final = 250
_LEFT: Final = 60
_RIGHT: Final = 110
_TOP: Final = 26
_BOTTOM: Final = 34


def _plots(
    frames: Sequence[FrameRow],
    frame_s: float,
    names: Sequence[str],
    cal: CalibrationInfo,
    events: Sequence[EventRow],
) -> tuple[Plot, ...]:
    if not frames:
        return ()
    scale = cal.peak_ma_per_du if cal.calibrated and cal.peak_ma_per_du else None
    unit = "peak mA" if scale else "du"
    output: list[_Series] = []
    frequency: list[_Series] = []
    for k, name in enumerate(names):
        colour = _CHANNEL_COLOURS[k % len(_CHANNEL_COLOURS)]
        out_pts: list[tuple[float, float | None]] = []
        lvl_pts: list[tuple[float, float | None]] = []
        f_pts: list[tuple[float, float | None]] = []
        for frame in frames:
            ch = next((c for c in frame.channels if c.name == name), None)
            level = 0 if ch is None else ch.level_du
            peak = max(ch.intensity, default=0.0) if ch is not None else 0.0
            factor = scale or 1.0
            out_pts.append((frame.t_s, level * peak * factor))
            lvl_pts.append((frame.t_s, level * factor))
            if ch is None:
                continue
            n = len(ch.intensity)
            for j in range(n):
                t = frame.t_s + j * frame_s / n
                on = level * ch.intensity[j] > 0 and j < len(ch.frequency_hz)
                f_pts.append((t, ch.frequency_hz[j] if on else None))
        output.append(_Series(f"{name} output", colour, tuple(out_pts)))
        output.append(_Series(f"{name} level", colour, tuple(lvl_pts), dashed=True))
        frequency.append(_Series(f"{name}", colour, tuple(f_pts)))
    t_end = frames[-1].t_s + frame_s
    marks = [
        (e.t_s, f"{_clock(e.t_s)} {e.kind}: {e.message}") for e in events if e.kind in _MARKED_KINDS
    ]
    return (
        Plot(
            f"Output over the session ({unit}; dashed: the level set)",
            _svg(output, t_end, f"output ({unit})", log_y=False, marks=marks),
            _W,
            _H,
        ),
        Plot(
            "Pulse frequency over the session (Hz, while there is output)",
            _svg(frequency, t_end, "frequency (Hz)", log_y=True, marks=()),
            _W,
            _H,
        ),
    )


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * power:
            return m * power
    return 10 * power


def _thin(
    points: Sequence[tuple[float, float | None]], x_of: Callable[[float], float]
) -> list[tuple[float, float | None]]:
    """Keep the first, lowest, highest and last point of each pixel column (and every break),
    so a long session draws in a few thousand points and keeps its shape."""
    if len(points) <= 4 * _W:
        return list(points)
    out: list[tuple[float, float | None]] = []
    column: list[tuple[float, float]] = []
    current: int | None = None

    def flush() -> None:
        if not column:
            return
        keep = {0, len(column) - 1}
        keep.add(min(range(len(column)), key=lambda i: column[i][1]))
        keep.add(max(range(len(column)), key=lambda i: column[i][1]))
        out.extend(column[i] for i in sorted(keep))
        column.clear()

    for t, v in points:
        if v is None:
            flush()
            out.append((t, None))
            current = None
            continue
        px = int(x_of(t))
        if px != current:
            flush()
            current = px
        column.append((t, v))
    flush()
    return out


def _svg(
    series: Sequence[_Series],
    t_end: float,
    y_label: str,
    *,
    log_y: bool,
    marks: Sequence[tuple[float, str]],
) -> str:
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    minutes = t_end > 180
    t_unit = 60.0 if minutes else 1.0
    t_span = max(t_end, 1e-9)
    values = [v for s in series for _, v in s.points if v is not None]
    if log_y:
        lo = 10.0 ** math.floor(math.log10(max(min(values, default=1.0), 1e-3)))
        hi = 10.0 ** math.ceil(math.log10(max(max(values, default=100.0), lo * 10)))
    else:
        lo = 0.0
        top = max(values, default=0.0)
        step = _nice_step(top or 1.0, 5)
        hi = max(step, math.ceil(top / step) * step)

    def x_of(t: float) -> float:
        return _LEFT + plot_w * min(max(t / t_span, 0.0), 1.0)

    def y_of(v: float) -> float:
        if log_y:
            frac = (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            frac = (v - lo) / (hi - lo) if hi > lo else 0.0
        return _TOP + plot_h * (1.0 - min(max(frac, 0.0), 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}"'
        f' viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>',
    ]
    # grid and axes
    ticks: list[float] = []
    if log_y:
        decade = lo
        while decade <= hi * 1.0001:
            ticks.extend(m * decade for m in (1, 2, 5) if m * decade <= hi * 1.0001)
            decade *= 10
    else:
        step = _nice_step(hi - lo, 5)
        ticks = [lo + i * step for i in range(round((hi - lo) / step) + 1)]
    for v in ticks:
        y = y_of(v)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}"'
            ' stroke="#e3e8ec" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6873">{v:g}</text>'
        )
    t_step = _nice_step(t_span / t_unit, 8)
    i = 0
    while i * t_step <= t_span / t_unit + 1e-9:
        x = x_of(i * t_step * t_unit)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP + plot_h}" x2="{x:.1f}" y2="{_TOP + plot_h + 4}"'
            ' stroke="#8a96a0" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" fill="#5b6873">'
            f"{i * t_step:g}</text>"
        )
        i += 1
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none"'
        ' stroke="#8a96a0" stroke-width="1"/>'
    )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 4}" text-anchor="middle" fill="#1f2a33">'
        f"time ({'min' if minutes else 's'})</text>"
    )
    parts.append(
        f'<text x="14" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" fill="#1f2a33"'
        f' transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})">{_esc(y_label)}</text>'
    )
    for t, text in marks:
        x = x_of(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_TOP + plot_h}" stroke="#b0b8bf"'
            f' stroke-width="1" stroke-dasharray="2,3"><title>{_esc(text)}</title></line>'
        )
    # the series
    for k, s in enumerate(series):
        d: list[str] = []
        pen_up = True
        for t, value in _thin(s.points, x_of):
            if value is None:
                pen_up = True
                continue
            d.append(f"{'M' if pen_up else 'L'}{x_of(t):.1f},{y_of(value):.1f}")
            pen_up = False
        dash = ' stroke-dasharray="5,4" stroke-opacity="0.6"' if s.dashed else ""
        if d:
            parts.append(
                f'<path d="{" ".join(d)}" fill="none" stroke="{s.colour}"'
                f' stroke-width="1.5"{dash}/>'
            )
        y = _TOP + 10 + 16 * k
        x = _LEFT + plot_w + 10
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{s.colour}"'
            f' stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 24}" y="{y}" fill="#1f2a33">{_esc(s.name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# --- formatting ------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clock(t_s: float) -> str:
    """m:ss, or h:mm:ss; tenths of a second below a minute."""
    t = max(0.0, t_s)
    if t < 60:
        return f"0:{t:04.1f}"
    whole = round(t)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _local(iso: str | None, fmt: str = "%Y-%m-%d %H:%M:%S %z") -> str:
    if iso is None:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime(fmt)
    except ValueError:
        return iso


def _g(value: float | None, unit: str, digits: int = 3) -> str | None:
    return None if value is None else f"{value:.{digits}g} {unit}"


_CSS: Final = """
body { font-family: sans-serif; color: #1f2a33; max-width: 980px; margin: 24px auto;
       padding: 0 16px; font-size: 14px; }
h1 { font-size: 22px; margin-bottom: 2px; }
h2 { font-size: 17px; margin-top: 26px; border-bottom: 1px solid #d5dce1; }
h3 { font-size: 15px; margin-top: 16px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border: 1px solid #d5dce1; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background-color: #eef2f4; }
td.src { color: #5b6873; font-size: 12px; }
tr.na td { color: #8a96a0; }
.sub { color: #5b6873; margin-top: 0; }
.caveat { color: #7a5200; }
.uncal { color: #9f1c1c; font-weight: bold; }
.mono { font-family: monospace; }
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], classes: Iterable[str] = ()) -> str:
    """Cells are HTML already (escape values before)."""
    cls = list(classes)
    out = ['<table border="1" cellspacing="0" cellpadding="4" width="100%">']
    out.append("<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
    for i, row in enumerate(rows):
        klass = f' class="{cls[i]}"' if i < len(cls) and cls[i] else ""
        cells = "".join(
            f'<td class="src">{c}</td>'
            if j == len(row) - 1 and head[-1] == "Source"
            else f"<td>{c}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{klass}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    out = ['<table border="1" cellspacing="0" cellpadding="4" width="100%">']
    for k, v in rows:
        out.append(f'<tr><th width="28%">{_esc(k)}</th><td>{v}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def _channel_rows(report: Report, ch: ChannelReport) -> list[tuple[str, str, str]]:
    cal = report.calibration
    meta = report.session.meta
    frames_src = "recorded frames"
    cal_src = (
        _esc(f"recorded frames x calibrated profile ({cal.peak_ma_per_du:g} mA/du)")
        if cal.calibrated
        else '<span class="uncal">uncalibrated profile: device units only</span>'
    )
    electrode = _text(meta.get("electrode")) or "not recorded"
    area = f"{ch.electrode_area_cm2:g} cm²" if ch.electrode_area_cm2 else "area not recorded"
    widths = ", ".join(f"{w:g}" for w in ch.pulse_widths_us) or "-"
    if ch.pulse_width_delivered:
        width_text = f"{widths} µs per phase"
    else:
        width_text = (
            f"chosen by the device firmware (the program asked for {widths} µs; not"
            " delivered as such)"
        )
    phases = {
        True: "biphasic, charge-balanced",
        False: "not declared charge-balanced (treated as monophasic)",
        None: "not known",
    }[report.biphasic]
    freq = (
        ", ".join(f"{s.frequency_hz:g} Hz ({100 * s.share:.0f} %)" for s in ch.frequencies)
        or "no output"
    )
    steps = [
        f"{s.level_du} du {_clock(s.start_s)}-{_clock(s.end_s)}"
        for s in ch.level_history[:_MAX_PLATEAUS]
    ]
    if len(ch.level_history) > _MAX_PLATEAUS:
        steps.append(f"and {len(ch.level_history) - _MAX_PLATEAUS} more (see the plot)")
    history = "; ".join(steps) + " (ramps between; see the plot)" if steps else "-"
    uncal = f'<span class="uncal">{_UNCALIBRATED}</span>'

    def current(value: float | None, unit: str, why_none: str) -> str:
        if not cal.calibrated:
            return uncal
        text = _g(value, unit)
        return _esc(text) if text is not None else why_none

    no_shape = (
        "not known: the device chooses its pulse width"
        if not ch.pulse_width_delivered
        else "not known: biphasic or not is unknown"
    )
    net = (
        "0 (symmetric biphasic, charge-balanced)"
        if report.biphasic
        else ("equal to the charge per phase (monophasic)" if report.biphasic is False else "-")
    )
    rows = [
        ("Electrode pair (sites)", _esc(" - ".join(ch.sites) or "not recorded"), "session record"),
        ("Electrodes", f"{_esc(electrode)}; {area}", "session record"),
        ("Waveform and mode", _esc(ch.waveform), frames_src),
        ("Frequency (share of output time)", _esc(freq), frames_src),
        ("Pulse width", width_text, frames_src if ch.pulse_width_delivered else "device profile"),
        ("Pulse phases", phases, "device profile"),
        (
            "Level history",
            _esc(f"max {ch.level_max_du} du; {history}"),
            frames_src,
        ),
        ("Output time", _esc(_clock(ch.output_s)), frames_src),
        (
            "Peak current (max)",
            current(ch.peak_current_ma, "mA", "-")
            + ("" if cal.calibrated else _esc(f" (max output {ch.output_max_du:g} du)")),
            cal_src,
        ),
        ("rms current (max)", current(ch.rms_current_ma, "mA", no_shape), cal_src),
        (
            "rms current (mean while on)",
            current(ch.rms_current_mean_ma, "mA", no_shape),
            cal_src,
        ),
        ("Charge per phase (max)", current(ch.charge_per_phase_uc, "µC", no_shape), cal_src),
        ("Net charge per pulse", net if cal.calibrated else uncal, "device profile"),
        (
            "rms current density (max)",
            current(
                ch.current_density_ma_per_cm2,
                "mA/cm²",
                "not known: electrode area not recorded" if not ch.electrode_area_cm2 else no_shape,
            ),
            cal_src,
        ),
        (
            "Load",
            _esc(f"{cal.load_ohm:g} ohm (the calibration load; the real load is the patient)")
            if cal.calibrated and cal.load_ohm
            else "not known",
            cal_src,
        ),
    ]
    return rows


def render_html(report: Report, *, plot_html: Callable[[int, Plot], str] | None = None) -> str:
    """The report as one self-contained HTML page (plots inline as SVG, unless ``plot_html``
    says how to show plot number i)."""
    s = report.session
    title = _text(s.meta.get("program_title")) or s.program
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        " style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>acustim session {s.id}: {_esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Session {s.id}: {_esc(title)}</h1>",
        '<p class="sub">'
        + _esc(
            f"patient {s.patient or 'not recorded'} · {_local(s.started_at, '%Y-%m-%d %H:%M')}"
            f" · {report.outcome_text}"
        )
        + "</p>",
    ]
    if report.caveats:
        out.append(
            "<ul>" + "".join(f'<li class="caveat">{_esc(c)}</li>' for c in report.caveats) + "</ul>"
        )
    length = s.duration_s
    out.append('<h2 id="session">Session</h2>')
    out.append(
        _kv(
            [
                ("Patient code", _esc(s.patient or "not recorded")),
                ("Program", _esc(f"{s.program} ({title})")),
                ("Indication", _esc(_text(s.meta.get("indication")) or "not recorded")),
                ("Program file", _esc(_text(s.meta.get("program_source")) or "not recorded")),
                ("Device", _esc(f"{s.device} ({report.profile_name}), profile {s.profile}")),
                ("Device firmware", _esc(s.firmware or "not reported")),
                ("Calibration", _esc(report.calibration.source)),
                ("Started", _esc(_local(s.started_at))),
                ("Ended", _esc(_local(s.ended_at) if s.ended_at else "no recorded end")),
                (
                    "Length",
                    _esc(
                        "unknown"
                        if report.session_clock_s is None
                        else f"{_clock(report.session_clock_s)} (session clock, to the end of"
                        " the last frame)"
                    )
                    + _esc(
                        ""
                        if length is None
                        else f"; {_clock(length)} from start to end by the wall clock"
                    ),
                ),
                ("Outcome", _esc(report.outcome_text)),
                ("Output time", _esc(_clock(report.output_s))),
                ("Recorded by", _esc(f"acustim {s.acustim_version}")),
            ]
        )
    )
    out.append('<h2 id="stricta">STRICTA items</h2>')
    out.append(
        '<p class="sub">STRICTA 2010 (MacPherson et al., PLoS Med 7:e1000261); greyed items'
        " do not apply to this session.</p>"
    )
    out.append(
        _table(
            ("Item", "Description", "Recorded"),
            ((_esc(i.code), _esc(i.item), _esc(i.value)) for i in report.stricta),
            ("" if i.applies else "na" for i in report.stricta),
        )
    )
    out.append('<h2 id="screening">Screening and notes</h2>')
    if s.screening:
        out.append(_kv((str(k), _esc(_answer(v))) for k, v in s.screening.items()))
    else:
        out.append("<p>No screening answers recorded.</p>")
    out.append(
        f"<p><b>Practitioner notes:</b> {_esc(s.notes)}</p>"
        if s.notes
        else "<p>No practitioner notes recorded.</p>"
    )
    out.append('<h2 id="electrical">Electrical characterisation</h2>')
    cal = report.calibration
    out.append(
        f"<p>{_esc(cal.source)}.</p>"
        if cal.calibrated
        else f'<p class="uncal">{_esc(cal.source)}: no currents, charges or densities can be'
        " given.</p>"
    )
    for ch in report.channels:
        out.append(f"<h3>Channel {_esc(ch.name)}</h3>")
        out.append(_table(("Parameter", "Value", "Source"), _channel_rows(report, ch)))
    if report.unused_channels:
        out.append(f"<p>Channels without output: {_esc(', '.join(report.unused_channels))}.</p>")
    out.append('<h2 id="plots">Plots</h2>')
    if not report.plots:
        out.append("<p>No frames were recorded.</p>")
    for i, plot in enumerate(report.plots):
        out.append(f"<h3>{_esc(plot.title)}</h3>")
        out.append(plot_html(i, plot) if plot_html else f'<div class="plot">{plot.svg}</div>')
    out.append('<h2 id="device">Device reports</h2>')
    if report.device_reports:
        out.append(
            _table(
                ("Time", "Report", "Message"),
                (
                    (_esc(_clock(e.t_s)), _esc(e.kind), _esc(e.message))
                    for e in report.device_reports
                ),
            )
        )
    else:
        out.append("<p>The device reported nothing during the session.</p>")
    out.append('<h2 id="events">Events</h2>')
    out.append(
        _table(
            ("Time", "Event", "Message"),
            ((_esc(_clock(e.t_s)), _esc(e.kind), _esc(e.message)) for e in report.events),
        )
        if report.events
        else "<p>No events recorded.</p>"
    )
    out.append('<h2 id="record">Record</h2>')
    first = "-" if report.first_frame_s is None else _clock(report.first_frame_s)
    last = "-" if report.last_frame_s is None else _clock(report.last_frame_s)
    out.append(
        _kv(
            [
                ("Frames recorded", _esc(f"{report.frame_count} ({report.zero_frames} zero)")),
                ("First and last frame", _esc(f"{first} and {last}")),
                ("Lateness (max)", _esc(f"{report.max_lateness_ms:.1f} ms")),
                ("Events recorded", _esc(str(len(report.events)))),
                ("Records store", f'<span class="mono">{_esc(report.store_path)}</span>'),
                (
                    "Report made",
                    _esc(f"{_local(report.generated_at)} by acustim {report.acustim_version}"),
                ),
            ]
        )
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _answer(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "not answered"
    return _text(value) or "-"


# --- PDF -------------------------------------------------------------------------------------

_qt_app: Any = None


def _ensure_qt() -> None:
    """Qt needs a QGuiApplication for fonts; make one (offscreen when no platform is set) if
    the process has none. A QApplication, so widgets made later in the same process work."""
    global _qt_app
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication

    app = QCoreApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtWidgets import QApplication

        _qt_app = QApplication(["acustim"])
    elif not isinstance(app, QGuiApplication):
        raise ReportError("a PDF needs a Qt GUI application; this process runs a console one")


def render_pdf(report: Report) -> bytes:
    """The report as a PDF (A4), laid out by Qt from the same page as ``render_html``."""
    _ensure_qt()
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QUrl
    from PySide6.QtGui import (
        QColor,
        QImage,
        QPageLayout,
        QPageSize,
        QPainter,
        QPdfWriter,
        QTextDocument,
    )
    from PySide6.QtSvg import QSvgRenderer

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(14, 14, 14, 14), QPageLayout.Unit.Millimeter)
    writer.setTitle(f"acustim session {report.session.id}")
    writer.setCreator(f"acustim {report.acustim_version}")
    doc = QTextDocument()
    doc.setDefaultStyleSheet(_CSS)
    doc.setDocumentMargin(0)
    for i, plot in enumerate(report.plots):
        image = QImage(plot.width * 2, plot.height * 2, QImage.Format.Format_ARGB32)
        image.fill(QColor("#ffffff"))
        renderer = QSvgRenderer(QByteArray(plot.svg.encode("utf-8")))
        if not renderer.isValid():
            raise ReportError(f"plot {i + 1} of session {report.session.id} could not be drawn")
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        doc.addResource(
            QTextDocument.ResourceType.ImageResource.value, QUrl(f"acustim-plot-{i}.png"), image
        )
    doc.setHtml(
        render_html(
            report,
            plot_html=lambda i, p: (
                f'<img src="acustim-plot-{i}.png" width="{p.width}" height="{p.height}">'
            ),
        )
    )
    doc.print_(writer)
    del writer  # finishes the PDF
    buffer.close()
    data = bytes(buffer.data().data())
    if not data.startswith(b"%PDF"):
        raise ReportError(f"Qt did not produce a PDF for session {report.session.id}")
    return data


# --- writing ---------------------------------------------------------------------------------


def check_output_path(path: Path) -> Path:
    """``path`` (with ``~`` expanded) if a file can be written there, else ReportError saying
    why; checked before a report is built, so a typo fails at once."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ReportError(f"cannot write {target}: it is a directory; give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise ReportError(
            f"cannot write {target}: the directory {parent} does not exist"
            if not parent.exists()
            else f"cannot write {target}: {parent} is not a directory"
        )
    return target


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600), whole or not at all
    (a temporary file next to it, then renamed). ReportError in one line if it cannot."""
    target = check_output_path(path)
    parent = target.parent
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
        with os.fdopen(fd, "wb") as fh:  # mkstemp made it 0600
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise ReportError(
            f"cannot write {target} ({exc.strerror or exc}): choose a file in a directory you"
            " can write"
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_html(report: Report, path: Path) -> None:
    """Write the HTML report, mode 0600."""
    write_private_file(path, render_html(report).encode("utf-8"))


def write_pdf(report: Report, path: Path) -> None:
    """Write the PDF report, mode 0600."""
    write_private_file(path, render_pdf(report))
