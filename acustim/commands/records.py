"""``acustim sessions``, ``acustim report`` and ``acustim export``: the session records (and,
with ``--course``, a treatment course's view and research export).

The store is opened read-only: these commands never change it (an older store is read as it
is, a store in a read-only directory or a backup copy reads too) and never talk to a device.
Reports and exports are written readable by their owner only (0600). Every mistake is one line
on stderr and exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from acustim.commands._common import EXIT_OK, EXIT_USAGE, UsageError, shown, whole_number
from waveforms.errors import AcustimError

# The records store, reports and exports are imported in the functions that use them, not
# with the parser: ``acustim --help`` starts fast.
if TYPE_CHECKING:
    from acustim.records import RecordStore, SessionInfo

#: ``acustim.records.DATA_DIR_ENV`` (``tests/acustim/test_cli_startup.py`` checks they agree)
_STORE_HELP = (
    "the records store (default: $ACUSTIM_DATA_DIR/records.sqlite3 if ACUSTIM_DATA_DIR is set,"
    " else records.sqlite3 in your user data directory)"
)


def _patient(text: str) -> str:
    from acustim.records import RecordsError, validate_patient_code

    try:
        return validate_patient_code(text)
    except RecordsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: The dates ``--since`` and ``--until`` take: a day either side is still a date Python can
#: turn into UTC in any time zone (9999-12-31 plus a day, or 0001-01-01 in UTC+1, cannot be).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)


def _moment(text: str) -> date | datetime:
    """YYYY-MM-DD (a whole local day) or an ISO date and time (local unless it has an offset)."""
    allowed = f"allowed {FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}"
    try:
        moment = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{shown(text)} is not a date: write YYYY-MM-DD (or YYYY-MM-DDTHH:MM); {allowed}"
        ) from None
    day = moment.date() if isinstance(moment, datetime) else moment
    if not FIRST_DAY <= day <= LAST_DAY:
        raise argparse.ArgumentTypeError(f"{shown(text)} is out of range; {allowed}")
    return moment


def _store_path(args: argparse.Namespace) -> Path:
    from acustim.records import default_store_path

    return Path(args.store).expanduser() if args.store else default_store_path()


def _open(args: argparse.Namespace) -> RecordStore:
    from acustim.records import RecordStore

    return RecordStore.open(_store_path(args), read_only=True)


#: Session ids are SQLite integers: 64-bit, counted from 1.
MAX_SESSION_ID = 2**63 - 1
MAX_SESSION_DIGITS = len(str(MAX_SESSION_ID))


def _session_id(store: RecordStore, text: str) -> int:
    from acustim.records import RecordsError

    if text == "last":
        sessions = store.sessions()
        if not sessions:
            raise UsageError(f"records store {store.path} holds no session yet")
        return sessions[-1].id
    session_id = whole_number(text, max_digits=MAX_SESSION_DIGITS)
    if session_id is None or not 1 <= session_id <= MAX_SESSION_ID:
        raise UsageError(
            f"SESSION must be a session number as 'acustim sessions' lists it, or 'last';"
            f" got {shown(text)}; allowed 1..{MAX_SESSION_ID} or last"
        )
    try:
        store.session(session_id)
    except RecordsError as exc:
        raise UsageError(f"{exc} ('acustim sessions' lists them)") from None
    return session_id


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _outcome(info: SessionInfo) -> str:
    if info.outcome is None:
        return "unfinished (no recorded end)"
    if info.outcome == "completed" or not info.reason:
        return info.outcome
    reason = info.reason if len(info.reason) <= 60 else f"{info.reason[:57]}..."
    return f"{info.outcome}: {reason}"


def session_table(sessions: Sequence[SessionInfo]) -> list[str]:
    """The lines ``acustim sessions`` prints (a header, then one line per session)."""
    rows = [("ID", "STARTED", "LENGTH", "PATIENT", "PROGRAM", "DEVICE", "OUTCOME")]
    for s in sessions:
        rows.append(
            (
                str(s.id),
                _local(s.started_at),
                _clock(s.duration_s),
                s.patient or "-",
                s.program,
                s.device,
                _outcome(s),
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [
            row[0].rjust(widths[0]),
            *(cell.ljust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)),
            row[-1],
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def cmd_sessions(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = _store_path(args)
    if not path.exists():
        print(f"no sessions recorded yet (no records store at {path})", file=out)
        return EXIT_OK
    try:
        with _open(args) as store:
            sessions = store.sessions(patient=args.patient, since=args.since, until=args.until)
    except AcustimError as exc:
        print(f"acustim: {exc}", file=err)
        return EXIT_USAGE
    if not sessions:
        filtered = args.patient or args.since or args.until
        print("no sessions match" if filtered else "no sessions recorded yet", file=out)
        return EXIT_OK
    for line in session_table(sessions):
        print(line, file=out)
    return EXIT_OK


def _session_or_course(args: argparse.Namespace, command: str) -> int | None:
    """The course id of ``--course``, or None when a SESSION is given; exactly one of them."""
    from acustim.commands.course import course_id

    if (args.session is None) == (args.course is None):
        raise UsageError(
            f"give a SESSION or --course ID, not both and not neither (see acustim {command}"
            " --help)"
        )
    return None if args.course is None else course_id(args.course)


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.report import build_report, check_output_path, write_html, write_pdf

    try:
        course = _session_or_course(args, "report")
        if not args.html and not args.pdf:
            raise UsageError("give --html FILE, --pdf FILE or both (see acustim report --help)")
        if course is not None:
            return _course_report(args, course, out)
        html = check_output_path(args.html) if args.html else None
        pdf = check_output_path(args.pdf) if args.pdf else None
        with _open(args) as store:
            session_id = _session_id(store, args.session)
            report = build_report(store, session_id)
        if html is not None:
            write_html(report, html)
            print(f"wrote {html} (session {session_id}, HTML)", file=out)
        if pdf is not None:
            write_pdf(report, pdf)
            print(f"wrote {pdf} (session {session_id}, PDF)", file=out)
    except AcustimError as exc:
        print(f"acustim: {exc}", file=err)
        return EXIT_USAGE
    return EXIT_OK


def _course_report(args: argparse.Namespace, course: int, out: TextIO) -> int:
    from acustim.report import check_output_path
    from acustim.report.course import build_course_report, write_course_html, write_course_pdf

    html = check_output_path(args.html) if args.html else None
    pdf = check_output_path(args.pdf) if args.pdf else None
    with _open(args) as store:
        report = build_course_report(store, course)
    count = len(report.sessions)
    if html is not None:
        write_course_html(report, html)
        print(f"wrote {html} (course {course}, {count} sessions, HTML)", file=out)
    if pdf is not None:
        write_course_pdf(report, pdf)
        print(f"wrote {pdf} (course {course}, {count} sessions, PDF)", file=out)
    return EXIT_OK


def _course_export(args: argparse.Namespace, course: int, out: TextIO) -> int:
    from acustim.export import export_course_csv, export_course_json
    from acustim.report import check_output_path

    csv_path = check_output_path(args.csv) if args.csv else None
    json_path = check_output_path(args.json) if args.json else None
    with _open(args) as store:
        store.course(course)
        if csv_path is not None:
            count = export_course_csv(store, course, csv_path)
            print(f"wrote {csv_path} (course {course}, {count} sessions, CSV)", file=out)
        if json_path is not None:
            count = export_course_json(store, course, json_path)
            print(f"wrote {json_path} (course {course}, {count} sessions, JSON)", file=out)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.export import export_csv, export_json
    from acustim.report import check_output_path

    try:
        course = _session_or_course(args, "export")
        if not args.csv and not args.json:
            raise UsageError("give --csv FILE, --json FILE or both (see acustim export --help)")
        if course is not None:
            return _course_export(args, course, out)
        csv_path = check_output_path(args.csv) if args.csv else None
        json_path = check_output_path(args.json) if args.json else None
        with _open(args) as store:
            session_id = _session_id(store, args.session)
            if csv_path is not None:
                count = export_csv(store, session_id, csv_path)
                print(f"wrote {csv_path} (session {session_id}, {count} frames, CSV)", file=out)
            if json_path is not None:
                count = export_json(store, session_id, json_path)
                print(f"wrote {json_path} (session {session_id}, {count} frames, JSON)", file=out)
    except AcustimError as exc:
        print(f"acustim: {exc}", file=err)
        return EXIT_USAGE
    return EXIT_OK


def register(sub: Any) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    sessions = sub.add_parser(
        "sessions",
        help="list recorded sessions (filter by patient code and date)",
        description="List the sessions in the records store, oldest first: id, start (local"
        " time), length, patient code, program, device and how the session ended.",
        epilog="examples:\n  acustim sessions\n  acustim sessions --patient P-0042"
        " --since 2025-01-01\n  acustim sessions --until 2025-03-31 --store backup.sqlite3",
        formatter_class=raw,
    )
    sessions.add_argument(
        "--patient", type=_patient, metavar="CODE", help="only this patient code (any case)"
    )
    sessions.add_argument(
        "--since", type=_moment, metavar="DATE", help="only sessions started on or after DATE"
    )
    sessions.add_argument(
        "--until", type=_moment, metavar="DATE", help="only sessions started on or before DATE"
    )
    sessions.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    sessions.set_defaults(func=cmd_sessions)

    report = sub.add_parser(
        "report",
        help="write a session report (HTML and/or PDF)",
        description="Write the report of one session: the STRICTA items that apply, the"
        " electrical characterisation per channel (waveform, frequency, pulse width, level"
        " history; peak and rms current, charge per phase and current density where the"
        " device profile is calibrated), the device's reports, the events, and plots of"
        " output and frequency over the session. Files are readable by you only (0600).",
        epilog="examples:\n  acustim report 12 --html session-12.html\n"
        "  acustim report last --pdf last.pdf --html last.html\n"
        "  acustim report --course 3 --html course-3.html",
        formatter_class=raw,
    )
    report.add_argument("session", nargs="?", metavar="SESSION", help="a session id, or 'last'")
    report.add_argument(
        "--course",
        metavar="ID",
        help="instead of a session: the course view (outcomes over the sessions as plots, the"
        " sessions, adverse events)",
    )
    report.add_argument("--html", type=Path, metavar="FILE", help="write the report as HTML")
    report.add_argument("--pdf", type=Path, metavar="FILE", help="write the report as PDF")
    report.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    report.set_defaults(func=cmd_report)

    export = sub.add_parser(
        "export",
        help="export a session's frames as CSV or JSON (for engineers)",
        description="Export every frame stored for a session. CSV: one row per frame, channel"
        " and sample slot (row, frame_index, t_s, lateness_ms, zero, channel, level_du, slot,"
        " frequency_hz, pulse_width_us, intensity). JSON: the session, its events and its"
        " frames. Floats read back exactly. Files are readable by you only (0600).",
        epilog="examples:\n  acustim export 12 --csv frames-12.csv\n"
        "  acustim export last --json last.json\n"
        "  acustim export --course 3 --csv course-3.csv --json course-3.json",
        formatter_class=raw,
    )
    export.add_argument("session", nargs="?", metavar="SESSION", help="a session id, or 'last'")
    export.add_argument(
        "--course",
        metavar="ID",
        help="instead of a session: a treatment course for research (CSV: one row per session"
        " with its outcomes before and after and its adverse events; JSON: all of it)",
    )
    export.add_argument("--csv", type=Path, metavar="FILE", help="write the frames as CSV")
    export.add_argument(
        "--json", type=Path, metavar="FILE", help="write the session and frames as JSON"
    )
    export.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    export.set_defaults(func=cmd_export)
