"""Whole sessions through the engine on the built-in simulator, on virtual time.

The simulator's record is the oracle: what the device delivered, per channel, over time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from acustim import Engine, load_program, resolve_device
from acustim.records import RecordStore
from firmware_bridge.codecs import coyote3 as C
from firmware_bridge.errors import UnknownDeviceError
from firmware_bridge.link import SimulatorLink
from safety import LimitError
from tests.programs import ARMS, continuous
from waveforms.errors import ProgramError

SHORT = continuous(
    name="short-test", title="Short test", duration_s=20, frequency_hz=50, channels=ARMS
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(virtual_time=True, records=tmp_path / "records.sqlite3") as e:
        yield e


def link_of(device: object) -> SimulatorLink:
    transport = device.transport  # type: ignore[attr-defined]
    assert isinstance(transport, SimulatorLink)
    return transport


def test_a_whole_session_soft_starts_runs_and_ends_at_zero(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    program = SHORT
    session = device.start(program, levels={"A": 30, "B": 10})
    result = session.wait(30)
    assert result.outcome == "completed"
    sim = device.simulator
    record = sim.record
    # the level reaches 1 du a quarter second after the start (4 du/s by default)
    t_start = min(iv.start_s for iv in record.intervals("A") if iv.strength_du > 0) - 0.25
    # soft start: 4 du/s by default, so 30 du takes 7.5 s
    assert record.output_at("A", t_start + 3.0) <= 4 * 3.1 + 1
    assert record.output_at("A", t_start + 10.0) == pytest.approx(30.0)
    assert record.output_at("B", t_start + 10.0) == pytest.approx(10.0)
    # never faster than the ramp, seen from the device side
    strengths = [(iv.start_s, iv.strength_du) for iv in record.intervals("A")]
    for (t1, s1), (t2, s2) in itertools.pairwise(strengths):
        if s2 > s1:
            assert s2 - s1 <= 4.0 * max(t2 - t1, 0.1) + 1
    # it ends at zero and stays there
    end = record.end_s
    assert record.output_at("A", end) == 0.0
    assert sim.strength_du("A") == 0
    assert sim.strength_du("B") == 0
    status = session.status()
    assert status.state == "ended"
    assert status.outcome == "completed"


def test_the_record_holds_every_frame_the_device_was_sent(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    writes: list[bytes] = []
    link = link_of(device)
    original = link.simulator.write

    def spy(char: str, data: bytes) -> None:
        writes.append(data)
        original(char, data)

    link.simulator.write = spy  # type: ignore[method-assign]
    session = device.start(SHORT, levels={"A": 20})
    session.wait(30)
    assert engine.store is not None
    engine.store.flush()
    frames = engine.store.frames(session.session_id or -1)
    b0_after_connect = [w for w in writes if w[0] == 0xB0][1:]  # the first is the connect zero
    assert len(frames) == len(b0_after_connect)
    assert [f.index for f in frames] == list(range(len(frames)))
    for row, wire in zip(frames, b0_after_connect, strict=True):
        a = next(c for c in row.channels if c.name == "A")
        assert a.level_du <= 200
        assert wire[8:12] == bytes(min(100, math.floor(i * 100 + 1e-9)) for i in a.intensity)
        assert wire[2] in (0, a.level_du)  # strength: unchanged (0) or set to the level
    events = [e.kind for e in engine.store.events(session.session_id or -1)]
    assert events[0] == "start"
    assert events[-1] == "end"
    info = engine.store.session(session.session_id or -1)
    assert info.outcome == "completed"
    assert info.meta["channels"][0]["sites"] == ["PC6-L", "TE5-L"]  # type: ignore[index]


def test_bad_levels_are_refused_before_anything_is_sent(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    link = link_of(device)
    with pytest.raises(LimitError, match=r"allowed 0\.\.200 du"):
        device.start(SHORT, levels={"A": 201})
    with pytest.raises(LimitError, match="program short-test has channels A, B"):
        device.start(SHORT, levels={"C": 1})
    with pytest.raises(LimitError, match=r"allowed 0\.\.200 du"):
        device.start(SHORT, ceilings={"A": 500})
    assert link.writes == 0


def test_pause_zeroes_now_and_only_raising_a_level_resumes(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    session = device.start(SHORT, levels={"A": 20}, duration_s=60)
    runner = session.runner
    loop = engine.io.loop
    marks: dict[str, float] = {}

    def pause() -> None:
        marks["pause"] = loop.time()
        runner.pause()

    def resume() -> None:
        marks["resume"] = loop.time()
        runner.set_level("A", 20)

    loop.call_soon_threadsafe(lambda: loop.call_later(8.0, pause))
    loop.call_soon_threadsafe(lambda: loop.call_later(14.0, resume))
    session.wait(30)
    record = device.simulator.record
    assert record.output_at("A", marks["pause"] - 0.2) > 0
    assert record.max_output("A", marks["pause"] + 1e-6, marks["resume"]) == 0.0
    # after the resume it ramps again from zero
    assert record.output_at("A", marks["resume"] + 1.0) <= 4 * 1.2 + 1
    assert record.output_at("A", marks["resume"] + 6.0) == pytest.approx(20.0)


def test_stop_from_another_thread_ends_with_zero_at_once(tmp_path: Path) -> None:
    with Engine(virtual_time=False, records=False) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(SHORT, levels={"A": 200}, rise_fraction_per_s=0.05)
        while session.status().channels == () or session.status().channels[0].level_du < 5:
            assert not session.done, session.wait(0)
            engine.io.call(lambda: None)  # let the stream run
        session.stop("test stop")
        result = session.wait(5)
        assert result.outcome == "stopped"
        assert device.simulator.strength_du("A") == 0


def test_link_lost_without_reconnect_is_a_fault_with_zero(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    session = device.start(SHORT, levels={"A": 20})
    link = link_of(device)
    loop = engine.io.loop
    loop.call_soon_threadsafe(lambda: loop.call_later(5.0, link.drop, "radio gone"))
    result = session.wait(30)
    assert result.outcome == "fault"
    assert "radio gone" in result.reason
    # the device stops by itself once frames stop (the link is gone; nothing can be written)
    record = device.simulator.record
    assert record.output_at("A", record.end_s) == 0.0


def test_reconnect_writes_limits_again_and_never_resumes_by_itself(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    link = link_of(device)
    writes: list[tuple[float, bytes]] = []
    original = link.simulator.write
    loop = engine.io.loop

    def spy(char: str, data: bytes) -> None:
        writes.append((loop.time(), data))
        original(char, data)

    link.simulator.write = spy  # type: ignore[method-assign]
    session = device.start(SHORT, levels={"A": 20}, ceilings={"A": 40}, reconnect_s=5.0)
    marks: dict[str, float] = {}

    def drop() -> None:
        marks["drop"] = loop.time()
        link.drop("radio gone")

    loop.call_soon_threadsafe(lambda: loop.call_later(9.0, drop))
    result = session.wait(60)
    assert result.outcome == "completed"
    after = [(t, d) for t, d in writes if t >= marks["drop"]]
    assert after[0][1][2:4] == b"\x00\x00"  # zero strengths first, again
    assert after[1][1] == C.encode_bf(40, 200, 160, 160, 0, 0)  # then the limits
    # no strength above zero after the drop: nobody raised a level again
    record = device.simulator.record
    assert record.max_output("A", marks["drop"] + 1e-6) == 0.0
    assert engine.store is not None
    engine.store.flush()
    kinds = [e.kind for e in engine.store.events(session.session_id or -1)]
    assert kinds.count("link_lost") == 1
    assert "reconnected" in kinds


def test_records_failure_stops_output(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    session = device.start(SHORT, levels={"A": 20})
    store = engine.store
    assert store is not None
    loop = engine.io.loop
    loop.call_soon_threadsafe(lambda: loop.call_later(6.0, store.close))
    result = session.wait(30)
    assert result.outcome == "fault"
    assert "records failed" in result.reason
    assert device.simulator.strength_du("A") == 0


def test_device_specs_and_program_names_give_clear_errors() -> None:
    with pytest.raises(UnknownDeviceError, match="use sim:<device>"):
        resolve_device("coyote3")
    with pytest.raises(Exception, match="unknown device 'nosuch'"):
        resolve_device("sim:nosuch")
    with pytest.raises(ProgramError, match='"nosuch" is unknown'):
        load_program("nosuch")
    assert load_program("tmj-jaw-pain-left").name == "tmj-jaw-pain-left"


def test_engine_without_records(tmp_path: Path) -> None:
    with Engine(virtual_time=True, records=False) as engine:
        assert engine.store is None
        session = engine.connect("sim:coyote3").start(SHORT, levels={"A": 5})
        assert session.wait(30).outcome == "completed"
        assert session.session_id is None


def test_engine_with_an_open_store(tmp_path: Path) -> None:
    store = RecordStore.open(tmp_path / "r.sqlite3")
    with Engine(virtual_time=True, records=store) as engine:
        session = engine.connect("sim:coyote3").start(SHORT, levels={"A": 5})
        session.wait(30)
    store.flush()
    assert [s.outcome for s in store.sessions()] == ["completed"]
    store.close()


def test_reconnect_that_never_succeeds_ends_as_a_fault(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    link = link_of(device)
    session = device.start(SHORT, levels={"A": 20}, reconnect_s=3.0)
    loop = engine.io.loop

    def drop_for_good() -> None:
        link.refuse_open = True
        link.drop("radio gone")

    loop.call_soon_threadsafe(lambda: loop.call_later(6.0, drop_for_good))
    result = session.wait(30)
    assert result.outcome == "fault"
    assert "not back within 3 s" in result.reason
    assert engine.store is not None
    engine.store.flush()
    kinds = [e.kind for e in engine.store.events(session.session_id or -1)]
    assert kinds.count("reconnect_failed") >= 2


def test_a_device_that_cannot_be_reached_is_a_fault_before_any_output(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    link = link_of(device)
    engine.io.run(link.close())
    link.refuse_open = True
    session = device.start(SHORT, levels={"A": 20})
    result = session.wait(30)
    assert result.outcome == "fault"
    assert result.reason.startswith("could not connect:")
    assert session.status().state == "ended"


def test_stop_before_the_stream_starts_ends_cleanly(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    session = device.start(SHORT, levels={"A": 20})
    session.stop("changed my mind")
    result = session.wait(30)
    assert result.outcome == "stopped"
    assert device.simulator.record.max_output("A") == 0.0


def test_pause_before_the_stream_starts_is_safe(engine: Engine) -> None:
    device = engine.connect("sim:coyote3")
    session = device.start(SHORT, levels={"A": 20}, duration_s=5)
    session.pause()
    session.wait(30)
    assert device.simulator.strength_du("A") == 0


def test_a_store_that_cannot_start_a_session_means_no_output(engine: Engine) -> None:
    assert engine.store is not None
    engine.store.close()
    device = engine.connect("sim:coyote3")
    result = device.start(SHORT, levels={"A": 20}).wait(30)
    assert result.outcome == "fault"
    assert "session failed" in result.reason
    assert device.simulator.record.max_output("A") == 0.0
