"""How a value reads in a report: times on the session clock, local times, free-form values of
the session record, and escaping for the HTML page and its SVG plots.

Only turns values into text: computes nothing about a session, reads no store, imports no Qt.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["ScreeningView", "clock", "esc", "local_time", "meta_text", "screening_view"]


def esc(value: object) -> str:
    """``value`` as text safe in HTML and SVG, in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def clock(t_s: float) -> str:
    """m:ss, or h:mm:ss; tenths of a second below a minute."""
    t = max(0.0, t_s)
    if t < 60:
        return f"0:{t:04.1f}"
    whole = round(t)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def local_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M:%S %z") -> str:
    """An ISO time from the record in the local time zone (as recorded if it does not parse)."""
    if iso is None:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime(fmt)
    except ValueError:
        return iso


def meta_text(value: object) -> str | None:
    """A value of the session record as text, or None when it is empty (not recorded)."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


# --- the screening record in words ---------------------------------------------------------

_PART_NAMES = {"day": "the day-of part", "full": "the full screening"}


@dataclass(frozen=True)
class ScreeningView:
    """A session's screening record in words: one row per question (its text, the answer,
    when it was answered and whether it was reused), and lines about the parts and findings.
    Nothing in it is a raw value of the record."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _answer_word(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "not answered"
    return meta_text(value) or "-"


def _question_text(key: str, texts: Mapping[str, object]) -> str:
    from safety.screening import question

    text = texts.get(key)
    if isinstance(text, str) and text:
        return text
    q = question(key)
    return q.text if q is not None else key.replace("_", " ")


def _part_of(key: str) -> str | None:
    from safety.screening import question

    q = question(key)
    return None if q is None else q.part


def _date(value: object) -> str:
    return local_time(value, "%Y-%m-%d") if isinstance(value, str) else "an unrecorded date"


def _when(part: Mapping[str, object] | None) -> str:
    """When a part was answered, in words."""
    if part is None:
        return "not recorded"
    answered = _date(part.get("answered_at"))
    if not part.get("reused"):
        return f"{answered}, for this session"
    first = part.get("answered_in_session")
    source = part.get("reused_from_session")
    started = part.get("reused_from_started_at")
    text = f"{answered}"
    if isinstance(first, int):
        text += f" in session {first}"
    text += f"; reused from session {source}" if source is not None else "; reused"
    if isinstance(started, str):
        text += f" of {_date(started)}"
    return text


def screening_view(record: Mapping[str, object]) -> ScreeningView:
    """The screening record of a session (``Admission.record``; an older record's flat
    answers too) in words: question texts with yes or no, which part was reused and from
    when, what was acknowledged and what the checks before the session said."""
    view = ScreeningView()
    answers = record.get("answers")
    if isinstance(answers, Mapping):
        flat: Mapping[str, object] = answers
    else:  # the oldest records keep the answers at the top level
        flat = {k: v for k, v in record.items() if isinstance(v, bool) or v is None}
    texts = record.get("questions")
    texts = texts if isinstance(texts, Mapping) else {}
    parts = record.get("parts")
    parts = parts if isinstance(parts, Mapping) else {}
    for key, value in flat.items():
        part = _part_of(str(key))
        entry = parts.get(part) if part is not None else None
        when = _when(entry) if isinstance(entry, Mapping) else "not recorded"
        view.rows.append((_question_text(str(key), texts), _answer_word(value), when))
    for name in ("day", "full"):
        entry = parts.get(name)
        if isinstance(entry, Mapping):
            view.notes.append(f"{_PART_NAMES[name].capitalize()}: answered {_when(entry)}.")
    if flat and not parts:
        view.notes.append(
            "When these answers were given, and whether they were reused from an earlier "
            "session, is not recorded (an older record)."
        )
    acknowledged = record.get("acknowledged")
    if isinstance(acknowledged, list) and acknowledged:
        said = "; ".join(_question_text(str(k), texts) for k in acknowledged)
        view.notes.append(f"Precautions acknowledged by the practitioner: {said}")
    current = record.get("current")
    if isinstance(current, Mapping) and isinstance(current.get("text"), str):
        view.notes.append(f"Before the session: {current['text']}.")
    return view
