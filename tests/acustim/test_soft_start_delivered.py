"""Soft start is a promise about what reaches the patient: judged on the simulator's record.

A program's envelope may jump (a silent segment, then full intensity; a short burst after a long
pause): the delivered output (strength x waveform intensity on the device) still rises at most
at the soft-start rate, or comes back at once only to a level delivered a few seconds before.
"""

from __future__ import annotations

import pytest

from acustim import Engine
from safety import guard as G
from safety.limits import DEFAULT_RISE_FRACTION_PER_S
from simulators.record import DeliveryRecord
from waveforms.files import parse_program

HEAD = """
[program]
name = "envelope-test"
title = "Envelope test"
indication = "tests"
electrode = "pad"

[[channels]]
name = "A"
sites = ["PC6-L", "TE5-L"]  # the forearm: the device's whole scale (no head ceiling)
"""

SILENCE_THEN_FULL = (
    HEAD
    + """
[[channels.segments]]
kind = "continuous"
duration_s = 40
frequency_hz = 50
pulse_width_us = 200
intensity = 0.0

[[channels.segments]]
kind = "continuous"
duration_s = 20
frequency_hz = 50
pulse_width_us = 200
intensity = 1.0
"""
)

SHORT_BURSTS = (
    HEAD
    + """
[[channels.segments]]
kind = "intermittent"
duration_s = 183
frequency_hz = 50
on_s = 0.5
off_s = 60
pulse_width_us = 200
intensity = 1.0
"""
)

# Coyote 3: full scale 200 du, default rise 2 %/s of full scale
RISE_DU_PER_S = DEFAULT_RISE_FRACTION_PER_S * 200
#: The Coyote 3 takes a new strength on arrival but plays each frame's waveform one frame
#: later (frames_ahead = 1): for one frame the new strength meets the previous waveform, so
#: the device may lead the guard by one more frame's rise. Two frames of rise, then.
RISE_WINDOW_S = 0.2


def worst_excess_du(record: DeliveryRecord, channel: str, frame_s: float) -> float:
    """How far delivered output ever went above the largest output of the envelope memory
    before it, less one frame's rise and less one step of the device's waveform intensity
    (1 % of the strength on the Coyote 3): <= 0 keeps the promise. A dip and a return to the
    recent level is not a rise."""
    intervals = [iv for iv in record.intervals(channel) if iv.duration_s > 0]
    worst = -1e9
    for k, iv in enumerate(intervals):
        recent = [p.output_du for p in intervals[:k] if p.end_s > iv.start_s - G.ENVELOPE_MEMORY_S]
        step_du = iv.strength_du / 100
        excess = iv.output_du - max(recent, default=0.0) - RISE_DU_PER_S * frame_s - step_du
        worst = max(worst, excess)
    return worst


def run(text: str, level: int, duration_s: float) -> DeliveryRecord:
    with Engine(virtual_time=True) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(parse_program(text), levels={"A": level}, duration_s=duration_s)
        result = session.wait(60)
        assert result.outcome == "completed", result
        record: DeliveryRecord = device.simulator.record
        return record


def test_a_silent_segment_then_full_intensity_ramps_on_the_device() -> None:
    record = run(SILENCE_THEN_FULL, level=200, duration_s=60)
    # before today: 0 then 160 du within one 25 ms slot at 40 s
    at_40_5 = record.max_output("A", 40.0, 40.5)
    assert at_40_5 <= RISE_DU_PER_S * 0.6 + 1, at_40_5
    # output never went above what the patient had just had, by more than one frame's rise
    # (and one step of the device's intensity)
    assert worst_excess_du(record, "A", RISE_WINDOW_S) <= 1e-9
    # and it does get there: about 4 du/s for the 20 s after the silence
    assert record.max_output("A", 55.0, 60.0) >= RISE_DU_PER_S * 14


def test_a_short_burst_after_a_long_pause_ramps_from_zero() -> None:
    record = run(SHORT_BURSTS, level=200, duration_s=183)
    # each 0.5 s burst comes after 60 s of silence, far beyond the envelope memory
    assert G.ENVELOPE_MEMORY_S < 60
    for burst_start in (60.5, 121.0):
        peak = record.max_output("A", burst_start - 0.1, burst_start + 1.0)
        assert peak <= RISE_DU_PER_S * 0.6 + 1, (burst_start, peak)
    assert worst_excess_du(record, "A", RISE_WINDOW_S) <= 1e-9


@pytest.mark.parametrize("off_s", [1, 2])
def test_bursts_a_few_seconds_apart_re_enter_at_the_ramped_level(off_s: int) -> None:
    text = (
        HEAD
        + f"""
[[channels.segments]]
kind = "intermittent"
duration_s = 60
frequency_hz = 50
on_s = 2
off_s = {off_s}
pulse_width_us = 200
intensity = 1.0
"""
    )
    record = run(text, level=20, duration_s=60)
    # the level is reached after ~5 s; later bursts start at once at 20 du, never above
    late = [iv for iv in record.intervals("A") if iv.start_s > 20 and iv.output_du > 0]
    assert late and max(iv.output_du for iv in late) <= 20
    firsts = [iv for k, iv in enumerate(late) if k == 0 or late[k - 1].end_s < iv.start_s]
    assert all(iv.output_du >= 19 for iv in firsts), [(iv.start_s, iv.output_du) for iv in firsts]
