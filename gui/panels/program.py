"""The program panel: choose a built-in program; see its electrode map, timeline, cautions and
sources. Shows the program; never changes it and never decides whether it is safe."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QTabWidget,
    QTextBrowser,
    QWidget,
)

from acustim import Program, Segment
from gui import theme
from gui.face_map import FaceMap
from gui.panels.common import Card, muted


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def describe_rate(segment: Segment) -> str:
    kind = segment.kind
    if segment.kind == "dense_disperse":
        return (
            f"{segment.low_hz:g} / {segment.high_hz:g} Hz, "
            f"{segment.low_s:g} s / {segment.high_s:g} s"
        )
    if segment.kind == "intermittent":
        return f"{segment.frequency_hz:g} Hz, {segment.on_s:g} s on / {segment.off_s:g} s off"
    assert kind in ("continuous", "ramp")
    return f"{segment.frequency_hz:g} Hz"


def describe_intensity(segment: Segment) -> str:
    if segment.kind == "ramp":
        return f"{segment.intensity_from:.0%} → {segment.intensity_to:.0%}"
    return f"{segment.intensity:.0%}"


KIND_NAMES = {
    "continuous": "continuous",
    "dense_disperse": "dense-disperse",
    "intermittent": "intermittent",
    "ramp": "ramp",
}


class ProgramPanel(Card):
    program_changed = Signal(object)  # Program

    def __init__(self, programs: Sequence[Program], parent: QWidget | None = None) -> None:
        super().__init__("Program", parent)
        self.programs = list(programs)
        self.combo = QComboBox()
        for p in self.programs:
            self.combo.addItem(p.title, p.name)
        self.body.addWidget(self.combo)
        self.summary = muted()
        self.body.addWidget(self.summary)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.face_map = FaceMap()
        self.timeline = QTextBrowser()
        self.timeline.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cautions = QTextBrowser()
        self.cautions.setOpenExternalLinks(True)
        self.sources = QTextBrowser()
        self.sources.setOpenExternalLinks(True)
        self.tabs.addTab(self.face_map, "Placement")
        self.tabs.addTab(self.timeline, "Timeline")
        self.tabs.addTab(self.cautions, "Cautions")
        self.tabs.addTab(self.sources, "Sources")
        self.body.addWidget(self.tabs, 1)
        self.note = QLabel()
        self.note.setObjectName("warning")
        self.note.setWordWrap(True)
        self.note.hide()
        self.body.addWidget(self.note)
        self.program: Program | None = None
        self.combo.currentIndexChanged.connect(self._chosen)

    def add_program(self, program: Program) -> None:
        """Offer a program loaded from a file, next to the built-in ones."""
        if self.combo.findData(program.name) < 0:
            self.programs.append(program)
            self.combo.addItem(f"{program.title} (file)", program.name)

    def select(self, name: str) -> None:
        index = self.combo.findData(name)
        if index >= 0:
            self.combo.setCurrentIndex(index)
            if self.program is None or self.program.name != name:
                self._chosen(index)

    def _chosen(self, index: int) -> None:
        if not 0 <= index < len(self.programs):
            return
        self.show_program(self.programs[index])
        self.program_changed.emit(self.program)

    def show_program(self, program: Program) -> None:
        self.program = program
        colours = [theme.channel_colour(k) for k in range(len(program.channels))]
        self.face_map.set_program(program, colours)
        sites = "; ".join(f"{c.name}: {' - '.join(c.sites)}" for c in program.channels)
        self.summary.setText(
            f"{html.escape(program.indication)}<br>"
            f"<b>{clock(program.duration_s)}</b> · {program.electrode} electrodes · {sites}"
        )
        self._fill_timeline(program)
        items = "".join(f"<li>{html.escape(c)}</li>" for c in program.cautions)
        description = html.escape(program.description.strip()).replace("\n", "<br>")
        self.cautions.setHtml(
            f"<ul style='margin-left:-20px'>{items or '<li>None listed.</li>'}</ul>"
            f"<p style='color:{theme.MUTED}'>{description}</p>"
        )
        sources = "".join(f"<li>{_linkify(s)}</li>" for s in program.sources)
        self.sources.setHtml(f"<ul style='margin-left:-20px'>{sources or '<li>None.</li>'}</ul>")

    def _fill_timeline(self, program: Program) -> None:
        """One row per segment; channels that share a timeline share their rows."""
        groups: list[tuple[list[str], int, tuple[Segment, ...]]] = []
        for k, channel in enumerate(program.channels):
            for names, _, segments in groups:
                if segments == channel.segments:
                    names.append(channel.name)
                    break
            else:
                groups.append(([channel.name], k, channel.segments))
        rows = []
        for names, k, segments in groups:
            colour = theme.channel_colour(k)
            start_s = 0.0
            for seg in segments:
                details = " · ".join(
                    [
                        KIND_NAMES[seg.kind],
                        describe_rate(seg),
                        f"{seg.pulse_width_us:g} µs",
                        describe_intensity(seg),
                    ]
                )
                rows.append(
                    f"<tr><td style='color:{colour}; font-weight:600'>"
                    f"{html.escape(', '.join(names))}</td>"
                    f"<td><b>{html.escape(seg.label or KIND_NAMES[seg.kind])}</b><br>"
                    f"<span style='color:{theme.MUTED}'>{html.escape(details)}</span></td>"
                    f"<td align='right' style='color:{theme.MUTED}'>{clock(start_s)}<br>"
                    f"<b style='color:{theme.INK}'>{clock(seg.duration_s)}</b></td></tr>"
                )
                start_s += seg.duration_s
        self.timeline.setHtml(
            "<table width='100%' cellspacing='0' cellpadding='5'>"
            f"<tr style='color:{theme.MUTED}'><td>Ch</td><td>Segment</td>"
            "<td align='right'>from / length</td></tr>" + "".join(rows) + "</table>"
        )

    def set_device_note(self, text: str) -> None:
        """A note about this program on the connected device (e.g. pulse width not set)."""
        self.note.setText(text)
        self.note.setVisible(bool(text))


def _linkify(text: str) -> str:
    out = []
    for word in text.split(" "):
        if word.startswith(("http://", "https://")):
            url = html.escape(word.rstrip(".,;)"))
            out.append(f"<a href='{url}'>{url}</a>")
        else:
            out.append(html.escape(word))
    return " ".join(out)
