"""The small programs the engine, fault, device and window tests run: one continuous segment
on the ST6/ST7 pairs (channel A on the left, B on the right).

``continuous_toml`` writes the program file and ``continuous`` parses it; ``ONE_CHANNEL`` and
``TWO_CHANNELS`` are the parsed defaults (60 s at 20 Hz, full intensity). Tests pass what
differs (duration, frequency, intensity, channels and their sites, and the name where a test
reads it back); a program whose shape differs on purpose (several segments, per-channel
segments, a bad file) stays in its own test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from waveforms.files import parse_program
from waveforms.program import Program

#: channel A on the left ST6/ST7 pair
LEFT = {"A": ("ST6-L", "ST7-L")}
#: channel A on the left ST6/ST7 pair, channel B on the right one
#: two channels on one side of the face: a pair across the head (left to right) is refused on
#: devices whose outputs are not isolated from each other (every simulator but the ET-312)
BOTH = {"A": ("ST6-L", "ST7-L"), "B": ("SI19-L", "ST5-L")}
#: two channels on the left forearm and hand: no head ceiling applies (an uncalibrated device
#: keeps head, face and neck sites at 25 % of its scale), so a test may use the device's scale
ARMS = {"A": ("PC6-L", "TE5-L"), "B": ("LI11-L", "LI4-L")}


def continuous_toml(
    *,
    name: str = "test",
    title: str = "Test",
    duration_s: float = 60,
    frequency_hz: float = 20,
    pulse_width_us: float = 200,
    intensity: float = 1.0,
    channels: Mapping[str, tuple[str, ...]] = LEFT,
) -> str:
    """A program file: one continuous segment that every channel plays."""
    blocks = "".join(
        f'\n[[channels]]\nname = "{channel}"\nsites = [{", ".join(map(_quoted, sites))}]\n'
        for channel, sites in channels.items()
    )
    return f"""
[program]
name = "{name}"
title = "{title}"
indication = "tests"
electrode = "pad"

[[segments]]
kind = "continuous"
duration_s = {duration_s:g}
frequency_hz = {frequency_hz:g}
pulse_width_us = {pulse_width_us:g}
intensity = {float(intensity)!r}
{blocks}"""


def _quoted(text: str) -> str:
    return f'"{text}"'


def continuous(**kwargs: Any) -> Program:
    """``continuous_toml(**kwargs)``, parsed."""
    return parse_program(continuous_toml(**kwargs))


#: one channel (A), 60 s at 20 Hz, full intensity
ONE_CHANNEL = continuous()
#: two channels (A and B), 60 s at 20 Hz, full intensity
TWO_CHANNELS = continuous(channels=BOTH)
