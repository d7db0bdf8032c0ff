"""The placement map: a program's electrode sites on a face/head (or whole-body) diagram.

A front view, as the practitioner facing the patient sees it: the patient's RIGHT is on the
viewer's LEFT, and the map says so. Sites are labelled dots; a line joins the sites of each
channel in that channel's colour. Points come from ``waveforms.acupoints``; a site that is not
in the catalogue is listed under the map instead of being guessed.

Drawing only: never judges a placement (that is ``safety``) and never talks to the engine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QHelpEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from acustim import SIDE_NAMES, Acupoint, AcupointError, Program, Side, parse_site
from gui import theme

Diagram = Literal["face", "body"]

# The whole-body outline, the viewer's right half (the patient's left): from the neck down the
# outside of the arm, back up its inside, down the flank and the leg, to the crotch. The other
# half is its mirror image. Acupoint body_xy positions are placed on this figure.
# fmt: off
_BODY_HALF: list[tuple[float, float]] = [
    (0.525, 0.11), (0.525, 0.13), (0.60, 0.145), (0.625, 0.17),   # neck, shoulder
    (0.66, 0.33), (0.685, 0.47), (0.70, 0.50), (0.69, 0.54),      # outer arm, hand
    (0.67, 0.535), (0.665, 0.48), (0.64, 0.34), (0.60, 0.22),     # inner arm to the armpit
    (0.59, 0.30), (0.575, 0.36), (0.595, 0.47),                   # flank, waist, hip
    (0.59, 0.60), (0.58, 0.71), (0.575, 0.80), (0.56, 0.93),      # outer leg to the ankle
    (0.575, 0.965), (0.53, 0.975), (0.52, 0.93),                  # foot
    (0.515, 0.80), (0.515, 0.71), (0.51, 0.55), (0.5, 0.52),      # inner leg, crotch
]
# fmt: on

_OUTLINE = "#9aa6af"
_FEATURE = "#c3cbd1"
_SKIN = "#f7f3ef"


@dataclass(frozen=True)
class Site:
    """One electrode site of one channel, placed on the diagram (``xy`` None if unplaced)."""

    channel: str
    colour: str
    text: str  # as the program writes it, e.g. "ST6-L"
    point: Acupoint | None
    side: Side | None
    xy: tuple[float, float] | None


def body_path(square: QRectF) -> QPainterPath:
    """The whole-body figure (outline and head) mapped onto ``square``."""
    half = _BODY_HALF
    points = half + [(1.0 - x, y) for x, y in reversed(half[:-1])]

    def at(x: float, y: float) -> QPointF:
        return QPointF(square.left() + x * square.width(), square.top() + y * square.height())

    path = QPainterPath(at(*points[0]))
    for x, y in points[1:]:
        path.lineTo(at(x, y))
    path.closeSubpath()
    path.addEllipse(at(0.5, 0.065), 0.04 * square.width(), 0.05 * square.height())
    return path


def place_sites(program: Program, colours: list[str]) -> tuple[Diagram, list[Site]]:
    """Choose the diagram and place every site of ``program`` on it (pure, testable)."""
    parsed: list[tuple[str, str, str, Acupoint | None, Side | None]] = []
    for k, channel in enumerate(program.channels):
        colour = colours[k % len(colours)]
        for text in channel.sites:
            try:
                point, side = parse_site(text)
            except AcupointError:
                parsed.append((channel.name, colour, text, None, None))
                continue
            parsed.append((channel.name, colour, text, point, side))
    known = [p for p in parsed if p[3] is not None]
    on_face = all(p[3] is not None and p[3].face_xy is not None for p in known)
    diagram: Diagram = "face" if known and on_face else "body"
    sites = [
        Site(
            name,
            colour,
            text,
            point,
            side,
            point.position(diagram, side) if point is not None and side is not None else None,
        )
        for name, colour, text, point, side in parsed
    ]
    return diagram, sites


class FaceMap(QWidget):
    """Paints the sites of one program; hover a dot for the point's name and location."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(260, 300)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.diagram: Diagram = "face"
        self.sites: list[Site] = []
        self.title = ""
        self._dots: list[tuple[QPointF, Site]] = []

    def sizeHint(self) -> QSize:
        return QSize(340, 400)

    def set_program(self, program: Program | None, colours: list[str]) -> None:
        if program is None:
            self.diagram, self.sites, self.title = "face", [], ""
        else:
            self.diagram, self.sites = place_sites(program, colours)
            self.title = program.title
        self.update()

    @property
    def unplaced(self) -> list[Site]:
        return [s for s in self.sites if s.xy is None]

    # --- geometry ---------------------------------------------------------------------------
    def _square(self) -> QRectF:
        """The unit square of the diagram, in widget pixels (leaves room for the side labels
        above and the legend below)."""
        top, bottom = 30.0, 22.0 + 18.0 * max(1, len({s.channel for s in self.sites}))
        if self.unplaced:
            bottom += 18.0
        side = max(50.0, min(self.width() - 24.0, self.height() - top - bottom))
        x = (self.width() - side) / 2.0
        return QRectF(x, top, side, side)

    @staticmethod
    def _map(square: QRectF, x: float, y: float) -> QPointF:
        return QPointF(square.left() + x * square.width(), square.top() + y * square.height())

    # --- painting ---------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            square = self._square()
            self._paint_orientation(painter, square)
            if self.diagram == "face":
                self._paint_face(painter, square)
            else:
                self._paint_body(painter, square)
            self._paint_sites(painter, square)
            self._paint_legend(painter, square)
        finally:
            painter.end()

    def _paint_orientation(self, painter: QPainter, square: QRectF) -> None:
        painter.setPen(QColor(theme.MUTED))
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() - 0.5)
        painter.setFont(font)
        row = QRectF(8, 6, self.width() - 16, 20)
        painter.drawText(row, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "◀ R")
        painter.drawText(row, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, "L ▶")
        painter.setPen(QColor(theme.FAINT))
        painter.drawText(
            row,
            Qt.AlignmentFlag.AlignCenter,
            "front view: patient's right on your left",
        )

    def _paint_face(self, painter: QPainter, sq: QRectF) -> None:
        def p(x: float, y: float) -> QPointF:
            return self._map(sq, x, y)

        # neck first, so the face outline covers its top
        neck = QPainterPath(p(0.36, 0.80))
        neck.cubicTo(p(0.37, 0.90), p(0.35, 0.96), p(0.30, 1.0))
        neck.moveTo(p(0.64, 0.80))
        neck.cubicTo(p(0.63, 0.90), p(0.65, 0.96), p(0.70, 1.0))
        painter.setPen(QPen(QColor(_OUTLINE), 1.6))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(neck)

        # ears, behind the face outline
        painter.setBrush(QColor(_SKIN))
        for mirror in (False, True):
            ear = QPainterPath(self._mx(sq, 0.80, 0.40, mirror))
            ear.cubicTo(
                self._mx(sq, 0.87, 0.36, mirror),
                self._mx(sq, 0.90, 0.45, mirror),
                self._mx(sq, 0.87, 0.53, mirror),
            )
            ear.cubicTo(
                self._mx(sq, 0.85, 0.58, mirror),
                self._mx(sq, 0.82, 0.60, mirror),
                self._mx(sq, 0.80, 0.57, mirror),
            )
            painter.drawPath(ear)

        face = QPainterPath(p(0.5, 0.04))
        face.cubicTo(p(0.70, 0.04), p(0.80, 0.16), p(0.805, 0.34))
        face.cubicTo(p(0.81, 0.46), p(0.80, 0.56), p(0.77, 0.66))
        face.cubicTo(p(0.73, 0.78), p(0.62, 0.87), p(0.5, 0.88))
        face.cubicTo(p(0.38, 0.87), p(0.27, 0.78), p(0.23, 0.66))
        face.cubicTo(p(0.20, 0.56), p(0.19, 0.46), p(0.195, 0.34))
        face.cubicTo(p(0.20, 0.16), p(0.30, 0.04), p(0.5, 0.04))
        painter.setBrush(QColor(_SKIN))
        painter.setPen(QPen(QColor(_OUTLINE), 1.8))
        painter.drawPath(face)

        features = QPen(QColor(_FEATURE), 1.4)
        features.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(features)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for mirror in (False, True):
            brow = QPainterPath(self._mx(sq, 0.56, 0.355, mirror))
            brow.quadTo(self._mx(sq, 0.64, 0.32, mirror), self._mx(sq, 0.72, 0.35, mirror))
            painter.drawPath(brow)
            eye = QPainterPath(self._mx(sq, 0.57, 0.42, mirror))
            eye.quadTo(self._mx(sq, 0.635, 0.385, mirror), self._mx(sq, 0.70, 0.42, mirror))
            eye.quadTo(self._mx(sq, 0.635, 0.445, mirror), self._mx(sq, 0.57, 0.42, mirror))
            painter.drawPath(eye)
        nose = QPainterPath(p(0.5, 0.44))
        nose.cubicTo(p(0.49, 0.52), p(0.46, 0.57), p(0.455, 0.595))
        nose.quadTo(p(0.5, 0.625), p(0.545, 0.595))
        painter.drawPath(nose)
        mouth = QPainterPath(p(0.43, 0.71))
        mouth.quadTo(p(0.5, 0.735), p(0.57, 0.71))
        painter.drawPath(mouth)

    def _paint_body(self, painter: QPainter, sq: QRectF) -> None:
        pen = QPen(QColor(_OUTLINE), 1.6)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        painter.setBrush(QColor(_SKIN))
        painter.drawPath(body_path(sq))

    def _mx(self, sq: QRectF, x: float, y: float, mirror: bool) -> QPointF:
        return self._map(sq, 1.0 - x if mirror else x, y)

    def _paint_sites(self, painter: QPainter, sq: QRectF) -> None:
        self._dots = []
        by_channel: dict[str, list[Site]] = {}
        for s in self.sites:
            by_channel.setdefault(s.channel, []).append(s)
        # the pair lines first, so the dots sit on top
        for sites in by_channel.values():
            placed = [s for s in sites if s.xy is not None]
            if len(placed) < 2:
                continue
            pen = QPen(theme.qcolour(placed[0].colour, 210), 3.0)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(pen)
            for a, b in itertools.pairwise(placed):
                assert a.xy is not None and b.xy is not None
                painter.drawLine(self._map(sq, *a.xy), self._map(sq, *b.xy))
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        labels: list[tuple[QRectF, str, str]] = []
        radius = max(5.0, sq.width() * 0.016)
        for s in self.sites:
            if s.xy is None:
                continue
            centre = self._map(sq, *s.xy)
            self._dots.append((centre, s))
            painter.setPen(QPen(QColor("white"), 2.0))
            painter.setBrush(QColor(s.colour))
            painter.drawEllipse(centre, radius, radius)
            text = s.point.code if s.point is not None else s.text
            width = metrics.horizontalAdvance(text) + 6
            height = metrics.height()
            outward = s.xy[0] >= 0.5
            x = centre.x() + radius + 4 if outward else centre.x() - radius - 4 - width
            labels.append((QRectF(x, centre.y() - height / 2, width, height), text, s.colour))
        for rect, text, colour in _spread(labels):
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(255, 255, 255, 225))
            painter.drawRoundedRect(rect, 3, 3)
            painter.setPen(QColor(colour).darker(125))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_legend(self, painter: QPainter, sq: QRectF) -> None:
        font = QFont(self.font())
        painter.setFont(font)
        y = sq.bottom() + 8
        channels: dict[str, list[Site]] = {}
        for s in self.sites:
            channels.setdefault(s.channel, []).append(s)
        for name, sites in channels.items():
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(sites[0].colour))
            painter.drawRoundedRect(QRectF(12, y + 3, 12, 12), 3, 3)
            painter.setPen(QColor(theme.INK))
            text = f"{name}   " + "  —  ".join(_site_name(s) for s in sites)
            painter.drawText(
                QRectF(30, y, self.width() - 40, 18),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
            y += 18
        if self.unplaced:
            painter.setPen(QColor(theme.WARN_INK))
            painter.drawText(
                QRectF(12, y, self.width() - 24, 18),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                "Not on this map: " + ", ".join(s.text for s in self.unplaced),
            )

    # --- hover -----------------------------------------------------------------------------
    def site_at(self, pos: QPointF, tolerance: float = 12.0) -> Site | None:
        best: tuple[float, Site] | None = None
        for centre, site in self._dots:
            d = (centre - pos).manhattanLength()
            if d <= tolerance and (best is None or d < best[0]):
                best = (d, site)
        return best[1] if best else None

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            site = self.site_at(QPointF(event.pos()))
            if site is not None and site.point is not None:
                QToolTip.showText(event.globalPos(), tooltip(site), self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


def _site_name(site: Site) -> str:
    if site.point is None:
        return f"{site.text} (not catalogued)"
    side = SIDE_NAMES.get(site.side or "", "")
    return f"{site.point.code} {site.point.pinyin} ({side})"


def tooltip(site: Site) -> str:
    """Rich text for hovering a site: name, side, channel, location, cautions."""
    point = site.point
    if point is None:
        return site.text
    side = SIDE_NAMES.get(site.side or "", "")
    parts = [
        f"<b>{point.code} {point.pinyin}</b> {point.chinese} · {side} · channel {site.channel}",
        point.location,
    ]
    parts += [f"⚠ {c}" for c in point.cautions]
    return "<br>".join(parts)


def _spread(labels: list[tuple[QRectF, str, str]]) -> list[tuple[QRectF, str, str]]:
    """Push overlapping labels apart: each label moves down below any label it would cover."""
    placed: list[QRectF] = []
    out: list[tuple[QRectF, str, str]] = []
    for rect, text, colour in sorted(labels, key=lambda item: item[0].top()):
        r = QRectF(rect)
        moved = True
        while moved:
            moved = False
            for other in placed:
                if r.intersects(other):
                    r.moveTop(other.bottom() + 1)
                    moved = True
        placed.append(r)
        out.append((r, text, colour))
    return out
