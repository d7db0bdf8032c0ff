"""WHAT to deliver: the program model, EA segment kinds, rendering, and the built-in library.

Never talks to devices and never decides what is safe.
"""

from waveforms.builtin import builtin_names, builtin_programs, load_builtin
from waveforms.errors import AcustimError, ProgramError
from waveforms.files import load_program, parse_program, validate_program
from waveforms.program import (
    Channel,
    ChannelDemand,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    Ramp,
    Segment,
)
from waveforms.render import Rendered, render, segment_at

__all__ = [
    "AcustimError",
    "Channel",
    "ChannelDemand",
    "Continuous",
    "DenseDisperse",
    "Intermittent",
    "Program",
    "ProgramError",
    "Ramp",
    "Rendered",
    "Segment",
    "builtin_names",
    "builtin_programs",
    "load_builtin",
    "load_program",
    "parse_program",
    "render",
    "segment_at",
    "validate_program",
]
