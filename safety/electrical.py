"""Electrical quantities of pulse trains: rms current, current density, charge per phase.

Pure arithmetic on floats, in the units their names give. Formulas from
``../shared/reference/safety.md`` (IEC 60601-2-10 via the Enraf-Nonius IFU): for a rectangular
pulse train, I_rms = I_peak * sqrt(duty), duty = phase_duration_s * frequency_hz, doubled for a
symmetric biphasic pulse (two phases per pulse). Never decides what is allowed (see ``guard``).
"""

from __future__ import annotations

import math


def duty_cycle(pulse_width_us: float, frequency_hz: float, *, biphasic: bool) -> float:
    """Fraction of time current flows: phases per pulse x phase duration x pulse rate."""
    phases = 2.0 if biphasic else 1.0
    return min(1.0, phases * pulse_width_us * 1e-6 * frequency_hz)


def rms_current_ma(
    peak_current_ma: float, pulse_width_us: float, frequency_hz: float, *, biphasic: bool
) -> float:
    """rms current of a rectangular pulse train of the given peak current."""
    return peak_current_ma * math.sqrt(duty_cycle(pulse_width_us, frequency_hz, biphasic=biphasic))


def peak_for_rms_ma(
    rms_ma: float, pulse_width_us: float, frequency_hz: float, *, biphasic: bool
) -> float:
    """The peak current whose pulse train has the given rms current (inverse of rms_current_ma)."""
    duty = duty_cycle(pulse_width_us, frequency_hz, biphasic=biphasic)
    if duty <= 0.0:
        return math.inf
    return rms_ma / math.sqrt(duty)


def current_density_ma_per_cm2(rms_ma: float, area_cm2: float) -> float:
    """rms current density under an electrode of the given area."""
    return rms_ma / area_cm2


def charge_per_phase_uc(peak_current_ma: float, pulse_width_us: float) -> float:
    """Charge delivered in one phase: mA x us = nC, so divide by 1000 for uC."""
    return peak_current_ma * pulse_width_us / 1000.0
