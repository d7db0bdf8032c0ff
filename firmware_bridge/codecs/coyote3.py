"""DG-LAB Coyote 3.0 (V3, BLE): the byte protocol and its driver.

Facts: ``../shared/reference/devices.md`` section 1. All writes go to characteristic 0x150A,
replies (B1) come on 0x150B, battery on 0x1500.

- ``B0`` (20 bytes, every 100 ms): a sequence number, one strength command per channel
  (none / add / subtract / set absolute; the high two bits of the mode nibble are channel A)
  and 4 x 25 ms of waveform per channel (a compressed pulse *period* byte and an intensity
  0..100 each).
- ``BF`` (7 bytes, no reply, persisted): the soft limits and balance parameters. Written on
  every connect, before any output.
- ``B1`` (4 bytes, notify): seq and both strengths, whenever strength changes (seq 0: the
  device's own wheel).

Only absolute strength commands are used, so a lost reply can never add up to more than asked.
Rises wait for the device's B1 before the next strength change (the official flow); falls
never wait. This module never decides a level: it encodes what the guard vetted.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from device_profiles.profile import DeviceProfile
from firmware_bridge.driver import DeviceDriver, Identity
from firmware_bridge.errors import DeviceTimeout, ProtocolError, TransportError
from firmware_bridge.events import BatteryReport, DeviceEvent, StrengthReport
from firmware_bridge.transport import Transport
from safety.guard import VettedFrame
from safety.limits import SessionLimits

WRITE_CHAR = "0000150a-0000-1000-8000-00805f9b34fb"
NOTIFY_CHAR = "0000150b-0000-1000-8000-00805f9b34fb"
BATTERY_CHAR = "00001500-0000-1000-8000-00805f9b34fb"

HEAD_B0, HEAD_BF, HEAD_B1 = 0xB0, 0xBF, 0xB1
MODE_NONE, MODE_ADD, MODE_SUBTRACT, MODE_SET = 0b00, 0b01, 0b10, 0b11
STRENGTH_MAX_DU = 200
SAMPLES = 4
CHANNELS = ("A", "B")

#: How long a rise may wait for the device's B1 before the device counts as not answering.
ACK_TIMEOUT_S = 1.0


def period_ms_to_byte(period_ms: int) -> int:
    """Compress a pulse period (10..1000 ms) into the B0 "frequency" byte (10..240)."""
    if 10 <= period_ms <= 100:
        return period_ms
    if 101 <= period_ms <= 600:
        return (period_ms - 100) // 5 + 100
    if 601 <= period_ms <= 1000:
        return (period_ms - 600) // 10 + 200
    return 10


def frequency_to_byte(frequency_hz: float) -> int:
    """Pulse rate to the B0 frequency byte (through the period in ms)."""
    if not frequency_hz > 0 or not math.isfinite(frequency_hz):
        return 10
    period_ms = min(1000, max(10, round(1000.0 / frequency_hz)))
    return period_ms_to_byte(period_ms)


def _byte(value: int, low: int, high: int, name: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"{name} = {value}; allowed {low}..{high}")
    return value


def encode_b0(
    seq: int,
    mode_a: int,
    value_a: int,
    mode_b: int,
    value_b: int,
    wave_a: tuple[tuple[int, ...], tuple[int, ...]],
    wave_b: tuple[tuple[int, ...], tuple[int, ...]],
) -> bytes:
    """One B0 frame. ``wave_*`` = (4 frequency bytes, 4 intensity bytes)."""
    _byte(seq, 0, 15, "seq")
    _byte(mode_a, 0, 3, "mode A")
    _byte(mode_b, 0, 3, "mode B")
    out = bytearray([HEAD_B0, (seq << 4) | (mode_a << 2) | mode_b])
    out += bytes([_byte(value_a, 0, 255, "value A"), _byte(value_b, 0, 255, "value B")])
    for freqs, intensities in (wave_a, wave_b):
        if len(freqs) != SAMPLES or len(intensities) != SAMPLES:
            raise ValueError(f"a B0 channel block holds {SAMPLES} samples")
        out += bytes(_byte(f, 0, 255, "frequency byte") for f in freqs)
        out += bytes(_byte(i, 0, 255, "intensity byte") for i in intensities)
    return bytes(out)


def encode_bf(
    limit_a: int,
    limit_b: int,
    frequency_balance_a: int,
    frequency_balance_b: int,
    intensity_balance_a: int,
    intensity_balance_b: int,
) -> bytes:
    """The BF command: soft limits and balance parameters (no reply)."""
    return bytes(
        [
            HEAD_BF,
            _byte(limit_a, 0, STRENGTH_MAX_DU, "soft limit A"),
            _byte(limit_b, 0, STRENGTH_MAX_DU, "soft limit B"),
            _byte(frequency_balance_a, 0, 255, "frequency balance A"),
            _byte(frequency_balance_b, 0, 255, "frequency balance B"),
            _byte(intensity_balance_a, 0, 255, "intensity balance A"),
            _byte(intensity_balance_b, 0, 255, "intensity balance B"),
        ]
    )


@dataclass(frozen=True)
class B1:
    seq: int
    strength_a: int
    strength_b: int


def decode_b1(data: bytes) -> B1:
    """Decode a B1 notification; anything else is a ``ProtocolError``."""
    if len(data) != 4 or data[0] != HEAD_B1:
        raise ProtocolError(
            f"coyote3: expected a 4-byte B1 reply, got {data.hex(' ') or 'nothing'}"
        )
    if data[2] > STRENGTH_MAX_DU or data[3] > STRENGTH_MAX_DU:
        raise ProtocolError(f"coyote3: B1 strength out of 0..200: {data.hex(' ')}")
    return B1(data[1], data[2], data[3])


def decode_battery(data: bytes) -> int:
    if len(data) != 1 or data[0] > 100:
        raise ProtocolError(f"coyote3: battery level must be one byte 0..100, got {data.hex(' ')}")
    return data[0]


class Coyote3Codec:
    """Sans-IO state of the protocol: which strengths the device has, which change is pending.

    ``encode`` turns a vetted frame into one B0; ``receive`` turns notifications into events.
    """

    def __init__(self) -> None:
        self.device_levels: dict[str, int] | None = None  # None: unknown (before connect)
        self.pending_seq: int | None = None
        self.pending_since_s = 0.0
        self._next_seq = 1
        #: the previous frame's vetted levels: a rise goes out one frame late (see ``encode``)
        self._previous_levels = {c: 0 for c in CHANNELS}

    def take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq = seq % 15 + 1  # 1..15; 0 means "no reply wanted"
        return seq

    def zero_command(self, now_s: float, *, want_reply: bool = True) -> bytes:
        """Set both strengths to zero (absolute) and silence both waveforms.

        ``want_reply=False`` sends sequence number 0: an absolute zero needs no
        acknowledgement to be known, and a device already at zero would not send one."""
        seq = self.take_seq() if want_reply else 0
        self.pending_seq = seq or None
        self.pending_since_s = now_s
        self.device_levels = {c: 0 for c in CHANNELS}
        self._previous_levels = {c: 0 for c in CHANNELS}
        silent = ((10,) * SAMPLES, (0,) * SAMPLES)
        return encode_b0(seq, MODE_SET, 0, MODE_SET, 0, silent, silent)

    def encode(self, frame: VettedFrame, now_s: float) -> bytes:
        wanted = {c: 0 for c in CHANNELS}
        waves: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for c in CHANNELS:
            waves[c] = ((10,) * SAMPLES, (0,) * SAMPLES)
        vetted = {c: 0 for c in CHANNELS}
        for ch in frame.channels:
            vetted[ch.name] = ch.level_du
            # The device applies a strength on arrival but plays this frame's waveform one
            # frame later (the profile queues one frame ahead), so for one frame the new
            # strength meets the previous waveform. A rise therefore goes out with the next
            # frame, when its own waveform starts; a fall goes out at once. Output is then
            # never more than the guard vetted for either frame.
            wanted[ch.name] = min(ch.level_du, self._previous_levels[ch.name])
            freqs = tuple(frequency_to_byte(f) for f in ch.frequency_hz)
            # Rounded down, so the device never delivers more than the guard vetted.
            intensities = tuple(min(100, max(0, math.floor(i * 100 + 1e-9))) for i in ch.intensity)
            waves[ch.name] = (freqs, intensities)

        self._previous_levels = vetted
        known = self.device_levels
        falls = known is None or any(wanted[c] < known[c] for c in CHANNELS)
        rises = known is not None and any(wanted[c] > known[c] for c in CHANNELS)
        seq, modes, values = 0, [MODE_NONE, MODE_NONE], [0, 0]
        if falls or (rises and self.pending_seq is None):
            seq = self.take_seq()
            self.pending_seq, self.pending_since_s = seq, now_s
            for k, c in enumerate(CHANNELS):
                if known is None or wanted[c] != known[c]:
                    modes[k], values[k] = MODE_SET, wanted[c]
            # An absolute command leaves the device at exactly these values (the soft limits
            # written on connect are the ceilings), so later falls compare against them, not
            # against a B1 that has not arrived yet.
            self.device_levels = dict(wanted)
        return encode_b0(seq, modes[0], values[0], modes[1], values[1], waves["A"], waves["B"])

    def overdue(self, now_s: float) -> bool:
        return self.pending_seq is not None and now_s - self.pending_since_s > ACK_TIMEOUT_S

    def receive(self, endpoint: str, data: bytes) -> DeviceEvent | None:
        """Decode one notification. Unknown endpoints are ignored (None)."""
        if endpoint == BATTERY_CHAR:
            return BatteryReport(decode_battery(data))
        if endpoint != NOTIFY_CHAR:
            return None
        if data[:1] in (b"\x51", b"\x53"):
            return None  # observed by others, undocumented: not strength reports
        b1 = decode_b1(data)
        self.device_levels = {"A": b1.strength_a, "B": b1.strength_b}
        if b1.seq != 0 and b1.seq == self.pending_seq:
            self.pending_seq = None
        return StrengthReport(dict(self.device_levels), b1.seq, by_device=b1.seq == 0)


class Driver(DeviceDriver):
    """Coyote 3.0 over any transport that offers its three characteristics."""

    def __init__(self, profile: DeviceProfile, transport: Transport) -> None:
        super().__init__(profile, transport)
        self.codec = Coyote3Codec()

    async def _identify(self) -> Identity:
        """The BLE link is up; read the battery level (0x1500), the one thing the device
        offers to read. Nothing is written (no B0, no BF) and nothing is subscribed to. A
        device at this address without that characteristic, or with a value that is not
        0..100, is not a Coyote 3."""
        try:
            battery = decode_battery(await self.transport.read(BATTERY_CHAR))
        except (TransportError, ProtocolError) as exc:
            kind = ProtocolError if isinstance(exc, ProtocolError) else TransportError
            raise kind(
                f"coyote3: the device at {self.transport.url or 'its address'} did not give "
                f"a Coyote 3 battery level (characteristic 0x1500): {exc}"
            ) from None
        return Identity(device=self.profile.id, model=self.profile.name, battery_percent=battery)

    async def connect(self, limits: SessionLimits) -> None:
        loop = asyncio.get_running_loop()
        self.codec = Coyote3Codec()
        if not self.transport.is_open:
            await self.transport.open()
        self.transport.set_receiver(self._received)
        await self.transport.subscribe(NOTIFY_CHAR)
        await self.transport.subscribe(BATTERY_CHAR)
        self.battery_percent = decode_battery(await self.transport.read(BATTERY_CHAR))
        settings = self.profile.device_settings
        ceilings = {c.name: c.ceiling_du for c in limits.channels}
        freq_bal = settings.get("frequency_balance", 160)
        int_bal = settings.get("intensity_balance", 0)
        bf = encode_bf(
            ceilings.get("A", 0), ceilings.get("B", 0), freq_bal, freq_bal, int_bal, int_bal
        )
        async with self._write_lock:
            # Strength persists on the device and cannot be read: set it to an absolute zero
            # first. The write is acknowledged by the link, and an absolute zero is always
            # valid, so zero is what the device holds; sequence 0 asks for no B1. Then the
            # soft limits: with the strength already at zero, BF cannot clamp it (a clamp
            # would send a B1 that looks like the wheel).
            zero = self.codec.zero_command(loop.time(), want_reply=False)
            await self.transport.write(zero, endpoint=WRITE_CHAR)
            await self.transport.write(bf, endpoint=WRITE_CHAR)

    async def _write_frame(self, frame: VettedFrame) -> None:
        now = asyncio.get_running_loop().time()
        if self.codec.overdue(now) and not frame.zero:
            raise DeviceTimeout(
                f"coyote3: no B1 reply for {ACK_TIMEOUT_S:g} s after a strength change; "
                "the device stopped answering"
            )
        await self.transport.write(self.codec.encode(frame, now), endpoint=WRITE_CHAR)

    def _received(self, endpoint: str, data: bytes) -> None:
        self._decoded(self.codec.receive, endpoint, data)
