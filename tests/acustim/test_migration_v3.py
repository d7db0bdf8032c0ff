"""Records schema version 3 (courses, outcomes, adverse events, STRICTA entries): a store
written by acustim with schema version 2 is upgraded with every row and every column value
intact, an upgrade that fails or whose process dies half-way leaves the version 2 store as it
was, and a store newer than version 3 is refused in one line.

The version 2 store is made here from its own DDL and statements (a copy of what version 2
wrote: ``git show 1ee2588:acustim/records.py``), never by calling the code under test."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from acustim import cli
from acustim.records import (
    MEASURES,
    SCHEMA_VERSION,
    STORE_FILE_NAME,
    RecordsError,
    RecordStore,
)
from acustim.records import schema as schema_module
from acustim.records.measures import check_measure

ROOT = Path(__file__).resolve().parents[2]

#: records schema version 1, then the version 2 step, as acustim wrote them
V2_DDL = (
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
    "PRAGMA application_id = 1094931284",
    "PRAGMA user_version = 1",
    """CREATE TABLE patients (
            code TEXT PRIMARY KEY COLLATE NOCASE CHECK (
                length(code) BETWEEN 1 AND 32
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
    """UPDATE sessions SET firmware = (
            SELECT e.message FROM events AS e
            WHERE e.session_id = sessions.id AND e.kind = 'firmware'
            ORDER BY e.id LIMIT 1
        )""",
    "PRAGMA user_version = 2",
)
#: version 2's statements for a session (acustim 1ee2588, ``acustim/records.py``)
V2_INSERT_PATIENT = "INSERT OR IGNORE INTO patients (code, created_at) VALUES (?, ?)"
V2_INSERT_SESSION = (
    "INSERT INTO sessions (started_at, program, device, profile, meta, acustim_version,"
    " patient, notes, screening, firmware)"
    " VALUES (?, ?, ?, ?, ?, ?, (SELECT code FROM patients WHERE code = ?), ?, ?, ?)"
)
V2_END_SESSION = (
    "UPDATE sessions SET ended_at = ?, outcome = ?, reason = ? WHERE id = ? AND ended_at IS NULL"
)
#: every table and column version 2 had
V2_COLUMNS = {
    "patients": ("code", "created_at"),
    "sessions": (
        "id",
        "started_at",
        "ended_at",
        "program",
        "device",
        "profile",
        "outcome",
        "reason",
        "meta",
        "acustim_version",
        "patient",
        "notes",
        "screening",
        "firmware",
    ),
    "events": ("id", "session_id", "t_s", "kind", "message", "data"),
    "frames": ("id", "session_id", "frame_index", "t_s", "lateness_ms", "zero", "channels"),
}

NOTES = "Kiefer links — 疼痛 ✓, 'single' \"double\" <b>tag</b>\nsecond line\ttab 🦷"
SCREENING = {
    "answers": {"pacemaker": False, "pregnancy": None, "epilepsy": False},
    "acknowledged": ["other_implant"],
    "note": "Ärztin: keine Einwände — 没问题",
}
META = {
    "program_title": "TMJ and jaw pain, left side",
    "indication": "Temporomandibular disorder (TMD)",
    "electrode": "pad",
    "channels": [{"name": "A", "sites": ["ST7-L", "ST6-L"], "ceiling_du": 80}],
    "levels_du": {"A": 20},
    "calibrated": False,
}
CHANNELS = [["A", 20, [2.0, 100.0, 0.1], [200.0, 200.0, 1e-300], [0.5, 1.0, 0.3333333333333333]]]


def make_v2_store(path: Path) -> None:
    """A version 2 store with what acustim 0.1 wrote: patients, sessions (ended, faulted,
    and one whose process died), their events and frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    for statement in V2_DDL:
        conn.execute(statement)
    sessions: list[tuple[Any, ...]] = [
        ("2025-03-01T09:00:00.125+00:00", "tmj-jaw-pain-left", "P-0042", NOTES, SCREENING, "fw 1"),
        ("2025-03-08T09:00:00.000+00:00", "tmj-jaw-pain-left", "p-0042", "", {}, None),
        ("2025-03-09T10:00:00.000+00:00", "bells-palsy-subacute-left", "Bx_7", "ok", {}, None),
        ("2025-03-10T10:00:00.000+00:00", "p", None, "no patient", {"x": [1, 2.5]}, "ü"),
    ]
    for i, (started, program, patient, notes, screening, firmware) in enumerate(sessions):
        if patient is not None:
            conn.execute(V2_INSERT_PATIENT, (patient, started))
        sid = conn.execute(
            V2_INSERT_SESSION,
            (
                started,
                program,
                "sim:coyote3",
                "coyote3",
                json.dumps(META, separators=(",", ":")),
                "0.1.0",
                patient,
                notes,
                json.dumps(screening, separators=(",", ":")),
                firmware,
            ),
        ).lastrowid
        conn.execute(
            "INSERT INTO events (session_id, t_s, kind, message, data) VALUES (?, ?, ?, ?, ?)",
            (sid, 0.0, "start", f"session started — {program}", None),
        )
        conn.execute(
            "INSERT INTO events (session_id, t_s, kind, message, data) VALUES (?, ?, ?, ?, ?)",
            (sid, 1.25, "level", "A → 20 du", json.dumps({"A": 20, "why": "λ"})),
        )
        for index in range(6):
            conn.execute(
                "INSERT INTO frames (session_id, frame_index, t_s, lateness_ms, zero, channels)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    index,
                    index * 0.1,
                    0.1 * index + 1e-9,
                    int(index == 0),
                    json.dumps(CHANNELS),
                ),
            )
        if i == 0:
            conn.execute(V2_END_SESSION, ("2025-03-01T09:20:00.5+00:00", "completed", None, sid))
        elif i == 2:
            conn.execute(
                V2_END_SESSION, ("2025-03-09T10:01:00+00:00", "fault", "link lost ⚡", sid)
            )
        # i == 1 and 3: the process died, no end
    conn.execute("COMMIT")
    conn.close()


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row and every version 2 column, by rowid, straight from SQLite."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid").fetchall()
            for table, cols in V2_COLUMNS.items()
        }
    finally:
        conn.close()


def pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


@pytest.fixture
def v2_path(tmp_path: Path) -> Path:
    path = tmp_path / "data" / STORE_FILE_NAME
    make_v2_store(path)
    assert pragma(path, "user_version") == 2
    return path


def test_a_version_2_store_is_upgraded_to_3_with_every_row_and_value_intact(
    v2_path: Path,
) -> None:
    before = dump(v2_path)
    assert [len(rows) for rows in before.values()] == [2, 4, 8, 24]  # p-0042 is P-0042
    old_objects = tables(v2_path)
    with RecordStore.open(v2_path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        sessions = store.sessions()
        # the new columns invent nothing
        assert [(s.course_id, s.course_number) for s in sessions] == [(None, None)] * 4
        assert store.courses() == []
        assert store.session(1).notes == NOTES
        assert store.session(1).screening == SCREENING
        assert store.session(1).meta == META
        assert [s.patient for s in sessions] == ["P-0042", "P-0042", "Bx_7", None]
        assert [s.outcome for s in sessions] == ["completed", None, "fault", None]
        assert store.frames(1)[5].channels[0].pulse_width_us[2] == 1e-300
    assert dump(v2_path) == before  # every row, every column, every value
    assert pragma(v2_path, "user_version") == 3
    assert pragma(v2_path, "application_id") == 0x41435354
    assert old_objects < tables(v2_path)
    assert {"courses", "outcomes", "adverse_events", "stricta_defaults", "session_stricta"} <= (
        tables(v2_path)
    )
    # and the upgraded store takes courses: sessions recorded under version 2 can join one
    with RecordStore.open(v2_path) as store:
        course = store.create_course(
            patient="p-0042", indication="tmd", planned_sessions=6, interval_days=7
        )
        assert [store.link_session(sid, course) for sid in (1, 2)] == [1, 2]
        store.add_outcome(1, timing="before", measure="mouth_mm", value=31)
        with pytest.raises(RecordsError, match="is for patient Bx_7, but course 1 is for"):
            store.link_session(3, course)
    after = dump(v2_path)
    assert after["frames"] == before["frames"] and after["events"] == before["events"]
    assert after["sessions"] == before["sessions"]  # linking writes only the new columns


def test_a_version_2_store_opened_read_only_is_read_as_it_is(v2_path: Path) -> None:
    digest = hashlib.sha256(v2_path.read_bytes()).hexdigest()
    with RecordStore.open(v2_path, read_only=True) as store:
        assert store.schema_version == 2
        assert [s.course_id for s in store.sessions()] == [None] * 4
        assert store.courses() == [] and store.courses(patient="P-0042") == []
        assert store.outcomes(session_id=1) == [] and store.adverse_events(session_id=1) == []
        assert store.stricta_defaults() == {} and store.session_stricta(1) == {}
        with pytest.raises(RecordsError, match="has no course 1"):
            store.course(1)
    assert pragma(v2_path, "user_version") == 2
    assert hashlib.sha256(v2_path.read_bytes()).hexdigest() == digest
    # the commands that only read say so, without upgrading
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["course", "list", "--store", str(v2_path)], out=out, err=err) == 0
    assert out.getvalue() == "no courses yet\n"
    assert pragma(v2_path, "user_version") == 2


def test_a_failing_statement_in_the_upgrade_leaves_the_version_2_store_as_it_was(
    v2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump(v2_path)
    objects = tables(v2_path)
    step = schema_module._MIGRATIONS[2]
    middle = len(step) // 2  # after the courses table and the session columns
    failing = (*step[:middle], "INSERT INTO no_such_table VALUES (1)", *step[middle:])
    monkeypatch.setattr(schema_module, "_MIGRATIONS", (*schema_module._MIGRATIONS[:2], failing))
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(v2_path)
    message = str(excinfo.value)
    assert f"cannot upgrade the records store {v2_path} from schema version 2 to 3" in message
    assert "it was left as it was" in message and "\n" not in message
    assert pragma(v2_path, "user_version") == 2
    assert tables(v2_path) == objects  # no courses table, no new index
    conn = sqlite3.connect(v2_path)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]
    finally:
        conn.close()
    assert "course_id" not in columns and "course_number" not in columns
    assert dump(v2_path) == before
    monkeypatch.undo()
    with RecordStore.open(v2_path) as store:  # the real upgrade then runs, once, whole
        assert store.schema_version == 3
    assert dump(v2_path) == before


_DIE_MID_UPGRADE = textwrap.dedent(
    """
    import os, sqlite3, sys
    from pathlib import Path
    from acustim.records import RecordStore
    from acustim.records import schema

    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        # the process dies (no cleanup, no rollback) in the middle of the upgrade
        conn.create_function("die_now", 0, lambda: os._exit(9))
        return conn

    schema.sqlite3.connect = connect
    step = schema._MIGRATIONS[2]
    middle = len(step) // 2
    schema._MIGRATIONS = (
        *schema._MIGRATIONS[:2], (*step[:middle], "SELECT die_now()", *step[middle:])
    )
    RecordStore.open(Path(sys.argv[1]))
    print("not reached")
    """
)


def test_a_process_killed_in_the_middle_of_the_upgrade_leaves_the_version_2_store(
    v2_path: Path,
) -> None:
    before = dump(v2_path)
    objects = tables(v2_path)
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_MID_UPGRADE, str(v2_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    assert "not reached" not in proc.stdout
    # what the dead process wrote (in the -wal) was never committed
    assert pragma(v2_path, "user_version") == 2
    assert tables(v2_path) == objects
    assert dump(v2_path) == before
    with RecordStore.open(v2_path, read_only=True) as store:
        assert store.schema_version == 2 and store.session(1).notes == NOTES
    with RecordStore.open(v2_path) as store:
        assert store.schema_version == 3
        assert len(store.sessions()) == 4
    assert dump(v2_path) == before


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_store_newer_than_version_3_is_refused_in_one_line(
    v2_path: Path, read_only: bool
) -> None:
    conn = sqlite3.connect(v2_path)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    digest = hashlib.sha256(v2_path.read_bytes()).hexdigest()
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(v2_path, read_only=read_only)
    message = str(excinfo.value)
    assert "records schema version 4, this acustim knows up to 3" in message
    assert "upgrade acustim" in message and "\n" not in message
    assert hashlib.sha256(v2_path.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(
    "argv",
    [
        ["course", "list"],
        ["course", "show", "1"],
        [
            "course",
            "new",
            "--patient",
            "P-1",
            "--indication",
            "tmd",
            "--sessions",
            "3",
            "--interval-days",
            "7",
        ],
        ["outcome", "add", "--session", "1", "--before", "--vas", "3"],
        ["adverse", "add", "--session", "1", "--severity", "mild", "--what", "x"],
        ["stricta", "set-defaults", "--style", "TCM"],
        ["report", "--course", "1", "--html", "x.html"],
        ["export", "--course", "1", "--csv", "x.csv"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_the_commands_refuse_a_newer_store_in_one_line(
    v2_path: Path, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conn = sqlite3.connect(v2_path)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    digest = hashlib.sha256(v2_path.read_bytes()).hexdigest()
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([*argv, "--store", str(v2_path)], out=out, err=err)
    assert code == 2
    text = err.getvalue()
    assert text.startswith("acustim: ") and text.count("\n") == 1, text
    assert "records schema version 4" in text and "upgrade acustim" in text
    assert hashlib.sha256(v2_path.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x.csv").exists()


def test_the_schema_checks_hold_the_bounds_of_the_measure_table(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        sid = store.start_session(program="p", device="d", profile="f", patient="P-1")
        store.end_session(sid, outcome="completed")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        insert = (
            "INSERT INTO outcomes (session_id, timing, measure, value, recorded_at)"
            " VALUES (?, 'before', ?, ?, 'now')"
        )
        for key, measure in MEASURES.items():
            step = 1.0 if measure.whole else 0.25
            for value in (measure.lo, measure.hi, measure.lo + step):
                assert check_measure(key, value) == value
                conn.execute("BEGIN")
                conn.execute(insert, (sid, key, value))  # the file takes what the code does
                conn.execute("ROLLBACK")
            for value in (measure.lo - step, measure.hi + step) + (
                (measure.lo + 0.5,) if measure.whole else ()
            ):
                with pytest.raises(RecordsError):
                    check_measure(key, value)
                with pytest.raises(sqlite3.IntegrityError):  # and refuses what the code does
                    conn.execute(insert, (sid, key, value))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(insert, (sid, "weight_kg", 70))
    finally:
        conn.close()
