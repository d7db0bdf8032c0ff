"""The records store's one error type.

Every failure of the store reaches the user as one ``RecordsError`` line: what failed, which
file, and what to do. This module never imports ``sqlite3`` and never touches a file.
"""

from __future__ import annotations

from waveforms.errors import AcustimError

__all__ = ["RecordsError"]


class RecordsError(AcustimError):
    """The records store cannot be opened, read or written; the message says which file and why."""
