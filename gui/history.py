"""The session history: the recorded sessions, filtered by patient code and date, and
"Open report".

``HistoryView`` is a standalone widget. Give it the engine's ``RecordStore`` (read while
sessions are recorded), or the path of a store, which is opened read-only on every refresh.
"Open report" (or a double click) writes the selected session's HTML report to a private
temporary file (0600, in a 0700 directory removed when the widget goes) and opens it with
``QDesktopServices`` (the browser). Reads the store only, never talks to a device, and owns no
logic beyond showing what ``acustim.records`` and ``acustim.report`` give.
"""

from __future__ import annotations

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
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from acustim import AcustimError
from acustim.records import RecordStore, SessionInfo, validate_patient_code
from acustim.report import build_report, write_html

COLUMNS = ("Session", "Started", "Length", "Patient", "Program", "Device", "Outcome")
ALL_PATIENTS = "All patients"
#: the date a date filter shows as "any" (its minimum)
_ANY_DATE = QDate(2000, 1, 1)

Opener = Callable[[QUrl], object]


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
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._opener: Opener = opener or QDesktopServices.openUrl
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
        actions = QHBoxLayout()
        actions.addWidget(self.status, 1)
        actions.addWidget(self.open_button)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)

        self.patient.currentTextChanged.connect(lambda _text: self.refresh())
        self.since.dateChanged.connect(lambda _d: self.refresh())
        self.until.dateChanged.connect(lambda _d: self.refresh())
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda _row, _col: self.open_report())
        self.open_button.clicked.connect(self.open_report)
        self.refresh()

    # --- the store -------------------------------------------------------------------------

    def set_store(self, store: RecordStore | Path | None) -> None:
        """Show another store (the engine's, or a path read read-only)."""
        self._store = store
        self.refresh()

    @contextmanager
    def _opened(self) -> Iterator[RecordStore | None]:
        store = self._store
        if store is None or isinstance(store, RecordStore):
            yield store
            return
        if not Path(store).exists():
            yield None
            return
        with RecordStore.open(Path(store), read_only=True) as opened:
            yield opened

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
        self.open_button.setEnabled(self.selected_session_id() is not None)

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

    def _reports(self) -> Path:
        if self._report_dir is None or not self._report_dir.is_dir():
            self._report_dir = Path(tempfile.mkdtemp(prefix="acustim-reports-"))  # 0700
            weakref.finalize(self, shutil.rmtree, self._report_dir, True)
        return self._report_dir
