"""The Coyote 3.0 firmware emulator against ../shared/reference/devices.md section 1.

Every official and computed test vector of the document is fed in as bytes. Frames other than
the vectors are built here by hand from the documented layout (not with the host codec).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import Coyote3Simulator, DeliveredInterval, FunctionClock, VirtualClock
from simulators.coyote3 import (
    ADVERTISED_NAME,
    BATTERY_CHAR_UUID,
    BATTERY_SERVICE_UUID,
    NOTIFY_CHAR_UUID,
    SAMPLE_PERIOD_S,
    SERVICE_UUID,
    WRITE_CHAR_UUID,
    decode_period_ms,
)

OFF = (0, 0, 0, 101)  # the official way to silence a channel: an intensity of 101
FLAT = (10, 10, 10, 10)
MODE_NONE, MODE_ADD, MODE_SUBTRACT, MODE_SET = 0b00, 0b01, 0b10, 0b11


def b0(
    *,
    seq: int = 0,
    mode_a: int = MODE_NONE,
    mode_b: int = MODE_NONE,
    value_a: int = 0,
    value_b: int = 0,
    freq_a: Sequence[int] = FLAT,
    int_a: Sequence[int] = (100, 100, 100, 100),
    freq_b: Sequence[int] = FLAT,
    int_b: Sequence[int] = OFF,
) -> bytes:
    """A B0 frame laid out by hand from the document's byte table."""
    return bytes(
        [
            0xB0,
            (seq << 4) | (mode_a << 2) | mode_b,
            value_a,
            value_b,
            *freq_a,
            *int_a,
            *freq_b,
            *int_b,
        ]
    )


@dataclass
class Rig:
    clock: VirtualClock
    sim: Coyote3Simulator
    notes: list[tuple[str, bytes]] = field(default_factory=list)

    def on_notify(self, char_uuid: str, payload: bytes) -> None:
        self.notes.append((char_uuid, payload))

    def b1(self) -> list[bytes]:
        return [payload for uuid, payload in self.notes if uuid == NOTIFY_CHAR_UUID]

    def battery(self) -> list[bytes]:
        return [payload for uuid, payload in self.notes if uuid == BATTERY_CHAR_UUID]

    def write(self, data: bytes) -> None:
        self.sim.write(WRITE_CHAR_UUID, data)

    def write_hex(self, hex_text: str) -> None:
        self.sim.write(WRITE_CHAR_UUID, bytes.fromhex(hex_text))

    def set_strength_quietly(self, a_du: int, b_du: int) -> None:
        """Bring strengths to a start value with the wheel, then forget its notifications."""
        self.sim.turn_wheel("A", a_du - self.sim.strength_du("A"))
        self.sim.turn_wheel("B", b_du - self.sim.strength_du("B"))
        self.notes.clear()


def make_rig(max_pending_blocks: int = 2, **kwargs: bool) -> Rig:
    clock = VirtualClock()
    rig = Rig(clock, Coyote3Simulator(clock, max_pending_blocks=max_pending_blocks, **kwargs))
    rig.sim.start_notify(NOTIFY_CHAR_UUID, rig.on_notify)
    rig.sim.start_notify(BATTERY_CHAR_UUID, rig.on_notify)
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def playing(intervals: list[DeliveredInterval]) -> list[DeliveredInterval]:
    return [iv for iv in intervals if iv.frequency_hz > 0.0]


# -- GATT, name, battery --------------------------------------------------------------------------


def test_gatt_uuids_and_advertised_name_match_the_document(rig: Rig) -> None:
    assert SERVICE_UUID == "0000180c-0000-1000-8000-00805f9b34fb"
    assert WRITE_CHAR_UUID == "0000150a-0000-1000-8000-00805f9b34fb"
    assert NOTIFY_CHAR_UUID == "0000150b-0000-1000-8000-00805f9b34fb"
    assert BATTERY_SERVICE_UUID == "0000180a-0000-1000-8000-00805f9b34fb"
    assert BATTERY_CHAR_UUID == "00001500-0000-1000-8000-00805f9b34fb"
    assert rig.sim.name == ADVERTISED_NAME == "47L121000"


def test_battery_read_returns_one_byte_percent() -> None:
    sim = Coyote3Simulator(VirtualClock(), battery_percent=87)
    assert sim.read(BATTERY_CHAR_UUID) == bytes([87])


def test_read_of_an_unknown_or_unreadable_characteristic_raises_value_error(rig: Rig) -> None:
    with pytest.raises(ValueError, match="not readable"):
        rig.sim.read("00002a00-0000-1000-8000-00805f9b34fb")
    with pytest.raises(ValueError, match="not readable"):
        rig.sim.read(WRITE_CHAR_UUID)


def test_notify_is_refused_on_a_characteristic_that_does_not_notify(rig: Rig) -> None:
    with pytest.raises(ValueError, match="does not notify"):
        rig.sim.start_notify(WRITE_CHAR_UUID, rig.on_notify)


def test_set_battery_notifies_battery_subscribers_on_change(rig: Rig) -> None:
    rig.sim.set_battery(42)
    rig.sim.set_battery(42)
    assert rig.battery() == [bytes([42])]
    assert rig.sim.read(BATTERY_CHAR_UUID) == bytes([42])
    with pytest.raises(ValueError, match=r"0\.\.100"):
        rig.sim.set_battery(101)


def test_stop_notify_silences_b1(rig: Rig) -> None:
    rig.sim.stop_notify(NOTIFY_CHAR_UUID)
    assert not rig.sim.is_notifying(NOTIFY_CHAR_UUID)
    rig.write(b0(seq=1, mode_a=MODE_SET, value_a=20))
    assert rig.sim.strength_du("A") == 20
    assert rig.b1() == []


def test_uuid_comparison_ignores_case(rig: Rig) -> None:
    rig.sim.write(WRITE_CHAR_UUID.upper(), b0(seq=3, mode_a=MODE_SET, value_a=7))
    assert rig.b1() == [bytes.fromhex("b1030700")]


# -- official test vectors (README_V3.md) ---------------------------------------------------------


def test_official_vector_1_plays_a_at_100hz_intensity_0_10_20_30_and_drops_b(rig: Rig) -> None:
    rig.set_strength_quietly(100, 50)
    rig.write_hex("B00000000A0A0A0A000A141E0000000000000065")
    rig.clock.advance(0.2)
    record = rig.sim.record
    a = playing(record.intervals("A"))
    assert [iv.frequency_hz for iv in a] == [pytest.approx(100.0)] * 4
    assert [iv.intensity_pct for iv in a] == [0.0, 10.0, 20.0, 30.0]
    assert [iv.output_du for iv in a] == [0.0, 10.0, 20.0, 30.0]
    assert playing(record.intervals("B")) == []
    assert record.max_output("B") == 0.0
    assert [event[2][0] for event in record.events_of("block_dropped")] == ["B"]
    assert rig.sim.strength_du("A") == 100
    assert rig.b1() == []


def test_official_vector_2_plays_a_period_15ms_intensity_40_to_70(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write_hex("B00000000F0F0F0F28323C460000000000000065")
    rig.clock.advance(0.1)
    a = playing(rig.sim.record.intervals("A"))
    assert [iv.frequency_hz for iv in a] == [pytest.approx(1000.0 / 15.0)] * 4
    assert [iv.intensity_pct for iv in a] == [40.0, 50.0, 60.0, 70.0]
    assert rig.b1() == []


def test_official_vector_3_plays_a_periods_40_to_100ms(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write_hex("B0000000283C5064645A5A5A0000000000000065")
    rig.clock.advance(0.1)
    a = playing(rig.sim.record.intervals("A"))
    assert [iv.frequency_hz for iv in a] == [
        pytest.approx(25.0),
        pytest.approx(1000.0 / 60.0),
        pytest.approx(12.5),
        pytest.approx(10.0),
    ]
    assert [iv.intensity_pct for iv in a] == [100.0, 90.0, 90.0, 90.0]


def test_official_vector_4_seq_0_adds_5_to_a_without_b1(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write_hex("B00405000A0A0A0A000A141E0000000000000065")
    assert rig.sim.strength_du("A") == 15
    assert rig.sim.strength_du("B") == 0
    assert rig.b1() == []


def test_official_vector_5_seq_1_adds_10_to_a_and_notifies_b1_01_19(rig: Rig) -> None:
    rig.set_strength_quietly(15, 0)
    rig.write_hex("B0140A00283C5064645A5A5A0000000000000065")
    assert rig.sim.strength_du("A") == 25
    assert rig.b1() == [bytes.fromhex("b1011900")]


def test_official_vectors_4_then_5_in_sequence(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write_hex("B00405000A0A0A0A000A141E0000000000000065")
    rig.clock.advance(0.1)
    rig.write_hex("B0140A00283C5064645A5A5A0000000000000065")
    assert rig.sim.strength_du("A") == 25
    assert rig.b1() == [bytes.fromhex("b1011900")]


def test_official_vector_6_plays_both_channels(rig: Rig) -> None:
    rig.set_strength_quietly(100, 100)
    rig.write_hex("B00000000A0A0A0A000A141E0A0A0A0A00000000")
    rig.clock.advance(0.1)
    record = rig.sim.record
    assert record.events_of("block_dropped") == []
    b = playing(record.intervals("B"))
    assert [iv.frequency_hz for iv in b] == [pytest.approx(100.0)] * 4
    assert [iv.intensity_pct for iv in b] == [0.0] * 4
    assert [iv.intensity_pct for iv in playing(record.intervals("A"))] == [0, 10, 20, 30]


def test_computed_vector_sets_a_20_b_0_with_seq_1(rig: Rig) -> None:
    rig.set_strength_quietly(0, 40)
    rig.write_hex("B01F14000A0A0A0A323232320A0A0A0A00000065")
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (20, 0)
    assert rig.b1() == [bytes.fromhex("b1011400")]
    rig.clock.advance(0.1)
    record = rig.sim.record
    assert [iv.output_du for iv in playing(record.intervals("A"))] == [10.0] * 4
    assert record.max_output("B") == 0.0
    assert [event[2][0] for event in record.events_of("block_dropped")] == ["B"]


def test_computed_vector_zeroes_both_channels_with_seq_2(rig: Rig) -> None:
    rig.set_strength_quietly(20, 35)
    rig.write_hex("B02F00000A0A0A0A000000000A0A0A0A00000000")
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 0)
    assert rig.b1() == [bytes.fromhex("b1020000")]


def test_computed_vector_bf_sets_limits_150_30_and_balances_silently(rig: Rig) -> None:
    rig.write_hex("BF961EA0A00000")
    assert (rig.sim.soft_limit_du("A"), rig.sim.soft_limit_du("B")) == (150, 30)
    assert dict(rig.sim.frequency_balance) == {"A": 160, "B": 160}
    assert dict(rig.sim.intensity_balance) == {"A": 0, "B": 0}
    assert rig.notes == []
    assert rig.sim.record.events == []


# -- strength interpretation ----------------------------------------------------------------------


def test_interpretation_0110_adds_to_a_and_subtracts_from_b(rig: Rig) -> None:
    rig.set_strength_quietly(10, 10)
    rig.write(b0(mode_a=MODE_ADD, mode_b=MODE_SUBTRACT, value_a=5, value_b=8))
    assert bytes(b0(mode_a=MODE_ADD, mode_b=MODE_SUBTRACT))[1] == 0b0110
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (15, 2)


def test_interpretation_1101_subtracts_from_a_and_adds_to_b(rig: Rig) -> None:
    rig.set_strength_quietly(10, 10)
    rig.write(b0(mode_a=MODE_SUBTRACT, mode_b=MODE_ADD, value_a=5, value_b=8))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (5, 18)


def test_high_interpretation_bits_are_channel_a(rig: Rig) -> None:
    rig.set_strength_quietly(10, 10)
    rig.write(bytes([0xB0, 0b1100, 77, 99]) + bytes(16))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (77, 10)
    rig.write(bytes([0xB0, 0b0011, 55, 66]) + bytes(16))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (77, 66)


def test_interpretation_none_ignores_the_value(rig: Rig) -> None:
    rig.set_strength_quietly(10, 10)
    rig.write(b0(seq=1, value_a=150, value_b=150))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (10, 10)
    assert rig.b1() == []


def test_add_201_leaves_strength_unchanged(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write(b0(seq=1, mode_a=MODE_ADD, value_a=201))
    assert rig.sim.strength_du("A") == 10


def test_subtract_255_leaves_strength_unchanged(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write(b0(mode_a=MODE_SUBTRACT, value_a=255))
    assert rig.sim.strength_du("A") == 10


def test_set_201_makes_strength_zero(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write(b0(seq=4, mode_a=MODE_SET, value_a=201))
    assert rig.sim.strength_du("A") == 0
    assert rig.b1() == [bytes.fromhex("b1040000")]


def test_set_200_is_accepted(rig: Rig) -> None:
    rig.write(b0(mode_a=MODE_SET, value_a=200))
    assert rig.sim.strength_du("A") == 200


def test_add_clamps_at_200(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write(b0(mode_a=MODE_ADD, value_a=195))
    assert rig.sim.strength_du("A") == 200


def test_subtract_clamps_at_0(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write(b0(mode_a=MODE_SUBTRACT, value_a=20))
    assert rig.sim.strength_du("A") == 0


def test_b0_never_raises_strength_above_the_soft_limit(rig: Rig) -> None:
    rig.write(bytes([0xBF, 30, 40, 160, 160, 0, 0]))
    rig.write(b0(seq=2, mode_a=MODE_SET, mode_b=MODE_ADD, value_a=50, value_b=45))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (30, 40)
    assert rig.b1() == [bytes([0xB1, 2, 30, 40])]


# -- B1 notifications -----------------------------------------------------------------------------


def test_b1_echoes_the_sequence_nibble(rig: Rig) -> None:
    rig.write(b0(seq=15, mode_b=MODE_SET, value_b=9))
    assert rig.b1() == [bytes([0xB1, 15, 0, 9])]


def test_b1_carries_both_strengths_after_one_frame(rig: Rig) -> None:
    rig.write(b0(seq=6, mode_a=MODE_SET, mode_b=MODE_SET, value_a=12, value_b=34))
    assert rig.b1() == [bytes([0xB1, 6, 12, 34])]


def test_b0_with_seq_0_changes_strength_silently(rig: Rig) -> None:
    rig.write(b0(seq=0, mode_a=MODE_SET, mode_b=MODE_SET, value_a=12, value_b=34))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (12, 34)
    assert rig.b1() == []


def test_b0_with_seq_that_changes_nothing_sends_no_b1(rig: Rig) -> None:
    rig.set_strength_quietly(200, 0)
    rig.write(b0(seq=1, mode_a=MODE_ADD, value_a=5))
    rig.write(b0(seq=2, mode_a=MODE_SET, value_a=200))
    assert rig.b1() == []


def test_option_notify_unchanged_strength_answers_every_strength_command() -> None:
    rig = make_rig(notify_unchanged_strength=True)
    rig.write(b0(seq=1, mode_a=MODE_SUBTRACT, value_a=5))
    rig.write(b0(seq=2))
    assert rig.b1() == [bytes.fromhex("b1010000")]


def test_wheel_change_notifies_b1_with_seq_0(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.sim.turn_wheel("A", 1)
    assert rig.sim.strength_du("A") == 11
    assert rig.b1() == [bytes.fromhex("b1000b00")]


def test_wheel_clamps_to_zero_and_to_the_soft_limit(rig: Rig) -> None:
    rig.write(bytes.fromhex("BF961EA0A00000"))
    rig.sim.turn_wheel("B", 50)
    rig.sim.turn_wheel("A", -3)
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 30)
    assert rig.b1() == [bytes.fromhex("b100001e")]


def test_wheel_that_changes_nothing_sends_nothing(rig: Rig) -> None:
    rig.sim.turn_wheel("A", -1)
    rig.sim.turn_wheel("B", 0)
    assert rig.b1() == []


def test_wheel_refuses_an_unknown_channel(rig: Rig) -> None:
    with pytest.raises(ValueError, match="channel"):
        rig.sim.turn_wheel("C", 1)


# -- BF -------------------------------------------------------------------------------------------


def test_bf_limit_above_200_leaves_that_limit_unchanged(rig: Rig) -> None:
    rig.write(bytes([0xBF, 100, 90, 1, 2, 3, 4]))
    rig.write(bytes([0xBF, 201, 255, 5, 6, 7, 8]))
    assert (rig.sim.soft_limit_du("A"), rig.sim.soft_limit_du("B")) == (100, 90)
    assert dict(rig.sim.frequency_balance) == {"A": 5, "B": 6}
    assert dict(rig.sim.intensity_balance) == {"A": 7, "B": 8}


def test_bf_limit_200_and_0_are_accepted(rig: Rig) -> None:
    rig.write(bytes([0xBF, 0, 200, 0, 0, 0, 0]))
    assert (rig.sim.soft_limit_du("A"), rig.sim.soft_limit_du("B")) == (0, 200)


def test_bf_lowering_a_limit_below_strength_clamps_it_and_notifies_seq_0(rig: Rig) -> None:
    rig.set_strength_quietly(80, 20)
    rig.write(bytes([0xBF, 50, 150, 160, 160, 0, 0]))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (50, 20)
    assert rig.b1() == [bytes([0xB1, 0, 50, 20])]
    assert len(rig.sim.record.events_of("soft_limit_clamp")) == 1


def test_balance_accessors_are_read_only(rig: Rig) -> None:
    with pytest.raises(TypeError):
        rig.sim.frequency_balance["A"] = 3  # type: ignore[index]


def test_default_soft_limit_is_200_and_balance_defaults(rig: Rig) -> None:
    assert (rig.sim.soft_limit_du("A"), rig.sim.soft_limit_du("B")) == (200, 200)
    assert dict(rig.sim.frequency_balance) == {"A": 160, "B": 160}
    assert dict(rig.sim.intensity_balance) == {"A": 0, "B": 0}


# -- frames that the device ignores ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("B01F14000A0A0A0A323232320A0A0A0A000000"),  # B0 of 19 bytes
        bytes.fromhex("B0"),
        bytes.fromhex("BF961EA0A000"),  # BF of 6 bytes
        bytes.fromhex("B1011900"),  # a notify head written to the device
        bytes.fromhex("BE00"),
        bytes(20),
        b0(seq=1, mode_a=MODE_SET, value_a=50) + b"\x00",  # 21 bytes: larger than the char
    ],
    ids=["empty", "b0-19", "b0-1", "bf-6", "b1", "be", "zeros", "b0-21"],
)
def test_short_long_or_unknown_frames_are_ignored_and_recorded(rig: Rig, data: bytes) -> None:
    rig.write(data)
    assert (rig.sim.strength_du("A"), rig.sim.soft_limit_du("A")) == (0, 200)
    assert not rig.sim.is_playing
    assert rig.b1() == []
    assert [event[1] for event in rig.sim.record.events] == ["frame_ignored"]


def test_bf_with_trailing_bytes_applies_its_first_seven(rig: Rig) -> None:
    rig.write(bytes.fromhex("BF961EA0A00000FFFF"))
    assert (rig.sim.soft_limit_du("A"), rig.sim.soft_limit_du("B")) == (150, 30)
    assert [event[1] for event in rig.sim.record.events] == ["frame_trailing_bytes"]


def test_write_to_another_characteristic_is_ignored_and_recorded(rig: Rig) -> None:
    rig.sim.write(NOTIFY_CHAR_UUID, b0(seq=1, mode_a=MODE_SET, value_a=50))
    rig.sim.write(BATTERY_CHAR_UUID, b"\x05")
    assert rig.sim.strength_du("A") == 0
    assert [event[1] for event in rig.sim.record.events] == ["write_ignored"] * 2


# -- waveform blocks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("freq_a", "int_a"),
    [
        ((9, 10, 10, 10), (50, 50, 50, 50)),
        ((10, 10, 10, 241), (50, 50, 50, 50)),
        ((10, 0, 10, 10), (50, 50, 50, 50)),
        ((10, 10, 10, 10), (50, 101, 50, 50)),
        ((10, 10, 10, 10), (50, 50, 50, 255)),
    ],
    ids=["freq-9", "freq-241", "freq-0", "int-101", "int-255"],
)
def test_one_bad_waveform_byte_drops_the_channels_whole_block_while_the_other_plays(
    rig: Rig, freq_a: tuple[int, ...], int_a: tuple[int, ...]
) -> None:
    rig.set_strength_quietly(100, 100)
    rig.write(b0(freq_a=freq_a, int_a=int_a, int_b=(60, 60, 60, 60)))
    rig.clock.advance(0.1)
    record = rig.sim.record
    assert record.max_output("A") == 0.0
    assert playing(record.intervals("A")) == []
    assert [iv.output_du for iv in playing(record.intervals("B"))] == [60.0] * 4
    (event,) = record.events_of("block_dropped")
    assert event[0] == 0.0
    assert event[2].startswith("A ")


def test_waveform_bytes_at_the_range_edges_are_played(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0(freq_a=(10, 240, 100, 200), int_a=(0, 100, 100, 0)))
    rig.clock.advance(0.1)
    a = playing(rig.sim.record.intervals("A"))
    assert [iv.frequency_hz for iv in a] == [
        pytest.approx(100.0),
        pytest.approx(1.0),
        pytest.approx(10.0),
        pytest.approx(1000.0 / 600.0),
    ]
    assert [iv.intensity_pct for iv in a] == [0.0, 100.0, 100.0, 0.0]


def test_silencing_one_channel_with_intensity_101_records_a_dropped_block(rig: Rig) -> None:
    rig.write(b0(int_b=OFF))
    assert [event[2][0] for event in rig.sim.record.events_of("block_dropped")] == ["B"]


@pytest.mark.parametrize(
    ("freq_byte", "period_ms"),
    [
        (10, 10),
        (100, 100),
        (101, 105),
        (110, 150),
        (113, 165),
        (146, 330),
        (200, 600),
        (201, 610),
        (205, 650),
        (240, 1000),
    ],
)
def test_frequency_byte_decodes_to_period_ms(freq_byte: int, period_ms: int) -> None:
    assert decode_period_ms(freq_byte) == period_ms


@pytest.mark.parametrize("freq_byte", [0, 9, 241, 255])
def test_frequency_byte_outside_10_to_240_has_no_period(freq_byte: int) -> None:
    with pytest.raises(ValueError, match=r"10\.\.240"):
        decode_period_ms(freq_byte)


def test_recorded_pulse_rate_is_1000_over_the_decoded_period(rig: Rig) -> None:
    rig.set_strength_quietly(10, 0)
    rig.write(b0(freq_a=(110, 205, 146, 240)))
    rig.clock.advance(0.1)
    rates = [iv.frequency_hz for iv in playing(rig.sim.record.intervals("A"))]
    assert rates == [
        pytest.approx(1000.0 / 150.0),
        pytest.approx(1000.0 / 650.0),
        pytest.approx(1000.0 / 330.0),
        pytest.approx(1.0),
    ]


# -- playback and the record ----------------------------------------------------------------------


def test_intervals_start_at_every_25ms_sample_boundary(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.clock.set(1.0)
    rig.write(b0(int_a=(50, 50, 50, 50)))
    for _ in range(10):  # played out in odd steps that do not hit the boundaries
        rig.clock.advance(0.0111)
    a = playing(rig.sim.record.intervals("A"))
    assert [iv.start_s for iv in a] == [pytest.approx(1.0 + k * SAMPLE_PERIOD_S) for k in range(4)]
    assert [iv.end_s for iv in a] == [
        pytest.approx(1.0 + (k + 1) * SAMPLE_PERIOD_S) for k in range(4)
    ]
    assert [iv.output_du for iv in a] == [50.0] * 4


def test_a_block_arriving_while_idle_starts_at_its_arrival_time(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.clock.set(0.37)
    rig.write(b0())
    rig.clock.advance(0.01)
    record = rig.sim.record
    assert record.output_at("A", 0.3699) == 0.0
    assert record.output_at("A", 0.37) == 100.0
    assert playing(record.intervals("A"))[0].start_s == 0.37


def test_blocks_play_back_to_back_from_the_queue(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0(int_a=(10, 10, 10, 10)))
    rig.clock.advance(0.03)
    rig.write(b0(int_a=(20, 20, 20, 20)))
    rig.clock.advance(0.03)
    rig.write(b0(int_a=(30, 30, 30, 30)))
    assert rig.sim.pending_blocks == 2
    rig.clock.set(0.5)
    a = playing(rig.sim.record.intervals("A"))
    assert [iv.intensity_pct for iv in a] == [10.0] * 4 + [20.0] * 4 + [30.0] * 4
    assert [iv.start_s for iv in a] == [pytest.approx(k * SAMPLE_PERIOD_S) for k in range(12)]
    for earlier, later in itertools.pairwise(a):
        assert earlier.end_s == later.start_s


def test_a_full_queue_drops_the_newest_block_but_applies_its_strength(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    for intensity_pct in (10, 20, 30):
        rig.write(b0(int_a=(intensity_pct,) * 4))
    rig.write(b0(seq=5, mode_a=MODE_SET, value_a=90, int_a=(40,) * 4))
    assert rig.sim.strength_du("A") == 90
    assert rig.b1() == [bytes([0xB1, 5, 90, 0])]
    rig.clock.set(1.0)
    record = rig.sim.record
    assert [iv.intensity_pct for iv in playing(record.intervals("A"))] == (
        [10.0] * 4 + [20.0] * 4 + [30.0] * 4
    )
    assert len(record.events_of("queue_overflow")) == 1


def test_max_pending_blocks_zero_keeps_only_the_playing_block() -> None:
    rig = make_rig(max_pending_blocks=0)
    rig.set_strength_quietly(100, 0)
    rig.write(b0(int_a=(10,) * 4))
    rig.write(b0(int_a=(20,) * 4))
    rig.clock.set(1.0)
    record = rig.sim.record
    assert [iv.intensity_pct for iv in playing(record.intervals("A"))] == [10.0] * 4
    assert len(record.events_of("queue_overflow")) == 1


def test_output_stops_100ms_after_the_last_block(rig: Rig) -> None:
    rig.set_strength_quietly(100, 100)
    for _ in range(5):
        rig.write(b0(int_b=(70,) * 4))
        rig.clock.advance(0.1)
    rig.clock.advance(2.0)
    record = rig.sim.record
    last_frame_s = 0.4
    assert record.output_at("A", last_frame_s + 0.099) == 100.0
    assert record.output_at("B", last_frame_s + 0.099) == 70.0
    for channel in ("A", "B"):
        stop_s = record.first_time_output_zero_after(channel, 0.0)
        assert stop_s == pytest.approx(last_frame_s + 0.1)
        assert record.max_output(channel, last_frame_s + 0.1 + 1e-9) == 0.0
    assert not rig.sim.is_playing
    assert rig.sim.strength_du("A") == 100  # strength persists, only the output stops


def test_strength_set_to_zero_mid_sample_shows_zero_output_from_that_instant(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0(int_a=(80,) * 4))
    rig.clock.set(0.0375)  # the middle of the second sample
    rig.write(b0(seq=1, mode_a=MODE_SET, value_a=0))
    rig.clock.set(0.3)
    record = rig.sim.record
    assert record.output_at("A", 0.0374) == 80.0
    assert record.output_at("A", 0.0375) == 0.0
    assert record.first_time_output_zero_after("A", 0.0) == 0.0375
    split = [iv for iv in record.intervals("A") if iv.start_s == 0.0375]
    assert split[0].strength_du == 0
    assert split[0].frequency_hz == pytest.approx(100.0)  # the waveform still plays, at 0


def test_strength_change_mid_sample_starts_a_new_interval_at_that_instant(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0(int_a=(50,) * 4))
    rig.clock.set(0.01)
    rig.write(b0(mode_a=MODE_SUBTRACT, value_a=40))
    rig.clock.set(0.1)
    a = playing(rig.sim.record.intervals("A"))
    assert [(iv.start_s, iv.strength_du) for iv in a[:3]] == [
        (0.0, 100),
        (0.01, 60),
        (pytest.approx(0.025), 60),
    ]
    assert a[0].end_s == 0.01


def test_idle_time_has_zero_output_and_is_recorded_sparsely(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    for _ in range(50):
        rig.clock.advance(0.1)
        assert rig.sim.record.output_at("A", rig.clock.now_s() - 0.05) == 0.0
    (idle,) = rig.sim.record.intervals("A")  # one interval per unchanged idle stretch
    assert idle.start_s == 0.0
    assert idle.end_s == pytest.approx(5.0)
    assert (idle.strength_du, idle.frequency_hz, idle.intensity_pct) == (100, 0.0, 0.0)
    rig.sim.turn_wheel("A", -10)
    rig.clock.advance(0.1)
    assert [iv.strength_du for iv in rig.sim.record.intervals("A")] == [100, 90]


def test_the_record_covers_every_channel_continuously(rig: Rig) -> None:
    rig.set_strength_quietly(30, 40)
    rig.clock.set(0.2)
    rig.write(b0(int_a=(10, 20, 30, 40), int_b=(1, 2, 3, 4)))
    rig.clock.advance(0.0333)
    rig.write(b0(mode_b=MODE_ADD, value_b=5, freq_a=(5, 5, 5, 5)))
    rig.clock.set(0.6)
    for channel in ("A", "B"):
        intervals = rig.sim.record.intervals(channel)
        assert intervals[0].start_s == 0.0
        assert intervals[-1].end_s == 0.6
        for earlier, later in itertools.pairwise(intervals):
            assert earlier.end_s == later.start_s


def test_reading_the_record_plays_out_up_to_the_clock(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0())
    rig.clock.set(0.05)
    assert rig.sim.record.end_s == 0.05
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) is None
    rig.clock.set(0.2)
    assert rig.sim.record.end_s == 0.2


def test_the_simulator_reads_time_only_from_its_clock() -> None:
    calls: list[float] = []

    def frozen_time() -> float:
        calls.append(7.0)
        return 7.0

    sim = Coyote3Simulator(FunctionClock(frozen_time))
    sim.write(WRITE_CHAR_UUID, b0())
    assert sim.record.end_s == 7.0
    assert sim.is_playing  # no wall time passes for it
    assert len(calls) >= 3


def test_advance_to_a_time_already_played_changes_nothing(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0())
    rig.sim.advance_to(0.05)
    before = rig.sim.record.intervals()
    rig.sim.advance_to(0.01)
    assert rig.sim.record.intervals() == before


def test_advance_to_plays_ahead_of_the_clock(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0())
    rig.sim.advance_to(0.25)
    assert rig.sim.now_s == 0.25
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == pytest.approx(0.1)


# -- power and link -------------------------------------------------------------------------------


def test_power_cycle_zeroes_strength_clears_waveform_and_notifications(rig: Rig) -> None:
    rig.write(bytes.fromhex("BF961EA0A00000"))
    rig.set_strength_quietly(100, 20)
    rig.write(b0())
    rig.write(b0())
    rig.clock.set(0.05)
    rig.sim.power_cycle()
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 0)
    assert not rig.sim.is_playing
    assert rig.sim.pending_blocks == 0
    assert (rig.sim.soft_limit_du("A"), rig.sim.soft_limit_du("B")) == (150, 30)
    assert dict(rig.sim.frequency_balance) == {"A": 160, "B": 160}
    rig.sim.turn_wheel("A", 5)
    assert rig.b1() == []
    rig.clock.set(0.3)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 0.05


def test_disconnect_keeps_strength_but_stops_output_and_notifications(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.write(b0())
    rig.write(b0())
    rig.clock.set(0.06)
    rig.sim.disconnect()
    assert rig.sim.strength_du("A") == 100
    assert not rig.sim.is_playing
    assert not rig.sim.is_notifying(NOTIFY_CHAR_UUID)
    rig.sim.turn_wheel("A", -1)
    assert rig.b1() == []
    rig.clock.set(1.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == 0.06
    assert len(rig.sim.record.events_of("disconnect")) == 1


# -- robustness -----------------------------------------------------------------------------------

_uuids = st.sampled_from(
    [WRITE_CHAR_UUID] * 6 + [NOTIFY_CHAR_UUID, BATTERY_CHAR_UUID, "not-a-uuid"]
)
_frames = st.one_of(
    st.binary(max_size=24),
    st.binary(min_size=19, max_size=19).map(lambda rest: b"\xb0" + rest),
    st.binary(min_size=6, max_size=6).map(lambda rest: b"\xbf" + rest),
)
_steps = st.lists(
    st.tuples(
        _uuids,
        _frames,
        st.floats(min_value=0.0, max_value=0.2, allow_nan=False),
        st.integers(min_value=-300, max_value=300),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps=_steps)
def test_random_writes_never_raise_and_keep_strength_within_the_soft_limit(
    steps: list[tuple[str, bytes, float, int]],
) -> None:
    clock = VirtualClock()
    sim = Coyote3Simulator(clock, max_pending_blocks=1)
    b1: list[bytes] = []
    sim.start_notify(NOTIFY_CHAR_UUID, lambda _uuid, payload: b1.append(payload))
    for uuid, data, dt_s, wheel_du in steps:
        sim.write(uuid, data)
        clock.advance(dt_s)
        if wheel_du % 7 == 0:
            sim.turn_wheel("A" if wheel_du % 2 else "B", wheel_du)
        for channel in ("A", "B"):
            assert 0 <= sim.strength_du(channel) <= sim.soft_limit_du(channel) <= 200
    for payload in b1:
        assert len(payload) == 4
        assert payload[0] == 0xB1
        assert payload[2] <= 200
        assert payload[3] <= 200
    record = sim.record
    for channel in ("A", "B"):
        intervals = record.intervals(channel)
        for earlier, later in itertools.pairwise(intervals):
            assert earlier.end_s == later.start_s
        for interval in intervals:
            assert interval.strength_du <= 200
            assert 0.0 <= interval.output_du <= 200.0
