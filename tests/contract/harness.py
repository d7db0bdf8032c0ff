"""The device contract's machinery: the cases, a rig per hosting, and the scenario.

Nothing here names a device. The cases are every built-in profile that names a simulator, on
each hosting its link kind has (``firmware_bridge.link.hostings``). Everything
device-specific comes from the profile (simulator class, link, GATT table, frame period, full
scale) or from the ``contract`` hook its simulator module provides (``simulators.ContractHook``:
how to tamper with the device's limits, how to see they are written, the level, the output
scale).

Each case runs a real session through the engine to a simulator that was written from the
protocol document alone, and judges it from the device's side (the simulator's record):

connect writes the device's own limits before any output; soft start; a segment change shows
up; an emergency stop is zero on the device within one device frame; a lost link and a device
that lost its settings are reconnected with the limits written again and no automatic resume;
closing leaves zero output.

Hostings: ``inproc`` (in-process link, virtual time), ``ble`` (bleak's real ``BleakClient``
with the simulator backend serving the profile's GATT table, virtual time), ``pty`` (real
pyserial on a raw pty, wall clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from acustim import Engine
from acustim.engine import Device, Session
from device_profiles.profile import DeviceProfile, simulator_class
from firmware_bridge.ble import BleTransport
from firmware_bridge.link import ByteStreamLink, SimulatorLink, hostings, simulator_profiles
from firmware_bridge.serial_port import SerialTransport
from safety.screening import SCREENING_QUESTIONS
from simulators import ContractHook, contract_of
from simulators.clock import FunctionClock, WallClock
from simulators.hosting import bleak_backend
from simulators.hosting.pty import PtyHost
from waveforms.files import parse_program

NO_CONTRAINDICATIONS = {q.key: False for q in SCREENING_QUESTIONS}

PROGRAM = """
[program]
name = "contract"
title = "Contract"
indication = "tests"
electrode = "pad"

[[segments]]
kind = "continuous"
duration_s = 3
frequency_hz = 20
pulse_width_us = 200
intensity = 1.0
label = "slow"

[[segments]]
kind = "continuous"
duration_s = 60
frequency_hz = 50
pulse_width_us = 200
intensity = 1.0
label = "fast"

[[channels]]
name = "A"
sites = ["ST6-L", "ST7-L"]
"""

_BLE_ADDRESSES = itertools.count(1)


@dataclass(frozen=True)
class Case:
    """One device model on one hosting."""

    profile: DeviceProfile
    hosting: str  # inproc | ble | pty
    simulator: type[Any]
    hook: ContractHook[Any]

    @property
    def id(self) -> str:
        return f"{self.profile.id}-{self.hosting}"

    @property
    def frame_s(self) -> float:
        return self.profile.limits.frame_period_s


def cases() -> list[Case]:
    """Every built-in device with a simulator, on each of its hostings."""
    found: list[Case] = []
    for profile in simulator_profiles().values():
        simulator = simulator_class(profile)
        hook = contract_of(simulator)
        found += [Case(profile, h, simulator, hook) for h in hostings(profile)]
    return found


@dataclass
class Rig:
    engine: Engine
    device: Device
    sim: Any
    drop: Callable[[], None]
    on_device: Callable[[Callable[[], Any]], Any]  # run a callable where the simulator lives


@contextlib.contextmanager
def open_rig(case: Case) -> Iterator[Rig]:
    """The case's device on its hosting, connected through the engine; closed afterwards."""
    cleanup: list[Callable[[], None]] = []
    try:
        if case.hosting == "pty":
            clock = WallClock()
            sim = case.simulator(clock)
            host = PtyHost(sim, clock.now_s).start()
            cleanup.append(host.stop)
            engine = Engine(records=False)
            cleanup.append(engine.close)
            transport = SerialTransport(host.path)
            device = engine.connect(transport, profile=case.profile)

            def drop() -> None:  # the USB cable glitches: the port fails under the host
                transport._failed("serial port failed: cable pulled (test)")

            yield Rig(engine, device, sim, drop, host.call)
            return
        engine = Engine(virtual_time=True, records=False)
        cleanup.append(engine.close)
        if case.hosting == "inproc":
            device = engine.connect(f"sim:{case.profile.id}")
            sim = device.simulator
            link = device.transport
            assert isinstance(link, SimulatorLink | ByteStreamLink)
            assert isinstance(sim, case.simulator)
            yield Rig(engine, device, sim, lambda: link.drop("link lost (test)"), lambda fn: fn())
            return
        assert case.hosting == "ble", case.hosting
        address = f"C0:FF:EE:00:00:{next(_BLE_ADDRESSES) % 256:02X}"
        sim = case.simulator(FunctionClock(engine.io.loop.time))
        bleak_backend.register(address, sim, case.profile.gatt)
        cleanup.append(lambda: bleak_backend.unregister(address))
        ble = BleTransport(address, backend=bleak_backend.SimulatedBleakBackend)
        device = engine.connect(ble, profile=case.profile)
        yield Rig(engine, device, sim, lambda: bleak_backend.unplug(address), lambda fn: fn())
    finally:
        for fn in reversed(cleanup):
            fn()


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def run_contract(rig: Rig, case: Case) -> None:
    """The scenario, then the judgement on the simulator's record."""
    hook = case.hook
    marks: dict[str, Any] = {}
    sim = rig.sim
    ceilings = {"A": hook.level_du * 4}

    def first_frame(index: int, frame: object) -> None:
        if index == 0:  # after connect, before anything but zero went out
            marks["limits_at_start"] = rig.on_device(lambda: hook.limits_written(sim, ceilings))

    sessions: list[Session] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        # started from the IO loop itself, so virtual time cannot run ahead of the scenario
        session = rig.device.start(
            parse_program(PROGRAM),
            levels={"A": hook.level_du},
            ceilings=ceilings,
            rise_fraction_per_s=0.05,
            reconnect_s=5.0,
            on_frame=first_frame,
            screening=NO_CONTRAINDICATIONS,  # real transports need a clear screening
        )
        sessions.append(session)
        runner = session.runner
        assert await _until(lambda: runner.status.state == "running", 5.0)
        marks["t0"] = loop.time()
        await asyncio.sleep(4.5)  # ramp up, then past the segment change at 3 s
        marks["stop"] = loop.time()
        runner.pause()  # the emergency stop: zero now, the session goes on
        await asyncio.sleep(0.5)
        runner.set_level("A", hook.level_du)  # the practitioner raises again
        await asyncio.sleep(1.0)
        rig.on_device(lambda: hook.tamper(sim))
        marks["drop"] = loop.time()
        rig.drop()
        marks["reconnected"] = await _until(lambda: runner.reconnects == 1, 6.0)
        marks["back"] = loop.time()
        marks["limits_after"] = rig.on_device(lambda: hook.limits_written(sim, ceilings))
        await asyncio.sleep(1.0)
        marks["quiet_until"] = loop.time()
        marks["reconnects"] = runner.reconnects
        runner.stop("contract done")

    rig.engine.io.run(scenario(), timeout_s=60)
    result = sessions[0].wait(30)
    rig.device.close()
    record = rig.on_device(lambda: sim.record)
    frame = case.frame_s
    level = hook.level_du * hook.output_scale

    # connect: the device's own limits before any output
    assert marks["limits_at_start"]
    first_output = min(
        (iv.start_s for iv in record.intervals("A") if iv.output_du > 0), default=None
    )
    assert first_output is not None
    assert first_output >= marks["t0"] - frame

    # soft start: never faster than the ramp (5 % of full scale per second), one du rounding
    rate = 0.05 * rig.device.profile.limits.max_level_du * hook.output_scale
    outputs = [
        (iv.start_s, iv.output_du) for iv in record.intervals("A") if iv.start_s < marks["stop"]
    ]
    for (t1, o1), (t2, o2) in itertools.pairwise(outputs):
        if o2 > o1:
            # 20 ms of slack: on the wall clock a frame is vetted and lands with some jitter
            bound = rate * (max(t2 - t1, frame) + 0.02) + 1.01 * hook.output_scale
            assert o2 - o1 <= bound, (t1, o1, t2, o2)
    assert record.output_at("A", marks["stop"] - 2 * frame) == pytest.approx(level, rel=0.05)

    # segment change: 20 Hz, then 50 Hz from 3 s
    assert record.interval_at("A", marks["t0"] + 1.5).frequency_hz == pytest.approx(20, rel=0.05)
    assert record.interval_at("A", marks["t0"] + 4.3).frequency_hz == pytest.approx(50, rel=0.05)

    # emergency stop: zero on the device within one device frame, and no resume by itself
    assert record.max_output("A", marks["stop"] + frame, marks["stop"] + 0.45) == 0.0

    # reconnect: limits written again, nothing above zero until someone raises a level
    assert marks["reconnected"]
    assert marks["limits_after"]
    assert record.max_output("A", marks["back"] + frame, marks["quiet_until"]) == 0.0
    assert marks["reconnects"] == 1  # one lost link, one reconnect

    # close: zero output, and the session says how it ended
    assert record.output_at("A", record.end_s) == 0.0
    assert result.outcome == "stopped"
