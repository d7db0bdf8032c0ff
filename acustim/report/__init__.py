"""Session reports: what one session delivered, built from the records store, as HTML or PDF.

``build_report(store, session_id)`` reads the session row, every stored frame and every event
and makes a ``Report``: the STRICTA items that apply (``../shared/reference/safety.md``
section 6), per channel the electrical characterisation computed from the frames (waveform and
mode, frequency, pulse width, level history, and, where the device profile is calibrated, peak
and rms current, charge per phase and current density with ``safety.electrical``), the device's
own reports, the events, and plots of output and frequency over the session as SVG.
``render_html`` makes one self-contained page; ``render_pdf`` lays the same page out with Qt's
own PDF writer (``QTextDocument`` on a ``QPdfWriter``, plots drawn by ``QSvgRenderer``).
``write_html`` / ``write_pdf`` write it readable by its owner only (0600), whole or not at all.

Every value says where it came from: the recorded frames, the session record, or the device
profile's calibration; without a calibration the report says "uncalibrated" and gives device
units only. It never guesses a current.

Never writes to the store, never talks to a device, never loads anything from the network:
the HTML holds its plots and style inline and forbids loading anything (Content-Security-Policy).

One module per job (each one's docstring says what it must never do):

- ``model``: the frozen ``Report`` and its parts, ``ReportError``.
- ``build``: ``build_report``, the only module that reads the store (and only reads it).
- ``analysis``: calibration and per-channel electrical characterisation from the frames.
- ``stricta``: the STRICTA items.
- ``svg``: the plots, as SVG.
- ``text``: clocks, local times, record values as text, escaping.
- ``html``: the HTML page.
- ``pdf``: the PDF; the only module that imports Qt, and only when a PDF is made.
- ``files``: checking output paths and writing files 0600, whole or not at all.
- ``course``: the course view of a treatment course (plan, outcome plots over the sessions,
  sessions, adverse events), built, laid out as HTML and written; a PDF through ``pdf``.
"""

from __future__ import annotations

from acustim.report.build import build_report
from acustim.report.files import check_output_path, write_html, write_pdf, write_private_file
from acustim.report.html import render_html
from acustim.report.model import (
    DEVICE_REPORT_KINDS,
    CalibrationInfo,
    ChannelReport,
    FrequencyShare,
    LevelStep,
    Plot,
    Report,
    ReportError,
    StrictaItem,
    WaveformPhase,
)
from acustim.report.pdf import render_pdf

__all__ = [
    "DEVICE_REPORT_KINDS",
    "CalibrationInfo",
    "ChannelReport",
    "FrequencyShare",
    "LevelStep",
    "Plot",
    "Report",
    "ReportError",
    "StrictaItem",
    "WaveformPhase",
    "build_report",
    "check_output_path",
    "render_html",
    "render_pdf",
    "write_html",
    "write_pdf",
    "write_private_file",
]
