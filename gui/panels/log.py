"""The event log: session start and end, notices from the safety guard, link events, faults.

Level changes are coalesced (one line per channel while the practitioner keeps adjusting), so
the log stays readable. Shows text only; the session records keep the full history.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

from gui import theme
from gui.panels.common import Card

#: how each notice kind reads: its tone
TONES = {
    "start": "ok",
    "resume": "ok",
    "reconnected": "ok",
    "pause": "warn",
    "stop": "warn",
    "limited": "warn",
    "density_warning": "warn",
    "clamped": "warn",
    "device_level": "warn",
    "reconnect_failed": "warn",
    "time_limit": "info",
    "ended": "info",
    "link_lost": "danger",
    "close_failed": "danger",
    "fault": "danger",
    "error": "danger",
}
TONE_COLOURS = {"ok": theme.OK, "info": theme.INK, "warn": theme.WARN_INK, "danger": theme.DANGER}
MAX_LINES = 500
COALESCE_S = 3.0


class EventLog(Card):
    def __init__(self, parent: QWidget | None = None, *, title: str = "Event log") -> None:
        super().__init__(title, parent)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(False)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.body.addWidget(self.list)
        self._levels: dict[str, tuple[float, QListWidgetItem]] = {}

    def add(
        self, kind: str, message: str, tone: str | None = None, *, channel: str | None = None
    ) -> None:
        """One line; level changes of one channel within ``COALESCE_S`` share a line."""
        now = time.monotonic()
        text = f"{time.strftime('%H:%M:%S')}  {message}"
        if kind == "level" and channel is not None:
            recent = self._levels.get(channel)
            if recent is not None and now - recent[0] < COALESCE_S:
                try:
                    recent[1].setText(text)
                except RuntimeError:  # the line scrolled out of the log
                    pass
                else:
                    self._levels[channel] = (now, recent[1])
                    return
        item = QListWidgetItem(text)
        level = tone or TONES.get(kind, "info")
        item.setForeground(QColor(TONE_COLOURS[level]))
        if level == "danger":
            font = item.font()
            font.setBold(True)
            item.setFont(font)
        self.list.addItem(item)
        while self.list.count() > MAX_LINES:
            self.list.takeItem(0)
        self.list.scrollToBottom()
        if kind == "level" and channel is not None:
            self._levels[channel] = (now, item)

    def lines(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]
