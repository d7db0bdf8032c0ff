"""Codec write order: within one frame, no moment between two writes may deliver more than
either the frame before or the frame after it (falls first, rises last)."""

from __future__ import annotations

from device_profiles import load_profile
from firmware_bridge.codecs import coyote2 as C2
from safety import Guard, resolve_limits
from tests.safety.helpers import demand, program


def test_coyote2_a_strength_fall_is_written_before_a_wider_pulse() -> None:
    """Frame 1: strength 100 at Z 4 (20 us). Frame 2: strength 50 at Z 20 (100 us). The
    codec writes both waveforms (Z 20) first and PWM_AB2 last, so for one BLE write the
    device pulses 100 x 100 us: five times frame 1's charge per pulse, twice frame 2's."""
    profile = load_profile("coyote2")
    guard = Guard(resolve_limits(profile.limits, program(duration_s=60.0)))
    guard.confirm_limits_written()
    guard.start(0.0)
    guard.set_level("A", 100, 0.0)
    codec = C2.Coyote2Codec()
    codec.zero_writes()
    t = 0.0
    frame = None
    while guard.level_du("A") < 100:  # ramp up (the soft start) at 20 us
        t += 0.09
        frame = guard.vet([demand("A", pulse_width_us=20.0, n=1)], t)
        codec.encode(frame)
    assert frame is not None and frame.channel("A").level_du == 100
    guard.set_level("A", 50, t)  # the practitioner lowers A ...
    t += 0.09
    frame = guard.vet([demand("A", pulse_width_us=100.0, n=1)], t)  # ... as the pulse widens
    writes = codec.encode(frame)
    chars = [w.char for w in writes]
    strength_at = chars.index(C2.PWM_AB2_CHAR)
    wave_at = chars.index(C2.WAVEFORM_CHAR["A"])
    assert strength_at < wave_at, (
        "coyote2 writes the wider waveform before the lower strength: "
        f"{[(c[4:8], w.data.hex()) for c, w in zip(chars, writes, strict=True)]}"
    )
