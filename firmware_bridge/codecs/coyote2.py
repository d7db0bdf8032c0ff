"""DG-LAB Coyote 2.0 (V2, BLE): the byte protocol and its driver.

Facts: ``../shared/reference/devices.md`` section 2; how programs map onto it:
``docs/devices/coyote2.md``. Every value is a 24-bit little-endian integer in 3 bytes.

- ``PWM_AB2`` (0x1504, read/write/notify): strength, A in bits 21-11, B in bits 10-0, raw
  0..2047 each. It persists on the device, which notifies it when it changes (its wheel).
- ``PWM_B34`` (0x1506) carries **channel A's** waveform and ``PWM_A34`` (0x1505) channel B's:
  the names are swapped. A waveform is Z (bits 19-15, pulse width Z x 5 us), Y (bits 14-5, a
  gap in ms) and X (bits 4-0, pulses at 1 per ms): one cycle is X + Y ms. Each write is valid
  for 100 ms only, so every frame refreshes both channels.
- Battery (0x1500, read/notify), firmware version (0x1501) and config (0x1507, strength step
  and maximum) [community].

There is no soft-limit command on this model: the ceiling is the host's alone. Strength is
written whenever the vetted one differs from what the device holds as far as the host knows
(its own writes and the device's notifications), so a wheel turned past the ceiling is written
back down on the next frame. This module never decides a level: it encodes what the guard
vetted.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import NamedTuple

from device_profiles.profile import DeviceProfile
from firmware_bridge.driver import DeviceDriver, Identity
from firmware_bridge.errors import ProtocolError, TransportError
from firmware_bridge.events import BatteryReport, DeviceEvent, DeviceNotice, StrengthReport
from firmware_bridge.transport import Transport
from safety.guard import VettedChannel, VettedFrame
from safety.limits import SessionLimits


def char_uuid(short: int) -> str:
    """The full, lower-case 128-bit UUID of a Coyote 2 service or characteristic."""
    return f"955a{short:04x}-0fe2-f5aa-a094-84b8d4f3e8ad"


BATTERY_SERVICE = char_uuid(0x180A)
PWM_SERVICE = char_uuid(0x180B)
BATTERY_CHAR = char_uuid(0x1500)
FIRMWARE_CHAR = char_uuid(0x1501)
PWM_AB2_CHAR = char_uuid(0x1504)
PWM_A34_CHAR = char_uuid(0x1505)  # despite its name: channel B's waveform
PWM_B34_CHAR = char_uuid(0x1506)  # despite its name: channel A's waveform
CONFIG_CHAR = char_uuid(0x1507)

CHANNELS = ("A", "B")
#: Which characteristic carries which channel's waveform (the official demo: A->1506, B->1505).
WAVEFORM_CHAR = {"A": PWM_B34_CHAR, "B": PWM_A34_CHAR}

STRENGTH_MAX_DU = 2047
X_MAX, Y_MAX, Z_MAX = 31, 1023, 31
#: The pulse widths acustim writes: Z 1..20 (5..100 us); the official app stays at or below 20.
Z_WRITE_MIN, Z_WRITE_MAX = 1, 20
PERIOD_MIN_MS, PERIOD_MAX_MS = 10, 1000
PULSE_WIDTH_STEP_US = 5.0
#: The period of the silent waveforms of ``zero_writes`` (the guard's zero frame is at 1 Hz).
SILENT_PERIOD_MS = PERIOD_MAX_MS

#: A PWM_AB2 notification that matches one of the host's writes of the last this many frames
#: (about 1 s) is that write's echo, even if a later write followed it: BLE does not promise
#: that an echo arrives before the next write goes out, and a stale echo taken for the wheel
#: would make the guard follow it up, e.g. just after an emergency stop.
ECHO_WINDOW_FRAMES = 10
#: How long ``connect`` waits for each optional read (firmware version, config).
OPTIONAL_READ_TIMEOUT_S = 1.0


# --- 24-bit fields ----------------------------------------------------------------------------
def _field(value: int, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"coyote2: {name} = {value!r}; allowed {low}..{high}")
    return value


def int24_le(value: int) -> bytes:
    return _field(value, 0, 0xFFFFFF, "24-bit value").to_bytes(3, "little")


def _int24_from(data: bytes, what: str) -> int:
    if len(data) != 3:
        raise ProtocolError(
            f"coyote2: {what} must be 3 bytes, got {len(data)}: {data.hex(' ') or 'nothing'}"
        )
    return int.from_bytes(data, "little")


def encode_pwm_ab2(strength_a: int, strength_b: int) -> bytes:
    """PWM_AB2: A in bits 21-11, B in bits 10-0 (bits 23-22 reserved, zero)."""
    a = _field(strength_a, 0, STRENGTH_MAX_DU, "strength A")
    b = _field(strength_b, 0, STRENGTH_MAX_DU, "strength B")
    return int24_le((a << 11) | b)


def decode_pwm_ab2(data: bytes) -> tuple[int, int]:
    """(strength A, strength B) from a PWM_AB2 value; anything malformed is a ProtocolError."""
    value = _int24_from(data, "PWM_AB2")
    if value >> 22:
        raise ProtocolError(f"coyote2: PWM_AB2 reserved bits 23-22 set: {data.hex(' ')}")
    return (value >> 11) & 0x7FF, value & 0x7FF


class Waveform(NamedTuple):
    """One channel's pulse group: X pulses (1 per ms), then Y ms of gap; width Z x 5 us."""

    x: int
    y: int
    z: int

    @property
    def silent(self) -> bool:
        return self.x == 0


def encode_xyz(x: int, y: int, z: int) -> bytes:
    """A waveform value: Z in bits 19-15, Y in bits 14-5, X in bits 4-0 (23-20 reserved)."""
    _field(x, 0, X_MAX, "X")
    _field(y, 0, Y_MAX, "Y")
    _field(z, 0, Z_MAX, "Z")
    return int24_le((z << 15) | (y << 5) | x)


def decode_xyz(data: bytes) -> Waveform:
    """A waveform value back into X, Y, Z; anything malformed is a ProtocolError."""
    value = _int24_from(data, "waveform")
    if value >> 20:
        raise ProtocolError(f"coyote2: waveform reserved bits 23-20 set: {data.hex(' ')}")
    return Waveform(value & 0x1F, (value >> 5) & 0x3FF, (value >> 15) & 0x1F)


# --- the mapping (docs/devices/coyote2.md) ------------------------------------------------------
def period_ms(frequency_hz: float) -> int:
    """The pulse period for a rate: ``round(1000 / f)`` ms within 10..1000.

    ``round`` is Python's (halves to even, as in the Coyote 3 codec): 80 Hz -> 12 ms. A rate
    that is not a positive number (silent samples may carry 0 Hz) gets the slowest period.
    """
    if math.isnan(frequency_hz) or frequency_hz <= 0:
        return PERIOD_MAX_MS
    ms = 1000.0 / frequency_hz
    if ms >= PERIOD_MAX_MS:  # also the overflow to inf of a tiny rate
        return PERIOD_MAX_MS
    return max(PERIOD_MIN_MS, round(ms))


def period_to_xy(period: int) -> tuple[int, int]:
    """The reference's split of a period F (ms): ``X = sqrt(F/1000) x 15``, ``Y = F - X``.

    X is clamped to 1..31 and Y to 0..1023; F is taken within 10..1000 first.
    """
    f = min(PERIOD_MAX_MS, max(PERIOD_MIN_MS, period))
    x = min(X_MAX, max(1, round(math.sqrt(f / 1000.0) * 15)))
    return x, min(Y_MAX, max(0, f - x))


def pulse_width_to_z(pulse_width_us: float) -> int:
    """``Z = round(pw / 5)`` within 1..20 (20 = 100 us, the official app's top)."""
    if math.isnan(pulse_width_us):
        return Z_WRITE_MIN
    z = round(min(max(pulse_width_us, 0.0), 1e6) / PULSE_WIDTH_STEP_US)
    return min(Z_WRITE_MAX, max(Z_WRITE_MIN, z))


def strength_du(level_du: int, intensity: float) -> int:
    """The raw strength for a level and an intensity: ``level x intensity`` rounded down (never
    more than the guard vetted), 0..2047."""
    if math.isnan(intensity) or intensity <= 0 or level_du <= 0:
        return 0
    return min(STRENGTH_MAX_DU, math.floor(level_du * min(intensity, 1.0) + 1e-9))


def waveform_for(
    frequency_hz: float, pulse_width_us: float, intensity: float, level_du: int
) -> Waveform:
    """One channel's waveform; level 0 or intensity 0 is silent: ``X = 0, Y = F, Z = 0``."""
    f = period_ms(frequency_hz)
    if level_du <= 0 or math.isnan(intensity) or intensity <= 0:
        return Waveform(0, f, 0)
    x, y = period_to_xy(f)
    return Waveform(x, y, pulse_width_to_z(pulse_width_us))


SILENT = Waveform(0, SILENT_PERIOD_MS, 0)


# --- other characteristics ----------------------------------------------------------------------
def decode_battery(data: bytes) -> int:
    if len(data) != 1 or data[0] > 100:
        raise ProtocolError(f"coyote2: battery level must be one byte 0..100, got {data.hex(' ')}")
    return data[0]


def decode_firmware(data: bytes) -> str:
    """Firmware version (1501) [community]: two bytes, shown as ``byte0.byte1``."""
    if len(data) != 2:
        raise ProtocolError(f"coyote2: firmware version must be 2 bytes, got {data.hex(' ')}")
    return f"{data[0]}.{data[1]}"


@dataclass(frozen=True)
class Config:
    """The config characteristic (1507) [community]: ``07 D0 07`` -> step 7, max 2000."""

    step_du: int  # bits 0-7: one app step in raw strength
    max_strength_du: int  # bits 8-18


def decode_config(data: bytes) -> Config:
    value = _int24_from(data, "config")
    return Config(value & 0xFF, (value >> 8) & 0x7FF)


# --- the stateful codec ---------------------------------------------------------------------------
class Write(NamedTuple):
    """One GATT write: the characteristic and the bytes."""

    char: str
    data: bytes


class Coyote2Codec:
    """Sans-IO state of the protocol: what strength the device holds, which writes await echo.

    ``encode`` turns a vetted frame into its writes, ``zero_writes`` is the stop, ``receive``
    turns notifications into events. It never writes anything itself.
    """

    def __init__(self) -> None:
        #: The strengths (A, B) the device holds as far as the host knows; None before a write.
        self.device_strengths: tuple[int, int] | None = None
        #: What the host last wrote to PWM_AB2.
        self.written: tuple[int, int] | None = None
        #: Host writes whose echo may still come: (frame number, strengths).
        self._pending: list[tuple[int, tuple[int, int]]] = []
        self._frame = 0

    def _tick(self) -> None:
        self._frame += 1
        oldest = self._frame - ECHO_WINDOW_FRAMES
        self._pending = [p for p in self._pending if p[0] >= oldest]

    def _strength_write(self, wanted: tuple[int, int]) -> Write:
        if self.device_strengths != wanted:
            self._pending.append((self._frame, wanted))
        self.device_strengths = self.written = wanted
        return Write(PWM_AB2_CHAR, encode_pwm_ab2(*wanted))

    def zero_writes(self) -> list[Write]:
        """Stop: PWM_AB2 = 0/0 first (always written), then both channels' silent waveforms."""
        self._tick()
        out = [self._strength_write((0, 0))]
        out += [Write(WAVEFORM_CHAR[c], encode_xyz(*SILENT)) for c in CHANNELS]
        return out

    def encode(self, frame: VettedFrame) -> list[Write]:
        """The writes for one vetted frame: A's waveform (1506), B's (1505), then PWM_AB2 if
        the strengths differ from what the device holds. A zero frame is ``zero_writes``."""
        if frame.zero:
            return self.zero_writes()
        by_name: dict[str, VettedChannel] = {}
        for ch in frame.channels:
            if ch.name not in CHANNELS:
                raise ValueError(f"coyote2: no channel {ch.name!r}; it has A and B")
            if not len(ch.intensity) == len(ch.frequency_hz) == len(ch.pulse_width_us) == 1:
                raise ValueError(
                    f"coyote2: frames hold 1 sample per channel, channel {ch.name} has "
                    f"{len(ch.intensity)}; use the coyote2 profile"
                )
            by_name[ch.name] = ch
        self._tick()
        out: list[Write] = []
        strengths: list[int] = []
        for c in CHANNELS:
            vetted = by_name.get(c)
            if vetted is None:  # a channel the frame leaves out stays silent
                wave, strength = SILENT, 0
            else:
                i, f, w = vetted.intensity[0], vetted.frequency_hz[0], vetted.pulse_width_us[0]
                wave = waveform_for(f, w, i, vetted.level_du)
                strength = 0 if wave.silent else strength_du(vetted.level_du, i)
            out.append(Write(WAVEFORM_CHAR[c], encode_xyz(*wave)))
            strengths.append(strength)
        wanted = (strengths[0], strengths[1])
        if wanted != self.device_strengths:
            known = self.device_strengths
            falls = known is None or any(w < k for w, k in zip(wanted, known, strict=True))
            # a fall goes out before the new waveforms (a wider pulse must not meet the old,
            # higher strength), a rise after them
            write = self._strength_write(wanted)
            if falls:
                out.insert(0, write)
            else:
                out.append(write)
        return out

    def receive(self, endpoint: str, data: bytes) -> DeviceEvent | None:
        """Decode one notification. Unknown endpoints are ignored (None)."""
        endpoint = endpoint.lower()
        if endpoint == BATTERY_CHAR:
            return BatteryReport(decode_battery(data))
        if endpoint != PWM_AB2_CHAR:
            return None
        values = decode_pwm_ab2(data)
        levels = dict(zip(CHANNELS, values, strict=True))
        for k, (_, sent) in enumerate(self._pending):
            if sent == values:  # the echo of one of our writes
                del self._pending[: k + 1]
                if not self._pending:  # otherwise later writes are still on their way
                    self.device_strengths = values
                return StrengthReport(levels, 0, by_device=False)
        previous, self.device_strengths = self.device_strengths, values
        if values in (self.written, previous):  # what we wrote, or nothing new
            return StrengthReport(levels, 0, by_device=False)
        # The wheel. Only the channels it changed are reported: the other channel's raw
        # strength is level x intensity, and reporting it as a level would lower that level.
        changed = {
            c: v
            for c, v, before in zip(CHANNELS, values, previous or (-1, -1), strict=True)
            if v != before
        }
        return StrengthReport(changed, 0, by_device=True)


class Driver(DeviceDriver):
    """Coyote 2.0 over any transport that offers its characteristics."""

    #: X pulses per period (the reference's split, X = sqrt(F/1000) x 15: 2 at 50 Hz, 11 at
    #: 2 Hz), where the guard counts one: its rms figures would be too low here
    ONE_PULSE_PER_PERIOD = False

    def __init__(self, profile: DeviceProfile, transport: Transport) -> None:
        super().__init__(profile, transport)
        self.codec = Coyote2Codec()
        self.firmware_version: str | None = None
        self.config: Config | None = None

    async def _identify(self) -> Identity:
        """The BLE link is up; read what the device offers: the battery level (0x1500, which
        a Coyote 2 must have), then the firmware version (0x1501) and config (0x1507), both
        [community] and optional. Reads only: no strength or waveform write, no
        subscription."""
        try:
            battery = decode_battery(await self.transport.read(BATTERY_CHAR))
        except (TransportError, ProtocolError) as exc:
            kind = ProtocolError if isinstance(exc, ProtocolError) else TransportError
            raise kind(
                f"coyote2: the device at {self.transport.url or 'its address'} did not give "
                f"a Coyote 2 battery level (characteristic 955A1500): {exc}"
            ) from None
        firmware: str | None = None
        raw = await self._optional_read(FIRMWARE_CHAR)
        if raw is not None:
            try:
                firmware = decode_firmware(raw)
            except ProtocolError:
                self.protocol_errors += 1
        details: tuple[tuple[str, str], ...] = ()
        raw = await self._optional_read(CONFIG_CHAR)
        if raw is not None:
            config = decode_config(raw)
            details = (
                ("strength step", str(config.step_du)),
                ("maximum strength", str(config.max_strength_du)),
            )
        return Identity(
            device=self.profile.id,
            model=self.profile.name,
            firmware=firmware,
            battery_percent=battery,
            details=details,
        )

    async def connect(self, limits: SessionLimits) -> None:
        # There is no soft-limit command: the limits are the host's (the guard's) alone.
        self.codec = Coyote2Codec()
        if not self.transport.is_open:
            await self.transport.open()
        self.transport.set_receiver(self._received)
        await self.transport.subscribe(PWM_AB2_CHAR)
        await self.transport.subscribe(BATTERY_CHAR)
        self.battery_percent = decode_battery(await self.transport.read(BATTERY_CHAR))
        firmware = await self._optional_read(FIRMWARE_CHAR)
        if firmware is not None:
            try:
                self.firmware_version = decode_firmware(firmware)
            except ProtocolError:
                self.protocol_errors += 1
            else:
                self._emit(
                    DeviceNotice(
                        "firmware",
                        f"Coyote 2.0 firmware {self.firmware_version}",
                        {"model": "coyote2", "version": self.firmware_version},
                    )
                )
        config = await self._optional_read(CONFIG_CHAR)
        if config is not None:
            try:
                self.config = decode_config(config)
            except ProtocolError:
                self.protocol_errors += 1
            else:
                self._emit(
                    DeviceNotice(
                        "config",
                        f"Coyote 2.0 reports strength step {self.config.step_du}, "
                        f"maximum {self.config.max_strength_du}",
                        {
                            "step_du": self.config.step_du,
                            "max_strength_du": self.config.max_strength_du,
                        },
                    )
                )
        async with self._write_lock:
            await self._write_all(self.codec.zero_writes())

    async def _optional_read(self, char: str) -> bytes | None:
        """A read that some devices may not answer: None instead of an error."""
        try:
            return await asyncio.wait_for(self.transport.read(char), OPTIONAL_READ_TIMEOUT_S)
        except Exception:
            # Transports report a missing characteristic in their own ways (the BLE one as a
            # closed link); if the link really is gone, the zero write that follows says so.
            return None

    async def _write_frame(self, frame: VettedFrame) -> None:
        await self._write_all(self.codec.encode(frame))

    async def _write_all(self, writes: list[Write]) -> None:
        for write in writes:
            await self.transport.write(write.data, endpoint=write.char)

    def _received(self, endpoint: str, data: bytes) -> None:
        self._decoded(self.codec.receive, endpoint, data)
