"""Property tests: any valid program renders to well-formed, exact, windowable arrays."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.waveforms.reference import reference_render, us
from waveforms import (
    Channel,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    Ramp,
    Segment,
    render,
    validate_program,
)

# No example database (no files written), no deadline (a slow machine must not fail a test).
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

durations_s = st.integers(100, 4000).map(lambda ms: ms / 1000)  # 0.1..4 s, whole ms
frequencies_hz = st.sampled_from([0.5, 1.0, 2.0, 7.5, 10.0, 33.3, 100.0, 200.0])
pulse_widths_us = st.integers(20, 1000).map(float)
intensities = st.integers(0, 1000).map(lambda k: k / 1000)
on_off_s = st.integers(100, 2000).map(lambda ms: ms / 1000)
low_high_s = st.integers(500, 2000).map(lambda ms: ms / 1000)
ticks_s = st.sampled_from([0.001, 0.007, 0.01, 0.025, 0.03, 0.1, 0.125, 0.333, 1.0])

continuous = st.builds(Continuous, durations_s, frequencies_hz, pulse_widths_us, intensities)
# two different rates, the lower one first: a program needs low_hz below high_hz
low_and_high_hz = st.lists(frequencies_hz, min_size=2, max_size=2, unique=True).map(sorted)
dense_disperse = low_and_high_hz.flatmap(
    lambda hz: st.builds(
        DenseDisperse,
        durations_s,
        pulse_widths_us,
        intensities,
        low_hz=st.just(hz[0]),
        high_hz=st.just(hz[1]),
        low_s=low_high_s,
        high_s=low_high_s,
    )
)
intermittent = st.builds(
    Intermittent,
    durations_s,
    frequencies_hz,
    pulse_widths_us,
    intensities,
    on_s=on_off_s,
    off_s=on_off_s,
)
ramp = st.builds(Ramp, durations_s, frequencies_hz, pulse_widths_us, intensities, intensities)
segments: st.SearchStrategy[Segment] = st.one_of(continuous, dense_disperse, intermittent, ramp)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    n_channels = draw(st.integers(1, 4))
    channels = tuple(
        Channel(
            name="ABCD"[i],
            sites=(f"ST{i + 1}-L",),
            segments=tuple(draw(st.lists(segments, min_size=1, max_size=5))),
        )
        for i in range(n_channels)
    )
    return Program(name="generated", title="Generated", indication="tests", channels=channels)


def channel_end_us(channel: Channel) -> int:
    return sum(us(s.duration_s) for s in channel.segments)


@PROPERTY_SETTINGS
@given(program=programs(), tick_s=ticks_s)
def test_any_valid_program_renders_to_well_formed_arrays(program: Program, tick_s: float) -> None:
    validate_program(program)  # the generator only makes valid programs

    rendered = render(program, tick_s)

    tick_us = round(tick_s * 1e6)
    end_us = max(channel_end_us(c) for c in program.channels)
    n_ticks = math.ceil(end_us / tick_us)
    assert rendered.n_ticks == n_ticks
    for array in (rendered.frequency_hz, rendered.pulse_width_us, rendered.intensity):
        assert array.shape == (len(program.channels), n_ticks)
    assert np.all((rendered.intensity >= 0.0) & (rendered.intensity <= 1.0))

    t_us = np.arange(n_ticks, dtype=np.int64) * tick_us
    for row, channel in enumerate(program.channels):
        playing = t_us < channel_end_us(channel)
        assert np.all(rendered.segment[row, playing] >= 0)
        assert np.all(rendered.segment[row, ~playing] == -1)
        for array in (rendered.frequency_hz, rendered.pulse_width_us, rendered.intensity):
            assert np.all(array[row, ~playing] == 0.0)
        assert np.all(
            (rendered.frequency_hz[row, playing] >= 0.5)
            & (rendered.frequency_hz[row, playing] <= 200.0)
        )
        assert np.all(
            (rendered.pulse_width_us[row, playing] >= 20.0)
            & (rendered.pulse_width_us[row, playing] <= 1000.0)
        )


@PROPERTY_SETTINGS
@given(program=programs(), tick_s=st.sampled_from([0.01, 0.025, 0.03, 0.1, 0.333]))
def test_any_valid_program_matches_the_reference_renderer(program: Program, tick_s: float) -> None:
    rendered = render(program, tick_s)

    expected = reference_render(program, round(tick_s * 1e6), 0, rendered.n_ticks)
    for row, ticks in enumerate(expected):
        assert rendered.segment[row].tolist() == [t.segment for t in ticks]
        assert rendered.frequency_hz[row].tolist() == [t.frequency_hz for t in ticks]
        assert rendered.pulse_width_us[row].tolist() == [t.pulse_width_us for t in ticks]
        np.testing.assert_allclose(
            rendered.intensity[row], [t.intensity for t in ticks], rtol=0, atol=1e-12
        )


@PROPERTY_SETTINGS
@given(program=programs(), tick_s=ticks_s, data=st.data())
def test_any_window_equals_the_same_ticks_of_a_full_render(
    program: Program, tick_s: float, data: st.DataObject
) -> None:
    full = render(program, tick_s)
    padded = full.n_ticks + 20  # reach past the end, where everything is silent
    whole = render(program, tick_s, n_ticks=padded)
    start = data.draw(st.integers(0, padded), label="start_tick")
    count = data.draw(st.integers(0, padded - start), label="n_ticks")

    window = render(program, tick_s, start_tick=start, n_ticks=count)

    for name in ("frequency_hz", "pulse_width_us", "intensity", "segment"):
        assert np.array_equal(getattr(window, name), getattr(whole, name)[:, start : start + count])
        assert np.array_equal(getattr(whole, name)[:, : full.n_ticks], getattr(full, name))
