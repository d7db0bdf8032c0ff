"""The screening dialog (real Qt, offscreen): the day-of part and the full part, generated
from ``SCREENING_QUESTIONS``; the full part shown again when the history changed."""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox, QPushButton
from pytestqt.qtbot import QtBot

from gui.screening import ScreeningDialog
from safety.screening import DAY_OF_QUESTIONS, FULL_QUESTIONS, SCREENING_QUESTIONS


def ok_button(dialog: ScreeningDialog) -> QPushButton:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def test_every_question_is_asked_in_two_parts_when_none_is_on_record(qtbot: QtBot) -> None:
    dialog = ScreeningDialog("P-1")
    qtbot.addWidget(dialog)
    assert dialog.full_shown
    assert dialog.shown_keys() == [q.key for q in SCREENING_QUESTIONS]  # day-of part first
    ok = ok_button(dialog)
    assert not ok.isEnabled()
    for q in DAY_OF_QUESTIONS:
        dialog.set_answer(q.key, False)
    assert not ok.isEnabled()  # the full part is still open
    for q in FULL_QUESTIONS:
        dialog.set_answer(q.key, q.key == "anticoagulants")
    assert ok.isEnabled()
    dialog.acknowledge("anticoagulants")
    assert dialog.acknowledged() == ["anticoagulants"]
    assert set(dialog.answers()) == {q.key for q in SCREENING_QUESTIONS}


def test_only_the_day_of_part_when_the_full_one_is_reused(qtbot: QtBot) -> None:
    dialog = ScreeningDialog("P-1", questions=DAY_OF_QUESTIONS, reused="answered on 2026-11-01")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.full_shown
    assert dialog.shown_keys() == [q.key for q in DAY_OF_QUESTIONS]
    for q in DAY_OF_QUESTIONS:
        dialog.set_answer(q.key, False)
    ok = ok_button(dialog)
    assert ok.isEnabled()
    assert set(dialog.answers()) == {q.key for q in DAY_OF_QUESTIONS}
    # the history changed: the full part is shown and must be answered too
    dialog.set_answer("history_changed", True)
    assert dialog.full_shown
    assert not ok.isEnabled()
    for q in FULL_QUESTIONS:
        dialog.set_answer(q.key, False)
    assert ok.isEnabled()
    assert set(dialog.answers()) == {q.key for q in SCREENING_QUESTIONS}
    assert dialog.acknowledged() == []  # nothing to acknowledge for a changed history
    # back to no: the full part is hidden again and its answers are not given
    dialog.set_answer("history_changed", False)
    assert set(dialog.answers()) == {q.key for q in DAY_OF_QUESTIONS}
