"""A slow, obviously-correct renderer for tests: one Python loop step per tick, integers only.

It restates the render semantics of docs/program-format.md independently of numpy so the fast
renderer can be compared against it tick by tick.
"""

from __future__ import annotations

from dataclasses import dataclass

from waveforms import Channel, Continuous, DenseDisperse, Intermittent, Program, Ramp, Segment


@dataclass(frozen=True)
class TickValue:
    frequency_hz: float
    pulse_width_us: float
    intensity: float
    segment: int


SILENT = TickValue(0.0, 0.0, 0.0, -1)


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def value_at(segment: Segment, local_us: int, index: int) -> TickValue:
    if isinstance(segment, Continuous):
        return TickValue(segment.frequency_hz, segment.pulse_width_us, segment.intensity, index)
    if isinstance(segment, DenseDisperse):
        low_us, high_us = us(segment.low_s), us(segment.high_s)
        in_low = local_us % (low_us + high_us) < low_us
        frequency = segment.low_hz if in_low else segment.high_hz
        return TickValue(frequency, segment.pulse_width_us, segment.intensity, index)
    if isinstance(segment, Intermittent):
        on_us, off_us = us(segment.on_s), us(segment.off_s)
        on = local_us % (on_us + off_us) < on_us
        intensity = segment.intensity if on else 0.0
        return TickValue(segment.frequency_hz, segment.pulse_width_us, intensity, index)
    assert isinstance(segment, Ramp)
    fraction = local_us / us(segment.duration_s)
    intensity = segment.intensity_from + (segment.intensity_to - segment.intensity_from) * fraction
    return TickValue(segment.frequency_hz, segment.pulse_width_us, intensity, index)


def channel_at(channel: Channel, t_us: int) -> TickValue:
    start_us = 0
    for index, segment in enumerate(channel.segments):
        end_us = start_us + us(segment.duration_s)
        if start_us <= t_us < end_us:
            return value_at(segment, t_us - start_us, index)
        start_us = end_us
    return SILENT


def reference_render(
    program: Program, tick_us: int, start_tick: int, n_ticks: int
) -> list[list[TickValue]]:
    return [
        [channel_at(channel, (start_tick + i) * tick_us) for i in range(n_ticks)]
        for channel in program.channels
    ]
