"""``acustim screening``: the contraindication questions, as a file to fill in.

``acustim screening > answers.toml``, edit every answer (true = yes), then
``acustim run PROGRAM --patient CODE --screening answers.toml``. The answers are kept with the
session record; later runs for the same patient use them (re-checked against each program).
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from acustim.commands._common import EXIT_OK, UsageError
from safety.screening import SCREENING_QUESTIONS


def template() -> str:
    """Every question with "?" for an answer: the file is refused until each one is answered
    (a default of "no" would let an unread question pass)."""
    lines = [
        '# acustim screening: replace every "?" by true (yes) or false (no).',
        "# A yes to a contraindication blocks the session; a yes to a precaution needs",
        "# its key listed under 'acknowledged' once you have weighed it.",
        "",
        "acknowledged = []",
        "",
        "[answers]",
    ]
    for q in SCREENING_QUESTIONS:
        lines.append(f"# {q.text} ({q.kind}: {q.on_yes})")
        lines.append(f'{q.key} = "?"')
    return "\n".join(lines) + "\n"


def load_answers(path: str) -> tuple[dict[str, bool], list[str]]:
    """Read a screening file; every problem is one line naming the file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the screening file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a screening file: {exc}") from None
    answers = data.get("answers")
    acknowledged = data.get("acknowledged", [])
    if not isinstance(answers, Mapping):
        raise UsageError(f"{path}: no [answers] table; 'acustim screening' prints a template")
    if not isinstance(acknowledged, list) or not all(isinstance(a, str) for a in acknowledged):
        raise UsageError(f"{path}: acknowledged must be a list of question keys")
    out: dict[str, bool] = {}
    for key, value in answers.items():
        if not isinstance(value, bool):
            raise UsageError(
                f"{path}: answers.{key} = {value!r} is not answered; allowed true or false"
            )
        out[str(key)] = value
    return out, list(acknowledged)


def ask(out: TextIO, read: Any) -> tuple[dict[str, bool], list[str]]:
    """Ask every question on a terminal; precautions answered yes must be acknowledged."""
    answers: dict[str, bool] = {}
    acknowledged: list[str] = []
    print("Screening (answer y or n):", file=out, flush=True)
    for q in SCREENING_QUESTIONS:
        while True:
            reply = read(f"  {q.text} [y/n] ").strip().lower()
            if reply in ("y", "yes", "n", "no"):
                break
        answers[q.key] = reply.startswith("y")
        if answers[q.key] and q.kind != "contraindication":
            weigh = read(f"    {q.on_yes}. Type 'ack' to acknowledge and go on: ").strip()
            if weigh.lower() == "ack":
                acknowledged.append(q.key)
    return answers, acknowledged


def cmd_screening(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(template())
    return EXIT_OK


def register(sub: Any) -> None:
    screening = sub.add_parser(
        "screening",
        help="print the contraindication questions as a file to fill in",
        description="Print the screening questions as a TOML file to fill in; pass it to "
        "'acustim run --screening FILE'.",
        epilog="example: acustim screening > answers.toml",
    )
    screening.set_defaults(func=cmd_screening)
