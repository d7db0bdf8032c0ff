"""Small building blocks shared by the panels: a titled card and a banner label."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


class Card(QFrame):
    """A white panel with a small uppercase title; put content in ``body``."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(14, 10, 14, 12)
        self.body.setSpacing(8)
        self.title = QLabel(title.upper())
        self.title.setObjectName("cardTitle")
        if title:
            self.body.addWidget(self.title)
        else:
            self.title.hide()


class Banner(QLabel):
    """A one-line message with a tone: ok, info, warn or danger."""

    def __init__(self, parent: QWidget | None = None, *, reserve_lines: int = 0) -> None:
        """``reserve_lines``: keep room for that many lines when empty, so that nothing below
        moves when a message appears (0: the banner hides when empty)."""
        super().__init__(parent)
        self.setObjectName("banner")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tone = "info"
        self.reserve_lines = reserve_lines
        if reserve_lines:
            line = self.fontMetrics().lineSpacing()
            self.setMinimumHeight(reserve_lines * line + 18)  # + the padding of the style
        self._restyle("empty" if reserve_lines else "info")
        self.setVisible(bool(reserve_lines))

    def _restyle(self, tone: str) -> None:
        self.setProperty("tone", tone)
        # a dynamic property only restyles after a re-polish
        self.style().unpolish(self)
        self.style().polish(self)

    def show_message(self, text: str, tone: str = "info") -> None:
        self.tone = tone
        self.setText(text)
        self._restyle(tone if text else "empty")
        self.setVisible(bool(text) or bool(self.reserve_lines))

    def clear_message(self) -> None:
        self.setText("")
        self._restyle("empty")
        self.setVisible(bool(self.reserve_lines))

    @property
    def showing(self) -> bool:
        """A message is shown (a reserved, empty banner is not)."""
        return bool(self.text()) and self.isVisible()


def set_colour(label: QLabel, colour: str) -> None:
    """Colour a label's text; restyles only on a change (a style sheet is costly to apply and
    some labels are updated 30 times a second)."""
    if label.property("colour") != colour:
        label.setProperty("colour", colour)
        label.setStyleSheet(f"color: {colour};")


def muted(text: str = "", parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("muted")
    label.setWordWrap(True)
    return label


def value_label(text: str = "—", parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("value")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label
