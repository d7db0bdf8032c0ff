"""Reports from the window: save a recorded session's report as HTML or PDF where the user
chooses, or print it.

``save_report(parent, store, session_id)`` asks for a file (``QFileDialog``; the default is
``acustim-session-42.html`` in the user's Documents folder), builds the report from the store
and writes it (0600, whole or not at all: ``acustim.report``); a name ending in ``.pdf`` makes a
PDF, any other an HTML page. ``print_report(parent, store, session_id)`` shows the print dialog
and prints the same page, laid out as the PDF is. Both take the engine's ``RecordStore`` or
the path of a store (opened read-only for the time it takes).

Nothing here raises for a file that cannot be written, a store that is gone or a session that
is not there: each becomes one sentence handed to ``notify`` (by default a message box on
``parent``, which never blocks the caller), and the function returns None / False. Tests pass
``path=`` (or ``choose=``) and ``printer=`` / ``setup=`` instead of the real dialogs.

Reads the store only, never talks to a device, and computes nothing about the session: the
report is ``acustim.report``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QByteArray, QStandardPaths, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from acustim import AcustimError
from acustim.records import RecordStore
from acustim.report import (
    Report,
    ReportError,
    build_report,
    check_output_path,
    render_html,
    write_html,
    write_pdf,
)
from acustim.report.html import CSS

__all__ = [
    "HTML_FILTER",
    "PDF_FILTER",
    "Notify",
    "PathChooser",
    "PrintSetup",
    "ask_printer",
    "ask_save_path",
    "documents_dir",
    "opened_store",
    "print_report",
    "report_document",
    "save_report",
    "suggested_report_path",
    "write_report",
]

#: the resolution the report is printed at: its style sheet sizes text in CSS pixels, which
#: Qt takes as device pixels (at a printer's 1200 dpi the text would be specks)
PRINT_DPI = 96

HTML_FILTER = "HTML report (*.html)"
PDF_FILTER = "PDF report (*.pdf)"

#: ``(parent, suggested path) -> chosen path, or None when the user cancelled``
PathChooser = Callable[[QWidget | None, Path], Path | None]
#: ``(parent, printer) -> True to print``: shows the print dialog on ``printer``
PrintSetup = Callable[[QWidget | None, QPrinter], bool]
#: ``(message, is_error)``: tells the user what happened, in one sentence
Notify = Callable[[str, bool], None]

StoreRef = RecordStore | Path | None


# --- where ----------------------------------------------------------------------------------


def documents_dir() -> Path:
    """The user's Documents folder if it exists, else the home folder."""
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    if location and Path(location).is_dir():
        return Path(location)
    return Path.home()


def suggested_report_path(
    session_id: int, fmt: str = "html", directory: Path | None = None
) -> Path:
    """``acustim-session-42.html`` (or ``.pdf``) in ``directory``, by default Documents."""
    if fmt not in ("html", "pdf"):
        raise ValueError(f"a report is html or pdf, not {fmt!r}")
    return (directory or documents_dir()) / f"acustim-session-{session_id}.{fmt}"


def ask_save_path(parent: QWidget | None, suggested: Path) -> Path | None:
    """The save dialog; a name typed without an extension gets the chosen filter's."""
    pdf_first = suggested.suffix.lower() == ".pdf"
    name, chosen = QFileDialog.getSaveFileName(
        parent,
        "Save the session report",
        str(suggested),
        ";;".join((PDF_FILTER, HTML_FILTER) if pdf_first else (HTML_FILTER, PDF_FILTER)),
    )
    if not name:
        return None
    path = Path(name)
    if path.suffix.lower() not in (".html", ".htm", ".pdf"):
        path = path.with_name(path.name + (".pdf" if chosen == PDF_FILTER else ".html"))
    return path


def ask_printer(parent: QWidget | None, printer: QPrinter) -> bool:
    """The print dialog (modal); True when the user chose to print."""
    dialog = QPrintDialog(printer, parent)
    dialog.setWindowTitle("Print the session report")
    return bool(dialog.exec() == QPrintDialog.DialogCode.Accepted)


def _message_box(parent: QWidget | None) -> Notify:
    """Errors as a window-modal message box on ``parent`` that does not block the caller;
    success says nothing (the caller shows where the file went, if it wants)."""

    def notify(text: str, error: bool) -> None:
        if not error:
            return
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("acustim: report")
        box.setText(text)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()

    return notify


# --- the store and the report ---------------------------------------------------------------


@contextmanager
def opened_store(store: StoreRef) -> Iterator[RecordStore]:
    """The engine's store as it is, or a store file opened read-only for the block.
    RecordsError (an AcustimError) when there is none."""
    if isinstance(store, RecordStore):
        yield store
        return
    if store is None or not Path(store).exists():
        raise ReportError("no sessions are recorded yet: there is no records store")
    with RecordStore.open(Path(store), read_only=True) as opened:
        yield opened


def _build(store: StoreRef, session_id: int) -> Report:
    with opened_store(store) as opened:
        if not opened.read_only:
            opened.flush()  # rows of a session that just ended may still be queued
        return build_report(opened, session_id)


def write_report(store: StoreRef, session_id: int, path: Path) -> Path:
    """Build the report and write it to ``path`` (``.pdf``: a PDF; anything else: HTML),
    mode 0600; returns the path. Raises AcustimError (ReportError, RecordsError) saying why
    it could not."""
    target = check_output_path(Path(path))  # a bad place fails before the report is built
    report = _build(store, session_id)
    if target.suffix.lower() == ".pdf":
        write_pdf(report, target)
    else:
        write_html(report, target)
    return target


def _with_wait_cursor(fn: Callable[[], object]) -> None:
    if not isinstance(QGuiApplication.instance(), QGuiApplication):  # a script: no cursor
        fn()
        return
    QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        fn()
    finally:
        QGuiApplication.restoreOverrideCursor()


def save_report(
    parent: QWidget | None,
    store: StoreRef,
    session_id: int,
    *,
    path: Path | None = None,
    choose: PathChooser | None = None,
    notify: Notify | None = None,
) -> Path | None:
    """Save session ``session_id``'s report where the user chooses (``path`` skips the
    dialog); returns the file written, or None (cancelled, or a message said why not)."""
    tell = notify or _message_box(parent)
    if path is None:
        path = (choose or ask_save_path)(parent, suggested_report_path(session_id))
        if path is None:
            return None
    written: list[Path] = []
    try:
        _with_wait_cursor(lambda: written.append(write_report(store, session_id, path)))
    except (AcustimError, OSError) as exc:
        tell(f"The report of session {session_id} was not saved: {exc}", True)
        return None
    tell(f"report of session {session_id} saved to {written[0]}", False)
    return written[0]


# --- printing -------------------------------------------------------------------------------


def report_document(report: Report) -> QTextDocument:
    """The report laid out as the PDF is (``acustim.report.pdf``): the HTML page in a
    ``QTextDocument``, its SVG plots drawn as images."""
    doc = QTextDocument()
    doc.setDefaultStyleSheet(CSS)
    doc.setDocumentMargin(0)
    for i, plot in enumerate(report.plots):
        image = QImage(plot.width * 2, plot.height * 2, QImage.Format.Format_ARGB32)
        image.fill(QColor("#ffffff"))
        renderer = QSvgRenderer(QByteArray(plot.svg.encode("utf-8")))
        if not renderer.isValid():
            raise ReportError(f"plot {i + 1} of session {report.session.id} could not be drawn")
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        doc.addResource(
            QTextDocument.ResourceType.ImageResource.value, QUrl(f"acustim-plot-{i}.png"), image
        )
    doc.setHtml(
        render_html(
            report,
            plot_html=lambda i, p: (
                f'<img src="acustim-plot-{i}.png" width="{p.width}" height="{p.height}">'
            ),
        )
    )
    return doc


def print_report(
    parent: QWidget | None,
    store: StoreRef,
    session_id: int,
    *,
    printer: QPrinter | None = None,
    setup: PrintSetup | None = None,
    notify: Notify | None = None,
) -> bool:
    """Print session ``session_id``'s report: the print dialog (``setup``) on ``printer``
    (a new one by default), then the pages. True when it was printed; False when cancelled or
    a message said why not."""
    tell = notify or _message_box(parent)
    try:
        report = _build(store, session_id)
    except AcustimError as exc:
        tell(f"The report of session {session_id} cannot be printed: {exc}", True)
        return False
    target = printer or QPrinter(QPrinter.PrinterMode.HighResolution)
    target.setDocName(f"acustim session {session_id}")
    if not (setup or ask_printer)(parent, target):
        return False

    def _print() -> None:
        target.setResolution(PRINT_DPI)  # after the dialog, before anything is painted
        report_document(report).print_(target)

    try:
        _with_wait_cursor(_print)
    except AcustimError as exc:
        tell(f"The report of session {session_id} was not printed: {exc}", True)
        return False
    if target.printerState() == QPrinter.PrinterState.Error:
        where = target.outputFileName()
        tell(
            f"The report of session {session_id} was not printed: the printer"
            + (f" could not write {where}" if where else " reported an error"),
            True,
        )
        return False
    tell(f"report of session {session_id} sent to the printer", False)
    return True
