"""``python -m gui``: open the practitioner's window (``--help`` for the options)."""

from __future__ import annotations

import sys

from gui.app import main

if __name__ == "__main__":
    sys.exit(main())
