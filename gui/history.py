"""The session history: the recorded sessions, filtered by patient code and date; the
selected session's report (open, save as HTML or PDF, print) and its practitioner notes.

``HistoryView`` is a standalone widget. Give it the engine's ``RecordStore`` (read while
sessions are recorded), or the path of a store, which is opened read-only on every refresh.
"Open report" (or a double click) writes the selected session's HTML report to a private
temporary file (0600, in a 0700 directory removed when the widget goes) and opens it with
``QDesktopServices`` (the browser). "Save report..." and "Print..." are ``gui.reports``'s;
a file that cannot be written is one message under the list, never a traceback.
"Outcomes & STRICTA…" and "Courses…" open ``gui.clinical``'s dialogs for the selected
session (outcome measures, adverse events, STRICTA items and defaults; treatment courses).

``NotesEditor`` shows a recorded session's notes and saves changes through
``RecordStore.set_session_notes(session_id, notes)`` where the store has it; where it does
not (yet), the notes are shown read-only with a message that says so.

Owns no logic beyond showing what ``acustim.records`` and ``acustim.report`` give; never talks
to a device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from PySide6.QtCore import QDate, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from acustim import AcustimError
from acustim.records import RecordStore, SessionInfo, validate_patient_code
from acustim.report import build_report, write_html
from gui.clinical import CoursesDialog, SessionRecordDialog
from gui.reports import PathChooser, PrintSetup, print_report, save_report

COLUMNS = ("Session", "Started", "Length", "Patient", "Program", "Device", "Outcome")
ALL_PATIENTS = "All patients"
#: the date a date filter shows as "any" (its minimum)
_ANY_DATE = QDate(2000, 1, 1)

Opener = Callable[[QUrl], object]

#: the records store's method that changes a recorded session's notes (not there yet: the
#: editor then shows the notes read-only and says so)
NOTES_API = "set_session_notes"
NOTES_UNSAVABLE = (
    "Notes of a recorded session cannot be saved yet: this version of the records store"
    " cannot change them. Add them to the next session's notes instead."
)


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _length(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _outcome(info: SessionInfo) -> str:
    if info.outcome is None:
        return "unfinished"
    if info.reason and info.outcome != "completed":
        return f"{info.outcome}: {info.reason}"
    return info.outcome


def _date_edit() -> QDateEdit:
    edit = QDateEdit()
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.setMinimumDate(_ANY_DATE)
    edit.setSpecialValueText("any")  # shown at the minimum: no filter
    edit.setDate(_ANY_DATE)
    return edit


def _as_date(edit: QDateEdit) -> date | None:
    value = edit.date()
    if value == _ANY_DATE:
        return None
    return date(value.year(), value.month(), value.day())


class NotesEditor(QWidget):
    """The practitioner's notes of one recorded session, editable after the session.

    ``set_session(id)`` shows that session's notes; "Save notes" writes them with
    ``RecordStore.set_session_notes`` and reads them back. Without that method in the store
    the text is read-only and ``message`` says that notes cannot be saved yet."""

    #: (session id, the notes as the store now holds them) after a save
    notes_saved = Signal(int, str)

    def __init__(
        self, store: RecordStore | Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._session_id: int | None = None
        self._recorded = ""

        self.title = QLabel("Notes")
        self.title.setObjectName("muted")
        self.text = QPlainTextEdit()
        self.text.setAccessibleName("Practitioner notes of the selected session")
        self.text.setPlaceholderText("Notes for this session's record (no names)")
        self.text.setTabChangesFocus(True)
        self.text.setFixedHeight(4 * self.text.fontMetrics().lineSpacing() + 14)
        self.message = QLabel()
        self.message.setObjectName("muted")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.save_button = QPushButton("Save notes")
        self.save_button.setAccessibleName("Save the notes of the selected session")
        self.save_button.setToolTip("write these notes into the session's record")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.message, 1)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addLayout(row)

        self.text.textChanged.connect(self._update)
        self.save_button.clicked.connect(self.save)
        self.set_session(None)

    # --- what it shows ----------------------------------------------------------------------

    @staticmethod
    def store_can_save(store: RecordStore | Path | None) -> bool:
        """Whether the records store can change a recorded session's notes."""
        return store is not None and hasattr(RecordStore, NOTES_API)

    @property
    def can_save(self) -> bool:
        return self._session_id is not None and self.store_can_save(self._store)

    @property
    def session_id(self) -> int | None:
        return self._session_id

    def set_store(self, store: RecordStore | Path | None) -> None:
        self._store = store
        self.set_session(None)

    def set_session(self, session_id: int | None, notes: str | None = None) -> None:
        """Show ``session_id``'s notes (``notes`` if given, else read from the store); None
        shows nothing. Unsaved edits of the session shown before are dropped."""
        self._session_id = session_id
        self._recorded = ""
        problem = ""
        if session_id is not None and notes is None:
            try:
                with _opened_store(self._store) as store:
                    if store is None:
                        raise AcustimError("the records store is gone: refresh the list")
                    notes = store.session(session_id).notes
            except AcustimError as exc:
                problem = str(exc)
        self._recorded = notes or ""
        self.text.blockSignals(True)
        try:
            self.text.setPlainText(self._recorded)
        finally:
            self.text.blockSignals(False)
        self.title.setText("Notes" if session_id is None else f"Notes of session {session_id}")
        self.text.setEnabled(session_id is not None and not problem)
        self.text.setReadOnly(not self.can_save)
        # read-only notes must not look like a field one can type into
        self.text.setStyleSheet("" if self.can_save else "QPlainTextEdit { background: #f4f6f7; }")
        if problem:
            self._say(problem, error=True)
        elif session_id is None:
            self._say("select a session to see its notes")
        elif not self.store_can_save(self._store):
            self._say(NOTES_UNSAVABLE)
        else:
            self._say("")
        self._update()

    def _update(self) -> None:
        changed = self.text.toPlainText() != self._recorded
        self.save_button.setEnabled(self.can_save and changed)
        if changed and self.can_save:
            self._say("not saved yet")
        elif self.message.text() == "not saved yet":  # typed back to what is recorded
            self._say("")

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c62828;" if error else "")

    # --- saving -----------------------------------------------------------------------------

    def save(self) -> bool:
        """Write the notes into the session's record; True when the store holds them now."""
        session_id = self._session_id
        if session_id is None:
            return False
        if not self.can_save:
            self._say(NOTES_UNSAVABLE)
            return False
        notes = self.text.toPlainText()
        try:
            with _writable_store(self._store) as store:
                getattr(store, NOTES_API)(session_id, notes)
                store.flush()
                saved = store.session(session_id).notes
        except AcustimError as exc:
            self._say(f"the notes were not saved: {exc}", error=True)
            return False
        if saved != notes:
            self._say("the notes were not saved: the record still holds other notes", error=True)
            return False
        self._recorded = saved
        self._update()
        self._say(f"notes of session {session_id} saved")
        self.notes_saved.emit(session_id, saved)
        return True


@contextmanager
def _opened_store(store: RecordStore | Path | None) -> Iterator[RecordStore | None]:
    """The engine's store as it is; a store file opened read-only; None if there is none."""
    if store is None or isinstance(store, RecordStore):
        yield store
        return
    if not Path(store).exists():
        yield None
        return
    with RecordStore.open(Path(store), read_only=True) as opened:
        yield opened


@contextmanager
def _writable_store(store: RecordStore | Path | None) -> Iterator[RecordStore]:
    """The engine's store as it is, or a store file opened for writing for the block."""
    if isinstance(store, RecordStore):
        yield store
        return
    if store is None or not Path(store).exists():
        raise AcustimError("the records store is gone: refresh the list")
    with RecordStore.open(Path(store)) as opened:
        yield opened


class HistoryView(QWidget):
    """The recorded sessions with filters and an "Open report" button."""

    #: the path of a report that was written and handed to the browser
    report_opened = Signal(object)

    def __init__(
        self,
        store: RecordStore | Path | None = None,
        parent: QWidget | None = None,
        *,
        opener: Opener | None = None,
        choose_path: PathChooser | None = None,
        print_setup: PrintSetup | None = None,
    ) -> None:
        """``opener``, ``choose_path`` and ``print_setup`` stand in for the browser, the save
        dialog and the print dialog (tests); by default the real ones."""
        super().__init__(parent)
        self._store = store
        self._opener: Opener = opener or QDesktopServices.openUrl
        self._choose_path = choose_path
        self._print_setup = print_setup
        self._report_dir: Path | None = None
        self._sessions: list[SessionInfo] = []

        self.patient = QComboBox()
        self.patient.setEditable(True)
        self.patient.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.patient.setMinimumContentsLength(12)
        self.patient.setToolTip("a patient code, or all patients")
        line = self.patient.lineEdit()
        if line is not None:
            line.setPlaceholderText(ALL_PATIENTS)
        self.since = _date_edit()
        self.until = _date_edit()
        self.refresh_button = QPushButton("Refresh")
        filters = QHBoxLayout()
        for label, widget in (("Patient", self.patient), ("From", self.since), ("To", self.until)):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.addStretch(1)
        filters.addWidget(self.refresh_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open report")
        self.open_button.setEnabled(False)
        self.open_button.setToolTip("write this session's report and open it in the browser")
        self.open_button.setAccessibleName("Open the selected session's report")
        self.save_button = QPushButton("Save report…")
        self.save_button.setToolTip("save this session's report as an HTML page or a PDF")
        self.save_button.setAccessibleName("Save the selected session's report")
        self.print_button = QPushButton("Print…")
        self.print_button.setToolTip("print this session's report")
        self.print_button.setAccessibleName("Print the selected session's report")
        # gui.clinical: what the practitioner enters around the selected session
        self.clinical_button = QPushButton("Outcomes && STRICTA…")
        self.clinical_button.setToolTip(
            "enter this session's outcome measures, adverse events and STRICTA items"
        )
        self.clinical_button.setAccessibleName("Outcomes, adverse events and STRICTA items")
        self.courses_button = QPushButton("Courses…")
        self.courses_button.setToolTip("the patient's treatment courses; put this session in one")
        self.courses_button.setAccessibleName("Treatment courses of the selected session's patient")
        self.clinical_dialog: SessionRecordDialog | CoursesDialog | None = None
        actions = QHBoxLayout()
        actions.addWidget(self.status, 1)
        for button in self._session_buttons():
            button.setEnabled(False)
            actions.addWidget(button)
        self.notes = NotesEditor(store)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.notes)
        layout.addLayout(actions)

        self.patient.currentTextChanged.connect(lambda _text: self.refresh())
        self.since.dateChanged.connect(lambda _d: self.refresh())
        self.until.dateChanged.connect(lambda _d: self.refresh())
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda _row, _col: self.open_report())
        self.open_button.clicked.connect(self.open_report)
        self.save_button.clicked.connect(lambda: self.save_report())
        self.print_button.clicked.connect(lambda: self.print_report())
        self.clinical_button.clicked.connect(lambda: self.open_session_record())
        self.courses_button.clicked.connect(lambda: self.open_courses())
        self.notes.notes_saved.connect(self._notes_saved)
        self.refresh()

    # --- the store -------------------------------------------------------------------------

    def set_store(self, store: RecordStore | Path | None) -> None:
        """Show another store (the engine's, or a path read read-only)."""
        self._store = store
        self.notes.set_store(store)
        self.refresh()

    def _opened(self) -> contextlib.AbstractContextManager[RecordStore | None]:
        return _opened_store(self._store)

    # --- filters and the list ---------------------------------------------------------------

    def patient_filter(self) -> str | None:
        """The patient code typed or chosen, None for all (PatientCodeError if not a code)."""
        text = self.patient.currentText().strip()
        if not text or text == ALL_PATIENTS:
            return None
        return validate_patient_code(text)

    def refresh(self) -> None:
        """Read the sessions again with the filters as they are."""
        self.table.setRowCount(0)
        self._sessions = []
        try:
            patient = self.patient_filter()
            with self._opened() as store:
                if store is None:
                    self._show_message("no sessions recorded yet")
                    self._fill_patients([])
                    return
                sessions = store.sessions(
                    patient=patient, since=_as_date(self.since), until=_as_date(self.until)
                )
                self._fill_patients([p.code for p in store.patients()])
        except AcustimError as exc:
            self._show_message(str(exc), error=True)
            self._selection_changed()
            return
        # newest first: the session just finished is on top
        self._sessions = list(reversed(sessions))
        self.table.setRowCount(len(self._sessions))
        for row, info in enumerate(self._sessions):
            cells = (
                str(info.id),
                _local(info.started_at),
                _length(info.duration_s),
                info.patient or "-",
                info.program,
                info.device,
                _outcome(info),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, info.id)
                self.table.setItem(row, col, item)
        count = len(self._sessions)
        self._show_message(
            f"{count} session{'s' if count != 1 else ''}" if count else "no sessions match"
        )
        self._selection_changed()

    def _fill_patients(self, codes: list[str]) -> None:
        text = self.patient.currentText()
        self.patient.blockSignals(True)
        try:
            self.patient.clear()
            self.patient.addItems([ALL_PATIENTS, *codes])
            self.patient.setEditText("" if text == ALL_PATIENTS else text)
        finally:
            self.patient.blockSignals(False)

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setProperty("tone", "danger" if error else "")
        self.status.setStyleSheet("color: #c62828;" if error else "")

    def shown_session_ids(self) -> list[int]:
        """The ids in the list, top to bottom."""
        return [info.id for info in self._sessions]

    def selected_session_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        value = None if item is None else item.data(Qt.ItemDataRole.UserRole)
        return int(value) if isinstance(value, int) else None

    def select_session(self, session_id: int) -> None:
        for row, info in enumerate(self._sessions):
            if info.id == session_id:
                self.table.selectRow(row)
                return
        raise KeyError(session_id)

    def _selection_changed(self) -> None:
        session_id = self.selected_session_id()
        for button in self._session_buttons():
            button.setEnabled(session_id is not None)
        if session_id != self.notes.session_id:
            info = next((i for i in self._sessions if i.id == session_id), None)
            self.notes.set_session(session_id, None if info is None else info.notes)

    def _session_buttons(self) -> tuple[QPushButton, ...]:
        return (
            self.open_button,
            self.save_button,
            self.print_button,
            self.clinical_button,
            self.courses_button,
        )

    # --- outcomes, adverse events, STRICTA, courses (gui.clinical) ------------------------

    def open_session_record(self) -> SessionRecordDialog | None:
        """The selected session's outcomes, adverse events and STRICTA items (a window-modal
        dialog; returned, and kept in ``clinical_dialog``)."""
        session_id = self.selected_session_id()
        if session_id is None:
            return None
        self._drop_clinical_dialog()
        dialog = SessionRecordDialog(self._store, session_id, self)
        self.clinical_dialog = dialog
        dialog.open()
        return dialog

    def open_courses(self) -> CoursesDialog | None:
        """The selected session's patient's treatment courses, and a new course or a link
        for the session (window-modal; kept in ``clinical_dialog``)."""
        session_id = self.selected_session_id()
        if session_id is None:
            return None
        self._drop_clinical_dialog()
        dialog = CoursesDialog(self._store, session_id, self)
        self.clinical_dialog = dialog
        dialog.open()
        return dialog

    def _drop_clinical_dialog(self) -> None:
        """The dialog opened before goes (it is closed: the dialogs are window-modal)."""
        if self.clinical_dialog is not None:
            self.clinical_dialog.close()
            self.clinical_dialog.deleteLater()
            self.clinical_dialog = None

    def _notes_saved(self, session_id: int, notes: str) -> None:
        self._sessions = [
            dataclasses.replace(i, notes=notes) if i.id == session_id else i for i in self._sessions
        ]

    # --- the report ------------------------------------------------------------------------

    def open_report(self) -> Path | None:
        """Write the selected session's HTML report (0600) and open it; returns its path."""
        session_id = self.selected_session_id()
        if session_id is None:
            return None
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            with self._opened() as store:
                if store is None:
                    raise AcustimError("the records store is gone: refresh the list")
                report = build_report(store, session_id)
            path = self._reports() / f"acustim-session-{session_id}.html"
            write_html(report, path)
        except AcustimError as exc:
            self._show_message(str(exc), error=True)
            return None
        finally:
            QGuiApplication.restoreOverrideCursor()
        opened = self._opener(QUrl.fromLocalFile(str(path)))
        if opened is False:
            self._show_message(
                f"the report is written to {path}, but no browser could open it", error=True
            )
        else:
            self._show_message(f"report of session {session_id} opened ({path})")
        self.report_opened.emit(path)
        return path

    def _notify(self, text: str, error: bool) -> None:
        self._show_message(text, error=error)

    def save_report(self, path: Path | None = None) -> Path | None:
        """Save the selected session's report (HTML or PDF by the file's extension) where the
        user chooses (``path`` skips the dialog); returns the file, or None."""
        session_id = self.selected_session_id()
        if session_id is None:
            return None
        return save_report(
            self,
            self._store,
            session_id,
            path=path,
            choose=self._choose_path,
            notify=self._notify,
        )

    def print_report(self) -> bool:
        """Print the selected session's report (the print dialog first); True if printed."""
        session_id = self.selected_session_id()
        if session_id is None:
            return False
        return print_report(
            self, self._store, session_id, setup=self._print_setup, notify=self._notify
        )

    def _reports(self) -> Path:
        if self._report_dir is None or not self._report_dir.is_dir():
            self._report_dir = Path(tempfile.mkdtemp(prefix="acustim-reports-"))  # 0700
            weakref.finalize(self, shutil.rmtree, self._report_dir, True)
        return self._report_dir
