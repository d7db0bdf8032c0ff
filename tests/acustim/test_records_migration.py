"""Schema migrations: a store written by acustim with records schema version 1 opens in this
version with every row intact, is upgraded once and all at once, and reads as it is without
being upgraded when opened read-only. The version 1 store is made here from its own DDL (a
copy of what version 1 wrote), never by calling the code under test."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from acustim.records import (
    SCHEMA_VERSION,
    STORE_FILE_NAME,
    ChannelFrame,
    EventRow,
    FrameRow,
    RecordsError,
    RecordStore,
)
from acustim.report import build_report, render_html

#: records schema version 1, as acustim wrote it (application_id "ACST", user_version 1)
V1_DDL = (
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
)

META = {
    "program_title": "TMJ jaw pain, left",
    "indication": "TMD",
    "electrode": "pad",
    "channels": [{"name": "A", "sites": ["ST7-L", "ST6-L"]}],
    "calibrated": False,
}
SESSIONS = [
    # id, started_at, ended_at, program, device, profile, outcome, reason, meta, version
    (
        1,
        "2025-01-10T09:00:00.000+00:00",
        "2025-01-10T09:20:00.000+00:00",
        "tmj-jaw-pain-left",
        "sim:coyote3",
        "coyote3",
        "completed",
        "session completed",
        json.dumps(META),
        "0.1.0",
    ),
    (
        2,
        "2025-01-11T09:00:00.000+00:00",
        "2025-01-11T09:05:00.000+00:00",
        "tmj-jaw-pain-left",
        "pulsepal@/dev/ttyACM0",
        "pulsepal",
        "fault",
        "device link lost: unplugged",
        "{}",
        "0.1.0",
    ),
    # the process died during this one: no end
    (
        3,
        "2025-01-12T09:00:00.000+00:00",
        None,
        "p",
        "sim:coyote3",
        "coyote3",
        None,
        None,
        "{}",
        "0.1.0",
    ),
]
EVENTS = [
    (1, 0.0, "start", "session started", None),
    (1, 1.5, "level", "A set to 12 du", json.dumps({"A": 12})),
    (2, 0.2, "firmware", "Pulse Pal 2, firmware 22", json.dumps({"version": 22})),
    (2, 0.3, "battery", "battery 80 %", json.dumps({"percent": 80})),
    (2, 300.0, "link_lost", "device link lost", None),
]
CHANNELS = [["A", 12, [2.0, 2.0, 100.0, 100.0], [200.0] * 4, [0.5, 0.5, 1.0, 0.1]]]
FRAMES = [
    (session_id, index, index * 0.1, 0.25 * index, 1 if index == 0 else 0, json.dumps(CHANNELS))
    for session_id in (1, 2, 3)
    for index in range(5)
]


def make_v1_store(path: Path, *, extra: tuple[str, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for statement in V1_DDL:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", SESSIONS)
    conn.executemany(
        "INSERT INTO events (session_id, t_s, kind, message, data) VALUES (?, ?, ?, ?, ?)", EVENTS
    )
    conn.executemany(
        "INSERT INTO frames (session_id, frame_index, t_s, lateness_ms, zero, channels)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        FRAMES,
    )
    for statement in extra:  # what happened to the file later
        conn.execute(statement)
    conn.execute("COMMIT")
    conn.close()


def expected_frames(session_id: int) -> list[FrameRow]:
    return [
        FrameRow(
            index=index,
            t_s=t_s,
            lateness_ms=lateness_ms,
            zero=bool(zero),
            channels=(
                ChannelFrame("A", 12, (2.0, 2.0, 100.0, 100.0), (200.0,) * 4, (0.5, 0.5, 1.0, 0.1)),
            ),
        )
        for sid, index, t_s, lateness_ms, zero, _ in FRAMES
        if sid == session_id
    ]


def expected_events(session_id: int) -> list[EventRow]:
    return [
        EventRow(t_s, kind, message, None if data is None else json.loads(data))
        for sid, t_s, kind, message, data in EVENTS
        if sid == session_id
    ]


def pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def v1_path(tmp_path: Path) -> Path:
    path = tmp_path / "data" / STORE_FILE_NAME
    make_v1_store(path)
    return path


def test_a_version_1_store_opens_with_every_row_intact(v1_path: Path) -> None:
    assert pragma(v1_path, "user_version") == 1
    with RecordStore.open(v1_path) as store:
        sessions = store.sessions()
        assert [(s.id, s.program, s.device, s.outcome, s.reason) for s in sessions] == [
            (row[0], row[3], row[4], row[6], row[7]) for row in SESSIONS
        ]
        assert [(s.started_at, s.ended_at, s.acustim_version) for s in sessions] == [
            (row[1], row[2], row[9]) for row in SESSIONS
        ]
        assert sessions[0].meta == META
        for session_id in (1, 2, 3):
            assert store.frames(session_id) == expected_frames(session_id)
            assert store.events(session_id) == expected_events(session_id)
        # the new columns: nothing invented, firmware taken from what the device reported
        assert [(s.patient, s.notes, s.screening) for s in sessions] == [(None, "", {})] * 3
        assert [s.firmware for s in sessions] == [None, "Pulse Pal 2, firmware 22", None]
        assert store.patients() == []
        # and the upgraded store records as a new one does; ids are never reused
        new = store.start_session(program="p", device="d", profile="f", patient="P-0042")
        store.end_session(new, outcome="completed")
        store.flush()
        assert new == 4
        assert [s.id for s in store.sessions(patient="P-0042")] == [4]
    assert pragma(v1_path, "user_version") == SCHEMA_VERSION == 3
    assert pragma(v1_path, "application_id") == 0x41435354
    with RecordStore.open(v1_path) as again:  # upgraded once: opening again changes nothing
        assert len(again.sessions()) == 4
        assert again.frames(2) == expected_frames(2)


def test_a_version_1_store_reads_as_it_is_when_opened_read_only(v1_path: Path) -> None:
    before = hashlib.sha256(v1_path.read_bytes()).hexdigest()
    with RecordStore.open(v1_path, read_only=True) as store:
        assert store.schema_version == 1
        sessions = store.sessions()
        assert [s.id for s in sessions] == [1, 2, 3]
        assert [(s.patient, s.notes, s.screening, s.firmware) for s in sessions] == [
            (None, "", {}, None)
        ] * 3
        assert store.sessions(patient="P-1") == []  # a version 1 store has no patients
        assert store.patients() == []
        assert store.frames(1) == expected_frames(1)
        assert store.events(2) == expected_events(2)
        report = build_report(store, 1)  # and a report of it can be made
        assert "Session 1: TMJ jaw pain, left" in render_html(report)
    assert pragma(v1_path, "user_version") == 1
    assert hashlib.sha256(v1_path.read_bytes()).hexdigest() == before


def test_a_failed_upgrade_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    # someone added a table of the same name as one version 2 adds: the upgrade cannot run
    path = tmp_path / STORE_FILE_NAME
    make_v1_store(path, extra=("CREATE TABLE patients (name TEXT)",))
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(path)
    message = str(excinfo.value)
    assert (
        f"cannot upgrade the records store {path} from schema version 1 to {SCHEMA_VERSION}"
        in message
    )
    assert "it was left as it was" in message and "\n" not in message
    assert pragma(path, "user_version") == 1
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]
        assert "patient" not in columns and "firmware" not in columns
        assert conn.execute("SELECT count(*) FROM frames").fetchone() == (len(FRAMES),)
    finally:
        conn.close()
    with RecordStore.open(path, read_only=True) as store:  # still readable as version 1
        assert store.frames(3) == expected_frames(3)


def test_a_version_1_store_missing_a_table_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    make_v1_store(path, extra=("DROP INDEX events_by_session", "DROP TABLE events"))
    with pytest.raises(RecordsError, match=r"is damaged \(tables missing: events\)"):
        RecordStore.open(path)


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_store_from_a_newer_acustim_is_refused(v1_path: Path, read_only: bool) -> None:
    conn = sqlite3.connect(v1_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = hashlib.sha256(v1_path.read_bytes()).hexdigest()
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(v1_path, read_only=read_only)
    message = str(excinfo.value)
    assert f"records schema version {SCHEMA_VERSION + 1}" in message
    assert "upgrade acustim" in message
    assert hashlib.sha256(v1_path.read_bytes()).hexdigest() == before
