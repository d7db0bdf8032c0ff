"""The report as a PDF: the HTML page of ``html`` laid out on A4 by Qt's own PDF writer
(``QTextDocument`` on a ``QPdfWriter``), the SVG plots rasterised by ``QSvgRenderer``.

The only module of the report that touches Qt, and only inside its functions, so importing
``acustim.report`` loads no Qt. It makes bytes only: it computes nothing about the session,
reads no store and writes no file (``files`` does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from acustim.report.html import CSS, render_html
from acustim.report.model import Plot, Report, ReportError

__all__ = ["layout_pdf", "render_pdf"]

#: the QApplication ``_ensure_qt`` made, if it made one: kept for the life of the process
_qt_app: Any = None


def _ensure_qt() -> None:
    """Qt needs a QGuiApplication for fonts; make one (offscreen when no platform is set) if
    the process has none. A QApplication, so widgets made later in the same process work."""
    global _qt_app
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication

    app = QCoreApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtWidgets import QApplication

        _qt_app = QApplication(["acustim"])
    elif not isinstance(app, QGuiApplication):
        raise ReportError("a PDF needs a Qt GUI application; this process runs a console one")


def render_pdf(report: Report) -> bytes:
    """The report as a PDF (A4), laid out by Qt from the same page as ``render_html``."""
    return layout_pdf(
        title=f"acustim session {report.session.id}",
        creator=f"acustim {report.acustim_version}",
        plots=report.plots,
        page=lambda plot_html: render_html(report, plot_html=plot_html),
        what=f"session {report.session.id}",
    )


def layout_pdf(
    *,
    title: str,
    creator: str,
    plots: Sequence[Plot],
    page: Callable[[Callable[[int, Plot], str]], str],
    what: str,
) -> bytes:
    """An HTML page as a PDF (A4): ``page(plot_html)`` makes the page with each plot shown
    as ``plot_html(i, plot)`` gives it; here, the plot rasterised by Qt. ``what`` names the
    page in errors ("session 12")."""
    _ensure_qt()
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QUrl
    from PySide6.QtGui import (
        QColor,
        QImage,
        QPageLayout,
        QPageSize,
        QPainter,
        QPdfWriter,
        QTextDocument,
    )
    from PySide6.QtSvg import QSvgRenderer

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    # the page is laid out in CSS pixels: at the writer's own 1200 dpi its text would be
    # about 1 pt high, so lay it out at the 96 dpi CSS assumes
    writer.setResolution(96)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(14, 14, 14, 14), QPageLayout.Unit.Millimeter)
    writer.setTitle(title)
    writer.setCreator(creator)
    doc = QTextDocument()
    doc.setDefaultStyleSheet(CSS)
    doc.setDocumentMargin(0)
    for i, plot in enumerate(plots):
        image = QImage(plot.width * 2, plot.height * 2, QImage.Format.Format_ARGB32)
        image.fill(QColor("#ffffff"))
        renderer = QSvgRenderer(QByteArray(plot.svg.encode("utf-8")))
        if not renderer.isValid():
            raise ReportError(f"plot {i + 1} of {what} could not be drawn")
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        doc.addResource(
            QTextDocument.ResourceType.ImageResource.value, QUrl(f"acustim-plot-{i}.png"), image
        )
    doc.setHtml(
        page(lambda i, p: f'<img src="acustim-plot-{i}.png" width="{p.width}" height="{p.height}">')
    )
    doc.print_(writer)
    del writer  # finishes the PDF
    buffer.close()
    data = bytes(buffer.data().data())
    if not data.startswith(b"%PDF"):
        raise ReportError(f"Qt did not produce a PDF for {what}")
    return data
