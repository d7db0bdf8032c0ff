"""The transport contract: the same checks on every transport a device can use.

Cases: every built-in device profile that names a simulator, on each hosting its link kind
has (``firmware_bridge.link.hostings``): ``inproc`` (the in-process ``SimulatorLink`` or
``ByteStreamLink``, virtual time), ``ble`` (``BleTransport`` through bleak's real
``BleakClient`` with the simulator backend serving the profile's GATT table, virtual time),
``pty`` (``SerialTransport``, real pyserial on a raw pty, wall clock with short bounded waits).

The device's real simulator sits behind a spy that records what reaches it and lets the test
speak as the device (a notification, or serial bytes). Nothing here knows a protocol: these
are checks on moving bytes, opening and closing, and losing the link.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from device_profiles.profile import DeviceProfile, simulator_class
from firmware_bridge.ble import BleTransport
from firmware_bridge.errors import TransportClosed
from firmware_bridge.link import (
    ByteStreamLink,
    SimulatorLink,
    hostings,
    link_for_profile,
    simulator_profiles,
)
from firmware_bridge.serial_port import SerialTransport
from firmware_bridge.transport import Transport
from firmware_bridge.vtime import VirtualTimeLoop
from simulators.clock import Clock, FunctionClock, WallClock
from simulators.hosting import bleak_backend
from simulators.hosting.pty import PtyHost

T = TypeVar("T")

#: the longest any one step may take on the wall clock (pty), and the bound on close
WAIT_S = 2.0

_BLE_ADDRESSES = itertools.count(1)

CASES = [
    pytest.param((profile, hosting), id=f"{profile.id}-{hosting}")
    for profile in simulator_profiles().values()
    for hosting in hostings(profile)
]


class Spy:
    """The real simulator, seen from the device's side: what reached it, and a way to speak."""

    def __init__(self, simulator: Any) -> None:
        self.sim = simulator
        self.written: list[tuple[str, bytes]] = []
        self.notify: dict[str, Callable[[str, bytes], None]] = {}
        self.output: Callable[[bytes], None] | None = None
        self.disconnects = 0

    def __getattr__(self, name: str) -> Any:  # advance_to, record, name, ...
        return getattr(self.sim, name)

    # a GATT device
    def write(self, char_uuid: str, data: bytes) -> None:
        self.written.append((char_uuid.lower(), bytes(data)))
        self.sim.write(char_uuid, data)

    def read(self, char_uuid: str) -> bytes:
        return bytes(self.sim.read(char_uuid))

    def start_notify(self, char_uuid: str, callback: Callable[[str, bytes], None]) -> None:
        self.notify[char_uuid.lower()] = callback
        self.sim.start_notify(char_uuid, callback)

    def stop_notify(self, char_uuid: str) -> None:
        self.notify.pop(char_uuid.lower(), None)
        self.sim.stop_notify(char_uuid)

    # a byte-stream device
    def feed(self, data: bytes) -> None:
        self.written.append(("", bytes(data)))
        self.sim.feed(data)

    def set_output(self, callback: Callable[[bytes], None] | None) -> None:
        self.output = callback
        self.sim.set_output(callback)

    def disconnect(self) -> None:
        self.disconnects += 1
        self.sim.disconnect()

    def emit(self, endpoint: str, data: bytes) -> None:
        """Speak as the device: a notification on ``endpoint``, or bytes on the line."""
        if endpoint:
            self.notify[endpoint](endpoint, data)
        else:
            assert self.output is not None, "nobody listens to the device"
            self.output(data)


def _endpoint(profile: DeviceProfile, prop: str) -> str:
    """The first characteristic of the profile's GATT table with ``prop``; serial: ``""``."""
    if profile.link == "serial":
        return ""
    for _service, characteristics in profile.gatt:
        for uuid, properties in characteristics:
            if prop in properties:
                return uuid.lower()
    raise AssertionError(f"{profile.id}: no characteristic can {prop}")


@dataclass
class End:
    """One transport to one spied simulator on one hosting, and the loop it runs on."""

    profile: DeviceProfile
    hosting: str
    loop: asyncio.AbstractEventLoop
    transport: Transport
    _spy: Callable[[], Spy]
    on_device: Callable[[Callable[[], Any]], Any]  # run where the simulator lives
    drop: Callable[[], None]
    received: list[tuple[str, bytes]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def spy(self) -> Spy:
        return self._spy()

    @property
    def write_ep(self) -> str:
        return _endpoint(self.profile, "write")

    @property
    def notify_ep(self) -> str:
        return _endpoint(self.profile, "notify")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        started = time.monotonic()
        result = self.loop.run_until_complete(asyncio.wait_for(coro, WAIT_S * 5))
        assert time.monotonic() - started < WAIT_S * 5
        return result

    async def until(self, condition: Callable[[], bool]) -> bool:
        """Wait for ``condition``: a few loop turns on virtual time, at most WAIT_S of wall."""
        deadline = time.monotonic() + WAIT_S
        while not self.on_device(condition):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def open(self) -> None:
        await self.transport.open()
        if self.notify_ep:
            await self.transport.subscribe(self.notify_ep)

    async def close(self) -> float:
        """Close; returns the wall time it took (never more than WAIT_S)."""
        started = time.monotonic()
        await asyncio.wait_for(self.transport.close(), WAIT_S)
        took = time.monotonic() - started
        assert took < WAIT_S
        return took

    def written_bytes(self) -> bytes:
        return b"".join(
            d for e, d in self.on_device(lambda: list(self.spy.written)) if e == self.write_ep
        )

    def received_bytes(self) -> bytes:
        return b"".join(d for e, d in self.received if e == self.notify_ep)


#: hostings whose peer can come back after a drop (a pty's peer is gone for good)
REOPENABLE = [case for case in CASES if case.values[0][1] != "pty"]


@pytest.fixture(params=CASES)
def end(request: pytest.FixtureRequest) -> Iterator[End]:
    yield from _end(request.param)


@pytest.fixture(params=REOPENABLE)
def reopenable_end(request: pytest.FixtureRequest) -> Iterator[End]:
    yield from _end(request.param)


def _end(param: tuple[Any, str]) -> Iterator[End]:
    profile, hosting = param
    cleanup: list[Callable[[], None]] = []
    sim_class = simulator_class(profile)
    try:
        if hosting == "pty":
            loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
            cleanup.append(loop.close)
            clock = WallClock()
            spy = Spy(sim_class(clock))
            host = PtyHost(spy, clock.now_s).start()
            cleanup.append(host.stop)
            transport: Transport = SerialTransport(host.path)
            e = End(profile, hosting, loop, transport, lambda: spy, host.call, host.stop)
        elif hosting == "inproc":
            loop = VirtualTimeLoop(start_s=10.0)
            cleanup.append(loop.close)

            def factory(clock: Clock) -> Any:
                return Spy(sim_class(clock))

            kind = ByteStreamLink if profile.link == "serial" else SimulatorLink
            assert type(link_for_profile(profile)) is kind  # the link the profile's device gets
            link = kind(factory=factory, url=f"sim:{profile.id}")
            e = End(
                profile, hosting, loop, link, lambda: link.simulator, lambda fn: fn(), link.drop
            )
        else:
            assert hosting == "ble", hosting
            loop = VirtualTimeLoop(start_s=10.0)
            cleanup.append(loop.close)
            address = f"C0:FF:EE:00:01:{next(_BLE_ADDRESSES) % 256:02X}"
            spy = Spy(sim_class(FunctionClock(loop.time)))
            bleak_backend.register(address, spy, profile.gatt)
            cleanup.append(lambda: bleak_backend.unregister(address))
            transport = BleTransport(address, backend=bleak_backend.SimulatedBleakBackend)
            e = End(
                profile,
                hosting,
                loop,
                transport,
                lambda: spy,
                lambda fn: fn(),
                lambda: bleak_backend.unplug(address),
            )
        e.transport.set_receiver(lambda endpoint, data: e.received.append((endpoint, data)))
        e.transport.set_disconnect_handler(e.lost.append)
        yield e
        e.run(e.close())
    finally:
        for fn in reversed(cleanup):
            fn()


PAYLOADS = [bytes([0x5A, n, 0xA5]) for n in range(1, 6)]


def test_open_and_close_are_idempotent(end: End) -> None:
    async def go() -> None:
        assert not end.transport.is_open
        await end.close()  # never opened: nothing to do
        await end.open()
        assert end.transport.is_open
        await end.close()
        assert not end.transport.is_open
        await end.close()  # twice is fine
        assert not end.transport.is_open

    end.run(go())
    assert end.lost == []  # a close is not a lost link


def test_writes_reach_the_simulator_in_order(end: End) -> None:
    async def go() -> None:
        await end.open()
        for payload in PAYLOADS:
            await end.transport.write(payload, endpoint=end.write_ep)
        want = b"".join(PAYLOADS)
        assert await end.until(lambda: want in end.written_bytes()), end.written_bytes()

    end.run(go())


def test_what_the_device_says_comes_back_in_order_and_never_inside_a_call(end: End) -> None:
    async def go() -> None:
        await end.open()
        await end.until(lambda: end.notify_ep in end.spy.notify or end.spy.output is not None)
        for payload in PAYLOADS:
            end.on_device(lambda p=payload: end.spy.emit(end.notify_ep, p))
        if end.hosting != "pty":  # delivered through the loop, as a radio stack does
            assert all(d not in PAYLOADS for _e, d in end.received)
        want = b"".join(PAYLOADS)
        assert await end.until(lambda: want in end.received_bytes()), end.received
        if end.notify_ep:  # GATT notifications keep their boundaries
            mine = [d for e, d in end.received if e == end.notify_ep and d in PAYLOADS]
            assert mine == PAYLOADS

    end.run(go())


def test_a_drop_is_reported_once_and_later_writes_raise(end: End) -> None:
    async def go() -> None:
        await end.open()
        await end.transport.write(PAYLOADS[0], endpoint=end.write_ep)
        end.drop()
        assert await end.until(lambda: bool(end.lost))
        assert await end.until(lambda: not end.transport.is_open)
        with pytest.raises(TransportClosed):
            await end.transport.write(PAYLOADS[1], endpoint=end.write_ep)
        await asyncio.sleep(0.1)  # nothing more arrives later
        await end.close()  # closing a dropped link is fine, and is not a second loss
        await end.close()

    end.run(go())
    assert len(end.lost) == 1, end.lost
    assert isinstance(end.lost[0], str) and end.lost[0]


def test_writes_after_close_raise_and_are_not_a_lost_link(end: End) -> None:
    async def go() -> None:
        await end.open()
        await end.close()
        with pytest.raises(TransportClosed):
            await end.transport.write(PAYLOADS[0], endpoint=end.write_ep)
        before = len(end.on_device(lambda: list(end.spy.written)))
        await asyncio.sleep(0.05)
        assert len(end.on_device(lambda: list(end.spy.written))) == before

    end.run(go())
    assert end.lost == []


def test_reopen_after_close_works(end: End) -> None:
    async def go() -> None:
        await end.open()
        await end.close()
        await end.open()
        assert end.transport.is_open
        await end.transport.write(PAYLOADS[0], endpoint=end.write_ep)
        assert await end.until(lambda: PAYLOADS[0] in end.written_bytes())
        await end.until(lambda: end.notify_ep in end.spy.notify or end.spy.output is not None)
        end.on_device(lambda: end.spy.emit(end.notify_ep, PAYLOADS[1]))
        assert await end.until(lambda: PAYLOADS[1] in end.received_bytes())

    end.run(go())
    assert end.lost == []


def test_reopen_after_a_drop_works(reopenable_end: End) -> None:
    end = reopenable_end

    async def go() -> None:
        await end.open()
        end.drop()
        assert await end.until(lambda: bool(end.lost))
        await end.open()
        assert end.transport.is_open
        await end.transport.write(PAYLOADS[2], endpoint=end.write_ep)
        assert await end.until(lambda: PAYLOADS[2] in end.written_bytes())
        end.on_device(lambda: end.spy.emit(end.notify_ep, PAYLOADS[3]))
        assert await end.until(lambda: PAYLOADS[3] in end.received_bytes())

    end.run(go())
    assert len(end.lost) == 1
