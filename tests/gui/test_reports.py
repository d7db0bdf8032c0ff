"""Reports from the window (gui.reports): save as HTML or PDF, print, and a file that cannot
be written is one message, never a traceback. A real store with a real simulated session."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from acustim import Engine
from acustim.records import STORE_FILE_NAME, RecordStore
from gui.reports import (
    documents_dir,
    print_report,
    save_report,
    suggested_report_path,
    write_report,
)

PROGRAM = "tmj-jaw-pain-left"

pytestmark = pytest.mark.usefixtures("qapp")  # as in the app: one QApplication


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One completed 10 s session (id 1) on the Coyote 3 simulator, virtual time."""
    path = tmp_path_factory.mktemp("reports") / STORE_FILE_NAME
    with Engine(virtual_time=True, records=path) as engine:
        session = engine.connect("sim:coyote3").start(PROGRAM, levels={"A": 12}, duration_s=10)
        assert session.wait(60).outcome == "completed"
    return path


class Told:
    """Stands in for the message box: what the user was told."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bool]] = []

    def __call__(self, text: str, error: bool) -> None:
        self.messages.append((text, error))

    @property
    def errors(self) -> list[str]:
        return [text for text, error in self.messages if error]


def pages(pdf: bytes) -> int:
    """The pages of a PDF Qt wrote (each is one ``/Type /Page`` object)."""
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def pdf_printer(path: Path) -> QPrinter:
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(path))
    return printer


def test_the_suggested_name_is_the_session_in_documents() -> None:
    path = suggested_report_path(42)
    assert path.name == "acustim-session-42.html"
    assert path.parent == documents_dir() and path.parent.is_dir()
    assert suggested_report_path(42, "pdf", Path("/x")) == Path("/x/acustim-session-42.pdf")
    with pytest.raises(ValueError, match="html or pdf"):
        suggested_report_path(42, "docx")


def test_save_html_writes_the_sessions_report_privately(recorded: Path, tmp_path: Path) -> None:
    told = Told()
    target = tmp_path / "report.html"
    assert save_report(None, recorded, 1, path=target, notify=told) == target
    page = target.read_text(encoding="utf-8")
    assert "<h1>Session 1:" in page and PROGRAM in page and "<svg " in page
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert told.messages == [(f"report of session 1 saved to {target}", False)]


def test_save_pdf_by_its_extension(recorded: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    assert save_report(None, recorded, 1, path=target, notify=Told()) == target
    data = target.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    assert len(data) > 20_000  # text and the plots, not an empty page
    assert b"/Image" in data  # the plots are in it


def test_the_dialog_is_asked_with_the_suggested_name_and_cancel_writes_nothing(
    recorded: Path, tmp_path: Path
) -> None:
    asked: list[Path] = []

    def cancel(_parent: QWidget | None, suggested: Path) -> Path | None:
        asked.append(suggested)
        return None

    told = Told()
    assert save_report(None, recorded, 1, choose=cancel, notify=told) is None
    assert asked == [suggested_report_path(1)]
    assert told.messages == []

    def choose(_parent: QWidget | None, suggested: Path) -> Path:
        return tmp_path / suggested.name

    written = save_report(None, recorded, 1, choose=choose, notify=told)
    assert written == tmp_path / "acustim-session-1.html" and written.is_file()


def test_the_engines_own_store_reports_the_session_just_ended(tmp_path: Path) -> None:
    """The main window's case: the engine's open store, right after the session ended."""
    with Engine(virtual_time=True, records=tmp_path / "records.sqlite3") as engine:
        session = engine.connect("sim:coyote3").start(PROGRAM, levels={"A": 8}, duration_s=5)
        assert session.wait(60).outcome == "completed"
        assert isinstance(engine.store, RecordStore)
        session_id = session.session_id
        assert session_id is not None
        written = save_report(None, engine.store, session_id, path=tmp_path / "r.html")
    assert written is not None
    assert f"<h1>Session {session_id}:" in written.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("gone/report.html", "does not exist"),  # the directory is gone
        ("", "is a directory"),  # a directory, not a file
        ("/proc/acustim-report.html", "cannot write"),  # nothing may be written there
    ],
)
def test_a_file_that_cannot_be_written_is_one_message(
    recorded: Path, tmp_path: Path, where: str, why: str
) -> None:
    target = Path(where) if where.startswith("/") else tmp_path / where
    told = Told()
    assert save_report(None, recorded, 1, path=target, notify=told) is None
    assert len(told.messages) == 1 and len(told.errors) == 1
    assert told.errors[0].startswith("The report of session 1 was not saved: ")
    assert why in told.errors[0] and "Traceback" not in told.errors[0]
    assert not target.is_file()


def test_by_default_the_message_is_a_box_on_the_window(
    qtbot: QtBot, recorded: Path, tmp_path: Path
) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    window.show()
    assert save_report(window, recorded, 1, path=tmp_path / "gone" / "r.pdf") is None
    boxes = window.findChildren(QMessageBox)
    assert len(boxes) == 1
    assert "was not saved" in boxes[0].text() and "does not exist" in boxes[0].text()
    qtbot.waitUntil(boxes[0].isVisible)  # shown, and the call did not wait for it
    boxes[0].accept()


def test_an_unknown_session_or_a_missing_store_is_a_message(recorded: Path, tmp_path: Path) -> None:
    told = Told()
    assert save_report(None, recorded, 99, path=tmp_path / "r.html", notify=told) is None
    assert len(told.errors) == 1 and "99" in told.errors[0]
    assert (
        save_report(None, tmp_path / "none.sqlite3", 1, path=tmp_path / "r.html", notify=told)
        is None
    )
    assert len(told.errors) == 2 and "no sessions are recorded" in told.errors[1]
    assert (
        print_report(None, None, 1, printer=pdf_printer(tmp_path / "p.pdf"), notify=told) is False
    )
    assert len(told.errors) == 3 and not (tmp_path / "p.pdf").exists()


def test_print_lays_the_report_out_on_the_printer(recorded: Path, tmp_path: Path) -> None:
    target = tmp_path / "printed.pdf"
    printer = pdf_printer(target)
    shown: list[QPrinter] = []

    def setup(_parent: QWidget | None, chosen: QPrinter) -> bool:
        shown.append(chosen)
        return True

    told = Told()
    assert print_report(None, recorded, 1, printer=printer, setup=setup, notify=told) is True
    assert shown == [printer] and printer.docName() == "acustim session 1"
    data = target.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000 and b"/Image" in data
    # text at a readable size: at the printer's own 1200 dpi the CSS pixels of the page
    # become specks and the whole report fits on 2 pages
    assert pages(data) >= 3
    assert told.errors == []


def test_a_saved_pdf_is_as_readable_as_the_printed_report(recorded: Path, tmp_path: Path) -> None:
    saved = save_report(None, recorded, 1, path=tmp_path / "r.pdf", notify=Told())
    assert saved is not None
    printer = pdf_printer(tmp_path / "p.pdf")
    assert print_report(None, recorded, 1, printer=printer, setup=lambda _w, _p: True)
    assert pages(saved.read_bytes()) >= pages((tmp_path / "p.pdf").read_bytes())


def test_print_cancelled_prints_nothing(recorded: Path, tmp_path: Path) -> None:
    target = tmp_path / "printed.pdf"
    told = Told()
    assert (
        print_report(
            None, recorded, 1, printer=pdf_printer(target), setup=lambda _w, _p: False, notify=told
        )
        is False
    )
    assert not target.exists() and told.messages == []


def test_printing_to_a_file_that_cannot_be_written_is_a_message(
    recorded: Path, tmp_path: Path
) -> None:
    told = Told()
    printer = pdf_printer(tmp_path / "gone" / "printed.pdf")
    assert (
        print_report(None, recorded, 1, printer=printer, setup=lambda _w, _p: True, notify=told)
        is False
    )
    assert len(told.errors) == 1 and "was not printed" in told.errors[0]


def test_write_report_raises_one_line_for_scripts(recorded: Path, tmp_path: Path) -> None:
    from acustim import AcustimError

    with pytest.raises(AcustimError, match="does not exist"):
        write_report(recorded, 1, tmp_path / "gone" / "r.html")
    assert (
        write_report(recorded, 1, tmp_path / "r.htm")
        .read_text(encoding="utf-8")
        .startswith("<!DOCTYPE html>")
    )
