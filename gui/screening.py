"""The screening dialog: the contraindication questions in two parts, the day of treatment
(asked before every session) and the full screening (asked at a patient's first session, and
again when it is older than the policy allows or the history changed). No answer is preset
(an unread question must not pass as a "no"); a precaution answered yes needs its own
acknowledgement. The rules are ``safety.screening``'s (through ``acustim``, as every question
the pre-start plan leaves open: ``StartPlan.questions``); this only asks."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from acustim import SCREENING_QUESTIONS, ScreeningQuestion

_PART_TITLES = {
    "day": "Part 1, the day of treatment: asked before every session",
    "full": "Part 2, the full screening: kept with the record and reused while it is valid",
}


class ScreeningDialog(QDialog):
    """Ask the questions; ``answers()`` and ``acknowledged()`` once accepted.

    ``questions``: what to ask (``StartPlan.questions``); None asks every question. When only
    the day-of part is asked (the patient's full screening on record is reused, ``reused``
    says from when), a yes to a question that says the history changed shows the full part,
    which must then be answered too."""

    def __init__(
        self,
        patient: str | None,
        parent: QWidget | None = None,
        questions: Sequence[ScreeningQuestion] | None = None,
        reused: str = "",
    ) -> None:
        super().__init__(parent)
        who = f"patient {patient}" if patient else "this session"
        self.setWindowTitle(f"Screening for {who}")
        self.resize(760, 640)
        asked = {q.key for q in (SCREENING_QUESTIONS if questions is None else questions)}
        #: the full part was not asked: it is shown when a day-of answer needs it
        self._full_optional = not any(
            q.part == "full" and q.key in asked for q in SCREENING_QUESTIONS
        )
        layout = QVBoxLayout(self)
        text = (
            "Answer every question shown. A yes to a contraindication blocks the session; a "
            "yes to a precaution needs your acknowledgement. The answers are kept with the "
            "record."
        )
        if self._full_optional:
            text += (
                " The patient's full screening on record is reused"
                + (f" ({reused})" if reused else "")
                + ": answer the day-of questions. If the history changed or an implant was "
                "fitted, the full screening is asked again."
            )
        intro = QLabel(text)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        body = QWidget()
        grid = QGridLayout(body)
        self._groups: dict[str, QButtonGroup] = {}
        self._acks: dict[str, QCheckBox] = {}
        self._rows: dict[str, list[QWidget]] = {}
        self._part_of: dict[str, str] = {}
        self._headers: dict[str, QLabel] = {}
        row = 0
        for part in ("day", "full"):  # the day-of part is asked before every session
            header = QLabel(f"<b>{_PART_TITLES[part]}</b>")
            self._headers[part] = header
            grid.addWidget(header, row, 0, 1, 3)
            row += 1
            for q in SCREENING_QUESTIONS:
                if q.part == part:
                    row = self._add(grid, row, q)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        layout.addWidget(scroll, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._update()

    def _add(self, grid: QGridLayout, row: int, q: ScreeningQuestion) -> int:
        label = "asks the full screening again" if q.forces_full else q.kind
        text = QLabel(f"{q.text}  <i>({label})</i>")
        text.setWordWrap(True)
        yes, no = QRadioButton("Yes"), QRadioButton("No")
        group = QButtonGroup(self)
        group.addButton(yes, 1)
        group.addButton(no, 0)
        group.idToggled.connect(lambda *_: self._update())
        self._groups[q.key] = group
        self._part_of[q.key] = q.part
        grid.addWidget(text, row, 0)
        grid.addWidget(yes, row, 1)
        grid.addWidget(no, row, 2)
        self._rows[q.key] = [text, yes, no]
        if q.kind != "contraindication" and not q.forces_full:
            ack = QCheckBox(f"Acknowledged: {q.on_yes}")
            ack.setVisible(False)
            ack.toggled.connect(lambda *_: self._update())
            self._acks[q.key] = ack
            grid.addWidget(ack, row + 1, 0, 1, 3)
            return row + 2
        return row + 1

    def set_answer(self, key: str, yes: bool) -> None:
        """For tests and scripted use: answer one question."""
        button = self._groups[key].button(1 if yes else 0)
        button.setChecked(True)

    def acknowledge(self, key: str) -> None:
        self._acks[key].setChecked(True)

    @property
    def full_shown(self) -> bool:
        """Whether the full screening is asked (always, unless only the day-of part was
        asked and no day-of answer needs it)."""
        if not self._full_optional:
            return True
        forcing = {q.key for q in SCREENING_QUESTIONS if q.forces_full}
        return any(self._groups[k].checkedId() == 1 for k in forcing if k in self._groups)

    def shown_keys(self) -> list[str]:
        """The questions shown now, which must all be answered."""
        full = self.full_shown
        return [k for k in self._groups if self._part_of[k] == "day" or full]

    def _update(self) -> None:
        full = self.full_shown
        if "full" in self._headers:
            self._headers["full"].setVisible(full)
        for key, widgets in self._rows.items():
            for w in widgets:
                w.setVisible(self._part_of[key] == "day" or full)
        shown = set(self.shown_keys())
        for key, ack in self._acks.items():
            ack.setVisible(key in shown and self._groups[key].checkedId() == 1)
        answered = all(self._groups[k].checkedId() in (0, 1) for k in shown)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(answered)
        ok.setToolTip("" if answered else "answer every question first")

    def answers(self) -> dict[str, bool]:
        groups = self._groups
        return {
            k: groups[k].checkedId() == 1 for k in self.shown_keys() if groups[k].checkedId() >= 0
        }

    def acknowledged(self) -> list[str]:
        answers = self.answers()
        return [k for k, a in self._acks.items() if a.isChecked() and answers.get(k)]


def ask_screening(
    parent: QWidget | None,
    patient: str | None,
    questions: Sequence[ScreeningQuestion] | None = None,
    reused: str = "",
) -> tuple[dict[str, bool], list[str]] | None:
    """Show the dialog (``questions``: ``StartPlan.questions``, None for every question);
    None if the practitioner cancelled."""
    dialog = ScreeningDialog(patient, parent, questions, reused)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.answers(), dialog.acknowledged()
