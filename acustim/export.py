"""Exports of one session's stored frames for engineers: CSV (one row per sample) and JSON.

CSV columns (``CSV_COLUMNS``), one row per frame x channel x sample slot, in stored order::

    row, frame_index, t_s, lateness_ms, zero, channel, level_du, slot,
    frequency_hz, pulse_width_us, intensity

``row`` numbers the stored frames from 0 (frame indices may repeat, rows never do); ``t_s`` is
the frame's time on the session clock (slot ``k`` of ``n`` starts ``k/n`` of a frame later);
floats are written with ``repr`` so they read back bit for bit. A frame with no channels is one
row with the channel columns empty; a channel with no samples is one row with ``slot`` empty.

JSON: ``{"format": "acustim-session", "version": 1, "session": {...}, "events": [...],
"frames": [{"index", "t_s", "lateness_ms", "zero", "channels": [{"name", "level_du",
"frequency_hz": [...], "pulse_width_us": [...], "intensity": [...]}]}]}``.

A treatment course for research (``export_course_csv`` / ``export_course_json``): CSV is one
row per session of the course, by number (``course_csv_columns``: the course, the session,
then ``<measure>_before`` / ``<measure>_after`` for every measure of the indication or with a
value, then the adverse events: count, worst severity, and their descriptions); values are the
stored numbers (House-Brackmann 1..6 for I..VI), empty where none was entered. JSON:
``{"format": "acustim-course", "version": 1, "course": {...}, "measures": [...],
"sessions": [{... "course_number", "outcomes": {"before": {...}, "after": {...}},
"adverse_events": [...], "stricta": {...}}]}``.

``load_csv`` / ``load_json`` (files) and ``frames_from_csv`` / ``frames_from_json`` (text; CSV
text must be read with ``newline=""``) read them back into ``FrameRow`` values. Files are
written readable by their owner only (0600), whole or not at all. Never writes to the store.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from acustim.records import (
    MEASURES,
    SEVERITIES,
    ChannelFrame,
    EventRow,
    FrameRow,
    RecordStore,
    SessionInfo,
    measures_for,
)
from acustim.report import ReportError, write_private_file

__all__ = [
    "COURSE_JSON_FORMAT",
    "CSV_COLUMNS",
    "JSON_FORMAT",
    "course_csv_columns",
    "course_to_csv",
    "course_to_json",
    "export_course_csv",
    "export_course_json",
    "export_csv",
    "export_json",
    "frames_from_csv",
    "frames_from_json",
    "frames_to_csv",
    "load_csv",
    "load_json",
    "session_to_json",
]

CSV_COLUMNS: Final = (
    "row",
    "frame_index",
    "t_s",
    "lateness_ms",
    "zero",
    "channel",
    "level_du",
    "slot",
    "frequency_hz",
    "pulse_width_us",
    "intensity",
)
JSON_FORMAT: Final = "acustim-session"
_JSON_VERSION: Final = 1


def _cell(values: Sequence[float], k: int) -> str:
    return repr(values[k]) if k < len(values) else ""


def frames_to_csv(frames: Iterable[FrameRow]) -> str:
    """The frames as CSV text (header first)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row, frame in enumerate(frames):
        head = [row, frame.index, repr(frame.t_s), repr(frame.lateness_ms), int(frame.zero)]
        if not frame.channels:
            writer.writerow([*head, "", "", "", "", "", ""])
        for ch in frame.channels:
            slots = max(len(ch.frequency_hz), len(ch.pulse_width_us), len(ch.intensity))
            if slots == 0:
                writer.writerow([*head, ch.name, ch.level_du, "", "", "", ""])
            for k in range(slots):
                writer.writerow(
                    [
                        *head,
                        ch.name,
                        ch.level_du,
                        k,
                        _cell(ch.frequency_hz, k),
                        _cell(ch.pulse_width_us, k),
                        _cell(ch.intensity, k),
                    ]
                )
    return out.getvalue()


def frames_from_csv(text: str) -> list[FrameRow]:
    """Read frames back from ``frames_to_csv`` text (ReportError if it is not that)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ReportError("the CSV is empty (expected an acustim frames export)") from None
    if tuple(header) != CSV_COLUMNS:
        raise ReportError(
            f"not an acustim frames export: the columns are {header[:4]}..., expected"
            f" {', '.join(CSV_COLUMNS)}"
        )
    frames: list[FrameRow] = []
    current: dict[str, Any] | None = None
    channels: list[dict[str, Any]] = []

    def finish() -> None:
        if current is not None:
            frames.append(
                FrameRow(
                    index=current["index"],
                    t_s=current["t_s"],
                    lateness_ms=current["lateness_ms"],
                    zero=current["zero"],
                    channels=tuple(
                        ChannelFrame(
                            c["name"],
                            c["level_du"],
                            tuple(c["f"]),
                            tuple(c["w"]),
                            tuple(c["i"]),
                        )
                        for c in channels
                    ),
                )
            )

    for line, cells in enumerate(reader, start=2):
        try:
            row, index, t_s, lateness_ms, zero, name, level, slot, f, w, i = cells
            if current is None or int(row) != current["row"]:
                finish()
                current = {
                    "row": int(row),
                    "index": int(index),
                    "t_s": float(t_s),
                    "lateness_ms": float(lateness_ms),
                    "zero": zero == "1",
                }
                channels = []
            if level == "":
                continue  # a frame without channels
            if slot in ("", "0"):
                channels.append({"name": name, "level_du": int(level), "f": [], "w": [], "i": []})
            for key, cell in (("f", f), ("w", w), ("i", i)):
                if cell != "":
                    channels[-1][key].append(float(cell))
        except (ValueError, IndexError) as exc:
            raise ReportError(f"CSV line {line}: not an acustim frames row ({exc})") from None
    finish()
    return frames


def _session_dict(info: SessionInfo) -> dict[str, Any]:
    out = dataclasses.asdict(info)
    out["duration_s"] = info.duration_s
    return out


def session_to_json(
    info: SessionInfo, frames: Iterable[FrameRow], events: Iterable[EventRow] = ()
) -> str:
    """The session row, its events and its frames as one JSON document."""
    document = {
        "format": JSON_FORMAT,
        "version": _JSON_VERSION,
        "session": _session_dict(info),
        "events": [dataclasses.asdict(e) for e in events],
        "frames": [
            {
                "index": f.index,
                "t_s": f.t_s,
                "lateness_ms": f.lateness_ms,
                "zero": f.zero,
                "channels": [
                    {
                        "name": c.name,
                        "level_du": c.level_du,
                        "frequency_hz": list(c.frequency_hz),
                        "pulse_width_us": list(c.pulse_width_us),
                        "intensity": list(c.intensity),
                    }
                    for c in f.channels
                ],
            }
            for f in frames
        ],
    }
    return json.dumps(document, indent=1, allow_nan=False) + "\n"


def frames_from_json(text: str) -> list[FrameRow]:
    """Read the frames back from ``session_to_json`` text (ReportError if it is not that)."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != JSON_FORMAT:
            raise ReportError(f'not an acustim session export (no "format": {JSON_FORMAT!r})')
        return [
            FrameRow(
                index=int(f["index"]),
                t_s=float(f["t_s"]),
                lateness_ms=float(f["lateness_ms"]),
                zero=bool(f["zero"]),
                channels=tuple(
                    ChannelFrame(
                        str(c["name"]),
                        int(c["level_du"]),
                        tuple(float(x) for x in c["frequency_hz"]),
                        tuple(float(x) for x in c["pulse_width_us"]),
                        tuple(float(x) for x in c["intensity"]),
                    )
                    for c in f["channels"]
                ),
            )
            for f in document["frames"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"not an acustim session export ({exc})") from None


def export_csv(store: RecordStore, session_id: int, path: Path) -> int:
    """Write the session's frames as CSV (mode 0600); returns how many frames."""
    frames = store.frames(session_id)
    write_private_file(path, frames_to_csv(frames).encode("utf-8"))
    return len(frames)


def export_json(store: RecordStore, session_id: int, path: Path) -> int:
    """Write the session, its events and its frames as JSON (mode 0600); returns how many
    frames."""
    info = store.session(session_id)
    frames = store.frames(session_id)
    text = session_to_json(info, frames, store.events(session_id))
    write_private_file(path, text.encode("utf-8"))
    return len(frames)


def _read(path: Path) -> str:
    try:
        with Path(path).expanduser().open(encoding="utf-8", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path} ({exc})") from None


def load_csv(path: Path) -> list[FrameRow]:
    """The frames of a CSV export (ReportError if it is not one)."""
    return frames_from_csv(_read(path))


def load_json(path: Path) -> list[FrameRow]:
    """The frames of a JSON export (ReportError if it is not one)."""
    return frames_from_json(_read(path))


COURSE_JSON_FORMAT: Final = "acustim-course"
_COURSE_HEAD: Final = (
    "course_id",
    "patient",
    "indication",
    "planned_sessions",
    "interval_days",
    "course_number",
    "session_id",
    "started_at",
    "ended_at",
    "duration_s",
    "program",
    "device",
    "session_outcome",
)
_COURSE_TAIL: Final = ("adverse_events", "adverse_worst_severity", "adverse_descriptions")


def _course_measures(store: RecordStore, course_id: int) -> list[str]:
    course = store.course(course_id)
    keys = [m.key for m in measures_for(course.indication)]
    entered = {o.measure for o in store.outcomes(course_id=course_id)}
    return keys + sorted(k for k in entered - set(keys) if k in MEASURES)


def course_csv_columns(measures: Sequence[str]) -> tuple[str, ...]:
    """The CSV header of a course export with these measures."""
    pairs = tuple(f"{k}_{t}" for k in measures for t in ("before", "after"))
    return (*_COURSE_HEAD, *pairs, *_COURSE_TAIL)


def course_to_csv(store: RecordStore, course_id: int) -> tuple[str, int]:
    """The course as CSV text, one row per session; and how many sessions."""
    course = store.course(course_id)
    sessions = store.course_sessions(course_id)
    measures = _course_measures(store, course_id)
    values = {
        (o.session_id, o.timing, o.measure): o.value for o in store.outcomes(course_id=course_id)
    }
    adverse = store.adverse_events(course_id=course_id)
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(course_csv_columns(measures))
    for s in sessions:
        mine = [a for a in adverse if a.session_id == s.id]
        worst = max((SEVERITIES.index(a.severity) for a in mine), default=None)
        duration = s.duration_s
        writer.writerow(
            [
                course.id,
                course.patient,
                course.indication,
                course.planned_sessions,
                course.interval_days,
                s.course_number,
                s.id,
                s.started_at,
                s.ended_at or "",
                "" if duration is None else repr(duration),
                s.program,
                s.device,
                s.outcome or "",
                *(
                    "" if (v := values.get((s.id, t, k))) is None else repr(v)
                    for k in measures
                    for t in ("before", "after")
                ),
                len(mine),
                "" if worst is None else SEVERITIES[worst],
                " | ".join(f"{a.severity}: {a.what}" for a in mine),
            ]
        )
    return out.getvalue(), len(sessions)


def course_to_json(store: RecordStore, course_id: int) -> tuple[str, int]:
    """The course, its sessions with their outcomes, adverse events and STRICTA entries, as
    one JSON document; and how many sessions."""
    course = store.course(course_id)
    sessions = store.course_sessions(course_id)
    outcomes = store.outcomes(course_id=course_id)
    adverse = store.adverse_events(course_id=course_id)
    rows = []
    for s in sessions:
        entries = {
            t: {o.measure: o.value for o in outcomes if o.session_id == s.id and o.timing == t}
            for t in ("before", "after")
        }
        given = s.meta.get("stricta")
        stricta = {
            **store.stricta_defaults(at=s.started_at),
            **(given if isinstance(given, dict) else {}),
            **store.session_stricta(s.id),
        }
        rows.append(
            {
                **_session_dict(s),
                "outcomes": entries,
                "adverse_events": [dataclasses.asdict(a) for a in adverse if a.session_id == s.id],
                "stricta": {k: v for k, v in stricta.items() if v},
            }
        )
    measures = _course_measures(store, course_id)
    document = {
        "format": COURSE_JSON_FORMAT,
        "version": _JSON_VERSION,
        "course": dataclasses.asdict(course),
        "measures": [
            {
                "key": k,
                "label": MEASURES[k].label,
                "unit": MEASURES[k].unit,
                "min": MEASURES[k].lo,
                "max": MEASURES[k].hi,
                "source": MEASURES[k].source,
            }
            for k in measures
        ],
        "sessions": rows,
    }
    return json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False) + "\n", len(rows)


def export_course_csv(store: RecordStore, course_id: int, path: Path) -> int:
    """Write the course as CSV (mode 0600); returns how many sessions."""
    text, count = course_to_csv(store, course_id)
    write_private_file(path, text.encode("utf-8"))
    return count


def export_course_json(store: RecordStore, course_id: int, path: Path) -> int:
    """Write the course as JSON (mode 0600); returns how many sessions."""
    text, count = course_to_json(store, course_id)
    write_private_file(path, text.encode("utf-8"))
    return count
