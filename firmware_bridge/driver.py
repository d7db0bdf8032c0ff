"""The device driver interface: one per device protocol, on top of one transport.

A driver identifies the device (its handshake only: ``identify``), connects (writing the
device's own limits before any output), sends vetted frames, reports what the device says
(``DeviceEvent``), and closes with zero output. Drivers accept nothing but ``VettedFrame``
from the guard; they never decide levels themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from device_profiles.profile import DeviceProfile, ProfileError, codec_module
from firmware_bridge.errors import DeviceTimeout, ProtocolError, UnknownDeviceError
from firmware_bridge.events import BatteryReport, DeviceEvent, LinkLost
from firmware_bridge.transport import Transport
from safety.guard import VettedFrame, require_vetted
from safety.limits import SessionLimits

EventHandler = Callable[[DeviceEvent], None]

#: ``identify`` gives up after this long, whatever the device's own handshake waits for (each
#: codec's handshake has its own, shorter, timeouts; this bounds a link that hangs).
IDENTIFY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Identity:
    """What a device said in its handshake (``DeviceDriver.identify``); nothing else.

    ``model`` is what the device reported itself to be (or, for a device whose protocol has no
    model field, the profile's name once the device answered as that model does);
    ``firmware`` and ``battery_percent`` are None when the device does not tell them.
    ``details`` holds anything else it told, as (name, value) text pairs."""

    device: str  # the profile id
    model: str
    firmware: str | None = None
    battery_percent: int | None = None
    details: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """One line: ``ET-312 (model 0x0C), firmware 1.6.0, battery 80 %``."""
        parts = [self.model]
        if self.firmware is not None:
            parts.append(f"firmware {self.firmware}")
        if self.battery_percent is not None:
            parts.append(f"battery {self.battery_percent} %")
        parts += [f"{name}: {value}" for name, value in self.details]
        return ", ".join(parts)


class DeviceDriver(ABC):
    """Speaks one device protocol over one transport. Lives on the IO loop."""

    #: The guard computes rms current from one pulse (of the frame's width) per period. A
    #: codec that writes more than that per period at some rates (bursts) says False here:
    #: a calibration of its device would make the guard's current caps too lenient, so it is
    #: refused (``acustim.calibration``).
    ONE_PULSE_PER_PERIOD: ClassVar[bool] = True
    #: What the box itself does to the level after it arrives, in words, for displays ("" when
    #: the device delivers the level as sent): e.g. the ET-312's front knobs scale it again.
    LEVEL_SCALED_BY: ClassVar[str] = ""

    def __init__(self, profile: DeviceProfile, transport: Transport) -> None:
        self.profile = profile
        self.transport = transport
        self.on_event: EventHandler | None = None
        self.battery_percent: int | None = None
        #: replies that did not follow the protocol (counted, not fatal by themselves)
        self.protocol_errors = 0
        self._write_lock = asyncio.Lock()
        transport.set_disconnect_handler(self._link_lost)

    @property
    def frame_period_s(self) -> float:
        return self.profile.limits.frame_period_s

    def _emit(self, event: DeviceEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _decoded(
        self, decode: Callable[[str, bytes], DeviceEvent | None], endpoint: str, data: bytes
    ) -> None:
        """Decode a notification and report its event; bad bytes are counted, not raised."""
        try:
            event = decode(endpoint, data)
        except ProtocolError:
            self.protocol_errors += 1
            return
        if event is None:
            return
        if isinstance(event, BatteryReport):
            self.battery_percent = event.percent
        self._emit(event)

    def _link_lost(self, reason: str) -> None:
        self._emit(LinkLost(reason))

    @property
    def _where(self) -> str:
        """The link, for messages: a serial port by its path."""
        return self.transport.url.removeprefix("serial://") or "its link"

    async def identify(self, timeout_s: float = IDENTIFY_TIMEOUT_S) -> Identity:
        """The device's handshake, and nothing else: proof that the device this profile names
        answers on this link, and what it says about itself.

        Opens the link if it is closed. Writes nothing that can change output: no limits, no
        strength, no output register, no key (each codec says what it sends). On success the
        link stays open (a session's ``connect`` then needs no reopen, and handshakes again
        itself) and this driver lets go of it: no receiver and no disconnect handler are left
        on the transport. On any failure the link is closed and the error raised is a
        one-line ``BridgeError`` (``DeviceTimeout`` when nothing answered within the
        handshake's own timeouts, or ``timeout_s`` at most, on the loop's clock).

        Never call it while a session's driver uses the same transport."""
        try:
            if not self.transport.is_open:
                await self.transport.open()
            try:
                async with asyncio.timeout(timeout_s):
                    identity = await self._identify()
            except TimeoutError:
                raise DeviceTimeout(
                    f"{self.profile.id}: no answer from a {self.profile.name} on {self._where} "
                    f"within {timeout_s:g} s: check that it is switched on, within reach and "
                    "not held by another program"
                ) from None
        except BaseException:
            self.transport.set_receiver(None)
            self.transport.set_disconnect_handler(None)
            with contextlib.suppress(Exception):
                await self.transport.close()
            raise
        self.transport.set_receiver(None)
        self.transport.set_disconnect_handler(None)
        self.battery_percent = identity.battery_percent
        return identity

    @abstractmethod
    async def _identify(self) -> Identity:
        """The handshake on the open link: reads and the protocol's own greeting only, never a
        write that sets a limit, a level or an output. Raise a one-line ``BridgeError`` when
        the device does not answer as this model does. ``identify`` opens, bounds and
        cleans up around it."""

    @abstractmethod
    async def connect(self, limits: SessionLimits) -> None:
        """Open the link, write the device's own limits for this session and set its output to
        zero. Only after this returns may the guard let output through."""

    @abstractmethod
    async def _write_frame(self, frame: VettedFrame) -> None:
        """Encode and write one frame (called with the write lock held)."""

    async def send(self, frame: VettedFrame) -> None:
        """Write one vetted frame. Frames never interleave on the wire.

        The one check, for every device, that the frame was made by the safety guard:
        anything else is refused (``UnvettedFrameError``) before a byte is written."""
        frame = require_vetted(frame)
        async with self._write_lock:
            await self._write_frame(frame)

    async def close(self, zero: VettedFrame | None = None) -> None:
        """Write ``zero`` (best effort) and close the link."""
        try:
            if zero is not None and self.transport.is_open:
                await asyncio.wait_for(self.send(zero), timeout=1.0)
        finally:
            self.transport.set_disconnect_handler(None)
            await self.transport.close()


DriverFactory = Callable[[DeviceProfile, Transport], DeviceDriver]


def make_driver(profile: DeviceProfile, transport: Transport) -> DeviceDriver:
    """The driver of the codec module the profile names: ``Driver`` of ``[device] codec``
    (``firmware_bridge.codecs.coyote3``)."""
    try:
        module = codec_module(profile)
    except ProfileError as exc:
        raise UnknownDeviceError(str(exc)) from None
    driver = module.Driver
    if not issubclass(driver, DeviceDriver):
        raise UnknownDeviceError(
            f"{profile.source_path}: [device] codec = {profile.codec!r}: its Driver is not a "
            "firmware_bridge.driver.DeviceDriver"
        )
    factory: DriverFactory = driver
    return factory(profile, transport)
