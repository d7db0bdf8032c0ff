"""The session records store: round trips, privacy, location, schema, damage, faults, SIGKILL,
patients and the other schema 2 columns, reading without writing, a read-only directory and a
full disk."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acustim import records
from acustim.records import (
    APPLICATION_ID,
    DATA_DIR_ENV,
    PATIENT_CODE_MAX,
    SCHEMA_VERSION,
    STORE_FILE_NAME,
    ChannelFrame,
    EventRow,
    FrameRow,
    PatientCodeError,
    RecordsError,
    RecordStore,
    default_store_path,
    validate_patient_code,
)

PROJECT_ROOT = Path(records.__file__).resolve().parents[2]


def channel(name: str = "A", level_du: int = 12, intensity: float = 0.5) -> ChannelFrame:
    return ChannelFrame(
        name=name,
        level_du=level_du,
        frequency_hz=(2.0, 2.0, 100.0, 100.0),
        pulse_width_us=(200.0, 200.0, 200.0, 200.0),
        intensity=(intensity, intensity, intensity, intensity),
    )


def frame(index: int, zero: bool = False) -> FrameRow:
    return FrameRow(
        index=index,
        t_s=index * 0.1,
        lateness_ms=0.25 * index,
        zero=zero,
        channels=(channel("A", 0 if zero else 12), channel("B", 0 if zero else 7)),
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STORE_FILE_NAME


@pytest.fixture
def store(store_path: Path) -> Iterator[RecordStore]:
    with RecordStore.open(store_path) as opened:
        yield opened


def start(store: RecordStore, program: str = "tmj-basic") -> int:
    return store.start_session(program=program, device="sim:coyote3", profile="coyote3")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_line_error(excinfo: pytest.ExceptionInfo[RecordsError], path: Path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --- round trips -----------------------------------------------------------------------------


def test_sessions_events_and_frames_read_back_as_written(store: RecordStore) -> None:
    meta: dict[str, object] = {
        "stricta": {"points": ["ST6", "ST7"], "needle": {"diameter_mm": 0.25}},
        "channels": [{"name": "A", "electrode": "needle", "area_cm2": 0.02}],
    }
    first = store.start_session(program="tmj-basic", device="sim:coyote3", profile="p", meta=meta)
    second = start(store, program="bells-palsy")
    events = [
        EventRow(t_s=0.0, kind="start", message="session started", data=None),
        EventRow(t_s=1.5, kind="level", message="A to 12", data={"channel": "A", "level_du": 12}),
    ]
    frames = [frame(0, zero=True), frame(1), frame(2), frame(2)]  # a repeated index is kept
    for event in events:
        store.add_event(first, event)
    for row in frames:
        store.add_frame(first, row)
    store.add_frame(second, frame(0))
    store.end_session(first, outcome="stopped", reason="practitioner pressed stop")
    store.flush()

    assert store.events(first) == events
    assert store.frames(first) == frames
    assert store.frames(second) == [frame(0)]
    assert store.events(second) == []
    info = store.session(first)
    assert (info.program, info.device, info.profile) == ("tmj-basic", "sim:coyote3", "p")
    assert (info.outcome, info.reason) == ("stopped", "practitioner pressed stop")
    assert info.meta == meta
    assert info.ended_at is not None
    started = datetime.fromisoformat(info.started_at)
    assert started.utcoffset() == UTC.utcoffset(None)
    assert datetime.fromisoformat(info.ended_at) >= started
    running = store.session(second)
    assert (running.ended_at, running.outcome, running.reason, running.meta) == (
        None,
        None,
        None,
        {},
    )
    assert [s.id for s in store.sessions()] == [first, second]


finite = st.floats(allow_nan=False, allow_infinity=False)
channels = st.builds(
    ChannelFrame,
    name=st.text(max_size=8),
    level_du=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    frequency_hz=st.lists(finite, max_size=4).map(tuple),
    pulse_width_us=st.lists(finite, max_size=4).map(tuple),
    intensity=st.lists(finite, max_size=4).map(tuple),
)
frame_rows = st.builds(
    FrameRow,
    index=st.integers(min_value=0, max_value=2**62),
    t_s=finite,
    lateness_ms=finite,
    zero=st.booleans(),
    channels=st.lists(channels, max_size=3).map(tuple),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(frame_rows, min_size=1, max_size=5))
def test_frames_round_trip_floats_exactly(store: RecordStore, rows: list[FrameRow]) -> None:
    session_id = start(store)
    for row in rows:
        store.add_frame(session_id, row)
    store.flush()
    read = store.frames(session_id)
    assert read == rows
    assert [bits(r) for r in read] == [bits(r) for r in rows]


def bits(row: FrameRow) -> list[str]:
    """Every float of a frame, bit for bit (SQLite REAL keeps no -0.0: t_s, lateness_ms)."""
    shapes = (
        x for c in row.channels for s in (c.frequency_hz, c.pulse_width_us, c.intensity) for x in s
    )
    return [(row.t_s + 0.0).hex(), (row.lateness_ms + 0.0).hex(), *(x.hex() for x in shapes)]


def test_a_new_store_holds_no_sessions(store: RecordStore) -> None:
    assert store.sessions() == []
    with pytest.raises(RecordsError, match="has no session 7"):
        store.session(7)
    with pytest.raises(RecordsError, match="has no session 7"):
        store.frames(7)


# --- misuse is refused at the call, not in the writer ----------------------------------------


def test_rows_for_a_session_that_is_not_running_are_refused(store: RecordStore) -> None:
    session_id = start(store)
    with pytest.raises(RecordsError, match="session 99 is not running"):
        store.add_frame(99, frame(0))
    store.end_session(session_id, outcome="completed")
    with pytest.raises(RecordsError, match=f"session {session_id} is not running"):
        store.add_event(session_id, EventRow(1.0, "late", "after the end", None))
    with pytest.raises(RecordsError, match="not running"):
        store.end_session(session_id, outcome="completed")
    store.flush()
    assert store.writer_error is None


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (FrameRow(0, float("nan"), 0.0, False, ()), "t_s must be a finite"),
        (FrameRow(0, 0.0, float("inf"), False, ()), "lateness_ms must be a finite"),
        (FrameRow(0, 0.0, 0.0, False, (channel(intensity=float("nan")),)), "intensity"),
    ],
)
def test_non_finite_numbers_are_refused(store: RecordStore, row: FrameRow, match: str) -> None:
    with pytest.raises(RecordsError, match=match):
        store.add_frame(start(store), row)


def test_bad_outcome_and_non_json_data_are_refused(store: RecordStore) -> None:
    session_id = start(store)
    with pytest.raises(RecordsError, match="outcome must be one of"):
        store.end_session(session_id, outcome="finished")
    with pytest.raises(RecordsError, match="JSON-compatible"):
        store.add_event(session_id, EventRow(0.0, "x", "y", {"when": datetime.now(UTC)}))
    with pytest.raises(RecordsError, match="JSON-compatible"):
        store.start_session(program="p", device="d", profile="f", meta={"x": object()})


def test_a_closed_store_refuses_writes_but_still_reads(store_path: Path) -> None:
    store = RecordStore.open(store_path)
    session_id = start(store)
    store.add_frame(session_id, frame(0))
    store.close()
    store.close()  # a second close does nothing
    with pytest.raises(RecordsError, match="is closed"):
        store.add_frame(session_id, frame(1))
    with pytest.raises(RecordsError, match="is closed"):
        start(store)
    assert store.frames(session_id) == [frame(0)]  # close committed what was queued


# --- location and privacy --------------------------------------------------------------------


def test_env_var_moves_the_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "elsewhere" / "acustim"
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    assert default_store_path() == data_dir / STORE_FILE_NAME
    with RecordStore.open() as store:
        assert store.path == data_dir / STORE_FILE_NAME
        start(store)
    assert (data_dir / STORE_FILE_NAME).is_file()


def test_default_location_is_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert default_store_path() == Path(platformdirs.user_data_dir("acustim")) / STORE_FILE_NAME
    monkeypatch.setenv(DATA_DIR_ENV, "")
    assert default_store_path() == Path(platformdirs.user_data_dir("acustim")) / STORE_FILE_NAME


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
def test_store_files_are_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        store.add_frame(start(store), frame(0))
        store.flush()
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists()
        assert shm.exists()
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            p.name: 0o600 for p in (path, wal, shm)
        }
        assert mode(path.parent) == 0o700
        assert mode(path.parent.parent) == 0o700
    # Reopened later, with the -wal and -shm made again by SQLite: still private.
    os.chmod(path, 0o644)
    with RecordStore.open(path) as store:
        assert store.frames(1) == [frame(0)]
        assert {mode(p) for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))} == {0o600}


# --- schema ----------------------------------------------------------------------------------


def test_schema_version_and_pragmas_are_set(store: RecordStore, store_path: Path) -> None:
    start(store)
    store.flush()
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    assert SCHEMA_VERSION == 3


def test_store_written_by_a_newer_acustim_is_refused(store_path: Path) -> None:
    RecordStore.open(store_path).close()
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(store_path)
    message = one_line_error(excinfo, store_path)
    assert "written by a newer acustim" in message
    assert "upgrade acustim" in message


def test_an_empty_file_becomes_a_store(store_path: Path) -> None:
    store_path.parent.mkdir()
    store_path.touch()
    with RecordStore.open(store_path) as store:
        assert store.session(start(store)).program == "tmj-basic"


# --- damaged, foreign and unreadable files ---------------------------------------------------


def make_text_file(path: Path) -> None:
    path.write_text("session notes\nnot a database\n")


def make_foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('someone')")
    conn.commit()
    conn.close()


def make_damaged_store(path: Path) -> None:
    with RecordStore.open(path) as store:
        start(store)
    with path.open("r+b") as fh:
        fh.seek(100)  # page 1 after the file header: the schema table
        fh.write(b"\xa5" * 3996)


def make_bad_header(path: Path) -> None:
    make_foreign_sqlite(path)
    with path.open("r+b") as fh:
        fh.write(b"SQLite format 9\x00")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (make_text_file, "not an acustim records store"),
        (make_foreign_sqlite, "not an acustim records store"),
        (make_damaged_store, "is damaged"),
        (make_bad_header, "not an acustim records store"),
        (Path.mkdir, "is a directory"),
    ],
    ids=["text", "foreign-sqlite", "damaged", "bad-header", "directory"],
)
def test_unusable_file_is_refused_in_one_line_and_left_alone(
    tmp_path: Path, make: Callable[[Path], object], says: str
) -> None:
    path = tmp_path / STORE_FILE_NAME
    make(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(path)
    message = one_line_error(excinfo, path)
    assert says in message
    assert "move it aside" in message or DATA_DIR_ENV in message
    if before is not None:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not Path(f"{path}-wal").exists()


def test_damaged_rows_surface_as_records_error_from_readers(store: RecordStore) -> None:
    session_id = start(store)
    store.add_frame(session_id, frame(0))
    store.flush()
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE frames SET channels = '{broken'")
    conn.close()
    with pytest.raises(RecordsError, match="is damaged"):
        store.frames(session_id)


# --- faults and durability -------------------------------------------------------------------


def test_writer_failure_surfaces_on_the_next_call_and_does_not_crash(store: RecordStore) -> None:
    resource = pytest.importorskip("resource")
    # A real fault, not a mock: the kernel refuses to grow any file of this process past the
    # limit (EFBIG, as on a full disk). CPython ignores SIGXFSZ, so the write fails, no signal.
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    session_id = start(store)
    store.add_frame(session_id, frame(0))
    store.flush()
    wal = Path(f"{store.path}-wal")
    big = FrameRow(1, 0.1, 0.0, False, tuple(channel(f"C{i}") for i in range(64)))
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size + 64 * 1024, old[1]))
    try:
        with pytest.raises(RecordsError) as excinfo:  # noqa: PT012 (the failing call is unknown)
            for _ in range(100):
                store.add_frame(session_id, big)
                store.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
    message = one_line_error(excinfo, store.path)
    assert "could not commit" in message
    assert "stop the session" in message
    assert isinstance(store.writer_error, RecordsError)
    with pytest.raises(RecordsError, match="could not commit"):
        store.add_frame(session_id, frame(2))
    with pytest.raises(RecordsError, match="could not commit"):
        store.add_event(session_id, EventRow(0.2, "x", "y", None))
    with pytest.raises(RecordsError, match="could not commit"):
        store.end_session(session_id, outcome="fault")
    with pytest.raises(RecordsError, match="could not commit"):
        store.flush()
    with pytest.raises(RecordsError, match="could not commit"):
        store.close()
    writers = [t for t in threading.enumerate() if t.name.endswith(str(store.path))]
    assert writers == []  # the writer thread ended cleanly, the process goes on
    assert store.frames(session_id)[0] == frame(0)  # what was committed before stays readable


def test_add_frame_does_not_wait_for_a_stalled_disk(store: RecordStore) -> None:
    session_id = start(store)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer must wait
    try:
        longest_s = 0.0
        for i in range(20):
            began = time.perf_counter()
            store.add_frame(session_id, frame(i))
            longest_s = max(longest_s, time.perf_counter() - began)
        with pytest.raises(RecordsError, match=r"not committed within 0\.2 s"):
            store.flush(timeout_s=0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert longest_s < 0.05
    store.flush()
    assert store.frames(session_id) == [frame(i) for i in range(20)]


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from acustim.records import ChannelFrame, FrameRow, RecordStore

    store = RecordStore.open(Path(sys.argv[1]))
    session_id = store.start_session(program="p", device="sim:coyote3", profile="coyote3")
    print("session", session_id, flush=True)
    period_s = float(sys.argv[2])
    count = int(sys.argv[3])
    ch = ChannelFrame("A", 10, (100.0,) * 4, (200.0,) * 4, (0.5,) * 4)
    t0 = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, t0 + i * period_s - time.monotonic()))
        store.add_frame(session_id, FrameRow(i, i * period_s, 0.0, False, (ch,)))
        print(i, flush=True)
    """
)


def run_child(path: Path, period_s: float, count: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), *sys.path[1:]]))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(period_s), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )


def test_sigkill_loses_at_most_one_frame_period(store_path: Path) -> None:
    child = run_child(store_path, period_s=0.1, count=1000)
    assert child.stdout is not None
    try:
        session_line = child.stdout.readline().split()
        assert session_line[0] == "session", session_line
        announced: list[int] = []
        while len(announced) < 20:
            line = child.stdout.readline()
            assert line, "the child died early"
            announced.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        announced += [int(line) for line in child.stdout.read().split()]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    with RecordStore.open(store_path) as store:
        stored = [row.index for row in store.frames(int(session_line[1]))]
    missing = sorted(set(announced) - set(stored))
    assert len(missing) <= 1, missing
    assert stored == list(range(len(stored)))  # a prefix: nothing lost in the middle
    assert len(stored) <= len(announced) + 1  # at most the frame added but not yet announced


def test_store_never_closed_is_committed_at_exit(store_path: Path) -> None:
    child = run_child(store_path, period_s=0.0, count=2000)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    with RecordStore.open(store_path) as store:
        assert [row.index for row in store.frames(1)] == list(range(2000))
    assert out.split()[-1] == "1999"


# --- schema 2: patients, notes, screening, firmware ------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [("P-0042", "P-0042"), ("  p_7  ", "p_7"), ("A" * PATIENT_CODE_MAX, "A" * PATIENT_CODE_MAX)],
)
def test_patient_codes_are_pseudonyms_of_letters_digits_dash_underscore(
    given: str, kept: str
) -> None:
    assert validate_patient_code(given) == kept


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("Jane Doe", "has a space in it and looks like a name"),
        ("Jane\tDoe", "looks like a name"),
        ("", "no patient code given"),
        ("   ", "no patient code given"),
        ("A" * (PATIENT_CODE_MAX + 1), f"is {PATIENT_CODE_MAX + 1} characters long"),
        ("jane.doe", "contains '.'"),
        ("Zoë", "contains 'ë'"),
        (42, "must be text"),
    ],
)
def test_anything_else_is_refused_with_the_rule_in_one_line(given: object, says: str) -> None:
    with pytest.raises(PatientCodeError) as excinfo:
        validate_patient_code(given)
    message = str(excinfo.value)
    assert says in message
    assert "1 to 32 letters" in message and "never the patient's name" in message
    assert "\n" not in message


def test_a_name_is_refused_before_anything_is_recorded(store: RecordStore) -> None:
    with pytest.raises(PatientCodeError, match="looks like a name"):
        store.start_session(program="p", device="d", profile="f", patient="Jane Doe")
    assert store.sessions() == []
    assert store.patients() == []
    assert store.writer_error is None


def test_patient_notes_screening_and_firmware_read_back(store: RecordStore) -> None:
    screening: dict[str, object] = {"pacemaker": False, "pregnant": None, "epilepsy": "no"}
    session_id = store.start_session(
        program="tmj-basic",
        device="sim:coyote3",
        profile="coyote3",
        patient="P-0042",
        notes="left TMJ tender; <b>not</b> markup",
        screening=screening,
        firmware="Coyote 3 v1.2",
    )
    plain = start(store)
    info = store.session(session_id)
    assert (info.patient, info.notes, info.screening, info.firmware) == (
        "P-0042",
        "left TMJ tender; <b>not</b> markup",
        screening,
        "Coyote 3 v1.2",
    )
    assert (store.session(plain).patient, store.session(plain).screening) == (None, {})
    with pytest.raises(RecordsError, match="JSON-compatible"):
        store.start_session(program="p", device="d", profile="f", screening={"x": object()})


def test_firmware_reported_after_the_start_is_kept_with_the_session(store: RecordStore) -> None:
    session_id = start(store)
    assert store.session(session_id).firmware is None
    store.set_session_firmware(session_id, "Pulse Pal 2, firmware 22")
    store.end_session(session_id, outcome="completed")
    store.flush()
    assert store.session(session_id).firmware == "Pulse Pal 2, firmware 22"
    with pytest.raises(RecordsError, match="not running"):
        store.set_session_firmware(session_id, "too late")


def test_patient_codes_compare_without_case_and_keep_their_first_spelling(
    store: RecordStore,
) -> None:
    first = store.start_session(program="p", device="d", profile="f", patient="P-abc")
    second = store.start_session(program="p", device="d", profile="f", patient="p-ABC")
    other = store.start_session(program="p", device="d", profile="f", patient="Q-1")
    start(store)
    assert store.session(second).patient == "P-abc"
    assert [s.id for s in store.sessions(patient="P-ABC")] == [first, second]
    assert [s.id for s in store.sessions(patient="q-1")] == [other]
    assert store.sessions(patient="nobody") == []
    patients = store.patients()
    assert [(p.code, p.session_count) for p in patients] == [("P-abc", 2), ("Q-1", 1)]
    assert patients[0].last_session_at == store.session(second).started_at
    with pytest.raises(PatientCodeError):
        store.sessions(patient="Jane Doe")


@pytest.fixture
def tokyo_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+9 (a POSIX TZ string: no time zone database needed)."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("tokyo_time")
def test_sessions_filter_by_local_dates_and_times(store: RecordStore) -> None:
    ids = [start(store) for _ in range(4)]
    starts = [  # UTC; local is 9 hours later
        "2025-03-01T14:59:59.999+00:00",  # 2025-03-01 23:59:59.999 local
        "2025-03-01T15:00:00.000+00:00",  # 2025-03-02 00:00 local
        "2025-03-02T14:59:59.999+00:00",  # 2025-03-02 23:59:59.999 local
        "2025-03-02T15:00:00.000+00:00",  # 2025-03-03 00:00 local
    ]
    store.flush()
    with sqlite3.connect(store.path) as conn:
        for session_id, started_at in zip(ids, starts, strict=True):
            conn.execute(
                "UPDATE sessions SET started_at = ? WHERE id = ?", (started_at, session_id)
            )
    conn.close()

    def found(**bounds: object) -> list[int]:
        return [s.id for s in store.sessions(**bounds)]  # type: ignore[arg-type]

    day = date(2025, 3, 2)
    assert found(since=day, until=day) == ids[1:3]  # the whole local day, both ends included
    assert found(since=day) == ids[1:]
    assert found(until=day) == ids[:3]
    assert found(until=date(2025, 2, 28)) == []
    # a naive datetime is local time, an aware one means what it says; until includes it
    assert found(until=datetime(2025, 3, 2, 0, 0)) == ids[:2]
    assert found(since=datetime(2025, 3, 1, 15, 0, tzinfo=UTC)) == ids[1:]
    assert found(since=datetime(2025, 3, 2, 23, 59, 59, 999000)) == ids[2:]


# --- reading without writing -----------------------------------------------------------------


def test_a_read_only_store_reads_everything_and_refuses_writes(store_path: Path) -> None:
    with RecordStore.open(store_path) as store:
        session_id = store.start_session(
            program="p", device="d", profile="f", patient="P-1", notes="n"
        )
        store.add_frame(session_id, frame(0))
        store.add_event(session_id, EventRow(0.0, "start", "started", None))
        store.end_session(session_id, outcome="completed")
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()
    with RecordStore.open(store_path, read_only=True) as reader:
        assert reader.read_only
        assert reader.schema_version == SCHEMA_VERSION
        assert [s.patient for s in reader.sessions()] == ["P-1"]
        assert reader.frames(session_id) == [frame(0)]
        assert [e.kind for e in reader.events(session_id)] == ["start"]
        assert [p.code for p in reader.patients()] == ["P-1"]
        for write in (
            lambda: start(reader),
            lambda: reader.add_frame(session_id, frame(1)),
            lambda: reader.set_session_firmware(session_id, "x"),
        ):
            with pytest.raises(RecordsError, match="open read-only"):
                write()
        reader.flush()  # nothing queued, nothing to wait for
        assert reader.writer_error is None
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before


def test_reading_a_store_that_is_not_there_says_so_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / STORE_FILE_NAME
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(path, read_only=True)
    assert "no records store at" in one_line_error(excinfo, path)
    assert not path.parent.exists()


def test_an_empty_file_reads_as_an_empty_store(store_path: Path) -> None:
    store_path.parent.mkdir()
    store_path.touch()
    with RecordStore.open(store_path, read_only=True) as reader:
        assert reader.sessions() == []
        assert reader.patients() == []
        with pytest.raises(RecordsError, match="has no session 1"):
            reader.frames(1)
    assert store_path.read_bytes() == b""


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (make_text_file, "not an acustim records store"),
        (make_foreign_sqlite, "not an acustim records store"),
        (make_damaged_store, "is damaged"),
        (Path.mkdir, "is a directory"),
    ],
    ids=["text", "foreign-sqlite", "damaged", "directory"],
)
def test_unusable_files_are_refused_by_readers_too(
    tmp_path: Path, make: Callable[[Path], object], says: str
) -> None:
    path = tmp_path / STORE_FILE_NAME
    make(path)
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(path, read_only=True)
    assert says in one_line_error(excinfo, path)


def test_readers_refuse_a_store_written_by_a_newer_acustim(store_path: Path) -> None:
    RecordStore.open(store_path).close()
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(RecordsError, match="written by a newer acustim"):
        RecordStore.open(store_path, read_only=True)


# --- a read-only directory and a full disk, for real -----------------------------------------
#
# As root, chmod does not stop a write, so these tests make the real thing in a private mount
# namespace (unshare: a user namespace mapped to the caller, plus a mount namespace): a
# read-only bind mount of the store's directory (writes fail with EROFS, for root too) and a
# tiny tmpfs (writes fail with ENOSPC). The mounts exist only inside the child process; nothing
# on the host changes. Without namespaces a non-root user gets the same through chmod.

UNSHARE = shutil.which("unshare")


@functools.cache
def namespaces_work() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run(
        [UNSHARE, "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return probe.returncode == 0


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), *sys.path[1:]]))


def run_in_namespace(setup: str, script: str, *args: str) -> dict[str, Any]:
    """Run the shell ``setup`` (mounts) and then the Python ``script`` in a new user and mount
    namespace; the script prints one JSON object, returned here."""
    assert UNSHARE is not None
    shell = ["sh", "-ec", f'{setup}\nexec "$@"', "sh"]
    done = subprocess.run(
        [
            UNSHARE,
            "--user",
            "--map-root-user",
            "--mount",
            *shell,
            sys.executable,
            "-c",
            script,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


READ_ONLY_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from acustim.records import RecordStore, RecordsError

    directory = Path(sys.argv[1])
    out = {}
    try:
        (directory / "probe").write_text("x")
        out["probe"] = "written"
    except OSError as exc:
        out["probe"] = exc.strerror
    for name in sys.argv[2:]:
        path = directory / name / "records.sqlite3"
        entry = out[name] = {}
        try:
            RecordStore.open(path).close()
            entry["recording"] = "allowed"
        except RecordsError as exc:
            entry["recording"] = str(exc)
        with RecordStore.open(path, read_only=True) as store:
            entry["sessions"] = [[s.id, s.patient] for s in store.sessions()]
            entry["frames"] = [
                [f.index for f in store.frames(s.id)] for s in store.sessions()
            ]
            entry["events"] = [len(store.events(s.id)) for s in store.sessions()]
    print(json.dumps(out))
    """
)

KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from acustim.records import ChannelFrame, EventRow, FrameRow, RecordStore

    store = RecordStore.open(Path(sys.argv[1]))
    session_id = store.start_session(program="p", device="d", profile="f", patient="P-9")
    ch = ChannelFrame("A", 10, (100.0,) * 4, (200.0,) * 4, (0.5,) * 4)
    for i in range(int(sys.argv[2])):
        store.add_frame(session_id, FrameRow(i, i * 0.1, 0.0, False, (ch,)))
    store.add_event(session_id, EventRow(0.0, "start", "started", None))
    store.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def make_killed_store(path: Path, frames: int) -> None:
    """A store whose writer was killed mid-session: its rows are still in the -wal file."""
    path.parent.mkdir(parents=True)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(path), str(frames)],
        env=child_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert Path(f"{path}-wal").stat().st_size > 0


def test_a_read_only_directory_refuses_recording_clearly_and_every_row_stays_readable(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ro"
    clean = root / "clean" / STORE_FILE_NAME
    clean.parent.mkdir(parents=True)
    with RecordStore.open(clean) as store:
        session_id = store.start_session(program="p", device="d", profile="f", patient="P-1")
        for i in range(3):
            store.add_frame(session_id, frame(i))
        store.add_event(session_id, EventRow(0.0, "start", "started", None))
        store.end_session(session_id, outcome="completed")
    assert not Path(f"{clean}-wal").exists()  # closed cleanly: all in the main file
    killed = root / "killed" / STORE_FILE_NAME
    make_killed_store(killed, 25)
    no_shm = root / "killed-no-shm" / STORE_FILE_NAME
    no_shm.parent.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy2(f"{killed}{suffix}", f"{no_shm}{suffix}")
    wal_before = Path(f"{killed}-wal").read_bytes()
    names = ["clean", "killed", "killed-no-shm"]

    if namespaces_work():
        setup = f"mount --bind '{root}' '{root}'\nmount -o remount,bind,ro '{root}'"
        out = run_in_namespace(setup, READ_ONLY_CHILD, str(root), *names)
        why = "it is on a read-only filesystem"
        assert out["probe"] == "Read-only file system"
    elif os.geteuid() != 0:
        for d in (root, *(root / n for n in names)):
            d.chmod(0o555)
        try:
            child = subprocess.run(
                [sys.executable, "-c", READ_ONLY_CHILD, str(root), *names],
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
        finally:
            for d in (root, *(root / n for n in names)):
                d.chmod(0o700)
        out = json.loads(child.stdout)
        why = "permission denied"
        assert out["probe"] == "Permission denied"
    else:  # not a skip: this platform (Linux with user namespaces) can always run it
        raise AssertionError(
            "as root only a read-only mount stops writes: this test needs user and mount "
            "namespaces (unshare --user --map-root-user --mount)"
        )

    for name in names:
        message = out[name]["recording"]
        assert message.startswith(f"cannot record sessions in {root / name}: {why}")
        assert "acustim sessions --store" in message and DATA_DIR_ENV in message
        assert "\n" not in message
    assert out["clean"]["sessions"] == [[1, "P-1"]]
    assert out["clean"]["frames"] == [[0, 1, 2]]
    assert out["clean"]["events"] == [1]
    for name in ("killed", "killed-no-shm"):  # rows only in the -wal file are read too
        assert out[name]["sessions"] == [[1, "P-9"]]
        assert out[name]["frames"] == [list(range(25))]
        assert out[name]["events"] == [1]
    assert Path(f"{killed}-wal").read_bytes() == wal_before  # nothing was changed
    assert not list(root.rglob("probe"))


FULL_DISK_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from acustim.records import ChannelFrame, EventRow, FrameRow, RecordStore, RecordsError

    path = Path(sys.argv[1]) / "records.sqlite3"
    store = RecordStore.open(path)
    session_id = store.start_session(program="p", device="d", profile="f", patient="P-5")
    channels = tuple(
        ChannelFrame(f"C{k}", 10, (100.0,) * 4, (200.0,) * 4, (0.5,) * 4) for k in range(8)
    )
    out = {"committed": 0}
    try:
        for i in range(100_000):
            store.add_frame(session_id, FrameRow(i, i * 0.1, 0.0, False, channels))
            if i % 10 == 9:
                store.flush()
                out["committed"] = i + 1
        out["error"] = None
    except RecordsError as exc:
        out["error"] = str(exc)
    try:
        store.add_event(session_id, EventRow(1.0, "late", "after the failure", None))
        out["later"] = "accepted"
    except RecordsError as exc:
        out["later"] = str(exc)
    try:
        store.close()
    except RecordsError:
        pass
    with RecordStore.open(path, read_only=True) as reader:
        out["stored"] = [f.index for f in reader.frames(session_id)]
        out["patient"] = reader.session(session_id).patient
    print(json.dumps(out))
    """
)


def test_a_full_disk_stops_the_record_with_a_clear_error_and_keeps_every_committed_row(
    tmp_path: Path,
) -> None:
    # not a skip: this platform (Linux with user namespaces) can always run it
    assert namespaces_work(), "a real full disk needs a tmpfs in a mount namespace (unshare)"
    disk = tmp_path / "small-disk"
    disk.mkdir()
    out = run_in_namespace(
        f"mount -t tmpfs -o size=192k tmpfs '{disk}'", FULL_DISK_CHILD, str(disk)
    )
    error = out["error"]
    assert error is not None, "the disk never filled"
    assert "could not commit" in error and "database or disk is full" in error
    assert "stop the session" in error and "\n" not in error
    assert out["later"] == error  # every later write raises the same error, nothing crashes
    assert out["committed"] > 0
    stored = out["stored"]
    assert stored == list(range(len(stored)))  # a prefix: nothing lost in the middle
    assert len(stored) >= out["committed"]  # everything flushed before the failure is there
    assert out["patient"] == "P-5"


def test_a_directory_you_may_not_write_is_refused_before_sqlite_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the permission check itself (root ignores file modes): the kernel's answer for a
    # directory without write permission, on a filesystem that is not read-only.
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if Path(path) == tmp_path and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    path = tmp_path / STORE_FILE_NAME
    with pytest.raises(RecordsError) as excinfo:
        RecordStore.open(path)
    message = one_line_error(excinfo, path)
    assert message.startswith(
        f"cannot record sessions in {tmp_path}: you cannot write there (permission denied)"
    )
    assert not path.exists()


def test_notes_amended_after_the_session_keep_the_earlier_text(
    store: RecordStore, tmp_path: Path
) -> None:
    sid = store.start_session(program="p", device="sim:x", profile="x", notes="jaw tight")
    store.end_session(sid, outcome="completed")
    store.flush()
    store.set_session_notes(sid, "jaw tight; better after 2 sessions")
    assert store.session(sid).notes == "jaw tight; better after 2 sessions"
    amended = [e for e in store.events(sid) if e.kind == "notes"]
    assert len(amended) == 1 and amended[0].data is not None
    assert amended[0].data["previous"] == "jaw tight"
    store.set_session_notes(sid, "jaw tight; better after 2 sessions")  # unchanged: no event
    assert len([e for e in store.events(sid) if e.kind == "notes"]) == 1
    with pytest.raises(RecordsError, match="must be text"):
        store.set_session_notes(sid, 12)  # type: ignore[arg-type]
    with pytest.raises(RecordsError):
        store.set_session_notes(sid + 99, "no such session")
    store.close()
    with RecordStore.open(store.path, read_only=True) as readonly, pytest.raises(RecordsError):
        readonly.set_session_notes(sid, "a read-only store changes nothing")
