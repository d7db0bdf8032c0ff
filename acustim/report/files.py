"""Writing reports to files: a path is checked before a report is built, and a report (or an
export, ``acustim.export``) is written readable by its owner only (0600), whole or not at all
(a temporary file next to the target, then renamed).

Writes only the file it is given: never the records store, never anything else. It lays
nothing out itself (``html``, ``pdf``) and imports no Qt (``write_pdf`` calls ``pdf``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from acustim.report.html import render_html
from acustim.report.model import Report, ReportError
from acustim.report.pdf import render_pdf

__all__ = ["check_output_path", "write_html", "write_pdf", "write_private_file"]


def check_output_path(path: Path) -> Path:
    """``path`` (with ``~`` expanded) if a file can be written there, else ReportError saying
    why; checked before a report is built, so a typo fails at once."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ReportError(f"cannot write {target}: it is a directory; give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise ReportError(
            f"cannot write {target}: the directory {parent} does not exist"
            if not parent.exists()
            else f"cannot write {target}: {parent} is not a directory"
        )
    return target


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600), whole or not at all
    (a temporary file next to it, then renamed). ReportError in one line if it cannot."""
    target = check_output_path(path)
    parent = target.parent
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
        with os.fdopen(fd, "wb") as fh:  # mkstemp made it 0600
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise ReportError(
            f"cannot write {target} ({exc.strerror or exc}): choose a file in a directory you"
            " can write"
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_html(report: Report, path: Path) -> None:
    """Write the HTML report, mode 0600."""
    write_private_file(path, render_html(report).encode("utf-8"))


def write_pdf(report: Report, path: Path) -> None:
    """Write the PDF report, mode 0600."""
    write_private_file(path, render_pdf(report))
