"""CSV and JSON exports of a session's frames: they read back as the stored frames, bit for
bit, and are written readable by their owner only."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acustim import Engine
from acustim.export import (
    CSV_COLUMNS,
    JSON_FORMAT,
    export_csv,
    export_json,
    frames_from_csv,
    frames_from_json,
    frames_to_csv,
    load_csv,
    load_json,
    session_to_json,
)
from acustim.records import ChannelFrame, FrameRow, RecordStore, SessionInfo
from acustim.report import ReportError
from waveforms.files import parse_program

PROGRAM = """
[program]
name = "export-test"
title = "Export test"
indication = "tests"
electrode = "pad"

[[segments]]
kind = "dense_disperse"
duration_s = 12
low_hz = 2
high_hz = 100
low_s = 3
high_s = 3
pulse_width_us = 250
intensity = 0.75

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]

[[channels]]
name = "B"
sites = ["SI19-L", "ST5-L"]
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("export") / "records.sqlite3"
    with Engine(virtual_time=True, records=path) as engine:
        run = engine.connect("sim:coyote3").start(parse_program(PROGRAM), levels={"A": 21})
        assert run.wait(60).outcome == "completed"
        assert run.session_id is not None
        return path, run.session_id


@pytest.fixture
def store(session: tuple[Path, int]) -> Iterator[RecordStore]:
    with RecordStore.open(session[0], read_only=True) as opened:
        yield opened


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_csv_of_a_real_session_reads_back_as_the_stored_frames(
    store: RecordStore, session: tuple[Path, int], tmp_path: Path
) -> None:
    session_id = session[1]
    path = tmp_path / "frames.csv"
    frames = store.frames(session_id)
    assert export_csv(store, session_id, path) == len(frames) > 100
    assert load_csv(path) == frames
    with path.open(newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == CSV_COLUMNS
    # one row per frame, channel and sample slot (the Coyote 3: 2 channels x 4 slots)
    assert len(table) == len(frames) * 2 * 4
    at_21 = [r for r in table if r["channel"] == "A" and r["level_du"] == "21"]  # after the ramp
    # the delivered output (level x intensity) follows the level's ramp a fraction of a du
    # behind (safety.guard soft start): it has caught up a second after the level got there
    caught_up = float(at_21[0]["t_s"]) + 1.0
    held = [r for r in at_21 if float(r["t_s"]) >= caught_up]
    assert len(held) > 100
    assert all(float(r["intensity"]) <= 0.75 for r in at_21)
    assert {(r["intensity"], r["pulse_width_us"]) for r in held} == {("0.75", "250.0")}
    assert {r["frequency_hz"] for r in held} == {"2.0", "100.0"}
    assert {r["slot"] for r in held} == {"0", "1", "2", "3"}


def test_json_of_a_real_session_holds_the_session_events_and_frames(
    store: RecordStore, session: tuple[Path, int], tmp_path: Path
) -> None:
    session_id = session[1]
    path = tmp_path / "session.json"
    assert export_json(store, session_id, path) == len(store.frames(session_id))
    assert load_json(path) == store.frames(session_id)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["format"], document["version"]) == (JSON_FORMAT, 1)
    assert document["session"]["id"] == session_id
    assert document["session"]["program"] == "export-test"
    assert document["session"]["outcome"] == "completed"
    assert [e["kind"] for e in document["events"]] == [e.kind for e in store.events(session_id)]


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
def test_exports_are_private_files(
    store: RecordStore, session: tuple[Path, int], tmp_path: Path
) -> None:
    csv_path, json_path = tmp_path / "f.csv", tmp_path / "f.json"
    csv_path.write_text("old")
    csv_path.chmod(0o666)
    export_csv(store, session[1], csv_path)
    export_json(store, session[1], json_path)
    assert (mode(csv_path), mode(json_path)) == (0o600, 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.json"]


def test_exporting_to_an_unwritable_path_is_one_clear_error(
    store: RecordStore, session: tuple[Path, int], tmp_path: Path
) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        export_csv(store, session[1], tmp_path / "no" / "f.csv")
    with pytest.raises(ReportError, match="is a directory"):
        export_json(store, session[1], tmp_path)


finite = st.floats(allow_nan=False, allow_infinity=False)
# any text a channel name could hold in a file (not lone surrogates, which UTF-8 cannot hold)
names = st.text(st.characters(exclude_categories=["Cs"]), max_size=6)
channels = st.builds(
    ChannelFrame,
    name=names,
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


def float_bits(rows: list[FrameRow]) -> list[str]:
    return [
        x.hex()
        for r in rows
        for x in (
            r.t_s,
            r.lateness_ms,
            *(v for c in r.channels for v in (*c.frequency_hz, *c.pulse_width_us, *c.intensity)),
        )
    ]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(frame_rows, max_size=5))
def test_any_frames_round_trip_through_csv_and_json_bit_for_bit(rows: list[FrameRow]) -> None:
    from_csv = frames_from_csv(frames_to_csv(rows))
    info = SessionInfo(1, "2025-01-01T00:00:00.000+00:00", None, "p", "d", "f", None, None, {})
    from_json = frames_from_json(session_to_json(info, rows))
    assert from_csv == rows and from_json == rows
    assert float_bits(from_csv) == float_bits(rows) == float_bits(from_json)  # -0.0 too


@pytest.mark.parametrize(
    "text",
    ["", "a,b,c\n1,2,3\n", ",".join(CSV_COLUMNS) + "\n0,x,1.0,0,0,A,1,0,1,1,1\n"],
    ids=["empty", "other-columns", "bad-number"],
)
def test_a_file_that_is_not_a_csv_export_is_refused(text: str) -> None:
    with pytest.raises(ReportError):
        frames_from_csv(text)


@pytest.mark.parametrize("text", ["", "[]", '{"format": "other"}', '{"format": "acustim-session"}'])
def test_a_file_that_is_not_a_json_export_is_refused(text: str) -> None:
    with pytest.raises(ReportError, match="not an acustim session export"):
        frames_from_json(text)


def test_csv_text_is_plain_rfc4180(store: RecordStore, session: tuple[Path, int]) -> None:
    text = frames_to_csv(store.frames(session[1])[:2])
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    assert list(csv.reader(io.StringIO(text, newline="")))[1][:5] == ["0", "0", "0.0", "0.0", "1"]
