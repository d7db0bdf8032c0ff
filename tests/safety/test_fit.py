"""Can this device deliver this program? Refusals and notes, before anything is sent."""

from __future__ import annotations

import pytest

from safety import LimitError
from safety.fit import check_program_fits
from tests.safety.helpers import device
from waveforms.program import Channel, Continuous, Program
from waveforms.render import render


def one_segment(frequency_hz: float, pulse_width_us: float, intensity: float = 1.0) -> Program:
    seg = Continuous(
        duration_s=1.0,
        frequency_hz=frequency_hz,
        pulse_width_us=pulse_width_us,
        intensity=intensity,
    )
    return Program(
        name="fit",
        title="Fit",
        indication="tests",
        channels=(Channel("A", ("ST6-L", "ST7-L"), (seg,)),),
    )


def fits(program: Program, **kw: object) -> list[str]:
    dev = device()  # 1..100 Hz, 50..500 us
    return check_program_fits(
        program,
        render(program, dev.sample_period_s),
        dev,
        device_name="Testdev",
        **kw,  # type: ignore[arg-type]
    )


def test_a_program_inside_the_device_ranges_fits_without_notes() -> None:
    assert fits(one_segment(50.0, 200.0)) == []


@pytest.mark.parametrize("hz", [0.5, 150.0])
def test_a_rate_the_device_cannot_make_is_refused(hz: float) -> None:
    with pytest.raises(LimitError, match=r"Testdev delivers 1\.\.100 Hz"):
        fits(one_segment(hz, 200.0))


def test_pulses_shorter_than_the_device_makes_are_refused() -> None:
    with pytest.raises(LimitError, match="cannot go below 50 us"):
        fits(one_segment(50.0, 20.0))


def test_pulses_longer_than_the_device_makes_are_shortened_with_a_note() -> None:
    (note,) = fits(one_segment(50.0, 900.0))
    assert "at most 500 us" in note and "shortened (less charge)" in note


def test_pulse_widths_do_not_matter_where_the_device_sets_them_itself() -> None:
    assert fits(one_segment(50.0, 20.0), pulse_width_controlled=False) == []


def test_silent_samples_may_carry_any_rate() -> None:
    assert fits(one_segment(150.0, 20.0, intensity=0.0)) == []
