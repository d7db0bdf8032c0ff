"""ErosTek ET-312B / MK-312BT (serial): the byte protocol, a sans-IO codec and the driver.

Facts: ``../shared/reference/devices.md`` section 3 (packets, checksum, XOR key, addresses,
test vectors). The host-control model (which registers acustim writes, what their values mean,
the connect order, zero and close): ``docs/devices/et312.md``.

- Host packets end in a checksum (the 8-bit sum of the bytes before it). After the key exchange
  every host byte, checksum included, is XORed with ``K = swapNibbles(hk) ^ bk ^ 0x55``; with
  host key 0 that is ``bk ^ 0x55``. Box replies are never encrypted.
- Replies: ``06`` ACK, ``07`` NACK (also the answer to a sync ``00``), ``22 value cs`` to a read,
  ``21 bk cs`` to the key exchange.
- The level is the intensity register above 128; frequency and width are the period (ms) and
  width (us) registers *[assumed units]*. The box keeps running when the host goes silent, so
  zero is always written as mute first, then intensity 128 on both channels.

This module never decides a level: it writes what the guard vetted, nothing but zero before
``connect`` returns, and two packets never interleave on the wire.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass

from device_profiles.profile import DeviceProfile
from firmware_bridge.driver import DeviceDriver
from firmware_bridge.errors import BridgeError, DeviceTimeout, ProtocolError, TransportClosed
from firmware_bridge.events import BatteryReport, DeviceNotice
from firmware_bridge.transport import Transport
from safety.guard import VettedChannel, VettedFrame, require_vetted
from safety.limits import SessionLimits

# --- packet and reply codes -------------------------------------------------------------------
SYNC = 0x00
KEY_EXCHANGE = 0x2F
READ = 0x3C
ACK = 0x06
NACK = 0x07  # also the answer to a sync byte
KEY_REPLY = 0x21
READ_REPLY = 0x22
MAX_WRITE_BYTES = 8

# --- addresses --------------------------------------------------------------------------------
MODEL = 0x00FC
FIRMWARE = 0x00FD  # major, minor, internal at $00FD..$00FF
KNOB = {"A": 0x4064, "B": 0x4065}  # front-panel level pots, ADC 0..255 (read only for us)
BOX_COMMAND = 0x4070  # and $4071
MODE = 0x407B
OUTPUT_CONTROL = 0x4083
BATTERY = 0x4203  # percent, 0..99
KEY = 0x4213

CHANNELS = ("A", "B")
CHANNEL_OFFSET = {"A": 0x000, "B": 0x100}
INTENSITY = 0x40A5  # channel A; B = A + 0x100
INTENSITY_SELECT = 0x40AC
FREQUENCY = 0x40AE
FREQUENCY_SELECT = 0x40B5
WIDTH = 0x40B7
WIDTH_SELECT = 0x40BE

# --- values -----------------------------------------------------------------------------------
MODEL_ET312 = 0x0C
MUTED = 0x02  # $4083 bit 0x02: no output on either channel
UNMUTED = 0x00
STATIC_SELECT = 0x00  # the value register is used as written [assumed]
INTENSITY_ZERO = 128  # intensity register = 128 + level
LEVEL_MAX_DU = 127
FREQUENCY_VALUE_RANGE = (8, 255)  # pulse period in ms [assumed]
WIDTH_VALUE_RANGE = (64, 196)  # pulse width in us [assumed]
MODE_WAVES = 0x76
EXIT_MENU, NEW_MODE = 0x04, 0x12

# --- timing -----------------------------------------------------------------------------------
#: Every write and read waits this long for its reply; then the box counts as not answering.
ACK_TIMEOUT_S = 0.2
#: Sync: a lone ``00`` every 100 ms, at most 12 times (the longest packet is 11-12 bytes).
SYNC_TRIES = 12
SYNC_TRY_S = 0.1
#: Key recovery sends each candidate key as a burst of identical sync bytes. From an idle box
#: the right key answers every byte; a wrong key answers at most one NACK per 3-byte packet.
RECOVERY_BURST = 12
RECOVERY_FOUND_REPLIES = RECOVERY_BURST // 3 + 1
#: The box's main loop polls the command register; the next command must wait >= 18 ms.
BOX_COMMAND_WAIT_S = 0.025
KNOB_POLL_S = 1.0
BATTERY_POLL_S = 10.0
#: ``close`` never takes longer than this (zero, key reset, then the port closes regardless).
CLOSE_TIMEOUT_S = 1.5


# --- pure functions ---------------------------------------------------------------------------
def checksum(data: bytes) -> int:
    """The 8-bit sum of ``data`` (a packet's bytes before its checksum)."""
    return sum(data) & 0xFF


def _with_checksum(body: bytes) -> bytes:
    return body + bytes([checksum(body)])


def swap_nibbles(value: int) -> int:
    return ((value << 4) | (value >> 4)) & 0xFF


def session_key(box_key: int, host_key: int = 0) -> int:
    """The XOR key for host bytes after a key exchange: swapNibbles(hk) ^ bk ^ 0x55."""
    _byte(box_key, "box key")
    _byte(host_key, "host key")
    return swap_nibbles(host_key) ^ box_key ^ 0x55


def encrypt(packet: bytes, key: int) -> bytes:
    """XOR every byte (command, address, data and checksum) with the session key."""
    _byte(key, "key")
    return bytes(b ^ key for b in packet)


def decrypt(packet: bytes, key: int) -> bytes:
    """The inverse of ``encrypt`` (XOR is its own inverse)."""
    return encrypt(packet, key)


def sync_packet() -> bytes:
    """The sync byte (plain; ``encrypt`` it once a key is in force)."""
    return bytes([SYNC])


def key_exchange_packet(host_key: int = 0) -> bytes:
    """``2F hk cs``; always sent unencrypted."""
    return _with_checksum(bytes([KEY_EXCHANGE, _byte(host_key, "host key")]))


def read_packet(address: int) -> bytes:
    """Read one byte: ``3C hi lo cs`` (plain)."""
    return _with_checksum(bytes([READ, *_address(address)]))


def write_packet(address: int, data: bytes) -> bytes:
    """Write 1..8 bytes: ``((3+n)<<4 | 0x0D) hi lo d1..dn cs`` (plain)."""
    n = len(data)
    if not 1 <= n <= MAX_WRITE_BYTES:
        raise ValueError(f"an ET-312 write carries 1..{MAX_WRITE_BYTES} bytes, not {n}")
    return _with_checksum(bytes([((3 + n) << 4) | 0x0D, *_address(address)]) + bytes(data))


def key_reset_packet() -> bytes:
    """Write 0 to the key register $4213, so the next host can sync in plain (plain)."""
    return write_packet(KEY, b"\x00")


def box_command_packet(*commands: int) -> bytes:
    """Box commands at $4070 (``04 12``: exit menu, then start the mode in $407B) (plain)."""
    return write_packet(BOX_COMMAND, bytes(_byte(c, "box command") for c in commands))


def parse_read_reply(data: bytes) -> int:
    """The value in a ``22 value cs`` reply."""
    return _parse_three(data, READ_REPLY, "read reply")


def parse_key_reply(data: bytes) -> int:
    """The box key in a ``21 bk cs`` reply."""
    return _parse_three(data, KEY_REPLY, "key reply")


def frequency_value(frequency_hz: float) -> int:
    """Pulse rate to the frequency register: the period in ms, 8..255 [assumed units]."""
    low, high = FREQUENCY_VALUE_RANGE
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        return high  # the slowest rate
    return min(high, max(low, round(1000.0 / frequency_hz)))


def width_value(pulse_width_us: float) -> int:
    """Pulse width to the width register: us, 64..196 [assumed units]."""
    low, high = WIDTH_VALUE_RANGE
    if not math.isfinite(pulse_width_us):
        return low
    return min(high, max(low, round(pulse_width_us)))


def intensity_value(output_du: float) -> int:
    """Output in device units (level x intensity) to the intensity register, 128..255."""
    if not (math.isfinite(output_du) and output_du > 0):
        return INTENSITY_ZERO
    return INTENSITY_ZERO + min(LEVEL_MAX_DU, round(output_du))


def describe_packet(plain: bytes) -> str:
    """A short human description of a plain host packet, for error messages."""
    if not plain:
        return "nothing"
    head = plain[0]
    if head == SYNC:
        return "a sync byte"
    if head == KEY_EXCHANGE:
        return "the key exchange"
    if len(plain) >= 3:
        address = f"${(plain[1] << 8) | plain[2]:04X}"
        if head == READ:
            return f"a read of {address}"
        if head & 0x0F == 0x0D:
            return f"a write to {address}"
    return f"packet {plain.hex(' ')}"


def _byte(value: int, name: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} = {value}; allowed 0..255")
    return value


def _address(address: int) -> tuple[int, int]:
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"address {address:#x}; allowed $0000..$FFFF")
    return address >> 8, address & 0xFF


def _parse_three(data: bytes, head: int, what: str) -> int:
    if len(data) != 3 or data[0] != head:
        raise ProtocolError(
            f"et312: expected a 3-byte {what} ({head:02x} v cs), got {data.hex(' ') or 'nothing'}"
        )
    if checksum(data[:2]) != data[2]:
        raise ProtocolError(
            f"et312: bad checksum in the {what} {data.hex(' ')} (expected {checksum(data[:2]):02x})"
        )
    return data[1]


# --- replies ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ack:
    """``06``: a write was done."""


@dataclass(frozen=True)
class Nack:
    """``07``: a packet was refused (bad checksum), or the answer to a sync byte."""


@dataclass(frozen=True)
class ReadReply:
    value: int


@dataclass(frozen=True)
class KeyReply:
    box_key: int


Reply = Ack | Nack | ReadReply | KeyReply


class ReplyParser:
    """Box bytes, in any chunks, to replies. Sans-IO.

    ``feed`` buffers; ``pop`` returns the next complete reply, None when more bytes are needed,
    or raises ``ProtocolError`` for a bad one (whose bytes are then dropped, so parsing goes on).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def reset(self) -> None:
        """Forget buffered bytes (flush input)."""
        self._buffer.clear()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def pop(self) -> Reply | None:
        buf = self._buffer
        if not buf:
            return None
        head = buf[0]
        if head == ACK:
            del buf[0]
            return Ack()
        if head == NACK:
            del buf[0]
            return Nack()
        if head in (READ_REPLY, KEY_REPLY):
            if len(buf) < 3:
                return None
            packet = bytes(buf[:3])
            del buf[:3]
            if head == READ_REPLY:
                return ReadReply(parse_read_reply(packet))
            return KeyReply(parse_key_reply(packet))
        del buf[0]
        raise ProtocolError(f"et312: unexpected byte {head:02x} from the box (not a reply code)")

    def parse(self, data: bytes) -> list[Reply]:
        """Feed ``data`` and return every complete reply (raises at the first bad one)."""
        self.feed(data)
        out: list[Reply] = []
        while (reply := self.pop()) is not None:
            out.append(reply)
        return out


# --- the sans-IO codec ------------------------------------------------------------------------
def register(base: int, channel: str) -> int:
    """A per-channel register address: channel B is channel A + 0x100."""
    return base + CHANNEL_OFFSET[channel]


class Et312Codec:
    """The box's registers as the host believes them, and the packets that change them.

    Every packet it returns is on-the-wire (encrypted with ``key``). The register image is
    updated when a packet is made; whoever sends it calls ``forget()`` if it is not
    acknowledged, so the next frame writes every register again.
    """

    def __init__(self, ceilings_du: dict[str, int] | None = None) -> None:
        self.key = 0
        self.registers: dict[int, int] = {}
        self.ceilings_du = {c: LEVEL_MAX_DU for c in CHANNELS}
        if ceilings_du:
            for c, ceiling in ceilings_du.items():
                if c in self.ceilings_du:
                    self.ceilings_du[c] = min(LEVEL_MAX_DU, max(0, ceiling))
        self.parser = ReplyParser()

    # --- packets ------------------------------------------------------------------------------
    def wire(self, plain: bytes) -> bytes:
        return encrypt(plain, self.key)

    def plain(self, wire: bytes) -> bytes:
        return decrypt(wire, self.key)

    def read(self, address: int) -> bytes:
        return self.wire(read_packet(address))

    def sync(self) -> bytes:
        return self.wire(sync_packet())

    def key_reset(self) -> bytes:
        """The key reset, under the current key. Once the box acknowledges it, ``key = 0``."""
        return self.wire(key_reset_packet())

    def _set(self, address: int, value: int, *, force: bool = False) -> list[bytes]:
        if not force and self.registers.get(address) == value:
            return []
        self.registers[address] = value
        return [self.wire(write_packet(address, bytes([value])))]

    def forget(self) -> None:
        """The box's registers are unknown (a write went unacknowledged)."""
        self.registers.clear()

    @property
    def muted(self) -> bool | None:
        value = self.registers.get(OUTPUT_CONTROL)
        return None if value is None else value == MUTED

    # --- what the host writes -----------------------------------------------------------------
    def limit_writes(self) -> list[bytes]:
        """Connect, before any output: mute, intensity 128 on both channels, static selects."""
        out = self._set(OUTPUT_CONTROL, MUTED, force=True)
        for c in CHANNELS:
            out += self._set(register(INTENSITY, c), INTENSITY_ZERO, force=True)
        for c in CHANNELS:
            for select in (INTENSITY_SELECT, FREQUENCY_SELECT, WIDTH_SELECT):
                out += self._set(register(select, c), STATIC_SELECT, force=True)
        return out

    def mode_writes(self, mode: int = MODE_WAVES) -> list[bytes]:
        """Set the mode, then box commands ``04 12`` (exit menu + new mode). Wait >= 18 ms."""
        out = self._set(MODE, _byte(mode, "mode"), force=True)
        return [*out, self.wire(box_command_packet(EXIT_MENU, NEW_MODE))]

    def zero_writes(self) -> list[bytes]:
        """Zero / emergency stop: mute first, then intensity 128 on both channels. Always all
        three, whatever the image says: the box keeps running, so zero must never be skipped."""
        out = self._set(OUTPUT_CONTROL, MUTED, force=True)
        for c in CHANNELS:
            out += self._set(register(INTENSITY, c), INTENSITY_ZERO, force=True)
        return out

    def frame_writes(self, frame: VettedFrame) -> list[bytes]:
        """The writes that make the box deliver ``frame``: only the registers that change.

        Order: intensity falls, then frequency and width, then intensity rises, then (on the
        first frame with output) mute off, so output never starts before its settings.
        """
        frame = require_vetted(frame)
        if frame.zero:
            return self.zero_writes()
        falls: list[bytes] = []
        settings: list[bytes] = []
        rises: list[bytes] = []
        any_output = False
        for c in CHANNELS:
            ch = _channel(frame, c)
            value, frequency, width = self._targets(c, ch)
            address = register(INTENSITY, c)
            known = self.registers.get(address)
            if value > INTENSITY_ZERO:
                any_output = True
                settings += self._set(register(FREQUENCY, c), frequency)
                settings += self._set(register(WIDTH, c), width)
            if value > (INTENSITY_ZERO if known is None else known):
                rises += self._set(address, value)
            else:
                falls += self._set(address, value)
        out = falls + settings + rises
        if any_output:
            out += self._set(OUTPUT_CONTROL, UNMUTED)
        return out

    def _targets(self, name: str, ch: VettedChannel | None) -> tuple[int, int, int]:
        if ch is None or ch.level_du <= 0 or not ch.intensity:
            return INTENSITY_ZERO, 0, 0
        level = min(ch.level_du, self.ceilings_du.get(name, 0))
        k = max(range(len(ch.intensity)), key=ch.intensity.__getitem__)
        intensity = min(1.0, ch.intensity[k])
        value = intensity_value(level * intensity)
        return value, frequency_value(ch.frequency_hz[k]), width_value(ch.pulse_width_us[k])


def _channel(frame: VettedFrame, name: str) -> VettedChannel | None:
    for ch in frame.channels:
        if ch.name == name:
            return ch
    return None


# --- the driver -------------------------------------------------------------------------------
class Driver(DeviceDriver):
    """ET-312B / MK-312BT over any byte-stream transport (serial port, SPP, in-process link).

    Every packet waits for its reply before the next goes out, under the write lock (connect,
    frames, polls and close alike), so packets never interleave. The knob and battery polls
    ride after a frame's writes when they are due, so they never delay a frame's own writes.
    """

    #: seconds each sync try waits (a Bluetooth SPP link may need more than a cable)
    sync_try_s = SYNC_TRY_S
    ack_timeout_s = ACK_TIMEOUT_S

    def __init__(self, profile: DeviceProfile, transport: Transport) -> None:
        super().__init__(profile, transport)
        self.codec = Et312Codec()
        self.model: int | None = None
        self.firmware: tuple[int, int, int] | None = None
        self.knobs: dict[str, int] | None = None
        self._replies: asyncio.Queue[Reply | ProtocolError | TransportClosed] = asyncio.Queue()
        #: the session key of the last session, tried first on a reconnect
        self._last_key: int | None = None
        self._keyed = False  # an ET-312 holds our key: close() zeroes it and resets the key
        self._ready = False  # connect() finished: frames may be written
        self._next_knob_s = 0.0
        self._next_battery_s = 0.0

    # --- connect ------------------------------------------------------------------------------
    async def connect(self, limits: SessionLimits) -> None:
        self._ready = self._keyed = False
        self.codec = Et312Codec({c.name: c.ceiling_du for c in limits.channels})
        mode = self.profile.device_settings.get("mode", MODE_WAVES)
        if not 0 <= mode <= 0xFF:
            raise BridgeError(f"{self.profile.source_path}: [device_settings] mode must be 0..255")
        if not self.transport.is_open:
            await self.transport.open()
        self.transport.set_disconnect_handler(self._link_lost)
        self.transport.set_receiver(self._received)
        async with self._write_lock:
            await self._handshake()
            await self._check_model()
            self._keyed = True
            await self._read_battery()
            # limits before output: mute, intensity 128, static selects; then the mode. A new
            # mode may load its own settings, so the limits are written again after it.
            await self._write_all(self.codec.limit_writes())
            await self._write_all(self.codec.mode_writes(mode))
            await asyncio.sleep(BOX_COMMAND_WAIT_S)
            await self._write_all(self.codec.limit_writes())
        now = asyncio.get_running_loop().time()
        self._next_knob_s = now
        self._next_battery_s = now + BATTERY_POLL_S
        self._ready = True

    async def _handshake(self) -> None:
        """Sync (recovering a key left by an earlier host), then the key exchange."""
        self.codec.key = 0
        self.codec.parser.reset()
        self._drain()
        key = await self._find_key()
        if key is None:
            raise DeviceTimeout(
                f"et312: no answer to the sync byte on {self.transport.url or 'the port'} "
                f"(plain and all 256 keys tried); check the cable, 19200 baud and that the box "
                "is switched on"
            )
        self.codec.key = key
        if key != 0:
            await self._write(self.codec.key_reset())
            self.codec.key = 0
        reply = await self._request(key_exchange_packet(0), "the key exchange")
        if not isinstance(reply, KeyReply):
            raise ProtocolError(f"et312: expected a key reply (21 bk cs), got {_name(reply)}")
        self.codec.key = session_key(reply.box_key, 0)
        self._last_key = self.codec.key

    async def _find_key(self) -> int | None:
        """The key the box holds: 0 after a clean close, else found by trying every key.

        Plain sync first, as the reference says: a lone ``00`` until ``07`` (12 tries). A ``07``
        may be the NACK of a half-received packet, so it counts only if one more lone sync byte
        is answered at once (from an idle box, only a real sync is). Key recovery then keeps
        the box idle between candidates and sends each candidate as a burst of identical bytes,
        so no packet the box sees during recovery can carry a valid checksum: a wrong key never
        turns into a write to the box's memory.
        """
        replied, quiet = False, 0
        for _ in range(SYNC_TRIES):
            first = await self._exchange(sync_packet(), 1, self.sync_try_s)
            if first and isinstance(first[0], Nack):
                again = await self._exchange(sync_packet(), 1, self.sync_try_s)
                if again and isinstance(again[0], Nack):
                    return 0
                first = again
            replied = replied or bool(first)
            quiet = 0 if first else quiet + 1
        if replied and quiet:
            await self._settle(SYNC)
        candidates = [k for k in range(1, 256) if k != self._last_key]
        if self._last_key:
            candidates.insert(0, self._last_key)
        for key in candidates:
            if await self._try_key(key):
                return key
        return None

    async def _try_key(self, key: int) -> bool:
        """One recovery candidate, sent to an idle box; leaves the box idle."""
        burst = encrypt(sync_packet(), key) * RECOVERY_BURST
        replies = await self._exchange(burst, RECOVERY_BURST, self.sync_try_s)
        if sum(isinstance(r, Nack) for r in replies) >= RECOVERY_FOUND_REPLIES:
            return True
        if replies:  # the candidate starts a packet: complete it so the box is idle again
            await self._settle(encrypt(sync_packet(), key)[0])
        return False

    async def _settle(self, byte: int) -> None:
        """Send ``byte`` alone until the box answers (it finished a packet: idle again)."""
        for _ in range(SYNC_TRIES):
            if await self._exchange(bytes([byte]), 1, self.sync_try_s):
                return

    async def _check_model(self) -> None:
        model = await self._read(MODEL)
        if model != MODEL_ET312:
            self.model = model
            raise BridgeError(
                f"et312: the box on {self.transport.url or 'the port'} reports model "
                f"0x{model:02X}; acustim drives only the ET-312B / MK-312BT (model 0x0C). "
                "Choose the right device, or check that this is an ET-312"
            )
        major, minor, internal = [await self._read(FIRMWARE + i) for i in range(3)]
        self.model, self.firmware = model, (major, minor, internal)
        version = f"{major}.{minor}.{internal}"
        self._emit(
            DeviceNotice(
                "firmware",
                f"ET-312 (model 0x{model:02X}), firmware {version}",
                {"model": model, "firmware": version},
            )
        )

    async def _read_battery(self) -> None:
        percent = min(100, await self._read(BATTERY))
        self.battery_percent = percent
        self._emit(BatteryReport(percent))

    # --- frames -------------------------------------------------------------------------------
    async def _write_frame(self, frame: VettedFrame) -> None:
        frame = require_vetted(frame)
        if not self._ready:
            raise TransportClosed("et312: not connected; connect() must finish before frames")
        await self._write_all(self.codec.frame_writes(frame))
        if not frame.zero:  # a stop must not wait behind reads: polls follow output frames
            await self._poll()

    async def _poll(self) -> None:
        """After a frame's writes: the front knobs every second, the battery every ten."""
        now = asyncio.get_running_loop().time()
        if now >= self._next_knob_s:
            self._next_knob_s = now + KNOB_POLL_S
            knobs = {c: await self._read(KNOB[c]) for c in CHANNELS}
            if knobs != self.knobs:
                self.knobs = knobs
                self._emit(
                    DeviceNotice(
                        "knob",
                        f"front-panel level knobs: A {knobs['A']}/255, B {knobs['B']}/255",
                        dict(knobs),
                    )
                )
        if now >= self._next_battery_s:
            self._next_battery_s = now + BATTERY_POLL_S
            await self._read_battery()

    # --- close --------------------------------------------------------------------------------
    async def close(self, zero: VettedFrame | None = None) -> None:
        """Zero (when given), then the key reset, then close the port: bounded, best effort."""
        try:
            if zero is not None:
                zero = require_vetted(zero)
            if self._keyed and self.transport.is_open:
                try:
                    await asyncio.wait_for(self._goodbye(zero), CLOSE_TIMEOUT_S)
                except TimeoutError:
                    raise DeviceTimeout(
                        f"et312: closing took longer than {CLOSE_TIMEOUT_S:g} s; the box may "
                        "still hold its last output and our key (switch it off and on)"
                    ) from None
        finally:
            self._ready = self._keyed = False
            self.transport.set_disconnect_handler(None)
            self.transport.set_receiver(None)
            await self.transport.close()

    async def _goodbye(self, zero: VettedFrame | None) -> None:
        async with self._write_lock:
            error: BridgeError | None = None
            # each write on its own: a lost mute must not stop the intensities from going out
            for packet in self.codec.zero_writes() if zero is not None else []:
                try:
                    await self._write(packet)
                except TransportClosed:
                    raise
                except BridgeError as exc:
                    error = error or exc
            try:
                await self._write(self.codec.key_reset())
                self.codec.key = 0
                self._last_key = 0
            except BridgeError as exc:
                error = error or exc
            if error is not None:
                raise error

    # --- requests -----------------------------------------------------------------------------
    async def _write_all(self, packets: Iterable[bytes]) -> None:
        for packet in packets:
            await self._write(packet)

    async def _write(self, packet: bytes) -> None:
        what = describe_packet(self.codec.plain(packet))
        reply = await self._request(packet, what)
        if isinstance(reply, Ack):
            return
        self.codec.forget()
        if isinstance(reply, Nack):
            raise ProtocolError(f"et312: the box refused {what} (NACK 07)")
        raise ProtocolError(f"et312: expected ACK 06 to {what}, got {_name(reply)}")

    async def _read(self, address: int) -> int:
        what = f"a read of ${address:04X}"
        reply = await self._request(self.codec.read(address), what)
        if isinstance(reply, ReadReply):
            return reply.value
        if isinstance(reply, Nack):
            raise ProtocolError(f"et312: the box refused {what} (NACK 07)")
        raise ProtocolError(f"et312: expected a read reply (22 v cs) to {what}, got {_name(reply)}")

    async def _request(self, packet: bytes, what: str) -> Reply:
        replies = await self._exchange(packet, 1, self.ack_timeout_s)
        if not replies:
            self.codec.forget()
            raise DeviceTimeout(
                f"et312: no reply within {self.ack_timeout_s * 1000:.0f} ms to {what}; "
                "the box stopped answering (cable, power, or another program on the port)"
            )
        reply = replies[0]
        if isinstance(reply, ProtocolError):
            self.codec.forget()
            raise reply
        return reply

    async def _exchange(
        self, data: bytes, want: int, timeout_s: float
    ) -> list[Reply | ProtocolError]:
        """Write ``data``, then collect replies until ``want`` arrived or ``timeout_s`` passed.

        Stale replies are dropped first. Bad replies come back as ``ProtocolError`` values (the
        caller decides); a lost link raises.
        """
        self._drain()
        await self.transport.write(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        out: list[Reply | ProtocolError] = []
        while len(out) < want:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self._replies.get(), remaining)
            except TimeoutError:
                break
            if isinstance(item, TransportClosed):
                raise item
            out.append(item)
        return out

    def _drain(self) -> None:
        while not self._replies.empty():
            self._replies.get_nowait()

    def _received(self, endpoint: str, data: bytes) -> None:
        self.codec.parser.feed(data)
        while True:
            try:
                reply = self.codec.parser.pop()
            except ProtocolError as exc:
                self.protocol_errors += 1
                self._replies.put_nowait(exc)
                continue
            if reply is None:
                return
            self._replies.put_nowait(reply)

    def _link_lost(self, reason: str) -> None:
        self._ready = False
        self._replies.put_nowait(TransportClosed(f"et312: link lost ({reason})"))
        super()._link_lost(reason)


def _name(reply: Reply) -> str:
    if isinstance(reply, Ack):
        return "ACK 06"
    if isinstance(reply, Nack):
        return "NACK 07"
    if isinstance(reply, ReadReply):
        return f"a read reply (value {reply.value:02x})"
    return f"a key reply (box key {reply.box_key:02x})"
