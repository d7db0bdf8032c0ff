"""The history view: the recorded sessions, filtered by patient and date, and "Open report"."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from PySide6.QtCore import QDate, QUrl
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from acustim import Engine
from acustim.records import STORE_FILE_NAME, RecordStore
from gui.history import ALL_PATIENTS, COLUMNS, NOTES_API, NOTES_UNSAVABLE, HistoryView


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Four sessions: a real one on the simulator for P-0042, then three made directly."""
    path = tmp_path / STORE_FILE_NAME
    with Engine(virtual_time=True, records=path) as engine:
        session = engine.connect("sim:coyote3").start(
            "tmj-jaw-pain-left", levels={"A": 12}, duration_s=10.0
        )
        assert session.wait(60).outcome == "completed"
    with RecordStore.open(path) as store:
        conn = sqlite3.connect(path)
        conn.execute("UPDATE sessions SET patient = 'P-0042'")  # the runner's job, soon
        conn.execute("INSERT INTO patients VALUES ('P-0042', '2025-01-01T00:00:00.000+00:00')")
        conn.commit()
        conn.close()
        for patient in ("Q-7", "P-0042", None):
            session_id = store.start_session(
                program="bells-palsy", device="sim:pulsepal", profile="pulsepal", patient=patient
            )
            store.end_session(session_id, outcome="stopped", reason="stopped by the practitioner")
    return path


class Opened:
    def __init__(self) -> None:
        self.urls: list[QUrl] = []

    def __call__(self, url: QUrl) -> bool:
        self.urls.append(url)
        return True


def make(
    qtbot: QtBot, store: RecordStore | Path | None, opener: Opened | None = None
) -> HistoryView:
    view = HistoryView(store, opener=opener or Opened())
    qtbot.addWidget(view)
    view.resize(900, 400)
    view.show()
    return view


def cell(view: HistoryView, row: int, column: str) -> str:
    item = view.table.item(row, COLUMNS.index(column))
    assert item is not None
    return item.text()


def test_it_lists_every_session_newest_first(qtbot: QtBot, store_path: Path) -> None:
    view = make(qtbot, store_path)
    assert view.shown_session_ids() == [4, 3, 2, 1]
    assert view.table.rowCount() == 4
    assert [cell(view, r, "Patient") for r in range(4)] == ["-", "P-0042", "Q-7", "P-0042"]
    assert cell(view, 3, "Program") == "tmj-jaw-pain-left"
    assert cell(view, 3, "Outcome") == "completed"
    assert cell(view, 0, "Outcome") == "stopped: stopped by the practitioner"
    assert view.status.text() == "4 sessions"
    assert [view.patient.itemText(i) for i in range(view.patient.count())] == [
        ALL_PATIENTS,
        "P-0042",
        "Q-7",
    ]
    assert not view.open_button.isEnabled()  # nothing selected yet


def test_it_filters_by_patient_code_in_any_case(qtbot: QtBot, store_path: Path) -> None:
    view = make(qtbot, store_path)
    view.patient.setCurrentText("p-0042")
    assert view.shown_session_ids() == [3, 1]
    view.patient.setCurrentIndex(view.patient.findText("Q-7"))
    assert view.shown_session_ids() == [2]
    view.patient.setCurrentText("nobody")
    assert view.shown_session_ids() == []
    assert view.status.text() == "no sessions match"
    view.patient.setCurrentText("Jane Doe")  # a name: refused with the rule, not a crash
    assert view.shown_session_ids() == []
    assert "looks like a name" in view.status.text()
    view.patient.setCurrentIndex(0)
    assert view.shown_session_ids() == [4, 3, 2, 1]


def test_it_filters_by_date(qtbot: QtBot, store_path: Path) -> None:
    view = make(qtbot, store_path)
    assert view.since.text() == "any" and view.until.text() == "any"
    tomorrow = QDate.currentDate().addDays(1)
    view.since.setDate(tomorrow)
    assert view.shown_session_ids() == []
    view.since.setDate(view.since.minimumDate())  # back to "any"
    view.until.setDate(QDate.currentDate())
    assert view.shown_session_ids() == [4, 3, 2, 1]


def test_open_report_writes_a_private_html_file_and_hands_it_to_the_browser(
    qtbot: QtBot, store_path: Path
) -> None:
    opened = Opened()
    view = make(qtbot, store_path, opener=opened)
    view.select_session(1)
    assert view.selected_session_id() == 1 and view.open_button.isEnabled()
    with qtbot.waitSignal(view.report_opened, timeout=5000) as signal:
        view.open_button.click()
    path = signal.args[0]
    assert isinstance(path, Path)
    assert [u.toLocalFile() for u in opened.urls] == [str(path)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    page = path.read_text(encoding="utf-8")
    assert "<h1>Session 1:" in page and "STRICTA items" in page and "<svg " in page
    assert "report of session 1 opened" in view.status.text()


def test_it_reads_the_engines_own_store_while_it_records(qtbot: QtBot, store_path: Path) -> None:
    with RecordStore.open(store_path) as store:
        view = make(qtbot, store)
        assert view.shown_session_ids() == [4, 3, 2, 1]
        store.start_session(program="p", device="d", profile="coyote3", patient="R-1")
        view.refresh_button.click()
        assert view.shown_session_ids() == [5, 4, 3, 2, 1]
        assert cell(view, 0, "Outcome") == "unfinished"


def test_a_missing_or_damaged_store_is_a_message_not_a_crash(qtbot: QtBot, tmp_path: Path) -> None:
    view = make(qtbot, tmp_path / "none.sqlite3")
    assert view.shown_session_ids() == [] and view.status.text() == "no sessions recorded yet"
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_text("not a database")
    view.set_store(damaged)
    assert view.shown_session_ids() == []
    assert "not an acustim records store" in view.status.text()
    assert view.open_report() is None
    view.set_store(None)
    assert view.status.text() == "no sessions recorded yet"


# --- save, print and notes (gui.reports, NotesEditor) ---------------------------------------


def test_save_and_print_are_offered_for_the_selected_session_only(
    qtbot: QtBot, store_path: Path
) -> None:
    view = make(qtbot, store_path)
    buttons = (view.open_button, view.save_button, view.print_button)
    assert not any(b.isEnabled() for b in buttons)
    view.select_session(1)
    assert all(b.isEnabled() for b in buttons)
    assert all(b.toolTip() and b.accessibleName() for b in buttons)
    view.table.clearSelection()
    assert not any(b.isEnabled() for b in buttons)
    assert view.save_report() is None and view.print_report() is False  # nothing selected


def test_save_report_writes_where_the_user_chose(
    qtbot: QtBot, store_path: Path, tmp_path: Path
) -> None:
    asked: list[Path] = []

    def choose(_parent: QWidget | None, suggested: Path) -> Path:
        asked.append(suggested)
        return tmp_path / "chosen.pdf"

    view = HistoryView(store_path, opener=Opened(), choose_path=choose)
    qtbot.addWidget(view)
    view.select_session(1)
    view.save_button.click()
    assert [p.name for p in asked] == ["acustim-session-1.html"]
    data = (tmp_path / "chosen.pdf").read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert view.status.text() == f"report of session 1 saved to {tmp_path / 'chosen.pdf'}"
    assert view.status.styleSheet() == ""


def test_a_report_that_cannot_be_saved_is_a_message_under_the_list(
    qtbot: QtBot, store_path: Path, tmp_path: Path
) -> None:
    gone = tmp_path / "gone" / "r.html"
    view = HistoryView(store_path, opener=Opened(), choose_path=lambda _p, _s: gone)
    qtbot.addWidget(view)
    view.select_session(1)
    view.save_button.click()  # no exception
    assert view.status.text().startswith("The report of session 1 was not saved: cannot write")
    assert "does not exist" in view.status.text() and "c62828" in view.status.styleSheet()
    assert not gone.exists()


def test_print_prints_the_selected_sessions_report(
    qtbot: QtBot, store_path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "printed.pdf"

    def setup(_parent: QWidget | None, printer: QPrinter) -> bool:  # what the dialog does
        printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        printer.setOutputFileName(str(target))
        return True

    view = HistoryView(store_path, opener=Opened(), print_setup=setup)
    qtbot.addWidget(view)
    view.select_session(1)
    view.print_button.click()
    assert target.read_bytes().startswith(b"%PDF") and target.stat().st_size > 20_000
    assert view.status.text() == "report of session 1 sent to the printer"


def test_the_notes_of_the_selected_session_are_shown(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        first = store.start_session(program="p", device="d", profile="coyote3", notes="ST6 tender")
        store.end_session(first, outcome="completed")
        second = store.start_session(program="p", device="d", profile="coyote3")
        store.end_session(second, outcome="completed")
    view = make(qtbot, path)
    assert not view.notes.text.isEnabled() and "select a session" in view.notes.message.text()
    view.select_session(first)
    assert view.notes.text.toPlainText() == "ST6 tender"
    assert view.notes.title.text() == f"Notes of session {first}"
    view.select_session(second)
    assert view.notes.text.toPlainText() == ""


def test_notes_are_saved_after_the_session_or_said_not_to_be_yet(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """Where the records store can change a session's notes (``set_session_notes``), an edit
    is saved and read back; until it can, the editor is read-only and says so."""
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        session_id = store.start_session(program="p", device="d", profile="coyote3", notes="before")
        store.end_session(session_id, outcome="completed")
        view = make(qtbot, store)
        view.select_session(session_id)
        editor = view.notes
        assert editor.text.toPlainText() == "before"
        if not hasattr(RecordStore, NOTES_API):
            assert not editor.can_save and editor.text.isReadOnly()
            assert not editor.save_button.isEnabled()
            assert editor.message.text() == NOTES_UNSAVABLE
            assert "cannot be saved yet" in editor.message.text()
            assert editor.save() is False
            assert store.session(session_id).notes == "before"
            return
        assert editor.can_save and not editor.text.isReadOnly()
        assert not editor.save_button.isEnabled()  # nothing changed yet
        editor.text.setPlainText("before; ST6 tender after the session")
        assert editor.save_button.isEnabled() and editor.message.text() == "not saved yet"
        with qtbot.waitSignal(editor.notes_saved, timeout=5000) as saved:
            editor.save_button.click()
        assert saved.args == [session_id, "before; ST6 tender after the session"]
        assert store.session(session_id).notes == "before; ST6 tender after the session"
        assert editor.message.text() == f"notes of session {session_id} saved"
        assert not editor.save_button.isEnabled()
