"""The schema: its tables at each version, the migrations, and the statements run on them.

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

Migrations: each schema version is one step of ``_MIGRATIONS``, run in one transaction with the
``user_version`` bump, so a store is either fully upgraded or left as it was. Version 2 adds
the ``patients`` table and the session columns patient, notes, screening and firmware, and
fills firmware from the ``firmware`` events a version 1 store already holds. Opening a store
written by a newer acustim is refused, and so is an SQLite file that is not ours, before
anything is written to it.

``connect_writer`` opens the one write connection (identified, configured: WAL,
``synchronous=FULL``, foreign keys; migrated), which the writer thread then owns. The only
writes made here are the migrations, at open, before the writer starts; this module never
writes a session's rows, and never migrates a store opened read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from acustim.records.errors import RecordsError
from acustim.records.files import DATA_DIR_ENV, WHAT_TO_DO, restrictive_umask
from acustim.records.patients import PATIENT_CODE_MAX

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_S",
    "END_SESSION",
    "INSERT_EVENT",
    "INSERT_FRAME",
    "INSERT_PATIENT",
    "INSERT_SESSION",
    "SCHEMA_VERSION",
    "SESSION_COLUMNS",
    "SESSION_COLUMNS_V1_DEFAULTS",
    "SESSION_COLUMNS_V2",
    "SET_FIRMWARE",
    "check_identity",
    "connect_writer",
    "describe_error",
    "identity",
]

APPLICATION_ID: Final = 0x41435354  # "ACST": tells our stores from other SQLite files
BUSY_TIMEOUT_S: Final = 5.0

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

INSERT_PATIENT: Final = "INSERT OR IGNORE INTO patients (code, created_at) VALUES (?, ?)"
# The patient column takes the code as first written (codes compare without regard to case).
INSERT_SESSION: Final = (
    "INSERT INTO sessions (started_at, program, device, profile, meta, acustim_version,"
    " patient, notes, screening, firmware)"
    " VALUES (?, ?, ?, ?, ?, ?, (SELECT code FROM patients WHERE code = ?), ?, ?, ?)"
)
SET_FIRMWARE: Final = "UPDATE sessions SET firmware = ? WHERE id = ?"
INSERT_EVENT: Final = (
    "INSERT INTO events (session_id, t_s, kind, message, data) VALUES (?, ?, ?, ?, ?)"
)
INSERT_FRAME: Final = (
    "INSERT INTO frames (session_id, frame_index, t_s, lateness_ms, zero, channels)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
END_SESSION: Final = (
    "UPDATE sessions SET ended_at = ?, outcome = ?, reason = ? WHERE id = ? AND ended_at IS NULL"
)
SESSION_COLUMNS: Final = (
    "id, started_at, ended_at, program, device, profile, outcome, reason, meta, acustim_version"
)
#: the columns a version 2 store added, and what a version 1 store reads as in their place
SESSION_COLUMNS_V2: Final = "patient, notes, screening, firmware"
SESSION_COLUMNS_V1_DEFAULTS: Final = "NULL, '', '{}', NULL"


def connect_writer(path: Path) -> sqlite3.Connection:
    with restrictive_umask():
        try:
            # check_same_thread=False: made here, then used only by the writer thread.
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise RecordsError(
                f"cannot open the records store {path} ({exc}): {WHAT_TO_DO}"
            ) from exc
        try:
            # Identify the file before anything writes to it: a foreign database stays as it was.
            check_identity(path, *identity(conn))
            _configure(conn, path)
            _migrate(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise RecordsError(describe_error(path, exc)) from exc
        except BaseException:
            conn.close()
            raise
    return conn


def describe_error(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return (
            f"the records store {path} is damaged ({text}): move it aside (keep it for"
            f" inspection) and acustim will start a new one, or set {DATA_DIR_ENV} to another"
            " directory"
        )
    return f"cannot use the records store {path} ({text}): {WHAT_TO_DO}"


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


def identity(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    names = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master")}
    return app_id, version, names


def check_identity(path: Path, app_id: int, version: int, names: set[str]) -> None:
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
                f"{', '.join(sorted(required - names))}): {WHAT_TO_DO}"
            )
        return
    if app_id == 0 and version == 0 and not names:
        return  # a new, empty file
    raise RecordsError(
        f"{path} is not an acustim records store (an SQLite database of something else):"
        f" {WHAT_TO_DO}"
    )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    app_id, version, names = identity(conn)
    check_identity(path, app_id, version, names)
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the write lock.
        app_id, version, names = identity(conn)
        check_identity(path, app_id, version, names)
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
                f" {SCHEMA_VERSION} ({exc}); it was left as it was: {WHAT_TO_DO}"
            ) from exc
        raise
