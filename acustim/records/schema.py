"""The schema: its tables at each version, the migrations, and the statements run on them.

Schema (``PRAGMA user_version`` = 3, ``PRAGMA application_id`` = 0x41435354, "ACST"):

- ``patients``: code (the pseudonym the practitioner chose: 1..32 ASCII letters, digits, '-'
  or '_'; compared without regard to case, kept as first written), created_at. Nothing else:
  the app never asks for a name, a birth date or any other identifier.
- ``sessions``: id (never reused), started_at / ended_at (ISO-8601 UTC), program, device,
  profile, outcome ('completed' | 'stopped' | 'fault', NULL while running or if the process
  died), reason, meta (a JSON object), acustim_version (the software that wrote it), patient
  (a ``patients.code`` or NULL), notes (the practitioner's text), screening (a JSON object:
  the screening answers), firmware (what the device reported, NULL if unknown), course_id
  and course_number (the treatment course it belongs to and its number there, both NULL or
  both set; numbers are unique within a course and given in the order sessions joined it).
- ``courses``: id, patient (a ``patients.code``), indication (a key of the outcome table in
  ``measures.py``, or short text it does not know), planned_sessions, interval_days, notes,
  created_at.
- ``outcomes``: session_id, timing ('before' | 'after' the session), measure ('vas',
  'mouth_mm', 'house_brackmann' (1..6 for I..VI), 'sunnybrook', 'headache_days'), value
  within the measure's bounds, recorded_at; one value per session, timing and measure.
- ``adverse_events``: session_id, severity ('mild' | 'moderate' | 'severe' | 'serious'),
  what, action, recorded_at.
- ``stricta_defaults``: item, value, set_at: the practitioner's defaults for the STRICTA
  items, never overwritten (a session reads the latest set before it started; '' clears).
- ``session_stricta``: session_id, item, value, set_at: what was entered for one session.
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
fills firmware from the ``firmware`` events a version 1 store already holds. Version 3 adds
the courses, outcomes, adverse events and STRICTA tables and the session course columns
(NULL for every existing session). Opening a store
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
    "INDICATION_MAX",
    "INSERT_ADVERSE",
    "INSERT_COURSE",
    "INSERT_EVENT",
    "INSERT_FRAME",
    "INSERT_OUTCOME",
    "INSERT_PATIENT",
    "INSERT_SESSION",
    "INSERT_STRICTA_DEFAULT",
    "LINK_SESSION",
    "REPLACE_OUTCOME",
    "SCHEMA_VERSION",
    "SESSION_COLUMNS",
    "SESSION_COLUMNS_V1_DEFAULTS",
    "SESSION_COLUMNS_V2",
    "SESSION_COLUMNS_V2_DEFAULTS",
    "SESSION_COLUMNS_V3",
    "SET_FIRMWARE",
    "SET_NOTES",
    "SET_SESSION_STRICTA",
    "check_identity",
    "connect_writer",
    "describe_error",
    "identity",
]

APPLICATION_ID: Final = 0x41435354  # "ACST": tells our stores from other SQLite files
BUSY_TIMEOUT_S: Final = 5.0
#: the longest course indication (a key of ``measures.CONDITIONS``, or short text)
INDICATION_MAX: Final = 80

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
    # 3: treatment courses, outcomes, adverse events, STRICTA entries; session course links.
    # The bounds are those of version 3 (``measures.py`` holds them for the code; a test
    # checks that the two agree). Nothing existing is changed: rows keep every value.
    (
        f"""CREATE TABLE courses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            patient TEXT NOT NULL REFERENCES patients (code),
            indication TEXT NOT NULL CHECK (length(indication) BETWEEN 1 AND {INDICATION_MAX}),
            planned_sessions INTEGER NOT NULL CHECK (planned_sessions BETWEEN 1 AND 100),
            interval_days INTEGER NOT NULL CHECK (interval_days BETWEEN 0 AND 365),
            notes TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX courses_by_patient ON courses (patient)",
        "ALTER TABLE sessions ADD COLUMN course_id INTEGER REFERENCES courses (id)",
        """ALTER TABLE sessions ADD COLUMN course_number INTEGER
            CHECK ((course_number IS NULL) = (course_id IS NULL) AND course_number >= 1)""",
        """CREATE UNIQUE INDEX sessions_by_course ON sessions (course_id, course_number)
            WHERE course_id IS NOT NULL""",
        """CREATE TABLE outcomes (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions (id),
            timing TEXT NOT NULL CHECK (timing IN ('before', 'after')),
            measure TEXT NOT NULL,
            value REAL NOT NULL,
            recorded_at TEXT NOT NULL,
            CHECK (CASE measure
                WHEN 'vas' THEN value BETWEEN 0 AND 10
                WHEN 'mouth_mm' THEN value BETWEEN 0 AND 80
                WHEN 'house_brackmann' THEN value IN (1, 2, 3, 4, 5, 6)
                WHEN 'sunnybrook' THEN value BETWEEN 0 AND 100 AND value = round(value)
                WHEN 'headache_days' THEN value BETWEEN 0 AND 31 AND value = round(value)
                ELSE 0 END),
            UNIQUE (session_id, timing, measure)
        )""",
        """CREATE TABLE adverse_events (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions (id),
            severity TEXT NOT NULL CHECK (severity IN ('mild', 'moderate', 'severe', 'serious')),
            what TEXT NOT NULL CHECK (length(what) BETWEEN 1 AND 500),
            action TEXT NOT NULL DEFAULT '' CHECK (length(action) <= 500),
            recorded_at TEXT NOT NULL
        )""",
        "CREATE INDEX adverse_events_by_session ON adverse_events (session_id)",
        # Defaults are never overwritten: a session reads those set before it started, so a
        # default changed later never changes an older session's report.
        """CREATE TABLE stricta_defaults (
            id INTEGER PRIMARY KEY,
            item TEXT NOT NULL,
            value TEXT NOT NULL CHECK (length(value) <= 500),
            set_at TEXT NOT NULL
        )""",
        """CREATE TABLE session_stricta (
            session_id INTEGER NOT NULL REFERENCES sessions (id),
            item TEXT NOT NULL,
            value TEXT NOT NULL CHECK (length(value) <= 500),
            set_at TEXT NOT NULL,
            PRIMARY KEY (session_id, item)
        )""",
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
#: the tables each schema version must hold
_TABLES_AT: Final[dict[int, frozenset[str]]] = {
    1: frozenset({"sessions", "events", "frames"}),
    2: frozenset({"sessions", "events", "frames", "patients"}),
    3: frozenset(
        {
            "sessions",
            "events",
            "frames",
            "patients",
            "courses",
            "outcomes",
            "adverse_events",
            "stricta_defaults",
            "session_stricta",
        }
    ),
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
SET_NOTES: Final = "UPDATE sessions SET notes = ? WHERE id = ?"
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
#: the columns a version 3 store added, and what an older store reads as in their place
SESSION_COLUMNS_V3: Final = "course_id, course_number"
SESSION_COLUMNS_V2_DEFAULTS: Final = "NULL, NULL"

INSERT_COURSE: Final = (
    "INSERT INTO courses (patient, indication, planned_sessions, interval_days, notes,"
    " created_at) VALUES ((SELECT code FROM patients WHERE code = ?), ?, ?, ?, ?, ?)"
)
#: link a session to a course as its next number; only a session not yet in a course
LINK_SESSION: Final = (
    "UPDATE sessions SET course_id = ?1, course_number ="
    " (SELECT coalesce(max(course_number), 0) + 1 FROM sessions WHERE course_id = ?1)"
    " WHERE id = ?2 AND course_id IS NULL"
)
INSERT_OUTCOME: Final = (
    "INSERT INTO outcomes (session_id, timing, measure, value, recorded_at) VALUES (?, ?, ?, ?, ?)"
)
REPLACE_OUTCOME: Final = (
    "INSERT INTO outcomes (session_id, timing, measure, value, recorded_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, timing, measure)"
    " DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at"
)
INSERT_ADVERSE: Final = (
    "INSERT INTO adverse_events (session_id, severity, what, action, recorded_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
INSERT_STRICTA_DEFAULT: Final = (
    "INSERT INTO stricta_defaults (item, value, set_at) VALUES (?, ?, ?)"
)
SET_SESSION_STRICTA: Final = (
    "INSERT INTO session_stricta (session_id, item, value, set_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (session_id, item) DO UPDATE SET value = excluded.value,"
    " set_at = excluded.set_at"
)


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
