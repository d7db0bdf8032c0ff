"""Colours, fonts and the style sheet: one calm, clinical look for every panel.

Channel colours are the Okabe-Ito palette (told apart with the common colour-vision
deficiencies); red is kept for STOP and faults only. Never holds state and never talks to the
engine.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

INK = "#1f2a33"  # body text
MUTED = "#5b6873"  # secondary text
FAINT = "#8a96a0"  # axes, hints
LINE = "#d5dce1"  # borders
PANEL = "#ffffff"
CANVAS = "#eef2f4"
ACCENT = "#1d6b8a"
OK = "#2e7d4f"
WARN_BG = "#fff4d6"
WARN_INK = "#7a5200"
DANGER = "#c62828"
DANGER_DARK = "#9f1c1c"
DANGER_BG = "#fdecea"

#: one colour per channel, in program order (Okabe-Ito: blue, orange, green, purple, ...)
CHANNEL_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def channel_colour(index: int) -> str:
    return CHANNEL_COLOURS[index % len(CHANNEL_COLOURS)]


def qcolour(hex_colour: str, alpha: int = 255) -> QColor:
    colour = QColor(hex_colour)
    colour.setAlpha(alpha)
    return colour


STYLE_SHEET = f"""
QMainWindow, QWidget#central {{ background: {CANVAS}; }}
QWidget {{ color: {INK}; }}
QFrame#card {{
    background: {PANEL};
    border: 1px solid {LINE};
    border-radius: 8px;
}}
QLabel#cardTitle {{
    font-weight: 600;
    color: {MUTED};
    letter-spacing: 0.5px;
}}
QLabel#muted {{ color: {MUTED}; }}
QLabel#big {{ font-size: 22pt; font-weight: 600; }}
QLabel#clock {{ font-size: 24pt; font-weight: 600; }}
QLabel#value {{ font-weight: 600; }}
QLabel#warning {{
    background: {WARN_BG};
    color: {WARN_INK};
    border: 1px solid #e8c66a;
    border-radius: 6px;
    padding: 6px 8px;
}}
QLabel#banner {{
    border-radius: 6px;
    padding: 8px 10px;
    font-weight: 600;
}}
QLabel#banner[tone="empty"] {{ background: transparent; border: 1px solid transparent; }}
QLabel#banner[tone="ok"] {{ background: #e6f3ea; color: {OK}; border: 1px solid #b9dcc5; }}
QLabel#banner[tone="info"] {{ background: #e7f0f5; color: {ACCENT}; border: 1px solid #bcd3df; }}
QLabel#banner[tone="warn"] {{ background: {WARN_BG}; color: {WARN_INK};
    border: 1px solid #e8c66a; }}
QLabel#banner[tone="danger"] {{ background: {DANGER_BG}; color: {DANGER_DARK};
    border: 1px solid #f0b4b0; }}
QPushButton {{
    background: {PANEL};
    border: 1px solid #b9c4cc;
    border-radius: 6px;
    padding: 6px 14px;
    min-height: 22px;
}}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:focus {{ border: 2px solid {ACCENT}; }}
QPushButton:disabled {{ color: #a3adb5; background: #f4f6f7; border-color: #dde3e7; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border: 1px solid {ACCENT};
    font-weight: 600; }}
QPushButton#primary:disabled {{ background: #a9c3cf; border-color: #a9c3cf; color: #eef4f7; }}
QPushButton#stop {{
    background: {DANGER};
    color: white;
    border: 2px solid {DANGER_DARK};
    border-radius: 10px;
    font-size: 20pt;
    font-weight: 700;
    letter-spacing: 2px;
}}
QPushButton#stop:hover {{ background: #d63434; }}
QPushButton#stop:pressed {{ background: {DANGER_DARK}; }}
QPushButton#stop:focus {{ border: 3px solid #5c0f0f; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{
    padding: 6px 12px;
    color: {MUTED};
    border: none;
    border-bottom: 2px solid transparent;
}}
QTabBar::tab:selected {{ color: {INK}; border-bottom: 2px solid {ACCENT}; }}
QListWidget, QTextBrowser, QTableWidget {{
    background: {PANEL};
    border: 1px solid {LINE};
    border-radius: 6px;
}}
QHeaderView::section {{
    background: #f3f6f8;
    color: {MUTED};
    border: none;
    border-bottom: 1px solid {LINE};
    padding: 4px 6px;
}}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {LINE}; color: {MUTED}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 10px; }}
QProgressBar {{
    background: #eef2f4;
    border: none;
    border-radius: 4px;
    text-align: center;
    color: {INK};
    max-height: 14px;
}}
QProgressBar::chunk {{ border-radius: 4px; }}
QToolTip {{ background: {PANEL}; color: {INK}; border: 1px solid {LINE}; padding: 6px; }}
"""


def slider_style(colour: str) -> str:
    """A level slider in a channel's colour: the filled part shows the target."""
    return f"""
QSlider {{ min-height: 26px; }}
QSlider::groove:horizontal {{ height: 6px; background: #dfe5e9; border-radius: 3px; }}
QSlider::sub-page:horizontal {{ background: {colour}; border-radius: 3px; }}
QSlider::handle:horizontal {{
    background: white; border: 2px solid {colour};
    width: 16px; height: 16px; margin: -7px 0; border-radius: 10px;
}}
QSlider::handle:horizontal:focus {{ border: 3px solid {INK}; }}
QSlider::sub-page:horizontal:disabled {{ background: #c9d1d6; }}
QSlider::handle:horizontal:disabled {{ border-color: #c9d1d6; }}
"""


def palette() -> QPalette:
    """A light Fusion palette: white fields on a pale canvas, the accent for selection."""
    p = QPalette()
    role = QPalette.ColorRole
    p.setColor(role.Window, QColor(CANVAS))
    p.setColor(role.WindowText, QColor(INK))
    p.setColor(role.Base, QColor(PANEL))
    p.setColor(role.AlternateBase, QColor("#f5f7f8"))
    p.setColor(role.Text, QColor(INK))
    p.setColor(role.Button, QColor(PANEL))
    p.setColor(role.ButtonText, QColor(INK))
    p.setColor(role.Highlight, QColor(ACCENT))
    p.setColor(role.HighlightedText, QColor("white"))
    p.setColor(role.ToolTipBase, QColor(PANEL))
    p.setColor(role.ToolTipText, QColor(INK))
    p.setColor(role.PlaceholderText, QColor(FAINT))
    p.setColor(role.Link, QColor(ACCENT))
    disabled = QPalette.ColorGroup.Disabled
    for r in (role.Text, role.ButtonText, role.WindowText):
        p.setColor(disabled, r, QColor("#a3adb5"))
    return p


def apply(app: QApplication) -> None:
    """The house style on the whole application."""
    app.setStyle("Fusion")
    app.setPalette(palette())
    font = QFont(app.font())
    font.setPointSizeF(10.0)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
