"""The ET-312B / MK-312BT firmware emulator against ../shared/reference/devices.md section 3
and docs/devices/et312.md ("What the box delivers").

Every test vector of the document is fed in as its literal bytes. Other packets are built here
by hand from the documented framing (head, address, data, 8-bit sum; XOR with
K = swapNibbles(hk) ^ bk ^ 0x55), never with the host codec.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.clock import VirtualClock
from simulators.et312 import BOX_COMMAND_DELAY_S, MODULATION_STEP_S, Et312Simulator

ACK, NACK_OR_SYNC = b"\x06", b"\x07"
MODE, CMD, MUTE_FLAGS, ADC_FLAGS, KEY_ADDR, BATTERY = 0x407B, 0x4070, 0x4083, 0x400F, 0x4213, 0x4203
MENU_STATE, LEVEL_A, LEVEL_B = 0x406D, 0x4064, 0x4065
INTENSITY_A, FREQUENCY_A, WIDTH_A = 0x40A5, 0x40AE, 0x40B7
SELECT = 7  # the select byte sits 7 above its value register
B = 0x100  # channel B = channel A + 0x100
BOX_KEY = 0xEF  # the document's vectors use box key 0xEF


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
        reply = self.raw(seal(bytes([0x2F, host_key])))
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

    def make_static(self) -> None:
        """Select bytes 0 on both channels: the host's values are used as written."""
        for base in (0, B):
            for register in (INTENSITY_A, FREQUENCY_A, WIDTH_A):
                self.write(register + base + SELECT, 0)

    def run_mode(self, mode: int = 0x76) -> None:
        self.write(MODE, mode)
        self.write(CMD, 0x04, 0x12)
        self.wait(BOX_COMMAND_DELAY_S)


def make_rig(box_key: int | None = BOX_KEY, **kwargs: int) -> Rig:
    clock = VirtualClock()
    rig = Rig(clock, Et312Simulator(clock, box_key=box_key, **kwargs))
    rig.sim.set_output(rig.replies.append)
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def running_rig(
    intensity: int = 0xC0, period_ms: int = 10, width_us: int = 150, **kwargs: int
) -> Rig:
    """Keyed, static selects, values written, mode running (not muted)."""
    rig = make_rig(**kwargs)
    rig.handshake()
    rig.make_static()
    for base in (0, B):
        rig.write(INTENSITY_A + base, intensity)
        rig.write(FREQUENCY_A + base, period_ms)
        rig.write(WIDTH_A + base, width_us)
    rig.run_mode()
    return rig


# -- the document's test vectors --------------------------------------------------------------


def test_packet_builders_reproduce_the_documents_plain_vectors() -> None:
    assert read_packet(MODE) == bytes.fromhex("3c407bf7")
    assert write_packet(MODE, b"\x78") == bytes.fromhex("4d407b7880")
    assert write_packet(CMD, b"\x04\x12") == bytes.fromhex("5d4070041223")
    assert write_packet(KEY_ADDR, b"\x00") == bytes.fromhex("4d421300a2")
    assert write_packet(INTENSITY_A, b"\xff") == bytes.fromhex("4d40a5ff31")
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


def test_plain_read_of_the_mode_before_the_key_exchange(rig: Rig) -> None:
    assert rig.raw(bytes.fromhex("3c407bf7")) == bytes.fromhex("227698")


def test_encrypted_read_of_the_mode_with_k_0xba(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    assert rig.raw(bytes.fromhex("86fac14d")) == bytes.fromhex("227698")


def test_encrypted_write_of_mode_0x78(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    assert rig.raw(bytes.fromhex("f7fac1c23a")) == ACK
    assert rig.sim.peek(MODE) == 0x78


def test_key_reset_vector_clears_the_key_and_later_bytes_are_plain(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    assert rig.raw(bytes.fromhex("f7f8a9ba18")) == ACK
    assert rig.sim.key == 0
    assert rig.raw(bytes.fromhex("3c407bf7")) == bytes.fromhex("227698")
    assert rig.raw(b"\x00") == NACK_OR_SYNC


def test_exit_menu_new_mode_vector_starts_the_mode(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    rig.k = 0xBA
    assert rig.send(bytes.fromhex("5d4070041223")) == ACK
    rig.wait(BOX_COMMAND_DELAY_S)
    assert rig.sim.peek(MENU_STATE) == 0x02


def test_intensity_write_vector_sets_channel_a_intensity(rig: Rig) -> None:
    rig.raw(bytes.fromhex("2f002f"))
    rig.k = 0xBA
    assert rig.send(bytes.fromhex("4d40a5ff31")) == ACK
    assert rig.sim.peek(INTENSITY_A) == 0xFF


# -- framing ----------------------------------------------------------------------------------


def test_sync_byte_is_answered_07_before_and_after_the_key_exchange(rig: Rig) -> None:
    assert rig.raw(b"\x00") == NACK_OR_SYNC
    rig.handshake()
    assert rig.send(b"\x00") == NACK_OR_SYNC
    assert rig.raw(b"\x00") == b""  # plain 00 decrypts to K = 0xBA: no command


def test_key_exchange_and_replies_are_never_encrypted(rig: Rig) -> None:
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


def test_writes_before_the_key_exchange_are_refused_without_reply(rig: Rig) -> None:
    assert rig.raw(write_packet(MODE, b"\x78")) == b""
    assert rig.sim.peek(MODE) == 0x76
    assert rig.sim.record.events_of("write_refused")
    assert rig.raw(b"\x00") == NACK_OR_SYNC  # the whole packet was consumed


@pytest.mark.parametrize("head", [0x01, 0x0D, 0x1D, 0x3D, 0xCD, 0xFD, 0x55, 0x21, 0xFF])
def test_unknown_command_bytes_are_ignored(rig: Rig, head: int) -> None:
    assert rig.raw(bytes([head])) == b""
    assert rig.raw(read_packet(MODE)) == bytes.fromhex("227698")


@pytest.mark.parametrize(
    "plain",
    [read_packet(MODE), write_packet(MODE, b"\x78"), write_packet(0x4300, b"\x11" * 8)],
)
def test_corrupted_checksum_is_nacked_and_not_executed(rig: Rig, plain: bytes) -> None:
    rig.handshake()
    bad = plain[:-1] + bytes([(plain[-1] + 1) % 256])
    assert rig.send(bad) == NACK_OR_SYNC
    assert rig.sim.peek(MODE) == 0x76 and rig.sim.peek(0x4300) == 0
    assert rig.sim.record.events_of("nack")
    assert rig.read(MODE) == 0x76


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
    whole, bytewise, stream = make_rig(), make_rig(), make_rig()
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


def test_key_survives_disconnect_and_the_old_key_still_syncs(rig: Rig) -> None:
    rig.handshake()
    rig.sim.disconnect()
    assert rig.sim.key == 0xBA
    assert rig.raw(b"\x00") == b""  # a new host's plain sync is not understood
    assert rig.raw(bytes([0x00 ^ 0xBA])) == NACK_OR_SYNC
    assert rig.read(MODE) == 0x76


def test_key_exchange_while_a_key_is_set_is_not_answered(rig: Rig) -> None:
    rig.handshake()
    assert rig.send(bytes.fromhex("2f002f")) == b""
    assert rig.sim.key == 0xBA
    assert rig.sim.record.events_of("key_exchange_refused")


def test_stale_key_recovery_then_reset_then_fresh_exchange() -> None:
    rig = make_rig(seed=7, box_key=0x12)
    rig.handshake()
    old_k = rig.k
    rig.sim.disconnect()
    assert old_k == 0x12 ^ 0x55
    # A new host's plain key exchange decrypts to 68 47 68: no command, no reply.
    assert rig.raw(seal(bytes([0x2F, 0]))) == b""
    assert rig.sim.key == old_k
    assert rig.send(b"\x00") == NACK_OR_SYNC
    rig.write(KEY_ADDR, 0)
    rig.k = 0
    assert rig.sim.key == 0
    rig.handshake()
    assert rig.sim.key == rig.k == session_key(0, 0x12)


def test_undecryptable_byte_that_decrypts_to_a_command_head_gives_a_nack() -> None:
    """Documented choice: with K = 0x3C a plain 00 decrypts to a read head; three more 00s
    complete `3c 3c 3c 3c`, whose checksum is wrong, so the box NACKs with 07."""
    rig = make_rig(box_key=0x3C ^ 0x55)
    rig.handshake()
    assert rig.sim.key == 0x3C
    assert [rig.raw(b"\x00") for _ in range(4)] == [b"", b"", b"", NACK_OR_SYNC]


def test_power_cycle_loses_the_key_and_resets_ram(rig: Rig) -> None:
    rig.handshake()
    rig.write(MODE, 0x80)
    rig.write(0x8010, 0x5A)  # EEPROM
    rig.sim.power_cycle()
    assert rig.sim.key == 0
    assert rig.sim.peek(MODE) == 0x76
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.sim.peek(0x8010) == 0x5A  # EEPROM is not RAM
    assert rig.raw(write_packet(MODE, b"\x78")) == b""  # writes need a new key
    rig.k = 0
    rig.handshake()
    rig.write(MODE, 0x78)


def test_seeded_box_keys_repeat_and_box_key_overrides() -> None:
    first, second = make_rig(seed=42, box_key=None), make_rig(seed=42, box_key=None)
    assert first.handshake() == second.handshake()
    assert make_rig(box_key=0x33).handshake() == 0x33


# -- memory map -------------------------------------------------------------------------------


def test_model_and_firmware_version_in_the_flash_window(rig: Rig) -> None:
    assert [rig.read(a) for a in (0x00FC, 0x00FD, 0x00FE, 0x00FF)] == [0x0C, 0x01, 0x06, 0x00]


def test_flash_window_is_read_only_but_writes_are_acked(rig: Rig) -> None:
    rig.handshake()
    rig.write(0x00FC, 0x99)
    assert rig.read(0x00FC) == 0x0C


def test_reads_and_writes_wrap_inside_each_range(rig: Rig) -> None:
    rig.handshake()
    assert rig.read(0x01FC) == 0x0C  # flash, 256 bytes
    assert rig.read(0x447B) == 0x76  # RAM, 1 KiB
    assert rig.read(0x8201) == rig.read(0x8001) == 0x55  # EEPROM, 512 bytes: provisioned
    rig.write(0x447B, 0x7A)
    assert rig.sim.peek(MODE) == 0x7A
    rig.write(0x8202, 0x44)
    assert rig.sim.peek(0x8002) == 0x44


def test_battery_register(rig: Rig) -> None:
    assert rig.read(BATTERY) == 80
    rig.sim.set_battery(55)
    assert rig.read(BATTERY) == 55
    rig.sim.set_battery(100)
    assert rig.read(BATTERY) == 99
    with pytest.raises(ValueError, match="battery"):
        rig.sim.set_battery(101)


def test_level_pots_are_read_only_while_the_adc_is_enabled() -> None:
    rig = make_rig(knob_a=100, knob_b=200)
    rig.handshake()
    assert (rig.read(LEVEL_A), rig.read(LEVEL_B)) == (100, 200)
    rig.write(LEVEL_A, 7)
    assert rig.read(LEVEL_A) == 100
    rig.write(ADC_FLAGS, 0x01)  # pots off: the host sets the level
    rig.write(LEVEL_A, 7)
    assert rig.read(LEVEL_A) == 7
    rig.sim.turn_knob("A", 10)
    assert rig.read(LEVEL_A) == 7
    rig.write(ADC_FLAGS, 0x00)  # pots on again: the register re-reads the pot
    assert rig.read(LEVEL_A) == 110


def test_turn_knob_clamps_to_0_255() -> None:
    rig = make_rig(knob_a=250)
    rig.sim.turn_knob("A", 20)
    rig.sim.turn_knob("B", -500)
    assert (rig.sim.peek(LEVEL_A), rig.sim.peek(LEVEL_B)) == (255, 0)
    with pytest.raises(ValueError, match="channel"):
        rig.sim.turn_knob("C", 1)


def test_peek_values_stay_8_bit_over_the_whole_address_space(rig: Rig) -> None:
    assert all(0 <= rig.sim.peek(a) <= 255 for a in range(0x10000))


# -- box commands and modes -------------------------------------------------------------------


def test_box_command_takes_effect_18_ms_after_the_write(rig: Rig) -> None:
    rig.handshake()
    rig.make_static()
    rig.write(MODE, 0x78)
    t0_s = rig.clock.now_s()
    rig.write(CMD, 0x04, 0x12)
    rig.wait(BOX_COMMAND_DELAY_S - 0.001)
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.read(CMD) == 0x04
    rig.wait(0.001)
    assert rig.sim.peek(MENU_STATE) == 0x02
    assert rig.read(CMD) == rig.read(CMD + 1) == 0xFF
    assert rig.read(MODE) == 0x78
    rig.wait(0.1)
    first_on = next(iv for iv in rig.sim.record.intervals("A") if iv.strength_du > 0)
    assert first_on.start_s == pytest.approx(t0_s + BOX_COMMAND_DELAY_S, abs=1e-12)


def test_after_power_on_the_box_sits_in_the_menu_without_output(rig: Rig) -> None:
    rig.handshake()
    rig.make_static()
    rig.write(INTENSITY_A, 0xFF)
    rig.wait(10.0)
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.sim.record.max_output("A") == 0.0


def test_unknown_mode_is_not_started(rig: Rig) -> None:
    rig.handshake()
    rig.write(MODE, 0x20)
    rig.write(CMD, 0x04, 0x12)
    rig.wait(BOX_COMMAND_DELAY_S)
    assert rig.sim.peek(MENU_STATE) == 0x01
    assert rig.sim.record.events_of("box_command_ignored")


def test_box_command_mute_swap_and_copy() -> None:
    rig = running_rig()
    rig.write(INTENSITY_A + B, 0x90)
    rig.write(CMD, 0x19)  # swap A/B
    rig.wait(BOX_COMMAND_DELAY_S)
    assert (rig.sim.peek(INTENSITY_A), rig.sim.peek(INTENSITY_A + B)) == (0x90, 0xC0)
    rig.write(CMD, 0x1A)  # copy A -> B
    rig.wait(BOX_COMMAND_DELAY_S)
    assert rig.sim.peek(INTENSITY_A + B) == 0x90
    rig.write(CMD, 0x18)  # mute
    rig.wait(BOX_COMMAND_DELAY_S)
    assert rig.sim.peek(MUTE_FLAGS) & 0x02
    assert rig.sim.record.output_at("A", rig.clock.now_s()) == 0.0


# -- what the box delivers --------------------------------------------------------------------


def test_output_follows_the_documented_model() -> None:
    rig = running_rig(intensity=0xC0, period_ms=10, width_us=150, knob_a=128, knob_b=255)
    now_s = rig.clock.now_s()
    rig.wait(1.0)
    a = rig.sim.record.interval_at("A", now_s + 0.5)
    b = rig.sim.record.interval_at("B", now_s + 0.5)
    assert a is not None and b is not None
    assert (a.strength_du, a.frequency_hz, a.pulse_width_us) == (64, 100.0, 150.0)
    assert a.intensity_pct == pytest.approx(100 * 128 / 255)
    assert b.intensity_pct == 100.0
    # knob/255 x (intensity-128)/127, in record units (x 127)
    assert a.output_du == pytest.approx(127 * (128 / 255) * (64 / 127))
    assert rig.sim.record.channels() == ["A", "B"]


@pytest.mark.parametrize(("intensity", "strength_du"), [(0, 0), (128, 0), (129, 1), (255, 127)])
def test_intensity_at_or_below_128_delivers_nothing(intensity: int, strength_du: int) -> None:
    rig = running_rig(intensity=intensity)
    rig.wait(0.1)
    interval = rig.sim.record.interval_at("A", rig.clock.now_s() - 0.05)
    assert interval is not None and interval.strength_du == strength_du
    assert (interval.output_du > 0) == (strength_du > 0)


def test_mute_zeroes_output_at_the_exact_time_and_unmute_restores_it() -> None:
    rig = running_rig()
    rig.wait(0.5)
    t_mute_s = rig.clock.now_s()
    rig.write(MUTE_FLAGS, 0x02)
    rig.wait(0.5)
    t_unmute_s = rig.clock.now_s()
    rig.write(MUTE_FLAGS, 0x00)
    rig.wait(0.5)
    record = rig.sim.record
    for channel in ("A", "B"):
        assert record.output_at(channel, t_mute_s - 1e-9) > 0.0
        assert record.output_at(channel, t_mute_s) == 0.0
        assert record.max_output(channel, t_mute_s, t_unmute_s - 1e-9) == 0.0
        assert record.output_at(channel, t_unmute_s) > 0.0
    muted = record.interval_at("A", t_mute_s)
    assert muted is not None and muted.start_s == t_mute_s and muted.end_s == t_unmute_s


def test_knob_changes_output_at_once() -> None:
    rig = running_rig(knob_a=128)
    rig.wait(0.2)
    t_s = rig.clock.now_s()
    before = rig.sim.record.output_at("A", t_s - 0.1)
    rig.sim.turn_knob("A", 127)
    rig.wait(0.2)
    after = rig.sim.record.interval_at("A", t_s)
    assert after is not None and after.start_s == t_s and after.intensity_pct == 100.0
    assert after.output_du > before
    rig.sim.turn_knob("A", -255)
    rig.wait(0.1)
    assert rig.sim.record.output_at("A", rig.clock.now_s() - 0.05) == 0.0
    assert rig.sim.record.output_at("B", rig.clock.now_s() - 0.05) == before


def test_register_write_starts_a_new_interval_at_the_exact_time() -> None:
    rig = running_rig(period_ms=10)
    rig.wait(0.25)
    t_s = rig.clock.now_s()
    rig.write(FREQUENCY_A, 20)
    rig.write(WIDTH_A + B, 100)
    rig.wait(0.25)
    a = rig.sim.record.interval_at("A", t_s)
    b = rig.sim.record.interval_at("B", t_s)
    assert a is not None and a.start_s == t_s and a.frequency_hz == 50.0
    assert b is not None and b.start_s == t_s and b.pulse_width_us == 100.0


def test_output_continues_after_disconnect_and_host_silence() -> None:
    rig = running_rig()
    t_s = rig.clock.now_s()
    rig.sim.disconnect()
    rig.sim.set_output(None)
    rig.clock.advance(3600.0)
    record = rig.sim.record
    assert record.first_time_output_zero_after("A", t_s) is None
    assert len(record.intervals("A")) <= 3  # one constant stretch, not one per poll
    assert record.output_at("A", t_s + 3599.0) > 0.0


def test_power_cycle_turns_output_off_until_a_mode_runs() -> None:
    rig = running_rig()
    rig.wait(0.1)
    t_s = rig.clock.now_s()
    rig.sim.power_cycle()
    rig.wait(1.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == t_s


def test_non_zero_select_makes_the_box_move_the_value_as_a_triangle() -> None:
    rig = running_rig(intensity=0xC0)
    rig.write(INTENSITY_A + 1, 0xC0)  # min
    rig.write(INTENSITY_A + 2, 0xC3)  # max
    rig.write(INTENSITY_A + SELECT, 0x01)
    mode_start_s = rig.clock.now_s()
    seen = []
    for step in range(1, 9):
        rig.clock.set(mode_start_s + step * MODULATION_STEP_S)
        seen.append(rig.sim.peek(INTENSITY_A))
    assert seen == [0xC1, 0xC2, 0xC3, 0xC2, 0xC1, 0xC0, 0xC1, 0xC2]
    assert rig.sim.peek(INTENSITY_A + B) == 0xC0  # B is static


def test_power_on_defaults_let_the_box_move_values_once_a_mode_runs(rig: Rig) -> None:
    rig.handshake()
    assert all(rig.read(r + SELECT) != 0 for r in (INTENSITY_A, FREQUENCY_A, WIDTH_A))
    before = rig.read(FREQUENCY_A)
    rig.wait(1.0)
    assert rig.read(FREQUENCY_A) == before  # the menu moves nothing
    rig.run_mode()
    rig.wait(1.0)
    assert rig.read(FREQUENCY_A) != before


def test_the_documented_host_session_from_connect_to_close() -> None:
    """docs/devices/et312.md "Connect": limits before output, frames, zero, key reset."""
    rig = make_rig(knob_a=200, knob_b=200)
    rig.handshake(host_key=0)
    assert rig.read(0x00FC) == 0x0C
    rig.write(MUTE_FLAGS, 0x02)
    rig.write(INTENSITY_A, 128)
    rig.write(INTENSITY_A + B, 128)
    rig.make_static()
    for base in (0, B):
        rig.write(FREQUENCY_A + base, 20)
        rig.write(WIDTH_A + base, 120)
    rig.run_mode(0x76)
    assert rig.sim.peek(MENU_STATE) == 0x02
    rig.wait(0.1)
    t_on_s = rig.clock.now_s()
    rig.write(INTENSITY_A, 128 + 64)
    rig.write(MUTE_FLAGS, 0x00)
    rig.wait(0.5)
    t_zero_s = rig.clock.now_s()
    rig.write(MUTE_FLAGS, 0x02)
    rig.write(INTENSITY_A, 128)
    rig.write(INTENSITY_A + B, 128)
    rig.write(KEY_ADDR, 0)
    rig.k = 0
    rig.sim.disconnect()
    rig.wait(10.0)
    record = rig.sim.record
    assert record.max_output("A", 0.0, t_on_s - 1e-9) == 0.0
    on = record.interval_at("A", t_on_s)
    assert on is not None and (on.start_s, on.end_s) == (t_on_s, t_zero_s)
    assert (on.strength_du, on.frequency_hz, on.pulse_width_us) == (64, 50.0, 120.0)
    assert record.max_output("B") == 0.0
    assert record.first_time_output_zero_after("A", 0.0) == t_zero_s
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
    for kwargs in ({"box_key": 256}, {"knob_a": -1}, {"knob_b": 300}, {"battery_percent": 101}):
        with pytest.raises(ValueError, match="must be within"):
            Et312Simulator(clock, **kwargs)
    assert Et312Simulator(clock).name == "ET-312"
    with pytest.raises(TypeError, match="bytes"):
        Et312Simulator(clock).feed("00")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
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
