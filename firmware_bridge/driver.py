"""The device driver interface: one per device protocol, on top of one transport.

A driver connects (writing the device's own limits before any output), sends vetted frames,
reports what the device says (``DeviceEvent``), and closes with zero output. Drivers accept
nothing but ``VettedFrame`` from the guard; they never decide levels themselves.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from device_profiles.profile import DeviceProfile, ProfileError, codec_module
from firmware_bridge.errors import ProtocolError, UnknownDeviceError
from firmware_bridge.events import BatteryReport, DeviceEvent, LinkLost
from firmware_bridge.transport import Transport
from safety.guard import VettedFrame, require_vetted
from safety.limits import SessionLimits

EventHandler = Callable[[DeviceEvent], None]


class DeviceDriver(ABC):
    """Speaks one device protocol over one transport. Lives on the IO loop."""

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
