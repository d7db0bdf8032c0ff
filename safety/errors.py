"""Errors raised by the safety core. Every message says what was refused and the allowed range."""

from __future__ import annotations

from waveforms.errors import AcustimError


class SafetyError(AcustimError):
    """Root of the errors the safety core raises."""


class LimitError(SafetyError):
    """A limit would be raised above its parent, or a command exceeds a limit."""


class UnvettedFrameError(SafetyError):
    """Something other than the guard tried to make or send a frame."""
