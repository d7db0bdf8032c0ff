"""The limit hierarchy: absolute constants >= device >= program >= practitioner >= live level.

``resolve_limits`` walks the hierarchy once, before a session, and refuses (``LimitError``)
any child that asks for more than its parent: a file can lower a limit, never raise one.
Pure: no I/O, no clock. Figures and their sources: ``../shared/reference/safety.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from safety.errors import LimitError
from waveforms.program import ElectrodeKind, Program

# --- absolute constants ---------------------------------------------------------------------
#: IEC 60601-2-10: never more than 50 mA rms for any waveform (into 500 ohm).
ABS_MAX_RMS_CURRENT_MA = 50.0
#: IEC 60601-2-10 IFU item g: above 2 mA rms/cm^2 the operator must pay special attention.
CURRENT_DENSITY_WARN_MA_PER_CM2 = 2.0
#: Project policy (no standard gives a hard figure): refuse more than 1.25x the IEC attention
#: threshold. Chosen on the safe side; the field case in the reference reaches 3 mA/cm^2 when
#: half a pad lifts, which this cap prevents.
ABS_MAX_CURRENT_DENSITY_MA_PER_CM2 = 2.5
#: Project policy: the longest session in the reference is 60 min (trigeminal neuralgia RCT);
#: EA sessions are usually 10-30 min.
ABS_MAX_SESSION_S = 3600.0
#: Soft start: at most 5 % of the device's full scale per second (20 s from zero to full).
ABS_MAX_RISE_FRACTION_PER_S = 0.05
#: Default rise rate: 2 % of full scale per second (a Coyote 3 at 200 du: 4 du/s).
DEFAULT_RISE_FRACTION_PER_S = 0.02
#: End of session: the level falls to zero over this time, then output stops.
END_RAMP_DOWN_S = 3.0
#: The largest electrode area (one electrode) a session accepts, cm^2: a larger (or infinite)
#: area would switch the current-density cap off. waveforms.files uses the same bound.
ABS_MAX_ELECTRODE_AREA_CM2 = 500.0
#: The longest a session may try to reconnect after a lost link (it never outlives the
#: session's own time limit anyway).
ABS_MAX_RECONNECT_S = ABS_MAX_SESSION_S
#: Our policy until a device is calibrated (its current in mA is unknown): a program with a
#: site on the head, face or neck runs with every channel at most this fraction of the
#: device's full scale. No source gives a figure; a quarter of full scale is the safe side of
#: the built-in facial programs' own ceilings (0.25..0.4).
UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION = 0.25
#: Program-level ranges (waveforms.files enforces the same; a test checks they agree).
ABS_FREQUENCY_RANGE_HZ = (0.5, 200.0)
ABS_PULSE_WIDTH_RANGE_US = (20.0, 1000.0)


@dataclass(frozen=True)
class Calibration:
    """Device units to current, measured into ``load_ohm`` (a linear transfer)."""

    peak_ma_per_du: float
    load_ohm: float = 500.0


@dataclass(frozen=True)
class DeviceLimits:
    """What a device model can do and must never exceed (from its profile)."""

    model: str
    channels: tuple[str, ...]
    max_level_du: int
    frequency_range_hz: tuple[float, float]
    pulse_width_range_us: tuple[float, float]
    samples_per_frame: int
    sample_period_s: float
    biphasic: bool
    calibration: Calibration | None = None
    max_rise_fraction_per_s: float = ABS_MAX_RISE_FRACTION_PER_S
    max_session_s: float = ABS_MAX_SESSION_S
    stops_when_host_silent: bool = True

    @property
    def frame_period_s(self) -> float:
        return self.samples_per_frame * self.sample_period_s

    def check(self) -> None:
        """Refuse a profile that asks for more than the absolute constants allow."""
        where = f"device profile {self.model!r}"
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise LimitError(f"{where}: channel names must be unique and not empty")
        if self.max_level_du < 1:
            raise LimitError(f"{where}: max_level_du = {self.max_level_du}; allowed >= 1")
        _check_range(where, "frequency_range_hz", self.frequency_range_hz, ABS_FREQUENCY_RANGE_HZ)
        _check_range(
            where, "pulse_width_range_us", self.pulse_width_range_us, ABS_PULSE_WIDTH_RANGE_US
        )
        if self.samples_per_frame < 1 or not self.sample_period_s > 0:
            raise LimitError(f"{where}: frame layout must have >= 1 sample of > 0 s")
        if not 0 < self.max_rise_fraction_per_s <= ABS_MAX_RISE_FRACTION_PER_S:
            raise LimitError(
                f"{where}: max_rise_fraction_per_s = {self.max_rise_fraction_per_s}; "
                f"allowed 0 < x <= {ABS_MAX_RISE_FRACTION_PER_S} (a file can only lower it)"
            )
        if not 0 < self.max_session_s <= ABS_MAX_SESSION_S:
            raise LimitError(
                f"{where}: max_session_s = {self.max_session_s}; "
                f"allowed 0 < x <= {ABS_MAX_SESSION_S:g} s"
            )
        if self.calibration is not None and not (
            self.calibration.peak_ma_per_du > 0 and self.calibration.load_ohm > 0
        ):
            raise LimitError(f"{where}: calibration figures must be > 0")


def _check_range(
    where: str, name: str, value: tuple[float, float], allowed: tuple[float, float]
) -> None:
    low, high = value
    if not (allowed[0] <= low <= high <= allowed[1]):
        raise LimitError(
            f"{where}: {name} = {low:g}..{high:g}; allowed within {allowed[0]:g}..{allowed[1]:g}"
        )


@dataclass(frozen=True)
class ChannelLimits:
    """The resolved ceiling of one channel for one session."""

    name: str
    ceiling_du: int
    max_rms_current_ma: float


@dataclass(frozen=True)
class SessionLimits:
    """Every limit of one session, resolved down the hierarchy. Only the guard consumes it."""

    device: DeviceLimits
    channels: tuple[ChannelLimits, ...]
    rise_du_per_s: float
    max_session_s: float
    electrode: ElectrodeKind = "pad"
    electrode_area_cm2: float | None = None

    def channel(self, name: str) -> ChannelLimits:
        for c in self.channels:
            if c.name == name:
                return c
        raise LimitError(
            f"unknown channel {name!r}; this session has {', '.join(self.channel_names)}"
        )

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)


def resolve_limits(
    device: DeviceLimits,
    program: Program,
    *,
    ceilings_du: Mapping[str, int] | None = None,
    rise_fraction_per_s: float | None = None,
    session_s: float | None = None,
    electrode_area_cm2: float | None = None,
) -> SessionLimits:
    """Resolve the hierarchy for one session; refuse anything that raises a parent's limit."""
    device.check()
    prog = f"program {program.name!r}"
    if program.electrode == "needle" and not device.biphasic:
        raise LimitError(
            f"{prog} uses needle electrodes but {device.model} output is not charge-balanced "
            "(biphasic); a d.c. part corrodes needles. Use pads or a biphasic device."
        )
    ceilings = dict(ceilings_du or {})
    unknown = set(ceilings) - {c.name for c in program.channels}
    if unknown:
        raise LimitError(
            f"ceiling for channel {', '.join(sorted(unknown))}: {prog} has channels "
            f"{', '.join(c.name for c in program.channels)}"
        )
    channels: list[ChannelLimits] = []
    for ch in program.channels:
        if ch.name not in device.channels:
            raise LimitError(
                f"{prog} channel {ch.name} does not exist on {device.model}; "
                f"it has {', '.join(device.channels)}"
            )
        if not 0 < ch.max_level_fraction <= 1:
            raise LimitError(
                f"{prog} channel {ch.name} max_level_fraction = {ch.max_level_fraction}; "
                "allowed 0 < x <= 1"
            )
        program_ceiling = math.floor(device.max_level_du * ch.max_level_fraction)
        ceiling = ceilings.get(ch.name, program_ceiling)
        if isinstance(ceiling, bool) or not isinstance(ceiling, int):
            raise LimitError(
                f"ceiling {ch.name}={ceiling!r}: a whole number of device units; "
                f"allowed 0..{program_ceiling} du"
            )
        if not 0 <= ceiling <= program_ceiling:
            raise LimitError(
                f"ceiling {ch.name}={ceiling} du is above what {prog} allows on {device.model}; "
                f"allowed 0..{program_ceiling} du"
            )
        max_rms = ABS_MAX_RMS_CURRENT_MA
        if ch.max_current_ma is not None:
            if not 0 < ch.max_current_ma <= ABS_MAX_RMS_CURRENT_MA:
                raise LimitError(
                    f"{prog} channel {ch.name} max_current_ma = {ch.max_current_ma}; "
                    f"allowed 0 < x <= {ABS_MAX_RMS_CURRENT_MA:g} mA rms"
                )
            max_rms = ch.max_current_ma
        channels.append(ChannelLimits(ch.name, ceiling, max_rms))

    fraction = device.max_rise_fraction_per_s
    if rise_fraction_per_s is not None:
        if not 0 < rise_fraction_per_s <= fraction:
            raise LimitError(
                f"ramp rate {rise_fraction_per_s:g}/s of full scale is above the limit; "
                f"allowed 0 < x <= {fraction:g}/s"
            )
        fraction = rise_fraction_per_s
    else:
        fraction = min(fraction, DEFAULT_RISE_FRACTION_PER_S)

    longest = min(ABS_MAX_SESSION_S, device.max_session_s)
    length = program.duration_s if session_s is None else session_s
    if not 0 < length <= longest:
        raise LimitError(f"session length {length:g} s; allowed 0 < x <= {longest:g} s")

    area = electrode_area_cm2 if electrode_area_cm2 is not None else program.electrode_area_cm2
    if area is not None and (
        isinstance(area, bool)
        or not isinstance(area, int | float)
        or not 0 < area <= ABS_MAX_ELECTRODE_AREA_CM2
    ):
        raise LimitError(
            f"electrode area {area!r} cm^2; allowed 0 < x <= {ABS_MAX_ELECTRODE_AREA_CM2:g} cm^2"
        )
    return SessionLimits(
        device=device,
        channels=tuple(channels),
        rise_du_per_s=fraction * device.max_level_du,
        max_session_s=length,
        electrode=program.electrode,
        electrode_area_cm2=area,
    )


def check_reconnect_s(reconnect_s: float) -> float:
    """How long a session may try to reconnect after a lost link: 0 (never) up to
    ``ABS_MAX_RECONNECT_S``; NaN, negative or infinite values are refused."""
    if (
        isinstance(reconnect_s, bool)
        or not isinstance(reconnect_s, int | float)
        or not 0 <= reconnect_s <= ABS_MAX_RECONNECT_S
    ):
        raise LimitError(
            f"reconnect time {reconnect_s!r} s; allowed 0 <= x <= {ABS_MAX_RECONNECT_S:g} s"
        )
    return float(reconnect_s)


def uncalibrated_head_fraction(calibrated: bool, head_or_neck: bool) -> float | None:
    """The ceiling (a fraction of the device's full scale) that our policy puts on every
    channel of a program with a site on the head, face or neck while the device is not
    ``calibrated`` (``UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION``), or None when none applies (a
    calibrated device: its current caps apply; or no such site)."""
    if calibrated or not head_or_neck:
        return None
    return UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION
