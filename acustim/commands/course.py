"""``acustim course``, ``acustim outcome``, ``acustim adverse`` and ``acustim stricta``: treatment
courses and what the practitioner enters around sessions.

A course is one patient's plan for one indication (sessions planned, days between them);
``acustim run --course ID`` links a session to it and numbers it. Outcome measures (which
apply depends on the indication: ``acustim.records.measures``), adverse events and STRICTA
items are entered here and kept in the records store; reports and exports read them.

These commands never talk to a device. The listing commands open the store read-only; the
others open it to write (which upgrades an older store, all at once or not at all). Every
mistake is one line on stderr naming the option and what is allowed, exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from acustim.commands._common import EXIT_OK, EXIT_USAGE, UsageError, shown, whole_number
from acustim.commands.records import _STORE_HELP, MAX_SESSION_DIGITS, MAX_SESSION_ID
from waveforms.errors import AcustimError

# The store is imported in the functions that use it: ``acustim --help`` starts fast.
if TYPE_CHECKING:
    from acustim.records import CourseInfo, RecordStore, SessionInfo

#: the outcome options, as ``acustim.records.MEASURES`` names them (a test checks they agree)
MEASURE_OPTIONS = (
    ("vas", "--vas", "X", "VAS pain 0..10"),
    ("mouth_mm", "--mouth-mm", "MM", "maximal mouth opening 0..80 mm (TMJ)"),
    ("house_brackmann", "--house-brackmann", "GRADE", "House-Brackmann grade I..VI"),
    ("sunnybrook", "--sunnybrook", "SCORE", "Sunnybrook composite score 0..100"),
    ("headache_days", "--headache-days", "DAYS", "headache days in the last month 0..31"),
)
#: the STRICTA options, as ``acustim.records.STRICTA_ITEMS`` names them (a test checks)
STRICTA_OPTIONS = (
    ("style", "1a style of acupuncture (TCM, Western medical...)"),
    ("rationale", "1b reasoning for treatment, with references"),
    ("individualisation", "1c extent of individualisation"),
    ("needle_count", "2a needle insertions per session (0..100)"),
    ("manual_points", "2b points needled by hand, not on a channel"),
    ("depth", "2c depth of insertion (units or tissue level)"),
    ("response", "2d response sought (de qi, muscle twitch)"),
    ("retention", "2f needle retention time"),
    ("needle_type", "2g needle type (length, maker, material)"),
    ("needle_gauge", "2g needle diameter (gauge or mm)"),
    ("regimen", "3b frequency and duration of sessions"),
    ("co_interventions", "4a other interventions (moxa, exercise advice...)"),
    ("setting", "4b setting and information given to the patient"),
    ("practitioner", "5 practitioner background (qualification, years in practice)"),
    ("control", "6a-b control or comparator"),
)
#: course ids are SQLite integers too
MAX_COURSE_ID = MAX_SESSION_ID


def _store_path(args: argparse.Namespace) -> Path:
    from acustim.records import default_store_path

    return Path(args.store).expanduser() if args.store else default_store_path()


def _open_read(args: argparse.Namespace) -> RecordStore:
    from acustim.records import RecordStore

    return RecordStore.open(_store_path(args), read_only=True)


def _open_write(args: argparse.Namespace, *, existing: bool = True) -> RecordStore:
    """The store to write in; ``existing``: refuse to make a new, empty one (an outcome needs
    a recorded session, so a missing store is a wrong --store)."""
    from acustim.records import DATA_DIR_ENV, RecordStore

    path = _store_path(args)
    if existing and not path.exists():
        raise UsageError(
            f"no records store at {path}: no session has been recorded there (give another"
            f" file with --store, or set {DATA_DIR_ENV})"
        )
    return RecordStore.open(path)


def _id(text: str, option: str, what: str, listing: str) -> int:
    number = whole_number(text, max_digits=MAX_SESSION_DIGITS)
    if number is None or not 1 <= number <= MAX_SESSION_ID:
        raise UsageError(
            f"{option} {shown(text)}: not a {what} number; allowed 1..{MAX_SESSION_ID}"
            f" ('{listing}' lists them)"
        )
    return number


def session_id(text: str, option: str = "--session") -> int:
    return _id(text, option, "session", "acustim sessions")


def course_id(text: str, option: str = "--course") -> int:
    return _id(text, option, "course", "acustim course list")


def _whole(text: str, option: str, what: str, bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    number = whole_number(text, max_digits=4)
    if number is None or not lo <= number <= hi:
        raise UsageError(
            f"{option} {shown(text)}: {what} is not a whole number in range; allowed"
            f" {lo}..{hi} (our policy)"
        )
    return number


def _run(args: argparse.Namespace, err: TextIO, action: Any) -> int:
    try:
        action()
    except AcustimError as exc:
        print(f"acustim: {exc}", file=err)
        return EXIT_USAGE
    return EXIT_OK


def _date(iso: str | None) -> str:
    from acustim.report.text import local_time

    return "-" if iso is None else local_time(iso, "%Y-%m-%d %H:%M")


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _indication(course: CourseInfo) -> str:
    from acustim.records import condition_of, measures_for

    condition = condition_of(course.indication)
    measures = ", ".join(m.label for m in measures_for(course.indication))
    if condition is None:
        return f"{course.indication} (not in the outcome table: {measures} only)"
    return f"{condition.key}: {condition.label}; outcomes {measures}"


# --- acustim course ---------------------------------------------------------------------------


def cmd_course_new(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.records import (
        CONDITIONS,
        COURSE_INTERVAL_DAYS,
        COURSE_SESSIONS,
        condition_of,
    )

    def action() -> None:
        sessions = _whole(args.sessions, "--sessions", "sessions planned", COURSE_SESSIONS)
        interval = _whole(
            args.interval_days, "--interval-days", "days between sessions", COURSE_INTERVAL_DAYS
        )
        condition = condition_of(args.indication)
        # a program name stands for the condition it treats
        indication = condition.key if condition is not None else args.indication
        with _open_write(args, existing=False) as store:
            new = store.create_course(
                patient=args.patient,
                indication=indication,
                planned_sessions=sessions,
                interval_days=interval,
                notes=args.notes,
            )
            course = store.course(new)
        print(
            f"course {new} for patient {course.patient}: {_indication(course)};"
            f" {sessions} sessions, {interval} days apart",
            file=out,
        )
        if condition is None:
            print(
                f"  note: indication {shown(args.indication)} is not in the outcome table, so"
                f" only VAS pain applies; known: {', '.join(CONDITIONS)} (or a program name)",
                file=out,
            )

    return _run(args, err, action)


def cmd_course_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        path = _store_path(args)
        if not path.exists():
            print(f"no courses yet (no records store at {path})", file=out)
            return
        with _open_read(args) as store:
            courses = store.courses(patient=args.patient)
        if not courses:
            print("no courses match" if args.patient else "no courses yet", file=out)
            return
        rows = [("ID", "PATIENT", "INDICATION", "SESSIONS", "INTERVAL", "CREATED")]
        for c in courses:
            rows.append(
                (
                    str(c.id),
                    c.patient,
                    c.indication,
                    f"{c.session_count}/{c.planned_sessions}",
                    f"{c.interval_days} d",
                    _date(c.created_at),
                )
            )
        for line in _table(rows):
            print(line, file=out)

    return _run(args, err, action)


def course_lines(store: RecordStore, course: CourseInfo) -> list[str]:
    """What ``acustim course show`` prints: the plan, the sessions with their outcomes, and
    the adverse events."""
    from acustim.records import MEASURES, measure_text, measures_for

    sessions = store.course_sessions(course.id)
    outcomes = store.outcomes(course_id=course.id)
    adverse = store.adverse_events(course_id=course.id)
    lines = [
        f"course {course.id}: patient {course.patient}, created {_date(course.created_at)}",
        f"  indication {_indication(course)}",
        f"  plan {course.planned_sessions} sessions, {course.interval_days} days apart;"
        f" {len(sessions)} recorded",
    ]
    if course.notes:
        lines.append(f"  notes {course.notes}")
    keys = [m.key for m in measures_for(course.indication)]
    keys += [o.measure for o in outcomes if o.measure not in keys and o.measure in MEASURES]
    values = {(o.session_id, o.timing, o.measure): o.value for o in outcomes}
    if not sessions:
        lines.append("  no sessions yet (acustim run ... --course ID)")
        return lines
    head = ["#", "SESSION", "STARTED", "PROGRAM", "OUTCOME"]
    head += [f"{MEASURES[k].label} before/after".upper() for k in keys]
    rows: list[Sequence[str]] = [head]
    by_id: dict[int, SessionInfo] = {}
    for s in sessions:
        by_id[s.id] = s
        cells = [str(s.course_number), str(s.id), _date(s.started_at), s.program, s.outcome or "-"]
        for k in keys:
            pair = [values.get((s.id, t, k)) for t in ("before", "after")]
            cells.append("/".join("-" if v is None else measure_text(k, v) for v in pair))
        rows.append(cells)
    lines += ["  " + line for line in _table(rows)]
    if adverse:
        lines.append("  adverse events:")
        for a in adverse:
            number = by_id[a.session_id].course_number if a.session_id in by_id else "?"
            action = f"; action: {a.action}" if a.action else ""
            lines.append(f"    #{number} session {a.session_id}: {a.severity}: {a.what}{action}")
    else:
        lines.append("  no adverse events recorded")
    return lines


def cmd_course_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        wanted = course_id(args.course, "COURSE")
        with _open_read(args) as store:
            lines = course_lines(store, store.course(wanted))
        for line in lines:
            print(line, file=out)

    return _run(args, err, action)


def cmd_course_link(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        sid = session_id(args.session)
        cid = course_id(args.course)
        with _open_write(args) as store:
            number = store.link_session(sid, cid)
        print(f"session {sid} is session {number} of course {cid}", file=out)

    return _run(args, err, action)


def check_run_course(args: argparse.Namespace) -> int | None:
    """``acustim run --course ID``: the course, checked before anything opens (it exists in
    the store the session is recorded in, and is for ``--patient``, which it fills in when
    not given); None without ``--course``."""
    if args.course is None:
        return None
    if args.no_record:
        raise UsageError("--course with --no-record: a course links the session's record")
    wanted = course_id(args.course)
    with _open_read(args) as store:
        course = store.course(wanted)
    if args.patient is None:
        args.patient = course.patient
    elif args.patient.strip().lower() != course.patient.lower():
        raise UsageError(
            f"--patient {shown(args.patient)} with --course {wanted}: course {wanted} is for"
            f" patient {course.patient}; allowed --patient {course.patient} or no --patient"
        )
    return wanted


# --- acustim outcome --------------------------------------------------------------------------


def cmd_outcome_add(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.records import MEASURES, measure_text

    def action() -> None:
        sid = session_id(args.session)
        given = [(key, getattr(args, key)) for key, *_ in MEASURE_OPTIONS]
        given = [(key, value) for key, value in given if value is not None]
        from acustim.records.measures import check_measure

        for key, value in given:  # every value checked before the store is opened
            check_measure(key, value)
        if not given:
            raise UsageError(
                "give at least one outcome: "
                + ", ".join(f"{option} {metavar}" for _, option, metavar, _ in MEASURE_OPTIONS)
            )
        with _open_write(args) as store:
            stored = store.add_outcomes(
                sid, timing=args.timing, values=dict(given), replace=args.replace
            ).items()
        text = ", ".join(f"{MEASURES[k].label} {measure_text(k, v)}" for k, v in stored)
        print(f"session {sid}, {args.timing}: {text}", file=out)

    return _run(args, err, action)


# --- acustim adverse --------------------------------------------------------------------------


def cmd_adverse_add(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        from acustim.records.measures import check_severity

        sid = session_id(args.session)
        severity = check_severity(args.severity)
        with _open_write(args) as store:
            new = store.add_adverse_event(
                sid, severity=severity, what=args.what, action=args.action
            )
        print(f"adverse event {new} recorded for session {sid} ({severity})", file=out)
        if severity == "serious":
            print(
                "  a serious adverse event: report it as your regulator and setting require",
                file=out,
            )

    return _run(args, err, action)


# --- acustim stricta --------------------------------------------------------------------------


def _stricta_given(args: argparse.Namespace) -> dict[str, object]:
    given = {key: getattr(args, key) for key, _ in STRICTA_OPTIONS}
    chosen: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if not chosen:
        raise UsageError(
            "give at least one STRICTA item, e.g. --style 'TCM' (see --help for all of them)"
        )
    return chosen


def cmd_stricta_defaults(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        chosen = _stricta_given(args)
        with _open_write(args, existing=False) as store:
            stored = store.set_stricta_defaults(chosen)
        for key, value in stored.items():
            print(f"default {key}: {value or '(cleared)'}", file=out)
        print("  the defaults apply to sessions started from now on", file=out)

    return _run(args, err, action)


def cmd_stricta_set(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        sid = session_id(args.session)
        chosen = _stricta_given(args)
        with _open_write(args) as store:
            stored = store.set_session_stricta(sid, chosen)
        for key, value in stored.items():
            print(f"session {sid} {key}: {value or '(not recorded)'}", file=out)

    return _run(args, err, action)


def cmd_stricta_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def action() -> None:
        path = _store_path(args)
        if not path.exists() and args.session is None:
            print(f"no STRICTA defaults set (no records store at {path})", file=out)
            return
        with _open_read(args) as store:
            if args.session is None:
                values = store.stricta_defaults()
                source = {key: "default" for key in values}
            else:
                sid = session_id(args.session)
                info = store.session(sid)
                values = store.stricta_defaults(at=info.started_at)
                source = {key: "default" for key in values}
                for key, value in store.session_stricta(sid).items():
                    values[key] = value
                    source[key] = "this session"
        for key, _ in STRICTA_OPTIONS:
            if values.get(key):
                print(f"{key}: {values[key]} ({source[key]})", file=out)
            else:
                print(f"{key}: not recorded", file=out)

    return _run(args, err, action)


# --- the parser -------------------------------------------------------------------------------


def _add_stricta_options(parser: argparse.ArgumentParser) -> None:
    for key, text in STRICTA_OPTIONS:
        parser.add_argument(
            f"--{key.replace('_', '-')}", dest=key, metavar="TEXT", help=f"{text}; '' clears"
        )
    parser.add_argument("--store", metavar="PATH", help=_STORE_HELP)


def register(sub: Any) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    course = sub.add_parser(
        "course",
        help="treatment courses: a patient's plan for one indication",
        description="A treatment course is one patient's plan for one indication: how many"
        " sessions, how many days apart. 'acustim run ... --course ID' links a session to"
        " it and gives it the next number; 'acustim report --course ID' and 'acustim export"
        " --course ID' show the outcomes over the course.",
        epilog="examples:\n  acustim course new --patient P-0042 --indication tmd --sessions 6"
        " --interval-days 7\n  acustim course list --patient P-0042\n  acustim course show 1\n"
        "  acustim course link --session 12 --course 1",
        formatter_class=raw,
    )
    course_sub = course.add_subparsers(dest="course_command", required=True)
    new = course_sub.add_parser(
        "new",
        help="start a treatment course",
        description="Start a course. INDICATION is one of tmd, facial-muscle-tension,"
        " bells-palsy, tension-headache, migraine, trigeminal-pain, general-pain, or a"
        " program name (its condition is used); which outcome measures apply follows from"
        " it. Anything else is kept as written and has VAS pain only.",
        epilog="examples:\n  acustim course new --patient P-0042 --indication tmd --sessions 6"
        " --interval-days 7\n  acustim course new --patient B-7 --indication"
        " bells-palsy-subacute-left --sessions 10 --interval-days 2",
        formatter_class=raw,
    )
    new.add_argument("--patient", required=True, metavar="CODE", help="the patient code")
    new.add_argument("--indication", required=True, metavar="INDICATION", help="see above")
    new.add_argument("--sessions", required=True, metavar="N", help="sessions planned (1..100)")
    new.add_argument(
        "--interval-days", required=True, metavar="D", help="days between sessions (0..365)"
    )
    new.add_argument("--notes", default="", metavar="TEXT", help="the plan in words (no names)")
    new.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    new.set_defaults(func=cmd_course_new)

    listing = course_sub.add_parser(
        "list",
        help="list the courses",
        description="List the courses: id, patient, indication, sessions recorded of planned,"
        " interval, created.",
        epilog="examples:\n  acustim course list\n  acustim course list --patient P-0042",
        formatter_class=raw,
    )
    listing.add_argument("--patient", metavar="CODE", help="only this patient code (any case)")
    listing.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    listing.set_defaults(func=cmd_course_list)

    show = course_sub.add_parser(
        "show",
        help="show a course: plan, sessions and outcomes, adverse events",
        epilog="example:\n  acustim course show 1",
        formatter_class=raw,
    )
    show.add_argument("course", metavar="COURSE", help="a course id ('acustim course list')")
    show.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    show.set_defaults(func=cmd_course_show)

    link = course_sub.add_parser(
        "link",
        help="put a recorded session into a course",
        description="Put a session recorded without --course (or in the app) into a course, as"
        " its next number. The session must be of the course's patient and in no course.",
        epilog="example:\n  acustim course link --session 12 --course 1",
        formatter_class=raw,
    )
    link.add_argument("--session", required=True, metavar="ID", help="a session id")
    link.add_argument("--course", required=True, metavar="ID", help="a course id")
    link.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    link.set_defaults(func=cmd_course_link)

    outcome = sub.add_parser(
        "outcome",
        help="enter outcome measures before or after a session",
        description="Outcome measures of a session, entered before or after it.",
        epilog="examples:\n  acustim outcome add --session 12 --before --vas 6 --mouth-mm 31\n"
        "  acustim outcome add --session 12 --after --vas 3.5 --mouth-mm 36",
        formatter_class=raw,
    )
    outcome_sub = outcome.add_subparsers(dest="outcome_command", required=True)
    add = outcome_sub.add_parser(
        "add",
        help="enter outcome values for a session",
        description="Enter outcome values measured before or after a session. Which measures"
        " apply depends on the course's indication (or, for a session in no course, its"
        " program): TMJ and facial muscle tension: VAS and mouth opening; Bell's palsy: VAS,"
        " House-Brackmann and Sunnybrook; tension-type headache and migraine: VAS and"
        " headache days; any other: VAS only. A value already entered is refused unless"
        " --replace.",
        epilog="examples:\n  acustim outcome add --session 12 --before --vas 6 --mouth-mm 31\n"
        "  acustim outcome add --session 14 --after --house-brackmann III --sunnybrook 62\n"
        "  acustim outcome add --session 12 --after --vas 3 --replace",
        formatter_class=raw,
    )
    add.add_argument("--session", required=True, metavar="ID", help="a session id")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--before", dest="timing", action="store_const", const="before", help="before it"
    )
    when.add_argument(
        "--after", dest="timing", action="store_const", const="after", help="after it"
    )
    for key, option, metavar, text in MEASURE_OPTIONS:
        add.add_argument(option, dest=key, metavar=metavar, help=text)
    add.add_argument("--replace", action="store_true", help="correct a value entered before")
    add.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    add.set_defaults(func=cmd_outcome_add)

    adverse = sub.add_parser(
        "adverse",
        help="record an adverse event of a session",
        description="Adverse events of a session, with their severity.",
        epilog="example:\n  acustim adverse add --session 12 --severity mild --what 'skin"
        " redness under pad A' --action 'pads moved'",
        formatter_class=raw,
    )
    adverse_sub = adverse.add_subparsers(dest="adverse_command", required=True)
    adv = adverse_sub.add_parser(
        "add",
        help="record an adverse event",
        description="Record an adverse event. Severity (our policy): mild, moderate, severe;"
        " serious for death, threat to life, hospital admission or lasting harm, whatever"
        " its intensity.",
        epilog="example:\n  acustim adverse add --session 12 --severity mild --what 'skin"
        " redness under pad A' --action 'pads moved'",
        formatter_class=raw,
    )
    adv.add_argument("--session", required=True, metavar="ID", help="a session id")
    adv.add_argument(
        "--severity", required=True, metavar="LEVEL", help="mild, moderate, severe or serious"
    )
    adv.add_argument("--what", required=True, metavar="TEXT", help="what happened (no names)")
    adv.add_argument("--action", default="", metavar="TEXT", help="what was done about it")
    adv.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    adv.set_defaults(func=cmd_adverse_add)

    stricta = sub.add_parser(
        "stricta",
        help="enter the STRICTA items: your defaults, or one session's",
        description="The STRICTA 2010 items a report cannot know from the record. Defaults"
        " apply to every session started after they were set; a session's own entry wins.",
        epilog="examples:\n  acustim stricta set-defaults --style 'TCM' --practitioner"
        " 'licensed acupuncturist, 12 years'\n  acustim stricta set --session 12 --response"
        " 'de qi sought' --co-interventions 'jaw exercises'\n  acustim stricta show --session 12",
        formatter_class=raw,
    )
    stricta_sub = stricta.add_subparsers(dest="stricta_command", required=True)
    defaults = stricta_sub.add_parser(
        "set-defaults",
        help="set your defaults (for sessions started from now on)",
        epilog="example:\n  acustim stricta set-defaults --style 'TCM' --setting 'private"
        " practice'",
        formatter_class=raw,
    )
    _add_stricta_options(defaults)
    defaults.set_defaults(func=cmd_stricta_defaults)
    one = stricta_sub.add_parser(
        "set",
        help="enter items for one session",
        epilog="example:\n  acustim stricta set --session 12 --needle-count 6 --depth '10 mm'",
        formatter_class=raw,
    )
    one.add_argument("--session", required=True, metavar="ID", help="a session id")
    _add_stricta_options(one)
    one.set_defaults(func=cmd_stricta_set)
    show_st = stricta_sub.add_parser(
        "show",
        help="show the defaults, or what a session's report uses",
        epilog="examples:\n  acustim stricta show\n  acustim stricta show --session 12",
        formatter_class=raw,
    )
    show_st.add_argument("--session", metavar="ID", help="a session id")
    show_st.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    show_st.set_defaults(func=cmd_stricta_show)
