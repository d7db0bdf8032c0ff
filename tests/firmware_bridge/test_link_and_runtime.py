"""The in-process link, the transport registry, the virtual-time loop and the IO thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from device_profiles import load_profile
from firmware_bridge import make_driver, make_transport
from firmware_bridge.codecs import coyote3 as C
from firmware_bridge.errors import TransportClosed, UnknownDeviceError
from firmware_bridge.link import SimulatorLink, simulator_factory
from firmware_bridge.runtime import IoThread
from firmware_bridge.vtime import VirtualTimeLoop
from safety import UnvettedFrameError
from simulators.clock import VirtualClock
from simulators.coyote3 import Coyote3Simulator
from tests.firmware_bridge.conftest import Rig


def test_unknown_schemes_and_simulators_are_clear_errors() -> None:
    kinds = "known link kinds: ble:, loop:, serial:, sim:, socket:"
    with pytest.raises(UnknownDeviceError, match=kinds):
        make_transport("carrier-pigeon://x")
    with pytest.raises(UnknownDeviceError, match="simulators: coyote2, coyote3, et312, pulsepal"):
        simulator_factory("nosuch")
    with pytest.raises(ValueError, match="simulator or a factory"):
        SimulatorLink()


def test_sim_url_builds_a_fresh_simulator_on_open() -> None:
    link = make_transport("sim:coyote3")
    assert isinstance(link, SimulatorLink)
    with pytest.raises(TransportClosed):
        _ = link.simulator
    loop = VirtualTimeLoop()
    loop.run_until_complete(link.open())
    assert isinstance(link.simulator, Coyote3Simulator)
    assert link.is_open
    loop.run_until_complete(link.close())
    loop.run_until_complete(link.close())  # twice is harmless
    loop.close()


def test_closed_link_refuses_writes_reads_and_subscriptions() -> None:
    link = SimulatorLink(Coyote3Simulator(VirtualClock()))
    loop = VirtualTimeLoop()
    for call in (link.write(b"x"), link.read(C.BATTERY_CHAR), link.subscribe(C.NOTIFY_CHAR)):
        with pytest.raises(TransportClosed):
            loop.run_until_complete(call)
    loop.close()


def test_notifications_arrive_through_the_loop_not_inside_the_write() -> None:
    loop = VirtualTimeLoop()
    sim = Coyote3Simulator(VirtualClock())
    link = SimulatorLink(sim)
    got: list[tuple[str, bytes]] = []
    link.set_receiver(lambda endpoint, data: got.append((endpoint, data)))

    async def scenario() -> None:
        await link.open()
        await link.subscribe(C.NOTIFY_CHAR)
        await link.write(
            C.encode_b0(1, C.MODE_SET, 5, 0, 0, ((10,) * 4, (0,) * 4), ((10,) * 4, (0,) * 4)),
            endpoint=C.WRITE_CHAR,
        )
        assert got == []  # not delivered inside write()
        await asyncio.sleep(0)
        assert got == [(C.NOTIFY_CHAR, bytes([0xB1, 1, 5, 0]))]

    loop.run_until_complete(scenario())
    loop.close()


def test_a_frame_not_made_by_the_guard_never_reaches_the_transport(rig: Rig) -> None:
    rig.run(rig.connect())
    before = len(rig.link.log)

    class Forged:
        zero = False
        channels = ()

    for forged in (Forged(), object(), b"\xb0" + bytes(19)):
        with pytest.raises(UnvettedFrameError):
            rig.run(rig.driver.send(forged))  # type: ignore[arg-type]
    assert len(rig.link.log) == before
    assert rig.sim.strength_du("A") == 0


def test_make_driver_refuses_an_unknown_codec() -> None:
    from dataclasses import replace

    profile = replace(load_profile("coyote3"), codec="nosuch")
    with pytest.raises(UnknownDeviceError, match="no codec called 'nosuch'"):
        make_driver(profile, SimulatorLink(Coyote3Simulator(VirtualClock())))


def test_virtual_time_jumps_to_the_next_timer() -> None:
    loop = VirtualTimeLoop(start_s=10.0)
    started = time.monotonic()

    async def sleepy() -> float:
        await asyncio.sleep(3600.0)
        return asyncio.get_running_loop().time()

    assert loop.run_until_complete(sleepy()) == pytest.approx(3610.0)
    assert time.monotonic() - started < 5.0
    loop.close()


def test_io_thread_runs_work_on_its_own_thread_and_closes() -> None:
    io = IoThread()
    caller = threading.current_thread()
    assert io.call(lambda: threading.current_thread() is not caller)
    assert io.call(io.in_io_thread)
    assert not io.in_io_thread()

    async def forever() -> None:
        await asyncio.Event().wait()

    io.submit(forever())  # cancelled on close
    done = threading.Event()
    io.call_soon(done.set)
    assert done.wait(5)
    io.close()
    assert not io.alive
    io.close()  # twice is harmless
