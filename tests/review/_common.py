"""Shared bits of the review tests: a one-channel-pair program and a virtual-time engine."""

from __future__ import annotations

from waveforms.files import parse_program

PROGRAM = """
[program]
name = "review"
title = "Review"
indication = "tests"
electrode = "pad"

[[segments]]
kind = "continuous"
duration_s = 60
frequency_hz = 20
pulse_width_us = 200
intensity = 1.0

[[channels]]
name = "A"
sites = ["ST6-L", "ST7-L"]

[[channels]]
name = "B"
sites = ["ST6-R", "ST7-R"]
"""


def program():  # type: ignore[no-untyped-def]
    return parse_program(PROGRAM)
