"""gui.clinical in the history view: outcome measures, adverse events, STRICTA items and
defaults, and treatment courses of a recorded session, on real stores made by real simulated
sessions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QTableWidget, QWidget
from pytestqt.qtbot import QtBot

from acustim import SCREENING_QUESTIONS, Engine
from acustim.records import STORE_FILE_NAME, RecordStore
from gui import theme
from gui.clinical import (
    CoursesDialog,
    SessionRecordDialog,
    StrictaDefaultsDialog,
    confirm_replace,
)
from gui.history import HistoryView

PATIENT = "P-0042"


def simulate(path: Path, program: str = "tmj-jaw-pain-left") -> int:
    """A short real session on the simulator, recorded in ``path``; its id."""
    with Engine(virtual_time=True, records=path) as engine:
        session = engine.connect("sim:coyote3").start(
            program,
            levels={"A": 12},
            duration_s=5.0,
            patient=PATIENT,
            screening={q.key: False for q in SCREENING_QUESTIONS},
        )
        assert session.wait(60).outcome == "completed"
    with RecordStore.open(path, read_only=True) as store:
        return store.sessions()[-1].id


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """One TMJ session (id 1) for P-0042."""
    path = tmp_path / STORE_FILE_NAME
    assert simulate(path) == 1
    return path


class Confirm:
    """Stands in for the "Replace" question: records what was asked, answers ``answer``."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, _parent: QWidget, _title: str, text: str) -> bool:
        self.asked.append(text)
        return self.answer


def styled() -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply(app)


def session_dialog(
    qtbot: QtBot, store: RecordStore | Path, session_id: int = 1, confirm: Confirm | None = None
) -> SessionRecordDialog:
    styled()
    dialog = SessionRecordDialog(store, session_id, confirm=confirm or Confirm(False))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def outcome(store_path: Path, session_id: int = 1) -> dict[tuple[str, str], float]:
    with RecordStore.open(store_path, read_only=True) as store:
        return {(o.timing, o.measure): o.value for o in store.outcomes(session_id=session_id)}


def focus_order(widgets: Sequence[QWidget]) -> list[QWidget]:
    """``widgets`` in the order Tab visits them, from the first."""
    wanted = set(map(id, widgets))
    order = [widgets[0]]
    w = widgets[0].nextInFocusChain()
    while w is not None and w is not widgets[0] and len(order) < len(widgets):
        if id(w) in wanted and w not in order:
            order.append(w)
        w = w.nextInFocusChain()
    return order


def text_at(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    assert item is not None
    return item.text()


# --- outcomes -------------------------------------------------------------------------------


def test_a_tmj_session_offers_vas_and_mouth_opening_with_their_ranges(
    qtbot: QtBot, store_path: Path
) -> None:
    dialog = session_dialog(qtbot, store_path)
    tab = dialog.outcomes
    assert dialog.can_enter and dialog.message.text() == ""
    assert [m.key for m in tab.measures] == ["vas", "mouth_mm"]
    assert set(tab.fields) == {(t, m) for t in ("before", "after") for m in ("vas", "mouth_mm")}
    assert tab.fields[("before", "vas")].placeholderText() == "0..10"
    assert tab.fields[("after", "mouth_mm")].placeholderText() == "0..80 mm"
    shown = " ".join(
        w.text() for w in tab.findChildren(QWidget) if hasattr(w, "text") and w.isVisible()
    )
    assert "0..10 (0 no pain" in shown and "0..80 mm (interincisal distance" in shown
    assert "program tmj-jaw-pain-left" in tab.intro.text()
    assert "Session 1: tmj-jaw-pain-left" in dialog.header.text()
    assert "patient P-0042, in no course" in dialog.header.text()


def test_a_measure_not_of_the_indication_is_not_offered(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    simulate(path)
    with RecordStore.open(path) as store:  # a migraine session, then one in a Bell's course
        migraine = store.start_session(
            program="migraine-prophylaxis-left", device="sim:coyote3", profile="coyote3"
        )
        store.end_session(migraine, outcome="completed")
        course = store.create_course(
            patient=PATIENT, indication="bells-palsy", planned_sessions=6, interval_days=2
        )
        store.link_session(1, course)  # the TMJ session, now in a Bell's palsy course
    dialog = session_dialog(qtbot, path, migraine)
    assert [m.key for m in dialog.outcomes.measures] == ["vas", "headache_days"]
    assert ("before", "mouth_mm") not in dialog.outcomes.fields
    dialog = session_dialog(qtbot, path, 1)  # the course's indication decides, not the program
    assert [m.key for m in dialog.outcomes.measures] == ["vas", "house_brackmann", "sunnybrook"]
    assert ("before", "mouth_mm") not in dialog.outcomes.fields
    assert f"course {course} (bells-palsy)" in dialog.outcomes.intro.text()
    dialog.outcomes.fields[("before", "house_brackmann")].setText("III")
    assert dialog.outcomes.save()
    assert outcome(path) == {("before", "house_brackmann"): 3.0}
    assert dialog.outcomes.fields[("before", "house_brackmann")].text() == "III"


def test_vas_and_mouth_opening_are_stored_and_read_back(qtbot: QtBot, store_path: Path) -> None:
    dialog = session_dialog(qtbot, store_path)
    fields = dialog.outcomes.fields
    QTest.keyClicks(fields[("before", "vas")], "6")
    QTest.keyClicks(fields[("before", "mouth_mm")], "31")
    QTest.keyClicks(fields[("after", "vas")], "3.5")
    QTest.keyClicks(fields[("after", "mouth_mm")], "36")
    QTest.mouseClick(dialog.outcomes.save_button, Qt.MouseButton.LeftButton)
    assert outcome(store_path) == {
        ("before", "vas"): 6.0,
        ("before", "mouth_mm"): 31.0,
        ("after", "vas"): 3.5,
        ("after", "mouth_mm"): 36.0,
    }
    assert dialog.message.tone == "ok"
    assert "before: VAS pain 6, maximal mouth opening 31 mm" in dialog.message.text()
    again = session_dialog(qtbot, store_path)  # what is recorded is shown
    assert {k: f.text() for k, f in again.outcomes.fields.items()} == {
        ("before", "vas"): "6",
        ("before", "mouth_mm"): "31",
        ("after", "vas"): "3.5",
        ("after", "mouth_mm"): "36",
    }


@pytest.mark.parametrize(
    ("key", "typed", "label", "allowed"),
    [
        ("vas", "11", "VAS pain", "allowed 0..10"),
        ("mouth_mm", "95", "maximal mouth opening", "allowed 0..80 mm"),
        ("vas", "-1", "VAS pain", "allowed 0..10"),
        ("vas", "six", "VAS pain", "allowed 0..10"),
    ],
)
def test_a_value_out_of_range_is_refused_with_the_range_and_nothing_is_stored(
    qtbot: QtBot, store_path: Path, key: str, typed: str, label: str, allowed: str
) -> None:
    dialog = session_dialog(qtbot, store_path)
    fields = dialog.outcomes.fields
    fields[("before", "vas" if key != "vas" else "mouth_mm")].setText("30" if key == "vas" else "5")
    fields[("before", key)].setText(typed)
    assert dialog.outcomes.save() is False
    text = dialog.message.text()
    assert text.startswith(f"Before the session, {label} {typed}: out of range; {allowed}")
    assert text.endswith("Nothing was saved.") and "\n" not in text
    assert dialog.message.tone == "danger"
    assert outcome(store_path) == {}  # not even the good value beside it


def test_replacing_a_recorded_value_needs_the_replace_confirmation(
    qtbot: QtBot, store_path: Path
) -> None:
    with RecordStore.open(store_path) as store:
        store.add_outcomes(1, timing="before", values={"vas": 6})
    confirm = Confirm(False)
    dialog = session_dialog(qtbot, store_path, confirm=confirm)
    field = dialog.outcomes.fields[("before", "vas")]
    assert field.text() == "6"  # shown as recorded
    field.setText("5")
    dialog.outcomes.fields[("after", "vas")].setText("2")
    assert dialog.outcomes.save() is False  # declined: nothing at all is stored
    assert confirm.asked == [
        "Replace what is recorded for session 1?\n\nVAS pain before the session: 6 → 5"
    ]
    assert outcome(store_path) == {("before", "vas"): 6.0}
    assert "the recorded values were kept" in dialog.message.text()
    confirm.answer = True
    assert dialog.outcomes.save() is True
    assert outcome(store_path) == {("before", "vas"): 5.0, ("after", "vas"): 2.0}
    assert len(confirm.asked) == 2
    dialog.outcomes.fields[("after", "vas")].setText("2.0")  # the same value: nothing to ask
    assert dialog.outcomes.save() is False and len(confirm.asked) == 2
    assert dialog.message.text() == "nothing to save: no value was changed"
    field.setText("")  # a recorded value cannot be removed
    assert dialog.outcomes.save() is False
    assert "cannot be removed" in dialog.message.text()
    assert outcome(store_path) == {("before", "vas"): 5.0, ("after", "vas"): 2.0}


# --- adverse events -------------------------------------------------------------------------


def test_an_adverse_event_is_recorded(qtbot: QtBot, store_path: Path) -> None:
    dialog = session_dialog(qtbot, store_path)
    tab = dialog.adverse
    assert [tab.severity.itemText(i) for i in range(tab.severity.count())] == [
        "mild",
        "moderate",
        "severe",
        "serious",
    ]
    assert tab.severity.currentIndex() == -1 and not tab.none.isHidden()
    tab.what.setText("skin redness under pad A")
    assert tab.record() is None  # no severity chosen: refused
    assert dialog.message.text().startswith("Severity: choose one of mild, moderate")
    tab.severity.setCurrentText("mild")
    tab.what.setText("")
    assert tab.record() is None
    assert dialog.message.text().startswith("What happened is empty")
    tab.what.setText("skin redness under pad A")
    tab.action.setText("pads moved")
    QTest.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
    with RecordStore.open(store_path, read_only=True) as store:
        rows = store.adverse_events(session_id=1)
    assert [(r.severity, r.what, r.action) for r in rows] == [
        ("mild", "skin redness under pad A", "pads moved")
    ]
    assert dialog.message.text() == "adverse event 1 recorded for session 1 (mild)"
    assert tab.table.rowCount() == 1 and text_at(tab.table, 0, 1) == "skin redness under pad A"
    assert tab.what.text() == "" and tab.severity.currentIndex() == -1  # ready for the next
    tab.severity.setCurrentText("serious")
    tab.what.setText("fainted; admitted to hospital")
    assert tab.record() == 2
    assert "report it as your regulator" in dialog.message.text() and dialog.message.tone == "warn"


# --- STRICTA --------------------------------------------------------------------------------


def test_stricta_items_are_stored_and_shown(qtbot: QtBot, store_path: Path) -> None:
    dialog = session_dialog(qtbot, store_path)
    tab = dialog.stricta
    tab.fields["needle_count"].setText("200")
    assert tab.save() is False
    text = dialog.message.text()
    assert "STRICTA 2a" in text and "allowed 0..100" in text and "--needle-count" not in text
    with RecordStore.open(store_path, read_only=True) as store:
        assert store.session_stricta(1) == {}
    tab.fields["needle_count"].setText("6")
    tab.fields["response"].setText("de qi sought")
    QTest.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    with RecordStore.open(store_path, read_only=True) as store:
        assert store.session_stricta(1) == {"needle_count": "6", "response": "de qi sought"}
    assert dialog.message.text() == "STRICTA items 2a, 2d saved for session 1"
    again = session_dialog(qtbot, store_path)
    assert again.stricta.fields["response"].text() == "de qi sought"
    assert again.stricta.fields["needle_count"].text() == "6"
    again.stricta.fields["response"].setText("")  # cleared: "not recorded" for this session
    assert again.stricta.save()
    with RecordStore.open(store_path, read_only=True) as store:
        assert store.session_stricta(1)["response"] == ""
    assert again.stricta.fields["response"].placeholderText() == "not recorded for this session"


def test_the_defaults_are_set_once_and_shown_as_placeholders(
    qtbot: QtBot, store_path: Path
) -> None:
    dialog = session_dialog(qtbot, store_path)
    assert dialog.stricta.fields["style"].placeholderText() == "not recorded"
    QTest.mouseClick(dialog.stricta.defaults_button, Qt.MouseButton.LeftButton)
    defaults = dialog.defaults_dialog
    assert isinstance(defaults, StrictaDefaultsDialog) and defaults.isVisible()
    defaults.fields["style"].setText("TCM")
    defaults.fields["practitioner"].setText("licensed acupuncturist, 12 years")
    QTest.mouseClick(defaults.save_button, Qt.MouseButton.LeftButton)
    assert not defaults.isVisible()
    with RecordStore.open(store_path, read_only=True) as store:
        assert store.stricta_defaults() == {
            "style": "TCM",
            "practitioner": "licensed acupuncturist, 12 years",
        }
    assert "apply to sessions started from now on" in dialog.message.text()
    # session 1 started before the defaults: its report does not use them, so neither here
    assert dialog.stricta.fields["style"].placeholderText() == "not recorded"
    second = simulate(store_path)
    dialog = session_dialog(qtbot, store_path, second)
    fields = dialog.stricta.fields
    assert fields["style"].placeholderText() == "default: TCM" and fields["style"].text() == ""
    assert fields["practitioner"].placeholderText() == "default: licensed acupuncturist, 12 years"
    assert fields["depth"].placeholderText() == "not recorded"
    again = StrictaDefaultsDialog(store_path)  # the defaults dialog shows the current ones
    qtbot.addWidget(again)
    assert again.fields["style"].text() == "TCM"
    QTest.keyClick(again, Qt.Key.Key_Escape)  # Esc cancels
    assert again.result() == 0


# --- courses --------------------------------------------------------------------------------


def test_a_course_is_made_and_the_session_put_into_it(qtbot: QtBot, store_path: Path) -> None:
    styled()
    dialog = CoursesDialog(store_path, 1)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.patient.text() == PATIENT
    assert dialog.shown_course_ids() == []
    assert dialog.indication.currentData() == "tmd"  # from the session's program
    assert dialog.measures_line.text() == "outcome measures: VAS pain, maximal mouth opening"
    assert not dialog.link_button.isEnabled()
    assert "is in no course" in dialog.session_line.text()
    dialog.sessions.setValue(6)
    dialog.interval.setValue(7)
    dialog.notes.setText("weekly, then review")
    QTest.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.shown_course_ids() == [1]
    assert text_at(dialog.table, 0, 1) == "tmd"
    assert text_at(dialog.table, 0, 2) == "0 of 6"
    assert dialog.message.text() == f"course 1 made for patient {PATIENT}"
    assert dialog.link_button.isEnabled()  # the new course is selected
    assert dialog.link_button.text() == "Put session 1 into course 1"
    with qtbot.waitSignal(dialog.linked, timeout=5000) as linked:
        QTest.mouseClick(dialog.link_button, Qt.MouseButton.LeftButton)
    assert linked.args == [1, 1, 1]
    with RecordStore.open(store_path, read_only=True) as store:
        info = store.session(1)
        course = store.course(1)
    assert (info.course_id, info.course_number) == (1, 1)
    assert (course.indication, course.planned_sessions, course.interval_days) == ("tmd", 6, 7)
    assert course.notes == "weekly, then review"
    assert dialog.message.text() == "session 1 is now session 1 of course 1"
    assert "is session 1 of course 1" in dialog.session_line.text()
    assert not dialog.link_button.isEnabled()  # a session belongs to one course
    assert text_at(dialog.table, 0, 2) == "1 of 6"
    record = session_dialog(qtbot, store_path)
    assert "session 1 of course 1" in record.header.text()
    assert "course 1 (tmd)" in record.outcomes.intro.text()


def test_a_course_for_a_bad_patient_code_is_one_line(qtbot: QtBot, store_path: Path) -> None:
    dialog = CoursesDialog(store_path, 1)
    qtbot.addWidget(dialog)
    dialog.patient.setText("Jane Doe")
    assert dialog.create_course() is None
    text = dialog.message.text()
    assert text.startswith("no course made: ") and "looks like a name" in text
    assert "\n" not in text and "Traceback" not in text
    with RecordStore.open(store_path, read_only=True) as store:
        assert store.courses() == []


# --- the history view, read-only stores, keyboard -------------------------------------------


def test_the_history_buttons_open_the_dialogs_for_the_selected_session(
    qtbot: QtBot, store_path: Path
) -> None:
    view = HistoryView(store_path, opener=lambda _url: True)
    qtbot.addWidget(view)
    view.show()
    assert not view.clinical_button.isEnabled() and not view.courses_button.isEnabled()
    assert view.open_session_record() is None
    view.select_session(1)
    assert view.clinical_button.isEnabled() and view.courses_button.isEnabled()
    QTest.mouseClick(view.clinical_button, Qt.MouseButton.LeftButton)
    record = view.clinical_dialog
    assert isinstance(record, SessionRecordDialog) and record.isVisible()
    assert record.session_id == 1 and record.can_enter
    QTest.keyClick(record, Qt.Key.Key_Escape)  # Esc closes the dialog
    assert not record.isVisible()
    QTest.mouseClick(view.courses_button, Qt.MouseButton.LeftButton)
    courses = view.clinical_dialog
    assert isinstance(courses, CoursesDialog) and courses.isVisible()
    courses.reject()


def test_a_read_only_store_says_entry_is_not_possible(qtbot: QtBot, store_path: Path) -> None:
    with RecordStore.open(store_path, read_only=True) as store:
        view = HistoryView(store, opener=lambda _url: True)
        qtbot.addWidget(view)
        view.select_session(1)
        record = view.open_session_record()
        assert record is not None and not record.can_enter
        assert record.message.text().startswith("Entry is not possible: the records store")
        assert "read-only" in record.message.text()
        fields = [*record.outcomes.fields.values(), *record.stricta.fields.values()]
        assert fields and not any(f.isEnabled() for f in fields)
        for button in (
            record.outcomes.save_button,
            record.adverse.record_button,
            record.stricta.save_button,
            record.stricta.defaults_button,
        ):
            assert not button.isEnabled()
        record.outcomes.fields[("before", "vas")].setText("4")
        assert record.outcomes.save() is False  # called anyway: one line, no crash
        assert "read-only" in record.message.text()
        assert outcome(store_path) == {}
        courses = view.open_courses()
        assert courses is not None and "read-only" in courses.message.text()
        assert not courses.create_button.isEnabled() and not courses.link_button.isEnabled()
        defaults = StrictaDefaultsDialog(store)
        qtbot.addWidget(defaults)
        assert not defaults.save_button.isEnabled() and "read-only" in defaults.message.text()
        record.reject()
        courses.reject()


def test_a_store_that_went_away_is_one_line_in_the_dialog(
    qtbot: QtBot, store_path: Path, tmp_path: Path
) -> None:
    dialog = session_dialog(qtbot, store_path)
    store_path.rename(tmp_path / "moved.sqlite3")
    dialog.outcomes.fields[("before", "vas")].setText("4")
    assert dialog.outcomes.save() is False
    assert dialog.message.text().startswith("not saved: the records store is gone")
    missing = SessionRecordDialog(tmp_path / "none.sqlite3", 1)
    qtbot.addWidget(missing)
    assert not missing.can_enter and "Entry is not possible" in missing.message.text()


def test_tab_goes_in_reading_order(qtbot: QtBot, store_path: Path) -> None:
    dialog = session_dialog(qtbot, store_path)
    f = dialog.outcomes.fields
    outcomes = [
        f[("before", "vas")],
        f[("after", "vas")],
        f[("before", "mouth_mm")],
        f[("after", "mouth_mm")],
        dialog.outcomes.save_button,
    ]
    assert focus_order(outcomes) == outcomes
    a = dialog.adverse
    adverse = [a.severity, a.what, a.action, a.record_button]
    assert focus_order(adverse) == adverse
    stricta = [*dialog.stricta.fields.values(), dialog.stricta.save_button]
    assert focus_order(stricta) == stricta
    courses = CoursesDialog(store_path, 1)
    qtbot.addWidget(courses)
    c = courses
    order = [c.patient, c.show_button, c.table, c.indication, c.sessions, c.interval, c.notes]
    assert focus_order([*order, c.create_button]) == [*order, c.create_button]


def test_values_entered_elsewhere_meanwhile_are_never_overwritten(
    qtbot: QtBot, store_path: Path
) -> None:
    dialog = session_dialog(qtbot, store_path, confirm=Confirm(True))
    with RecordStore.open(store_path) as store:  # e.g. "acustim outcome add" meanwhile
        store.add_outcomes(1, timing="before", values={"vas": 7})
    dialog.outcomes.fields[("before", "vas")].setText("4")  # the dialog showed it empty
    assert dialog.outcomes.save() is False
    assert "changed meanwhile" in dialog.message.text()
    assert outcome(store_path) == {("before", "vas"): 7.0}
    assert dialog.outcomes.fields[("before", "vas")].text() == "7"  # shown again


def test_enter_presses_nothing_and_no_button_has_a_shortcut(qtbot: QtBot, store_path: Path) -> None:
    dialog = session_dialog(qtbot, store_path)
    field = dialog.outcomes.fields[("before", "vas")]
    field.setFocus()
    QTest.keyClicks(field, "5")
    QTest.keyClick(field, Qt.Key.Key_Return)
    assert dialog.isVisible() and outcome(store_path) == {}  # saved only by the button
    view = HistoryView(store_path, opener=lambda _url: True)
    qtbot.addWidget(view)
    courses = CoursesDialog(store_path, 1)
    qtbot.addWidget(courses)
    defaults = StrictaDefaultsDialog(store_path)
    qtbot.addWidget(defaults)
    buttons = [view.clinical_button, view.courses_button]
    for owner in (dialog, courses, defaults):
        buttons += owner.findChildren(QPushButton)
    assert len(buttons) > 10
    for button in buttons:  # no mnemonic (an "&" before a space would be Alt+Space)
        assert QKeySequence.mnemonic(button.text()).isEmpty(), button.text()
        assert button.shortcut().isEmpty(), button.text()
    assert view.clinical_button.text() == "Outcomes && STRICTA…"  # shown as one "&"


def tabbing(start: QWidget, count: int) -> list[QWidget]:
    """The widgets that have the focus as Tab is pressed ``count`` times from ``start``."""
    start.setFocus()
    seen: list[QWidget] = []
    for _ in range(count):
        widget = QApplication.focusWidget()
        assert widget is not None
        seen.append(widget)
        QTest.keyClick(widget, Qt.Key.Key_Tab)
    return seen


def test_the_tab_key_walks_each_dialog_in_reading_order(qtbot: QtBot, store_path: Path) -> None:
    dialog = session_dialog(qtbot, store_path)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=2000)
    bar = dialog.tabs.tabBar()
    f = dialog.outcomes.fields
    assert tabbing(bar, 7) == [
        bar,
        f[("before", "vas")],
        f[("after", "vas")],
        f[("before", "mouth_mm")],
        f[("after", "mouth_mm")],
        dialog.outcomes.save_button,
        dialog.close_button,
    ]
    dialog.tabs.setCurrentIndex(1)
    a = dialog.adverse
    assert a.table.isHidden()  # no event yet: "No adverse event recorded" instead
    assert tabbing(bar, 6) == [
        bar,
        a.severity,
        a.what,
        a.action,
        a.record_button,
        dialog.close_button,
    ]
    courses = CoursesDialog(store_path, 1)
    qtbot.addWidget(courses)
    courses.show()
    courses.activateWindow()
    qtbot.waitUntil(courses.isActiveWindow, timeout=2000)
    c = courses
    assert tabbing(c.patient, 9) == [  # the table once (Tab leaves it); "Put..." is disabled
        c.patient,
        c.show_button,
        c.table,
        c.indication,
        c.sessions,
        c.interval,
        c.notes,
        c.create_button,
        c.close_button,
    ]


@pytest.mark.parametrize(("button", "answer"), [("Replace", True), ("Cancel", False)])
def test_the_real_question_is_replace_or_cancel(qtbot: QtBot, button: str, answer: bool) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()
    seen: list[str] = []

    def click() -> None:
        boxes = parent.findChildren(QMessageBox)
        if not boxes or not boxes[-1].isVisible():
            QTimer.singleShot(20, click)
            return
        box = boxes[-1]
        assert box.windowModality() == Qt.WindowModality.WindowModal  # STOP stays reachable
        assert box.defaultButton().text() == "Cancel"
        seen.extend(b.text() for b in box.buttons())
        next(b for b in box.buttons() if b.text() == button).click()

    QTimer.singleShot(0, click)
    assert confirm_replace(parent, "Replace?", "VAS pain before the session: 6 → 5") is answer
    assert sorted(seen) == ["Cancel", "Replace"]
