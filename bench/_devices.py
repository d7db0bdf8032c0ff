"""device_estop: per device and hosting, an emergency stop to the zero frame and to zero output.

Every device the project drives (every built-in profile with a simulator), on each hosting the
contract suite uses (``firmware_bridge.link.hostings``), run through the real engine on the
wall clock (``Engine(virtual_time=False)``):

- ``inproc``: the in-process link (``SimulatorLink`` / ``ByteStreamLink``), simulator on the
  IO loop's clock;
- ``ble``: bleak's real ``BleakClient`` with the simulator backend, simulator on the loop clock;
- ``pty``: real pyserial on a raw pty, the simulator served by ``PtyHost`` on its own thread
  with ``WallClock`` (``time.monotonic``, the same time base as asyncio's loop clock).

One session per case; each cycle, from the main thread (as a GUI handler would):

1. raise every channel (``Session.set_level``) and wait until the *simulator* delivers output;
2. wait a random part of a frame period, so stops fall at every phase of the frame clock;
3. stamp the request on the loop clock and pause (``Session.pause``: ``IoThread.call`` of
   ``SessionRunner.pause`` -> ``Streamer.emergency_stop``: zero now, the session goes on);
4. the transport (a subclass of the real one that only stamps) notes when the first zero
   frame's bytes were handed to it: request -> wire;
5. the simulator's record says from when its output was zero on every channel: request ->
   device output zero.

Which frame is zero and which bytes are whose is known exactly, whatever the device's
protocol: writes are stamped per asyncio task and matched with the runner's ``on_frame``
report (which says ``frame.zero``) in the same task. The stop's own frame is told apart by a
context variable: the request sets it on the main thread, the IO loop runs the pause in a copy
of that context and the out-of-band zero task inherits it, while the streamer's scheduled
frames run in its own task, which never sees it.

Never used by the application, never asserts anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from acustim import Engine
from acustim.engine import Device, Session
from bench._common import BenchReport, Condition, Op, percentile, report, spread_ms
from device_profiles.profile import load_profile, simulator_class
from firmware_bridge.ble import BleTransport
from firmware_bridge.link import ByteStreamLink, SimulatorLink, hostings, simulator_profiles
from firmware_bridge.serial_port import SerialTransport
from firmware_bridge.transport import Transport
from safety.guard import VettedFrame
from safety.screening import SCREENING_QUESTIONS
from simulators import contract_of
from simulators.clock import FunctionClock, WallClock
from simulators.hosting import bleak_backend
from simulators.hosting.pty import PtyHost
from simulators.record import DeliveryRecord
from waveforms.program import Channel, Continuous, Program

NAME = "device_estop"
#: Program channels (every device has at least A and B).
CHANNELS = ("A", "B")
#: Soft start at the fastest rate a profile allows, so output shows within a frame or two.
RISE_FRACTION_PER_S = 0.05
#: A stop whose zero frame is not reported sent within this long counts as failed.
STOP_TIMEOUT_S = 2.0
#: How long to wait for the simulator to deliver output after a raise.
OUTPUT_TIMEOUT_S = 3.0
POLL_S = 0.002

T = TypeVar("T")

#: The stop a write is made for (0: none); set by the requesting thread, see the module doc.
_STOP: ContextVar[int] = ContextVar("bench_device_stop", default=0)
_STOP_IDS = itertools.count(1)
_BLE_ADDRESSES = itertools.count(1)


@dataclass(frozen=True)
class Case:
    device: str
    hosting: str  # inproc | ble | pty
    level_du: int  # as in tests/contract: well inside each device's scale

    @property
    def key(self) -> str:
        return f"{self.device}_{self.hosting}"


def cases() -> tuple[Case, ...]:
    """Every built-in device with a simulator, on each of its hostings, from the profiles; the
    level is its simulator's contract hook's (``simulators.ContractHook.level_du``)."""
    return tuple(
        Case(ident, hosting, contract_of(simulator_class(profile)).level_du)
        for ident, profile in simulator_profiles().items()
        for hosting in hostings(profile)
    )


class WireSpy:
    """For one armed stop request: the first zero frame on the wire, and the stop's own frame.

    Every write is stamped (loop clock) as its bytes are handed to the transport, per task;
    when the runner reports a frame sent (``on_frame``, in the task that wrote it), that
    frame's first write is known. The first frame reported zero whose bytes went out after
    the request is "the zero frame on the wire": almost always the stop's own out-of-band
    frame, now and then the streamer's scheduled frame, vetted just after the stop (so zero)
    and first to the write lock. The stop's own frame is told apart by the context variable.

    ``wrote`` and ``frame_sent`` run on the IO loop; ``arm`` runs on the main thread before
    the request, the readers after ``sent`` is set.
    """

    def __init__(self) -> None:
        self.armed = 0
        self.requested_s = math.nan
        self.zero_first_write_s = math.nan
        self.zero_by_stop = False
        self.stop_writes = 0
        self.sent = threading.Event()
        self.sent_s = math.nan
        self.sent_zero = False
        self._first_write_s: dict[asyncio.Task[Any], float] = {}

    def arm(self, stop_id: int, requested_s: float) -> None:
        self.requested_s = requested_s
        self.zero_first_write_s = self.sent_s = math.nan
        self.zero_by_stop = self.sent_zero = False
        self.stop_writes = 0
        self.sent.clear()
        self.armed = stop_id

    def wrote(self, t_s: float) -> None:
        """Bytes handed to the transport at ``t_s``."""
        task = asyncio.current_task()
        if task is not None:
            self._first_write_s.setdefault(task, t_s)
        if self.armed and _STOP.get() == self.armed:
            self.stop_writes += 1

    def frame_sent(self, index: int, frame: VettedFrame) -> None:
        """The runner's ``on_frame``: a frame is wholly on the wire (writes done, acks in)."""
        task = asyncio.current_task()
        first_s = self._first_write_s.pop(task, math.nan) if task is not None else math.nan
        if not self.armed:
            return
        own = _STOP.get() == self.armed
        if frame.zero and math.isnan(self.zero_first_write_s) and first_s >= self.requested_s:
            self.zero_first_write_s = first_s
            self.zero_by_stop = own
        if own:
            self.sent_s = asyncio.get_running_loop().time()
            self.sent_zero = frame.zero
            self.armed = 0
            self.sent.set()


def _now() -> float:
    return asyncio.get_running_loop().time()


class _SpySimulatorLink(SimulatorLink):
    def __init__(self, simulator: Any, url: str, spy: WireSpy) -> None:
        super().__init__(simulator, url=url)
        self.spy = spy

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        self.spy.wrote(_now())
        await super().write(data, endpoint=endpoint)


class _SpyByteStreamLink(ByteStreamLink):
    def __init__(self, simulator: Any, url: str, spy: WireSpy) -> None:
        super().__init__(simulator, url=url)
        self.spy = spy

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        self.spy.wrote(_now())
        await super().write(data, endpoint=endpoint)


class _SpyBleTransport(BleTransport):
    def __init__(self, address: str, spy: WireSpy) -> None:
        super().__init__(address, backend=bleak_backend.SimulatedBleakBackend)
        self.spy = spy

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        self.spy.wrote(_now())
        await super().write(data, endpoint=endpoint)


class _SpySerialTransport(SerialTransport):
    def __init__(self, url: str, spy: WireSpy) -> None:
        super().__init__(url)
        self.spy = spy

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        self.spy.wrote(_now())
        await super().write(data, endpoint=endpoint)


@dataclass
class Hosted:
    """One device on one hosting: the engine, the device, and a way to ask the simulator."""

    engine: Engine
    device: Device
    sim: Any
    #: run ``fn`` where the simulator lives (the IO loop, or under the pty host's lock)
    on_device: Callable[[Callable[[], Any]], Any]
    clock: str


@contextlib.contextmanager
def _hosted(case: Case, spy: WireSpy) -> Iterator[Hosted]:
    engine = Engine(virtual_time=False, records=False)
    cleanup: list[Callable[[], None]] = []
    try:
        profile = load_profile(case.device)
        simulator = simulator_class(profile)
        transport: Transport
        if case.hosting == "pty":
            clock = WallClock()
            sim = simulator(clock)
            host = PtyHost(sim, clock.now_s).start()
            cleanup.append(host.stop)
            transport = _SpySerialTransport(host.path, spy)
            on_device: Callable[[Callable[[], Any]], Any] = host.call
            clock_name = "WallClock (time.monotonic) on the pty host thread"
        else:
            sim = simulator(FunctionClock(engine.io.loop.time))
            on_device = engine.io.call
            clock_name = "FunctionClock(engine.io.loop.time), read on the IO loop"
            if case.hosting == "ble":
                address = f"C0:FF:EE:BE:0C:{next(_BLE_ADDRESSES) % 256:02X}"
                bleak_backend.register(address, sim, profile.gatt)
                cleanup.append(lambda: bleak_backend.unregister(address))
                transport = _SpyBleTransport(address, spy)
            elif profile.link == "serial":
                transport = _SpyByteStreamLink(sim, f"sim:{case.device}", spy)
            else:
                transport = _SpySimulatorLink(sim, f"sim:{case.device}", spy)
        device = engine.connect(transport, profile=profile)
        yield Hosted(engine, device, sim, on_device, clock_name)
    finally:
        try:
            engine.close()
        finally:
            for fn in reversed(cleanup):
                fn()


def _program(duration_s: float) -> Program:
    segment = Continuous(duration_s, 50.0, 200.0, 1.0, label="steady")
    return Program(
        name="bench-device-estop",
        title="Bench: emergency stop per device",
        indication="benchmark only",
        channels=tuple(
            Channel(c, (f"ST7-{side}", f"ST6-{side}"), (segment,))
            for c, side in zip(CHANNELS, "LR", strict=True)
        ),
    )


def _delivering(record: DeliveryRecord) -> bool:
    t = record.end_s - 1e-6
    return any(record.output_at(c, t) > 0.0 for c in CHANNELS)


def _zero_from(record: DeliveryRecord, after_s: float) -> float:
    """From when every channel delivered nothing (NaN while one still delivers)."""
    times = [record.first_time_output_zero_after(c, after_s) for c in CHANNELS]
    return math.nan if any(t is None for t in times) else max(t for t in times if t is not None)


def _zero_seen(sim: Any, after_s: float) -> float:
    return _zero_from(sim.record, after_s)


def _poll(ask: Callable[[], T], done: Callable[[T], bool], timeout_s: float) -> T:
    end = time.monotonic() + timeout_s
    while True:
        value = ask()
        if done(value) or time.monotonic() > end:
            return value
        time.sleep(POLL_S)


@dataclass
class CaseResult:
    case: Case
    frame_s: float
    wire_s: list[float] = field(default_factory=list)  # first bytes of the first zero frame
    sent_s: list[float] = field(default_factory=list)  # reported sent (acks in)
    device_s: list[float] = field(default_factory=list)
    in_loop_s: list[float] = field(default_factory=list)
    writes_per_zero: list[int] = field(default_factory=list)
    failed: int = 0
    not_live: int = 0
    not_zero_frame: int = 0
    zero_before_wire: int = 0
    zero_by_stream: int = 0  # the first zero on the wire was the streamer's scheduled frame
    outcome: str = ""
    wall_s: float = 0.0
    clock: str = ""
    error: str = ""


def _run_case(case: Case, cycles: int, rng: random.Random) -> CaseResult:
    profile = load_profile(case.device)
    frame_s = profile.limits.frame_period_s
    result = CaseResult(case, frame_s)
    spy = WireSpy()
    start = time.perf_counter()
    levels = dict.fromkeys(CHANNELS, case.level_du)
    try:
        with _hosted(case, spy) as h:
            result.clock = h.clock
            session: Session = h.device.start(
                _program(max(600.0, cycles * 2.0)),
                levels=levels,
                ceilings={c: 4 * case.level_du for c in CHANNELS},
                rise_fraction_per_s=RISE_FRACTION_PER_S,
                on_frame=spy.frame_sent,
                # a simulator behind a real port counts as a real device: it needs a screening
                screening={q.key: False for q in SCREENING_QUESTIONS},
            )
            loop = h.engine.io.loop
            sim = h.sim
            _poll(lambda: session.status().state, lambda s: s != "connecting", 15.0)
            for _ in range(cycles):
                if session.done:
                    break
                for channel, level in levels.items():
                    session.set_level(channel, level)
                live = _poll(
                    lambda: h.on_device(lambda: _delivering(sim.record)), bool, OUTPUT_TIMEOUT_S
                )
                if not live:
                    result.not_live += 1
                    continue
                time.sleep(rng.uniform(0.0, frame_s))
                stop_id = next(_STOP_IDS)
                token = _STOP.set(stop_id)
                try:
                    requested_s = loop.time()  # time.monotonic(), as the loop and pty use
                    spy.arm(stop_id, requested_s)
                    session.pause()
                finally:
                    _STOP.reset(token)
                if not spy.sent.wait(STOP_TIMEOUT_S):
                    spy.armed = 0
                    result.failed += 1
                    continue
                if not spy.sent_zero:
                    result.not_zero_frame += 1
                if spy.stop_writes == 0 or math.isnan(spy.zero_first_write_s):
                    result.failed += 1  # reported sent, but nothing reached the transport
                    continue
                result.wire_s.append(spy.zero_first_write_s - requested_s)
                result.sent_s.append(spy.sent_s - requested_s)
                result.writes_per_zero.append(spy.stop_writes)
                if not spy.zero_by_stop:
                    result.zero_by_stream += 1
                zero_s = _poll(
                    functools.partial(h.on_device, functools.partial(_zero_seen, sim, requested_s)),
                    lambda t: not math.isnan(t),
                    frame_s + 0.5,
                )
                if math.isnan(zero_s):
                    result.failed += 1
                    continue
                result.device_s.append(zero_s - requested_s)
                if zero_s < spy.zero_first_write_s - 1e-4:
                    result.zero_before_wire += 1
            runner = session.runner
            streamer = runner.streamer
            if streamer is not None:
                result.in_loop_s = list(streamer.stats.stop_latencies_s)
            if session.done:  # the session ended by itself during the cycles: say why
                ended = session.wait(0)
                result.outcome = f"{ended.outcome}: {ended.reason}"
            else:
                result.outcome = "running"
            session.stop("bench: stop cycles done")
            session.wait(10.0)
    except Exception as exc:  # report, never raise: a bench says what it could not measure
        result.error = f"{type(exc).__name__}: {exc}"
    result.wall_s = time.perf_counter() - start
    return result


def run(quick: bool = False) -> BenchReport:
    cycles = 4 if quick else 100
    rng = random.Random(20_261_102)
    results = [_run_case(case, cycles, rng) for case in cases()]

    figures: dict[str, float] = {}
    targets: list[tuple[str, Op, float]] = []
    conditions: dict[str, Condition] = {
        "cycles_requested_per_case": cycles,
        "stop_path": "Session.pause() (IoThread.call(SessionRunner.pause)) from the main thread",
        "clock": "wall (Engine(virtual_time=False)); request stamped with loop.time()",
        "rise_fraction_per_s": RISE_FRACTION_PER_S,
        "switch_interval_s": sys.getswitchinterval(),
        "gil_load": "none (estop_latency measures the stop under a busy GUI-like thread)",
    }
    notes = [
        "<case>_wire_*: request (main thread) -> first bytes of the first zero frame handed to "
        "the transport (a subclass of the real transport stamps each write on the loop clock); "
        "that frame is the stop's own out-of-band zero, or, <case>_first_zero_by_scheduled_frame "
        "times (in the conditions), the streamer's scheduled frame, vetted just after the stop "
        "and first to the write lock",
        "the stop's zero frame is 1 write on the Coyote 3, 3 on the Coyote 2 (one per "
        "characteristic), 2 on the ET-312 (intensity A then B, each waiting for the box's "
        "ACK; no knob or battery poll follows a zero frame) and 1 on the Pulse Pal (one write "
        "of abort and 0 V resting and phase voltages on every output, its acknowledgements "
        "awaited together; 5 aborts lead it after a failed exchange): "
        "<case>_writes_per_stop and <case>_reported_sent_p99_ms (request -> the runner's "
        "on_frame for the stop's frame, all of it done) are in the conditions",
        "<case>_sim_zero_*: request -> simulator output zero on every channel "
        "(DeliveryRecord.first_time_output_zero_after)",
        "target: p99 of each within one device frame (the profile's frame period)",
        "stops fall at a random phase of the frame clock (a uniform wait of up to one frame "
        "after the simulator shows output); the stream goes on at zero after each stop and "
        "the next cycle raises the levels again from zero, ramped",
        "inproc/ble: the simulator runs on the IO loop's clock; pty: on WallClock in the pty "
        "host thread (both time.monotonic), so its times include the pty and that thread's "
        "wake-up",
    ]
    for r in results:
        k = r.case.key
        frame_ms = r.frame_s * 1000.0
        figures[f"{k}_stops"] = len(r.device_s)
        figures.update(spread_ms(f"{k}_wire_", r.wire_s))
        figures.update(spread_ms(f"{k}_sim_zero_", r.device_s))
        figures[f"{k}_frame_period_ms"] = frame_ms
        targets.append((f"{k}_wire_p99_ms", "<=", frame_ms))
        targets.append((f"{k}_sim_zero_p99_ms", "<=", frame_ms))
        conditions[f"{k}_clock"] = r.clock
        conditions[f"{k}_wall_s"] = round(r.wall_s, 2)
        conditions[f"{k}_stream_outcome_during_cycles"] = r.outcome or "n/a"
        conditions[f"{k}_failed_stops"] = r.failed
        conditions[f"{k}_cycles_without_output"] = r.not_live
        conditions[f"{k}_first_zero_by_scheduled_frame"] = r.zero_by_stream
        if r.writes_per_zero:
            seen = sorted(set(r.writes_per_zero))
            conditions[f"{k}_writes_per_stop"] = "/".join(str(n) for n in seen)
        if r.in_loop_s:
            conditions[f"{k}_in_loop_p99_ms"] = round(percentile(r.in_loop_s, 99) * 1000.0, 3)
        if r.sent_s:
            conditions[f"{k}_reported_sent_p99_ms"] = round(percentile(r.sent_s, 99) * 1000.0, 3)
        if r.error:
            notes.append(f"{k}: could not measure: {r.error}")
        if r.outcome and r.outcome != "running":
            notes.append(f"{k}: the session ended during the cycles ({r.outcome})")
        if r.failed:
            notes.append(f"{k}: {r.failed} stop(s) without a zero frame or zero output in time")
        if r.not_live:
            notes.append(f"{k}: {r.not_live} cycle(s) where the simulator never delivered output")
        if r.not_zero_frame:
            notes.append(f"{k}: {r.not_zero_frame} stop(s) whose reported frame was not zero")
        if r.zero_before_wire:
            notes.append(
                f"{k}: {r.zero_before_wire} stop(s) where the simulator was silent before the "
                "zero frame reached the transport (counted with the time output ended)"
            )
        if len(r.device_s) < cycles and not r.error:
            notes.append(f"{k}: {len(r.device_s)} of {cycles} cycles measured")
    return report(
        NAME,
        "per device and hosting: emergency stop (pause) to the zero frame on the wire and to "
        "zero output at the simulator, wall clock",
        figures,
        targets,
        conditions,
        notes,
    )
