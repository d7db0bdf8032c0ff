"""Rendering: exact boundaries, each segment kind, windows, silence, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from tests.waveforms.reference import reference_render
from waveforms import (
    Channel,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    ProgramError,
    Ramp,
    Segment,
    render,
    segment_at,
)


def program_of(*channels: tuple[Segment, ...]) -> Program:
    names = "ABCDEFGH"
    return Program(
        name="test",
        title="Test",
        indication="tests",
        channels=tuple(
            Channel(name=names[i], sites=(f"ST{i + 1}-L",), segments=segments)
            for i, segments in enumerate(channels)
        ),
    )


def steps(*frequencies_hz: float, duration_s: float = 1.0) -> tuple[Segment, ...]:
    return tuple(Continuous(duration_s, f, 200.0, 0.5) for f in frequencies_hz)


def test_tick_starting_on_a_boundary_belongs_to_the_next_segment() -> None:
    rendered = render(program_of(steps(10.0, 20.0)), tick_s=0.5)

    assert rendered.n_ticks == 4
    assert rendered.segment[0].tolist() == [0, 0, 1, 1]
    assert rendered.frequency_hz[0].tolist() == [10.0, 10.0, 20.0, 20.0]


def test_boundaries_are_exact_where_float_sums_would_drift() -> None:
    # In floats 3 * 0.1 > 0.3, so a float renderer puts tick 3 in the first segment.
    program = program_of(steps(10.0, 20.0, 30.0, duration_s=0.3))

    rendered = render(program, tick_s=0.1)

    assert rendered.segment[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("tick_s", [0.03, 0.007, 0.025, 0.25, 0.333])
def test_tick_sizes_that_do_not_divide_segments_match_the_reference(tick_s: float) -> None:
    program = program_of(
        (
            Ramp(0.1, 5.0, 100.0, 0.0, 1.0),
            Continuous(0.7, 10.0, 200.0, 0.8),
            DenseDisperse(2.9, 300.0, 0.6, low_s=0.5, high_s=0.7),
            Intermittent(1.3, 40.0, 250.0, 1.0, on_s=0.2, off_s=0.15),
            Ramp(0.45, 5.0, 100.0, 0.9, 0.1),
        ),
        steps(3.0, 4.0, duration_s=0.55),
    )

    rendered = render(program, tick_s)
    expected = reference_render(program, round(tick_s * 1e6), 0, rendered.n_ticks)

    for row, ticks in enumerate(expected):
        assert rendered.segment[row].tolist() == [t.segment for t in ticks]
        assert rendered.frequency_hz[row].tolist() == [t.frequency_hz for t in ticks]
        assert rendered.pulse_width_us[row].tolist() == [t.pulse_width_us for t in ticks]
        np.testing.assert_allclose(
            rendered.intensity[row], [t.intensity for t in ticks], rtol=0, atol=1e-12
        )


def test_n_ticks_default_covers_every_tick_that_starts_before_the_end() -> None:
    program = program_of(steps(10.0, duration_s=1.0), steps(10.0, duration_s=2.05))

    rendered = render(program, tick_s=0.5)

    assert rendered.n_ticks == 5  # ceil(2.05 / 0.5): the last tick starts at 2.0 s
    assert rendered.frequency_hz.shape == (2, 5)
    assert rendered.channel_names == ("A", "B")


@pytest.mark.parametrize(("start_tick", "n_ticks"), [(0, 10), (7, 1), (13, 40), (59, 30), (3, 0)])
def test_a_window_equals_the_same_ticks_of_a_full_render(start_tick: int, n_ticks: int) -> None:
    program = program_of(
        (
            Ramp(0.9, 2.0, 250.0, 0.0, 1.0),
            DenseDisperse(2.1, 250.0, 1.0, low_s=0.5, high_s=0.5),
            Intermittent(1.0, 80.0, 200.0, 0.7, on_s=0.3, off_s=0.2),
        ),
        steps(5.0, 6.0, duration_s=1.1),
    )
    full = render(program, tick_s=0.07, n_ticks=100)

    window = render(program, tick_s=0.07, start_tick=start_tick, n_ticks=n_ticks)

    columns = slice(start_tick, start_tick + n_ticks)
    assert window.start_tick == start_tick
    for name in ("frequency_hz", "pulse_width_us", "intensity", "segment"):
        assert np.array_equal(getattr(window, name), getattr(full, name)[:, columns]), name


def test_chunked_renders_concatenate_to_the_full_render() -> None:
    program = program_of((Ramp(1.0, 2.0, 250.0, 0.0, 1.0), DenseDisperse(6.0, 250.0, 1.0)))
    full = render(program, tick_s=0.025)

    chunks = [render(program, 0.025, start, 4) for start in range(0, full.n_ticks, 4)]

    assert np.array_equal(np.hstack([c.intensity for c in chunks]), full.intensity)
    assert np.array_equal(np.hstack([c.frequency_hz for c in chunks]), full.frequency_hz)


def test_continuous_holds_its_values() -> None:
    rendered = render(program_of((Continuous(1.0, 50.0, 300.0, 0.4),)), tick_s=0.25)

    assert rendered.frequency_hz[0].tolist() == [50.0] * 4
    assert rendered.pulse_width_us[0].tolist() == [300.0] * 4
    assert rendered.intensity[0].tolist() == [0.4] * 4


def test_dense_disperse_alternates_low_then_high_from_the_segment_start() -> None:
    # Starts after a 1.5 s segment: its phase must count from its own start, not from t = 0.
    program = program_of((*steps(7.0, duration_s=1.5), DenseDisperse(12.0, 250.0, 0.9)))

    rendered = render(program, tick_s=0.5)

    dense = rendered.frequency_hz[0, 3:]
    assert dense.tolist() == [2.0] * 6 + [100.0] * 6 + [2.0] * 6 + [100.0] * 6
    assert set(rendered.intensity[0, 3:].tolist()) == {0.9}
    assert set(rendered.pulse_width_us[0, 3:].tolist()) == {250.0}


def test_dense_disperse_uses_its_own_rates_and_times() -> None:
    segment = DenseDisperse(3.0, 200.0, 1.0, low_hz=4.0, high_hz=80.0, low_s=0.5, high_s=1.0)

    rendered = render(program_of((segment,)), tick_s=0.25)

    assert rendered.frequency_hz[0].tolist() == [4.0] * 2 + [80.0] * 4 + [4.0] * 2 + [80.0] * 4


def test_intermittent_switches_intensity_off_but_keeps_rate_and_width() -> None:
    segment = Intermittent(3.0, 30.0, 220.0, 0.8, on_s=1.0, off_s=0.5)

    rendered = render(program_of((*steps(9.0, duration_s=0.5), segment)), tick_s=0.25)

    part = slice(2, None)
    assert rendered.intensity[0, part].tolist() == ([0.8] * 4 + [0.0] * 2) * 2
    assert set(rendered.frequency_hz[0, part].tolist()) == {30.0}
    assert set(rendered.pulse_width_us[0, part].tolist()) == {220.0}
    assert set(rendered.segment[0, part].tolist()) == {1}


def test_ramp_is_linear_and_starts_at_its_from_value() -> None:
    program = program_of((Ramp(1.0, 2.0, 250.0, 0.0, 1.0), Ramp(1.0, 2.0, 250.0, 1.0, 0.0)))

    rendered = render(program, tick_s=0.25)

    assert rendered.intensity[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25]
    assert set(rendered.frequency_hz[0].tolist()) == {2.0}


def test_a_channel_is_silent_after_its_end() -> None:
    program = program_of(steps(10.0, duration_s=1.0), steps(20.0, duration_s=2.0))

    rendered = render(program, tick_s=0.5, n_ticks=6)

    assert rendered.segment.tolist() == [[0, 0, -1, -1, -1, -1], [0, 0, 0, 0, -1, -1]]
    for array in (rendered.frequency_hz, rendered.pulse_width_us, rendered.intensity):
        assert array[0, 2:].tolist() == [0.0] * 4
        assert array[1, 4:].tolist() == [0.0] * 2


def test_a_window_past_the_end_is_silent_and_the_default_window_is_empty() -> None:
    program = program_of(steps(10.0))

    past = render(program, tick_s=0.1, start_tick=50, n_ticks=3)
    default = render(program, tick_s=0.1, start_tick=50)

    assert past.segment.tolist() == [[-1, -1, -1]]
    assert past.intensity.tolist() == [[0.0, 0.0, 0.0]]
    assert default.n_ticks == 0
    assert default.frequency_hz.shape == (1, 0)


def test_render_is_deterministic_and_read_only() -> None:
    program = program_of((Ramp(2.0, 2.0, 250.0, 0.0, 1.0), DenseDisperse(30.0, 250.0, 1.0)))

    first, second = render(program, 0.025), render(program, 0.025)

    for name in ("frequency_hz", "pulse_width_us", "intensity", "segment"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
        with pytest.raises(ValueError, match="read-only"):
            getattr(first, name)[0, 0] = 1
    assert first.frequency_hz.dtype == np.float64
    assert first.segment.dtype == np.int32


def test_rendered_finds_rows_by_channel_name() -> None:
    rendered = render(program_of(steps(1.0), steps(2.0)), tick_s=0.5)

    assert rendered.row("B") == 1
    assert rendered.tick_us == 500_000
    with pytest.raises(KeyError):
        rendered.row("Z")


@pytest.mark.parametrize("tick_s", [1 / 3, 0.0, -0.025, float("nan"), float("inf"), 1e-7])
def test_a_tick_that_is_not_a_whole_number_of_microseconds_is_refused(tick_s: float) -> None:
    with pytest.raises(ProgramError, match=r"tick_s = .* allowed a whole number of microseconds"):
        render(program_of(steps(10.0)), tick_s)


def test_negative_window_arguments_are_refused() -> None:
    program = program_of(steps(10.0))
    with pytest.raises(ProgramError, match="start_tick"):
        render(program, 0.025, start_tick=-1)
    with pytest.raises(ProgramError, match="n_ticks"):
        render(program, 0.025, n_ticks=-1)


def test_segment_at_follows_the_boundary_rule() -> None:
    channel = program_of(steps(1.0, 2.0, duration_s=0.3)).channels[0]

    assert segment_at(channel, 0.0) == 0
    assert segment_at(channel, 0.299999) == 0
    assert segment_at(channel, 0.1 + 0.2) == 1  # 0.30000000000000004 is 0.3 to the microsecond
    assert segment_at(channel, 0.6) == -1
    assert segment_at(channel, 100.0) == -1
    with pytest.raises(ProgramError):
        segment_at(channel, -0.5)


def test_a_four_channel_thirty_minute_program_renders_in_one_call() -> None:
    # A smoke test of the fast path, deliberately not timed (bench/ measures speed).
    segments = (
        Ramp(60.0, 2.0, 250.0, 0.0, 1.0),
        DenseDisperse(1680.0, 250.0, 1.0),
        Ramp(60.0, 2.0, 250.0, 1.0, 0.0),
    )
    program = program_of(segments, segments, segments, segments)

    rendered = render(program, tick_s=0.025)

    assert rendered.frequency_hz.shape == (4, 72_000)
    assert set(np.unique(rendered.frequency_hz).tolist()) == {2.0, 100.0}
    assert rendered.intensity.min() == 0.0
    assert rendered.intensity.max() == 1.0
