"""The session records store: every session's events and every vetted frame, kept in SQLite.

What a session delivered must be provable later, so the session runner writes each event and
each frame that was sent to the device here, and reports are built from here. The store is one
SQLite file (stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``, foreign keys on), by default
``records.sqlite3`` under the user's data directory, private to the user (directory 0700, the
file and its ``-wal``/``-shm`` files 0600).

One module per job:

- ``rows``: the frozen row values (``FrameRow``, ``EventRow``, ``SessionInfo``...); never
  touch SQLite.
- ``columns``: rows to column values and back (JSON, finite floats, UTC times, the acustim
  version); never touches SQLite.
- ``patients``: the form of a patient code (a pseudonym, never a name); stores nothing.
- ``measures``: outcome measures and their bounds, adverse-event severities, the indications
  a course can have and which measures apply, the STRICTA items entered; stores nothing.
- ``files``: where the store lives, private modes, and the path checks made before SQLite
  opens anything; never opens a connection.
- ``schema``: the tables, the migrations, the statements, and the one write connection;
  writes nothing but the migrations, at open.
- ``writer``: the writer thread, the only code that writes a session's rows; callers only
  queue to it, so the IO thread never waits for the disk.
- ``store``: ``RecordStore``, which opens, checks and queues writes, and reads; never writes
  to SQLite itself.
- ``errors``: ``RecordsError``, the one-line error every failure becomes.

The package never sends anything to a device and never decides what is safe. It never drops a
row silently, and never lets a ``sqlite3`` traceback reach the user. What a report needs
(``../shared/reference/safety.md`` section 6) and where it lives: device and model, program
and profile, patient, notes, screening and firmware in the session row; the start-to-end
intensity history, frequency and pulse width per channel in the frames; level changes,
warnings, stops, faults and device reports in the events; the STRICTA items (rationale,
points, needles, depth, retention, practitioner...) and the electrical characterisation that
is not in the frames (channel to point pairing, electrode type and area, load, calibration to
mA) in ``meta``, by convention under the keys ``"stricta"``, ``"channels"`` and
``"calibration"`` (see ``docs/records.md``).
"""

from __future__ import annotations

from acustim.records.columns import acustim_version
from acustim.records.errors import RecordsError
from acustim.records.files import DATA_DIR_ENV, STORE_FILE_NAME, default_store_path
from acustim.records.measures import (
    CONDITIONS,
    MEASURES,
    SEVERITIES,
    STRICTA_ITEMS,
    TIMINGS,
    Condition,
    Measure,
    StrictaField,
    condition_of,
    measure_text,
    measures_for,
)
from acustim.records.patients import PATIENT_CODE_MAX, PatientCodeError, validate_patient_code
from acustim.records.rows import (
    OUTCOMES,
    AdverseEventRow,
    ChannelFrame,
    CourseInfo,
    EventRow,
    FrameRow,
    OutcomeRow,
    PatientInfo,
    SessionInfo,
    WriterStats,
)
from acustim.records.schema import APPLICATION_ID, SCHEMA_VERSION
from acustim.records.store import (
    COURSE_INTERVAL_DAYS,
    COURSE_SESSIONS,
    MAX_BACKLOG_ROWS,
    RecordStore,
)

__all__ = [
    "APPLICATION_ID",
    "CONDITIONS",
    "COURSE_INTERVAL_DAYS",
    "COURSE_SESSIONS",
    "DATA_DIR_ENV",
    "MAX_BACKLOG_ROWS",
    "MEASURES",
    "OUTCOMES",
    "PATIENT_CODE_MAX",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STORE_FILE_NAME",
    "STRICTA_ITEMS",
    "TIMINGS",
    "AdverseEventRow",
    "ChannelFrame",
    "Condition",
    "CourseInfo",
    "EventRow",
    "FrameRow",
    "Measure",
    "OutcomeRow",
    "PatientCodeError",
    "PatientInfo",
    "RecordStore",
    "RecordsError",
    "SessionInfo",
    "StrictaField",
    "WriterStats",
    "acustim_version",
    "condition_of",
    "default_store_path",
    "measure_text",
    "measures_for",
    "validate_patient_code",
]
