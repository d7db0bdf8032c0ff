"""The screening dialog: every contraindication question, answered before the first session of
a patient. No answer is preset (an unread question must not pass as a "no"); a precaution
answered yes needs its own acknowledgement. The rules are ``safety.screening``'s (through
``acustim``, as every question the pre-start plan leaves open); this only asks."""

from __future__ import annotations

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


class ScreeningDialog(QDialog):
    """Ask the questions; ``answers()`` and ``acknowledged()`` once accepted."""

    def __init__(self, patient: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        who = f"patient {patient}" if patient else "this session"
        self.setWindowTitle(f"Screening for {who}")
        self.resize(760, 640)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Answer every question. A yes to a contraindication blocks the session; a yes to a "
            "precaution needs your acknowledgement. The answers are kept with the record."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        body = QWidget()
        grid = QGridLayout(body)
        self._groups: dict[str, QButtonGroup] = {}
        self._acks: dict[str, QCheckBox] = {}
        row = 0
        for q in SCREENING_QUESTIONS:
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
        text = QLabel(f"{q.text}  <i>({q.kind})</i>")
        text.setWordWrap(True)
        yes, no = QRadioButton("Yes"), QRadioButton("No")
        group = QButtonGroup(self)
        group.addButton(yes, 1)
        group.addButton(no, 0)
        group.idToggled.connect(lambda *_: self._update())
        self._groups[q.key] = group
        grid.addWidget(text, row, 0)
        grid.addWidget(yes, row, 1)
        grid.addWidget(no, row, 2)
        if q.kind != "contraindication":
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

    def _update(self) -> None:
        for key, ack in self._acks.items():
            ack.setVisible(self._groups[key].checkedId() == 1)
        answered = all(g.checkedId() in (0, 1) for g in self._groups.values())
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(answered)
        ok.setToolTip("" if answered else "answer every question first")

    def answers(self) -> dict[str, bool]:
        return {k: g.checkedId() == 1 for k, g in self._groups.items() if g.checkedId() >= 0}

    def acknowledged(self) -> list[str]:
        return [k for k, a in self._acks.items() if a.isChecked() and self.answers().get(k)]


def ask_screening(
    parent: QWidget | None, patient: str | None
) -> tuple[dict[str, bool], list[str]] | None:
    """Show the dialog; None if the practitioner cancelled."""
    dialog = ScreeningDialog(patient, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.answers(), dialog.acknowledged()
