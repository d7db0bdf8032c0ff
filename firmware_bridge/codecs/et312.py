"""ErosTek ET-312B / MK-312BT (serial): the byte protocol, a sans-IO codec and the driver.

Facts: ``../shared/reference/devices.md`` section 3 (packets, checksum, XOR key, addresses,
test vectors) and ``docs/devices/et312-firmware.md`` (what the firmware does with the registers,
with sources). The host-control model (which registers acustim writes, what their values mean,
the connect order, zero and close): ``docs/devices/et312.md``.

- Host packets end in a checksum (the 8-bit sum of the bytes before it). After the key exchange
  every host byte, checksum included, is XORed with ``K = swapNibbles(hk) ^ bk ^ 0x55``; with
  host key 0 that is ``bk ^ 0x55``. Box replies are never encrypted.
- Replies: ``06`` ACK, ``07`` NACK (also the answer to a sync ``00``), ``22 value cs`` to a read,
  ``21 bk cs`` to the key exchange.
- The box drives each channel at ``level x intensity / 256``: ``level`` follows the front knob
  (pot $4064 / $4065, scaled by the power level and the mode's ramp), ``intensity`` is the
  register $40A5 / $41A5, a linear factor used as written (no offset; $4083 "mute" gates
  nothing). acustim leaves the knobs live, as the box's hard ceiling, and writes the vetted
  level as the intensity register: ``floor(level_du x program intensity)``, 0..255. Zero is
  intensity 0 on both channels, A then B.
- Connect writes the limits before any output and never raises it: the front pots are disabled
  and set to 0, then the new mode (``04 12``, whose reload sets intensity 0xFF) is waited for
  until it has run, then static selects and intensity 0, all read back; only then do the pots
  follow the knobs again.
- The frequency register counts 256 us steps of the pulse period after two phases of the width
  register (us): ``period_us = 2 x W + 256 x (F + 1)``.

This module never decides a level: it writes what the guard vetted, nothing but zero before
``connect`` returns, and two packets never interleave on the wire.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
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
SYSTEM_FLAGS = 0x400F  # r15; bit 0 set: the firmware stops reading the front level pots (ADC)
KNOB = {"A": 0x4064, "B": 0x4065}  # level pots A / B: the ADC's 0..255, or what the host wrote
BOX_COMMAND = 0x4070  # and $4071; each reads 0xFF again once the main loop has run it
MODE = 0x407B
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
SELECTS = (INTENSITY_SELECT, FREQUENCY_SELECT, WIDTH_SELECT)
#: Next-module timer flag: non-zero makes the firmware load module [$4097] later, which may
#: rewrite the selects (Rhythm does); 0 (the default) is off.
NEXT_MODULE_FLAG = 0x4096

# --- values -----------------------------------------------------------------------------------
MODEL_ET312 = 0x0C
ADC_DISABLE = 0x01  # $400F bit 0
POT_ZERO = 0
STATIC_SELECT = 0x00  # low four bits 0: the firmware leaves the value register as written
INTENSITY_OFF = 0  # drive = level x intensity / 256: 0 is no output, whatever the knob
LEVEL_MAX_DU = 255  # the intensity register, 0..255, each step 1/256 of the knob's level
#: The frequency register F sets the pulse period: ``period_us = PHASES x W + 256 x (F + 1)``
#: (et312-firmware.md section 3), with W the width register. The firmware uses max(9, F).
FREQUENCY_VALUE_RANGE = (9, 255)
#: The width register is the width of each phase in us; the firmware uses max(50, W) up to 255.
#: acustim keeps to 64..196, a narrower range of its own [assumed policy].
WIDTH_VALUE_RANGE = (64, 196)
#: Phases per pulse: the new mode's module 1 sets the gates to 0x07, biphasic (phase 1, then
#: phase 2), and acustim never writes the gates.
PHASES = 2
#: Written on connect (the intensity is 0 then): the slowest rate and the narrowest pulse. The
#: first frame with output writes its own values before its intensity.
CONNECT_FREQUENCY = FREQUENCY_VALUE_RANGE[1]
CONNECT_WIDTH = WIDTH_VALUE_RANGE[0]
MODE_WAVES = 0x76
EXIT_MENU, NEW_MODE = 0x04, 0x12

# --- timing -----------------------------------------------------------------------------------
#: Every write and read waits this long for its reply; then the box counts as not answering.
ACK_TIMEOUT_S = 0.2
#: Sync: a lone ``00`` every 100 ms, at most 12 times (the longest packet is 11-12 bytes).
SYNC_TRIES = 12
SYNC_TRY_S = 0.1
#: Session keys whose stale sync bytes would act on the box: the firmware takes a byte's high
#: nibble + 1 as its packet's length (et312-firmware.md section 9), so a lone 01..0F acts (0E
#: the link-slave handshake, 09..0D / 0F reload $41F0.. from flash: the power level back to
#: Normal) and a pair ``1x 1x`` has a valid checksum. A later sync sent in plain to a box that
#: kept such a key, or under it to a power-cycled box, would act; so acustim asks for a new key
#: (at most ``REKEY_TRIES`` times) until its key is outside this range.
RISKY_KEYS = range(0x01, 0x20)
REKEY_TRIES = 8
#: The main loop runs a box command 0..8.2 ms after it is written (PROTO: wait 18 ms); then
#: $4070 / $4071 read 0xFF. Connect waits this long after ``04 12``, then reads both until they
#: are 0xFF (every ``BOX_COMMAND_RETRY_S``, at most ``BOX_COMMAND_TRIES`` times), so the new
#: mode's reload of its defaults (intensity 0xFF) is over before it writes the limits.
BOX_COMMAND_WAIT_S = 0.025
BOX_COMMAND_RETRY_S = 0.02
BOX_COMMAND_TRIES = 10
COMMAND_DONE = 0xFF
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


def frequency_value(frequency_hz: float, width: int = WIDTH_VALUE_RANGE[0]) -> int:
    """Pulse rate to the frequency register F, for a width register ``width``.

    The firmware's period is ``PHASES x W + 256 x (F + 1)`` us (plus a stretch of its power
    limiter at high width x level, which only lowers the rate); F is the nearest integer, 9..255.
    """
    low, high = FREQUENCY_VALUE_RANGE
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        return high  # the slowest rate
    value = round((1e6 / frequency_hz - PHASES * max(50, width)) / 256 - 1)
    return min(high, max(low, value))


def pulse_rate_hz(frequency: int, width: int) -> float:
    """What the box delivers for the frequency and width registers (power limiter idle)."""
    return 1e6 / (PHASES * max(50, width) + 256 * (max(9, frequency) + 1))


def width_value(pulse_width_us: float) -> int:
    """Pulse width (of each phase) to the width register: us, 64..196."""
    low, high = WIDTH_VALUE_RANGE
    if not math.isfinite(pulse_width_us):
        return low
    return min(high, max(low, round(pulse_width_us)))


def intensity_value(output_du: float) -> int:
    """Output in device units (vetted level x program intensity) to the intensity register.

    The register is a linear factor, 0..255 (the box drives ``knob x value / 256``), so this is
    the output rounded down; the 1e-9 only absorbs binary rounding (``100 x 0.29``)."""
    if not (math.isfinite(output_du) and output_du > 0):
        return INTENSITY_OFF
    return min(LEVEL_MAX_DU, math.floor(output_du + 1e-9))


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


REGISTER_NAMES: dict[int, str] = {
    SYSTEM_FLAGS: "system flags",
    KNOB["A"]: "level pot A",
    KNOB["B"]: "level pot B",
    MODE: "mode",
    BOX_COMMAND: "box command",
    BOX_COMMAND + 1: "box command 2",
    NEXT_MODULE_FLAG: "next-module flag A",
    NEXT_MODULE_FLAG + 0x100: "next-module flag B",
    **{
        register(base, c): f"{name} {c}"
        for c in CHANNELS
        for base, name in (
            (INTENSITY, "intensity"),
            (INTENSITY_SELECT, "intensity select"),
            (FREQUENCY, "frequency"),
            (FREQUENCY_SELECT, "frequency select"),
            (WIDTH, "width"),
            (WIDTH_SELECT, "width select"),
        )
    },
}


def register_name(address: int) -> str:
    """``intensity A ($40A5)``: a register as error messages name it."""
    name = REGISTER_NAMES.get(address)
    return f"{name} (${address:04X})" if name else f"${address:04X}"


@dataclass(frozen=True)
class Check:
    """A register the host reads back: ``value & mask`` must equal ``expected``."""

    address: int
    expected: int
    mask: int = 0xFF

    def holds(self, value: int) -> bool:
        return value & self.mask == self.expected

    def describe(self, value: int) -> str:
        if self.mask == 0xFF:
            return (
                f"{register_name(self.address)} reads 0x{value:02X}, expected 0x{self.expected:02X}"
            )
        return (
            f"{register_name(self.address)} reads 0x{value:02X}, expected bits "
            f"0x{self.mask:02X} = 0x{self.expected:02X}"
        )


def verify_read_back(checks: Iterable[Check], values: Mapping[int, int], stage: str) -> None:
    """Raise ``ProtocolError`` naming every register whose read-back is not what was written."""
    wrong = [c.describe(values[c.address]) for c in checks if not c.holds(values[c.address])]
    if wrong:
        raise ProtocolError(
            f"et312: {stage}, the box does not hold what acustim expects: {'; '.join(wrong)}. "
            "Refusing to start output (switch the box off and on, then connect again)"
        )


class Et312Codec:
    """The box's registers as the host believes them, and the packets that change them.

    Every packet it returns is on-the-wire (encrypted with ``key``). The register image is
    updated when a packet is made; whoever sends it calls ``forget()`` if it is not
    acknowledged, so the next frame writes every register again.

    Connect is ``adc_off_writes`` (then ``pots_zero_checks``), ``mode_writes`` (then wait until
    ``mode_done_checks`` hold), ``limit_writes`` (then ``limit_checks``), ``adc_on_writes``
    (then ``adc_on_checks``). Nothing in it raises output: the pots are 0 from the first step to
    the last, and the intensity is 0 before they follow the knobs again.
    """

    def __init__(self, ceilings_du: Mapping[str, int] | None = None) -> None:
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

    # --- connect, in this order ---------------------------------------------------------------
    def adc_off_writes(self, flags: int) -> list[bytes]:
        """Step 1: stop reading the front pots (``flags`` is $400F as just read; bit 0 set), then
        pots A and B = 0. From here on the drive is 0 whatever the intensity register holds."""
        out = self._set(SYSTEM_FLAGS, _byte(flags, "system flags") | ADC_DISABLE, force=True)
        for c in CHANNELS:
            out += self._set(KNOB[c], POT_ZERO, force=True)
        return out

    def pots_zero_checks(self) -> list[Check]:
        """After step 1, before the mode reload: the pots are disabled and read 0."""
        return [
            Check(SYSTEM_FLAGS, ADC_DISABLE, ADC_DISABLE),
            *(Check(KNOB[c], POT_ZERO) for c in CHANNELS),
        ]

    def mode_writes(self, mode: int = MODE_WAVES) -> list[bytes]:
        """Step 2: the mode, then box commands ``04 12`` (exit menu + new mode) in one write.

        The new mode reloads its defaults (intensity 0xFF, selects that move the values), so
        the image forgets the channel registers. Then wait until ``mode_done_checks`` hold."""
        out = self._set(MODE, _byte(mode, "mode"), force=True)
        for c in CHANNELS:
            for base in (INTENSITY, FREQUENCY, WIDTH, NEXT_MODULE_FLAG, *SELECTS):
                self.registers.pop(register(base, c), None)
        return [*out, self.wire(box_command_packet(EXIT_MENU, NEW_MODE))]

    def mode_done_checks(self) -> list[Check]:
        """After step 2: both box command registers read 0xFF, the commands have run."""
        return [Check(BOX_COMMAND, COMMAND_DONE), Check(BOX_COMMAND + 1, COMMAND_DONE)]

    def limit_writes(self) -> list[bytes]:
        """Step 3, per channel A then B: the three selects static and the next-module timer off
        (so nothing moves or reloads the values any more), intensity 0, then the slowest
        frequency and the narrowest width."""
        out: list[bytes] = []
        for c in CHANNELS:
            for select in SELECTS:
                out += self._set(register(select, c), STATIC_SELECT, force=True)
            out += self._set(register(NEXT_MODULE_FLAG, c), 0, force=True)
            out += self._set(register(INTENSITY, c), INTENSITY_OFF, force=True)
            out += self._set(register(FREQUENCY, c), CONNECT_FREQUENCY, force=True)
            out += self._set(register(WIDTH, c), CONNECT_WIDTH, force=True)
        return out

    def limit_checks(self) -> list[Check]:
        """Step 4: intensity A and B are 0, every select static, the next-module timers off, and
        the pots still 0 and disabled (so nothing reloaded the mode behind our back)."""
        return [
            *(Check(register(INTENSITY, c), INTENSITY_OFF) for c in CHANNELS),
            *(Check(register(s, c), STATIC_SELECT) for c in CHANNELS for s in SELECTS),
            *(Check(register(NEXT_MODULE_FLAG, c), 0) for c in CHANNELS),
            *self.pots_zero_checks(),
        ]

    def adc_on_writes(self, flags: int) -> list[bytes]:
        """Step 5: the pots follow the knobs again (``flags`` is $400F as just read; bit 0
        cleared). The drive is then ``knob x 0 / 256 = 0``."""
        out = self._set(
            SYSTEM_FLAGS, _byte(flags, "system flags") & ~ADC_DISABLE & 0xFF, force=True
        )
        for c in CHANNELS:
            self.registers.pop(KNOB[c], None)  # the knobs', from now on
        return out

    def adc_on_checks(self) -> list[Check]:
        return [Check(SYSTEM_FLAGS, 0, ADC_DISABLE)]

    # --- output -------------------------------------------------------------------------------
    def zero_writes(self) -> list[bytes]:
        """Zero / emergency stop: intensity 0 on channel A, then B. Always both, whatever the
        image says: the box keeps running, so zero must never be skipped."""
        out: list[bytes] = []
        for c in CHANNELS:
            out += self._set(register(INTENSITY, c), INTENSITY_OFF, force=True)
        return out

    def frame_writes(self, frame: VettedFrame) -> list[bytes]:
        """The writes that make the box deliver ``frame``: only the registers that change.

        Order: intensity falls, then frequency and width, then intensity rises, so output never
        rises before its pulse settings are in place.
        """
        frame = require_vetted(frame)
        if frame.zero:
            return self.zero_writes()
        falls: list[bytes] = []
        settings: list[bytes] = []
        rises: list[bytes] = []
        for c in CHANNELS:
            value, frequency, width = self._targets(c, _channel(frame, c))
            address = register(INTENSITY, c)
            known = self.registers.get(address)
            if value > INTENSITY_OFF:
                settings += self._set(register(FREQUENCY, c), frequency)
                settings += self._set(register(WIDTH, c), width)
            if value > (INTENSITY_OFF if known is None else known):
                rises += self._set(address, value)
            else:
                falls += self._set(address, value)
        return falls + settings + rises

    def _targets(self, name: str, ch: VettedChannel | None) -> tuple[int, int, int]:
        if ch is None or ch.level_du <= 0 or not ch.intensity:
            return INTENSITY_OFF, 0, 0
        level = min(ch.level_du, self.ceilings_du.get(name, 0))
        k = max(range(len(ch.intensity)), key=ch.intensity.__getitem__)
        intensity = min(1.0, ch.intensity[k])
        value = intensity_value(level * intensity)
        width = width_value(ch.pulse_width_us[k])
        return value, frequency_value(ch.frequency_hz[k], width), width


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
    ride after an output frame's writes when they are due, so they never delay a frame's own
    writes, and never follow a zero frame.
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
            await self._write_limits(mode)
        now = asyncio.get_running_loop().time()
        self._next_knob_s = now
        self._next_battery_s = now + BATTERY_POLL_S
        self._ready = True

    async def _write_limits(self, mode: int) -> None:
        """Limits before output, in the order of docs/devices/et312.md; none of it raises output.

        1. pots disabled and 0 (checked): drive 0 whatever the intensity register holds;
        2. mode + ``04 12``, then wait until both have run: the defaults reload (intensity
           0xFF) while the pots are 0;
        3. static selects, intensity 0, the slowest pulse; 4. all of it read back;
        5. the pots follow the knobs again: drive = knob x 0 / 256 = 0.
        """
        codec = self.codec
        await self._write_all(codec.adc_off_writes(await self._read(SYSTEM_FLAGS)))
        await self._verify(codec.pots_zero_checks(), "after disabling the front pots")
        await self._write_all(codec.mode_writes(mode))
        await self._wait_for_box_commands()
        await self._write_all(codec.limit_writes())
        await self._verify(codec.limit_checks(), "after writing the limits")
        await self._write_all(codec.adc_on_writes(await self._read(SYSTEM_FLAGS)))
        await self._verify(codec.adc_on_checks(), "after enabling the front pots")

    async def _verify(self, checks: list[Check], stage: str) -> None:
        values = {c.address: await self._read(c.address) for c in checks}
        verify_read_back(checks, values, stage)

    async def _wait_for_box_commands(self) -> None:
        """Until the main loop has run ``04 12`` (both command registers read 0xFF again)."""
        checks = self.codec.mode_done_checks()
        await asyncio.sleep(BOX_COMMAND_WAIT_S)
        for _ in range(BOX_COMMAND_TRIES - 1):
            values = {c.address: await self._read(c.address) for c in checks}
            if all(c.holds(values[c.address]) for c in checks):
                return
            await asyncio.sleep(BOX_COMMAND_RETRY_S)
        await self._verify(checks, "waiting for the new mode to run")

    async def _handshake(self) -> None:
        """Sync (in plain, or under acustim's last key), then the key exchange."""
        self.codec.key = 0
        self.codec.parser.reset()
        self._drain()
        key = await self._find_key()
        if key is None:
            raise DeviceTimeout(
                f"et312: no answer to the sync byte on {self.transport.url or 'the port'}, in "
                "plain or under acustim's last key; check the cable, 19200 baud and that the "
                "box is switched on. If another program drove the box, it may have left its "
                "key: switch the box off and on, then connect again"
            )
        self.codec.key = key
        if key != 0:
            await self._write(self.codec.key_reset())
            self.codec.key = 0
        for _ in range(REKEY_TRIES):
            reply = await self._request(self.codec.wire(key_exchange_packet(0)), "the key exchange")
            if not isinstance(reply, KeyReply):
                raise ProtocolError(f"et312: expected a key reply (21 bk cs), got {_name(reply)}")
            self.codec.key = session_key(reply.box_key, 0)
            self._last_key = self.codec.key
            if self.codec.key not in RISKY_KEYS:
                break

    async def _find_key(self) -> int | None:
        """The key the box holds: 0 after a clean close or a power cycle, or acustim's last
        session key after a lost link; None if neither answers.

        A lone sync byte ``00`` (encrypted under the key tried) until ``07`` (12 tries), as the
        reference says. A ``07`` may be the NACK of a half-received packet, so it counts only if
        one more lone sync byte is answered at once (from an idle box, only a real sync is). The
        firmware answers ``07`` to a lone byte 00..05 (et312-firmware.md section 9), so a key
        off by 1..5 answers the sync too: a key counts only once a read of the model under it
        gets a read reply.

        No other key is tried: under the firmware's framing, bytes sent under a wrong key act
        on the box (``RISKY_KEYS``), and a sweep through all 255 would send every one of them
        to a box that may be running. A key left by another program needs a power cycle.
        """
        tried = [0] if not self._last_key else [0, self._last_key]
        for key in tried:
            if await self._sync(key) and await self._confirm_key(key):
                return key
        return None

    async def _sync(self, key: int) -> bool:
        """Lone sync bytes under ``key`` until the box answers one at once, twice in a row."""
        byte = encrypt(sync_packet(), key)
        replied, quiet = False, 0
        for _ in range(SYNC_TRIES):
            first = await self._exchange(byte, 1, self.sync_try_s)
            if first and isinstance(first[0], Nack):
                again = await self._exchange(byte, 1, self.sync_try_s)
                if again and isinstance(again[0], Nack):
                    return True
                first = again
            replied = replied or bool(first)
            quiet = 0 if first else quiet + 1
        if replied and quiet:  # the box is inside a packet: complete it so it is idle again
            await self._settle(byte[0])
        return False

    async def _confirm_key(self, key: int) -> bool:
        """Under ``key``, a read of the model gets a read reply; leaves the box idle."""
        replies = await self._exchange(encrypt(read_packet(MODEL), key), 1, self.sync_try_s)
        if replies and isinstance(replies[0], ReadReply):
            return True
        if not replies:  # the garbled read started a longer packet: complete it
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
            # each write on its own: a lost write to A must not stop B's from going out
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
