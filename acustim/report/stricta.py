"""The STRICTA 2010 items of one session (``../shared/reference/safety.md`` section 6): each
value from what the practitioner entered in the store for the session (``acustim stricta``),
else ``meta["stricta"]``, else their default when the session started, else from the program
and the record (this patient's sessions or course in the store, the channels' sites, the
session length), else "not recorded"; the needle items say "not applicable" for surface
electrodes.

Pure functions of what it is given: it reads no store, never writes one, lays nothing out and
never imports Qt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from acustim.records import CourseInfo, SessionInfo
from acustim.report.model import ChannelReport, StrictaItem
from acustim.report.text import clock, local_time, meta_text

__all__ = ["stricta_items"]


def _laterality(sites: Iterable[str]) -> str:
    sides = {s.rsplit("-", 1)[-1].upper() for s in sites if "-" in s}
    if {"L", "R"} <= sides:
        return "bilateral"
    if sides == {"L"}:
        return "unilateral, left"
    if sides == {"R"}:
        return "unilateral, right"
    return "side not recorded"


def stricta_items(
    info: SessionInfo,
    history: Sequence[SessionInfo],
    channels: Sequence[ChannelReport],
    output_s: float,
    session_clock_s: float | None,
    entered: Mapping[str, str] | None = None,
    course: CourseInfo | None = None,
    defaults: Mapping[str, str] | None = None,
) -> tuple[StrictaItem, ...]:
    """The items, in STRICTA order; ``history`` is this patient's sessions in the store.

    ``entered``: this session's own entries in the store (they win); then
    ``meta["stricta"]``; then ``defaults``, the practitioner's defaults as they were when the
    session started. ``course``: the session's treatment course, for 3a-b."""
    meta = info.meta
    given = meta.get("stricta")
    st: dict[str, object] = {
        **(defaults or {}),
        **(given if isinstance(given, dict) else {}),
        **(entered or {}),
    }
    needles = meta.get("electrode") == "needle"
    not_recorded = "not recorded"
    pads = "not applicable: surface electrodes (pads)"
    title = meta_text(meta.get("program_title")) or info.program
    indication = meta_text(meta.get("indication"))
    sites = [s for ch in channels for s in ch.sites]
    levels = meta.get("levels_du")
    length_s = session_clock_s if session_clock_s is not None else info.duration_s
    length = "unknown" if length_s is None else clock(length_s)
    items = [
        StrictaItem(
            "1a", "Style of acupuncture", meta_text(st.get("style")) or not_recorded, applies=True
        ),
        StrictaItem(
            "1b",
            "Reasoning for treatment",
            meta_text(st.get("rationale"))
            or f"program {info.program} ({title})" + (f": {indication}" if indication else ""),
            applies=True,
        ),
        StrictaItem(
            "1c",
            "Extent of individualisation",
            meta_text(st.get("individualisation"))
            or "standard program; treatment levels set by the practitioner"
            + (f" ({meta_text(levels)} du at the start)" if meta_text(levels) else ""),
            applies=True,
        ),
        StrictaItem(
            "2a",
            "Needle insertions per session",
            (meta_text(st.get("needle_count")) or f"{len(set(sites))} sites (from the channels)")
            if needles
            else pads,
            applies=needles,
        ),
        StrictaItem(
            "2b",
            "Points used",
            (
                "; ".join(f"{ch.name}: {' - '.join(ch.sites)}" for ch in channels if ch.sites)
                + f" ({_laterality(sites)})"
                + (f"; by hand: {manual}" if (manual := meta_text(st.get("manual_points"))) else "")
            )
            if sites
            else meta_text(st.get("manual_points")) or not_recorded,
            applies=True,
        ),
        StrictaItem(
            "2c",
            "Depth of insertion",
            (meta_text(st.get("depth")) or not_recorded) if needles else pads,
            applies=needles,
        ),
        StrictaItem(
            "2d", "Response sought", meta_text(st.get("response")) or not_recorded, applies=True
        ),
        StrictaItem(
            "2e",
            "Stimulation (manual or electrical)",
            f"electrical, {info.device}; see the electrical characterisation below",
            applies=True,
        ),
        StrictaItem(
            "2f",
            "Needle retention time" if needles else "Electrodes in place (session length)",
            (meta_text(st.get("retention")) if needles else None)
            or f"{length} (output for {clock(output_s)})",
            applies=True,
        ),
        StrictaItem(
            "2g",
            "Needle type",
            (
                "; ".join(
                    t
                    for t in (meta_text(st.get("needle_type")), meta_text(st.get("needle_gauge")))
                    if t
                )
                or not_recorded
            )
            if needles
            else pads,
            applies=needles,
        ),
        StrictaItem(
            "3a", "Number of treatment sessions", _regimen(info, history, course), applies=True
        ),
        StrictaItem(
            "3b",
            "Frequency and duration of sessions",
            meta_text(st.get("regimen"))
            or (f"planned every {course.interval_days} days; " if course is not None else "")
            + _dates(history),
            applies=True,
        ),
        StrictaItem(
            "4a",
            "Other interventions",
            meta_text(st.get("co_interventions")) or not_recorded,
            applies=True,
        ),
        StrictaItem(
            "4b",
            "Setting and information to the patient",
            meta_text(st.get("setting")) or not_recorded,
            applies=True,
        ),
        StrictaItem(
            "5", "Practitioner background", meta_text(st.get("practitioner")) or not_recorded, True
        ),
        StrictaItem(
            "6a-b",
            "Control or comparator",
            meta_text(st.get("control")) or "not applicable: a treatment session",
            applies=bool(meta_text(st.get("control"))),
        ),
    ]
    return tuple(items)


def _regimen(info: SessionInfo, history: Sequence[SessionInfo], course: CourseInfo | None) -> str:
    if course is not None and info.course_number is not None:
        return (
            f"session {info.course_number} of {course.planned_sessions} planned in course"
            f" {course.id} ({course.indication}; {course.session_count} recorded)"
        )
    if not info.patient:
        return "no patient code recorded: sessions cannot be counted"
    ids = [s.id for s in history]
    number = ids.index(info.id) + 1 if info.id in ids else len(ids)
    return f"session {number} of {len(ids)} recorded for patient {info.patient} in this store"


def _dates(history: Sequence[SessionInfo]) -> str:
    parts = []
    for s in history:
        length = s.duration_s
        parts.append(
            f"{local_time(s.started_at, '%Y-%m-%d')}"
            + ("" if length is None else f" ({clock(length)})")
        )
    return "; ".join(parts) if parts else "not recorded"
