"""The Coyote 2.0 firmware emulator against ../shared/reference/devices.md section 2.

The official and computed vectors of the document are fed in as literal bytes. Other values
are laid out here by hand from the documented bit layouts (never with the host codec), and the
delivery checks follow docs/devices/coyote2.md "What the device delivers".
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.clock import FunctionClock, VirtualClock
from simulators.coyote2 import (
    ADVERTISED_NAME,
    BATTERY_CHAR_UUID,
    BATTERY_SERVICE_UUID,
    CONFIG_CHAR_UUID,
    FIRMWARE_CHAR_UUID,
    PWM_A34_CHAR_UUID,
    PWM_AB2_CHAR_UUID,
    PWM_B34_CHAR_UUID,
    PWM_SERVICE_UUID,
    STRENGTH_CHAR_UUID,
    WAVEFORM_CHAR_UUIDS,
    Coyote2Simulator,
    Waveform,
)
from simulators.record import DeliveredInterval

CHAR_A = "955a1506-0fe2-f5aa-a094-84b8d4f3e8ad"  # the swap: 1506 drives physical A
CHAR_B = "955a1505-0fe2-f5aa-a094-84b8d4f3e8ad"
CHAR_AB2 = "955a1504-0fe2-f5aa-a094-84b8d4f3e8ad"


def xyz(x: int, y: int, z: int) -> bytes:
    """A waveform value laid out by hand: bits 19-15 Z, 14-5 Y, 4-0 X, little-endian."""
    return ((z << 15) | (y << 5) | x).to_bytes(3, "little")


def ab2(a_du: int, b_du: int) -> bytes:
    """A PWM_AB2 value laid out by hand: bits 21-11 A, 10-0 B, little-endian."""
    return ((a_du << 11) | b_du).to_bytes(3, "little")


@dataclass
class Rig:
    clock: VirtualClock
    sim: Coyote2Simulator
    notes: list[tuple[str, bytes]] = field(default_factory=list)

    def on_notify(self, char_uuid: str, payload: bytes) -> None:
        self.notes.append((char_uuid, payload))

    def strength_notes(self) -> list[bytes]:
        return [payload for uuid, payload in self.notes if uuid == CHAR_AB2]

    def battery_notes(self) -> list[bytes]:
        return [payload for uuid, payload in self.notes if uuid == BATTERY_CHAR_UUID]

    def set_strength_quietly(self, a_du: int, b_du: int) -> None:
        self.sim.write(CHAR_AB2, ab2(a_du, b_du))
        self.notes.clear()


def make_rig(**kwargs: bool) -> Rig:
    clock = VirtualClock()
    rig = Rig(clock, Coyote2Simulator(clock, **kwargs))
    rig.sim.start_notify(CHAR_AB2, rig.on_notify)
    rig.sim.start_notify(BATTERY_CHAR_UUID, rig.on_notify)
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def active(intervals: list[DeliveredInterval]) -> list[DeliveredInterval]:
    return [iv for iv in intervals if iv.intensity_pct > 0.0]


# -- GATT, name, read-only characteristics ----------------------------------------------------


def test_gatt_uuids_and_advertised_name_match_the_document(rig: Rig) -> None:
    assert BATTERY_SERVICE_UUID == "955a180a-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert BATTERY_CHAR_UUID == "955a1500-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert FIRMWARE_CHAR_UUID == "955a1501-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert PWM_SERVICE_UUID == "955a180b-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert PWM_AB2_CHAR_UUID == STRENGTH_CHAR_UUID == CHAR_AB2
    assert PWM_A34_CHAR_UUID == CHAR_B
    assert PWM_B34_CHAR_UUID == CHAR_A
    assert CONFIG_CHAR_UUID == "955a1507-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert dict(WAVEFORM_CHAR_UUIDS) == {"A": CHAR_A, "B": CHAR_B}
    assert rig.sim.name == ADVERTISED_NAME == "D-LAB ESTIM01"


def test_config_reads_07_d0_07_step_7_max_2000(rig: Rig) -> None:
    config = rig.sim.read(CONFIG_CHAR_UUID)
    assert config == bytes.fromhex("07 D0 07")
    value = int.from_bytes(config, "little")
    assert (value & 0xFF, (value >> 8) & 0x7FF) == (7, 2000)


def test_firmware_version_reads_two_bytes(rig: Rig) -> None:
    assert len(rig.sim.read(FIRMWARE_CHAR_UUID)) == 2


def test_read_of_an_unknown_characteristic_raises_value_error(rig: Rig) -> None:
    with pytest.raises(ValueError, match="not readable"):
        rig.sim.read("0000150a-0000-1000-8000-00805f9b34fb")


@pytest.mark.parametrize("uuid", [CHAR_A, CHAR_B, CONFIG_CHAR_UUID, FIRMWARE_CHAR_UUID, "x"])
def test_notify_is_refused_on_a_characteristic_that_does_not_notify(rig: Rig, uuid: str) -> None:
    with pytest.raises(ValueError, match="does not notify"):
        rig.sim.start_notify(uuid, rig.on_notify)


def test_uuid_comparison_ignores_case(rig: Rig) -> None:
    rig.sim.write(CHAR_A.upper(), bytes.fromhex("21 01 0A"))
    assert rig.sim.read(CHAR_A.upper()) == bytes.fromhex("21 01 0A")
    assert rig.sim.is_active("A")


# -- battery ----------------------------------------------------------------------------------


def test_battery_read_returns_one_byte_percent() -> None:
    sim = Coyote2Simulator(VirtualClock(), battery_percent=87)
    assert sim.read(BATTERY_CHAR_UUID) == bytes([87])
    with pytest.raises(ValueError, match=r"0\.\.100"):
        Coyote2Simulator(VirtualClock(), battery_percent=101)


def test_set_battery_notifies_battery_subscribers_on_change(rig: Rig) -> None:
    rig.sim.set_battery(42)
    rig.sim.set_battery(42)
    assert rig.battery_notes() == [bytes([42])]
    assert rig.sim.read(BATTERY_CHAR_UUID) == bytes([42])
    assert rig.sim.battery_percent == 42
    with pytest.raises(ValueError, match=r"0\.\.100"):
        rig.sim.set_battery(-1)


# -- official and computed vectors (devices.md section 2) -------------------------------------


def test_official_vector_x1_y9_z20_is_21_01_0a_and_plays_100hz_100us(rig: Rig) -> None:
    rig.set_strength_quietly(70, 0)
    rig.sim.write(CHAR_A, bytes.fromhex("21 01 0A"))
    assert rig.sim.waveform("A") == Waveform(x=1, y=9, z=20)
    rig.clock.set(0.05)
    (iv,) = rig.sim.record.intervals("A")
    assert (iv.strength_du, iv.intensity_pct) == (70, 100.0)
    assert iv.frequency_hz == pytest.approx(100.0)
    assert iv.pulse_width_us == 100.0


def test_computed_vector_5_95_20_is_e5_0b_0a_and_plays_10hz(rig: Rig) -> None:
    rig.set_strength_quietly(0, 30)
    rig.sim.write(CHAR_B, bytes.fromhex("E5 0B 0A"))
    assert rig.sim.waveform("B") == Waveform(x=5, y=95, z=20)
    rig.clock.set(0.05)
    (iv,) = rig.sim.record.intervals("B")
    assert iv.frequency_hz == pytest.approx(10.0)
    assert iv.pulse_width_us == 100.0


def test_computed_strength_vector_8c_30_02_sets_a_70_b_140(rig: Rig) -> None:
    rig.sim.write(CHAR_AB2, bytes.fromhex("8C 30 02"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (70, 140)
    assert rig.sim.read(CHAR_AB2) == bytes.fromhex("8C 30 02")


def test_computed_strength_vector_00_80_3e_sets_a_2000_b_0(rig: Rig) -> None:
    rig.sim.write(CHAR_AB2, bytes.fromhex("00 80 3E"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (2000, 0)
    assert rig.sim.read(CHAR_AB2) == bytes.fromhex("00 80 3E")


def test_official_breathing_sequence_ramps_the_pulse_width_then_holds_z0(rig: Rig) -> None:
    """example.md "呼吸": X=1, Y=9, Z=0,4,..,20,20,20 then Z=0 x4, one write per 100 ms."""
    rig.set_strength_quietly(140, 0)
    sequence = ["210100", "210102", "210104", "210106", "210108"]
    sequence += ["21010A"] * 3 + ["210100"] * 4
    for i, value in enumerate(sequence):
        if i:
            rig.clock.advance(0.1)
        rig.sim.write(CHAR_A, bytes.fromhex(value))
    rig.clock.advance(0.5)
    intervals = rig.sim.record.intervals("A")
    on = active(intervals)
    assert [iv.pulse_width_us for iv in on] == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0, 0.0]
    assert [iv.start_s for iv in on] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.8])
    assert [iv.end_s for iv in on][-2:] == pytest.approx([0.8, 1.2])
    assert all(iv.frequency_hz == pytest.approx(100.0) for iv in on)
    assert all(iv.strength_du == 140 for iv in on)
    idle = intervals[-1]
    assert idle.start_s == pytest.approx(1.2)
    assert (idle.intensity_pct, idle.frequency_hz, idle.pulse_width_us) == (0.0, 0.0, None)
    assert rig.sim.record.intervals("B")[0].intensity_pct == 0.0


# -- channel swap and byte order --------------------------------------------------------------


def test_1506_drives_channel_a_only(rig: Rig) -> None:
    rig.set_strength_quietly(100, 100)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.05)
    assert rig.sim.record.output_at("A", 0.01) == 100.0
    assert rig.sim.record.output_at("B", 0.01) == 0.0
    assert (rig.sim.is_active("A"), rig.sim.is_active("B")) == (True, False)


def test_1505_drives_channel_b_only(rig: Rig) -> None:
    rig.set_strength_quietly(100, 100)
    rig.sim.write(CHAR_B, xyz(1, 9, 20))
    rig.clock.set(0.05)
    assert rig.sim.record.output_at("A", 0.01) == 0.0
    assert rig.sim.record.output_at("B", 0.01) == 100.0
    assert rig.sim.read(CHAR_B) == xyz(1, 9, 20)
    assert rig.sim.read(CHAR_A) == bytes(3)


def test_values_are_little_endian_so_big_endian_bytes_decode_differently(rig: Rig) -> None:
    rig.sim.write(CHAR_A, bytes.fromhex("0A 01 21"))  # 21 01 0A sent in the wrong order
    assert rig.sim.waveform("A") == Waveform(x=10, y=8, z=2)
    assert len(rig.sim.record.events_of("reserved_bits")) == 1
    rig.sim.write(CHAR_AB2, bytes.fromhex("02 30 8C"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) != (70, 140)


# -- PWM_AB2 bit layout -----------------------------------------------------------------------


def test_strength_fields_are_bits_21_11_for_a_and_10_0_for_b(rig: Rig) -> None:
    rig.sim.write(CHAR_AB2, (1 << 11).to_bytes(3, "little"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (1, 0)
    rig.sim.write(CHAR_AB2, (1 << 10).to_bytes(3, "little"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 1024)
    rig.sim.write(CHAR_AB2, bytes.fromhex("FF FF 3F"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (2047, 2047)
    assert rig.sim.record.events_of("reserved_bits") == []


def test_strength_reserved_bits_are_ignored_and_noted_so_no_value_exceeds_2047(rig: Rig) -> None:
    rig.sim.write(CHAR_AB2, bytes.fromhex("FF FF FF"))
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (2047, 2047)
    assert rig.sim.read(CHAR_AB2) == bytes.fromhex("FF FF 3F")
    assert len(rig.sim.record.events_of("reserved_bits")) == 1
    rig.sim.write(CHAR_AB2, bytes.fromhex("00 00 C0"))  # only the reserved bits
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 0)


def test_strength_persists_without_refresh(rig: Rig) -> None:
    rig.sim.write(CHAR_AB2, ab2(300, 400))
    rig.clock.set(60.0)
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (300, 400)
    (idle,) = rig.sim.record.intervals("A")
    assert (idle.strength_du, idle.end_s) == (300, 60.0)


# -- waveform bit layout ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("1F 00 00", Waveform(x=31, y=0, z=0)),
        ("E0 7F 00", Waveform(x=0, y=1023, z=0)),
        ("00 80 0F", Waveform(x=0, y=0, z=31)),
        ("FF FF 0F", Waveform(x=31, y=1023, z=31)),
    ],
)
def test_waveform_fields_are_bits_19_15_z_14_5_y_4_0_x(
    rig: Rig, data: str, expected: Waveform
) -> None:
    rig.sim.write(CHAR_A, bytes.fromhex(data))
    assert rig.sim.waveform("A") == expected
    assert rig.sim.read(CHAR_A) == bytes.fromhex(data)
    assert rig.sim.record.events_of("reserved_bits") == []


def test_waveform_reserved_bits_are_ignored_and_noted(rig: Rig) -> None:
    rig.sim.write(CHAR_B, bytes.fromhex("21 01 FA"))  # 21 01 0A with bits 23-20 set
    assert rig.sim.waveform("B") == Waveform(x=1, y=9, z=20)
    assert rig.sim.read(CHAR_B) == bytes.fromhex("21 01 0A")
    assert len(rig.sim.record.events_of("reserved_bits")) == 1


@pytest.mark.parametrize(
    ("x", "y", "z", "frequency_hz", "pulse_width_us"),
    [
        (1, 9, 20, 100.0, 100.0),
        (31, 0, 1, 1000.0 / 31, 5.0),
        (1, 0, 0, 1000.0, 0.0),
        (5, 1023, 31, 1000.0 / 1028, 155.0),
        (15, 985, 12, 1.0, 60.0),
    ],
)
def test_record_shows_1000_over_x_plus_y_hz_and_z_times_5_us(
    rig: Rig, x: int, y: int, z: int, frequency_hz: float, pulse_width_us: float
) -> None:
    rig.set_strength_quietly(50, 0)
    rig.sim.write(CHAR_A, xyz(x, y, z))
    rig.clock.set(0.05)
    (iv,) = rig.sim.record.intervals("A")
    assert iv.frequency_hz == pytest.approx(frequency_hz)
    assert iv.pulse_width_us == pulse_width_us
    assert (iv.intensity_pct, iv.strength_du, iv.output_du) == (100.0, 50, 50.0)


def test_x_zero_means_no_pulses(rig: Rig) -> None:
    rig.set_strength_quietly(500, 500)
    rig.sim.write(CHAR_A, xyz(0, 100, 20))
    rig.clock.set(0.05)
    (iv,) = rig.sim.record.intervals("A")
    assert (iv.intensity_pct, iv.frequency_hz, iv.output_du) == (0.0, 0.0, 0.0)
    assert not rig.sim.is_active("A")


def test_x_zero_silences_a_channel_from_that_instant(rig: Rig) -> None:
    rig.set_strength_quietly(500, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.04)
    rig.sim.write(CHAR_A, xyz(0, 10, 0))
    rig.clock.set(0.3)
    record = rig.sim.record
    assert record.output_at("A", 0.0399) == 500.0
    assert record.first_time_output_zero_after("A", 0.0) == 0.04


# -- 100 ms validity --------------------------------------------------------------------------


def test_output_goes_idle_100ms_after_the_last_write_of_that_channel(rig: Rig) -> None:
    rig.set_strength_quietly(200, 0)
    rig.clock.set(1.0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(1.5)
    record = rig.sim.record
    assert record.output_at("A", 1.0) == 200.0
    assert record.output_at("A", 1.0999) == 200.0
    assert record.output_at("A", 1.1) == 0.0
    assert record.first_time_output_zero_after("A", 0.0) == pytest.approx(1.1)
    assert rig.sim.waveform("A") == Waveform(x=1, y=9, z=20)  # still readable after it lapsed
    assert rig.sim.strength_du("A") == 200  # only the waveform lapses


def test_is_active_ends_exactly_when_the_100ms_run_out(rig: Rig) -> None:
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.0999)
    assert rig.sim.is_active("A")
    rig.clock.set(0.1)
    assert not rig.sim.is_active("A")


def test_a_lapsing_channel_does_not_affect_the_other(rig: Rig) -> None:
    rig.set_strength_quietly(100, 60)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.sim.write(CHAR_B, xyz(1, 9, 20))
    for _ in range(4):  # only B is refreshed
        rig.clock.advance(0.05)
        rig.sim.write(CHAR_B, xyz(1, 9, 20))
    rig.clock.set(0.5)
    record = rig.sim.record
    assert record.first_time_output_zero_after("A", 0.0) == pytest.approx(0.1)
    assert record.output_at("B", 0.2) == 60.0
    assert record.output_at("B", 0.2999) == 60.0
    assert record.first_time_output_zero_after("B", 0.0) == pytest.approx(0.3)


def test_refreshing_every_100ms_plays_without_a_gap_in_one_interval(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    for _ in range(10):
        rig.sim.write(CHAR_A, xyz(1, 9, 20))
        rig.clock.advance(0.1)
    rig.clock.advance(0.2)
    on = active(rig.sim.record.intervals("A"))
    assert len(on) == 1
    assert on[0].start_s == 0.0
    assert on[0].end_s == pytest.approx(1.0)


def test_a_rewrite_after_a_lapse_starts_a_new_interval(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.15)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.4)
    intervals = rig.sim.record.intervals("A")
    assert [(iv.start_s, iv.intensity_pct) for iv in intervals] == [
        (0.0, 100.0),
        (pytest.approx(0.1), 0.0),
        (0.15, 100.0),
        (pytest.approx(0.25), 0.0),
    ]


# -- intervals ---------------------------------------------------------------------------------


def test_a_write_that_changes_the_waveform_starts_a_new_interval_at_that_instant(
    rig: Rig,
) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.03)
    rig.sim.write(CHAR_A, xyz(2, 8, 20))  # same rate, other burst: other output
    rig.clock.set(0.06)
    rig.sim.write(CHAR_A, xyz(2, 8, 10))
    rig.clock.set(0.1)
    on = active(rig.sim.record.intervals("A"))
    assert [(iv.start_s, iv.end_s) for iv in on] == [(0.0, 0.03), (0.03, 0.06), (0.06, 0.1)]
    assert [iv.pulse_width_us for iv in on] == [100.0, 100.0, 50.0]


def test_strength_change_mid_waveform_starts_a_new_interval_at_that_instant(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.0375)
    rig.sim.write(CHAR_AB2, ab2(40, 0))
    rig.clock.set(0.06)
    rig.sim.turn_wheel("A", 7)
    rig.clock.set(0.2)
    on = active(rig.sim.record.intervals("A"))
    assert [(iv.start_s, iv.strength_du) for iv in on] == [(0.0, 100), (0.0375, 40), (0.06, 47)]
    assert on[0].end_s == 0.0375
    assert on[-1].end_s == pytest.approx(0.1)


def test_emergency_stop_zeroes_output_at_the_strength_write(rig: Rig) -> None:
    """docs/devices/coyote2.md: PWM_AB2 = 0/0 first, then silent waveforms on both channels."""
    rig.set_strength_quietly(800, 900)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.sim.write(CHAR_B, xyz(1, 9, 20))
    rig.clock.set(0.05)
    rig.sim.write(CHAR_AB2, ab2(0, 0))
    rig.sim.write(CHAR_A, xyz(0, 10, 0))
    rig.sim.write(CHAR_B, xyz(0, 10, 0))
    rig.clock.set(0.5)
    record = rig.sim.record
    for channel in ("A", "B"):
        assert record.first_time_output_zero_after(channel, 0.0) == 0.05
        assert record.max_output(channel, 0.05) == 0.0


def test_idle_time_is_recorded_sparsely_with_its_strength(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    for _ in range(50):
        rig.clock.advance(0.1)
        assert rig.sim.record.output_at("A", rig.clock.now_s() - 0.05) == 0.0
    (idle,) = rig.sim.record.intervals("A")
    assert idle.start_s == 0.0
    assert idle.end_s == pytest.approx(5.0)
    assert (idle.strength_du, idle.frequency_hz, idle.intensity_pct) == (100, 0.0, 0.0)
    assert idle.pulse_width_us is None


def test_the_record_covers_every_channel_continuously(rig: Rig) -> None:
    rig.set_strength_quietly(30, 40)
    rig.clock.set(0.2)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.advance(0.0333)
    rig.sim.write(CHAR_B, xyz(3, 30, 4))
    rig.sim.turn_wheel("B", 5)
    rig.clock.set(0.6)
    for channel in ("A", "B"):
        intervals = rig.sim.record.intervals(channel)
        assert intervals[0].start_s == 0.0
        assert intervals[-1].end_s == 0.6
        for earlier, later in itertools.pairwise(intervals):
            assert earlier.end_s == later.start_s


# -- time ---------------------------------------------------------------------------------------


def test_reading_the_record_plays_out_up_to_the_clock(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.05)
    assert rig.sim.record.end_s == 0.05
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) is None
    rig.clock.set(0.2)
    assert rig.sim.record.end_s == 0.2
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == pytest.approx(0.1)


def test_the_simulator_reads_time_only_from_its_clock() -> None:
    calls: list[float] = []

    def frozen_time() -> float:
        calls.append(7.0)
        return 7.0

    sim = Coyote2Simulator(FunctionClock(frozen_time))
    sim.write(CHAR_A, xyz(1, 9, 20))
    assert sim.record.end_s == 7.0
    assert sim.is_active("A")  # no wall time passes for it
    assert len(calls) >= 3


def test_advance_to_a_time_already_played_changes_nothing(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.sim.advance_to(0.05)
    before = rig.sim.record.intervals()
    rig.sim.advance_to(0.01)
    assert rig.sim.record.intervals() == before
    with pytest.raises(ValueError, match="NaN"):
        rig.sim.advance_to(float("nan"))


def test_advance_to_plays_ahead_of_the_clock(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.sim.advance_to(0.25)
    assert rig.sim.now_s == 0.25
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == pytest.approx(0.1)


# -- notifications ------------------------------------------------------------------------------


def test_wheel_change_notifies_pwm_ab2_with_both_strengths(rig: Rig) -> None:
    rig.set_strength_quietly(70, 140)
    rig.sim.turn_wheel("A", 7)
    assert rig.strength_notes() == [ab2(77, 140)]
    assert rig.sim.read(CHAR_AB2) == ab2(77, 140)


def test_wheel_clamps_to_0_and_2047(rig: Rig) -> None:
    rig.sim.turn_wheel("B", 5000)
    rig.sim.turn_wheel("A", -5)
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 2047)
    assert rig.strength_notes() == [bytes.fromhex("FF 07 00")]


def test_wheel_that_changes_nothing_sends_nothing(rig: Rig) -> None:
    rig.sim.turn_wheel("A", -7)
    rig.sim.turn_wheel("A", 0)
    assert rig.strength_notes() == []


def test_wheel_refuses_an_unknown_channel(rig: Rig) -> None:
    with pytest.raises(ValueError, match="'A' or 'B'"):
        rig.sim.turn_wheel("C", 1)


def test_host_strength_write_that_changes_strength_is_notified_once(rig: Rig) -> None:
    rig.sim.write(CHAR_AB2, bytes.fromhex("8C 30 02"))
    rig.sim.write(CHAR_AB2, bytes.fromhex("8C 30 02"))  # unchanged: no notification
    assert rig.strength_notes() == [bytes.fromhex("8C 30 02")]


def test_option_notify_host_strength_writes_false_leaves_only_the_wheel() -> None:
    rig = make_rig(notify_host_strength_writes=False)
    rig.sim.write(CHAR_AB2, ab2(70, 140))
    assert rig.strength_notes() == []
    rig.sim.turn_wheel("B", -7)
    assert rig.strength_notes() == [ab2(70, 133)]


def test_stop_notify_silences_pwm_ab2(rig: Rig) -> None:
    rig.sim.stop_notify(CHAR_AB2)
    assert not rig.sim.is_notifying(CHAR_AB2)
    assert rig.sim.is_notifying(BATTERY_CHAR_UUID)
    rig.sim.turn_wheel("A", 7)
    rig.sim.write(CHAR_AB2, ab2(1, 1))
    assert rig.notes == []


# -- bad writes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("uuid", [CHAR_AB2, CHAR_A, CHAR_B])
@pytest.mark.parametrize("data", [b"", b"\x21", b"\x21\x01", b"\x21\x01\x0a\x00"])
def test_writes_of_the_wrong_length_are_ignored_and_recorded(
    rig: Rig, uuid: str, data: bytes
) -> None:
    rig.set_strength_quietly(5, 6)
    rig.sim.write(uuid, data)
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (5, 6)
    assert rig.sim.waveform("A") == rig.sim.waveform("B") == Waveform(0, 0, 0)
    assert not rig.sim.is_active("A") and not rig.sim.is_active("B")
    assert len(rig.sim.record.events_of("frame_ignored")) == 1
    assert rig.notes == []


@pytest.mark.parametrize(
    "uuid", [BATTERY_CHAR_UUID, FIRMWARE_CHAR_UUID, CONFIG_CHAR_UUID, "not-a-uuid"]
)
def test_write_to_a_read_only_or_unknown_characteristic_is_ignored_and_recorded(
    rig: Rig, uuid: str
) -> None:
    rig.sim.write(uuid, bytes.fromhex("21 01 0A"))
    assert rig.sim.read(CONFIG_CHAR_UUID) == bytes.fromhex("07 D0 07")
    assert rig.sim.read(BATTERY_CHAR_UUID) == bytes([100])
    assert not rig.sim.is_active("A")
    assert len(rig.sim.record.events_of("write_ignored")) == 1


def test_write_of_something_not_bytes_is_a_type_error(rig: Rig) -> None:
    with pytest.raises(TypeError, match="bytes"):
        rig.sim.write(CHAR_A, "21010A")  # type: ignore[arg-type]


def test_bytearray_and_memoryview_writes_are_accepted(rig: Rig) -> None:
    rig.sim.write(CHAR_A, bytearray.fromhex("21 01 0A"))
    rig.sim.write(CHAR_AB2, memoryview(bytes.fromhex("8C 30 02")))
    assert rig.sim.waveform("A") == Waveform(x=1, y=9, z=20)
    assert rig.sim.strength_du("B") == 140


# -- power and link -----------------------------------------------------------------------------


def test_power_cycle_clears_waveforms_and_notifications_and_keeps_strength(rig: Rig) -> None:
    rig.set_strength_quietly(100, 20)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.sim.write(CHAR_B, xyz(1, 9, 20))
    rig.clock.set(0.05)
    rig.sim.power_cycle()
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (100, 20)
    assert rig.sim.read(CHAR_A) == rig.sim.read(CHAR_B) == bytes(3)
    assert not rig.sim.is_notifying(CHAR_AB2)
    assert not rig.sim.is_notifying(BATTERY_CHAR_UUID)
    rig.sim.turn_wheel("A", 7)
    rig.sim.set_battery(50)
    assert rig.notes == []
    rig.clock.set(0.3)
    for channel in ("A", "B"):
        assert rig.sim.record.first_time_output_zero_after(channel, 0.0) == 0.05
    assert len(rig.sim.record.events_of("power_cycle")) == 1


def test_option_keep_strength_on_power_cycle_false_zeroes_strength() -> None:
    rig = make_rig(keep_strength_on_power_cycle=False)
    rig.set_strength_quietly(100, 20)
    rig.sim.power_cycle()
    assert (rig.sim.strength_du("A"), rig.sim.strength_du("B")) == (0, 0)


def test_disconnect_keeps_strength_and_lets_the_waveform_lapse_on_its_own(rig: Rig) -> None:
    rig.set_strength_quietly(100, 0)
    rig.sim.write(CHAR_A, xyz(1, 9, 20))
    rig.clock.set(0.06)
    rig.sim.disconnect()
    assert rig.sim.strength_du("A") == 100
    assert not rig.sim.is_notifying(CHAR_AB2)
    rig.sim.turn_wheel("A", -1)
    assert rig.strength_notes() == []
    rig.clock.set(1.0)
    assert rig.sim.record.first_time_output_zero_after("A", 0.0) == pytest.approx(0.1)
    assert len(rig.sim.record.events_of("disconnect")) == 1


# -- robustness ---------------------------------------------------------------------------------

_uuids = st.sampled_from(
    [CHAR_AB2] * 3
    + [CHAR_A] * 3
    + [CHAR_B] * 3
    + [BATTERY_CHAR_UUID, FIRMWARE_CHAR_UUID, CONFIG_CHAR_UUID, "not-a-uuid"]
)
_data = st.one_of(st.binary(max_size=6), st.binary(min_size=3, max_size=3))
_steps = st.lists(
    st.tuples(
        _uuids,
        _data,
        st.floats(min_value=0.0, max_value=0.2, allow_nan=False),
        st.integers(min_value=-3000, max_value=3000),
    ),
    max_size=40,
)
_READ_SIZES = {
    BATTERY_CHAR_UUID: 1,
    FIRMWARE_CHAR_UUID: 2,
    CHAR_AB2: 3,
    CHAR_A: 3,
    CHAR_B: 3,
    CONFIG_CHAR_UUID: 3,
}


@settings(max_examples=200, deadline=None)
@given(steps=_steps)
def test_random_writes_never_raise_and_keep_strength_within_0_to_2047(
    steps: list[tuple[str, bytes, float, int]],
) -> None:
    clock = VirtualClock()
    sim = Coyote2Simulator(clock)
    notes: list[bytes] = []
    sim.start_notify(CHAR_AB2, lambda _uuid, payload: notes.append(payload))
    for uuid, data, dt_s, wheel_du in steps:
        sim.write(uuid, data)
        clock.advance(dt_s)
        if wheel_du % 5 == 0:
            sim.turn_wheel("A" if wheel_du % 2 else "B", wheel_du)
        for channel in ("A", "B"):
            assert 0 <= sim.strength_du(channel) <= 2047
        for readable, size in _READ_SIZES.items():
            assert len(sim.read(readable)) == size
    for payload in notes:
        assert len(payload) == 3
        assert payload[2] & 0xC0 == 0  # reserved bits 23-22 never set
    record = sim.record
    for channel in ("A", "B"):
        intervals = record.intervals(channel)
        for earlier, later in itertools.pairwise(intervals):
            assert earlier.end_s == later.start_s
        for interval in intervals:
            assert 0 <= interval.strength_du <= 2047
            assert interval.intensity_pct in (0.0, 100.0)


# -- independence -------------------------------------------------------------------------------

_HOST_SIDE = {"firmware_bridge", "safety", "acustim", "gui"}


def test_the_coyote2_simulator_imports_nothing_from_the_host_side() -> None:
    path = Path(__file__).resolve().parents[2] / "simulators" / "coyote2.py"
    offenders: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        offenders += [name for name in names if name.split(".")[0] in _HOST_SIDE]
    assert offenders == []
