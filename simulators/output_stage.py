"""The simulated output stage: milliamps into a load, per unit, and a virtual meter.

The firmware emulators say what a device delivers in its own units (``DeliveryRecord``:
strength, intensity, rate, width). A real box turns that into current through an output stage
whose gain differs from unit to unit. This module models that stage, so that a calibration
(a practitioner with a 500 ohm resistor and a scope or a true-rms meter) can be tested end to
end on a simulator, wrong readings and all.

Model (all of it **[ours]**: no document gives a figure for any of these devices):

* Peak current into 500 ohm = ``gain_ma_per_du`` x the delivered output (the record's
  ``output_du``: strength x intensity). ``gain_ma_per_du`` is the model's nominal gain times a
  per-unit factor drawn from a seed (``unit``), uniform within +-``spread``, and a smaller
  per-channel factor (+-``channel_spread``).
* Load: a **current-regulated** stage delivers the same current into any load up to its
  compliance voltage (then ``compliance_v / load``); a **voltage-regulated** stage delivers
  ``V / load``, so its current into ``load`` is the 500 ohm current x 500 / load.
* rms current of a pulse train: peak x sqrt(duty), duty = phases per pulse x pulses per
  period x phase width x rate (capped at 1); a held DC level (rate 0, intensity > 0) is its
  own rms.

The meter reads what the device delivers at the simulator's present time, from its own
record: call it where the simulator lives (the IO loop for an in-process link). It imports
nothing of the host side.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final, Literal

from simulators.record import DeliveredInterval

__all__ = [
    "CALIBRATION_LOAD_OHM",
    "MeterKind",
    "OutputStage",
    "Regulation",
    "meter_reading",
]

#: The load every gain is stated for (IEC 60601-2-10 measures into 500 ohm).
CALIBRATION_LOAD_OHM: Final = 500.0

MeterKind = Literal["peak", "rms"]
Regulation = Literal["current", "voltage"]


@dataclass(frozen=True)
class OutputStage:
    """One unit's output stage (see the module)."""

    model: str
    unit: int
    nominal_ma_per_du: float
    regulation: Regulation
    #: per-channel peak mA per delivered du into 500 ohm, for this unit
    gains_ma_per_du: tuple[tuple[str, float], ...]
    #: the highest voltage a current-regulated stage can drive (None: no limit modelled)
    compliance_v: float | None = None
    #: the phase width a device that sets its pulse width itself uses (None: the record says)
    fixed_pulse_width_us: float | None = None

    @classmethod
    def for_unit(
        cls,
        model: str,
        unit: int,
        channels: tuple[str, ...],
        *,
        nominal_ma_per_du: float,
        spread: float,
        channel_spread: float = 0.05,
        regulation: Regulation,
        compliance_v: float | None = None,
        fixed_pulse_width_us: float | None = None,
    ) -> OutputStage:
        """The stage of unit number ``unit`` of ``model``: the same unit always gets the
        same gains (the draw is seeded with the model and the unit)."""
        if not (math.isfinite(nominal_ma_per_du) and nominal_ma_per_du > 0):
            raise ValueError(f"nominal_ma_per_du must be > 0, got {nominal_ma_per_du!r}")
        if not 0 <= spread < 1 or not 0 <= channel_spread < 1:
            raise ValueError("spread and channel_spread must be within 0..1")
        rng = random.Random(f"{model}/unit-{unit}")
        unit_factor = 1.0 + rng.uniform(-spread, spread)
        gains = tuple(
            (
                ch,
                nominal_ma_per_du
                * unit_factor
                * (1.0 + rng.uniform(-channel_spread, channel_spread)),
            )
            for ch in channels
        )
        return cls(
            model=model,
            unit=unit,
            nominal_ma_per_du=nominal_ma_per_du,
            regulation=regulation,
            gains_ma_per_du=gains,
            compliance_v=compliance_v,
            fixed_pulse_width_us=fixed_pulse_width_us,
        )

    def with_gains(self, **gains: float) -> OutputStage:
        """The same stage with some channels' gains replaced (for tests)."""
        known = dict(self.gains_ma_per_du)
        for ch, g in gains.items():
            if ch not in known:
                raise ValueError(f"no channel {ch!r}; channels: {', '.join(known)}")
            known[ch] = float(g)
        return OutputStage(
            self.model,
            self.unit,
            self.nominal_ma_per_du,
            self.regulation,
            tuple(known.items()),
            self.compliance_v,
            self.fixed_pulse_width_us,
        )

    @property
    def unit_id(self) -> str:
        """What tells this unit apart from others of its model (a serial number's stand-in)."""
        return f"unit-{self.unit}"

    def gain_ma_per_du(self, channel: str) -> float:
        for ch, g in self.gains_ma_per_du:
            if ch == channel:
                return g
        raise ValueError(f"no channel {channel!r} on this {self.model}")

    def peak_ma(
        self, channel: str, output_du: float, load_ohm: float = CALIBRATION_LOAD_OHM
    ) -> float:
        """Peak current into ``load_ohm`` at ``output_du`` delivered on ``channel``."""
        if not (math.isfinite(load_ohm) and load_ohm > 0):
            raise ValueError(f"load_ohm must be > 0, got {load_ohm!r}")
        at_500 = self.gain_ma_per_du(channel) * max(0.0, output_du)
        if self.regulation == "voltage":
            return at_500 * CALIBRATION_LOAD_OHM / load_ohm
        if self.compliance_v is not None:
            return min(at_500, self.compliance_v / load_ohm * 1000.0)
        return at_500


def meter_reading(
    stage: OutputStage,
    interval: DeliveredInterval | None,
    *,
    kind: MeterKind = "peak",
    load_ohm: float = CALIBRATION_LOAD_OHM,
    phases: int = 1,
    pulses_per_period: int = 1,
) -> float:
    """What a scope (``peak``) or a true-rms meter (``rms``) on a ``load_ohm`` resistor reads
    while ``interval`` plays (None or no output: 0)."""
    if kind not in ("peak", "rms"):
        raise ValueError(f"meter kind must be 'peak' or 'rms', got {kind!r}")
    if interval is None or interval.output_du <= 0:
        return 0.0
    peak = stage.peak_ma(interval.channel, interval.output_du, load_ohm)
    if kind == "peak":
        return peak
    if interval.frequency_hz <= 0:
        return peak  # a held DC level
    width = stage.fixed_pulse_width_us or interval.pulse_width_us
    if width is None:
        raise ValueError(f"{stage.model}: the pulse width is not known, so no rms reading")
    duty = min(1.0, phases * pulses_per_period * width * 1e-6 * interval.frequency_hz)
    return peak * math.sqrt(duty)
