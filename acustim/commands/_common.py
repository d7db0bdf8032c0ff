"""What every command shares: exit codes and the error for a wrong argument."""

from __future__ import annotations

from waveforms.errors import AcustimError

EXIT_OK, EXIT_USAGE, EXIT_FAULT, EXIT_INTERRUPTED = 0, 2, 3, 130


class UsageError(AcustimError):
    """A command-line argument is wrong."""


class Terminated(Exception):
    """SIGTERM: handled like Ctrl-C (zero output at once), exit 143."""
