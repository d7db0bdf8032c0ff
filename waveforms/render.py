"""Rendering: turn a program into per-tick demands (frequency, pulse width, intensity).

Tick ``i`` of a render covers ``[t_i, t_i + tick_s)`` with ``t_i = (start_tick + i) * tick_s``
and carries the values *at* ``t_i`` (the start of the tick: a ramp from 0 gives 0.0 on its
first tick). Every time is computed in integer microseconds, so segment boundaries are exact:
a tick that starts on a boundary belongs to the segment that starts there, whatever the tick
size, and rendering a window (``start_tick``/``n_ticks``) gives the very same values as the
same ticks of a full render. Work is vectorised per segment with numpy: there is no Python
loop per tick.

This module never talks to devices, never converts to device units and never clamps or
decides what is safe: a render is exactly what the program asks for. It assumes a program
that passed ``waveforms.files`` validation and checks only what it needs to compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from waveforms.errors import ProgramError
from waveforms.program import (
    Channel,
    ChannelDemand,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    Ramp,
    Segment,
)

__all__ = ["Rendered", "channel_duration_us", "render", "seconds_to_us", "segment_at"]

US_PER_S = 1_000_000
# A tick must be a whole number of microseconds; float noise below this is accepted.
_TICK_TOLERANCE_US = 1e-6

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Rendered:
    """Per-tick demands for every channel of a program; arrays are read-only.

    Rows follow ``channel_names``; columns are ticks. Where a channel is silent (past the end
    of its timeline) frequency, pulse width and intensity are 0.0 and ``segment`` is -1.
    ``segment`` indexes that channel's ``segments`` tuple (0-based).
    """

    tick_s: float
    start_tick: int
    channel_names: tuple[str, ...]
    frequency_hz: FloatArray
    pulse_width_us: FloatArray
    intensity: FloatArray
    segment: npt.NDArray[np.int32]

    @property
    def n_ticks(self) -> int:
        return int(self.frequency_hz.shape[1])

    @property
    def tick_us(self) -> int:
        return round(self.tick_s * US_PER_S)

    def n_frames(self, samples_per_frame: int) -> int:
        """How many device frames of ``samples_per_frame`` ticks the render fills (the last
        one may be part silence)."""
        return -(-self.n_ticks // samples_per_frame)

    def frame(self, index: int, samples_per_frame: int) -> tuple[ChannelDemand, ...]:
        """Device frame ``index``: ``samples_per_frame`` ticks per channel. Ticks past the end
        of the render are silence, written as the render writes it (all 0.0)."""
        start = index * samples_per_frame
        stop = start + samples_per_frame
        short = max(0, stop - max(start, self.n_ticks))
        pad = [0.0] * short
        return tuple(
            ChannelDemand(
                name,
                tuple(self.frequency_hz[k, start:stop].tolist() + pad),
                tuple(self.pulse_width_us[k, start:stop].tolist() + pad),
                tuple(self.intensity[k, start:stop].tolist() + pad),
            )
            for k, name in enumerate(self.channel_names)
        )

    def row(self, channel_name: str) -> int:
        """The row index of a channel, by name."""
        try:
            return self.channel_names.index(channel_name)
        except ValueError:
            raise KeyError(channel_name) from None


def seconds_to_us(duration_s: float) -> int:
    """A duration in whole microseconds, as rendering and validation count it."""
    return round(duration_s * US_PER_S)


def _segment_durations_us(channel: Channel) -> IntArray:
    durations = np.array([seconds_to_us(s.duration_s) for s in channel.segments], dtype=np.int64)
    if durations.size and int(durations.min()) < 0:
        raise ProgramError(
            f"channel {channel.name}: a segment duration_s is negative; allowed 0.1..3600 s"
        )
    return durations


def channel_duration_us(channel: Channel) -> int:
    """A channel's timeline length in microseconds (the sum of its rounded segment lengths)."""
    return int(_segment_durations_us(channel).sum())


def _tick_us(tick_s: float) -> int:
    if isinstance(tick_s, bool) or not (
        isinstance(tick_s, int | float) and math.isfinite(tick_s) and tick_s > 0
    ):
        raise ProgramError(
            f"render tick_s = {tick_s!r} is not a positive duration; "
            "allowed a whole number of microseconds >= 1 us (e.g. 0.025 s)"
        )
    tick_us = round(tick_s * US_PER_S)
    if tick_us < 1 or abs(tick_us - tick_s * US_PER_S) > _TICK_TOLERANCE_US:
        raise ProgramError(
            f"render tick_s = {tick_s!r} is not a whole number of microseconds; "
            "allowed a whole number of microseconds >= 1 us (e.g. 0.025 s)"
        )
    return tick_us


def _period_us(channel: Channel, index: int, field: str, value_s: float) -> int:
    period_us = seconds_to_us(value_s)
    if period_us <= 0:
        raise ProgramError(
            f"channel {channel.name} segment {index + 1} {field} = {value_s!r} is not positive; "
            "allowed a positive duration (see docs/program-format.md)"
        )
    return period_us


def _fill(
    channel: Channel,
    index: int,
    segment: Segment,
    local_us: IntArray,
    duration_us: int,
    frequency_hz: FloatArray,
    pulse_width_us: FloatArray,
    intensity: FloatArray,
) -> None:
    """Write one segment's values into row slices; ``local_us`` is time since segment start."""
    pulse_width_us[:] = segment.pulse_width_us
    if isinstance(segment, Continuous):
        frequency_hz[:] = segment.frequency_hz
        intensity[:] = segment.intensity
    elif isinstance(segment, DenseDisperse):
        low_us = _period_us(channel, index, "low_s", segment.low_s)
        high_us = _period_us(channel, index, "high_s", segment.high_s)
        phase_us = local_us % (low_us + high_us)
        frequency_hz[:] = np.where(phase_us < low_us, segment.low_hz, segment.high_hz)
        intensity[:] = segment.intensity
    elif isinstance(segment, Intermittent):
        on_us = _period_us(channel, index, "on_s", segment.on_s)
        off_us = _period_us(channel, index, "off_s", segment.off_s)
        phase_us = local_us % (on_us + off_us)
        frequency_hz[:] = segment.frequency_hz
        intensity[:] = np.where(phase_us < on_us, segment.intensity, 0.0)
    elif isinstance(segment, Ramp):
        frequency_hz[:] = segment.frequency_hz
        start, end = segment.intensity_from, segment.intensity_to
        # local_us < duration_us here, so the fraction is in [0, 1); the clip only removes
        # float rounding that could step a hair outside the two end values.
        fraction = local_us.astype(np.float64) / float(duration_us)
        values = start + (end - start) * fraction
        np.clip(values, min(start, end), max(start, end), out=intensity)
    else:  # pragma: no cover - the Segment union is closed; mypy proves the branches complete
        raise ProgramError(f"channel {channel.name} segment {index + 1}: unknown segment kind")


def _render_channel(
    channel: Channel,
    t_us: IntArray,
    frequency_hz: FloatArray,
    pulse_width_us: FloatArray,
    intensity: FloatArray,
    segment: npt.NDArray[np.int32],
) -> None:
    durations_us = _segment_durations_us(channel)
    ends_us = np.cumsum(durations_us)
    starts_us = ends_us - durations_us
    # t_us is sorted, so each segment owns one contiguous slice of ticks: those whose start
    # lies in [segment start, segment end). A tick starting on a boundary goes to the next one.
    first = np.searchsorted(t_us, starts_us, side="left")
    stop = np.searchsorted(t_us, ends_us, side="left")
    for index, seg in enumerate(channel.segments):
        lo, hi = int(first[index]), int(stop[index])
        if lo >= hi:
            continue
        _fill(
            channel,
            index,
            seg,
            t_us[lo:hi] - starts_us[index],
            int(durations_us[index]),
            frequency_hz[lo:hi],
            pulse_width_us[lo:hi],
            intensity[lo:hi],
        )
        segment[lo:hi] = index


def render(
    program: Program, tick_s: float, start_tick: int = 0, n_ticks: int | None = None
) -> Rendered:
    """Render ``n_ticks`` ticks of ``program`` starting at tick ``start_tick``.

    ``n_ticks=None`` renders up to the end of the program: tick ``ceil(duration / tick)``
    (exclusive), i.e. every tick that starts before the longest channel ends. Ticks past a
    channel's end, or past the program's end, are silent.
    """
    tick_us = _tick_us(tick_s)
    if isinstance(start_tick, bool) or not isinstance(start_tick, int) or start_tick < 0:
        raise ProgramError(f"render start_tick = {start_tick!r} is invalid; allowed an int >= 0")
    if n_ticks is None:
        end_us = max((channel_duration_us(c) for c in program.channels), default=0)
        n_ticks = max(0, -(-end_us // tick_us) - start_tick)
    elif isinstance(n_ticks, bool) or not isinstance(n_ticks, int) or n_ticks < 0:
        raise ProgramError(f"render n_ticks = {n_ticks!r} is invalid; allowed None or an int >= 0")

    t_us = (np.arange(n_ticks, dtype=np.int64) + start_tick) * tick_us
    shape = (len(program.channels), n_ticks)
    frequency_hz = np.zeros(shape, dtype=np.float64)
    pulse_width_us = np.zeros(shape, dtype=np.float64)
    intensity = np.zeros(shape, dtype=np.float64)
    segment = np.full(shape, -1, dtype=np.int32)
    for row, channel in enumerate(program.channels):
        _render_channel(
            channel, t_us, frequency_hz[row], pulse_width_us[row], intensity[row], segment[row]
        )
    for array in (frequency_hz, pulse_width_us, intensity, segment):
        array.setflags(write=False)
    return Rendered(
        tick_s=tick_us / US_PER_S,
        start_tick=start_tick,
        channel_names=tuple(c.name for c in program.channels),
        frequency_hz=frequency_hz,
        pulse_width_us=pulse_width_us,
        intensity=intensity,
        segment=segment,
    )


def segment_at(channel: Channel, t_s: float) -> int:
    """The index of the segment playing at ``t_s`` (rounded to 1 us); -1 past the end.

    A time exactly on a boundary belongs to the segment that starts there.
    """
    if not math.isfinite(t_s) or t_s < 0:
        raise ProgramError(f"segment_at t_s = {t_s!r} is invalid; allowed a time >= 0 s")
    ends_us = np.cumsum(_segment_durations_us(channel))
    index = int(np.searchsorted(ends_us, seconds_to_us(t_s), side="right"))
    return index if index < len(channel.segments) else -1
