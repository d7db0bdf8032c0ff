"""ET-312 wire format: packet and reply codes, the memory map, packets, checksum, XOR, parse.

Facts: ``../shared/reference/devices.md`` section 3 (packets, checksum, XOR key, addresses,
test vectors).

- Host packets end in a checksum (the 8-bit sum of the bytes before it). After the key exchange
  every host byte, checksum included, is XORed with ``K = swapNibbles(hk) ^ bk ^ 0x55``; with
  host key 0 that is ``bk ^ 0x55``. Box replies are never encrypted.
- Replies: ``06`` ACK, ``07`` NACK (also the answer to a sync ``00``), ``22 value cs`` to a read,
  ``21 bk cs`` to the key exchange.

Pure functions and frozen values (and the reply parser's buffer). This module never touches a
transport, never holds the session key or a register image (``codec.py`` does), and never
chooses a register's value.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.errors import ProtocolError

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


def register(base: int, channel: str) -> int:
    """A per-channel register address: channel B is channel A + 0x100."""
    return base + CHANNEL_OFFSET[channel]


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
    checked_byte(box_key, "box key")
    checked_byte(host_key, "host key")
    return swap_nibbles(host_key) ^ box_key ^ 0x55


def encrypt(packet: bytes, key: int) -> bytes:
    """XOR every byte (command, address, data and checksum) with the session key."""
    checked_byte(key, "key")
    return bytes(b ^ key for b in packet)


def decrypt(packet: bytes, key: int) -> bytes:
    """The inverse of ``encrypt`` (XOR is its own inverse)."""
    return encrypt(packet, key)


def sync_packet() -> bytes:
    """The sync byte (plain; ``encrypt`` it once a key is in force)."""
    return bytes([SYNC])


def key_exchange_packet(host_key: int = 0) -> bytes:
    """``2F hk cs``; always sent unencrypted."""
    return _with_checksum(bytes([KEY_EXCHANGE, checked_byte(host_key, "host key")]))


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
    return write_packet(BOX_COMMAND, bytes(checked_byte(c, "box command") for c in commands))


def parse_read_reply(data: bytes) -> int:
    """The value in a ``22 value cs`` reply."""
    return _parse_three(data, READ_REPLY, "read reply")


def parse_key_reply(data: bytes) -> int:
    """The box key in a ``21 bk cs`` reply."""
    return _parse_three(data, KEY_REPLY, "key reply")


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


def checked_byte(value: int, name: str) -> int:
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
