"""The Pulse Pal 2 firmware emulator against ../shared/reference/devices.md section 4a.

The document's computed vectors are fed in as bytes. Every other message is laid out here by
hand from the document's op table (``struct``, little-endian), never with the host codec.
"""

from __future__ import annotations

import ast
import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import DeliveredInterval, VirtualClock
from simulators.pulsepal import (
    CHANNELS,
    DEFAULT_PARAMETERS,
    PROGRAM_ALL_PAYLOAD_SIZE,
    PulsePalSimulator,
    bits_to_volts,
    value_size,
    volts_to_bits,
)

ACK = b"\x01"
TIME_CODES = (4, 5, 6, 7, 8, 9, 10, 11)
VOLTAGE_CODES = (2, 3, 17)
BYTE_CODES = (1, 14, 15, 16)
LINK_CODES = (12, 13)


# -- messages laid out by hand ------------------------------------------------------------------


def op74(code: int, channel: int, value: int) -> bytes:
    """Op 74: uint8 for flags/links/modes, uint16 for voltages, uint32 cycles for times."""
    if code in TIME_CODES:
        packed = struct.pack("<I", value)
    elif code in VOLTAGE_CODES:
        packed = struct.pack("<H", value)
    else:
        packed = struct.pack("<B", value)
    return bytes([0xD5, 74, code, channel]) + packed


def volts(v: float) -> int:
    """The document's formula, written out again: ceil((V + 10) / 20 * 65535)."""
    return max(0, min(65535, math.ceil((v + 10) / 20 * 65535)))


def trigger(mask: int) -> bytes:
    return bytes([0xD5, 77, mask])


def loop82_v22(channel: int, state: int) -> bytes:
    return bytes([0xD5, 82, channel, state])


def loop82_v21(state: int, channel0: int) -> bytes:
    return bytes([0xD5, 82, state, channel0])


ABORT = bytes([0xD5, 80])
HANDSHAKE = bytes([0xD5, 72])


def custom_train(number: int, pulses: Sequence[tuple[int, int]]) -> bytes:
    onsets = b"".join(struct.pack("<I", onset) for onset, _ in pulses)
    levels = b"".join(struct.pack("<H", bits) for _, bits in pulses)
    return bytes([0xD5, 74 + number]) + struct.pack("<I", len(pulses)) + onsets + levels


Values = dict[str, dict[int, int]]


def program_all(values: Values, trigger_modes: tuple[int, int], *, by_channel: bool) -> bytes:
    """Op 73 laid out per block (times, voltages, params, links), grouped as asked."""
    body = b""
    for codes, fmt in ((TIME_CODES, "<I"), (VOLTAGE_CODES, "<H"), (BYTE_CODES, "<B")):
        body += _block(values, codes, fmt, by_channel)
    body += _block(values, LINK_CODES, "<B", by_channel)
    body += bytes(trigger_modes)
    return bytes([0xD5, 73]) + body


def _block(values: Values, codes: Sequence[int], fmt: str, by_channel: bool) -> bytes:
    if by_channel:
        order = [(ch, code) for ch in CHANNELS for code in codes]
    else:
        order = [(ch, code) for code in codes for ch in CHANNELS]
    return b"".join(struct.pack(fmt, values[ch][code]) for ch, code in order)


def distinct_values() -> Values:
    """A value per (channel, code) that differs from every other one of its block."""
    values: Values = {}
    for i, ch in enumerate(CHANNELS):
        values[ch] = {}
        for j, code in enumerate(TIME_CODES):
            values[ch][code] = 1000 + 10 * j + i
        for j, code in enumerate(VOLTAGE_CODES):
            values[ch][code] = 40000 + 10 * j + i
        for j, code in enumerate(BYTE_CODES):
            values[ch][code] = 10 * j + i
        for j, code in enumerate(LINK_CODES):
            values[ch][code] = 100 + 10 * j + i
    return values


# -- rig ---------------------------------------------------------------------------------------


@dataclass
class Rig:
    clock: VirtualClock
    sim: PulsePalSimulator
    replies: list[bytes] = field(default_factory=list)

    def send(self, *messages: bytes) -> bytes:
        """Feed the messages, return what the device answered to them."""
        before = len(self.replies)
        for message in messages:
            self.sim.feed(message)
        return b"".join(self.replies[before:])

    def at(self, t_s: float) -> Rig:
        self.clock.set(t_s)
        return self


def make_rig(firmware_version: int = 22) -> Rig:
    clock = VirtualClock()
    sim = PulsePalSimulator(clock, firmware_version=firmware_version)
    rig = Rig(clock, sim)
    sim.set_output(rig.replies.append)
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def running(interval: DeliveredInterval | None) -> bool:
    return interval is not None and interval.intensity_pct == 100.0


# -- the document's vectors ---------------------------------------------------------------------


def test_zero_volts_encodes_as_32768_and_decodes_to_0_mv() -> None:
    assert volts_to_bits(0.0) == 32768 == volts(0.0)
    assert round(bits_to_volts(32768) * 1000) == 0


@pytest.mark.parametrize("v", [-10.0, -5.0, -0.001, 0.0, 0.25, 5.0, 9.999, 10.0])
def test_voltage_bits_follow_the_documented_formula_and_decode_back(v: float) -> None:
    bits = volts_to_bits(v)
    assert bits == volts(v)
    assert bits_to_volts(bits) == pytest.approx(v, abs=20 / 65535)


def test_voltage_bits_clamp_to_16_bits() -> None:
    assert volts_to_bits(-12.0) == 0
    assert volts_to_bits(12.0) == 65535
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        bits_to_volts(65536)


def test_vector_d5_4f_01_00_80_sets_output_1_to_fixed_0v_and_acks(rig: Rig) -> None:
    assert rig.send(bytes.fromhex("D5 4F 01 00 80")) == ACK
    assert rig.sim.record.events_of("fixed_voltage")[0][2].startswith("A fixed at +0.0002 V")
    rig.at(1.0)
    assert rig.sim.record.max_output("A") == 0.0


def test_vector_d5_4a_04_01_14_sets_output_1_phase1_duration_to_1ms(rig: Rig) -> None:
    assert rig.send(bytes.fromhex("D5 4A 04 01 14 00 00 00")) == ACK
    assert rig.sim.parameters("A")[4] == 20
    assert rig.sim.parameters("B")[4] == DEFAULT_PARAMETERS[4]


def test_defaults_are_plus_minus_5v_1ms_phases_10ms_interpulse_1s_train(rig: Rig) -> None:
    for channel in CHANNELS:
        params = rig.sim.parameters(channel)
        assert params[2] == volts(5.0) and params[3] == volts(-5.0)
        assert params[4] == params[6] == 20
        assert params[7] == 200
        assert params[10] == 20000
        assert params[17] == 32768
        assert not rig.sim.continuous_loop(channel)


def test_value_size_follows_the_code(rig: Rig) -> None:
    assert [value_size(c) for c in (1, 12, 13, 14, 15, 16, 128)] == [1] * 7
    assert [value_size(c) for c in (2, 3, 17)] == [2] * 3
    assert [value_size(c) for c in TIME_CODES] == [4] * 8
    assert value_size(0) is None and value_size(18) is None


@pytest.mark.parametrize(
    ("code", "value"),
    [(1, 0), (2, 65535), (3, 0), (5, 7), (7, 1234567), (10, 72_000_000), (16, 1), (17, 40000)],
)
def test_op74_stores_each_code_with_its_value_size(rig: Rig, code: int, value: int) -> None:
    assert rig.send(op74(code, 3, value)) == ACK
    assert rig.sim.parameters("C")[code] == value


def test_op74_trigger_mode_addresses_a_trigger_input(rig: Rig) -> None:
    assert rig.send(op74(128, 2, 1)) == ACK
    assert rig.sim.trigger_modes == (0, 1)
    assert rig.send(op74(128, 3, 1)) == b""
    assert rig.sim.record.events_of("bad_channel")


# -- handshake, texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("firmware", "reply"), [(21, "4b 15 00 00 00"), (22, "4b 16 00 00 00")])
def test_handshake_replies_75_then_the_uint32_firmware_version(firmware: int, reply: str) -> None:
    rig = make_rig(firmware)
    assert rig.send(HANDSHAKE) == bytes.fromhex(reply)
    assert rig.sim.firmware_version == firmware
    assert rig.sim.name == "Pulse Pal 2"


def test_a_pulse_pal_1_version_can_be_reported_for_host_refusal_tests() -> None:
    assert make_rig(19).send(HANDSHAKE) == bytes.fromhex("4b 13 00 00 00")


@pytest.mark.parametrize("bad", [-1, 2**32])
def test_firmware_version_must_fit_a_uint32(bad: int) -> None:
    with pytest.raises(ValueError, match="uint32"):
        PulsePalSimulator(VirtualClock(), firmware_version=bad)


def test_client_name_is_the_ascii_text_up_to_the_next_message(rig: Rig) -> None:
    assert rig.send(b"\xd5\x59ACUSTIM") == b""
    assert rig.sim.client_name == "ACUSTIM"
    assert rig.send(HANDSHAKE)[:1] == b"\x4b"
    assert rig.sim.client_name == "ACUSTIM"
    assert rig.sim.record.events_of("client_name")[-1][2] == "'ACUSTIM'"


def test_client_name_split_across_writes_is_joined(rig: Rig) -> None:
    rig.send(b"\xd5", b"\x59AC", b"US", b"TIM", b"\xd5\x48")
    assert rig.sim.client_name == "ACUSTIM"
    assert rig.replies == [bytes.fromhex("4b 16 00 00 00")]


def test_a_non_printable_byte_ends_the_name_and_is_skipped_as_noise(rig: Rig) -> None:
    rig.send(b"\xd5\x59PY\x00THON", op74(4, 1, 40))
    assert rig.sim.client_name == "PY"
    assert rig.sim.parameters("A")[4] == 40
    assert "00 54 48 4f 4e" in rig.sim.record.events_of("bytes_ignored")[0][2]


def test_op81_disconnect_clears_the_name_sends_nothing_and_keeps_trains(rig: Rig) -> None:
    rig.send(b"\xd5\x59ACUSTIM", loop82_v22(1, 1), trigger(0b0001))
    assert rig.send(bytes([0xD5, 81])) == b""
    assert rig.sim.client_name == ""
    rig.at(10.0)
    assert rig.sim.is_running("A")


def test_oled_text_is_stored_without_reply(rig: Rig) -> None:
    assert rig.send(b"\xd5\x4eHello world", HANDSHAKE) == bytes.fromhex("4b 16 00 00 00")
    assert rig.sim.oled_text == "Hello world"


# -- op 73 program all --------------------------------------------------------------------------


def test_program_all_payload_is_178_bytes() -> None:
    assert PROGRAM_ALL_PAYLOAD_SIZE == 32 * 4 + 12 * 2 + 16 + 8 + 2


@pytest.mark.parametrize(("firmware", "by_channel"), [(21, False), (22, True)])
def test_program_all_reads_the_grouping_of_its_firmware(firmware: int, by_channel: bool) -> None:
    rig = make_rig(firmware)
    values = distinct_values()
    assert rig.send(program_all(values, (1, 2), by_channel=by_channel)) == ACK
    for channel in CHANNELS:
        assert rig.sim.parameters(channel) == values[channel]
    assert rig.sim.trigger_modes == (1, 2)


@pytest.mark.parametrize(("firmware", "by_channel"), [(21, True), (22, False)])
def test_program_all_in_the_wrong_grouping_is_acked_but_programs_wrong_values(
    firmware: int, by_channel: bool
) -> None:
    rig = make_rig(firmware)
    values = distinct_values()
    assert rig.send(program_all(values, (0, 0), by_channel=by_channel)) == ACK
    wrong = {ch: rig.sim.parameters(ch) for ch in CHANNELS}
    assert wrong != values
    # Output 1's first time value lands right either way; the rest are shuffled.
    assert wrong["A"][4] == values["A"][4]
    if firmware == 21:  # by-channel stream A4 A5 A6 ... read as A4 B4 C4 ...
        assert (wrong["B"][4], wrong["A"][5]) == (values["A"][5], values["A"][8])
    else:  # by-parameter stream A4 B4 C4 ... read as A4 A5 A6 ...
        assert (wrong["A"][5], wrong["B"][4]) == (values["B"][4], values["A"][6])


def test_program_all_split_byte_by_byte_acks_once_at_the_last_byte(rig: Rig) -> None:
    message = program_all(distinct_values(), (0, 1), by_channel=True)
    for byte in message[:-1]:
        assert rig.send(bytes([byte])) == b""
    assert rig.send(message[-1:]) == ACK
    assert rig.sim.parameters("D") == distinct_values()["D"]


# -- op 82 continuous loop ----------------------------------------------------------------------


def test_op82_on_firmware_22_reads_channel_1_to_4_then_state() -> None:
    rig = make_rig(22)
    assert rig.send(loop82_v22(3, 1)) == ACK
    assert [rig.sim.continuous_loop(ch) for ch in CHANNELS] == [False, False, True, False]
    assert rig.send(loop82_v22(3, 0)) == ACK
    assert not rig.sim.continuous_loop("C")


def test_op82_on_firmware_21_reads_state_then_0_based_channel() -> None:
    rig = make_rig(21)
    assert rig.send(loop82_v21(1, 3)) == ACK
    assert [rig.sim.continuous_loop(ch) for ch in CHANNELS] == [False, False, False, True]


def test_op82_in_the_v22_order_on_firmware_21_switches_the_wrong_thing() -> None:
    rig = make_rig(21)
    # Meant: channel 1 off. Read as: state 1 (on) for 0-based channel 0 = output 1.
    assert rig.send(loop82_v22(1, 0)) == ACK
    assert rig.sim.continuous_loop("A")
    # Meant: channel 3 on. Read as: state 3 (on) for 0-based channel 1 = output 2.
    rig.send(loop82_v22(3, 1))
    assert not rig.sim.continuous_loop("C") and rig.sim.continuous_loop("B")


def test_op82_in_the_v21_order_on_firmware_22_is_refused_or_wrong() -> None:
    rig = make_rig(22)
    # Meant: output 1 (0-based 0) on. Read as channel 1, state 0.
    assert rig.send(loop82_v21(1, 0)) == ACK
    assert not rig.sim.continuous_loop("A")
    # Meant: output 2 off. Read as channel 0: no such channel, no reply.
    assert rig.send(loop82_v21(0, 1)) == b""
    assert rig.sim.record.events_of("bad_channel")


# -- trains -------------------------------------------------------------------------------------


def test_a_train_starts_after_its_delay_and_stops_after_its_duration(rig: Rig) -> None:
    rig.send(op74(11, 1, 10_000), op74(10, 1, 20_000))  # 0.5 s delay, 1 s train
    rig.at(1.0).send(trigger(0b0001))
    rig.at(1.2)
    assert rig.sim.train_state("A") == "waiting"
    rig.at(4.0)
    assert rig.sim.train_state("A") == "idle"
    record = rig.sim.record
    assert not running(record.interval_at("A", 1.499999))
    interval = record.interval_at("A", 1.5)
    assert interval is not None and running(interval)
    assert (interval.start_s, interval.end_s) == (1.5, 2.5)
    assert interval.strength_du == 5000
    assert interval.frequency_hz == pytest.approx(20000 / (20 + 20 + 20 + 200))
    assert interval.pulse_width_us == 1000.0
    assert record.first_time_output_zero_after("A", 0.0) == 2.5
    assert [e[1] for e in record.events if e[1].startswith("train")] == [
        "train_start",
        "train_end",
    ]
    for channel in "BCD":
        assert record.max_output(channel) == 0.0


def test_a_monophasic_train_counts_only_phase_1_and_the_interpulse_interval(rig: Rig) -> None:
    rig.send(op74(1, 2, 0), op74(4, 2, 4), op74(7, 2, 196), op74(2, 2, volts(-2.5)))
    rig.send(trigger(0b0010))
    rig.at(0.5)
    interval = rig.sim.record.interval_at("B", 0.25)
    assert interval is not None and running(interval)
    assert interval.frequency_hz == 100.0
    assert interval.pulse_width_us == 200.0
    assert interval.strength_du == 2500


def test_continuous_loop_keeps_a_train_running_past_its_duration(rig: Rig) -> None:
    rig.send(loop82_v22(1, 1), trigger(0b0001))
    rig.at(100.0)
    assert rig.sim.is_running("A")
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) is None


def test_abort_stops_every_train_at_its_exact_time_without_reply(rig: Rig) -> None:
    rig.send(loop82_v22(1, 1), loop82_v22(4, 1), trigger(0b1001))
    assert rig.at(2.345).send(ABORT) == b""
    rig.at(3.0)
    record = rig.sim.record
    for channel in "AD":
        assert record.first_time_output_zero_after(channel, 0.0) == 2.345
        assert record.max_output(channel, 2.345) == 0.0
        assert record.max_output(channel, 2.3449) == 5000.0
    assert rig.sim.continuous_loop("A")


def test_the_record_has_no_interval_for_time_not_yet_played(rig: Rig) -> None:
    rig.send(loop82_v22(1, 1), trigger(0b0001))
    rig.at(1.0)
    assert rig.sim.record.end_s == 1.0
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) is None


def test_a_parameter_change_during_a_train_takes_effect_at_that_instant(rig: Rig) -> None:
    rig.send(loop82_v22(1, 1), trigger(0b0001))
    rig.at(0.3).send(op74(2, 1, volts(1.0)))
    rig.at(0.7).send(op74(4, 1, 10))
    rig.at(1.0)
    intervals = rig.sim.record.intervals("A")
    assert [(iv.start_s, iv.end_s, iv.strength_du, iv.pulse_width_us) for iv in intervals] == [
        (0.0, 0.3, 5000, 1000.0),
        (0.3, 0.7, 1000, 1000.0),
        (0.7, 1.0, 1000, 500.0),
    ]


def test_rewriting_an_unchanged_value_continues_the_same_interval(rig: Rig) -> None:
    rig.send(loop82_v22(1, 1), trigger(0b0001))
    rig.at(0.5).send(op74(2, 1, DEFAULT_PARAMETERS[2]))
    rig.at(1.0)
    assert len(rig.sim.record.intervals("A")) == 1


def test_shortening_the_duration_below_the_elapsed_time_ends_the_train_at_once(rig: Rig) -> None:
    rig.send(trigger(0b0001))
    rig.at(0.6).send(op74(10, 1, 2000))  # 0.1 s, already past
    rig.at(1.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 0.6


def test_switching_the_loop_off_ends_the_train_after_its_duration(rig: Rig) -> None:
    rig.send(loop82_v22(1, 1), trigger(0b0001))
    rig.at(0.4).send(loop82_v22(1, 0))
    rig.at(2.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 1.0


def test_a_delay_change_after_the_start_does_not_move_a_running_train(rig: Rig) -> None:
    rig.send(trigger(0b0001))
    rig.at(0.5).send(op74(11, 1, 10_000))
    rig.at(2.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 1.0


def test_a_retrigger_restarts_a_running_train(rig: Rig) -> None:
    rig.send(trigger(0b0001))
    rig.at(0.8).send(trigger(0b0001))
    rig.at(3.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == pytest.approx(1.8)


def test_soft_trigger_mask_bits_select_outputs_and_high_bits_are_ignored(rig: Rig) -> None:
    assert rig.send(trigger(0b1111_0110)) == b""
    rig.at(0.5)
    assert [rig.sim.is_running(ch) for ch in CHANNELS] == [False, True, True, False]


def test_bursts_alternate_on_and_off_from_the_train_start(rig: Rig) -> None:
    rig.send(op74(8, 1, 2000), op74(9, 1, 6000))  # 0.1 s on, 0.3 s off
    rig.send(trigger(0b0001))
    rig.at(1.5)
    on = [t for iv in rig.sim.record.intervals("A") if running(iv) for t in (iv.start_s, iv.end_s)]
    assert on == pytest.approx([0.0, 0.1, 0.4, 0.5, 0.8, 0.9])


def test_fixed_voltage_stops_the_train_and_holds_a_dc_level_until_abort(rig: Rig) -> None:
    rig.send(loop82_v22(2, 1), trigger(0b0010))
    assert rig.at(1.0).send(bytes([0xD5, 79, 2]) + struct.pack("<H", volts(-3.0))) == ACK
    rig.at(2.0).send(ABORT)
    rig.at(3.0)
    record = rig.sim.record
    dc = record.interval_at("B", 1.5)
    assert dc is not None
    assert (dc.strength_du, dc.frequency_hz, dc.intensity_pct) == (3000, 0.0, 100.0)
    assert dc.pulse_width_us is None
    assert record.first_time_output_zero_after("B", 0.0) == 2.0


def test_a_non_zero_resting_voltage_is_recorded_as_dc_output(rig: Rig) -> None:
    rig.send(op74(17, 4, volts(1.5)))
    rig.at(1.0)
    assert rig.sim.record.output_at("D", 0.5) == 1500.0


def test_custom_trains_are_stored_and_acked(rig: Rig) -> None:
    pulses = [(0, volts(2.0)), (200, volts(-4.0)), (400, volts(1.0))]
    assert rig.send(custom_train(1, pulses)) == ACK
    assert rig.send(custom_train(2, [])) == ACK
    assert rig.sim.custom_train(1) == tuple(pulses)
    assert rig.sim.custom_train(2) == ()


def test_a_custom_train_plays_its_largest_level_at_its_mean_rate_until_its_last_pulse(
    rig: Rig,
) -> None:
    pulses = [(0, volts(2.0)), (200, volts(-4.0)), (400, volts(1.0))]
    rig.send(custom_train(1, pulses), op74(14, 1, 1), trigger(0b0001))
    rig.at(1.0)
    interval = rig.sim.record.interval_at("A", 0.0)
    assert interval is not None and running(interval)
    assert interval.strength_du == 4000
    assert interval.frequency_hz == 100.0
    assert interval.end_s == pytest.approx((400 + 60) / 20000)


def test_a_custom_train_longer_than_the_limit_is_refused() -> None:
    rig = make_rig()
    sim = PulsePalSimulator(rig.clock, max_custom_pulses=2)
    replies: list[bytes] = []
    sim.set_output(replies.append)
    sim.feed(custom_train(2, [(0, 1), (1, 2), (2, 3)]) + HANDSHAKE)
    assert replies == [bytes.fromhex("4b 16 00 00 00")]
    assert sim.custom_train(2) == ()
    assert sim.record.events_of("custom_train_rejected")


# -- framing ------------------------------------------------------------------------------------


def test_bytes_before_d5_are_ignored_until_the_next_d5(rig: Rig) -> None:
    assert rig.send(b"\x00\x48\x4a\xff" + HANDSHAKE) == bytes.fromhex("4b 16 00 00 00")
    assert rig.sim.record.events_of("bytes_ignored")[0][2] == "not after 0xD5: 00 48 4a ff"


def test_a_split_op74_waits_for_its_remaining_bytes(rig: Rig) -> None:
    message = op74(10, 2, 123_456)
    assert rig.send(message[:5]) == b""
    rig.at(5.0)
    assert rig.sim.parameters("B")[10] == 20000
    assert rig.send(message[5:]) == ACK
    assert rig.sim.parameters("B")[10] == 123_456


def test_a_d5_inside_a_value_is_data(rig: Rig) -> None:
    assert rig.send(op74(7, 1, 0xD5D5)) == ACK
    assert rig.sim.parameters("A")[7] == 0xD5D5


def test_a_message_cut_short_takes_the_next_messages_bytes_as_its_own(rig: Rig) -> None:
    cut = op74(10, 1, 1)[:-2]  # two value bytes missing
    replies = rig.send(cut, HANDSHAKE, HANDSHAKE)
    # The first handshake became the value's last two bytes; the second is answered.
    assert replies == ACK + bytes.fromhex("4b 16 00 00 00")
    assert rig.sim.parameters("A")[10] == 0x48D5_0000 + 1


def test_an_unknown_op_is_skipped_to_the_next_d5(rig: Rig) -> None:
    assert rig.send(bytes([0xD5, 0x10, 1, 2, 3]) + HANDSHAKE)[:1] == b"\x4b"
    assert rig.sim.record.events_of("unknown_op")[0][2] == "op 16 (0x10) ignored"


def test_a_d5_op_byte_is_an_unknown_op(rig: Rig) -> None:
    assert rig.send(b"\xd5" + HANDSHAKE) == b""
    assert rig.sim.record.events_of("unknown_op")


def test_an_unknown_parameter_code_gets_no_reply(rig: Rig) -> None:
    assert rig.send(bytes([0xD5, 74, 99, 1, 5]) + HANDSHAKE) == bytes.fromhex("4b 16 00 00 00")
    assert rig.sim.record.events_of("unknown_parameter")
    assert rig.sim.parameters("A") == dict(DEFAULT_PARAMETERS)


@pytest.mark.parametrize(
    "message",
    [op74(4, 0, 5), op74(4, 5, 5), bytes([0xD5, 79, 0, 0, 0x80]), bytes([0xD5, 79, 5, 0, 0])],
)
def test_a_channel_out_of_range_changes_nothing_and_gets_no_reply(rig: Rig, message: bytes) -> None:
    assert rig.send(message) == b""
    assert all(rig.sim.parameters(ch) == dict(DEFAULT_PARAMETERS) for ch in CHANNELS)
    assert rig.sim.record.events_of("bad_channel")


SCENARIO = (
    b"\xd5\x48",
    b"\xd5\x59ACUSTIM",
    op74(2, 1, volts(3.0)),
    op74(4, 1, 6),
    op74(7, 1, 1000),
    loop82_v22(1, 1),
    op74(11, 2, 2000),
    trigger(0b0011),
    op74(2, 1, volts(7.5)),
    custom_train(1, [(0, volts(1.0)), (0xD5, volts(-1.0))]),
    program_all(distinct_values(), (1, 0), by_channel=True),
    b"\xd5\x4a\x0a\x02\x40\x0d\x03\x00",
    ABORT,
    op74(2, 2, volts(0.5)),
    trigger(0b0100),
    b"\xd5\x4e" + b"done",
)


def play_scenario(chunks: Sequence[bytes], step_s: float) -> tuple[Rig, list[object]]:
    rig = make_rig()
    stream = b"".join(SCENARIO)
    bounds = list(itertools.accumulate(len(m) for m in SCENARIO))
    fed = 0
    for chunk in chunks:
        rig.sim.feed(chunk)
        fed += len(chunk)
        if fed in bounds:
            rig.clock.advance(step_s)
    assert fed == len(stream)
    rig.clock.set(10.0)
    record = rig.sim.record
    return rig, [record.intervals(), record.events_of("train_start"), b"".join(rig.replies)]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=40))
def test_split_delivery_gives_identical_results(cuts: list[int]) -> None:
    stream = b"".join(SCENARIO)
    points = sorted(
        {c for c in cuts if c < len(stream)} | set(itertools.accumulate(map(len, SCENARIO)))
    )
    chunks = [stream[a:b] for a, b in itertools.pairwise([0, *points]) if b > a]
    whole_rig, whole = play_scenario(list(SCENARIO), 0.25)
    split_rig, split = play_scenario(chunks, 0.25)
    assert split == whole
    for channel in CHANNELS:
        assert split_rig.sim.parameters(channel) == whole_rig.sim.parameters(channel)
    assert split_rig.sim.client_name == whole_rig.sim.client_name == "ACUSTIM"
    assert split_rig.sim.oled_text == "done"


# -- link faults and the physical device --------------------------------------------------------


def test_output_keeps_running_after_the_host_disconnects(rig: Rig) -> None:
    rig.send(b"\xd5\x59ACUSTIM", loop82_v22(1, 1), trigger(0b0001))
    rig.at(1.0)
    rig.sim.disconnect()
    rig.at(60.0)
    assert rig.sim.is_running("A")
    assert rig.sim.record.output_at("A", 59.0) == 5000.0
    assert rig.sim.client_name == ""


def test_disconnect_drops_a_partial_message(rig: Rig) -> None:
    rig.send(op74(4, 1, 40)[:4])
    rig.sim.disconnect()
    assert rig.send(HANDSHAKE) == bytes.fromhex("4b 16 00 00 00")
    assert rig.sim.parameters("A")[4] == 20


def test_power_cycle_restores_defaults_and_stops_trains(rig: Rig) -> None:
    rig.send(
        b"\xd5\x59ACUSTIM",
        op74(2, 1, volts(9.0)),
        op74(128, 1, 2),
        loop82_v22(1, 1),
        custom_train(2, [(0, 1)]),
        trigger(0b0001),
        op74(4, 1, 99)[:5],
    )
    rig.at(2.0)
    rig.sim.power_cycle()
    assert rig.sim.train_state("A") == "idle"
    assert all(rig.sim.parameters(ch) == dict(DEFAULT_PARAMETERS) for ch in CHANNELS)
    assert not rig.sim.continuous_loop("A")
    assert rig.sim.trigger_modes == (0, 0)
    assert rig.sim.custom_train(2) == ()
    assert rig.sim.client_name == ""
    assert rig.send(HANDSHAKE) == bytes.fromhex("4b 16 00 00 00")
    rig.at(3.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 2.0


def test_stop_answering_obeys_the_bytes_but_sends_nothing(rig: Rig) -> None:
    rig.sim.stop_answering(True)
    assert rig.send(HANDSHAKE, op74(4, 1, 40), loop82_v22(1, 1), trigger(0b0001)) == b""
    rig.at(5.0)
    assert rig.sim.parameters("A")[4] == 40
    assert rig.sim.is_running("A")
    rig.sim.stop_answering(False)
    assert rig.send(HANDSHAKE) == bytes.fromhex("4b 16 00 00 00")


def test_no_output_callback_drops_replies_quietly(rig: Rig) -> None:
    rig.sim.set_output(None)
    rig.send(HANDSHAKE, op74(4, 1, 40))
    assert rig.replies == []
    assert rig.sim.parameters("A")[4] == 40


def test_front_panel_change_applies_at_once_and_is_recorded(rig: Rig) -> None:
    rig.send(loop82_v22(3, 1), trigger(0b0100))
    rig.at(1.0)
    rig.sim.front_panel_set("C", 2, volts(10.0))
    rig.at(2.0)
    record = rig.sim.record
    assert record.output_at("C", 0.99) == 5000.0
    assert record.output_at("C", 1.0) == 10000.0
    assert record.events_of("front_panel") == [
        (1.0, "front_panel", "C phase1Voltage (code 2) = 65535")
    ]


@pytest.mark.parametrize(
    ("channel", "code", "value"), [("E", 2, 0), ("A", 0, 0), ("A", 128, 0), ("A", 1, 256)]
)
def test_front_panel_refuses_what_the_menu_cannot_set(channel: str, code: int, value: int) -> None:
    with pytest.raises(ValueError, match=r"channel|code|fit"):
        make_rig().sim.front_panel_set(channel, code, value)


def test_trigger_input_starts_linked_outputs_and_toggles_in_mode_1(rig: Rig) -> None:
    rig.send(op74(12, 1, 1), op74(12, 3, 1), op74(13, 2, 1), loop82_v22(1, 1))
    rig.sim.trigger_input(1)
    rig.at(0.5)
    assert [rig.sim.is_running(ch) for ch in CHANNELS] == [True, False, True, False]
    rig.send(op74(128, 1, 1))
    rig.sim.trigger_input(1)
    assert not rig.sim.is_running("A")
    rig.sim.trigger_input(1)
    assert rig.sim.is_running("A")


def test_a_reply_callback_may_feed_the_simulator_again() -> None:
    clock = VirtualClock()
    sim = PulsePalSimulator(clock)
    replies: list[bytes] = []

    def on_reply(data: bytes) -> None:
        replies.append(data)
        if len(replies) == 1:
            sim.feed(op74(4, 1, 40))

    sim.set_output(on_reply)
    sim.feed(HANDSHAKE)
    assert replies == [bytes.fromhex("4b 16 00 00 00"), ACK]


def test_feed_refuses_non_bytes() -> None:
    with pytest.raises(TypeError, match="bytes"):
        PulsePalSimulator(VirtualClock()).feed("D548")  # type: ignore[arg-type]


def test_advance_to_plays_ahead_of_the_clock_and_refuses_non_finite_times(rig: Rig) -> None:
    rig.send(trigger(0b0001))
    rig.sim.advance_to(3.0)
    assert rig.sim.now_s == 3.0
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 1.0
    with pytest.raises(ValueError, match="finite"):
        rig.sim.advance_to(math.inf)


# -- robustness ---------------------------------------------------------------------------------

_messages = st.one_of(
    st.binary(max_size=12),
    st.binary(max_size=10).map(lambda rest: b"\xd5" + rest),
    st.tuples(
        st.sampled_from([1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 16, 17, 128, 0, 200]),
        st.integers(0, 5),
        st.integers(0, 2**32 - 1),
    ).map(lambda t: bytes([0xD5, 74, t[0], t[1]]) + t[2].to_bytes(4, "little")),
    st.sampled_from([trigger(0x0F), ABORT, loop82_v22(1, 1), loop82_v22(2, 1), HANDSHAKE]),
    st.binary(max_size=8).map(lambda rest: bytes([0xD5, 75]) + rest),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(_messages, st.floats(min_value=0.0, max_value=0.5, allow_nan=False)),
        max_size=40,
    ),
    firmware=st.sampled_from([21, 22]),
)
def test_random_byte_streams_never_raise_and_keep_the_record_sound(
    steps: list[tuple[bytes, float]], firmware: int
) -> None:
    clock = VirtualClock()
    sim = PulsePalSimulator(clock, firmware_version=firmware, max_custom_pulses=50)
    sim.set_output(lambda _data: None)
    for data, dt_s in steps:
        sim.feed(data)
        clock.advance(dt_s)
    clock.advance(1.0)
    record = sim.record
    assert record.end_s == clock.now_s()
    for channel in CHANNELS:
        intervals = record.intervals(channel)
        assert intervals[0].start_s == 0.0 and intervals[-1].end_s == clock.now_s()
        for earlier, later in itertools.pairwise(intervals):
            assert earlier.end_s == later.start_s
        for interval in intervals:
            assert 0 <= interval.strength_du <= 10_000
            assert interval.intensity_pct in (0.0, 100.0)


# -- independence -------------------------------------------------------------------------------


def test_the_simulator_imports_nothing_from_the_host_side() -> None:
    path = Path(__file__).resolve().parents[2] / "simulators" / "pulsepal.py"
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.append(node.module or "")
    host_side = {"firmware_bridge", "safety", "acustim", "gui"}
    assert imported and not [name for name in imported if name.split(".")[0] in host_side]
