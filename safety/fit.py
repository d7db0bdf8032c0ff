"""Can this device deliver this program as written? Checked once, before anything is sent.

A program whose active samples need a pulse rate the device cannot make, or pulses shorter than
it can make (a longer pulse would deliver more charge than the program intends), is refused
with ``LimitError``. Pulses longer than the device's longest are delivered shorter, which is
safe, and come back as notes to show and record.

Pure: reads a render, does no I/O, keeps no state.
"""

from __future__ import annotations

from safety.errors import LimitError
from safety.limits import DeviceLimits
from waveforms.program import Program
from waveforms.render import Rendered

#: float noise in a render never counts as out of range
_TOLERANCE = 1e-9


def check_program_fits(
    program: Program,
    rendered: Rendered,
    device: DeviceLimits,
    *,
    device_name: str,
    pulse_width_controlled: bool = True,
) -> list[str]:
    """Refuse a program the device cannot deliver as written; return notes for what it
    delivers differently but safely (shorter pulses)."""
    f_lo, f_hi = device.frequency_range_hz
    w_lo, w_hi = device.pulse_width_range_us
    notes: list[str] = []
    for k, name in enumerate(rendered.channel_names):
        active = rendered.intensity[k] > 0
        if not active.any():
            continue
        freqs = rendered.frequency_hz[k][active]
        if freqs.min() < f_lo - _TOLERANCE or freqs.max() > f_hi + _TOLERANCE:
            raise LimitError(
                f"program {program.name} needs {freqs.min():g}..{freqs.max():g} Hz on channel "
                f"{name}; {device_name} delivers {f_lo:g}..{f_hi:g} Hz. Choose another program "
                "or device."
            )
        if pulse_width_controlled:
            widths = rendered.pulse_width_us[k][active]
            if widths.min() < w_lo - _TOLERANCE:
                raise LimitError(
                    f"program {program.name} asks for {widths.min():g} us pulses on channel "
                    f"{name}; {device_name} cannot go below {w_lo:g} us (longer pulses would "
                    "deliver more charge than the program intends)"
                )
            if widths.max() > w_hi + _TOLERANCE:
                notes.append(
                    f"{name}: {device_name} delivers pulses of at most {w_hi:g} us; the "
                    f"program's {widths.max():g} us pulses are shortened (less charge)"
                )
    return notes
