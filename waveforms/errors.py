"""The root of acustim's error hierarchy, and the error for bad program files.

Lives in ``waveforms`` because it is the bottom layer that every other package may import.
Messages say what was wrong, where (file:line where there is a file) and what is allowed;
the CLI prints them as one line and never as a traceback.
"""

from __future__ import annotations


class AcustimError(Exception):
    """Root of every error acustim raises on purpose."""


class ProgramError(AcustimError):
    """A program (file or value) is invalid: the message names the place, field and range."""
