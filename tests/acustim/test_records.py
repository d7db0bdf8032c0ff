"""The session records store: round trips, privacy, location, schema, damage, faults, SIGKILL."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import platformdirs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acustim import records
from acustim.records import (
    APPLICATION_ID,
    DATA_DIR_ENV,
    SCHEMA_VERSION,
    STORE_FILE_NAME,
    ChannelFrame,
    EventRow,
    FrameRow,
    RecordsError,
    RecordStore,
    default_store_path,
)

PROJECT_ROOT = Path(records.__file__).resolve().parents[1]


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
    assert SCHEMA_VERSION == 1


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
