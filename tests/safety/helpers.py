"""Small builders for safety tests."""

from __future__ import annotations

from safety import Calibration, DeviceLimits
from waveforms.program import Channel, ChannelDemand, Continuous, Program


def device(**overrides: object) -> DeviceLimits:
    base: dict[str, object] = {
        "model": "testdev",
        "channels": ("A", "B"),
        "max_level_du": 200,
        "frequency_range_hz": (1.0, 100.0),
        "pulse_width_range_us": (50.0, 500.0),
        "samples_per_frame": 4,
        "sample_period_s": 0.025,
        "biphasic": True,
    }
    base.update(overrides)
    return DeviceLimits(**base)  # type: ignore[arg-type]


def calibrated(peak_ma_per_du: float = 0.5, **overrides: object) -> DeviceLimits:
    return device(calibration=Calibration(peak_ma_per_du=peak_ma_per_du), **overrides)


def program(
    channels: tuple[str, ...] = ("A", "B"),
    *,
    fraction: float = 1.0,
    max_current_ma: float | None = None,
    electrode: str = "pad",
    area: float | None = None,
    duration_s: float = 600.0,
) -> Program:
    seg = Continuous(duration_s=duration_s, frequency_hz=50.0, pulse_width_us=200.0, intensity=1)
    return Program(
        name="test",
        title="Test",
        indication="test",
        channels=tuple(
            Channel(c, ("ST6-L", "ST7-L"), (seg,), fraction, max_current_ma) for c in channels
        ),
        electrode=electrode,  # type: ignore[arg-type]
        electrode_area_cm2=area,
    )


def demand(
    name: str = "A",
    *,
    frequency_hz: float = 50.0,
    pulse_width_us: float = 200.0,
    intensity: float = 1.0,
    n: int = 4,
) -> ChannelDemand:
    return ChannelDemand(name, (frequency_hz,) * n, (pulse_width_us,) * n, (intensity,) * n)
