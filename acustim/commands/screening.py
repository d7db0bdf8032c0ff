"""``acustim screening``: the contraindication questions, as a file to fill in.

``acustim screening > answers.toml``, edit every answer (true = yes), then
``acustim run PROGRAM --patient CODE --screening answers.toml``. The questions come in two
parts (``safety.screening``): the day-of part is answered before every session; the full part
is kept with the session record and later runs for the same patient reuse it (re-checked
against each program) until it is older than 12 months (our policy; a setting may lower it) or
a day-of answer says the history changed. ``acustim screening --day-of`` prints the day-of
part alone, for a patient whose full screening on record is still valid.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from acustim.commands._common import EXIT_OK, UsageError, read_regular_file

if TYPE_CHECKING:
    from safety.screening import Question

# ``safety``, ``waveforms.files`` and ``tomllib`` are imported in the functions that use them,
# not with the parser: ``acustim --help`` starts fast.


def template(*, day_of_only: bool = False) -> str:
    """Every question with "?" for an answer, the day-of part first, then the full screening
    (only the day-of part when ``day_of_only``): the file is refused until each one is
    answered (a default of "no" would let an unread question pass)."""
    from safety.screening import DAY_OF_QUESTIONS, FULL_QUESTIONS, FULL_SCREENING_VALID_DAYS

    lines = [
        '# acustim screening: replace every "?" by true (yes) or false (no).',
        "# A yes to a contraindication blocks the session; a yes to a precaution needs",
        "# its key listed under 'acknowledged' once you have weighed it.",
        "# Part 1, the day of treatment: answered before every session.",
        "# Part 2, the full screening: answered at a patient's first session; later sessions",
        f"# reuse it for up to {FULL_SCREENING_VALID_DAYS} days (our policy) unless a day-of",
        "# answer says the history changed. 'acustim screening --day-of' prints part 1 alone.",
        "",
        "acknowledged = []",
        "",
        "[answers]",
    ]
    parts = [("part 1: the day of treatment (every session)", DAY_OF_QUESTIONS)]
    if not day_of_only:
        parts.append(("part 2: the full screening", FULL_QUESTIONS))
    for title, questions in parts:
        lines.append(f"# --- {title}")
        for q in questions:
            kind = "a yes asks the full screening again" if q.forces_full else q.kind
            lines.append(f"# {q.text} ({kind}: {q.on_yes})")
            lines.append(f'{q.key} = "?"')
    return "\n".join(lines) + "\n"


#: A screening file is a few dozen lines; anything far bigger is not one.
MAX_SCREENING_BYTES = 64 * 1024
_TOP_KEYS = ("acknowledged", "answers")
_LONG_NUMBER = re.compile(r"[0-9_]{4300,}")
_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _short(value: object) -> str:
    """A value for a message: short, on one line, never recursing into nested arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:40] + "...", ensure_ascii=False)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else "(a very long integer)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "(an array)"
    if isinstance(value, dict):
        return "(a table)"
    return f"(a {type(value).__name__})"


def _key_line(text: str, key: str, table: str | None = None) -> int | None:
    """The line where ``key = ...`` is written (in ``[table]`` if given), else the table's."""
    name = re.escape(key)
    match = re.search(rf"^[ \t]*(?:{name}|\"{name}\"|'{name}')[ \t]*=", text, re.MULTILINE)
    if match is None and table is not None:
        match = re.search(rf"^[ \t]*\[[ \t]*{re.escape(table)}[ \t]*\]", text, re.MULTILINE)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def _at(path: str, line: int | None) -> str:
    return path if line is None else f"{path}:{line}"


def load_answers(path: str) -> tuple[dict[str, bool], list[str]]:
    """Read a screening file; every problem is one line naming the file (and the line).

    Only a regular file of at most 64 KiB is read (a FIFO would wait for a writer forever)."""
    import tomllib

    from safety.screening import SCREENING_QUESTIONS
    from waveforms.files import deepest_nesting

    data = read_regular_file(path, "the screening file", MAX_SCREENING_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{path}:{line}: not a screening file: byte 0x{data[exc.start]:02x} is not UTF-8 "
            "text; allowed UTF-8 text ('acustim screening' prints a template)"
        ) from None
    # Arrays nested hundreds deep: refused before tomllib (which may exhaust its stack on
    # them) and before any message could recurse into them.
    depth, deepest = deepest_nesting(text)
    if depth > 2:  # acknowledged = [...] is the only array a screening file needs
        raise UsageError(
            f"{path}:{deepest}: not a screening file: arrays nested {depth} levels deep; "
            "allowed true or false for each answer and one list of keys under acknowledged"
        )
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, at_line = str(exc), None
        position = _SYNTAX_POSITION.search(message)
        if position:
            message, at_line = message[: position.start()], int(position.group(1))
        raise UsageError(
            f"{_at(path, at_line)}: not a screening file: {message}; allowed TOML "
            "('acustim screening' prints a template)"
        ) from None
    except RecursionError:  # not reached after the check above; never a traceback anyway
        raise UsageError(
            f"{path}: not a screening file: nested too deep; allowed true or false for each "
            "answer and one list of keys under acknowledged"
        ) from None
    except ValueError:  # an integer of thousands of digits: Python refuses to read it
        found = _LONG_NUMBER.search(text)
        where = path if found is None else f"{path}:{text.count(chr(10), 0, found.start()) + 1}"
        digits = 0 if found is None else len(found.group())
        raise UsageError(
            f"{where}: not a screening file: a number of {digits} digits is too long to read; "
            "allowed true or false for each answer"
        ) from None
    answers = parsed.get("answers")
    acknowledged = parsed.get("acknowledged", [])
    if not isinstance(answers, Mapping):
        raise UsageError(f"{path}: no [answers] table; 'acustim screening' prints a template")
    for key in parsed:
        if key not in _TOP_KEYS:
            raise UsageError(
                f"{_at(path, _key_line(text, key))}: {_short(key)} is an unknown key; allowed "
                "keys acknowledged and [answers] ('acustim screening' prints a template)"
            )
    known = {q.key for q in SCREENING_QUESTIONS}
    allowed_keys = ", ".join(q.key for q in SCREENING_QUESTIONS)
    if not isinstance(acknowledged, list) or not all(isinstance(a, str) for a in acknowledged):
        raise UsageError(
            f"{_at(path, _key_line(text, 'acknowledged'))}: acknowledged must be a list of "
            f"question keys; allowed a list of {allowed_keys}"
        )
    for key in acknowledged:
        if key not in known:
            raise UsageError(
                f"{_at(path, _key_line(text, 'acknowledged'))}: acknowledged {_short(key)} is "
                f"not a question; allowed {allowed_keys}"
            )
    out: dict[str, bool] = {}
    for key, value in answers.items():
        where = _at(path, _key_line(text, str(key), "answers"))
        if key not in known:
            raise UsageError(
                f"{where}: answers.{_short(key)} is not a question; allowed {allowed_keys}"
            )
        if not isinstance(value, bool):
            raise UsageError(
                f"{where}: answers.{key} = {_short(value)} is not answered; allowed true or false"
            )
        out[str(key)] = value
    return out, list(acknowledged)


def ask(
    out: TextIO, read: Any, questions: Sequence[Question] | None = None
) -> tuple[dict[str, bool], list[str]]:
    """Ask the questions on a terminal (every question, the day-of part first, unless
    ``questions`` says which: ``StartPlan.questions``); precautions answered yes must be
    acknowledged. When only the day-of part is asked and an answer says the history changed
    or an implant was fitted, the full screening is asked too."""
    from safety.screening import FULL_QUESTIONS, SCREENING_QUESTIONS

    asking = list(SCREENING_QUESTIONS if questions is None else questions)
    answers: dict[str, bool] = {}
    acknowledged: list[str] = []
    print("Screening (answer y or n):", file=out, flush=True)
    part = ""
    i = 0
    while i < len(asking):
        q = asking[i]
        i += 1
        if q.part != part:
            part = q.part
            title = "the day of treatment" if part == "day" else "the full screening"
            print(f" {title}:", file=out, flush=True)
        while True:
            reply = read(f"  {q.text} [y/n] ").strip().lower()
            if reply in ("y", "yes", "n", "no"):
                break
        answers[q.key] = reply.startswith("y")
        if answers[q.key] and q.forces_full and not any(f in asking for f in FULL_QUESTIONS):
            print(f"  {q.on_yes}.", file=out, flush=True)
            asking += FULL_QUESTIONS
        elif answers[q.key] and q.kind != "contraindication" and not q.forces_full:
            weigh = read(f"    {q.on_yes}. Type 'ack' to acknowledge and go on: ").strip()
            if weigh.lower() == "ack":
                acknowledged.append(q.key)
    return answers, acknowledged


def cmd_screening(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(template(day_of_only=args.day_of))
    return EXIT_OK


def register(sub: Any) -> None:
    screening = sub.add_parser(
        "screening",
        help="print the contraindication questions as a file to fill in",
        description="Print the screening questions as a TOML file to fill in; pass it to "
        "'acustim run --screening FILE'.",
        epilog="example: acustim screening > answers.toml",
    )
    screening.add_argument(
        "--day-of",
        action="store_true",
        help="print only the day-of questions (asked before every session), for a patient "
        "whose full screening on record is still valid",
    )
    screening.set_defaults(func=cmd_screening)
