"""WHAT to deliver: the program model, EA segment kinds, rendering, and the built-in library.

Never talks to devices and never decides what is safe.
"""

from waveforms.errors import AcustimError, ProgramError
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
    "Segment",
]
