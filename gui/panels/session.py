"""The session header: state, the program clock with the time left, progress over the
program's segments, Start, Pause, Resume and the STOP button (always in view, always enabled).

Emits what the practitioner asks for; shows what the session status says. The clock is the
program's own (it stands still during a pause, so "of" and "left" agree with what is still to
run); the time since Start, pauses included, is shown under it. The STOP button is one of three
ways to stop (with Space and Esc, which the window routes to STOP and to nothing else).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from acustim import Program, SessionStatus
from gui import theme
from gui.panels.common import Banner, Card, muted, set_colour
from gui.panels.program import KIND_NAMES, clock

KIND_COLOURS = {
    "ramp": "#c9dfe7",
    "continuous": "#6fa8bf",
    "dense_disperse": "#3f86a3",
    "intermittent": "#93bccc",
}

STATE_TEXT = {
    "idle": ("Ready", theme.MUTED),
    "connecting": ("Starting…", theme.ACCENT),
    "running": ("Running", theme.OK),
    "paused": ("Paused", theme.WARN_INK),
    "ending": ("Ending…", theme.ACCENT),
    "completed": ("Completed", theme.OK),
    "stopped": ("Stopped", theme.INK),
    "fault": ("Fault", theme.DANGER),
}


class SegmentBar(QWidget):
    """The program's segments as blocks along time, with the elapsed part filled in."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.rows: list[list[tuple[float, float, str, str]]] = []
        self.total_s = 0.0
        self.position_s = 0.0

    def sizeHint(self) -> QSize:
        return QSize(400, 34)

    def set_program(self, program: Program | None) -> None:
        self.rows = []
        self.total_s = program.duration_s if program is not None else 0.0
        if program is not None:
            seen: list[list[tuple[float, float, str, str]]] = []
            for channel in program.channels:
                row: list[tuple[float, float, str, str]] = []
                t = 0.0
                for seg in channel.segments:
                    row.append((t, seg.duration_s, seg.kind, seg.label or KIND_NAMES[seg.kind]))
                    t += seg.duration_s
                if row not in seen:  # channels with the same timeline share one row
                    seen.append(row)
            self.rows = seen
        self.setFixedHeight(14 + 20 * max(1, len(self.rows)))
        self.position_s = 0.0
        self.update()

    def set_position(self, program_s: float) -> None:
        if abs(program_s - self.position_s) > 1e-3:
            self.position_s = program_s
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            if not self.rows or self.total_s <= 0:
                painter.setPen(QColor(theme.FAINT))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no program")
                return
            width = self.width() - 2.0
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() - 1)
            painter.setFont(font)
            for r, row in enumerate(self.rows):
                top = 2.0 + r * 20.0
                for start, duration, kind, label in row:
                    x = 1.0 + width * start / self.total_s
                    w = max(1.0, width * duration / self.total_s - 1.0)
                    rect = QRectF(x, top, w, 18.0)
                    base = QColor(KIND_COLOURS.get(kind, "#9fbfcc"))
                    faded = QColor(base)
                    faded.setAlpha(90)
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(faded)
                    painter.drawRoundedRect(rect, 3, 3)
                    done = min(max(self.position_s - start, 0.0), duration)
                    if done > 0:
                        filled = QRectF(x, top, w * done / duration, 18.0)
                        painter.setBrush(base)
                        painter.drawRoundedRect(filled, 3, 3)
                    text_rect = rect.adjusted(4, 0, -4, 0)
                    metrics = painter.fontMetrics()
                    if metrics.horizontalAdvance(label) < text_rect.width():
                        painter.setPen(QColor(theme.INK))
                        painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, label)
            x = 1.0 + width * min(self.position_s, self.total_s) / self.total_s
            painter.setPen(QPen(QColor(theme.INK), 2))
            painter.drawLine(int(x), 0, int(x), int(2 + 20 * len(self.rows)))
        finally:
            painter.end()


class StopButton(QPushButton):
    """The big red STOP with its keys written under it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stop")
        self.setMinimumSize(190, 78)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Emergency stop")
        self.setToolTip("Stop all output now and end the session (Space or Esc, anywhere)")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(0)
        big = QLabel("STOP")
        big.setAlignment(Qt.AlignmentFlag.AlignCenter)
        big.setStyleSheet(
            "color: white; font-size: 22pt; font-weight: 800; letter-spacing: 3px;"
            "background: transparent;"
        )
        small = QLabel("Space  ·  Esc")
        small.setAlignment(Qt.AlignmentFlag.AlignCenter)
        small.setStyleSheet("color: #ffe3e0; font-size: 9pt; background: transparent;")
        for label in (big, small):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            layout.addWidget(label)

    def sizeHint(self) -> QSize:
        return QSize(190, 78)


class SessionHeader(Card):
    start_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.body.setContentsMargins(16, 12, 12, 12)
        row = QHBoxLayout()
        row.setSpacing(18)

        left = QVBoxLayout()
        left.setSpacing(2)
        self.state = QLabel("Ready")
        self.state.setObjectName("big")
        self.program = muted("")
        left.addWidget(self.state)
        left.addWidget(self.program)
        row.addLayout(left)

        timer = QVBoxLayout()
        timer.setSpacing(0)
        self.clock = QLabel("00:00")
        self.clock.setObjectName("clock")
        self.clock.setToolTip("Program time run so far (stands still while paused)")
        self.remaining = muted("of 00:00 · 00:00 left")
        self.remaining.setToolTip("Program length and the time still to run")
        #: the time since Start, pauses included (the window shows it in its status bar)
        self.elapsed = QLabel("")
        self.elapsed.setToolTip("Time since Start, pauses included")
        timer.addWidget(self.clock)
        timer.addWidget(self.remaining)
        row.addLayout(timer)

        middle = QVBoxLayout()
        middle.setSpacing(4)
        self.segment = QLabel("")
        self.segment.setObjectName("value")
        self.bar = SegmentBar()
        middle.addWidget(self.segment)
        middle.addWidget(self.bar)
        row.addLayout(middle, 1)

        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        self.start_button = QPushButton("Start session")
        self.start_button.setObjectName("primary")
        self.start_button.setMinimumWidth(130)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Output to zero now and hold the program")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "Every channel back to its level before the pause, rising slowly from zero "
            "(or raise one channel's level to resume with that channel only)"
        )
        pause_row = QHBoxLayout()
        pause_row.setSpacing(6)
        pause_row.addWidget(self.pause_button)
        pause_row.addWidget(self.resume_button)
        buttons.addWidget(self.start_button)
        buttons.addLayout(pause_row)
        row.addLayout(buttons)

        self.stop_button = StopButton()
        row.addWidget(self.stop_button)
        self.body.addLayout(row)
        self.banner = Banner(reserve_lines=2)
        self.body.addWidget(self.banner)

        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.pause_button.setEnabled(False)
        self.resume_button.setEnabled(False)

    def set_program(self, program: Program | None) -> None:
        """A new program (no session yet): the clock, segment and state start afresh."""
        self.bar.set_program(program)
        self.program.setText(program.title if program is not None else "No program")
        total = program.duration_s if program is not None else 0.0
        self.clock.setText("00:00")
        self.remaining.setText(f"of {clock(total)} · {clock(total)} left")
        self.elapsed.setText("")
        self.segment.setText("")
        self.set_state("idle")

    def set_state(self, state: str) -> None:
        text, colour = STATE_TEXT.get(state, (state.capitalize(), theme.INK))
        self.state.setText(text)
        set_colour(self.state, colour)

    def show_status(self, status: SessionStatus) -> None:
        run = min(status.program_s, status.total_s)
        self.clock.setText(clock(run))
        self.remaining.setText(f"of {clock(status.total_s)} · {clock(status.total_s - run)} left")
        paused = status.elapsed_s - status.program_s
        self.elapsed.setText(
            f"since Start {clock(status.elapsed_s)}"
            + (f" (paused {clock(paused)})" if paused >= 1.0 else "")
        )
        self.bar.set_position(status.program_s)
        labels = list(dict.fromkeys(c.segment for c in status.channels if c.segment))
        self.segment.setText(" · ".join(labels))
