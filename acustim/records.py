"""The session records store: every session's events and every vetted frame, kept in SQLite.

What a session delivered must be provable later, so the session runner writes each event and
each frame that was sent to the device here, and reports are built from here. The store is one
SQLite file (stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``, foreign keys on), by default
``records.sqlite3`` under the user's data directory, private to the user (directory 0700, the
file and its ``-wal``/``-shm`` files 0600).

Writes never block the caller on disk I/O once a session has started: ``add_event``,
``add_frame`` and ``end_session`` only encode the row and put it on a queue. One writer thread
owns the write connection; it takes everything queued at once and commits it in one transaction
(fsync'd), then waits for more, so a frame is on disk about one commit after it was added, and a
process killed with SIGKILL loses at most its last frame period. ``start_session`` waits for its
commit (it returns the id, and it happens before streaming).

This module never sends anything to a device and never decides what is safe. It never drops a
row silently: if the writer fails (disk full, file too large, I/O error), it keeps the error in
``writer_error`` and every later ``add_*``, ``end_session``, ``flush`` and ``close`` raises
``RecordsError``, so the session runner stops output. It never lets a ``sqlite3`` traceback
reach the user: a damaged, foreign or unreadable file is a one-line ``RecordsError`` naming the
file and what to do.

Schema (``PRAGMA user_version`` = 2, ``PRAGMA application_id`` = 0x41435354, "ACST"):

- ``patients``: code (the pseudonym the practitioner chose: 1..32 ASCII letters, digits, '-'
  or '_'; compared without regard to case, kept as first written), created_at. Nothing else:
  the app never asks for a name, a birth date or any other identifier.
- ``sessions``: id (never reused), started_at / ended_at (ISO-8601 UTC), program, device,
  profile, outcome ('completed' | 'stopped' | 'fault', NULL while running or if the process
  died), reason, meta (a JSON object), acustim_version (the software that wrote it), patient
  (a ``patients.code`` or NULL), notes (the practitioner's text), screening (a JSON object:
  the screening answers), firmware (what the device reported, NULL if unknown).
- ``events``: session_id, t_s, kind, message, data (a JSON object or NULL), in insertion order.
  The device's own reports are events too (kinds ``device_level``, ``battery``,
  ``low_battery``, ``knob``, ``firmware``, ``electrode_off``, ``link_lost``, ``reconnected``...).
- ``frames``: session_id, frame_index, t_s, lateness_ms, zero (0/1), channels, in insertion
  order. Frame indices are not forced unique: a frame that was sent is never refused.
  ``channels`` is compact JSON, one array per channel:
  ``[name, level_du, [frequency_hz...], [pulse_width_us...], [intensity...]]``.
  Floats read back exactly (JSON floats are written with ``repr``; REAL columns are IEEE
  doubles, except that SQLite stores -0.0 as 0.0).

What a report needs (``../shared/reference/safety.md`` section 6) and where it lives: device
and model, program and profile, patient, notes, screening and firmware in the session row; the
start-to-end intensity history, frequency and pulse width per channel in the frames; level
changes, warnings, stops, faults and device reports in the events; the STRICTA items
(rationale, points, needles, depth, retention, practitioner...) and the electrical
characterisation that is not in the frames (channel to point pairing, electrode type and area,
load, calibration to mA) in ``meta``, by convention under the keys ``"stricta"``,
``"channels"`` and ``"calibration"`` (see ``docs/records.md``).

Migrations: each schema version is one step of ``_MIGRATIONS``, run in one transaction with the
``user_version`` bump, so a store is either fully upgraded or left as it was. Version 2 adds
the ``patients`` table and the session columns patient, notes, screening and firmware, and
fills firmware from the ``firmware`` events a version 1 store already holds. Opening a store
written by a newer acustim is refused. ``RecordStore.open(path, read_only=True)`` reads a
store without changing it (no migration, no writer), also from a read-only directory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import queue
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import platformdirs

from waveforms.errors import AcustimError

__all__ = [
    "APPLICATION_ID",
    "DATA_DIR_ENV",
    "MAX_BACKLOG_ROWS",
    "OUTCOMES",
    "PATIENT_CODE_MAX",
    "SCHEMA_VERSION",
    "STORE_FILE_NAME",
    "ChannelFrame",
    "EventRow",
    "FrameRow",
    "PatientCodeError",
    "PatientInfo",
    "RecordStore",
    "RecordsError",
    "SessionInfo",
    "WriterStats",
    "default_store_path",
    "validate_patient_code",
]

STORE_FILE_NAME: Final = "records.sqlite3"
DATA_DIR_ENV: Final = "ACUSTIM_DATA_DIR"
APPLICATION_ID: Final = 0x41435354  # "ACST": tells our stores from other SQLite files
OUTCOMES: Final = frozenset({"completed", "stopped", "fault"})
# Rows waiting for the writer before add_* refuses: minutes of frames at 10-40 Hz. Beyond it the
# disk is stalled and the record is no longer keeping up with what is being delivered.
MAX_BACKLOG_ROWS: Final = 10_000
PATIENT_CODE_MAX: Final = 32

_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600
_BUSY_TIMEOUT_S: Final = 5.0
_START_TIMEOUT_S: Final = 10.0
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_WHAT_TO_DO: Final = f"move it aside or set {DATA_DIR_ENV} to another directory"

_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: sessions, events, frames.
    (
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            program TEXT NOT NULL,
            device TEXT NOT NULL,
            profile TEXT NOT NULL,
            outcome TEXT CHECK (outcome IN ('completed', 'stopped', 'fault')),
            reason TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            acustim_version TEXT NOT NULL,
            CHECK ((ended_at IS NULL) = (outcome IS NULL))
        )""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions (id),
            t_s REAL NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT
        )""",
        "CREATE INDEX events_by_session ON events (session_id)",
        """CREATE TABLE frames (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions (id),
            frame_index INTEGER NOT NULL,
            t_s REAL NOT NULL,
            lateness_ms REAL NOT NULL,
            zero INTEGER NOT NULL CHECK (zero IN (0, 1)),
            channels TEXT NOT NULL
        )""",
        "CREATE INDEX frames_by_session ON frames (session_id)",
        f"PRAGMA application_id = {APPLICATION_ID}",
    ),
    # 2: patients (pseudonymous codes only); session patient, notes, screening, firmware.
    (
        f"""CREATE TABLE patients (
            code TEXT PRIMARY KEY COLLATE NOCASE CHECK (
                length(code) BETWEEN 1 AND {PATIENT_CODE_MAX}
                AND code NOT GLOB '*[^A-Za-z0-9_-]*'
            ),
            created_at TEXT NOT NULL
        )""",
        "ALTER TABLE sessions ADD COLUMN patient TEXT REFERENCES patients (code)",
        "ALTER TABLE sessions ADD COLUMN notes TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE sessions ADD COLUMN screening TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE sessions ADD COLUMN firmware TEXT",
        "CREATE INDEX sessions_by_patient ON sessions (patient, started_at)",
        "CREATE INDEX sessions_by_start ON sessions (started_at)",
        # A version 1 store kept what the device reported as events: keep it in the row too.
        """UPDATE sessions SET firmware = (
            SELECT e.message FROM events AS e
            WHERE e.session_id = sessions.id AND e.kind = 'firmware'
            ORDER BY e.id LIMIT 1
        )""",
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
#: the tables each schema version must hold
_TABLES_AT: Final[dict[int, frozenset[str]]] = {
    1: frozenset({"sessions", "events", "frames"}),
    2: frozenset({"sessions", "events", "frames", "patients"}),
}
_TABLES: Final = _TABLES_AT[SCHEMA_VERSION]

_INSERT_PATIENT: Final = "INSERT OR IGNORE INTO patients (code, created_at) VALUES (?, ?)"
# The patient column takes the code as first written (codes compare without regard to case).
_INSERT_SESSION: Final = (
    "INSERT INTO sessions (started_at, program, device, profile, meta, acustim_version,"
    " patient, notes, screening, firmware)"
    " VALUES (?, ?, ?, ?, ?, ?, (SELECT code FROM patients WHERE code = ?), ?, ?, ?)"
)
_SET_FIRMWARE: Final = "UPDATE sessions SET firmware = ? WHERE id = ?"
_INSERT_EVENT: Final = (
    "INSERT INTO events (session_id, t_s, kind, message, data) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_FRAME: Final = (
    "INSERT INTO frames (session_id, frame_index, t_s, lateness_ms, zero, channels)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_END_SESSION: Final = (
    "UPDATE sessions SET ended_at = ?, outcome = ?, reason = ? WHERE id = ? AND ended_at IS NULL"
)
_SESSION_COLUMNS: Final = (
    "id, started_at, ended_at, program, device, profile, outcome, reason, meta, acustim_version"
)
#: the columns a version 2 store added, and what a version 1 store reads as in their place
_SESSION_COLUMNS_V2: Final = "patient, notes, screening, firmware"
_SESSION_COLUMNS_V1_DEFAULTS: Final = "NULL, '', '{}', NULL"
_PATIENT_CODE: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{PATIENT_CODE_MAX}}}")
_PATIENT_RULE: Final = (
    f"a patient code is a pseudonym you choose: 1 to {PATIENT_CODE_MAX} letters (A-Z, a-z),"
    " digits, '-' or '_', e.g. P-0042; never the patient's name"
)


class RecordsError(AcustimError):
    """The records store cannot be opened, read or written; the message says which file and why."""


class PatientCodeError(RecordsError):
    """A patient code is not a valid pseudonym (it may look like a name); the message says why."""


def validate_patient_code(code: object) -> str:
    """The code without surrounding blanks, or PatientCodeError saying what is wrong with it.

    A code is 1..32 ASCII letters, digits, '-' or '_': anything with a space in it looks like
    a name and is refused."""
    if not isinstance(code, str):
        raise PatientCodeError(f"a patient code must be text, got {code!r}: {_PATIENT_RULE}")
    text = code.strip()
    if _PATIENT_CODE.fullmatch(text):
        return text
    if not text:
        raise PatientCodeError(f"no patient code given: {_PATIENT_RULE}")
    if any(ch.isspace() for ch in text):
        raise PatientCodeError(
            f"patient code {text!r} has a space in it and looks like a name: {_PATIENT_RULE}"
        )
    if len(text) > PATIENT_CODE_MAX:
        shown = text if len(text) <= 40 else f"{text[:40]}..."
        raise PatientCodeError(
            f"patient code {shown!r} is {len(text)} characters long: {_PATIENT_RULE}"
        )
    bad = next(ch for ch in text if not _PATIENT_CODE.fullmatch(ch))
    raise PatientCodeError(f"patient code {text!r} contains {bad!r}: {_PATIENT_RULE}")


@dataclass(frozen=True)
class ChannelFrame:
    """One channel of a vetted frame as it was sent: level in device units, per-slot shape."""

    name: str
    level_du: int
    frequency_hz: tuple[float, ...]
    pulse_width_us: tuple[float, ...]
    intensity: tuple[float, ...]


@dataclass(frozen=True)
class FrameRow:
    """One vetted frame: its index, scheduled time (s on the session clock), how late it went."""

    index: int
    t_s: float
    lateness_ms: float
    zero: bool
    channels: tuple[ChannelFrame, ...]


@dataclass(frozen=True)
class EventRow:
    """Something that happened in a session; ``data`` must be JSON-compatible (tuples read back
    as lists)."""

    t_s: float
    kind: str
    message: str
    data: dict[str, object] | None = None


@dataclass(frozen=True)
class SessionInfo:
    """One session's row. ``ended_at`` and ``outcome`` are None while it runs, or if the process
    died before ending it."""

    id: int
    started_at: str
    ended_at: str | None
    program: str
    device: str
    profile: str
    outcome: str | None
    reason: str | None
    meta: dict[str, object]
    acustim_version: str = ""
    patient: str | None = None
    notes: str = ""
    screening: dict[str, object] = field(default_factory=dict)
    firmware: str | None = None

    @property
    def duration_s(self) -> float | None:
        """Start to end in seconds, or None while running (or if the process died, or the
        times cannot be read)."""
        if self.ended_at is None:
            return None
        try:
            started = datetime.fromisoformat(self.started_at)
            return (datetime.fromisoformat(self.ended_at) - started).total_seconds()
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class PatientInfo:
    """One patient code and how many sessions the store holds for it."""

    code: str
    created_at: str
    session_count: int
    last_session_at: str | None


@dataclass(frozen=True)
class WriterStats:
    """What the writer thread has committed so far, and how long its commits took."""

    batches: int = 0
    rows: int = 0
    last_commit_s: float = 0.0
    max_commit_s: float = 0.0
    total_commit_s: float = 0.0


def default_store_path() -> Path:
    """``$ACUSTIM_DATA_DIR/records.sqlite3`` if that is set, else under the user's data dir."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    base = Path(override).expanduser() if override else Path(platformdirs.user_data_dir("acustim"))
    return base / STORE_FILE_NAME


# --- the writer thread -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Write:
    sql: str
    params: tuple[object, ...]


@dataclass
class _Start:
    params: tuple[object, ...]
    patient: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    session_id: int | None = None


@dataclass(frozen=True)
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Stop:
    pass


_Item = _Write | _Start | _Flush | _Stop


class _Writer:
    """Owns the write connection on its own thread; knows nothing of the store object, so a
    store that is dropped without ``close()`` can still be flushed by its finalizer."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.error: RecordsError | None = None
        self.stats = WriterStats()
        self._stopping = False
        # Daemon: a store nobody closed must not hang interpreter exit; its finalizer (run at
        # exit too) still commits what was queued.
        self._thread = threading.Thread(
            target=self._run, name=f"acustim-records-writer {path}", daemon=True
        )
        self._thread.start()

    def put(self, item: _Item) -> None:
        self._queue.put(item)

    def backlog(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout_s: float) -> bool:
        """Commit what is queued, stop the thread; True if it stopped within the timeout."""
        if not self._stopping:
            self._stopping = True
            self._queue.put(_Stop())
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._apply(batch)
        finally:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                self._fail(exc, "could not close the store")

    def _apply(self, batch: list[_Item]) -> bool:
        writes = [item for item in batch if isinstance(item, _Write | _Start)]
        if writes and self.error is None:
            started_s = time.perf_counter()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for item in writes:
                    if isinstance(item, _Start):
                        if item.patient is not None:
                            self._conn.execute(_INSERT_PATIENT, (item.patient, item.params[0]))
                        item.session_id = self._conn.execute(_INSERT_SESSION, item.params).lastrowid
                    else:
                        self._conn.execute(item.sql, item.params)
                self._conn.execute("COMMIT")
            # The writer must survive anything (a dead writer would lose rows in silence): the
            # error is kept and raised to the caller on its next call.
            except Exception as exc:
                self._rollback()
                for item in writes:
                    if isinstance(item, _Start):
                        item.session_id = None
                self._fail(exc, f"could not commit {len(writes)} rows")
            else:
                took_s = time.perf_counter() - started_s
                old = self.stats
                self.stats = WriterStats(
                    batches=old.batches + 1,
                    rows=old.rows + len(writes),
                    last_commit_s=took_s,
                    max_commit_s=max(old.max_commit_s, took_s),
                    total_commit_s=old.total_commit_s + took_s,
                )
        for waiter in batch:
            if isinstance(waiter, _Start | _Flush):
                waiter.done.set()
        return any(isinstance(item, _Stop) for item in batch)

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            # The first error is the one worth reporting.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _fail(self, exc: Exception, what: str) -> None:
        if self.error is None:
            detail = str(exc).replace("\n", " ") or type(exc).__name__
            self.error = RecordsError(
                f"records store {self._path}: {what} ({detail}); the session record is"
                " incomplete from here on: stop the session, free disk space or fix the"
                f" location (or set {DATA_DIR_ENV}), then start a new session"
            )


# --- opening ---------------------------------------------------------------------------------

_umask_lock = threading.Lock()


@contextlib.contextmanager
def _restrictive_umask() -> Iterator[None]:
    # The umask is process-wide: hold it only while open() creates the directory and files.
    with _umask_lock:
        old = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(old)


def _ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        with _restrictive_umask():
            directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, _DIR_MODE)
    except OSError as exc:
        raise RecordsError(
            f"cannot create the records directory {directory} ({exc.strerror or exc}):"
            f" set {DATA_DIR_ENV} to a directory you can write"
        ) from exc


def _read_only_filesystem(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): say "permission denied"
        return False


def _check_directory_writable(path: Path) -> None:
    """SQLite makes its -wal and -shm files next to the store: the directory must be writable.

    Checked before SQLite tries, which would only say "unable to open database file"."""
    directory = path.parent
    if os.access(directory, os.W_OK | os.X_OK):
        return
    why = (
        "it is on a read-only filesystem"
        if _read_only_filesystem(directory)
        else "you cannot write there (permission denied)"
    )
    raise RecordsError(
        f"cannot record sessions in {directory}: {why}; set {DATA_DIR_ENV} to a directory you"
        " can write (sessions recorded there before can still be read: acustim sessions"
        f" --store {path})"
    )


def _not_a_store_kind(mode: int) -> str | None:
    """What a path that is not a regular file is ("a named pipe (FIFO)"), else None."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_file(path: Path, *, writable: bool = True) -> None:
    """Refuse what SQLite would fail on with an unhelpful message, before it touches the file.

    Only a regular file is opened: a FIFO would block the open forever (and SQLite after
    it), a device is no store. Checked on the path and again on the opened file."""
    try:
        kind = _not_a_store_kind(path.stat().st_mode)
        if kind is not None:
            raise RecordsError(f"{path} is {kind}, not a records store: {_WHAT_TO_DO}")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        with os.fdopen(os.open(path, flags), "rb") as fh:
            kind = _not_a_store_kind(os.fstat(fh.fileno()).st_mode)
            if kind is not None:
                raise RecordsError(f"{path} is {kind}, not a records store: {_WHAT_TO_DO}")
            head = fh.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError as exc:
        raise RecordsError(f"{path} is a directory, not a records store: {_WHAT_TO_DO}") from exc
    except OSError as exc:
        raise RecordsError(
            f"cannot read the records store {path} ({exc.strerror or exc}): make it readable"
            f" and writable by you (mode 0600), or set {DATA_DIR_ENV} to another directory"
        ) from exc
    if head and head != _SQLITE_MAGIC:
        raise RecordsError(
            f"{path} is not an acustim records store (not an SQLite database): {_WHAT_TO_DO}"
        )
    if writable and not os.access(path, os.R_OK | os.W_OK):
        raise RecordsError(
            f"cannot write the records store {path} (permission denied): make it readable"
            f" and writable by you (mode 0600), or set {DATA_DIR_ENV} to another directory"
        )


def _connect_writer(path: Path) -> sqlite3.Connection:
    with _restrictive_umask():
        try:
            # check_same_thread=False: made here, then used only by the writer thread.
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise RecordsError(
                f"cannot open the records store {path} ({exc}): {_WHAT_TO_DO}"
            ) from exc
        try:
            # Identify the file before anything writes to it: a foreign database stays as it was.
            _check_identity(path, *_identity(conn))
            _configure(conn, path)
            _migrate(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise RecordsError(_describe(path, exc)) from exc
        except BaseException:
            conn.close()
            raise
    return conn


def _describe(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return (
            f"the records store {path} is damaged ({text}): move it aside (keep it for"
            f" inspection) and acustim will start a new one, or set {DATA_DIR_ENV} to another"
            " directory"
        )
    return f"cannot use the records store {path} ({text}): {_WHAT_TO_DO}"


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if mode.lower() != "wal":
        raise RecordsError(
            f"the records store {path} cannot use a WAL journal (got {mode!r}); the location"
            f" may be a network filesystem: set {DATA_DIR_ENV} to a local directory"
        )
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # macOS: a plain fsync does not reach the medium; no effect elsewhere.
    conn.execute("PRAGMA fullfsync = ON")
    conn.execute("PRAGMA checkpoint_fullfsync = ON")


def _identity(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    names = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master")}
    return app_id, version, names


def _check_identity(path: Path, app_id: int, version: int, names: set[str]) -> None:
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise RecordsError(
                f"the records store {path} was written by a newer acustim (records schema"
                f" version {version}, this acustim knows up to {SCHEMA_VERSION}): upgrade"
                f" acustim, or set {DATA_DIR_ENV} to another directory"
            )
        required = _TABLES_AT.get(version, frozenset())
        if not names >= required:
            raise RecordsError(
                f"the records store {path} is damaged (tables missing: "
                f"{', '.join(sorted(required - names))}): {_WHAT_TO_DO}"
            )
        return
    if app_id == 0 and version == 0 and not names:
        return  # a new, empty file
    raise RecordsError(
        f"{path} is not an acustim records store (an SQLite database of something else):"
        f" {_WHAT_TO_DO}"
    )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    app_id, version, names = _identity(conn)
    _check_identity(path, app_id, version, names)
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the write lock.
        app_id, version, names = _identity(conn)
        _check_identity(path, app_id, version, names)
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if version > 0 and isinstance(exc, sqlite3.Error):
            raise RecordsError(
                f"cannot upgrade the records store {path} from schema version {version} to"
                f" {SCHEMA_VERSION} ({exc}); it was left as it was: {_WHAT_TO_DO}"
            ) from exc
        raise


def _make_private(path: Path) -> None:
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            os.chmod(target, _FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RecordsError(
                f"cannot make {target} private (mode 0600): {exc.strerror or exc}; it should"
                " belong to you"
            ) from exc


# --- encoding --------------------------------------------------------------------------------


@functools.cache
def _acustim_version() -> str:
    try:
        return metadata.version("acustim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise RecordsError(f"{what} must be a finite number, got {value!r}")
    return number


def _floats(values: Sequence[float], what: str) -> list[float]:
    return [_finite(value, what) for value in values]


def _encode_channels(channels: Sequence[ChannelFrame]) -> str:
    rows: list[list[object]] = []
    for ch in channels:
        if isinstance(ch.level_du, bool) or not isinstance(ch.level_du, int):
            raise RecordsError(f"channel {ch.name!r}: level_du must be an int, got {ch.level_du!r}")
        rows.append(
            [
                ch.name,
                ch.level_du,
                _floats(ch.frequency_hz, f"channel {ch.name!r} frequency_hz"),
                _floats(ch.pulse_width_us, f"channel {ch.name!r} pulse_width_us"),
                _floats(ch.intensity, f"channel {ch.name!r} intensity"),
            ]
        )
    return json.dumps(rows, separators=(",", ":"), allow_nan=False)


def _dumps_object(value: dict[str, object], what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecordsError(f"{what} must be JSON-compatible: {exc}") from exc


def _loads_object(text: str, where: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RecordsError(f"{where} is damaged (bad JSON: {exc})") from exc
    if not isinstance(value, dict):
        raise RecordsError(f"{where} is damaged (expected a JSON object)")
    return value


def _decode_channels(text: str, where: str) -> tuple[ChannelFrame, ...]:
    try:
        rows: Any = json.loads(text)
        channels = []
        for name, level_du, frequency_hz, pulse_width_us, intensity in rows:
            channels.append(
                ChannelFrame(
                    name=str(name),
                    level_du=int(level_du),
                    frequency_hz=tuple(float(x) for x in frequency_hz),
                    pulse_width_us=tuple(float(x) for x in pulse_width_us),
                    intensity=tuple(float(x) for x in intensity),
                )
            )
        return tuple(channels)
    except (ValueError, TypeError) as exc:
        raise RecordsError(f"{where} is damaged (bad channels: {exc})") from exc


# --- the store -------------------------------------------------------------------------------


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
        self._writer = None if conn is None else _Writer(conn, path)
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
        _ensure_directory(target.parent)
        _check_directory_writable(target)
        _check_file(target)
        conn = _connect_writer(target)
        try:
            _make_private(target)
        except RecordsError:
            conn.close()
            raise
        return cls(target, conn)

    @classmethod
    def _open_read_only(cls, target: Path) -> RecordStore:
        if target.is_dir():
            raise RecordsError(f"{target} is a directory, not a records store: {_WHAT_TO_DO}")
        if not target.exists():
            raise RecordsError(
                f"no records store at {target}: no session has been recorded there (give"
                f" another file with --store, or set {DATA_DIR_ENV})"
            )
        _check_file(target, writable=False)
        uri, snapshot_dir = _read_only_uri(target)
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
            try:
                app_id, version, names = _identity(conn)
            finally:
                conn.close()
            _check_identity(target, app_id, version, names)
        except sqlite3.Error as exc:
            _remove_snapshot(snapshot_dir)
            raise RecordsError(_describe(target, exc)) from exc
        except BaseException:
            _remove_snapshot(snapshot_dir)
            raise
        with contextlib.suppress(RecordsError):  # best effort: it may not be ours to change
            _make_private(target)
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
        meta_json = _dumps_object({} if meta is None else meta, "session meta")
        screening_json = _dumps_object(
            {} if screening is None else screening, "the screening answers"
        )
        started_at = _utc_now()
        item = _Start(
            (
                started_at,
                program,
                device,
                profile,
                meta_json,
                _acustim_version(),
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
        data = None if event.data is None else _dumps_object(event.data, f"event {event.kind!r}")
        params = (session_id, _finite(event.t_s, "event t_s"), event.kind, event.message, data)
        self._put(_Write(_INSERT_EVENT, params), session_id)

    def add_frame(self, session_id: int, frame: FrameRow) -> None:
        """Queue a vetted frame; never waits for the disk."""
        params = (
            session_id,
            int(frame.index),
            _finite(frame.t_s, "frame t_s"),
            _finite(frame.lateness_ms, "frame lateness_ms"),
            1 if frame.zero else 0,
            _encode_channels(frame.channels),
        )
        self._put(_Write(_INSERT_FRAME, params), session_id)

    def set_session_firmware(self, session_id: int, text: str) -> None:
        """Queue what the device reported as its firmware (model and version) for a running
        session, e.g. when the device reports it after the session started; never waits."""
        if not isinstance(text, str):
            raise RecordsError(f"firmware must be text, got {type(text).__name__}")
        self._put(_Write(_SET_FIRMWARE, (text, session_id)), session_id)

    def end_session(self, session_id: int, *, outcome: str, reason: str | None = None) -> None:
        """Queue the session's end; ``outcome`` is 'completed', 'stopped' or 'fault'."""
        if outcome not in OUTCOMES:
            raise RecordsError(
                f"session outcome must be one of {', '.join(sorted(OUTCOMES))}, got {outcome!r}"
            )
        params = (_utc_now(), outcome, reason, session_id)
        self._put(_Write(_END_SESSION, params), session_id, ending=True)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is committed."""
        item = _Flush()
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
                f"records store {self._path}: rows not committed within {_BUSY_TIMEOUT_S:g} s"
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

    def _put(self, item: _Write, session_id: int, *, ending: bool = False) -> None:
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

    def _check_writable(self) -> _Writer:
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
            conn = sqlite3.connect(self._read_uri, uri=True, timeout=_BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise RecordsError(_describe(self._path, exc)) from exc
        try:
            conn.execute("PRAGMA query_only = ON")
            yield conn
        except sqlite3.Error as exc:
            raise RecordsError(_describe(self._path, exc)) from exc
        finally:
            conn.close()

    def _session_select(self) -> str:
        extra = _SESSION_COLUMNS_V2 if self._version >= 2 else _SESSION_COLUMNS_V1_DEFAULTS
        return f"SELECT {_SESSION_COLUMNS}, {extra} FROM sessions"

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
            meta=_loads_object(str(row[8]), f"{where} meta"),
            acustim_version=str(row[9]),
            patient=None if row[10] is None else str(row[10]),
            notes=str(row[11]),
            screening=_loads_object(str(row[12]), f"{where} screening answers"),
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
                data=None if data is None else _loads_object(str(data), f"{self._path}: event {i}"),
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
                channels=_decode_channels(str(channels), f"{self._path}: frame row {i}"),
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
        return bool(stop(_BUSY_TIMEOUT_S))
    finally:
        _remove_snapshot(snapshot_dir)


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


def _read_only_uri(path: Path) -> tuple[str, Path | None]:
    """How to read ``path`` without writing anything next to it.

    SQLite reads a WAL store read-only if its -wal and -shm files exist or can be made. In a
    directory where nothing can be made (read-only filesystem, a backup) a store that was
    closed cleanly has everything in the main file and is read as immutable; one whose -wal
    still holds rows (its writer was killed) is copied, with its -wal, to a private temporary
    directory and read there, so no committed row is missed."""
    base = path.as_uri()
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if os.access(path.parent, os.W_OK | os.X_OK) or (wal.exists() and shm.exists()):
        return f"{base}?mode=ro", None
    if not wal.exists() or wal.stat().st_size == 0:
        return f"{base}?mode=ro&immutable=1", None
    snapshot_dir = Path(tempfile.mkdtemp(prefix="acustim-records-"))  # mode 0700
    try:
        copy = snapshot_dir / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, Path(f"{copy}-wal"))
        for made in (copy, Path(f"{copy}-wal")):
            os.chmod(made, _FILE_MODE)
    except OSError as exc:
        _remove_snapshot(snapshot_dir)
        raise RecordsError(
            f"cannot read the records store {path} from a read-only directory"
            f" ({exc.strerror or exc}): copy it, with its -wal file, somewhere you can write"
        ) from exc
    return f"{copy.as_uri()}?mode=ro", snapshot_dir


def _remove_snapshot(snapshot_dir: Path | None) -> None:
    if snapshot_dir is not None:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
