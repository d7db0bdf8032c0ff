"""The in-process link: a transport whose other end is a simulator object in this process.

Writes go straight into the simulator; its notifications come back through the loop (as a BLE
stack delivers them: never inside the write call). The link can be made to fail the ways real
links fail: lost, slow, or hanging on a write.

It never encodes frames and never imports a codec: the simulator on the far side is an
independent implementation of the device.

Which simulators there are, and which link each needs, comes from the built-in device profiles
alone (``[device] simulator`` and ``link``): a device whose profile names a simulator has one,
on a ``SimulatorLink`` for ``link = "ble"`` and a ``ByteStreamLink`` for ``link = "serial"``.
A simulator is called by its device's id (``coyote3``) or by the simulator module its profile
names (``DeviceProfile.simulator``); ``link_for_profile`` takes the profile itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Set
from typing import Generic, Protocol, TypeVar, cast

from device_profiles.profile import (
    DeviceProfile,
    builtin_profile_ids,
    load_builtin_profile,
    simulator_class,
)
from firmware_bridge.errors import TransportClosed, TransportError, UnknownDeviceError
from firmware_bridge.transport import Transport
from simulators.clock import Clock, FunctionClock


class GattSimulator(Protocol):
    """What the link needs of a simulated BLE device."""

    def write(self, char_uuid: str, data: bytes) -> None: ...
    def read(self, char_uuid: str) -> bytes: ...
    def start_notify(self, char_uuid: str, callback: Callable[[str, bytes], None]) -> None: ...
    def stop_notify(self, char_uuid: str) -> None: ...
    def disconnect(self) -> None: ...


class ByteSimulator(Protocol):
    """What the link needs of a simulated serial device: bytes in, bytes out."""

    def feed(self, data: bytes) -> None: ...
    def set_output(self, callback: Callable[[bytes], None] | None) -> None: ...
    def disconnect(self) -> None: ...


SimulatorFactory = Callable[[Clock], GattSimulator | ByteSimulator]

#: Where each kind of device's simulator is hosted for host code to reach it: always in this
#: process (these links), and behind the real transport: bleak's ``BleakClient`` with the
#: simulator backend (``simulators.hosting.bleak_backend``) for BLE, real pyserial on a raw pty
#: (``simulators.hosting.pty``) for serial.
HOSTINGS: dict[str, tuple[str, ...]] = {"ble": ("inproc", "ble"), "serial": ("inproc", "pty")}


def hostings(profile: DeviceProfile) -> tuple[str, ...]:
    """The hostings of a device's simulator (none if its profile names no simulator)."""
    return HOSTINGS[profile.link] if profile.simulator is not None else ()


def simulator_profiles() -> dict[str, DeviceProfile]:
    """Every built-in device that has a simulator: its id -> its profile."""
    found: dict[str, DeviceProfile] = {}
    for ident in builtin_profile_ids():
        profile = load_builtin_profile(ident)
        if profile.simulator is not None:
            found[ident] = profile
    return found


def simulator_profile(name: str) -> DeviceProfile:
    """The built-in profile of the simulator ``name``: a device id (``coyote3``), or else the
    simulator module a built-in profile names (``[device] simulator``)."""
    known = simulator_profiles()
    if name in known:
        return known[name]
    for profile in known.values():
        if profile.simulator == name:
            return profile
    raise UnknownDeviceError(
        f"no simulator called {name!r}; simulators: {', '.join(sorted(known))}"
    )


def simulator_factory(name: str) -> SimulatorFactory:
    """The simulator class of a built-in device (by id or by its profile's ``simulator``)."""
    factory: SimulatorFactory = simulator_class(simulator_profile(name))
    return factory


S = TypeVar("S", GattSimulator, ByteSimulator)


class _InProcessLink(Transport, Generic[S]):
    """What both in-process links share: the simulator (given, or made on ``open()`` with the
    loop's clock, and kept across reconnects as a real device keeps its state) and the fault
    hooks ``latency_s``, ``hang_writes`` and ``refuse_open``, and ``drop()``."""

    def __init__(
        self, simulator: S | None = None, *, factory: SimulatorFactory | None = None, url: str
    ) -> None:
        super().__init__()
        if simulator is None and factory is None:
            raise ValueError("give a simulator or a factory")
        self.url = url
        self._simulator: S | None = simulator
        self._factory = factory
        self._open = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.latency_s = 0.0
        self.hang_writes = False
        self.refuse_open = False
        self.writes = 0

    @property
    def simulator(self) -> S:
        if self._simulator is None:
            raise TransportClosed("the simulator starts when the link opens")
        return self._simulator

    @property
    def is_open(self) -> bool:
        return self._open

    def _attach(self) -> None:
        """Connect the simulator's replies to this link (on open)."""

    def _detach(self) -> None:
        """Disconnect them (on close or drop)."""

    async def open(self) -> None:
        if self.refuse_open:
            raise TransportError(f"{self.url}: the device does not answer (simulated)")
        self._loop = asyncio.get_running_loop()
        if self._simulator is None:
            assert self._factory is not None
            self._simulator = cast(S, self._factory(FunctionClock(self._loop.time)))
        self._attach()
        self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            self._detach()
            self.simulator.disconnect()

    def drop(self, reason: str = "link lost (simulated)") -> None:
        """Fault: the link breaks under the host's feet."""
        if self._open:
            self._open = False
            self._detach()
            self.simulator.disconnect()
            self._lost(reason)

    def _require_open(self) -> None:
        if not self._open:
            raise TransportClosed(f"{self.url}: link is closed")

    async def _before_write(self) -> None:
        self._require_open()
        if self.hang_writes:
            await asyncio.Event().wait()  # a device that never acknowledges
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
            if not self._open:
                raise TransportClosed(f"{self.url}: link lost during a write")
        self.writes += 1


class ByteStreamLink(_InProcessLink[ByteSimulator]):
    """An in-process serial line to a byte-stream simulator (a null modem).

    The device's replies come back through the loop in the chunks the simulator emits, so a
    driver must parse a stream, exactly as on a real port. More fault hooks: ``latency_s``
    delays replies too; ``manipulate`` / ``manipulate_replies`` functions over the bytes of
    each direction (drop, corrupt); ``split_writes`` (host bytes one at a time).
    """

    def __init__(
        self,
        simulator: ByteSimulator | None = None,
        *,
        factory: SimulatorFactory | None = None,
        url: str = "sim:",
    ) -> None:
        super().__init__(simulator, factory=factory, url=url)
        self.manipulate: Callable[[bytes], bytes] | None = None
        self.manipulate_replies: Callable[[bytes], bytes] | None = None
        self.split_writes = False

    def _attach(self) -> None:
        self.simulator.set_output(self._emitted)

    def _detach(self) -> None:
        self.simulator.set_output(None)

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        await self._before_write()
        payload = bytes(data) if self.manipulate is None else self.manipulate(bytes(data))
        if self.split_writes:
            for k in range(len(payload)):
                self.simulator.feed(payload[k : k + 1])
                await asyncio.sleep(0)
        elif payload:
            self.simulator.feed(payload)

    def _emitted(self, data: bytes) -> None:
        loop = self._loop
        if self.manipulate_replies is not None:
            data = self.manipulate_replies(bytes(data))
        if loop is not None and self._open and data:
            if self.latency_s > 0:
                loop.call_later(self.latency_s, self._deliver_if_open, bytes(data))
            else:
                loop.call_soon(self._deliver_if_open, bytes(data))

    def _deliver_if_open(self, data: bytes) -> None:
        if self._open:
            self._deliver("", data)


class SimulatorLink(_InProcessLink[GattSimulator]):
    """A link to a simulated BLE device in this process: writes go to its characteristics,
    its notifications come back through the loop (never inside the write call)."""

    def __init__(
        self,
        simulator: GattSimulator | None = None,
        *,
        factory: SimulatorFactory | None = None,
        url: str = "sim:",
    ) -> None:
        super().__init__(simulator, factory=factory, url=url)

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        await self._before_write()
        self.simulator.write(endpoint, bytes(data))

    async def read(self, endpoint: str) -> bytes:
        self._require_open()
        return self.simulator.read(endpoint)

    async def subscribe(self, endpoint: str) -> None:
        self._require_open()
        self.simulator.start_notify(endpoint, self._notified)

    def _notified(self, endpoint: str, data: bytes) -> None:
        loop = self._loop
        if loop is not None and self._open:
            loop.call_soon(self._deliver_if_open, endpoint, bytes(data))

    def _deliver_if_open(self, endpoint: str, data: bytes) -> None:
        if self._open:
            self._deliver(endpoint, data)


class _SimulatorsOn(Set[str]):
    """The built-in simulators on one kind of link, by device id, read from the profiles when
    asked; ``in`` also takes the simulator module a profile names."""

    def __init__(self, link: str) -> None:
        self._link = link

    def _ids(self) -> list[str]:
        return [i for i, p in simulator_profiles().items() if p.link == self._link]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return simulator_profile(name).link == self._link
        except UnknownDeviceError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())

    def __repr__(self) -> str:
        return f"{{{', '.join(repr(i) for i in self._ids())}}}"


#: simulators that speak a byte stream (serial devices, ``link = "serial"``); the others are
#: GATT devices
BYTE_STREAM_SIMULATORS: Set[str] = _SimulatorsOn("serial")


def link_for_profile(profile: DeviceProfile, url: str | None = None) -> Transport:
    """The in-process link to a fresh simulator of ``profile``'s device: a ``ByteStreamLink``
    for a serial device, a ``SimulatorLink`` for a BLE one (its ``[device] link``)."""
    if profile.simulator is None:
        raise UnknownDeviceError(f"{profile.id} has no simulator")
    return _link(profile, simulator_class(profile), url)


def _link(profile: DeviceProfile, factory: SimulatorFactory, url: str | None) -> Transport:
    url = url or f"sim:{profile.id}"
    if profile.link == "serial":
        return ByteStreamLink(factory=factory, url=url)
    return SimulatorLink(factory=factory, url=url)


def link_for_simulator(name: str, url: str | None = None) -> Transport:
    """The right in-process link for a simulator (by device id, or by the simulator module its
    profile names): GATT devices or byte streams, as the device's profile says."""
    return _link(simulator_profile(name), simulator_factory(name), url)


def open_simulator_link(url: str) -> Transport:
    """``sim:<name>``: a fresh simulator of that device, on the loop's clock."""
    return link_for_simulator(url.split(":", 1)[1].lstrip("/"), url)
