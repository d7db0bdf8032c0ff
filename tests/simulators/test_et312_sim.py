"""The ET-312B / MK-312BT firmware emulator against ../shared/reference/devices.md section 3
(the byte protocol) and docs/devices/et312-firmware.md (what the v1.6 firmware does, § below).

Every test vector of the document is fed in as its literal bytes. Other packets are built here
by hand from the documented framing (head, address, data, 8-bit sum; XOR with
K = swapNibbles(hk) ^ bk ^ 0x55), never with the host codec. Expected outputs are computed here
from the firmware formulas, not read back from the simulator.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.clock import VirtualClock
from simulators.et312 import BOOT_S, BOX_COMMAND_DELAY_S, Et312Simulator
from simulators.record import DeliveredInterval

ACK, NACK_OR_SYNC = b"\x06", b"\x07"
MODE, MENU_SEL, CMD, CMD2, FLAGS, ADC_FLAGS = 0x407B, 0x4078, 0x4070, 0x4071, 0x4083, 0x400F
KEY_ADDR, BATTERY, MENU_STATE, LEVEL_A, LEVEL_B = 0x4213, 0x4203, 0x406D, 0x4064, 0x4065
POWER_LEVEL, MA_VALUE, MA_LOW, MA_HIGH, GATE = 0x41F4, 0x420D, 0x4086, 0x4087, 0x4090
GATE_ON, GATE_OFF, GATE_SELECT = 0x4098, 0x4099, 0x409A
RAMP, INTENSITY, FREQUENCY, WIDTH = 0x409C, 0x40A5, 0x40AE, 0x40B7
SELECT = 7  # the select byte sits 7 above its value register
B = 0x100  # channel B = channel A + 0x100
BOX_KEY = 0xEF  # the document's vectors use box key 0xEF
TICK_S = 256 * 64 / 8e6  # one main-loop tick: Timer0 at clk/64 on 8 MHz (§1)
PASS_S = 2 * TICK_S  # the modulation pass, 244 Hz
POLL_S = 4 * TICK_S  # box commands are polled every 8.192 ms


# -- packets built from the document's framing -------------------------------------------------


def checksum(data: bytes) -> int:
    return sum(data) % 256


def swap_nibbles(value: int) -> int:
    return ((value & 0x0F) << 4) | (value >> 4)


def session_key(host_key: int, box_key: int) -> int:
    return swap_nibbles(host_key) ^ box_key ^ 0x55


def seal(body: bytes) -> bytes:
    return body + bytes([checksum(body)])


def read_packet(address: int) -> bytes:
    return seal(bytes([0x3C, address >> 8, address & 0xFF]))


def write_packet(address: int, data: bytes) -> bytes:
    return seal(bytes([((3 + len(data)) << 4) | 0x0D, address >> 8, address & 0xFF, *data]))


def xor(data: bytes, key: int) -> bytes:
    return bytes(b ^ key for b in data)


# -- the firmware's formulas (§2, §3), written out here ----------------------------------------


def expected_strength(pot: int, intensity: int, ramp: int = 255, power: int = 2) -> int:
    """The record's strength: pot // (5 - P) x ramp x intensity, Normal = 1:1 with the pot."""
    return pot * ramp * 3 // ((5 - power) * 255) * intensity // 256


def expected_hz(f_reg: int, w_reg: int, phases: int = 2, limiter: int = 0) -> float:
    width = max(50, w_reg)
    return 1e6 / (phases * width + 256 * (max(9, f_reg) + 1 + limiter))


def next_pass_after(t_s: float) -> float:
    """The first modulation pass (odd tick) strictly after ``t_s``, from power-on at 0."""
    n = math.floor(t_s / TICK_S) + 1
    while n * TICK_S <= t_s:
        n += 1
    return (n if n % 2 else n + 1) * TICK_S


@dataclass
class Rig:
    clock: VirtualClock
    sim: Et312Simulator
    replies: list[bytes] = field(default_factory=list)
    k: int = 0
    """The key as the test host computed it from the box's reply."""

    def take(self) -> bytes:
        out = b"".join(self.replies)
        self.replies.clear()
        return out

    def raw(self, data: bytes) -> bytes:
        self.sim.feed(data)
        return self.take()

    def send(self, plain: bytes) -> bytes:
        return self.raw(xor(plain, self.k))

    def handshake(self, host_key: int = 0) -> int:
        assert self.send(b"\x00") == NACK_OR_SYNC
        reply = self.send(seal(bytes([0x2F, host_key])))
        assert reply[0] == 0x21 and len(reply) == 3 and reply[2] == checksum(reply[:2])
        self.k = session_key(host_key, reply[1])
        return reply[1]

    def write(self, address: int, *data: int) -> None:
        assert self.send(write_packet(address, bytes(data))) == ACK

    def read(self, address: int) -> int:
        reply = self.send(read_packet(address))
        assert len(reply) == 3 and reply[0] == 0x22 and reply[2] == checksum(reply[:2])
        return reply[1]

    def wait(self, dt_s: float) -> None:
        self.clock.advance(dt_s)
        self.sim.advance_to(self.clock.now_s())

    def command(self, *commands: int) -> None:
        """Write box command(s) to $4070 (and $4071) and wait until they have run."""
        self.write(CMD, *commands)
        self.wait(BOX_COMMAND_DELAY_S)

    def run_mode(self, mode: int = 0x76) -> None:
        self.write(MODE, mode)
        self.command(0x04, 0x12)

    def make_static(self) -> None:
        """Select bytes 0 on both channels: the host's values are used as written."""
        for base in (0, B):
            for register in (INTENSITY, FREQUENCY, WIDTH):
                self.write(register + base + SELECT, 0)

    def output(self, channel: str = "A") -> DeliveredInterval | None:
        """What the channel delivers now (just before the clock's time); None for nothing."""
        interval = self.sim.record.interval_at(channel, self.clock.now_s() - 1e-9)
        if interval is None or interval.output_du == 0.0:
            return None
        return interval


def make_rig(box_key: int | None = BOX_KEY, **kwargs: int) -> Rig:
    clock = VirtualClock()
    rig = Rig(clock, Et312Simulator(clock, box_key=box_key, **kwargs))
    rig.sim.set_output(rig.replies.append)
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def waves_rig(**kwargs: int) -> Rig:
    """A box on which a front-panel key started the favourite mode (Waves, 0x76)."""
    rig = make_rig(**kwargs)
    rig.sim.press_any_key()
    return rig


def running_rig(
    intensity: int = 0xC0, freq: int = 22, width: int = 130, settle_s: float = 3.5, **kwargs: int
) -> Rig:
    """Keyed, Waves started by the host, then static selects and the values written; the
    ramp has finished after ``settle_s``."""
    rig = make_rig(**kwargs)
    rig.handshake()
    rig.run_mode()
    rig.make_static()
    for base in (0, B):
        rig.write(INTENSITY + base, intensity)
        rig.write(FREQUENCY + base, freq)
        rig.write(WIDTH + base, width)
    rig.wait(settle_s)
    return rig


# -- the document's test vectors --------------------------------------------------------------


def test_packet_builders_reproduce_the_documents_plain_vectors() -> None:
    assert read_packet(MODE) == bytes.fromhex("3c407bf7")
    assert write_packet(MODE, b"\x78") == bytes.fromhex("4d407b7880")
    assert write_packet(CMD, b"\x04\x12") == bytes.fromhex("5d4070041223")
    assert write_packet(KEY_ADDR, b"\x00") == bytes.fromhex("4d421300a2")
    assert write_packet(INTENSITY, b"\xff") == bytes.fromhex("4d40a5ff31")
    assert xor(bytes.fromhex("3c407bf7"), 0xBA) == bytes.fromhex("86fac14d")
    assert xor(bytes.fromhex("4d407b7880"), 0xBA) == bytes.fromhex("f7fac1c23a")
    assert xor(bytes.fromhex("4d421300a2"), 0xBA) == bytes.fromhex("f7f8a9ba18")


def test_key_exchange_docs_example_host_key_4_gives_k_0xfa(rig: Rig) -> None:
    assert rig.raw(bytes.fromhex("2f0433")) == bytes.fromhex("21ef10")
    assert rig.sim.key == 0xFA == session_key(4, 0xEF)
    assert rig.sim.peek(KEY_ADDR) == 0xFA


def test_key_exchange_with_host_key_0_gives_k_0xba(rig: Rig) -> None:
    assert rig.raw(bytes.fromhex("2f002f")) == bytes.fromhex("21ef10")
    assert rig.sim.key == 0xBA


def test_plain_read_of_the_mode_before_the_key_exchange() -> None:
    rig = waves_rig()
    assert rig.raw(bytes.fromhex("3c407bf7")) == bytes.fromhex("227698")


def test_encrypted_read_of_the_mode_with_k_0xba() -> None:
    rig = waves_rig()
    rig.raw(bytes.fromhex("2f002f"))
    assert rig.raw(bytes.fromhex("86fac14d")) == bytes.fromhex("227698")


def test_encrypted_write_of_mode_0x78(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    assert rig.raw(bytes.fromhex("f7fac1c23a")) == ACK
    assert rig.sim.peek(MODE) == 0x78


def test_key_reset_vector_clears_the_key_and_later_bytes_are_plain() -> None:
    rig = waves_rig()
    rig.raw(bytes.fromhex("2f002f"))
    assert rig.raw(bytes.fromhex("f7f8a9ba18")) == ACK
    assert rig.sim.key == 0
    assert rig.raw(bytes.fromhex("3c407bf7")) == bytes.fromhex("227698")
    assert rig.raw(b"\x00") == NACK_OR_SYNC


def test_exit_menu_new_mode_vector_starts_the_mode(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    rig.k = 0xBA
    rig.write(MODE, 0x76)
    assert rig.send(bytes.fromhex("5d4070041223")) == ACK
    rig.wait(BOX_COMMAND_DELAY_S)
    assert rig.sim.peek(MENU_STATE) == 0x02
    assert rig.sim.peek(MENU_SEL) == rig.sim.peek(MODE) == 0x76


def test_intensity_write_vector_sets_channel_a_intensity(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    rig.k = 0xBA
    assert rig.send(bytes.fromhex("4d40a5ff31")) == ACK
    assert rig.sim.peek(INTENSITY) == 0xFF


# -- framing (§9) -----------------------------------------------------------------------------


def test_sync_byte_is_answered_07_before_and_after_the_key_exchange(rig: Rig) -> None:
    assert rig.raw(b"\x00") == NACK_OR_SYNC
    rig.handshake()
    assert rig.send(b"\x00") == NACK_OR_SYNC
    # A plain 00 now decrypts to 0xBA: the head of a 12-byte packet, so no reply yet.
    assert rig.raw(b"\x00") == b""


def test_key_exchange_and_replies_are_never_encrypted() -> None:
    rig = waves_rig()
    rig.handshake(host_key=0x37)
    assert rig.k == session_key(0x37, BOX_KEY)
    assert rig.read(MODE) == 0x76  # reply 22 76 98 arrives in the clear


@pytest.mark.parametrize("count", range(1, 9))
def test_writes_of_1_to_8_bytes_are_acked_and_stored(rig: Rig, count: int) -> None:
    rig.handshake()
    data = bytes(range(0x31, 0x31 + count))
    packet = write_packet(0x4300, data)
    assert packet[0] == ((3 + count) << 4) | 0x0D and len(packet) == count + 4
    assert rig.send(packet) == ACK
    assert [rig.sim.peek(0x4300 + i) for i in range(count)] == list(data)


def test_writes_before_the_key_exchange_are_nacked_and_not_done(rig: Rig) -> None:
    """§9: the firmware answers 07 to a write while the key is 0 (0x1946..0x1956)."""
    assert rig.raw(write_packet(MODE, b"\x78")) == NACK_OR_SYNC
    assert rig.sim.peek(MODE) == 0x00
    assert rig.sim.record.events_of("write_refused")
    assert rig.raw(b"\x00") == NACK_OR_SYNC  # the whole packet was consumed


def test_writes_to_low_address_04_or_0a_are_taken_without_a_key(rig: Rig) -> None:
    """§9: the slave-link register copies ($xx04, $xx0A) may be written unkeyed."""
    assert rig.raw(write_packet(0x4304, b"\x5a")) == ACK
    assert rig.raw(write_packet(0x430A, b"\x5b")) == ACK
    assert (rig.sim.peek(0x4304), rig.sim.peek(0x430A)) == (0x5A, 0x5B)


@pytest.mark.parametrize("low", range(0x0, 0x6))
def test_single_bytes_with_low_nibble_0_to_5_are_answered_07(rig: Rig, low: int) -> None:
    assert rig.raw(bytes([low])) == NACK_OR_SYNC


@pytest.mark.parametrize("byte", [0x06, 0x07, 0x08])
def test_single_bytes_06_to_08_get_no_reply(rig: Rig, byte: int) -> None:
    assert rig.raw(bytes([byte])) == b""
    assert rig.raw(b"\x00") == NACK_OR_SYNC  # nothing half-received


@pytest.mark.parametrize("byte", [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0F])
def test_single_bytes_09_to_0f_reload_the_settings_from_flash(rig: Rig, byte: int) -> None:
    rig.handshake()
    rig.write(POWER_LEVEL, 3)
    assert rig.send(bytes([byte])) == b""
    assert rig.sim.peek(POWER_LEVEL) == 2  # back to the flash default, Normal


def test_single_0e_is_the_link_slave_handshake(rig: Rig) -> None:
    assert rig.raw(b"\x0e") == b"\x05"
    assert rig.sim.record.events_of("link_slave")


@pytest.mark.parametrize("head", [0x1D, 0x21, 0x55, 0x6A, 0x9E, 0xB1])
def test_the_high_nibble_sets_the_packet_length(rig: Rig, head: int) -> None:
    """§9: any head starts a packet of high nibble + 1 bytes; unknown ones are NACKed then."""
    length = (head >> 4) + 1
    body = bytes([head, *range(1, length - 1)])
    packet = seal(body)
    assert rig.raw(packet[:-1]) == b""
    assert rig.raw(packet[-1:]) == NACK_OR_SYNC  # unknown, or (0x1D) a write without a key
    assert rig.raw(read_packet(0x00FC)) == bytes([0x22, 0x0C, 0x2E])


def test_a_head_longer_than_the_buffer_is_nacked_at_its_13th_byte(rig: Rig) -> None:
    assert rig.raw(bytes([0xFD]) + bytes(11)) == b""
    assert rig.raw(b"\x00") == NACK_OR_SYNC
    assert rig.raw(b"\x00") == NACK_OR_SYNC  # a fresh sync again


@pytest.mark.parametrize(
    "plain",
    [read_packet(MODE), write_packet(MODE, b"\x78"), write_packet(0x4300, b"\x11" * 8)],
)
def test_corrupted_checksum_is_nacked_and_not_executed(rig: Rig, plain: bytes) -> None:
    rig.handshake()
    bad = plain[:-1] + bytes([(plain[-1] + 1) % 256])
    assert rig.send(bad) == NACK_OR_SYNC
    assert rig.sim.peek(MODE) == 0x00 and rig.sim.peek(0x4300) == 0
    assert rig.sim.record.events_of("nack")
    assert rig.read(MODE) == 0x00


def test_corrupted_key_exchange_is_nacked_and_sets_no_key(rig: Rig) -> None:
    assert rig.raw(bytes.fromhex("2f0030")) == NACK_OR_SYNC
    assert rig.sim.key == 0


def test_sync_inside_a_packet_is_packet_data(rig: Rig) -> None:
    """A half packet swallows syncs until it is complete, hence the host's 12 tries."""
    assert rig.raw(b"\x3c\x40") == b""
    assert rig.raw(b"\x00") == b""
    assert rig.raw(b"\x00") == NACK_OR_SYNC  # 3c 40 00 with checksum 00: NACK
    assert rig.raw(b"\x00") == NACK_OR_SYNC  # now a real sync


def test_split_delivery_gives_the_same_replies_one_byte_at_a_time() -> None:
    packets = [
        b"\x00",
        bytes.fromhex("2f002f"),
        bytes.fromhex("86fac14d"),
        bytes.fromhex("f7fac1c23a"),
        xor(read_packet(MODE), 0xBA),
        xor(write_packet(0x4300, bytes(range(8))), 0xBA),
        xor(read_packet(0x4307), 0xBA),
        bytes.fromhex("f7f8a9ba18"),
        read_packet(0x00FC),
    ]
    whole, bytewise, stream = waves_rig(), waves_rig(), waves_rig()
    per_packet = [whole.raw(p) for p in packets]
    per_byte = [b"".join(bytewise.raw(bytes([b])) for b in p) for p in packets]
    assert per_packet == per_byte
    assert per_packet == [
        b"\x07",
        bytes.fromhex("21ef10"),
        bytes.fromhex("227698"),
        ACK,
        bytes.fromhex("22789a"),
        ACK,
        bytes([0x22, 7, 0x29]),
        ACK,
        bytes([0x22, 0x0C, 0x2E]),
    ]
    assert stream.raw(b"".join(packets)) == b"".join(per_packet)


# -- key lifetime -----------------------------------------------------------------------------


def test_key_survives_disconnect_and_a_plain_sync_is_swallowed(rig: Rig) -> None:
    """A new host's plain 00s decrypt to 0xBA, a 12-byte packet head: the box answers only
    the 12th, with 07 for its bad checksum. So a lone 07 proves nothing about the key."""
    rig.handshake()
    rig.sim.disconnect()
    assert rig.sim.key == 0xBA
    replies = [rig.raw(b"\x00") for _ in range(12)]
    assert replies == [b""] * 11 + [NACK_OR_SYNC]
    assert rig.raw(bytes([0x00 ^ 0xBA])) == NACK_OR_SYNC  # a sync under the old key
    assert rig.read(MODE) == 0x00


def test_key_exchange_under_the_old_key_replaces_it() -> None:
    """§9: a key exchange is taken while keyed (it must be sent under the old key)."""
    rig = make_rig(box_key=0x12)
    rig.handshake()
    assert rig.k == 0x12 ^ 0x55
    reply = rig.send(seal(bytes([0x2F, 0x40])))
    assert reply == bytes([0x21, 0x12, 0x33])
    assert rig.sim.record.events_of("key_exchange")[-1][2].endswith("(replaces the old key)")
    rig.k = session_key(0x40, 0x12)
    assert rig.sim.key == rig.k == 0x04 ^ 0x12 ^ 0x55
    assert rig.read(0x00FC) == 0x0C


def test_the_key_is_never_zero() -> None:
    """With host key swap(0xEF ^ 0x55) the key would be 0: the box draws another box key."""
    host_key = swap_nibbles(BOX_KEY ^ 0x55)
    rig = make_rig(seed=1)
    reply = rig.raw(seal(bytes([0x2F, host_key])))
    assert reply[0] == 0x21 and reply[1] != BOX_KEY
    assert rig.sim.key == session_key(host_key, reply[1]) != 0


def test_stale_key_recovery_then_reset_then_fresh_exchange() -> None:
    rig = make_rig(seed=7, box_key=0x12)
    rig.handshake()
    old_k = rig.k
    rig.sim.disconnect()
    assert old_k == 0x12 ^ 0x55
    assert rig.send(b"\x00") == NACK_OR_SYNC  # the new host guessed the old key
    rig.write(KEY_ADDR, 0)
    rig.k = 0
    assert rig.sim.key == 0
    rig.handshake()
    assert rig.sim.key == rig.k == session_key(0, 0x12)


def test_byte_that_decrypts_to_a_read_head_gives_a_nack() -> None:
    """With K = 0x3C a plain 00 decrypts to a read head; three more 00s complete
    `3c 3c 3c 3c`, whose checksum is wrong, so the box NACKs with 07."""
    rig = make_rig(box_key=0x3C ^ 0x55)
    rig.handshake()
    assert rig.sim.key == 0x3C
    assert [rig.raw(b"\x00") for _ in range(4)] == [b"", b"", b"", NACK_OR_SYNC]


def test_power_cycle_loses_the_key_resets_ram_and_is_deaf_while_booting(rig: Rig) -> None:
    rig.handshake()
    rig.write(MODE, 0x80)
    rig.write(0x8010, 0x5A)  # EEPROM
    rig.sim.power_cycle()
    assert rig.sim.key == 0
    assert rig.sim.peek(MODE) == 0x00
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.sim.peek(0x8010) == 0x5A  # EEPROM is not RAM
    assert rig.raw(b"\x00") == b""  # the self-test screens: serial is not read
    assert rig.sim.record.events_of("bytes_lost")
    rig.wait(BOOT_S)
    rig.k = 0
    rig.handshake()
    rig.write(MODE, 0x78)


def test_reset_packet_reboots_the_box(rig: Rig) -> None:
    rig.handshake()
    assert rig.send(seal(bytes([0x28, 0xAA]))) == b""
    assert rig.sim.key == 0 and rig.sim.record.events_of("reset")
    assert rig.send(seal(bytes([0x28, 0xAB]))) == b""  # still booting
    rig.wait(BOOT_S)
    rig.k = 0
    assert rig.send(seal(bytes([0x28, 0xAB]))) == NACK_OR_SYNC


def test_seeded_box_keys_repeat_and_box_key_overrides() -> None:
    first, second = make_rig(seed=42, box_key=None), make_rig(seed=42, box_key=None)
    assert first.handshake() == second.handshake()
    assert make_rig(box_key=0x33).handshake() == 0x33


# -- memory map -------------------------------------------------------------------------------


def test_model_and_firmware_version_in_the_flash_window(rig: Rig) -> None:
    assert [rig.read(a) for a in (0x00FC, 0x00FD, 0x00FE, 0x00FF)] == [0x0C, 0x01, 0x06, 0x00]
    assert bytes(rig.read(a) for a in range(8)) == b" User 2 "  # flash 0x1F00 on


def test_flash_window_writes_are_nacked(rig: Rig) -> None:
    rig.handshake()
    assert rig.send(write_packet(0x00FC, b"\x99")) == NACK_OR_SYNC
    assert rig.send(write_packet(0xC010, b"\x99")) == NACK_OR_SYNC
    assert rig.read(0x00FC) == 0x0C


def test_reads_and_writes_wrap_inside_each_range(rig: Rig) -> None:
    rig.handshake()
    assert rig.read(0x01FC) == 0x0C  # flash, 256 bytes
    assert rig.read(0x8201) == rig.read(0x8001) == 0x55  # EEPROM, 512 bytes: provisioned
    assert rig.read(0xC001) == 0x55  # $C000.. reads the EEPROM too
    rig.write(0x447B, 0x7A)
    assert rig.sim.peek(MODE) == 0x7A == rig.read(0x447B)
    rig.write(0x8202, 0x44)
    assert rig.sim.peek(0x8002) == 0x44


def test_power_on_settings_come_from_the_eeprom(rig: Rig) -> None:
    """§6: top mode Phase3, power level Normal, split A Stroke, split B Waves, favourite Waves."""
    assert [rig.read(a) for a in range(0x41F3, 0x41F8)] == [0x87, 0x02, 0x77, 0x76, 0x76]
    assert [rig.read(a) for a in range(0x8008, 0x800D)] == [0x87, 0x02, 0x77, 0x76, 0x76]


def test_battery_register(rig: Rig) -> None:
    assert rig.read(BATTERY) == 80
    rig.sim.set_battery(55)
    assert rig.read(BATTERY) == 55
    rig.sim.set_battery(100)
    assert rig.read(BATTERY) == 99
    with pytest.raises(ValueError, match="battery"):
        rig.sim.set_battery(101)


def test_default_knob_positions_are_mid_travel(rig: Rig) -> None:
    assert (rig.read(LEVEL_A), rig.read(LEVEL_B)) == (128, 128)
    assert rig.read(MA_VALUE) == 0x87  # MA knob 127 over the default range 0x0F..0xFF


def test_level_pots_follow_the_knobs_while_the_adc_is_enabled() -> None:
    rig = make_rig(knob_a=100, knob_b=200)
    rig.handshake()
    assert (rig.read(LEVEL_A), rig.read(LEVEL_B)) == (100, 200)
    rig.write(LEVEL_A, 7)  # the next conversion overwrites it
    assert rig.read(LEVEL_A) == 100
    assert rig.sim.record.events_of("level_write_overridden")
    rig.write(ADC_FLAGS, 0x01)  # pots off: the host sets the level
    rig.write(LEVEL_A, 7)
    assert rig.read(LEVEL_A) == 7
    rig.sim.turn_knob("A", 10)
    assert rig.read(LEVEL_A) == 7
    rig.write(ADC_FLAGS, 0x00)  # pots on again: the register re-reads the pot
    assert rig.read(LEVEL_A) == 110


def test_adc_hysteresis_ignores_a_change_of_one_step() -> None:
    """§2: the ADC ISR writes a pot only when it moved by more than 1 (0x109c..0x10b0)."""
    rig = make_rig(knob_a=100)
    rig.sim.turn_knob("A", 1)
    assert rig.sim.peek(LEVEL_A) == 100
    rig.sim.turn_knob("A", 1)
    assert rig.sim.peek(LEVEL_A) == 102


def test_turn_knob_clamps_to_0_255() -> None:
    rig = make_rig(knob_a=250)
    rig.sim.turn_knob("A", 20)
    rig.sim.turn_knob("B", -500)
    assert (rig.sim.peek(LEVEL_A), rig.sim.peek(LEVEL_B)) == (255, 0)
    with pytest.raises(ValueError, match="channel"):
        rig.sim.turn_knob("C", 1)


def test_peek_values_stay_8_bit_over_the_whole_address_space(rig: Rig) -> None:
    assert all(0 <= rig.sim.peek(a) <= 255 for a in range(0x10000))


# -- box commands (§1, §5) --------------------------------------------------------------------


def test_box_commands_run_at_the_next_poll_within_8_ms(rig: Rig) -> None:
    rig.handshake()
    rig.write(MODE, 0x78)
    rig.write(CMD, 0x04, 0x12)
    t0_s = rig.clock.now_s()
    first_poll_s = next(n * TICK_S for n in itertools.count(1) if n % 4 == 2 and n * TICK_S > t0_s)
    assert first_poll_s - t0_s <= POLL_S
    rig.clock.set(first_poll_s - 1e-6)
    assert rig.sim.peek(MENU_STATE) == 0x01 and rig.read(CMD) == 0x04
    rig.clock.set(first_poll_s)
    assert rig.sim.peek(MENU_STATE) == 0x02
    assert rig.read(CMD) == rig.read(CMD2) == 0xFF
    assert rig.read(MODE) == 0x78
    rig.wait(0.1)
    first_on = next(iv for iv in rig.sim.record.intervals("A") if iv.strength_du > 0)
    assert first_on.start_s == pytest.approx(first_poll_s, abs=1e-12)


def test_commands_from_0x28_up_are_never_run_and_stay_in_the_register(rig: Rig) -> None:
    rig.handshake()
    rig.write(CMD, 0x30)
    rig.wait(0.1)
    assert rig.read(CMD) == 0x30
    assert rig.sim.record.events_of("box_command_ignored")


def test_new_mode_copies_the_menu_selection_not_the_mode_register(rig: Rig) -> None:
    """§5: 0x12 runs $4078; 0x04 first copies $407B there."""
    rig.handshake()
    rig.write(MODE, 0x78)
    rig.command(0x12)
    assert rig.sim.peek(MODE) == 0x00  # $4078 was 0 at power-on
    rig.write(MODE, 0x78)
    rig.command(0x04)
    assert rig.sim.peek(MENU_SEL) == 0x78
    rig.command(0x12)
    assert rig.sim.peek(MODE) == 0x78


def test_next_mode_steps_the_menu_selection_and_starts_it(rig: Rig) -> None:
    rig.handshake()
    rig.run_mode(0x86)
    rig.command(0x10)
    assert rig.sim.peek(MODE) == 0x87
    rig.command(0x10)  # top mode Phase3: wraps to Waves
    assert rig.sim.peek(MODE) == 0x76
    rig.command(0x11)
    assert rig.sim.peek(MODE) == 0x87


def test_after_power_on_the_box_delivers_nothing(rig: Rig) -> None:
    rig.handshake()
    rig.make_static()
    rig.write(INTENSITY, 0xFF)
    rig.wait(10.0)
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.sim.peek(GATE) == rig.sim.peek(GATE + B) == 0x06
    assert rig.sim.record.max_output("A") == 0.0


def test_a_gate_write_starts_output_without_any_mode_or_menu_state(rig: Rig) -> None:
    """§6: $406D never gates the output; the gate does."""
    rig.handshake()
    rig.write(GATE, 0x07)
    rig.wait(0.1)
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.sim.record.output_at("A", rig.clock.now_s() - 0.01) > 0.0
    assert rig.sim.record.max_output("B") == 0.0


def test_new_mode_with_an_unknown_mode_still_starts_output(rig: Rig) -> None:
    rig.handshake()
    rig.run_mode(0x20)
    rig.wait(0.1)
    assert rig.sim.peek(GATE) == 0x07
    assert rig.sim.record.output_at("A", rig.clock.now_s() - 0.01) > 0.0
    assert rig.sim.record.events_of("mode_unknown")


def test_new_mode_reloads_the_defaults_intensity_0xff_and_clears_4083() -> None:
    """§5: whatever the host wrote before 0x12 is lost when it runs."""
    rig = running_rig(intensity=0x20)
    rig.write(FLAGS, 0x02)
    rig.write(GATE_SELECT, 0x01)
    low = rig.output()
    assert low is not None and low.strength_du == expected_strength(128, 0x20)
    rig.command(0x12)
    assert rig.sim.peek(INTENSITY) == rig.sim.peek(INTENSITY + B) == 0xFF
    assert rig.sim.peek(FLAGS) == 0x00
    assert rig.sim.peek(GATE) == 0x07 and rig.sim.peek(GATE_SELECT) == 0x00
    assert rig.sim.peek(INTENSITY + SELECT) == 0x00  # static 0xFF
    assert rig.sim.peek(FREQUENCY + SELECT) == 0x41  # Waves module 11 on the frequency
    assert rig.sim.peek(RAMP) < 0xFF  # the ramp restarted
    rig.wait(4.0)
    assert rig.sim.record.max_output("A", rig.clock.now_s() - 0.5) == expected_strength(128, 0xFF)


def test_a_host_that_rewrites_intensity_too_early_is_overruled_by_0x12() -> None:
    """Writing the intensity in the same breath as 0x12 is undone when the command runs."""
    rig = running_rig(intensity=0x20)
    rig.write(CMD, 0x12)
    rig.write(INTENSITY, 0x20)
    rig.wait(BOX_COMMAND_DELAY_S)
    assert rig.sim.peek(INTENSITY) == 0xFF
    assert rig.sim.record.max_output("A", rig.clock.now_s() - 0.01) > expected_strength(128, 0x20)


def test_the_ramp_after_a_new_mode_climbs_from_61_percent_over_3_2_s(rig: Rig) -> None:
    """§4: the ramp block steps 156 -> 255 by 1 every 8 passes (rate 7), then stops."""
    rig.handshake()
    rig.write(ADC_FLAGS, 0x01)
    rig.write(LEVEL_A, 200)
    rig.run_mode(0x20)
    start_s = rig.clock.now_s()
    first = rig.output()
    assert first is not None and first.strength_du == expected_strength(200, 0xFF, ramp=0x9C)
    rig.wait(3.0)
    assert rig.sim.peek(RAMP) < 0xFF
    rig.wait(0.5)
    assert rig.sim.peek(RAMP) == 0xFF
    done = rig.sim.record.intervals("A")[-1]
    assert done.strength_du == expected_strength(200, 0xFF)
    assert done.start_s - start_s == pytest.approx(99 * 8 * PASS_S, abs=3 * POLL_S)


def test_a_host_can_skip_the_ramp_by_making_it_static(rig: Rig) -> None:
    rig.handshake()
    rig.write(ADC_FLAGS, 0x01)
    rig.write(LEVEL_A, 200)
    rig.run_mode(0x20)
    rig.write(RAMP + SELECT, 0)
    rig.write(RAMP, 0xFF)
    rig.wait(0.01)
    out = rig.output()
    assert out is not None and out.strength_du == expected_strength(200, 0xFF)
    rig.wait(1.0)
    assert rig.sim.peek(RAMP) == 0xFF


def test_0x18_silences_the_gates_and_resets_the_channels() -> None:
    rig = running_rig(intensity=0x40)
    assert rig.output() is not None
    rig.command(0x18)
    assert rig.sim.peek(GATE) == rig.sim.peek(GATE + B) == 0x06
    assert rig.sim.peek(INTENSITY) == 0xFF and rig.sim.peek(FREQUENCY + SELECT) == 0x08
    rig.wait(1.0)
    assert rig.sim.record.max_output("A", rig.clock.now_s() - 0.9) == 0.0
    assert rig.sim.record.max_output("B", rig.clock.now_s() - 0.9) == 0.0
    rig.command(0x04)  # exit menu does not undo it
    rig.wait(0.1)
    assert rig.output() is None


def test_0x18_is_undone_by_a_gate_write_or_a_new_mode() -> None:
    rig = running_rig()
    rig.command(0x18)
    rig.write(GATE, 0x07)
    rig.wait(0.02)
    on = rig.output()
    assert on is not None
    assert (
        expected_strength(128, 0xFF, 0x9C) <= on.strength_du <= expected_strength(128, 0xFF, 0xA0)
    )
    assert rig.output("B") is None
    rig.command(0x18)
    rig.command(0x12)
    assert rig.sim.peek(GATE + B) == 0x07
    assert rig.output("B") is not None


def test_swap_and_copy_move_the_blocks_8c_to_bf() -> None:
    rig = running_rig()
    rig.write(INTENSITY + B, 0x90)
    rig.write(GATE + B, 0x03)
    rig.write(0x408C, 0x11)
    rig.command(0x19)  # swap A/B
    assert (rig.sim.peek(INTENSITY), rig.sim.peek(INTENSITY + B)) == (0x90, 0xC0)
    assert (rig.sim.peek(GATE), rig.sim.peek(GATE + B)) == (0x03, 0x07)
    assert rig.sim.peek(0x418C) == 0x11
    rig.command(0x1A)  # copy A -> B
    assert rig.sim.peek(INTENSITY + B) == 0x90
    rig.command(0x1B)  # copy B -> A
    assert rig.sim.peek(INTENSITY) == 0x90


def test_failure_commands_stop_the_box_until_a_power_cycle() -> None:
    rig = running_rig()
    rig.command(0x17)
    assert rig.sim.failed is not None
    assert rig.send(b"\x00") == b""
    rig.wait(1.0)
    assert rig.sim.record.max_output("A", rig.clock.now_s() - 0.9) == 0.0
    rig.sim.power_cycle()
    rig.wait(BOOT_S)
    assert rig.sim.failed is None
    assert rig.raw(b"\x00") == NACK_OR_SYNC


# -- what the box delivers (§2, §3) -----------------------------------------------------------


def test_output_follows_the_firmware_formulas() -> None:
    rig = running_rig(intensity=0xC0, freq=22, width=130, knob_a=128, knob_b=255)
    a, b = rig.output("A"), rig.output("B")
    assert a is not None and b is not None
    assert a.strength_du == expected_strength(128, 0xC0) == 96
    assert b.strength_du == expected_strength(255, 0xC0)
    assert a.frequency_hz == pytest.approx(expected_hz(22, 130)) == pytest.approx(162.65, 1e-3)
    assert (a.intensity_pct, a.pulse_width_us) == (100.0, 130.0)
    assert a.output_du == a.strength_du
    assert rig.sim.record.channels() == ["A", "B"]


@pytest.mark.parametrize("intensity", [0, 1, 64, 128, 129, 200, 255])
def test_the_intensity_register_is_a_linear_multiplier(intensity: int) -> None:
    rig = running_rig(intensity=intensity, knob_a=255)
    out = rig.output()
    strength = expected_strength(255, intensity)
    if strength == 0:
        assert out is None
    else:
        assert out is not None and out.strength_du == strength


def test_intensity_128_gives_about_half_of_255() -> None:
    half = running_rig(intensity=128, knob_a=200).output()
    full = running_rig(intensity=255, knob_a=200).output()
    assert half is not None and full is not None
    assert half.strength_du / full.strength_du == pytest.approx(0.5, abs=0.01)


def test_the_mute_bit_does_not_silence_ordinary_output() -> None:
    rig = running_rig()
    before = rig.output()
    rig.write(FLAGS, 0x02)
    rig.wait(0.5)
    assert rig.sim.peek(FLAGS) & 0x02  # silent audio never triggers it
    after = rig.output()
    assert before is not None and after is not None
    assert (after.strength_du, after.frequency_hz) == (before.strength_du, before.frequency_hz)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) is None


def test_with_the_adc_disabled_pots_at_zero_give_no_drive_whatever_the_intensity() -> None:
    rig = running_rig(intensity=0xFF)
    rig.write(ADC_FLAGS, 0x01)
    rig.write(LEVEL_A, 0)
    rig.write(LEVEL_B, 0)
    t_s = rig.clock.now_s()
    rig.sim.turn_knob("A", 100)  # the knob does nothing while the ADC is off
    rig.wait(1.0)
    record = rig.sim.record
    zero_s = next_pass_after(t_s)
    assert record.output_at("A", zero_s - 1e-9) > 0.0
    assert record.max_output("A", zero_s, rig.clock.now_s()) == 0.0
    assert record.max_output("B", zero_s, rig.clock.now_s()) == 0.0
    rig.write(ADC_FLAGS, 0x00)  # the pots follow the knobs again
    rig.wait(0.1)
    on = rig.output()
    assert on is not None and on.strength_du == expected_strength(228, 0xFF)


def test_power_level_scales_the_pots_low_normal_high() -> None:
    rig = running_rig(intensity=0xFF, knob_a=200)
    strengths = {}
    for power in (1, 2, 3, 0):
        rig.write(POWER_LEVEL, power)
        rig.wait(0.05)
        out = rig.output()
        assert out is not None
        strengths[power] = out.strength_du
    assert strengths == {p: expected_strength(200, 0xFF, power=p) for p in (0, 1, 2, 3)}
    assert strengths[3] == pytest.approx(1.5 * strengths[2], abs=1)
    assert strengths[1] == pytest.approx(0.75 * strengths[2], abs=1)
    assert len(rig.sim.record.events_of("power_level")) == 4


def test_power_level_4_or_more_stops_the_box_with_failure_16() -> None:
    rig = running_rig()
    rig.write(POWER_LEVEL, 4)
    rig.wait(0.1)
    assert rig.sim.failed == 16
    assert rig.sim.record.max_output("A", rig.clock.now_s() - 0.09) == 0.0


@pytest.mark.parametrize(
    ("freq", "width", "gate", "hz", "width_us"),
    [
        (22, 130, 0x07, expected_hz(22, 130), 130.0),
        (3, 130, 0x07, expected_hz(9, 130), 130.0),  # frequency below 9 counts as 9
        (22, 10, 0x07, expected_hz(22, 50), 50.0),  # width below 50 counts as 50
        (255, 255, 0x07, expected_hz(255, 255), 255.0),
        (22, 130, 0x03, expected_hz(22, 130, phases=1), 130.0),  # monophasic
        (22, 130, 0x09, expected_hz(22, 130, phases=1), 130.0),  # alternating
    ],
)
def test_frequency_and_width_registers_map_to_hz_and_us(
    freq: int, width: int, gate: int, hz: float, width_us: float
) -> None:
    rig = running_rig(freq=freq, width=width, knob_a=60)
    rig.write(GATE, gate)
    rig.wait(0.05)
    out = rig.output()
    assert out is not None
    assert out.frequency_hz == pytest.approx(hz)
    assert out.pulse_width_us == width_us


@pytest.mark.parametrize("gate", [0x00, 0x01, 0x06, 0x21, 0x27])
def test_gates_without_on_bit_or_pattern_or_with_audio_trigger_give_no_pulses(gate: int) -> None:
    rig = running_rig()
    rig.write(GATE, gate)
    rig.wait(0.05)
    assert rig.output() is None


def test_the_power_limiter_slows_wide_strong_fast_pulses() -> None:
    """§3: D = hi(W x level / 4) - F stretches the period (0x0528..0x057c)."""
    rig = running_rig(intensity=0xFF, freq=9, width=255, knob_a=255, knob_b=0)
    rig.write(POWER_LEVEL, 3)
    rig.wait(0.05)
    out = rig.output()
    assert out is not None
    level = (255 // 2) * 255 >> 8  # M205 on High with the ramp done
    limiter = (255 * level // 4 >> 8) - 9
    assert limiter > 0
    assert out.frequency_hz == pytest.approx(expected_hz(9, 255, limiter=limiter))


def test_gate_timer_switches_the_output_on_and_off() -> None:
    """§3: on for $4098, off for $4099 steps of the selected timer (here 244 Hz)."""
    rig = running_rig()
    rig.write(GATE_ON, 24)
    rig.write(GATE_OFF, 48)
    rig.write(GATE_SELECT, 0x01)
    rig.wait(2.0)
    recent = [iv for iv in rig.sim.record.intervals("A") if iv.start_s > rig.clock.now_s() - 1.5]
    on = [iv for iv in recent[1:-1] if iv.output_du > 0]
    off = [iv for iv in recent[1:-1] if iv.output_du == 0]
    assert on and off
    assert all(iv.duration_s == pytest.approx(25 * PASS_S, abs=1e-9) for iv in on)
    assert all(iv.duration_s == pytest.approx(49 * PASS_S, abs=1e-9) for iv in off)


def test_channel_b_follows_a_gate_and_timing_with_4083_bit_08() -> None:
    rig = running_rig(freq=40, knob_b=255)
    rig.write(GATE + B, 0x06)  # B's own gate off
    rig.write(FREQUENCY, 22)
    rig.write(FLAGS, 0x08)
    rig.wait(0.05)
    b = rig.output("B")
    assert b is not None and b.frequency_hz == pytest.approx(expected_hz(22, 130))
    assert b.strength_du == expected_strength(255, 0xC0)
    rig.write(GATE, 0x06)
    rig.wait(0.05)
    assert rig.output("B") is None


def test_gate_bit_40_forces_the_audio_intensity(rig: Rig) -> None:
    rig.handshake()
    rig.run_mode(0x20)
    rig.write(GATE, 0x47)
    rig.wait(0.05)
    assert rig.sim.peek(INTENSITY) == 173


def test_knob_changes_output_at_the_next_pass() -> None:
    rig = running_rig(knob_a=128)
    t_s = rig.clock.now_s()
    before = rig.sim.record.output_at("A", t_s - 0.1)
    rig.sim.turn_knob("A", 127)
    rig.wait(0.2)
    after = rig.sim.record.interval_at("A", next_pass_after(t_s))
    assert after is not None and after.start_s == pytest.approx(next_pass_after(t_s))
    assert after.strength_du == expected_strength(255, 0xC0) > before
    rig.sim.turn_knob("A", -255)
    rig.wait(0.1)
    assert rig.output() is None
    assert rig.sim.record.output_at("B", rig.clock.now_s() - 0.05) == before


def test_register_writes_reach_the_output_at_the_next_pass() -> None:
    """§1: the ISRs use working copies reloaded every 4.096 ms."""
    rig = running_rig(freq=10)
    t_s = rig.clock.now_s()
    rig.write(FREQUENCY, 20)
    rig.write(WIDTH + B, 100)
    assert rig.sim.peek(0x4008) == 10  # the working copy r8 is still the old value
    rig.wait(0.25)
    pass_s = next_pass_after(t_s)
    assert pass_s - t_s <= PASS_S
    a = rig.sim.record.interval_at("A", pass_s)
    b = rig.sim.record.interval_at("B", pass_s)
    assert a is not None and a.start_s == pytest.approx(pass_s)
    assert a.frequency_hz == pytest.approx(expected_hz(20, 130))
    assert b is not None and b.pulse_width_us == 100.0
    assert rig.sim.peek(0x4008) == 20


def test_output_continues_after_disconnect_and_host_silence() -> None:
    rig = running_rig()
    t_s = rig.clock.now_s()
    rig.sim.disconnect()
    rig.sim.set_output(None)
    rig.clock.advance(3600.0)
    record = rig.sim.record
    assert record.first_time_output_zero_after("A", t_s) is None
    assert len([iv for iv in record.intervals("A") if iv.start_s >= t_s]) <= 1
    assert record.output_at("A", t_s + 3599.0) > 0.0


def test_power_cycle_turns_output_off_until_a_mode_runs() -> None:
    rig = running_rig()
    t_s = rig.clock.now_s()
    rig.sim.power_cycle()
    rig.wait(5.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == t_s
    rig.sim.press_any_key()
    rig.wait(0.1)
    assert rig.sim.peek(MODE) == 0x76 and rig.output() is not None


def test_a_timed_block_steps_to_the_bounds_as_the_firmware_does() -> None:
    """§4: +step each pass (rate 0); at max: value = max and reverse; below min: min, reverse.
    The max is acted on when reached, the min when passed, so the minimum shows twice."""
    rig = running_rig(intensity=0xC0)
    for offset, value in ((1, 0xC0), (2, 0xC3), (3, 0x00), (4, 0x01), (5, 0xFF), (6, 0xFF)):
        rig.write(INTENSITY + offset, value)
    rig.write(INTENSITY + SELECT, 0x01)
    start_s = next_pass_after(rig.clock.now_s())
    seen = []
    for step in range(10):
        rig.clock.set(start_s + (step + 0.25) * PASS_S)
        seen.append(rig.sim.peek(INTENSITY))
    assert seen == [0xC1, 0xC2, 0xC3, 0xC2, 0xC1, 0xC0, 0xC0, 0xC1, 0xC2, 0xC3]
    assert rig.sim.peek(INTENSITY + B) == 0xC0  # B is static


def test_a_select_of_0x08_copies_the_ma_value_on_every_pass(rig: Rig) -> None:
    rig.handshake()
    rig.run_mode(0x20)
    assert rig.sim.peek(FREQUENCY + SELECT) == 0x08
    rig.write(FREQUENCY, 200)
    rig.wait(0.02)
    assert rig.sim.peek(FREQUENCY) == rig.sim.peek(MA_VALUE) == 0x87
    rig.sim.turn_ma_knob(-127)  # knob to 0: the top of the range
    rig.wait(0.02)
    assert rig.sim.peek(FREQUENCY) == 0xFF


def test_waves_moves_frequency_and_width_until_the_host_makes_them_static(rig: Rig) -> None:
    rig.handshake()
    rig.run_mode(0x76)
    assert (rig.sim.peek(MA_LOW), rig.sim.peek(MA_HIGH)) == (0x01, 0x40)
    seen = set()
    for _ in range(40):
        rig.wait(0.05)
        seen.add((rig.sim.peek(FREQUENCY), rig.sim.peek(WIDTH + B)))
    assert len(seen) > 10
    rig.make_static()
    rig.wait(0.05)
    frozen = (rig.sim.peek(FREQUENCY), rig.sim.peek(WIDTH + B))
    rig.wait(1.0)
    assert (rig.sim.peek(FREQUENCY), rig.sim.peek(WIDTH + B)) == frozen


def test_the_safe_order_to_take_control_never_delivers_the_defaults() -> None:
    """Pots to 0 with the ADC off first (0x12 leaves the pots alone), then the mode, then the
    registers, then the level; at the end pots 0 again and the key reset."""
    rig = make_rig(knob_a=200, knob_b=200)
    rig.sim.press_any_key()  # the user left Waves running
    rig.wait(1.0)
    rig.handshake(host_key=0)
    assert rig.read(0x00FC) == 0x0C
    rig.write(ADC_FLAGS, 0x01)
    rig.write(LEVEL_A, 0, 0)
    t_zero_s = next_pass_after(rig.clock.now_s())
    rig.run_mode(0x76)
    rig.make_static()
    for base in (0, B):
        rig.write(INTENSITY + base, 0xFF)
        rig.write(FREQUENCY + base, 22)
        rig.write(WIDTH + base, 120)
        rig.write(GATE_SELECT + base, 0)
    rig.wait(4.0)  # the ramp is done
    t_on_s = rig.clock.now_s()
    rig.write(LEVEL_A, 64)
    rig.wait(0.5)
    t_off_s = rig.clock.now_s()
    rig.write(LEVEL_A, 0)
    rig.write(KEY_ADDR, 0)
    rig.k = 0
    rig.sim.disconnect()
    rig.wait(10.0)
    record = rig.sim.record
    assert record.max_output("A", t_zero_s, t_on_s) == 0.0
    on = record.interval_at("A", t_on_s + 0.25)
    assert on is not None and on.strength_du == expected_strength(64, 0xFF)
    assert on.frequency_hz == pytest.approx(expected_hz(22, 120))
    assert record.max_output("B", t_zero_s) == 0.0
    zero_s = record.first_time_output_zero_after("A", t_on_s)
    assert zero_s is not None and zero_s - t_off_s <= PASS_S
    assert rig.sim.key == 0 and rig.raw(b"\x00") == NACK_OR_SYNC


# -- faults and robustness --------------------------------------------------------------------


def test_stop_answering_reads_and_acts_but_sends_nothing(rig: Rig) -> None:
    rig.handshake()
    rig.sim.stop_answering(True)
    assert rig.send(write_packet(MODE, b"\x7a")) == b""
    assert rig.send(b"\x00") == b""
    assert rig.sim.peek(MODE) == 0x7A
    rig.sim.stop_answering(False)
    assert rig.read(MODE) == 0x7A


def test_reply_callback_may_feed_again() -> None:
    clock = VirtualClock()
    sim = Et312Simulator(clock, box_key=BOX_KEY)
    sim.press_any_key()
    replies: list[bytes] = []

    def answer(reply: bytes) -> None:
        replies.append(reply)
        if len(replies) == 1:
            sim.feed(bytes.fromhex("3c407bf7"))

    sim.set_output(answer)
    sim.feed(b"\x00")
    assert replies == [b"\x07", bytes.fromhex("227698")]


def test_record_plays_out_to_the_clock() -> None:
    rig = running_rig()
    rig.clock.advance(2.5)
    assert rig.sim.record.end_s == rig.clock.now_s()


def test_constructor_validates_arguments() -> None:
    clock = VirtualClock()
    for kwargs in (
        {"box_key": 256},
        {"knob_a": -1},
        {"knob_b": 300},
        {"ma_knob": 256},
        {"battery_percent": 101},
    ):
        with pytest.raises(ValueError, match="must be within"):
            Et312Simulator(clock, **kwargs)
    assert Et312Simulator(clock).name == "ET-312"
    with pytest.raises(TypeError, match="bytes"):
        Et312Simulator(clock).feed("00")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.binary(max_size=24), st.floats(min_value=0.0, max_value=0.1)), max_size=30
    ),
    keyed=st.booleans(),
)
def test_random_byte_streams_never_raise_and_memory_stays_8_bit(
    chunks: list[tuple[bytes, float]], keyed: bool
) -> None:
    rig = make_rig()
    if keyed:
        rig.handshake()
        rig.run_mode()
    for data, dt_s in chunks:
        rig.sim.feed(data)
        rig.clock.advance(dt_s)
    if keyed:
        rig.sim.disconnect()
    else:
        rig.sim.power_cycle()
    assert all(0 <= rig.sim.peek(a) <= 255 for a in (*range(0x100), *range(0x4000, 0x4400)))
    assert all(0 <= b <= 255 for reply in rig.replies for b in reply)
    assert rig.sim.record.end_s == rig.clock.now_s()


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=80), cuts=st.lists(st.integers(0, 80), max_size=10))
def test_any_split_of_a_stream_gives_the_same_replies_and_memory(
    stream: bytes, cuts: list[int]
) -> None:
    prefix = bytes.fromhex("2f002f")  # keyed, so writes are taken too
    whole, split = make_rig(), make_rig()
    whole.sim.feed(prefix + stream)
    split.sim.feed(prefix)
    edges = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    for start, end in itertools.pairwise(edges):
        split.sim.feed(stream[start:end])
    assert whole.take() == split.take()
    assert all(whole.sim.peek(a) == split.sim.peek(a) for a in range(0x4000, 0x4400))


# -- independence -----------------------------------------------------------------------------


def test_simulator_imports_nothing_from_the_host_side() -> None:
    source = Path(__file__).resolve().parents[2] / "simulators" / "et312.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
    forbidden = {"firmware_bridge", "safety", "acustim", "gui"}
    assert not {name for name in imported if name.split(".")[0] in forbidden}
    assert {name.split(".")[0] for name in imported} <= {
        "__future__",
        "math",
        "random",
        "collections",
        "typing",
        "simulators",
    }
