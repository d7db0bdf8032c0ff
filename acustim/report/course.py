"""The course view: one treatment course from the records store, as a model and one HTML page.

``build_course_report(store, course_id)`` reads the course, its sessions (by number), their
outcome values and adverse events; ``render_course_html`` lays out the plan and how it went
(sessions held of planned, days between them), one plot per outcome measure over the sessions
(before and after each, SVG), the sessions table and the adverse events.
``write_course_html`` / ``write_course_pdf`` write it readable by its owner only (0600), whole
or not at all; the PDF is Qt's layout of the same page (``pdf.layout_pdf``).

Reads the store only in ``build_course_report`` and never writes to it; every value from the
record goes through ``esc``; the page loads nothing (Content-Security-Policy); Qt is
imported only to make a PDF.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from acustim.records import (
    MEASURES,
    AdverseEventRow,
    CourseInfo,
    OutcomeRow,
    RecordStore,
    SessionInfo,
    acustim_version,
    condition_of,
    measure_text,
    measures_for,
)
from acustim.report.files import write_private_file
from acustim.report.html import CSS
from acustim.report.model import Plot
from acustim.report.text import clock, esc, local_time

__all__ = [
    "CourseReport",
    "build_course_report",
    "course_plots",
    "render_course_html",
    "render_course_pdf",
    "write_course_html",
    "write_course_pdf",
]


@dataclass(frozen=True)
class CourseReport:
    """What the course view shows; built from the store only."""

    course: CourseInfo
    sessions: tuple[SessionInfo, ...]
    outcomes: tuple[OutcomeRow, ...]
    adverse_events: tuple[AdverseEventRow, ...]
    measures: tuple[str, ...]  # the measures shown, in table order
    plots: tuple[Plot, ...]
    caveats: tuple[str, ...]
    store_path: Path
    generated_at: str
    acustim_version: str

    def value(self, session_id: int, timing: str, measure: str) -> float | None:
        for row in self.outcomes:
            if (row.session_id, row.timing, row.measure) == (session_id, timing, measure):
                return row.value
        return None


def build_course_report(store: RecordStore, course_id: int) -> CourseReport:
    """The course view of ``course_id`` (RecordsError if the store has no such course)."""
    course = store.course(course_id)
    sessions = tuple(store.course_sessions(course_id))
    outcomes = tuple(store.outcomes(course_id=course_id))
    adverse = tuple(store.adverse_events(course_id=course_id))
    measures = [m.key for m in measures_for(course.indication)]
    measures += sorted({o.measure for o in outcomes} - set(measures))
    caveats: list[str] = []
    if condition_of(course.indication) is None:
        caveats.append(
            f"the indication {course.indication!r} is not in acustim's outcome table: only VAS"
            " pain applies"
        )
    if len(sessions) > course.planned_sessions:
        caveats.append(
            f"{len(sessions)} sessions recorded, more than the {course.planned_sessions} planned"
        )
    unfinished = [s.course_number for s in sessions if s.outcome is None]
    if unfinished:
        caveats.append(
            "no recorded end for session"
            + ("s " if len(unfinished) > 1 else " ")
            + ", ".join(f"#{n}" for n in unfinished)
        )
    if any(a.severity == "serious" for a in adverse):
        caveats.append("a serious adverse event is recorded (see 'Adverse events')")
    return CourseReport(
        course=course,
        sessions=sessions,
        outcomes=outcomes,
        adverse_events=adverse,
        measures=tuple(measures),
        plots=course_plots(course, sessions, outcomes, measures),
        caveats=tuple(caveats),
        store_path=store.path,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        acustim_version=acustim_version(),
    )


# --- plots ------------------------------------------------------------------------------------

_W: Final = 720
_H: Final = 230
_LEFT: Final = 60
_RIGHT: Final = 110
_TOP: Final = 26
_BOTTOM: Final = 38
#: before and after (Okabe-Ito blue and vermilion: told apart by colour-blind readers)
_SERIES: Final = (("before", "#0072B2", "circle"), ("after", "#D55E00", "square"))


def course_plots(
    course: CourseInfo,
    sessions: Sequence[SessionInfo],
    outcomes: Sequence[OutcomeRow],
    measures: Sequence[str],
) -> tuple[Plot, ...]:
    """One plot per measure with at least one value: before and after each session, by the
    session's number in the course."""
    numbers = {s.id: s.course_number for s in sessions if s.course_number is not None}
    plots = []
    for key in measures:
        points = {
            timing: sorted(
                (numbers[o.session_id], o.value)
                for o in outcomes
                if o.measure == key and o.timing == timing and o.session_id in numbers
            )
            for timing, _, _ in _SERIES
        }
        if not any(points.values()):
            continue
        last = max([course.planned_sessions, *numbers.values()])
        plots.append(_plot(key, points, last))
    return tuple(plots)


def _plot(key: str, points: dict[str, list[tuple[int, float]]], last: int) -> Plot:
    measure = MEASURES[key]
    lo, hi = measure.lo, measure.hi
    inner_w, inner_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    title = f"{measure.label}" + (f" ({measure.unit})" if measure.unit else "")

    def x_of(n: float) -> float:
        return _LEFT + (inner_w * (n - 0.5) / last if last > 0 else 0)

    def y_of(v: float) -> float:
        return _TOP + inner_h * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}"'
        f' viewBox="0 0 {_W} {_H}" role="img" aria-label="{esc(title)} over the course">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="16" font-size="13" font-family="sans-serif">'
        f"{esc(title)} by session</text>",
    ]
    ticks = (
        [1, 2, 3, 4, 5, 6]
        if key == "house_brackmann"
        else [lo + (hi - lo) * k / 5 for k in range(6)]
    )
    for v in ticks:
        y = y_of(v)
        label = (
            measure_text(key, v).removesuffix(f" {measure.unit}")
            if measure.unit
            else (measure_text(key, v))
        )
        out.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="#e3e8eb"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end"'
            f' font-family="sans-serif">{esc(label)}</text>'
        )
    step = max(1, round(last / 20))
    for n in range(1, last + 1, step):
        out.append(
            f'<text x="{x_of(n):.1f}" y="{_H - _BOTTOM + 16}" font-size="11"'
            f' text-anchor="middle" font-family="sans-serif">{n}</text>'
        )
    out.append(
        f'<text x="{_LEFT + inner_w / 2:.1f}" y="{_H - 6}" font-size="11" text-anchor="middle"'
        ' font-family="sans-serif">session number in the course</text>'
    )
    out.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{inner_w}" height="{inner_h}" fill="none"'
        ' stroke="#8a96a0"/>'
    )
    for i, (timing, colour, shape) in enumerate(_SERIES):
        series = points[timing]
        if len(series) > 1:
            path = " ".join(f"{x_of(n):.1f},{y_of(v):.1f}" for n, v in series)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
        for n, v in series:
            x, y = x_of(n), y_of(v)
            tip = f"<title>session {n}, {timing}: {esc(measure_text(key, v))}</title>"
            if shape == "circle":
                out.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">{tip}</circle>'
                )
            else:
                out.append(
                    f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8"'
                    f' fill="{colour}">{tip}</rect>'
                )
        if not series:
            continue  # no legend for a series without values
        ly = _TOP + 14 + 18 * i
        lx = _W - _RIGHT + 16
        marker = (
            f'<circle cx="{lx}" cy="{ly - 4}" r="4" fill="{colour}"/>'
            if shape == "circle"
            else f'<rect x="{lx - 4}" y="{ly - 8}" width="8" height="8" fill="{colour}"/>'
        )
        out.append(
            f'{marker}<text x="{lx + 10}" y="{ly}" font-size="11" font-family="sans-serif">'
            f"{timing} session</text>"
        )
    out.append("</svg>")
    return Plot(title=f"{title} over the course", svg="\n".join(out), width=_W, height=_H)


# --- the page ---------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells are HTML already (escape values before)."""
    out = ['<table border="1" cellspacing="0" cellpadding="4" width="100%">']
    out.append("<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</table>")
    return "\n".join(out)


def _days_between(sessions: Sequence[SessionInfo]) -> list[str]:
    out = ["-"]
    for before, after in itertools.pairwise(sessions):
        try:
            days = (
                datetime.fromisoformat(after.started_at) - datetime.fromisoformat(before.started_at)
            ).total_seconds() / 86400
            out.append(f"{days:.1f}")
        except ValueError:
            out.append("?")
    return out


def render_course_html(
    report: CourseReport, *, plot_html: Callable[[int, Plot], str] | None = None
) -> str:
    """The course view as one self-contained HTML page (plots inline as SVG, unless
    ``plot_html`` says how to show plot number i)."""
    c = report.course
    condition = condition_of(c.indication)
    indication = f"{condition.key}: {condition.label}" if condition else c.indication
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        " style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>acustim course {c.id}: {esc(indication)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Course {c.id}: {esc(indication)}</h1>",
        '<p class="sub">'
        + esc(
            f"patient {c.patient} · {len(report.sessions)} of {c.planned_sessions} sessions"
            f" recorded · started {local_time(c.created_at, '%Y-%m-%d')}"
        )
        + "</p>",
    ]
    if report.caveats:
        out.append(
            "<ul>" + "".join(f'<li class="caveat">{esc(x)}</li>' for x in report.caveats) + "</ul>"
        )
    out.append('<h2 id="plan">Plan</h2>')
    measures = ", ".join(MEASURES[k].label for k in report.measures)
    plan_rows = [
        ("Patient code", esc(c.patient)),
        ("Indication", esc(indication)),
        ("Sessions planned", esc(str(c.planned_sessions))),
        ("Days between sessions", esc(str(c.interval_days))),
        ("Outcome measures", esc(measures)),
        ("Notes", esc(c.notes or "none")),
        ("Created", esc(local_time(c.created_at))),
    ]
    out.append(
        '<table border="1" cellspacing="0" cellpadding="4" width="100%">'
        + "".join(f'<tr><th width="28%">{esc(k)}</th><td>{v}</td></tr>' for k, v in plan_rows)
        + "</table>"
    )
    out.append('<h2 id="outcomes">Outcomes over the course</h2>')
    if report.plots:
        out += [
            f'<div class="plot">{p.svg if plot_html is None else plot_html(i, p)}</div>'
            for i, p in enumerate(report.plots)
        ]
    else:
        out.append("<p>No outcome values entered yet (acustim outcome add).</p>")
    out.append('<h2 id="sessions">Sessions</h2>')
    if report.sessions:
        head = ["#", "Session", "Started", "Days since previous", "Program", "Length", "Outcome"]
        head += [esc(f"{MEASURES[k].label} before / after") for k in report.measures]
        head.append("Adverse events")
        rows = []
        gaps = _days_between(report.sessions)
        for s, gap in zip(report.sessions, gaps, strict=True):
            length = s.duration_s
            cells = [
                esc(str(s.course_number)),
                esc(str(s.id)),
                esc(local_time(s.started_at, "%Y-%m-%d %H:%M")),
                esc(gap),
                esc(s.program),
                esc("-" if length is None else clock(length)),
                esc(s.outcome or "no recorded end"),
            ]
            for k in report.measures:
                pair = [report.value(s.id, t, k) for t in ("before", "after")]
                cells.append(
                    esc(" / ".join("-" if v is None else measure_text(k, v) for v in pair))
                )
            count = sum(1 for a in report.adverse_events if a.session_id == s.id)
            cells.append(esc(str(count) if count else "none"))
            rows.append(cells)
        out.append(_table(head, rows))
    else:
        out.append("<p>No sessions recorded in this course yet (acustim run ... --course).</p>")
    out.append('<h2 id="adverse">Adverse events</h2>')
    if report.adverse_events:
        number = {s.id: s.course_number for s in report.sessions}
        out.append(
            _table(
                ["#", "Session", "Severity", "What happened", "Action", "Recorded"],
                [
                    [
                        esc(str(number.get(a.session_id, "?"))),
                        esc(str(a.session_id)),
                        esc(a.severity),
                        esc(a.what),
                        esc(a.action or "-"),
                        esc(local_time(a.recorded_at, "%Y-%m-%d %H:%M")),
                    ]
                    for a in report.adverse_events
                ],
            )
        )
    else:
        out.append("<p>No adverse events recorded.</p>")
    out.append('<h2 id="record">Record</h2>')
    out.append(
        "<p>"
        + esc(
            f"Records store {report.store_path}; report made {local_time(report.generated_at)}"
            f" by acustim {report.acustim_version}. Severity words are acustim's (mild,"
            " moderate, severe; serious: death, threat to life, hospital admission or lasting"
            " harm)."
        )
        + "</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_course_pdf(report: CourseReport) -> bytes:
    """The course view as a PDF (A4), laid out by Qt from the same page (needs PySide6)."""
    from acustim.report.pdf import layout_pdf

    return layout_pdf(
        title=f"acustim course {report.course.id}",
        creator=f"acustim {report.acustim_version}",
        plots=report.plots,
        page=lambda plot_html: render_course_html(report, plot_html=plot_html),
        what=f"course {report.course.id}",
    )


def write_course_html(report: CourseReport, path: Path) -> None:
    """Write the course view as HTML, mode 0600."""
    write_private_file(path, render_course_html(report).encode("utf-8"))


def write_course_pdf(report: CourseReport, path: Path) -> None:
    """Write the course view as PDF, mode 0600."""
    write_private_file(path, render_course_pdf(report))
