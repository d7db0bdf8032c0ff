"""What a recorded session delivered, computed from its session row and stored frames: the
calibration that applies, which channels had output, how long output was on, and per channel
the electrical characterisation (waveform and mode, frequency shares, pulse widths, level
history, and where calibrated, peak and rms current and charge per phase with the guard's own
formulas, ``safety.electrical``).

Pure functions of the rows it is given: it reads no store (``build`` does), never writes one,
lays nothing out, never imports Qt, and never guesses a current without a calibration.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from acustim.records import FrameRow, SessionInfo
from acustim.report.model import (
    UNCALIBRATED,
    CalibrationInfo,
    ChannelReport,
    FrequencyShare,
    LevelStep,
    WaveformPhase,
)
from device_profiles.profile import DeviceProfile
from safety import electrical

__all__ = [
    "calibration",
    "channel_names",
    "channel_report",
    "electrode_area",
    "frame_period",
    "has_output",
    "meta_bool",
    "meta_channels",
    "output_time",
]

#: a level held this long or longer is a step of the level history
_PLATEAU_MIN_S: Final = 1.0
#: an off gap this long or longer between two stretches of output makes them two bursts
_BURST_GAP_S: Final = 0.3


def meta_bool(info: SessionInfo, key: str) -> bool | None:
    """A yes/no of the session's ``meta``, or None if it is not a bool there."""
    value = info.meta.get(key)
    return value if isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def calibration(info: SessionInfo, profile: DeviceProfile | None) -> CalibrationInfo:
    """The calibration recorded with the session, else the profile's as installed now, else
    why there is none."""
    recorded = info.meta.get("calibration")
    if isinstance(recorded, dict):
        peak = _number(recorded.get("peak_ma_per_du"))
        load = _number(recorded.get("load_ohm"))
        date, by = recorded.get("date"), recorded.get("by")
        if peak is not None and isinstance(date, str) and isinstance(by, str):
            # a measured calibration of this very device (acustim.calibration)
            return CalibrationInfo(
                True,
                peak,
                load,
                f"calibrated on {date[:10]} by {by}: {peak:g} mA per du"
                + (f" into {load:g} ohm" if load else "")
                + f" ({recorded.get('meter', 'a')} meter; the calibration recorded with the"
                " session)",
            )
        if peak is not None:
            nominal = recorded.get("source") == "profile"
            return CalibrationInfo(
                True,
                peak,
                load,
                f"calibrated: {peak:g} mA per du"
                + (f" into {load:g} ohm" if load else "")
                + (" (the profile's nominal figure, not measured; " if nominal else " (")
                + "the calibration recorded with the session)",
            )
    if info.meta.get("calibrated") is False:
        return CalibrationInfo(
            False,
            None,
            None,
            f"{UNCALIBRATED} (profile {info.profile} was not calibrated to mA when the"
            " session ran)",
        )
    if profile is None:
        return CalibrationInfo(
            False, None, None, f"{UNCALIBRATED} (profile {info.profile} not available)"
        )
    cal = profile.limits.calibration
    if cal is None:
        return CalibrationInfo(
            False, None, None, f"{UNCALIBRATED} (profile {profile.id} is not calibrated to mA)"
        )
    return CalibrationInfo(
        True,
        cal.peak_ma_per_du,
        cal.load_ohm,
        f"calibrated: {cal.peak_ma_per_du:g} mA per du into {cal.load_ohm:g} ohm (profile"
        f" {profile.id} as installed now; the session record holds no calibration of its own)",
    )


def frame_period(frames: Sequence[FrameRow]) -> float:
    """The frame period when no profile says it: the median gap between frames."""
    gaps = [b.t_s - a.t_s for a, b in itertools.pairwise(frames) if b.t_s > a.t_s]
    return statistics.median(gaps) if gaps else 0.1


def meta_channels(info: SessionInfo) -> dict[str, dict[str, Any]]:
    """The channels the runner recorded in ``meta``, by name."""
    out: dict[str, dict[str, Any]] = {}
    channels = info.meta.get("channels")
    if isinstance(channels, list):
        for ch in channels:
            if isinstance(ch, dict) and isinstance(ch.get("name"), str):
                out[ch["name"]] = ch
    return out


def channel_names(frames: Sequence[FrameRow], meta: dict[str, dict[str, Any]]) -> list[str]:
    """The recorded channels first, then any other channel the frames name, in order."""
    names = list(meta)
    for frame in frames:
        for ch in frame.channels:
            if ch.name not in names:
                names.append(ch.name)
    return names


def has_output(frames: Sequence[FrameRow], name: str) -> bool:
    """Whether channel ``name`` put anything out in any frame."""
    return any(
        ch.name == name and ch.level_du > 0 and max(ch.intensity, default=0.0) > 0
        for f in frames
        for ch in f.channels
    )


def electrode_area(info: SessionInfo, meta_channel: dict[str, Any]) -> float | None:
    """The channel's electrode area (cm²), else the session's, else None."""
    own = _number(meta_channel.get("electrode_area_cm2", meta_channel.get("area_cm2")))
    return own if own is not None else _number(info.meta.get("electrode_area_cm2"))


def output_time(frames: Sequence[FrameRow], frame_s: float) -> float:
    """Seconds during which any channel had output."""
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


def channel_report(
    name: str,
    frames: Sequence[FrameRow],
    frame_s: float,
    cal: CalibrationInfo,
    biphasic: bool | None,
    pw_delivered: bool,
    meta_channel: dict[str, Any],
    area_cm2: float | None,
) -> ChannelReport:
    """Channel ``name``'s electrical characterisation from the frames (see ``ChannelReport``)."""
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
