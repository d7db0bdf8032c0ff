"""``RecordStore``: the store's public face. Opens, checks, queues writes, and reads.

What a session delivered must be provable later, so the session runner writes each event and
each frame that was sent to the device here, and reports are built from here.

Writes never block the caller on disk I/O once a session has started: ``add_event``,
``add_frame``, ``set_session_firmware`` and ``end_session`` only check and encode the row
(``columns.py``) and put it on the writer's queue (``writer.py``). ``start_session`` waits for
its commit (it returns the id, and it happens before streaming); so do the writes made around
sessions (courses, outcomes, adverse events, STRICTA items: schema 3), which check every value
(``measures.py``) before anything is queued. The store itself never writes
to SQLite: only the writer thread does. It never drops a row silently: once the writer failed,
every later ``add_*``, ``end_session``, ``flush`` and ``close`` raises its ``RecordsError``, so
the session runner stops output. It never lets a ``sqlite3`` traceback reach the user.

Readers open their own ``query_only`` connection per call and see what is committed.
``RecordStore.open(path, read_only=True)`` reads a store without changing it (no migration, no
writer), also from a read-only directory. This module never sends anything to a device and
never decides what is safe.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from acustim.records.columns import (
    acustim_version,
    decode_channels,
    dumps_object,
    encode_channels,
    finite,
    loads_object,
    utc_now,
)
from acustim.records.errors import RecordsError
from acustim.records.files import (
    DATA_DIR_ENV,
    WHAT_TO_DO,
    check_directory_writable,
    check_file,
    default_store_path,
    ensure_directory,
    make_private,
    read_only_uri,
    remove_snapshot,
)
from acustim.records.measures import (
    MEASURES,
    STRICTA_ITEMS,
    check_course_text,
    check_measure,
    check_severity,
    check_stricta,
    check_timing,
    measure_text,
    measures_for,
)
from acustim.records.patients import validate_patient_code
from acustim.records.rows import (
    OUTCOMES,
    AdverseEventRow,
    CourseInfo,
    EventRow,
    FrameRow,
    OutcomeRow,
    PatientInfo,
    SessionInfo,
    WriterStats,
)
from acustim.records.schema import (
    BUSY_TIMEOUT_S,
    END_SESSION,
    INDICATION_MAX,
    INSERT_ADVERSE,
    INSERT_COURSE,
    INSERT_EVENT,
    INSERT_FRAME,
    INSERT_OUTCOME,
    INSERT_PATIENT,
    INSERT_STRICTA_DEFAULT,
    LINK_SESSION,
    REPLACE_OUTCOME,
    SCHEMA_VERSION,
    SESSION_COLUMNS,
    SESSION_COLUMNS_V1_DEFAULTS,
    SESSION_COLUMNS_V2,
    SESSION_COLUMNS_V2_DEFAULTS,
    SESSION_COLUMNS_V3,
    SET_FIRMWARE,
    SET_NOTES,
    SET_SESSION_STRICTA,
    check_identity,
    connect_writer,
    describe_error,
    identity,
)
from acustim.records.writer import Flush, Start, Txn, Write, Writer

__all__ = ["COURSE_INTERVAL_DAYS", "COURSE_SESSIONS", "MAX_BACKLOG_ROWS", "RecordStore"]

# Rows waiting for the writer before add_* refuses: minutes of frames at 10-40 Hz. Beyond it the
# disk is stalled and the record is no longer keeping up with what is being delivered.
MAX_BACKLOG_ROWS: Final = 10_000
_START_TIMEOUT_S: Final = 10.0
#: a course's plan: sessions 1..100 and 0..365 days between them (our policy: bounds for
#: typing errors; the schema's CHECKs hold the same)
COURSE_SESSIONS: Final = (1, 100)
COURSE_INTERVAL_DAYS: Final = (0, 365)


class RecordStore:
    """The records store; make one with ``RecordStore.open()`` and close it (or use ``with``).

    ``add_event``, ``add_frame``, ``set_session_firmware`` and ``end_session`` are safe to call
    from the real-time IO thread: they never wait for the disk. Readers open their own
    connection and see what is committed; call ``flush()`` first to include rows still queued.
    A store opened with ``read_only=True`` has no writer: it only reads.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection | None,
        *,
        read_uri: str | None = None,
        version: int = SCHEMA_VERSION,
        snapshot_dir: Path | None = None,
    ) -> None:
        """Private: use ``RecordStore.open()``, which checks and prepares the file."""
        self._path = path
        self._lock = threading.Lock()
        self._closed = False
        self._open_sessions: set[int] = set()
        self._next_course: int | None = None
        # mode=rw: never create an empty store in place of one that went missing.
        self._read_uri = read_uri or f"{path.as_uri()}?mode=rw"
        self._version = version
        self._writer = None if conn is None else Writer(conn, path)
        stop = (lambda _timeout_s: True) if self._writer is None else self._writer.stop
        self._finalizer = weakref.finalize(self, _finish, stop, snapshot_dir)

    @classmethod
    def open(cls, path: Path | None = None, *, read_only: bool = False) -> RecordStore:
        """Open (creating and migrating if needed) the store at ``path``, by default
        ``default_store_path()``. Raises RecordsError for a file that cannot be used.

        ``read_only=True`` opens an existing store to read it and never changes it: no
        migration (an older store reads as it is), no writer, and it works where nothing can
        be written (a read-only directory or filesystem, a backup copy)."""
        target = (default_store_path() if path is None else Path(path)).expanduser().absolute()
        if read_only:
            return cls._open_read_only(target)
        ensure_directory(target.parent)
        check_directory_writable(target)
        check_file(target)
        conn = connect_writer(target)
        try:
            make_private(target)
        except RecordsError:
            conn.close()
            raise
        return cls(target, conn)

    @classmethod
    def _open_read_only(cls, target: Path) -> RecordStore:
        if target.is_dir():
            raise RecordsError(f"{target} is a directory, not a records store: {WHAT_TO_DO}")
        if not target.exists():
            raise RecordsError(
                f"no records store at {target}: no session has been recorded there (give"
                f" another file with --store, or set {DATA_DIR_ENV})"
            )
        check_file(target, writable=False)
        uri, snapshot_dir = read_only_uri(target)
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                app_id, version, names = identity(conn)
            finally:
                conn.close()
            check_identity(target, app_id, version, names)
        except sqlite3.Error as exc:
            remove_snapshot(snapshot_dir)
            raise RecordsError(describe_error(target, exc)) from exc
        except BaseException:
            remove_snapshot(snapshot_dir)
            raise
        with contextlib.suppress(RecordsError):  # best effort: it may not be ours to change
            make_private(target)
        return cls(target, None, read_uri=uri, version=version, snapshot_dir=snapshot_dir)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def read_only(self) -> bool:
        return self._writer is None

    @property
    def schema_version(self) -> int:
        """The schema version of the file (older than ``SCHEMA_VERSION`` only when read-only)."""
        return self._version

    @property
    def writer_error(self) -> RecordsError | None:
        """The writer's failure, if it had one; every later write call raises it."""
        return None if self._writer is None else self._writer.error

    @property
    def writer_stats(self) -> WriterStats:
        return WriterStats() if self._writer is None else self._writer.stats

    # --- writing ---

    def start_session(
        self,
        *,
        program: str,
        device: str,
        profile: str,
        meta: dict[str, object] | None = None,
        patient: str | None = None,
        notes: str = "",
        screening: dict[str, object] | None = None,
        firmware: str | None = None,
        course: int | None = None,
    ) -> int:
        """Record a new session and return its id; waits for the commit.

        ``course``: the treatment course the session joins, as its next number, in the same
        commit (the course's patient must be ``patient``); without it, the course given to
        ``link_next_session`` if any.

        ``patient`` is a pseudonymous code (``validate_patient_code``; PatientCodeError if it
        is not one): a new code is added to the patients. ``notes`` is the practitioner's
        text, ``screening`` the screening answers (JSON-compatible), ``firmware`` what the
        device reported, if known yet (else ``set_session_firmware`` later)."""
        code = None if patient is None else validate_patient_code(patient)
        if not isinstance(notes, str):
            raise RecordsError(f"session notes must be text, got {type(notes).__name__}")
        if firmware is not None and not isinstance(firmware, str):
            raise RecordsError(f"firmware must be text, got {type(firmware).__name__}")
        meta_json = dumps_object({} if meta is None else meta, "session meta")
        screening_json = dumps_object(
            {} if screening is None else screening, "the screening answers"
        )
        with self._lock:
            if course is None:
                course, self._next_course = self._next_course, None
        if course is not None:
            self._check_course_patient(self.course(course), code, "the session")
        started_at = utc_now()
        item = Start(
            (
                started_at,
                program,
                device,
                profile,
                meta_json,
                acustim_version(),
                code,
                notes,
                screening_json,
                firmware,
            ),
            patient=code,
            course=course,
        )
        with self._lock:
            writer = self._check_writable()
            writer.put(item)
        if not item.done.wait(_START_TIMEOUT_S):
            raise RecordsError(
                f"records store {self._path}: the session was not recorded within"
                f" {_START_TIMEOUT_S:g} s; the disk may be stalled: do not start the session"
            )
        self._raise_writer_error()
        session_id = item.session_id
        if session_id is None:  # only when the commit failed, which raised above
            raise RecordsError(f"records store {self._path}: the session was not recorded")
        with self._lock:
            self._open_sessions.add(session_id)
        return session_id

    def add_event(self, session_id: int, event: EventRow) -> None:
        """Queue an event; never waits for the disk."""
        data = None if event.data is None else dumps_object(event.data, f"event {event.kind!r}")
        params = (session_id, finite(event.t_s, "event t_s"), event.kind, event.message, data)
        self._put(Write(INSERT_EVENT, params), session_id)

    def add_frame(self, session_id: int, frame: FrameRow) -> None:
        """Queue a vetted frame; never waits for the disk."""
        params = (
            session_id,
            int(frame.index),
            finite(frame.t_s, "frame t_s"),
            finite(frame.lateness_ms, "frame lateness_ms"),
            1 if frame.zero else 0,
            encode_channels(frame.channels),
        )
        self._put(Write(INSERT_FRAME, params), session_id)

    def set_session_firmware(self, session_id: int, text: str) -> None:
        """Queue what the device reported as its firmware (model and version) for a running
        session, e.g. when the device reports it after the session started; never waits."""
        if not isinstance(text, str):
            raise RecordsError(f"firmware must be text, got {type(text).__name__}")
        self._put(Write(SET_FIRMWARE, (text, session_id)), session_id)

    def set_session_notes(self, session_id: int, notes: str) -> None:
        """Amend the practitioner's notes of a recorded session; waits for the commit. The
        earlier text is kept: the session gains a "notes" event holding it, so a record never
        loses what it said."""
        if not isinstance(notes, str):
            raise RecordsError(f"session notes must be text, got {type(notes).__name__}")
        info = self.session(session_id)  # RecordsError for an unknown session
        if notes == info.notes:
            return
        now = utc_now()
        started = datetime.fromisoformat(info.started_at)
        t_s = max(0.0, (datetime.fromisoformat(now) - started).total_seconds())
        data = dumps_object({"previous": info.notes, "amended_at": now}, "the notes amendment")
        self._commit(
            (
                (SET_NOTES, (notes, session_id)),
                (INSERT_EVENT, (session_id, t_s, "notes", "notes amended", data)),
            ),
            "the amended notes",
        )

    def end_session(self, session_id: int, *, outcome: str, reason: str | None = None) -> None:
        """Queue the session's end; ``outcome`` is 'completed', 'stopped' or 'fault'."""
        if outcome not in OUTCOMES:
            raise RecordsError(
                f"session outcome must be one of {', '.join(sorted(OUTCOMES))}, got {outcome!r}"
            )
        params = (utc_now(), outcome, reason, session_id)
        self._put(Write(END_SESSION, params), session_id, ending=True)

    # --- courses, outcomes, adverse events, STRICTA (schema 3) ---

    def create_course(
        self,
        *,
        patient: str,
        indication: str,
        planned_sessions: int,
        interval_days: int,
        notes: str = "",
    ) -> int:
        """Record a treatment course for ``patient`` (a code; added to the patients if new)
        and return its id; waits for the commit. ``indication`` is a key of
        ``measures.CONDITIONS`` or short text (an unknown one is "VAS only")."""
        code = validate_patient_code(patient)
        text = check_course_text(indication, "--indication", required=True, limit=INDICATION_MAX)
        sessions = _whole_in(planned_sessions, COURSE_SESSIONS, "--sessions", "sessions planned")
        interval = _whole_in(
            interval_days, COURSE_INTERVAL_DAYS, "--interval-days", "days between sessions"
        )
        note = check_course_text(notes, "--notes", required=False)
        now = utc_now()
        txn = self._commit(
            (
                (INSERT_PATIENT, (code, now)),
                (INSERT_COURSE, (code, text, sessions, interval, note, now)),
            ),
            "the course",
        )
        if txn.lastrowid is None:
            raise RecordsError(f"records store {self._path}: the course was not recorded")
        return int(txn.lastrowid)

    def link_session(self, session_id: int, course_id: int) -> int:
        """Put a recorded session into a course as its next number, and return the number;
        waits for the commit. The session must be of the course's patient and in no course."""
        course = self.course(course_id)
        info = self.session(session_id)
        self._check_course_patient(course, info.patient, f"session {session_id}")
        if info.course_id is not None:
            raise RecordsError(
                f"session {session_id} is already session {info.course_number} of course"
                f" {info.course_id}; a session belongs to one course"
            )
        txn = self._commit(((LINK_SESSION, (course_id, session_id)),), "the course link")
        if txn.rowcounts != [1]:
            raise RecordsError(
                f"session {session_id} was put into a course by someone else meanwhile"
            )
        number = self.session(session_id).course_number
        assert number is not None
        return number

    def link_next_session(self, course_id: int | None) -> None:
        """The next ``start_session`` of this store joins course ``course_id`` (checked now
        and again then), in the commit that records the session, so a session that is
        stopped or whose process dies is in its course too (``acustim run --course``).
        ``None`` takes back a link no session used (e.g. the start was refused)."""
        if course_id is not None:
            self.course(course_id)
        with self._lock:
            self._check_writable()
            self._next_course = course_id

    def add_outcome(
        self,
        session_id: int,
        *,
        timing: str,
        measure: str,
        value: object,
        replace: bool = False,
    ) -> float:
        """Record one outcome value; see ``add_outcomes``. Returns it as stored."""
        return self.add_outcomes(
            session_id, timing=timing, values={measure: value}, replace=replace
        )[measure]

    def add_outcomes(
        self,
        session_id: int,
        *,
        timing: str,
        values: dict[str, object],
        replace: bool = False,
    ) -> dict[str, float]:
        """Record outcome values (measure key to a number, or text as typed) entered
        ``timing`` ('before' or 'after') the session, all in one commit or none; returns them
        as stored. Each is checked against its measure's range (``measures.check_measure``)
        and against the measures of the session's course indication (or, in no course, its
        program); a value already recorded for the session, timing and measure is refused
        unless ``replace``."""
        when = check_timing(timing)
        if not values:
            raise RecordsError("no outcome given; allowed " + ", ".join(MEASURES))
        numbers = {measure: check_measure(measure, value) for measure, value in values.items()}
        info = self.session(session_id)
        indication = (
            info.program if info.course_id is None else self.course(info.course_id).indication
        )
        allowed = measures_for(indication)
        where = (
            f"program {info.program}"
            if info.course_id is None
            else f"course {info.course_id} ({indication})"
        )
        for measure in numbers:
            if measure not in {m.key for m in allowed}:
                chosen = MEASURES[measure]
                raise RecordsError(
                    f"{chosen.option}: {chosen.label} is not an outcome measure of {where};"
                    f" allowed {', '.join(m.option for m in allowed)}"
                )
        if not replace:
            for row in self.outcomes(session_id=session_id):
                if row.timing == when and row.measure in numbers:
                    raise RecordsError(
                        f"session {session_id} already has {MEASURES[row.measure].label} {when}"
                        f" it ({measure_text(row.measure, row.value)}); give --replace to"
                        " correct it"
                    )
        sql = REPLACE_OUTCOME if replace else INSERT_OUTCOME
        now = utc_now()
        self._commit(
            tuple((sql, (session_id, when, m, v, now)) for m, v in numbers.items()),
            "the outcomes",
        )
        return numbers

    def add_adverse_event(
        self, session_id: int, *, severity: str, what: str, action: str = ""
    ) -> int:
        """Record an adverse event of a session and return its id; waits for the commit."""
        level = check_severity(severity)
        text = check_course_text(what, "--what", required=True)
        done = check_course_text(action, "--action", required=False)
        self.session(session_id)
        txn = self._commit(
            ((INSERT_ADVERSE, (session_id, level, text, done, utc_now())),), "the adverse event"
        )
        if txn.lastrowid is None:
            raise RecordsError(f"records store {self._path}: the adverse event was not recorded")
        return int(txn.lastrowid)

    def set_stricta_defaults(self, values: dict[str, object]) -> dict[str, str]:
        """Set the practitioner's STRICTA defaults (item key to text; '' clears one); they
        apply to sessions started from now on. Returns what was stored."""
        checked = {key: check_stricta(key, value) for key, value in values.items()}
        if not checked:
            raise RecordsError("no STRICTA item given; allowed " + ", ".join(STRICTA_ITEMS))
        now = utc_now()
        self._commit(
            tuple((INSERT_STRICTA_DEFAULT, (k, v, now)) for k, v in checked.items()),
            "the STRICTA defaults",
        )
        return checked

    def set_session_stricta(self, session_id: int, values: dict[str, object]) -> dict[str, str]:
        """Enter STRICTA items for one session (over the defaults; '' says "not recorded"
        for this session). Returns what was stored."""
        checked = {key: check_stricta(key, value) for key, value in values.items()}
        if not checked:
            raise RecordsError("no STRICTA item given; allowed " + ", ".join(STRICTA_ITEMS))
        self.session(session_id)
        now = utc_now()
        self._commit(
            tuple((SET_SESSION_STRICTA, (session_id, k, v, now)) for k, v in checked.items()),
            "the STRICTA items",
        )
        return checked

    def _check_course_patient(self, course: CourseInfo, patient: str | None, what: str) -> None:
        if patient is None:
            raise RecordsError(
                f"{what} has no patient code; course {course.id} is for patient {course.patient}"
            )
        if patient.lower() != course.patient.lower():
            raise RecordsError(
                f"{what} is for patient {patient}, but course {course.id} is for patient"
                f" {course.patient}"
            )

    def _commit(self, steps: tuple[tuple[str, tuple[object, ...]], ...], what: str) -> Txn:
        if self._writer is not None and self._version < 3:  # pragma: no cover - migrated at open
            raise RecordsError(f"records store {self._path} is older than schema 3")
        item = Txn(steps)
        with self._lock:
            writer = self._check_writable()
            writer.put(item)
        if not item.done.wait(_START_TIMEOUT_S):
            raise RecordsError(
                f"records store {self._path}: {what} was not recorded within"
                f" {_START_TIMEOUT_S:g} s; the disk may be stalled"
            )
        self._raise_writer_error()
        return item

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is committed."""
        item = Flush()
        with self._lock:
            if self._closed:
                self._raise_writer_error()
                return
            if self._writer is None:
                return  # read-only: nothing is ever queued
            writer = self._check_writable()
            writer.put(item)
        if not item.done.wait(timeout_s):
            raise RecordsError(
                f"records store {self._path}: rows not committed within {timeout_s:g} s"
                f" ({writer.backlog()} still queued); the disk may be stalled"
            )
        self._raise_writer_error()

    def close(self) -> None:
        """Commit what is queued, stop the writer and close; a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._finalizer():
            raise RecordsError(
                f"records store {self._path}: rows not committed within {BUSY_TIMEOUT_S:g} s"
                " of closing; the disk may be stalled and the last rows may be lost"
            )
        self._raise_writer_error()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except RecordsError as err:
            exc.add_note(f"closing the records store also failed: {err}")

    def _put(self, item: Write, session_id: int, *, ending: bool = False) -> None:
        with self._lock:
            writer = self._check_writable()
            if session_id not in self._open_sessions:
                raise RecordsError(
                    f"records store {self._path}: session {session_id} is not running here"
                    " (never started by this store, or already ended)"
                )
            backlog = writer.backlog()
            if backlog >= MAX_BACKLOG_ROWS:
                raise RecordsError(
                    f"records store {self._path}: {backlog} rows wait for the disk; the record"
                    " is not keeping up with the session: stop the session"
                )
            if ending:
                self._open_sessions.discard(session_id)
            writer.put(item)

    def _check_writable(self) -> Writer:
        if self._closed:
            raise RecordsError(f"records store {self._path} is closed")
        if self._writer is None:
            raise RecordsError(
                f"records store {self._path} is open read-only: it cannot record sessions"
            )
        self._raise_writer_error()
        return self._writer

    def _raise_writer_error(self) -> None:
        error = self.writer_error
        if error is not None:
            raise RecordsError(str(error))

    # --- reading ---

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self._read_uri, uri=True, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise RecordsError(describe_error(self._path, exc)) from exc
        try:
            conn.execute("PRAGMA query_only = ON")
            yield conn
        except sqlite3.Error as exc:
            raise RecordsError(describe_error(self._path, exc)) from exc
        finally:
            conn.close()

    def _session_select(self) -> str:
        extra = SESSION_COLUMNS_V2 if self._version >= 2 else SESSION_COLUMNS_V1_DEFAULTS
        course = SESSION_COLUMNS_V3 if self._version >= 3 else SESSION_COLUMNS_V2_DEFAULTS
        return f"SELECT {SESSION_COLUMNS}, {extra}, {course} FROM sessions"

    def _session_row(self, row: tuple[Any, ...]) -> SessionInfo:
        session_id = int(row[0])
        where = f"{self._path}: session {session_id}"
        return SessionInfo(
            id=session_id,
            started_at=str(row[1]),
            ended_at=None if row[2] is None else str(row[2]),
            program=str(row[3]),
            device=str(row[4]),
            profile=str(row[5]),
            outcome=None if row[6] is None else str(row[6]),
            reason=None if row[7] is None else str(row[7]),
            meta=loads_object(str(row[8]), f"{where} meta"),
            acustim_version=str(row[9]),
            patient=None if row[10] is None else str(row[10]),
            notes=str(row[11]),
            screening=loads_object(str(row[12]), f"{where} screening answers"),
            firmware=None if row[13] is None else str(row[13]),
            course_id=None if row[14] is None else int(row[14]),
            course_number=None if row[15] is None else int(row[15]),
        )

    def sessions(
        self,
        patient: str | None = None,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
    ) -> list[SessionInfo]:
        """The sessions in the store, oldest first; only those of ``patient`` (a code, in any
        case) and started within ``since`` .. ``until`` when given. A ``date`` is a whole
        local day (``until`` includes it); a naive ``datetime`` is local time."""
        if self._version == 0:
            return []
        clauses: list[str] = []
        params: list[object] = []
        if patient is not None:
            if self._version < 2:
                validate_patient_code(patient)
                return []  # a version 1 store has no patients
            clauses.append("patient = (SELECT code FROM patients WHERE code = ?)")
            params.append(validate_patient_code(patient))
        if since is not None:
            clauses.append("started_at >= ?")
            params.append(_utc_text(since, end=False))
        if until is not None:
            # a date ends at the next local midnight; a datetime includes its own millisecond
            clauses.append("started_at < ?")
            params.append(_utc_text(until, end=True))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reader() as conn:
            rows = conn.execute(f"{self._session_select()}{where} ORDER BY id", params).fetchall()
        return [self._session_row(row) for row in rows]

    def session(self, session_id: int) -> SessionInfo:
        if self._version == 0:
            raise RecordsError(f"records store {self._path} has no session {session_id}")
        with self._reader() as conn:
            row = conn.execute(f"{self._session_select()} WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise RecordsError(f"records store {self._path} has no session {session_id}")
        return self._session_row(row)

    def patients(self) -> list[PatientInfo]:
        """Every patient code in the store with its number of sessions, by code."""
        if self._version < 2:
            return []
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT p.code, p.created_at, count(s.id), max(s.started_at)"
                " FROM patients AS p LEFT JOIN sessions AS s ON s.patient = p.code"
                " GROUP BY p.code ORDER BY p.code"
            ).fetchall()
        return [
            PatientInfo(
                code=str(code),
                created_at=str(created_at),
                session_count=int(count),
                last_session_at=None if last is None else str(last),
            )
            for code, created_at, count, last in rows
        ]

    def events(self, session_id: int) -> list[EventRow]:
        """The session's events in the order they were added."""
        with self._reader() as conn:
            self._require_session(conn, session_id)
            rows = conn.execute(
                "SELECT id, t_s, kind, message, data FROM events WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
        return [
            EventRow(
                t_s=float(t_s),
                kind=str(kind),
                message=str(message),
                data=None if data is None else loads_object(str(data), f"{self._path}: event {i}"),
            )
            for i, t_s, kind, message, data in rows
        ]

    def frames(self, session_id: int) -> list[FrameRow]:
        """The session's frames in the order they were added."""
        with self._reader() as conn:
            self._require_session(conn, session_id)
            rows = conn.execute(
                "SELECT id, frame_index, t_s, lateness_ms, zero, channels FROM frames"
                " WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
        return [
            FrameRow(
                index=int(index),
                t_s=float(t_s),
                lateness_ms=float(lateness_ms),
                zero=bool(zero),
                channels=decode_channels(str(channels), f"{self._path}: frame row {i}"),
            )
            for i, index, t_s, lateness_ms, zero, channels in rows
        ]

    def courses(self, patient: str | None = None) -> list[CourseInfo]:
        """The treatment courses, oldest first; only ``patient``'s (a code, any case) if given.
        A store older than schema 3 has none."""
        code = None if patient is None else validate_patient_code(patient)
        if self._version < 3:
            return []
        where = " WHERE c.patient = (SELECT code FROM patients WHERE code = ?)" if code else ""
        with self._reader() as conn:
            rows = conn.execute(
                f"{_COURSE_SELECT}{where} GROUP BY c.id ORDER BY c.id", (code,) if code else ()
            ).fetchall()
        return [_course_row(row) for row in rows]

    def course(self, course_id: int) -> CourseInfo:
        if self._version >= 3:
            with self._reader() as conn:
                row = conn.execute(
                    f"{_COURSE_SELECT} WHERE c.id = ? GROUP BY c.id", (course_id,)
                ).fetchone()
            if row is not None:
                return _course_row(row)
        raise RecordsError(
            f"records store {self._path} has no course {course_id} ('acustim course list'"
            " lists them)"
        )

    def course_sessions(self, course_id: int) -> list[SessionInfo]:
        """The sessions of a course, by their number in it."""
        self.course(course_id)
        with self._reader() as conn:
            rows = conn.execute(
                f"{self._session_select()} WHERE course_id = ? ORDER BY course_number",
                (course_id,),
            ).fetchall()
        return [self._session_row(row) for row in rows]

    def outcomes(
        self, *, session_id: int | None = None, course_id: int | None = None
    ) -> list[OutcomeRow]:
        """Outcome values of one session, or of every session of a course, in entry order."""
        if self._version < 3:
            return []
        sql, params = _by_session_or_course(
            "SELECT o.id, o.session_id, o.timing, o.measure, o.value, o.recorded_at"
            " FROM outcomes AS o",
            "o",
            session_id,
            course_id,
        )
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            OutcomeRow(int(i), int(sid), str(t), str(m), float(v), str(at))
            for i, sid, t, m, v, at in rows
        ]

    def adverse_events(
        self, *, session_id: int | None = None, course_id: int | None = None
    ) -> list[AdverseEventRow]:
        """Adverse events of one session, or of every session of a course, in entry order."""
        if self._version < 3:
            return []
        sql, params = _by_session_or_course(
            "SELECT a.id, a.session_id, a.severity, a.what, a.action, a.recorded_at"
            " FROM adverse_events AS a",
            "a",
            session_id,
            course_id,
        )
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            AdverseEventRow(int(i), int(sid), str(sev), str(what), str(act), str(at))
            for i, sid, sev, what, act, at in rows
        ]

    def stricta_defaults(self, at: str | None = None) -> dict[str, str]:
        """The practitioner's STRICTA defaults (items cleared with '' left out), as they were
        at ``at`` (an ISO-8601 UTC time, e.g. a session's ``started_at``), else now."""
        if self._version < 3:
            return {}
        clause = " WHERE set_at <= ?" if at is not None else ""
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT item, value FROM stricta_defaults{clause} ORDER BY id",
                (at,) if at is not None else (),
            ).fetchall()
        latest = {str(item): str(value) for item, value in rows}
        return {k: v for k, v in latest.items() if v}

    def session_stricta(self, session_id: int) -> dict[str, str]:
        """The STRICTA items entered for one session ('' means "not recorded" for it)."""
        if self._version < 3:
            return {}
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT item, value FROM session_stricta WHERE session_id = ? ORDER BY item",
                (session_id,),
            ).fetchall()
        return {str(item): str(value) for item, value in rows}

    def _require_session(self, conn: sqlite3.Connection, session_id: int) -> None:
        if (
            self._version == 0
            or conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None
        ):
            raise RecordsError(f"records store {self._path} has no session {session_id}")


def _finish(stop: Any, snapshot_dir: Path | None) -> bool:
    """Stop the writer (committing what is queued) and remove a read-only snapshot."""
    try:
        return bool(stop(BUSY_TIMEOUT_S))
    finally:
        remove_snapshot(snapshot_dir)


def _utc_text(moment: datetime | date, *, end: bool) -> str:
    """A bound for ``started_at`` (ISO-8601 UTC, milliseconds, so text order is time order)."""
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.astimezone()
        if end:
            aware += timedelta(milliseconds=1)
    else:
        day = moment + timedelta(days=1) if end else moment
        aware = datetime(day.year, day.month, day.day).astimezone()
    return aware.astimezone(UTC).isoformat(timespec="milliseconds")


_COURSE_SELECT: Final = (
    "SELECT c.id, c.patient, c.indication, c.planned_sessions, c.interval_days, c.notes,"
    " c.created_at, count(s.id) FROM courses AS c LEFT JOIN sessions AS s ON s.course_id = c.id"
)


def _course_row(row: tuple[Any, ...]) -> CourseInfo:
    return CourseInfo(
        id=int(row[0]),
        patient=str(row[1]),
        indication=str(row[2]),
        planned_sessions=int(row[3]),
        interval_days=int(row[4]),
        notes=str(row[5]),
        created_at=str(row[6]),
        session_count=int(row[7]),
    )


def _by_session_or_course(
    select: str, alias: str, session_id: int | None, course_id: int | None
) -> tuple[str, tuple[object, ...]]:
    if (session_id is None) == (course_id is None):
        raise RecordsError("give a session or a course, not both and not neither")
    if session_id is not None:
        return f"{select} WHERE {alias}.session_id = ? ORDER BY {alias}.id", (session_id,)
    return (
        f"{select} JOIN sessions AS s ON s.id = {alias}.session_id WHERE s.course_id = ?"
        f" ORDER BY s.course_number, {alias}.id",
        (course_id,),
    )


def _whole_in(value: object, bounds: tuple[int, int], option: str, what: str) -> int:
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RecordsError(
            f"{option} {value!r}: {what} is not a whole number in range; allowed {lo}..{hi}"
            " (our policy)"
        )
    return value
