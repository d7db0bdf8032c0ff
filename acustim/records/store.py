"""``RecordStore``: the store's public face. Opens, checks, queues writes, and reads.

What a session delivered must be provable later, so the session runner writes each event and
each frame that was sent to the device here, and reports are built from here.

Writes never block the caller on disk I/O once a session has started: ``add_event``,
``add_frame``, ``set_session_firmware`` and ``end_session`` only check and encode the row
(``columns.py``) and put it on the writer's queue (``writer.py``). ``start_session`` waits for
its commit (it returns the id, and it happens before streaming). The store itself never writes
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
from acustim.records.patients import validate_patient_code
from acustim.records.rows import (
    OUTCOMES,
    EventRow,
    FrameRow,
    PatientInfo,
    SessionInfo,
    WriterStats,
)
from acustim.records.schema import (
    BUSY_TIMEOUT_S,
    END_SESSION,
    INSERT_EVENT,
    INSERT_FRAME,
    SCHEMA_VERSION,
    SESSION_COLUMNS,
    SESSION_COLUMNS_V1_DEFAULTS,
    SESSION_COLUMNS_V2,
    SET_FIRMWARE,
    check_identity,
    connect_writer,
    describe_error,
    identity,
)
from acustim.records.writer import Flush, Start, Write, Writer

__all__ = ["MAX_BACKLOG_ROWS", "RecordStore"]

# Rows waiting for the writer before add_* refuses: minutes of frames at 10-40 Hz. Beyond it the
# disk is stalled and the record is no longer keeping up with what is being delivered.
MAX_BACKLOG_ROWS: Final = 10_000
_START_TIMEOUT_S: Final = 10.0


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
    ) -> int:
        """Record a new session and return its id; waits for the commit.

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

    def end_session(self, session_id: int, *, outcome: str, reason: str | None = None) -> None:
        """Queue the session's end; ``outcome`` is 'completed', 'stopped' or 'fault'."""
        if outcome not in OUTCOMES:
            raise RecordsError(
                f"session outcome must be one of {', '.join(sorted(OUTCOMES))}, got {outcome!r}"
            )
        params = (utc_now(), outcome, reason, session_id)
        self._put(Write(END_SESSION, params), session_id, ending=True)

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
        return f"SELECT {SESSION_COLUMNS}, {extra} FROM sessions"

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
