"""A Pulse Pal front-panel change never outlives one frame: judged on what reached the patient.

The box's own menu can change any parameter behind the host's back (``front_panel_set``), and
the protocol cannot read one back, so the codec writes every parameter that shapes the output
again with every frame. These sessions run through the engine on virtual time over the
in-process link (as ``test_faults.py`` does) and are judged on the simulator's delivery record
(``simulator.record``), not on what the host believes it wrote.

The bound asserted is one frame period of the profile (100 ms), with 1 us of slack for float
rounding only: the panel change is made right after a frame is on the wire (the worst moment:
a whole period until the next one), the in-process link has no latency, and on virtual time
vetting and encoding take no time, so the next frame lands exactly one period later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from acustim import Engine
from acustim.engine import Device
from device_profiles import load_profile
from firmware_bridge.codecs import pulsepal as P
from firmware_bridge.driver import make_driver
from firmware_bridge.errors import ProtocolError
from firmware_bridge.link import ByteStreamLink
from firmware_bridge.transport import Transport
from firmware_bridge.vtime import VirtualTimeLoop
from safety import VettedFrame
from simulators import PulsePalSimulator
from simulators.clock import VirtualClock
from simulators.pulsepal import volts_to_bits
from simulators.record import DeliveredInterval
from tests.firmware_bridge.test_pulsepal_codec import make_guard
from tests.programs import ONE_CHANNEL

LEVEL_MV = 500  # a modest level: 0.5 V phases
CEILING_MV = 1000  # the session's ceiling: +10 V from the panel is ten times it
FRAME_S = 0.1  # the profile's frame period
SLACK_S = 1e-6  # float rounding of virtual time only
PANEL_FRAME = 40  # 4 s in: the soft start (500 mV/s) reached the level long before
PHASE1_VOLTAGE, PHASE1_DURATION, INTER_PULSE, RESTING_VOLTAGE = 2, 4, 7, 17
PLUS_10_V = volts_to_bits(10.0)
ZERO_V = volts_to_bits(0.0)


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(virtual_time=True, records=False) as e:
        yield e


@dataclass
class Run:
    device: Device
    marks: dict[str, float] = field(default_factory=dict)
    #: what the box held (output A's raw parameters) after each frame and its ``on_frame``
    held: dict[int, dict[int, int]] = field(default_factory=dict)
    #: bytes of each write from the host, in order
    writes: list[int] = field(default_factory=list)

    @property
    def sim(self) -> PulsePalSimulator:
        sim = self.device.simulator
        assert isinstance(sim, PulsePalSimulator)
        return sim


def run_session(
    engine: Engine,
    on_frame: Callable[[Run, int, VettedFrame, float], None],
    *,
    pause_at_s: float | None = None,
    resume_at_s: float | None = None,
    stop_at_s: float = 7.0,
) -> Run:
    """A session at ``LEVEL_MV`` under ``CEILING_MV``; ``on_frame`` runs on the IO loop right
    after each frame is on the wire (where the simulator lives)."""
    device = engine.connect("sim:pulsepal")
    state = Run(device)
    link = device.transport
    assert isinstance(link, ByteStreamLink)

    def count(data: bytes) -> bytes:
        state.writes.append(len(data))
        return data

    link.manipulate = count

    def frame_sent(index: int, frame: VettedFrame) -> None:
        on_frame(state, index, frame, asyncio.get_running_loop().time())
        state.held[index] = state.sim.parameters("A")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        session = device.start(
            ONE_CHANNEL,
            levels={"A": LEVEL_MV},
            ceilings={"A": CEILING_MV},
            rise_fraction_per_s=0.05,
            on_frame=frame_sent,
        )
        state.marks["start"] = loop.time()
        runner = session.runner
        if pause_at_s is not None:
            await asyncio.sleep(pause_at_s)
            state.marks["pause"] = loop.time()
            runner.pause()
        if resume_at_s is not None:
            assert pause_at_s is not None
            await asyncio.sleep(resume_at_s - pause_at_s)
            state.marks["resume"] = loop.time()
            runner.set_level("A", LEVEL_MV)
        await asyncio.sleep(stop_at_s - (resume_at_s or pause_at_s or 0.0))
        state.marks["stop"] = loop.time()
        runner.stop("test over")

    engine.io.run(scenario(), timeout_s=60)
    assert device.session is not None
    assert device.session.wait(30).outcome == "stopped"
    return state


def back_within(run: Run, since_s: float, ok: Callable[[DeliveredInterval], bool]) -> float:
    """Seconds from ``since_s`` until the record of A first satisfies ``ok`` again."""
    for interval in run.sim.record.intervals("A"):
        if interval.end_s > since_s and ok(interval):
            return max(interval.start_s, since_s) - since_s
    raise AssertionError(f"channel A never came back after {since_s}")


# --- a panel change while output runs -------------------------------------------------------------
def test_panel_raise_to_10_v_is_undone_within_one_frame(engine: Engine) -> None:
    def panel(run: Run, index: int, frame: VettedFrame, now: float) -> None:
        if index == PANEL_FRAME:
            assert not frame.zero
            run.marks["panel"] = now
            run.sim.front_panel_set("A", PHASE1_VOLTAGE, PLUS_10_V)

    run = run_session(engine, panel)
    record = run.sim.record
    panel_s = run.marks["panel"]
    # before: the session's level, under its ceiling
    assert record.output_at("A", panel_s - 0.05) == pytest.approx(LEVEL_MV, abs=1)
    # the panel change did reach the patient (the test is not vacuous): 10 V, 10x the ceiling
    assert record.output_at("A", panel_s) == pytest.approx(10_000, abs=1)
    # back at or below the ceiling within one frame period ...
    exposure_s = back_within(run, panel_s, lambda iv: iv.output_du <= CEILING_MV)
    assert exposure_s <= FRAME_S + SLACK_S, f"+10 V held for {exposure_s * 1000:.1f} ms"
    # ... and it stays there, back at the session's level, until the stop
    after_s = panel_s + FRAME_S + SLACK_S
    assert record.max_output("A", after_s, run.marks["stop"]) <= CEILING_MV
    assert record.output_at("A", after_s) == pytest.approx(LEVEL_MV, abs=1)
    assert record.output_at("A", record.end_s) == 0.0


@pytest.mark.parametrize(
    ("code", "value", "what"),
    [
        (PHASE1_DURATION, 2_000, "pulse_width_us"),  # 100 ms phases instead of 200 us
        (INTER_PULSE, 1, "frequency_hz"),  # ~2400 Hz instead of 20 Hz
        (1, 0, "frequency_hz"),  # monophasic: no charge-balancing phase, another rate
    ],
)
def test_panel_changes_of_shape_are_undone_within_one_frame(
    engine: Engine, code: int, value: int, what: str
) -> None:
    def panel(run: Run, index: int, frame: VettedFrame, now: float) -> None:
        if index == PANEL_FRAME:
            run.marks["panel"] = now
            run.sim.front_panel_set("A", code, value)

    run = run_session(engine, panel, stop_at_s=5.0)
    record = run.sim.record
    panel_s = run.marks["panel"]
    before = getattr(record.interval_at("A", panel_s - 0.05), what)
    assert getattr(record.interval_at("A", panel_s), what) != pytest.approx(before)
    exposure_s = back_within(run, panel_s, lambda iv: getattr(iv, what) == pytest.approx(before))
    assert exposure_s <= FRAME_S + SLACK_S
    assert getattr(record.interval_at("A", panel_s + FRAME_S + SLACK_S), what) == pytest.approx(
        before
    )
    # the box holds exactly what it held before the change once the next frame is written
    assert run.held[PANEL_FRAME][code] == value
    assert run.held[PANEL_FRAME + 1] == run.held[PANEL_FRAME - 1]


def test_every_frame_is_one_write_of_every_parameter(engine: Engine) -> None:
    run = run_session(engine, lambda *_: None, stop_at_s=3.0)
    # connect writes one message at a time; from the first frame on, one write per frame
    frames = run.writes[-25:-5]  # steady output, before the stop
    # 4 outputs x (biphasic, 2 phase + resting voltage, 2 phases + interphase + interpulse,
    # burst, train duration and delay, 2 trigger links, custom train) = 4 x 94 bytes
    assert frames == [376] * len(frames)


# --- a panel change during a pause ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "what"),
    [
        (PHASE1_VOLTAGE, "the amplitude a trigger would start"),
        (RESTING_VOLTAGE, "the level an idle output holds (DC)"),
    ],
)
def test_panel_change_during_a_pause_is_undone(engine: Engine, code: int, what: str) -> None:
    def panel(run: Run, index: int, frame: VettedFrame, now: float) -> None:
        paused_s = run.marks.get("pause")
        if (
            paused_s is not None
            and frame.zero
            and "panel" not in run.marks
            and now >= paused_s + 0.5
        ):
            run.marks["panel"] = now
            run.marks["panel_frame"] = index
            run.sim.front_panel_set("A", code, PLUS_10_V)

    run = run_session(engine, panel, pause_at_s=3.0, resume_at_s=4.5, stop_at_s=6.0)
    record = run.sim.record
    panel_s = run.marks["panel"]
    index = int(run.marks["panel_frame"])
    # zero within one frame of the change, and zero until the practitioner raises the level
    exposure_s = back_within(run, panel_s, lambda iv: iv.output_du == 0.0)
    assert exposure_s <= FRAME_S + SLACK_S, f"{what} at +10 V for {exposure_s * 1000:.1f} ms"
    resume_s = run.marks["resume"]
    assert record.max_output("A", panel_s + FRAME_S + SLACK_S, resume_s - SLACK_S) == 0.0
    # the box holds 0 V again after the next (zero) frame
    assert run.held[index][code] == PLUS_10_V
    assert run.held[index + 1][code] == ZERO_V
    # resumed from zero by the practitioner: never above the ceiling
    assert record.max_output("A", resume_s, run.marks["stop"]) <= CEILING_MV
    assert record.output_at("A", run.marks["stop"] - 0.05) == pytest.approx(LEVEL_MV, abs=1)


# --- a zero frame after a failure ---------------------------------------------------------------
class _Capture(Transport):
    """Takes what the driver writes; never answers."""

    def __init__(self) -> None:
        super().__init__()
        self.data = b""

    @property
    def is_open(self) -> bool:
        return True

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        self.data += bytes(data)


def _out_of_step_zero() -> bytes:
    """What the driver writes for a zero frame while out of step (never connected, here)."""
    capture = _Capture()
    driver = make_driver(load_profile("pulsepal"), capture)
    zero = make_guard().zero_frame()
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(ProtocolError, match="cannot be confirmed"):
            loop.run_until_complete(driver.send(zero))
    finally:
        loop.close()
    return capture.data


_CUT_MESSAGES = [
    P.program_param(P.PHASE1_DURATION, 1, 0xD5D5D5D5 % P.MAX_CYCLES),  # 8 bytes, 4-byte value
    P.program_param(P.RESTING_VOLTAGE, 2, 0xFFFF),  # 6 bytes, a voltage
    P.program_param(P.CUSTOM_TRAIN_ID, 3, 1),  # 5 bytes, a flag
    P.continuous_loop(4, True, 22),
    P.soft_trigger(0b1111),
    P.client_name(),
]


@pytest.mark.parametrize(
    ("message", "cut"),
    [(m, k) for m in _CUT_MESSAGES for k in range(1, len(m))],
    ids=lambda v: v.hex() if isinstance(v, bytes) else str(v),
)
def test_a_zero_after_a_failure_aborts_even_after_a_message_cut_short(
    message: bytes, cut: int
) -> None:
    clock = VirtualClock()
    sim = PulsePalSimulator(clock)
    sim.feed(P.soft_trigger(0b1111))  # every output runs its (default, +-5 V) train
    clock.set(0.1)
    assert all(sim.is_running(c) for c in "ABCD")
    sim.feed(message[:cut])  # the link failed in the middle of a message
    clock.set(0.2)
    sim.feed(_out_of_step_zero())
    clock.set(0.3)
    record = sim.record
    for channel in "ABCD":
        assert not sim.is_running(channel)
        assert record.max_output(channel, 0.2, 0.3) == 0.0
        # whatever value the cut message took from the aborts, voltages are 0 V again
        held = sim.parameters(channel)
        assert held[PHASE1_VOLTAGE] == held[RESTING_VOLTAGE] == ZERO_V
    assert record.events_of("abort")
