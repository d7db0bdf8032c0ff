"""guard_throughput: frames per second through ``Guard.vet``, and through the Coyote 3 codec.

A 2-channel x 4-sample frame (the Coyote 3 layout) is vetted again and again on a running
guard whose levels have already ramped up, with the session clock moving one frame period per
call, as the streamer drives it. Uncalibrated (the shipped Coyote 3 limits) and calibrated (a
device with a calibration to mA and a known electrode area, so rms current, current density
and charge per phase are computed on every frame). Then ``Coyote3Codec.encode`` of a vetted
frame, with the device's strengths already in step (no strength command, the common case).

Single thread, wall clock (``time.perf_counter``); the figure is the median of a few repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench._common import BenchReport, report
from device_profiles.profile import load_profile
from firmware_bridge.codecs.coyote3 import Coyote3Codec
from safety.guard import Guard, VettedFrame
from safety.limits import Calibration, DeviceLimits, resolve_limits
from waveforms.program import Channel, ChannelDemand, Continuous, Program

NAME = "guard_throughput"
TARGET_FRAMES_PER_S = 50_000.0
LEVELS_DU = {"A": 60, "B": 45}
ELECTRODE_AREA_CM2 = 9.0  # a 3 x 3 cm pad

DEMAND = (
    ChannelDemand("A", (2.0, 2.0, 100.0, 100.0), (200.0,) * 4, (0.25, 0.5, 0.75, 1.0)),
    ChannelDemand("B", (80.0,) * 4, (250.0,) * 4, (0.9, 0.9, 0.0, 0.9)),
)


def _program() -> Program:
    seg = Continuous(3600.0, 50.0, 200.0, 1.0)
    return Program(
        name="bench-guard",
        title="Bench guard",
        indication="benchmark only",
        channels=(
            Channel("A", ("ST6-L", "ST7-L"), (seg,)),
            Channel("B", ("ST6-R", "ST7-R"), (seg,)),
        ),
    )


def _calibrated_device() -> DeviceLimits:
    base = load_profile("coyote3").limits
    return DeviceLimits(
        model="bench-calibrated",
        channels=base.channels,
        max_level_du=base.max_level_du,
        frequency_range_hz=base.frequency_range_hz,
        pulse_width_range_us=base.pulse_width_range_us,
        samples_per_frame=base.samples_per_frame,
        sample_period_s=base.sample_period_s,
        biphasic=True,
        calibration=Calibration(peak_ma_per_du=0.4),
    )


class _Stepper:
    """A running guard at its levels, vetted one frame period at a time."""

    def __init__(self, device: DeviceLimits, area_cm2: float | None) -> None:
        limits = resolve_limits(
            device,
            _program(),
            rise_fraction_per_s=device.max_rise_fraction_per_s,
            electrode_area_cm2=area_cm2,
        )
        self.guard = Guard(limits)
        self.period_s = device.frame_period_s
        self.now_s = 0.0
        self.guard.confirm_limits_written()
        self.guard.start(0.0)
        for channel, level in LEVELS_DU.items():
            self.guard.set_level(channel, level, 0.0)
        while self.now_s < 10.0:  # past the soft start
            self.step()
        self.guard.drain_notices()

    def step(self) -> VettedFrame:
        self.now_s += self.period_s
        return self.guard.vet(DEMAND, self.now_s)


def _rate(calls: int, repeats: int, make: Callable[[], Callable[[], object]]) -> list[float]:
    """Calls per second of a fresh ``make()`` callable, once per repeat."""
    rates: list[float] = []
    for _ in range(repeats):
        fn = make()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(calls / (time.perf_counter() - start))
    return rates


def run(quick: bool = False) -> BenchReport:
    calls, repeats = (2_000, 3) if quick else (10_000, 5)
    shipped = load_profile("coyote3").limits
    calibrated = _calibrated_device()

    uncal = _rate(calls, repeats, lambda: _Stepper(shipped, None).step)
    cal = _rate(calls, repeats, lambda: _Stepper(calibrated, ELECTRODE_AREA_CM2).step)

    frame = _Stepper(shipped, None).step()
    check = _Stepper(calibrated, ELECTRODE_AREA_CM2).step()

    def make_encode() -> Callable[[], object]:
        codec = Coyote3Codec()
        codec.device_levels = {c.name: c.level_du for c in frame.channels}
        return lambda: codec.encode(frame, 1.0)

    encode = _rate(calls, repeats, make_encode)

    figures: dict[str, float] = {
        "vet_frames_per_s": statistics.median(uncal),
        "vet_frames_per_s_best": max(uncal),
        "vet_calibrated_frames_per_s": statistics.median(cal),
        "vet_calibrated_frames_per_s_best": max(cal),
        "vet_us_per_frame": 1e6 / statistics.median(uncal),
        "vet_calibrated_us_per_frame": 1e6 / statistics.median(cal),
        "encode_frames_per_s": statistics.median(encode),
        "encode_us_per_frame": 1e6 / statistics.median(encode),
    }
    levels = {c.name: c.level_du for c in frame.channels}
    cal_levels = {c.name: c.level_du for c in check.channels}
    rms = max((c.rms_current_ma or 0.0) for c in check.channels)
    return report(
        NAME,
        "Guard.vet frames/s for a 2-channel x 4-sample frame; Coyote3Codec.encode frames/s",
        figures,
        [
            ("vet_frames_per_s", ">=", TARGET_FRAMES_PER_S),
            ("vet_calibrated_frames_per_s", ">=", TARGET_FRAMES_PER_S),
        ],
        {
            "calls_per_repeat": calls,
            "repeats": repeats,
            "statistic": "median of repeats (best also given)",
            "frame": "2 channels x 4 samples",
            "levels_du": ", ".join(f"{k}={v}" for k, v in sorted(levels.items())),
            "calibrated_levels_du": ", ".join(f"{k}={v}" for k, v in sorted(cal_levels.items())),
            "calibrated_peak_ma_per_du": 0.4,
            "electrode_area_cm2": ELECTRODE_AREA_CM2,
            "calibrated_max_rms_ma": rms,
            "codec_calls_per_repeat": calls,
        },
        [
            "the codec has no target of its own; it runs once per frame after the guard",
            "clock: time.perf_counter, one thread, nothing else running",
        ],
    )
