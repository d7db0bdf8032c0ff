"""The fakedev codec and driver: written from the protocol in ``__init__``.

Like every codec, it encodes only frames the guard made and rounds intensity down.
"""

from __future__ import annotations

import math

from firmware_bridge.driver import DeviceDriver, Identity
from safety.guard import VettedFrame, require_vetted
from safety.limits import SessionLimits

CONTROL_CHAR = "0000fd01-0000-1000-8000-00805f9b34fb"
STATUS_CHAR = "0000fd02-0000-1000-8000-00805f9b34fb"
CHANNELS = ("A", "B")


def encode_limits(ceilings: dict[str, int]) -> bytes:
    return b"L" + bytes(ceilings.get(c, 0) for c in CHANNELS)


def encode_zero() -> bytes:
    return b"O" + bytes(3 * len(CHANNELS))


def encode_output(frame: VettedFrame) -> bytes:
    frame = require_vetted(frame)
    if frame.zero:
        return encode_zero()
    payload = bytearray(b"O")
    for name in CHANNELS:
        channel = frame.channel(name)
        hz = min(100, max(1, round(channel.frequency_hz[0])))
        pct = min(100, math.floor(channel.intensity[0] * 100))
        payload += bytes([channel.level_du, hz, pct])
    return bytes(payload)


class Driver(DeviceDriver):
    async def _identify(self) -> Identity:
        """The handshake: the status characteristic's battery byte (a read; nothing written)."""
        battery = (await self.transport.read(STATUS_CHAR))[0]
        return Identity(device=self.profile.id, model=self.profile.name, battery_percent=battery)

    async def connect(self, limits: SessionLimits) -> None:
        if not self.transport.is_open:
            await self.transport.open()
        self.battery_percent = (await self.transport.read(STATUS_CHAR))[0]
        ceilings = {c.name: c.ceiling_du for c in limits.channels}
        async with self._write_lock:
            await self.transport.write(encode_limits(ceilings), endpoint=CONTROL_CHAR)
            await self.transport.write(encode_zero(), endpoint=CONTROL_CHAR)

    async def _write_frame(self, frame: VettedFrame) -> None:
        await self.transport.write(encode_output(frame), endpoint=CONTROL_CHAR)
