"""What the practitioner enters around a recorded session, in the history view: outcome
measures before and after it, adverse events, the STRICTA items (and the practitioner's
STRICTA defaults), and treatment courses.

- ``SessionRecordDialog``: one session, three tabs. **Outcomes** offers only the measures of
  the session's indication (its course's, else its program's: ``measures_for``), each with
  its allowed range; a value out of range is one message naming the field and the range, and
  nothing is stored; values already recorded are filled in, and changing one asks to
  "Replace" first. **Adverse events** lists the session's and records one (severity of the
  fixed set, what happened, action taken). **STRICTA** takes the session's own items; the
  practitioner's defaults as they were when the session started show as grey placeholders
  (what the report uses when nothing is typed). "STRICTA defaults…" opens
  ``StrictaDefaultsDialog``.
- ``CoursesDialog``: a patient's treatment courses, a new course (indication, sessions
  planned, days between them), and "Put session N into the selected course" for a session in
  no course (``RecordStore.link_session``).

The store is the engine's ``RecordStore`` or the path of one (opened read-only to read and
for writing per save). A store that cannot be written (opened read-only, a read-only
filesystem) disables entry and says so; every store error is one line in the dialog, never a
traceback. The checks are the store's (``acustim.records``); the outcome range is also checked
here, first, so that the message names the field as the dialog shows it.

Never talks to a device; decides nothing about safety.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from acustim import AcustimError
from acustim.records import (
    CONDITIONS,
    COURSE_INTERVAL_DAYS,
    COURSE_SESSIONS,
    MEASURES,
    SEVERITIES,
    STRICTA_ITEMS,
    TIMINGS,
    AdverseEventRow,
    CourseInfo,
    Measure,
    OutcomeRow,
    RecordsError,
    RecordStore,
    SessionInfo,
    condition_of,
    measure_text,
    measures_for,
)
from gui.panels.common import Banner, muted
from gui.theme import DANGER, MUTED

Store = RecordStore | Path | None
#: asks the practitioner to confirm (parent, title, text); True goes ahead
Confirm = Callable[[QWidget, str, str], bool]

TIMING_TEXT = {"before": "Before the session", "after": "After the session"}
SERIOUS_NOTE = "a serious adverse event: report it as your regulator and setting require"
SEVERITY_HINT = (
    "mild, moderate, severe: how intense it was; serious: death, threat to life, hospital"
    " admission or lasting harm, whatever its intensity"
)
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
_ROMAN_OF = {v: k for k, v in _ROMAN.items()}
_NUMBER = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?")


def replace_box(parent: QWidget | None, title: str, text: str) -> QMessageBox:
    """The "Replace" question: "Replace" or "Cancel" (the default, and Esc)."""
    box = QMessageBox(parent)
    # window-modal: only the dialog that asks waits; the main window (STOP) never does
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(text)
    box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    return box


def confirm_replace(parent: QWidget, title: str, text: str) -> bool:
    """Ask ``replace_box``'s question; True only for "Replace"."""
    box = replace_box(parent, title, text)
    box.exec()
    clicked = box.clickedButton()
    return clicked is not None and box.buttonRole(clicked) == QMessageBox.ButtonRole.AcceptRole


# --- the store ----------------------------------------------------------------------------


@contextmanager
def reading(store: Store) -> Iterator[RecordStore]:
    """The engine's store as it is, or a store file opened read-only for the block."""
    if isinstance(store, RecordStore):
        yield store
        return
    if store is None or not Path(store).exists():
        raise RecordsError("the records store is gone: refresh the list")
    with RecordStore.open(Path(store), read_only=True) as opened:
        yield opened


@contextmanager
def writing(store: Store) -> Iterator[RecordStore]:
    """The engine's store as it is, or a store file opened for writing for the block."""
    if isinstance(store, RecordStore):
        yield store
        return
    if store is None or not Path(store).exists():
        raise RecordsError("the records store is gone: refresh the list")
    with RecordStore.open(Path(store)) as opened:
        yield opened


def entry_problem(store: Store) -> str:
    """Why nothing can be entered in ``store`` (one line), or '' when it can be."""
    if store is None:
        return "Entry is not possible: there is no records store."
    if isinstance(store, RecordStore):
        if store.read_only:
            return (
                f"Entry is not possible: the records store {store.path} is open read-only;"
                " open it for writing to enter outcomes, adverse events, STRICTA items or"
                " courses."
            )
        if store.writer_error is not None:
            return f"Entry is not possible: {store.writer_error}"
        return ""
    try:
        with writing(store):
            pass
    except AcustimError as exc:
        return f"Entry is not possible: {exc}"
    return ""


def session_indication(store: RecordStore, info: SessionInfo) -> tuple[str, str]:
    """What decides the session's outcome measures: (the indication or program, how it is
    said); the course's indication for a session in a course, else its program."""
    if info.course_id is not None:
        course = store.course(info.course_id)
        return course.indication, f"course {course.id} ({course.indication})"
    return info.program, f"program {info.program}"


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _plain(key: str, value: float) -> str:
    """A stored value as it is typed (House-Brackmann in Roman numerals, no unit)."""
    if key == "house_brackmann" and value in _ROMAN_OF:
        return _ROMAN_OF[int(value)]
    return f"{int(value)}" if value == int(value) else f"{value:g}"


def short_range(measure: Measure) -> str:
    """The allowed range as a field's placeholder: 0..10, 0..80 mm, I..VI."""
    if measure.key == "house_brackmann":
        return "I..VI"
    text = f"{measure.lo:g}..{measure.hi:g}"
    return f"{text} {measure.unit}" if measure.unit else text


def parse_measure(measure: Measure, text: str) -> float | None:
    """A typed value as the store keeps it, or None if it is not allowed (not a number, out
    of range, or a fraction where a whole number is asked)."""
    typed = text.strip()
    if measure.key == "house_brackmann" and typed.upper() in _ROMAN:
        return float(_ROMAN[typed.upper()])
    typed = typed.replace(",", ".")
    if not _NUMBER.fullmatch(typed):
        return None
    number = float(typed)
    if not measure.lo <= number <= measure.hi or (measure.whole and number != int(number)):
        return None
    return number


def _gui_words(message: str, words: dict[str, str]) -> str:
    """A store message in the dialog's words: the command-line option it names becomes the
    field's name."""
    for option, name in sorted(words.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(option, name)
    return message


def _no_default_buttons(*buttons: QPushButton) -> None:
    """Enter in a field never presses a button by itself (no default button)."""
    for button in buttons:
        button.setAutoDefault(False)
        button.setDefault(False)


def _chain(widgets: Sequence[QWidget]) -> None:
    for first, second in pairwise(widgets):
        QWidget.setTabOrder(first, second)


def _mark(field: QLineEdit, refused: bool) -> None:
    """A refused field has a red border until the next try."""
    field.setStyleSheet(f"QLineEdit {{ border: 2px solid {DANGER}; }}" if refused else "")


#: disabled fields must not look like fields one can type into
_DIALOG_STYLE = (
    f"QLineEdit:disabled, QComboBox:disabled, QSpinBox:disabled {{ background: #f4f6f7;"
    f" color: {MUTED}; }}"
)


def _message(banner: Banner, text: str, tone: str = "info") -> None:
    banner.show_message(text, tone)


class _Changed(Exception):
    """The session's recorded outcomes are not those the dialog shows any more."""


class _Tab(QWidget):
    """A tab of ``SessionRecordDialog``; holds its dialog weakly (a reference cycle would
    leave the dialog to Python's cycle collector, which may run on any thread)."""

    def __init__(self, dialog: SessionRecordDialog) -> None:
        super().__init__()
        self._owner = weakref.ref(dialog)

    def _dialog(self) -> SessionRecordDialog:
        dialog = self._owner()
        assert dialog is not None  # a tab lives inside its dialog
        return dialog


# --- outcomes -----------------------------------------------------------------------------


class OutcomesTab(_Tab):
    """The outcome measures of the session's indication, before and after it."""

    saved = Signal(dict)

    def __init__(self, dialog: SessionRecordDialog) -> None:
        super().__init__(dialog)
        self.measures: tuple[Measure, ...] = ()
        self.fields: dict[tuple[str, str], QLineEdit] = {}
        self._order: list[QWidget] = []
        self._recorded: dict[tuple[str, str], OutcomeRow] = {}
        self.intro = muted()
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(6)
        #: what is recorded, in words (the fields hold the values)
        self.recorded = muted()
        self.recorded.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.save_button = QPushButton("Save outcomes")
        self.save_button.setObjectName("primary")
        self.save_button.setAccessibleName("Save the outcome values of this session")
        _no_default_buttons(self.save_button)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(self.grid)
        layout.addWidget(self.recorded)
        layout.addStretch(1)
        layout.addLayout(row)
        self.save_button.clicked.connect(self.save)

    def build(self, measures: tuple[Measure, ...], where: str) -> None:
        self.measures = measures
        names = ", ".join(m.label for m in measures)
        self.intro.setText(
            f"The outcome measures of {where}: {names}. Values already recorded are filled"
            " in; changing one replaces it after you confirm."
        )
        for col, text in enumerate(("Measure", "Allowed", *TIMING_TEXT.values())):
            head = QLabel(text)
            head.setObjectName("cardTitle")
            self.grid.addWidget(head, 0, col)
        order: list[QWidget] = []
        for r, measure in enumerate(measures, start=1):
            name = measure.label[:1].upper() + measure.label[1:]
            label = QLabel(name + (f" ({measure.unit})" if measure.unit else ""))
            label.setToolTip(measure.source)
            allowed = muted(measure.allowed)
            allowed.setMinimumWidth(240)
            self.grid.addWidget(label, r, 0)
            self.grid.addWidget(allowed, r, 1)
            for c, timing in enumerate(TIMINGS, start=2):
                field = QLineEdit()
                field.setPlaceholderText(short_range(measure))
                field.setMaximumWidth(120)
                field.setAccessibleName(f"{measure.label} {timing} the session")
                field.setToolTip(f"{measure.label} {timing} the session; allowed {measure.allowed}")
                self.fields[(timing, measure.key)] = field
                self.grid.addWidget(field, r, c)
                order.append(field)
        self.grid.setColumnStretch(1, 1)
        self._order = [*order, self.save_button]
        _chain(self._order)

    def focus_order(self) -> list[QWidget]:
        """The fields row by row (before, after), then "Save outcomes"."""
        return list(self._order) if self._order else [self.save_button]

    def show_recorded(self, rows: Sequence[OutcomeRow]) -> None:
        self._recorded = {(o.timing, o.measure): o for o in rows}
        for (timing, key), field in self.fields.items():
            row = self._recorded.get((timing, key))
            field.setText("" if row is None else _plain(key, row.value))
            if row is not None:
                field.setToolTip(
                    f"recorded {_local(row.recorded_at)}; allowed {MEASURES[key].allowed}"
                )
            _mark(field, False)
        offered = set(self.fields)
        lines = []
        for timing in TIMINGS:
            here = [o for o in rows if o.timing == timing and o.measure in MEASURES]
            if here:
                values = ", ".join(
                    f"{MEASURES[o.measure].label} {measure_text(o.measure, o.value)}"
                    + ("" if (timing, o.measure) in offered else " (not of this indication)")
                    for o in here
                )
                when = _local(max(o.recorded_at for o in here))
                lines.append(f"{timing} the session: {values} (entered {when})")
        self.recorded.setText(
            "Recorded " + "; ".join(lines) + "." if lines else "Nothing recorded yet."
        )

    def set_enabled(self, enabled: bool) -> None:
        for field in self.fields.values():
            field.setEnabled(enabled)
        self.save_button.setEnabled(enabled)

    def recorded_text(self, timing: str, key: str) -> str:
        row = self._recorded.get((timing, key))
        return "" if row is None else _plain(key, row.value)

    def save(self) -> bool:
        """Check every changed value, confirm replacements, then store; True if stored."""
        dialog = self._dialog()
        if not dialog.can_enter:
            dialog.say(dialog.problem, "danger")
            return False
        changed: dict[str, dict[str, float]] = {t: {} for t in TIMINGS}
        replaced: list[str] = []
        for field in self.fields.values():
            _mark(field, False)
        for (timing, key), field in self.fields.items():
            measure = MEASURES[key]
            text = field.text().strip()
            before = self.recorded_text(timing, key)
            if text == before:
                continue
            where = f"{TIMING_TEXT[timing]}, {measure.label}"
            if not text:
                dialog.say(
                    f"{where}: a recorded value ({before}) cannot be removed; type the"
                    " corrected value. Nothing was saved.",
                    "danger",
                )
                field.setFocus()
                return False
            number = parse_measure(measure, text)
            if number is None:
                _mark(field, True)
                dialog.say(
                    f"{where} {text}: out of range; allowed {measure.allowed}. Nothing was saved.",
                    "danger",
                )
                field.setFocus()
                field.selectAll()
                return False
            if before and number == self._recorded[(timing, key)].value:
                continue  # typed differently, same value (3 for 3.0)
            changed[timing][key] = number
            if before:
                replaced.append(
                    f"{measure.label} {timing} the session: {before} → {_plain(key, number)}"
                )
        if not any(changed.values()):
            dialog.say("nothing to save: no value was changed")
            return False
        if replaced and not dialog.confirm(
            self,
            "Replace recorded outcome values?",
            f"Replace what is recorded for session {dialog.session_id}?\n\n" + "\n".join(replaced),
        ):
            dialog.say("nothing was saved: the recorded values were kept")
            return False
        words = {m.option: m.label for m in MEASURES.values()}
        saved: list[str] = []
        sid = dialog.session_id
        try:
            with writing(dialog.store) as store:
                now = {(o.timing, o.measure): o.value for o in store.outcomes(session_id=sid)}
                if now != {k: o.value for k, o in self._recorded.items()}:
                    raise _Changed
                for timing, values in changed.items():
                    if not values:
                        continue
                    stored = store.add_outcomes(
                        sid, timing=timing, values=dict(values), replace=True
                    )
                    saved.append(
                        f"{timing}: "
                        + ", ".join(
                            f"{MEASURES[k].label} {measure_text(k, v)}" for k, v in stored.items()
                        )
                    )
        except _Changed:
            dialog.reload()
            dialog.say(
                "nothing was saved: the recorded values changed meanwhile (entered elsewhere);"
                " they are shown again: check them and save again",
                "warn",
            )
            return False
        except AcustimError as exc:
            done = f" (saved {'; '.join(saved)})" if saved else ""
            if saved:
                dialog.reload()
            dialog.say(f"not saved{done}: {_gui_words(str(exc), words)}", "danger")
            return False
        dialog.reload()
        dialog.say(f"saved for session {dialog.session_id}: {'; '.join(saved)}", "ok")
        self.saved.emit(changed)
        return True


# --- adverse events -----------------------------------------------------------------------


class AdverseTab(_Tab):
    """The session's adverse events, and a form to record one."""

    def __init__(self, dialog: SessionRecordDialog) -> None:
        super().__init__(dialog)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(
            ["Severity", "What happened", "Action taken", "Recorded"]
        )
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table
        self.table.setAccessibleName("Adverse events recorded for this session")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(120)
        self.table.setMaximumHeight(220)
        self.none = muted("No adverse event recorded for this session.")
        self.severity = QComboBox()
        self.severity.addItems(list(SEVERITIES))
        self.severity.setPlaceholderText("choose…")
        self.severity.setCurrentIndex(-1)
        self.severity.setAccessibleName("Severity of the adverse event")
        self.severity.setToolTip(SEVERITY_HINT)
        self.what = QLineEdit()
        self.what.setMaxLength(500)
        self.what.setPlaceholderText("e.g. skin redness under pad A (no names)")
        self.what.setAccessibleName("What happened")
        self.action = QLineEdit()
        self.action.setMaxLength(500)
        self.action.setPlaceholderText("optional, e.g. pads moved")
        self.action.setAccessibleName("Action taken")
        self.record_button = QPushButton("Record adverse event")
        self.record_button.setObjectName("primary")
        _no_default_buttons(self.record_button)
        self.severity.setMinimumWidth(160)
        severity_row = QHBoxLayout()
        severity_row.addWidget(self.severity)
        severity_row.addWidget(muted(SEVERITY_HINT), 1)
        form = QFormLayout()
        form.addRow("Severity", severity_row)
        form.addRow("What happened", self.what)
        form.addRow("Action taken", self.action)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.record_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.none)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addStretch(1)
        _chain([self.table, self.severity, self.what, self.action, self.record_button])
        self.record_button.clicked.connect(self.record)

    def show_recorded(self, rows: Sequence[AdverseEventRow]) -> None:
        self.table.setRowCount(len(rows))
        for r, event in enumerate(rows):
            cells = (event.severity, event.what, event.action or "-", _local(event.recorded_at))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(r, c, item)
        self.table.setVisible(bool(rows))
        self.none.setVisible(not rows)

    def set_enabled(self, enabled: bool) -> None:
        for widget in (self.severity, self.what, self.action, self.record_button):
            widget.setEnabled(enabled)

    def record(self) -> int | None:
        """Record the adverse event typed; its id, or None (the message says why)."""
        dialog = self._dialog()
        if not dialog.can_enter:
            dialog.say(dialog.problem, "danger")
            return None
        severity = self.severity.currentText() if self.severity.currentIndex() >= 0 else ""
        if not severity:
            dialog.say(
                f"Severity: choose one of {', '.join(SEVERITIES)}. Nothing was recorded.", "danger"
            )
            self.severity.setFocus()
            return None
        if not self.what.text().strip():
            dialog.say(
                "What happened is empty: say what happened (1..500 characters). Nothing was"
                " recorded.",
                "danger",
            )
            self.what.setFocus()
            return None
        words = {"--severity": "Severity", "--what": "What happened", "--action": "Action taken"}
        try:
            with writing(dialog.store) as store:
                new = store.add_adverse_event(
                    dialog.session_id,
                    severity=severity,
                    what=self.what.text(),
                    action=self.action.text(),
                )
        except AcustimError as exc:
            dialog.say(f"not recorded: {_gui_words(str(exc), words)}", "danger")
            return None
        self.severity.setCurrentIndex(-1)
        self.what.clear()
        self.action.clear()
        dialog.reload()
        text = f"adverse event {new} recorded for session {dialog.session_id} ({severity})"
        if severity == "serious":
            dialog.say(f"{text}; {SERIOUS_NOTE}", "warn")
        else:
            dialog.say(text, "ok")
        return new


# --- STRICTA ------------------------------------------------------------------------------


def _stricta_label(key: str) -> str:
    field = STRICTA_ITEMS[key]
    return f"{field.item}  {field.label}"


def _stricta_form(owner: QWidget) -> tuple[QScrollArea, dict[str, QLineEdit]]:
    """The STRICTA items, one line each, in a scroll area."""
    body = QWidget(owner)
    form = QFormLayout(body)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
    fields: dict[str, QLineEdit] = {}
    for key, item in STRICTA_ITEMS.items():
        field = QLineEdit()
        field.setMaxLength(500)
        field.setAccessibleName(f"STRICTA {item.item}: {item.label}")
        field.setMinimumWidth(260)
        fields[key] = field
        form.addRow(_stricta_label(key), field)
    scroll = QScrollArea(owner)
    scroll.setWidgetResizable(True)
    scroll.setWidget(body)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    return scroll, fields


def _stricta_words() -> dict[str, str]:
    return {
        f"--{key.replace('_', '-')}": f"STRICTA {f.item} ({f.label})"
        for key, f in STRICTA_ITEMS.items()
    }


class StrictaTab(_Tab):
    """The session's own STRICTA items; grey placeholders: what applies without one."""

    def __init__(self, dialog: SessionRecordDialog) -> None:
        super().__init__(dialog)
        self._entered: dict[str, str] = {}
        self.intro = muted(
            'This session\'s own STRICTA items. Grey "default: …" is your default as it was'
            " when the session started: the report uses it unless you type an entry here"
            " (defaults set later apply to later sessions only). Clearing an entry saved before"
            " records the item as not recorded for this session."
        )
        self.items_area, self.fields = _stricta_form(self)
        self.defaults_button = QPushButton("STRICTA defaults…")
        self.defaults_button.setToolTip("set your defaults, for sessions started from now on")
        self.save_button = QPushButton("Save STRICTA items")
        self.save_button.setObjectName("primary")
        _no_default_buttons(self.defaults_button, self.save_button)
        row = QHBoxLayout()
        row.addWidget(self.defaults_button)
        row.addStretch(1)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.items_area, 1)
        layout.addLayout(row)
        _chain([*self.fields.values(), self.defaults_button, self.save_button])
        self.save_button.clicked.connect(self.save)
        self.defaults_button.clicked.connect(dialog.open_defaults)

    def show_recorded(self, entered: dict[str, str], applies: dict[str, str]) -> None:
        """``entered``: the session's own items; ``applies``: what a report uses without
        them (meta["stricta"], else the defaults when the session started)."""
        self._entered = dict(entered)
        for key, field in self.fields.items():
            field.setText(entered.get(key, ""))
            if key in entered and not entered[key]:
                field.setPlaceholderText("not recorded for this session")
            else:
                field.setPlaceholderText(applies.get(key, "") or "not recorded")

    def set_enabled(self, enabled: bool) -> None:
        for field in self.fields.values():
            field.setEnabled(enabled)
        self.save_button.setEnabled(enabled)
        self.defaults_button.setEnabled(enabled)

    def save(self) -> bool:
        dialog = self._dialog()
        if not dialog.can_enter:
            dialog.say(dialog.problem, "danger")
            return False
        changed = {
            key: field.text().strip()
            for key, field in self.fields.items()
            if field.text().strip() != self._entered.get(key, "")
        }
        if not changed:
            dialog.say("nothing to save: no STRICTA item was changed")
            return False
        try:
            with writing(dialog.store) as store:
                stored = store.set_session_stricta(dialog.session_id, dict(changed))
        except AcustimError as exc:
            dialog.say(f"not saved: {_gui_words(str(exc), _stricta_words())}", "danger")
            return False
        dialog.reload()
        names = ", ".join(STRICTA_ITEMS[k].item for k in stored)
        dialog.say(f"STRICTA items {names} saved for session {dialog.session_id}", "ok")
        return True


class StrictaDefaultsDialog(QDialog):
    """The practitioner's STRICTA defaults: set once, used by every session started later."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle("STRICTA defaults")
        self.setStyleSheet(_DIALOG_STYLE)
        self.resize(720, 560)
        self._current: dict[str, str] = {}
        intro = muted(
            "Your defaults for the STRICTA items: a session's report uses them unless the"
            " session has its own entry. They apply to sessions started from now on; earlier"
            " sessions keep the defaults they started with. An empty field clears a default."
        )
        self.items_area, self.fields = _stricta_form(self)
        self.message = Banner(reserve_lines=2)
        self.save_button = QPushButton("Save defaults")
        self.save_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel")
        _no_default_buttons(self.save_button, self.cancel_button)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.items_area, 1)
        layout.addWidget(self.message)
        layout.addLayout(row)
        _chain([*self.fields.values(), self.cancel_button, self.save_button])
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.reject)
        problem = entry_problem(store)
        try:
            with reading(store) as opened:
                self._current = opened.stricta_defaults()
        except AcustimError as exc:
            problem = problem or str(exc)
        for key, field in self.fields.items():
            field.setText(self._current.get(key, ""))
            field.setPlaceholderText("no default")
            field.setEnabled(not problem)
        self.save_button.setEnabled(not problem)
        self.problem = problem
        if problem:
            self.message.show_message(problem, "danger")
        first = next(iter(self.fields.values()))
        first.setFocus()

    def save(self) -> bool:
        """Store the changed defaults and close; False (the message says why) if not."""
        if self.problem:
            self.message.show_message(self.problem, "danger")
            return False
        changed = {
            key: field.text().strip()
            for key, field in self.fields.items()
            if field.text().strip() != self._current.get(key, "")
        }
        if not changed:
            self.message.show_message("nothing to save: no default was changed")
            return False
        try:
            with writing(self.store) as store:
                store.set_stricta_defaults(dict(changed))
                self._current = store.stricta_defaults()
        except AcustimError as exc:
            self.message.show_message(
                f"not saved: {_gui_words(str(exc), _stricta_words())}", "danger"
            )
            return False
        self.accept()
        return True


# --- the session dialog -------------------------------------------------------------------


class SessionRecordDialog(QDialog):
    """Outcomes, adverse events and STRICTA items of one recorded session, in tabs."""

    def __init__(
        self,
        store: Store,
        session_id: int,
        parent: QWidget | None = None,
        *,
        confirm: Confirm | None = None,
    ) -> None:
        """``confirm`` stands in for the "Replace" question (tests)."""
        super().__init__(parent)
        self.store = store
        self.session_id = session_id
        self.confirm: Confirm = confirm or confirm_replace
        self.defaults_dialog: StrictaDefaultsDialog | None = None
        self.info: SessionInfo | None = None
        self.setWindowTitle(f"Session {session_id}: outcomes, adverse events, STRICTA")
        self.setStyleSheet(_DIALOG_STYLE)
        self.resize(780, 620)

        self.header = QLabel()
        self.header.setObjectName("value")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tabs = QTabWidget()
        self.outcomes = OutcomesTab(self)
        self.adverse = AdverseTab(self)
        self.stricta = StrictaTab(self)
        self.tabs.addTab(self.outcomes, "Outcomes")
        self.tabs.addTab(self.adverse, "Adverse events")
        self.tabs.addTab(self.stricta, "STRICTA")
        self.message = Banner(reserve_lines=2)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.close_button = self.buttons.button(QDialogButtonBox.StandardButton.Close)
        _no_default_buttons(self.close_button)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

        self.problem = entry_problem(store)
        try:
            with reading(store) as opened:
                info = opened.session(session_id)
                indication, where = session_indication(opened, info)
            self.info = info
            self.outcomes.build(measures_for(indication), where)
        except AcustimError as exc:
            self.problem = self.problem or str(exc)
        if self.info is not None:
            self.header.setText(_session_line(self.info))
            self.reload()
        self.set_enabled(not self.problem)
        if self.problem:
            self.say(self.problem, "danger")
        # Tab in reading order: the tab bar, each tab's fields, Close
        _chain(
            [
                self.tabs.tabBar(),
                *self.outcomes.focus_order(),
                self.adverse.table,
                self.adverse.severity,
                self.adverse.what,
                self.adverse.action,
                self.adverse.record_button,
                *self.stricta.fields.values(),
                self.stricta.defaults_button,
                self.stricta.save_button,
                self.close_button,
            ]
        )

    @property
    def can_enter(self) -> bool:
        return not self.problem

    def set_enabled(self, enabled: bool) -> None:
        self.outcomes.set_enabled(enabled)
        self.adverse.set_enabled(enabled)
        self.stricta.set_enabled(enabled)

    def say(self, text: str, tone: str = "info") -> None:
        _message(self.message, text, tone)

    def reload(self) -> None:
        """Read what is recorded for the session again and show it."""
        try:
            with reading(self.store) as opened:
                info = opened.session(self.session_id)
                outcomes = opened.outcomes(session_id=self.session_id)
                adverse = opened.adverse_events(session_id=self.session_id)
                entered = opened.session_stricta(self.session_id)
                defaults = opened.stricta_defaults(at=info.started_at)
        except AcustimError as exc:
            self.say(str(exc), "danger")
            return
        self.info = info
        given = info.meta.get("stricta")
        applies = {k: f"default: {v}" for k, v in defaults.items()}
        if isinstance(given, dict):  # what the session's meta says goes over the defaults
            applies.update({str(k): f"from the session record: {v}" for k, v in given.items() if v})
        self.outcomes.show_recorded(outcomes)
        self.adverse.show_recorded(adverse)
        self.stricta.show_recorded(entered, applies)

    def open_defaults(self) -> StrictaDefaultsDialog:
        """The "STRICTA defaults…" dialog (window-modal); the placeholders follow it."""
        if self.defaults_dialog is not None:  # the one opened before is closed by now
            self.defaults_dialog.deleteLater()
        dialog = StrictaDefaultsDialog(self.store, self)
        self.defaults_dialog = dialog
        dialog.accepted.connect(self._defaults_saved)
        dialog.open()
        return dialog

    def _defaults_saved(self) -> None:
        self.reload()
        self.say("STRICTA defaults saved; they apply to sessions started from now on", "ok")


def _session_line(info: SessionInfo) -> str:
    patient = f"patient {info.patient}" if info.patient else "no patient code"
    course = (
        f"session {info.course_number} of course {info.course_id}"
        if info.course_id is not None
        else "in no course"
    )
    return f"Session {info.id}: {info.program}, {_local(info.started_at)}, {patient}, {course}"


# --- courses ------------------------------------------------------------------------------


class CoursesDialog(QDialog):
    """A patient's treatment courses: see them, make one, put the session into one."""

    #: (session id, course id, the session's number in it) after a link
    linked = Signal(int, int, int)

    COLUMNS = ("Course", "Indication", "Sessions", "Interval", "Created", "Notes")

    def __init__(self, store: Store, session_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.session_id = session_id
        self.info: SessionInfo | None = None
        self._courses: list[CourseInfo] = []
        self.setWindowTitle("Treatment courses")
        self.setStyleSheet(_DIALOG_STYLE)
        self.resize(760, 560)

        self.patient = QLineEdit()
        self.patient.setMaxLength(32)
        self.patient.setPlaceholderText("a patient code, e.g. P-0042")
        self.patient.setAccessibleName("Patient code whose courses are shown")
        self.show_button = QPushButton("Show courses")
        top = QHBoxLayout()
        top.addWidget(QLabel("Patient"))
        top.addWidget(self.patient, 1)
        top.addWidget(self.show_button)

        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table
        self.table.setAccessibleName("The patient's treatment courses")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.session_line = QLabel()
        self.session_line.setWordWrap(True)
        self.link_button = QPushButton("Put the session into the selected course")
        self.link_button.setObjectName("primary")
        link_row = QHBoxLayout()
        link_row.addWidget(self.session_line, 1)
        link_row.addWidget(self.link_button)

        new_title = QLabel("NEW COURSE")
        new_title.setObjectName("cardTitle")
        self.indication = QComboBox()
        for key, condition in CONDITIONS.items():
            self.indication.addItem(f"{key}: {condition.label}", key)
        self.indication.setAccessibleName("Indication of the new course")
        self.measures_line = muted()
        self.sessions = QSpinBox()
        self.sessions.setRange(*COURSE_SESSIONS)
        self.sessions.setValue(6)
        self.sessions.setAccessibleName("Sessions planned")
        self.interval = QSpinBox()
        self.interval.setRange(*COURSE_INTERVAL_DAYS)
        self.interval.setValue(7)
        self.interval.setSuffix(" days")
        self.interval.setAccessibleName("Days between sessions")
        for spin in (self.sessions, self.interval):
            spin.setMinimumWidth(120)
            spin.setMaximumWidth(160)
        self.notes = QLineEdit()
        self.notes.setMaxLength(500)
        self.notes.setPlaceholderText("optional: the plan in words (no names)")
        self.notes.setAccessibleName("Notes of the new course")
        self.create_button = QPushButton("Create course")
        form = QFormLayout()
        form.addRow("Indication", self.indication)
        form.addRow("", self.measures_line)
        form.addRow(f"Sessions planned ({COURSE_SESSIONS[0]}..{COURSE_SESSIONS[1]})", self.sessions)
        form.addRow(
            f"Days between sessions ({COURSE_INTERVAL_DAYS[0]}..{COURSE_INTERVAL_DAYS[1]})",
            self.interval,
        )
        form.addRow("Notes", self.notes)
        create_row = QHBoxLayout()
        create_row.addStretch(1)
        create_row.addWidget(self.create_button)

        self.message = Banner(reserve_lines=2)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.close_button = self.buttons.button(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        _no_default_buttons(
            self.show_button, self.link_button, self.create_button, self.close_button
        )
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(link_row)
        layout.addSpacing(8)
        layout.addWidget(new_title)
        layout.addLayout(form)
        layout.addLayout(create_row)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        _chain(
            [
                self.patient,
                self.show_button,
                self.table,
                self.link_button,
                self.indication,
                self.sessions,
                self.interval,
                self.notes,
                self.create_button,
                self.close_button,
            ]
        )

        self.show_button.clicked.connect(self.refresh)
        self.patient.returnPressed.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._update)
        self.link_button.clicked.connect(self.link)
        self.create_button.clicked.connect(self.create_course)
        self.indication.currentIndexChanged.connect(self._indication_changed)

        self.problem = entry_problem(store)
        try:
            with reading(store) as opened:
                self.info = opened.session(session_id)
        except AcustimError as exc:
            self.problem = self.problem or str(exc)
        if self.info is not None:
            self.patient.setText(self.info.patient or "")
            program_condition = condition_of(self.info.program)
            if program_condition is not None:
                self.indication.setCurrentIndex(self.indication.findData(program_condition.key))
        self._indication_changed()
        for widget in (
            self.indication,
            self.sessions,
            self.interval,
            self.notes,
            self.create_button,
        ):
            widget.setEnabled(not self.problem)
        self.refresh()
        if self.problem:
            self.say(self.problem, "danger")
        elif self.info is not None and not self.info.patient:
            self.say(
                f"session {session_id} has no patient code: a course is one patient's, so"
                " this session cannot join one",
                "warn",
            )

    # --- what it shows ------------------------------------------------------------------

    def say(self, text: str, tone: str = "info") -> None:
        _message(self.message, text, tone)

    def shown_course_ids(self) -> list[int]:
        return [c.id for c in self._courses]

    def selected_course(self) -> CourseInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self._courses[rows[0].row()] if rows else None

    def select_course(self, course_id: int) -> None:
        for row, course in enumerate(self._courses):
            if course.id == course_id:
                self.table.selectRow(row)
                return
        raise KeyError(course_id)

    def _indication_changed(self) -> None:
        key = self.indication.currentData()
        names = ", ".join(m.label for m in measures_for(str(key or "")))
        self.measures_line.setText(f"outcome measures: {names}")

    def refresh(self) -> None:
        """Read the patient's courses (and the session) again."""
        self.table.setRowCount(0)
        self._courses = []
        code = self.patient.text().strip()
        try:
            with reading(self.store) as opened:
                self.info = opened.session(self.session_id)
                self._courses = opened.courses(patient=code) if code else []
        except AcustimError as exc:
            self.say(str(exc), "danger")
            self._update()
            return
        self.table.setRowCount(len(self._courses))
        for row, course in enumerate(self._courses):
            cells = (
                str(course.id),
                course.indication,
                f"{course.session_count} of {course.planned_sessions}",
                f"{course.interval_days} days",
                _local(course.created_at),
                course.notes,
            )
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        if code and not self._courses and not self.problem:
            self.say(f"patient {code} has no course yet: make one below")
        self._update()

    def _update(self) -> None:
        info = self.info
        course = self.selected_course()
        if info is None:
            self.session_line.setText(f"Session {self.session_id}")
            self.link_button.setEnabled(False)
            return
        who = f", patient {info.patient}" if info.patient else ", no patient code"
        if info.course_id is not None:
            self.session_line.setText(
                f"Session {info.id} ({info.program}{who}) is session {info.course_number}"
                f" of course {info.course_id}."
            )
        else:
            self.session_line.setText(f"Session {info.id} ({info.program}{who}) is in no course.")
        self.link_button.setText(
            f"Put session {info.id} into course {course.id}"
            if course is not None
            else "Put the session into the selected course"
        )
        self.link_button.setEnabled(
            not self.problem and info.course_id is None and course is not None
        )

    # --- writing ------------------------------------------------------------------------

    def create_course(self) -> int | None:
        """Make the course of the form for the patient shown; its id, or None."""
        code = self.patient.text().strip()
        if not code:
            self.say(
                "Patient: type the patient code the course is for. Nothing was made.", "danger"
            )
            self.patient.setFocus()
            return None
        words = {
            "--indication": "Indication",
            "--sessions": "Sessions planned",
            "--interval-days": "Days between sessions",
            "--notes": "Notes",
        }
        try:
            with writing(self.store) as store:
                new = store.create_course(
                    patient=code,
                    indication=str(self.indication.currentData()),
                    planned_sessions=self.sessions.value(),
                    interval_days=self.interval.value(),
                    notes=self.notes.text(),
                )
        except AcustimError as exc:
            self.say(f"no course made: {_gui_words(str(exc), words)}", "danger")
            return None
        self.notes.clear()
        self.refresh()
        self.select_course(new)
        self.say(f"course {new} made for patient {code}", "ok")
        return new

    def link(self) -> int | None:
        """Put the session into the selected course; its number there, or None."""
        course = self.selected_course()
        if course is None:
            self.say("select a course first")
            return None
        try:
            with writing(self.store) as store:
                number = store.link_session(self.session_id, course.id)
        except AcustimError as exc:
            self.say(f"not linked: {exc}", "danger")
            return None
        self.refresh()
        self.select_course(course.id)
        self.say(f"session {self.session_id} is now session {number} of course {course.id}", "ok")
        self.linked.emit(self.session_id, course.id, number)
        return number
