"""The Coyote 2.0 codec against every vector in devices.md section 2, byte for byte, the mapping
of docs/devices/coyote2.md, and the driver on a scripted in-test transport (virtual time).

Written from the documents alone: nothing here imports or reads the Coyote 2 simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import load_profile
from firmware_bridge import make_driver
from firmware_bridge.codecs import coyote2 as C
from firmware_bridge.errors import ProtocolError, TransportClosed, TransportError
from firmware_bridge.events import BatteryReport, DeviceEvent, DeviceNotice, StrengthReport
from firmware_bridge.frames import GuardFrames
from firmware_bridge.streamer import Streamer
from firmware_bridge.transport import Transport
from firmware_bridge.vtime import VirtualTimeLoop
from safety import Guard, LimitError, UnvettedFrameError, VettedFrame, resolve_limits
from tests.safety.helpers import demand, device, program

T = TypeVar("T")
PROFILE = load_profile("coyote2")
A_WAVE, B_WAVE, PWM = C.PWM_B34_CHAR, C.PWM_A34_CHAR, C.PWM_AB2_CHAR


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# --- characteristics ------------------------------------------------------------------------------
def test_uuids_are_full_lower_case_on_the_coyote2_base() -> None:
    assert C.BATTERY_CHAR == "955a1500-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.FIRMWARE_CHAR == "955a1501-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.PWM_AB2_CHAR == "955a1504-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.PWM_A34_CHAR == "955a1505-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.PWM_B34_CHAR == "955a1506-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.CONFIG_CHAR == "955a1507-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.BATTERY_SERVICE == "955a180a-0fe2-f5aa-a094-84b8d4f3e8ad"
    assert C.PWM_SERVICE == "955a180b-0fe2-f5aa-a094-84b8d4f3e8ad"


def test_channel_a_waveform_goes_to_1506_and_b_to_1505() -> None:
    assert C.WAVEFORM_CHAR["A"] == C.char_uuid(0x1506)
    assert C.WAVEFORM_CHAR["B"] == C.char_uuid(0x1505)


# --- the reference's vectors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("xyz", "hex_text"),
    [((1, 9, 20), "21010A"), ((5, 95, 20), "E50B0A")],
)
def test_waveform_vectors(xyz: tuple[int, int, int], hex_text: str) -> None:
    assert C.encode_xyz(*xyz) == h(hex_text)
    assert C.decode_xyz(h(hex_text)) == xyz


def test_the_official_breathing_sequence() -> None:
    zs = (0, 4, 8, 12, 16, 20, 20, 20, 0, 0, 0, 0)
    expected = "210100 210102 210104 210106 210108 21010A 21010A 21010A 210100 210100 210100 210100"
    assert [C.encode_xyz(1, 9, z) for z in zs] == [h(v) for v in expected.split()]
    assert [C.decode_xyz(h(v)) for v in expected.split()] == [(1, 9, z) for z in zs]


@pytest.mark.parametrize(
    ("a", "b", "hex_text"),
    [(70, 140, "8C3002"), (2000, 0, "00803E")],
)
def test_strength_vectors(a: int, b: int, hex_text: str) -> None:
    assert C.encode_pwm_ab2(a, b) == h(hex_text)
    assert C.decode_pwm_ab2(h(hex_text)) == (a, b)


# --- bit layouts at the edges ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "hex_text"),
    [
        (0, 0, "000000"),
        (2047, 0, "00F83F"),
        (0, 2047, "FF0700"),
        (2047, 2047, "FFFF3F"),
        (1, 1, "010800"),
    ],
)
def test_strength_bit_layout(a: int, b: int, hex_text: str) -> None:
    assert C.encode_pwm_ab2(a, b) == h(hex_text)
    assert C.decode_pwm_ab2(h(hex_text)) == (a, b)


@pytest.mark.parametrize(
    ("xyz", "hex_text"),
    [
        ((0, 0, 0), "000000"),
        ((31, 0, 0), "1F0000"),
        ((0, 1023, 0), "E07F00"),
        ((0, 0, 31), "00800F"),
        ((31, 1023, 31), "FFFF0F"),
        ((0, 1000, 0), "007D00"),
    ],
)
def test_waveform_bit_layout(xyz: tuple[int, int, int], hex_text: str) -> None:
    assert C.encode_xyz(*xyz) == h(hex_text)
    assert C.decode_xyz(h(hex_text)) == xyz


@pytest.mark.parametrize(
    ("args", "message"),
    [((2048, 0), "strength A"), ((0, 2048), "strength B"), ((-1, 0), "strength A")],
)
def test_strength_encoder_refuses_out_of_range(args: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        C.encode_pwm_ab2(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((32, 0, 0), "X = 32"),
        ((0, 1024, 0), "Y = 1024"),
        ((0, 0, 32), "Z = 32"),
        ((-1, 0, 0), "X = -1"),
        ((True, 0, 0), "X = True"),
    ],
)
def test_waveform_encoder_refuses_out_of_range(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        C.encode_xyz(*args)


@pytest.mark.parametrize("data", [b"", h("0000"), h("00000000"), h("000040"), h("0000C0")])
def test_malformed_strength_values_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        C.decode_pwm_ab2(data)


@pytest.mark.parametrize("data", [b"", h("21010A00"), h("000010"), h("0000F0")])
def test_malformed_waveform_values_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        C.decode_xyz(data)


@given(st.integers(0, 2047), st.integers(0, 2047))
def test_strength_round_trips(a: int, b: int) -> None:
    data = C.encode_pwm_ab2(a, b)
    assert len(data) == 3
    assert C.decode_pwm_ab2(data) == (a, b)


@given(st.integers(0, 31), st.integers(0, 1023), st.integers(0, 31))
def test_waveform_round_trips(x: int, y: int, z: int) -> None:
    assert C.decode_xyz(C.encode_xyz(x, y, z)) == (x, y, z)


def test_battery_firmware_and_config_decode() -> None:
    assert C.decode_battery(b"\x40") == 64
    assert C.decode_battery(b"\x64") == 100
    for bad in (b"", b"\x65", b"\x10\x10"):
        with pytest.raises(ProtocolError):
            C.decode_battery(bad)
    assert C.decode_firmware(h("0102")) == "1.2"
    with pytest.raises(ProtocolError):
        C.decode_firmware(h("01"))
    assert C.decode_config(h("07D007")) == C.Config(step_du=7, max_strength_du=2000)
    with pytest.raises(ProtocolError):
        C.decode_config(h("07D0"))


# --- the mapping (docs/devices/coyote2.md) --------------------------------------------------------
@pytest.mark.parametrize(
    ("hz", "period"),
    [
        (100.0, 10),
        (50.0, 20),
        (2.0, 500),
        (1.0, 1000),
        (80.0, 12),  # 12.5 ms: Python's round, halves to even
        (200.0, 10),
        (0.5, 1000),
        (0.0, 1000),
        (-3.0, 1000),
        (float("nan"), 1000),
        (float("inf"), 10),
        (5e-324, 1000),
    ],
)
def test_frequency_to_period(hz: float, period: int) -> None:
    assert C.period_ms(hz) == period


@pytest.mark.parametrize(
    ("period", "xy"),
    [
        (10, (2, 8)),  # 100 Hz
        (20, (2, 18)),  # 50 Hz
        (100, (5, 95)),  # 10 Hz: the reference's computed (5, 95)
        (500, (11, 489)),  # 2 Hz
        (1000, (15, 985)),  # 1 Hz
        (5, (2, 8)),  # below 10 ms: 10 ms
        (5000, (15, 985)),  # above 1000 ms: 1000 ms
    ],
)
def test_period_split_into_x_and_y(period: int, xy: tuple[int, int]) -> None:
    assert C.period_to_xy(period) == xy


@given(st.floats(1.0, 100.0))
def test_every_rate_in_range_keeps_its_period_and_x_at_least_1(hz: float) -> None:
    x, y = C.period_to_xy(C.period_ms(hz))
    assert 1 <= x <= 31
    assert 0 <= y <= 1023
    assert x + y == C.period_ms(hz)


@pytest.mark.parametrize(
    ("width_us", "z"),
    [
        (100.0, 20),
        (200.0, 20),  # clamps to Z 20 (100 us), the official app's top
        (1000.0, 20),
        (20.0, 4),
        (50.0, 10),
        (22.5, 4),  # 4.5: halves to even
        (5.0, 1),
        (2.0, 1),
        (0.0, 1),
        (-5.0, 1),
        (float("nan"), 1),
        (float("inf"), 20),
        (float("-inf"), 1),
    ],
)
def test_pulse_width_to_z(width_us: float, z: int) -> None:
    assert C.pulse_width_to_z(width_us) == z


@pytest.mark.parametrize(
    ("level", "intensity", "strength"),
    [
        (70, 1.0, 70),
        (100, 0.5, 50),
        (2000, 1.0, 2000),
        (5, 0.3, 1),  # 1.5 rounded down: never more than the guard vetted
        (70, 0.0, 0),
        (0, 1.0, 0),
        (3000, 1.0, 2047),
        (100, 1.5, 100),
        (100, float("nan"), 0),
    ],
)
def test_level_times_intensity_is_the_strength(level: int, intensity: float, strength: int) -> None:
    assert C.strength_du(level, intensity) == strength


def test_waveform_for_a_channel_and_its_silences() -> None:
    assert C.waveform_for(100.0, 100.0, 1.0, 70) == (2, 8, 20)
    assert C.waveform_for(10.0, 100.0, 0.5, 70) == (5, 95, 20)
    assert C.waveform_for(2.0, 20.0, 0.2, 1) == (11, 489, 4)
    # no pulses, but the period stays: X = 0, Y = F, Z = 0
    assert C.waveform_for(100.0, 100.0, 0.0, 70) == (0, 10, 0)
    assert C.waveform_for(2.0, 100.0, 1.0, 0) == (0, 500, 0)
    assert C.waveform_for(0.0, 100.0, 0.0, 0) == (0, 1000, 0)
    assert C.waveform_for(50.0, 100.0, 0.0, 0).silent


# --- guard-made frames -------------------------------------------------------------------------
Wave = tuple[float, float, float]  # (frequency_hz, pulse_width_us, intensity)


def ramped(levels: dict[str, int]) -> tuple[Guard, float]:
    """A running guard on the coyote2 profile whose levels reached ``levels``."""
    g = Guard(resolve_limits(PROFILE.limits, program(), rise_fraction_per_s=0.05))
    g.start(0.0)
    g.confirm_limits_written()
    for name, level in levels.items():
        g.set_level(name, level, 0.0)
    t = 0.0
    full = [demand(name, intensity=1.0, n=1) for name in levels]
    while any(g.level_du(n) < level for n, level in levels.items()):
        t += 0.25
        g.vet(full, t)
    for _ in range(8):  # delivered output (level x intensity) catches up with the level
        t += 0.25
        g.vet(full, t)
    return g, t


def vet(g: Guard, t: float, **waves: Wave) -> VettedFrame:
    return g.vet(
        [
            demand(name, frequency_hz=f, pulse_width_us=w, intensity=i, n=1)
            for name, (f, w, i) in waves.items()
        ],
        t,
    )


def codec_at_zero() -> C.Coyote2Codec:
    codec = C.Coyote2Codec()
    codec.zero_writes()
    return codec


def test_a_frame_writes_a_then_b_then_the_changed_strengths() -> None:
    g, t = ramped({"A": 70, "B": 140})
    frame = vet(g, t, A=(100.0, 100.0, 1.0), B=(2.0, 20.0, 1.0))
    writes = codec_at_zero().encode(frame)
    assert writes == [
        (C.char_uuid(0x1506), C.encode_xyz(2, 8, 20)),
        (C.char_uuid(0x1505), C.encode_xyz(11, 489, 4)),
        (C.char_uuid(0x1504), h("8C3002")),
    ]


def test_the_swap_channel_a_output_goes_to_1506_only() -> None:
    g, t = ramped({"A": 70})
    frame = vet(g, t, A=(10.0, 100.0, 1.0))
    writes = dict(codec_at_zero().encode(frame))
    assert C.decode_xyz(writes[C.char_uuid(0x1506)]) == (5, 95, 20)
    assert C.decode_xyz(writes[C.char_uuid(0x1505)]).silent
    assert C.decode_pwm_ab2(writes[PWM]) == (70, 0)


def test_strength_is_written_only_when_it_changes() -> None:
    g, t = ramped({"A": 70, "B": 140})
    codec = codec_at_zero()
    first = codec.encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    second = codec.encode(vet(g, t + 0.1, A=(20.0, 60.0, 1.0), B=(50.0, 100.0, 1.0)))
    assert [w.char for w in first] == [A_WAVE, B_WAVE, PWM]
    assert [w.char for w in second] == [A_WAVE, B_WAVE]  # both waveforms refreshed, no strength
    assert C.decode_xyz(second[0].data) == (3, 47, 12)
    third = codec.encode(vet(g, t + 0.2, A=(50.0, 100.0, 0.5), B=(50.0, 100.0, 1.0)))
    assert [w.char for w in third] == [PWM, A_WAVE, B_WAVE]  # a fall goes first
    assert C.decode_pwm_ab2(third[0].data) == (35, 140)
    assert codec.written == (35, 140)


def test_intensity_zero_writes_a_silent_waveform_and_strength_zero() -> None:
    g, t = ramped({"A": 70, "B": 140})
    codec = codec_at_zero()
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    off_a = codec.encode(vet(g, t + 0.1, A=(50.0, 100.0, 0.0), B=(50.0, 100.0, 1.0)))
    assert [w.char for w in off_a] == [PWM, A_WAVE, B_WAVE]  # a fall goes first
    assert C.decode_xyz(off_a[1].data) == (0, 20, 0)
    assert C.decode_pwm_ab2(off_a[0].data) == (0, 140)


def test_level_zero_channel_is_silent() -> None:
    g, t = ramped({"B": 30})
    writes = codec_at_zero().encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    assert C.decode_xyz(writes[0].data) == (0, 20, 0)
    assert C.decode_xyz(writes[1].data) == (2, 18, 20)
    assert C.decode_pwm_ab2(writes[2].data) == (0, 30)


def test_the_guard_clamps_pulse_width_to_the_profile_so_z_stays_at_most_20() -> None:
    g, t = ramped({"A": 10})
    writes = codec_at_zero().encode(vet(g, t, A=(50.0, 200.0, 1.0)))
    assert C.decode_xyz(writes[0].data).z == 20


def test_zero_writes_strength_first_then_silent_waveforms_every_time() -> None:
    codec = C.Coyote2Codec()
    expected = [(PWM, h("000000")), (A_WAVE, h("007D00")), (B_WAVE, h("007D00"))]
    assert codec.zero_writes() == expected
    assert codec.zero_writes() == expected  # even when the device already holds zero
    assert codec.written == (0, 0)


def test_a_zero_frame_and_the_emergency_stop_are_zero_writes() -> None:
    g, t = ramped({"A": 70, "B": 140})
    codec = codec_at_zero()
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    stop = codec.encode(g.stop(t + 0.05))
    assert stop == C.Coyote2Codec().zero_writes()
    assert codec.device_strengths == (0, 0)
    assert codec.encode(g.zero_frame(t + 0.1))[0] == (PWM, h("000000"))


def test_frames_of_another_layout_are_refused() -> None:
    four = Guard(resolve_limits(device(biphasic=False), program()))
    four.start(0.0)
    four.confirm_limits_written()
    four.set_level("A", 5, 0.0)
    frame = four.vet([demand("A", n=4)], 0.25)
    assert not frame.zero
    with pytest.raises(ValueError, match="1 sample"):
        C.Coyote2Codec().encode(frame)

    three = Guard(
        resolve_limits(device(channels=("A", "C"), samples_per_frame=1), program(("A", "C")))
    )
    three.start(0.0)
    three.confirm_limits_written()
    three.set_level("C", 5, 0.0)
    with pytest.raises(ValueError, match="no channel 'C'"):
        C.Coyote2Codec().encode(three.vet([demand("C", n=1)], 0.25))


def test_a_channel_missing_from_the_frame_is_silent() -> None:
    only_a = Guard(resolve_limits(device(channels=("A",), samples_per_frame=1), program(("A",))))
    only_a.start(0.0)
    only_a.confirm_limits_written()
    only_a.set_level("A", 1, 0.0)
    writes = codec_at_zero().encode(only_a.vet([demand("A", frequency_hz=100.0, n=1)], 0.25))
    assert [w.char for w in writes] == [A_WAVE, B_WAVE, PWM]
    assert C.decode_xyz(writes[1].data).silent
    assert C.decode_pwm_ab2(writes[2].data) == (1, 0)


# --- notifications ------------------------------------------------------------------------------
def test_the_echo_of_a_host_write_is_not_by_device() -> None:
    codec = C.Coyote2Codec()
    g, t = ramped({"A": 70, "B": 140})
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    event = codec.receive(PWM, h("8C3002"))
    assert event == StrengthReport({"A": 70, "B": 140}, 0, by_device=False)


def test_a_wheel_change_is_by_device_and_names_only_the_changed_channel() -> None:
    codec = C.Coyote2Codec()
    g, t = ramped({"A": 70, "B": 140})
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    assert codec.receive(PWM, h("8C3002")) is not None  # the echo
    wheel = codec.receive(PWM, C.encode_pwm_ab2(77, 140))
    assert wheel == StrengthReport({"A": 77}, 0, by_device=True)
    assert codec.device_strengths == (77, 140)
    # the guard followed: the next frame at the same strengths writes no strength
    g.device_level("A", 77, t + 0.1)
    frame = vet(g, t + 0.2, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0))
    assert [w.char for w in codec.encode(frame)] == [A_WAVE, B_WAVE]
    # a repeat of the same notification is no news
    assert codec.receive(PWM, C.encode_pwm_ab2(77, 140)) == StrengthReport(
        {"A": 77, "B": 140}, 0, by_device=False
    )


def test_a_wheel_change_before_any_write_reports_both_channels() -> None:
    codec = C.Coyote2Codec()
    assert codec.receive(PWM, h("8C3002")) == StrengthReport({"A": 70, "B": 140}, 0, by_device=True)


def test_a_strength_the_guard_did_not_follow_is_written_back() -> None:
    g, t = ramped({"A": 70})
    codec = codec_at_zero()
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0)))
    wheel = codec.receive(PWM, C.encode_pwm_ab2(2047, 0))
    assert wheel == StrengthReport({"A": 2047}, 0, by_device=True)
    g.device_level("A", 2047, t)  # a rise: the target becomes the ceiling (2000), ramped
    assert g.target_du("A") == 2000
    frame = vet(g, t + 0.1, A=(50.0, 100.0, 1.0))
    writes = codec.encode(frame)
    # the device is written back down to the ramped level at once (a fall goes first)
    assert writes[0] == (PWM, C.encode_pwm_ab2(frame.channel("A").level_du, 0))
    assert frame.channel("A").level_du < 100


def test_a_late_echo_after_an_emergency_stop_is_not_taken_for_the_wheel() -> None:
    g, t = ramped({"A": 70, "B": 140})
    codec = codec_at_zero()
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0), B=(50.0, 100.0, 1.0)))
    codec.encode(g.stop(t + 0.01))
    late = codec.receive(PWM, h("8C3002"))
    assert late == StrengthReport({"A": 70, "B": 140}, 0, by_device=False)
    assert codec.device_strengths == (0, 0)  # the zero write is still on its way
    assert codec.receive(PWM, h("000000")) == StrengthReport({"A": 0, "B": 0}, 0, by_device=False)


def test_old_writes_stop_counting_as_echoes_after_the_window() -> None:
    g, t = ramped({"A": 70})
    codec = codec_at_zero()
    codec.encode(vet(g, t, A=(50.0, 100.0, 1.0)))  # writes 70/0
    g.set_level("A", 10, t)
    for k in range(1, C.ECHO_WINDOW_FRAMES + 2):
        codec.encode(vet(g, t + 0.1 * k, A=(50.0, 100.0, 1.0)))  # writes 10/0 once
    event = codec.receive(PWM, C.encode_pwm_ab2(70, 0))
    assert event == StrengthReport({"A": 70}, 0, by_device=True)


def test_battery_and_unknown_endpoints() -> None:
    codec = C.Coyote2Codec()
    assert codec.receive(C.BATTERY_CHAR, b"\x50") == BatteryReport(80)
    assert codec.receive(C.BATTERY_CHAR.upper(), b"\x51") == BatteryReport(81)
    assert codec.receive(C.PWM_A34_CHAR, h("21010A")) is None
    assert codec.receive("other", b"\x00") is None
    with pytest.raises(ProtocolError):
        codec.receive(C.BATTERY_CHAR, b"\xff")
    with pytest.raises(ProtocolError):
        codec.receive(PWM.upper(), b"\x00")


ENDPOINTS = [
    C.BATTERY_CHAR,
    C.FIRMWARE_CHAR,
    C.PWM_AB2_CHAR,
    C.PWM_A34_CHAR,
    C.PWM_B34_CHAR,
    C.CONFIG_CHAR,
    C.PWM_AB2_CHAR.upper(),
    "",
    "other",
]


@given(st.lists(st.tuples(st.sampled_from(ENDPOINTS), st.binary(max_size=8)), max_size=12))
def test_any_bytes_on_any_characteristic_give_an_event_none_or_a_protocol_error(
    notes: list[tuple[str, bytes]],
) -> None:
    codec = C.Coyote2Codec()
    codec.zero_writes()
    for endpoint, data in notes:
        with contextlib.suppress(ProtocolError):
            event = codec.receive(endpoint, data)
            assert event is None or isinstance(event, StrengthReport | BatteryReport)
            if isinstance(event, StrengthReport):
                assert all(0 <= v <= C.STRENGTH_MAX_DU for v in event.levels_du.values())


# --- the profile ----------------------------------------------------------------------------------
def test_the_profile_states_what_the_documents_say() -> None:
    p = PROFILE
    assert (p.id, p.link, p.codec, p.simulator) == ("coyote2", "ble", "coyote2", "coyote2")
    assert p.ble_names == ("D-LAB ESTIM01",)
    assert p.channels == ("A", "B")
    assert p.limits.max_level_du == 2000
    assert p.limits.frequency_range_hz == (1.0, 100.0)
    assert p.pulse_width_controlled
    assert p.limits.pulse_width_range_us == (20.0, 100.0)
    assert (C.pulse_width_to_z(20.0), C.pulse_width_to_z(100.0)) == (4, 20)
    assert p.limits.samples_per_frame == 1
    assert p.limits.frame_period_s == pytest.approx(0.09)  # slack under the 100 ms validity
    assert p.frames_ahead == 0
    assert p.stops_when_host_silent and p.limits.stops_when_host_silent
    assert not p.limits.biphasic
    assert not p.calibrated
    assert p.device_settings == {}
    p.limits.check()


def test_the_profile_refuses_needles() -> None:
    with pytest.raises(LimitError, match="needle"):
        resolve_limits(PROFILE.limits, program(electrode="needle"))


# --- the driver, on a scripted transport -------------------------------------------------------
class ScriptedGatt(Transport):
    """Records every write; reads answer from a script (missing: an error; None: never)."""

    def __init__(self, reads: dict[str, bytes | None]) -> None:
        super().__init__()
        self.url = "test:coyote2"
        self.reads = reads
        self.log: list[tuple[float, str, str, bytes]] = []  # (time, op, endpoint, data)
        self._open = False
        self.opened = 0

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self.opened += 1
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _note(self, op: str, endpoint: str, data: bytes = b"") -> None:
        self.log.append((asyncio.get_running_loop().time(), op, endpoint, data))

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        if not self._open:
            raise TransportClosed("closed")
        self._note("write", endpoint, bytes(data))

    async def read(self, endpoint: str) -> bytes:
        if not self._open:
            raise TransportClosed("closed")
        self._note("read", endpoint)
        if endpoint not in self.reads:
            raise TransportError(f"no characteristic {endpoint}")
        value = self.reads[endpoint]
        if value is None:
            await asyncio.Event().wait()  # a read that is never answered
            raise AssertionError("unreachable")
        return value

    async def subscribe(self, endpoint: str) -> None:
        self._note("subscribe", endpoint)

    @property
    def writes(self) -> list[tuple[str, bytes]]:
        return [(e, d) for _, op, e, d in self.log if op == "write"]

    def notify(self, endpoint: str, data: bytes) -> None:
        self._deliver(endpoint, data)


FULL = {C.BATTERY_CHAR: b"\x55", C.FIRMWARE_CHAR: h("0102"), C.CONFIG_CHAR: h("07D007")}


def run(loop: VirtualTimeLoop, coro: Coroutine[Any, Any, T]) -> T:
    return loop.run_until_complete(coro)


@pytest.fixture
def loop() -> Any:
    lp = VirtualTimeLoop(start_s=50.0)
    yield lp
    lp.close()


def connected(
    loop: VirtualTimeLoop, reads: dict[str, bytes | None] | None = None
) -> tuple[C.Driver, ScriptedGatt, list[DeviceEvent], Guard]:
    link = ScriptedGatt(dict(FULL) if reads is None else reads)
    driver = make_driver(PROFILE, link)
    assert isinstance(driver, C.Driver)
    events: list[DeviceEvent] = []
    driver.on_event = events.append
    guard = Guard(resolve_limits(PROFILE.limits, program(), rise_fraction_per_s=0.05))
    run(loop, driver.connect(guard.limits))
    return driver, link, events, guard


def assert_all_zero(writes: list[tuple[str, bytes]]) -> None:
    for endpoint, data in writes:
        if endpoint == PWM:
            assert C.decode_pwm_ab2(data) == (0, 0)
        else:
            assert endpoint in (A_WAVE, B_WAVE)
            assert C.decode_xyz(data).silent


def test_connect_subscribes_reads_and_writes_only_zero(loop: VirtualTimeLoop) -> None:
    driver, link, events, _ = connected(loop)
    ops = [(op, e) for _, op, e, _ in link.log]
    assert ops[:5] == [
        ("subscribe", PWM),
        ("subscribe", C.BATTERY_CHAR),
        ("read", C.BATTERY_CHAR),
        ("read", C.FIRMWARE_CHAR),
        ("read", C.CONFIG_CHAR),
    ]
    assert link.writes == C.Coyote2Codec().zero_writes()
    assert link.writes[0] == (PWM, h("000000"))  # limits before output: strength zero first
    assert_all_zero(link.writes)
    assert driver.battery_percent == 85
    assert driver.firmware_version == "1.2"
    assert driver.config == C.Config(7, 2000)
    assert [e.kind for e in events if isinstance(e, DeviceNotice)] == ["firmware", "config"]
    assert link.opened == 1


def test_connect_without_the_optional_characteristics(loop: VirtualTimeLoop) -> None:
    driver, link, events, _ = connected(loop, {C.BATTERY_CHAR: b"\x10"})
    assert driver.battery_percent == 16
    assert driver.firmware_version is None and driver.config is None
    assert events == []
    assert_all_zero(link.writes)


def test_connect_does_not_hang_on_an_unanswered_optional_read(loop: VirtualTimeLoop) -> None:
    start = loop.time()
    driver, link, events, _ = connected(
        loop, {C.BATTERY_CHAR: b"\x10", C.FIRMWARE_CHAR: None, C.CONFIG_CHAR: h("07D0")}
    )
    assert loop.time() - start == pytest.approx(C.OPTIONAL_READ_TIMEOUT_S)
    assert driver.config is None  # malformed: counted, not shown
    assert driver.protocol_errors == 1
    assert events == []
    assert_all_zero(link.writes)


def test_connect_fails_when_the_battery_cannot_be_read(loop: VirtualTimeLoop) -> None:
    link = ScriptedGatt({})
    driver = C.Driver(PROFILE, link)
    with pytest.raises(TransportError):
        run(loop, driver.connect(Guard(resolve_limits(PROFILE.limits, program())).limits))
    assert link.writes == []


def test_every_frame_refreshes_both_waveforms(loop: VirtualTimeLoop) -> None:
    driver, link, _, guard = connected(loop)
    guard.confirm_limits_written()
    guard.start(loop.time())
    guard.set_level("A", 100, loop.time())
    demands = [demand("A", frequency_hz=10.0, pulse_width_us=100.0, n=1)]
    streamer = Streamer(driver, GuardFrames(guard, lambda i, now: demands))
    loop.call_later(3.0, streamer.end, "stopped", "test over")
    before = len(link.log)
    result = run(loop, streamer.run())
    assert result.outcome == "stopped"
    run(loop, asyncio.sleep(0))  # the out-of-band zero
    stream = [(t, e, d) for t, op, e, d in link.log[before:] if op == "write"]
    a_times = [t for t, e, _ in stream if e == A_WAVE]
    b_times = [t for t, e, _ in stream if e == B_WAVE]
    assert len(a_times) >= 29
    assert a_times == b_times
    assert all(b - a <= 0.1 + 1e-9 for a, b in itertools.pairwise(a_times))
    pulses = [C.decode_xyz(d) for _, e, d in stream if e == A_WAVE and not C.decode_xyz(d).silent]
    assert pulses and all(p == (5, 95, 20) for p in pulses)
    strengths = [C.decode_pwm_ab2(d) for _, e, d in stream if e == PWM]
    rising, last = strengths[:-1], strengths[-1]
    assert rising == sorted(set(rising))  # soft start: each change a rise, written once
    assert rising[-1] == (100, 0)
    assert last == (0, 0)
    assert stream[-3:] == [(stream[-3][0], e, d) for e, d in C.Coyote2Codec().zero_writes()]


def test_unvetted_frames_never_reach_the_transport(loop: VirtualTimeLoop) -> None:
    driver, link, _, _ = connected(loop)
    before = len(link.writes)
    for fake in (object(), None, b"\x00\x00\x00"):
        with pytest.raises(UnvettedFrameError):
            run(loop, driver.send(fake))  # type: ignore[arg-type]
    assert len(link.writes) == before


def test_the_driver_reports_wheel_battery_and_ignores_garbage(loop: VirtualTimeLoop) -> None:
    driver, link, events, _ = connected(loop, {C.BATTERY_CHAR: b"\x55"})
    link.notify(PWM, h("000000"))  # the echo of the connect zero
    link.notify(PWM, C.encode_pwm_ab2(7, 0))  # the wheel
    link.notify(C.BATTERY_CHAR, b"\x20")
    link.notify(PWM, b"\x01")  # malformed
    link.notify(C.BATTERY_CHAR, b"\xee")  # malformed
    assert events == [
        StrengthReport({"A": 0, "B": 0}, 0, by_device=False),
        StrengthReport({"A": 7}, 0, by_device=True),
        BatteryReport(32),
    ]
    assert driver.battery_percent == 32
    assert driver.protocol_errors == 2


def test_close_writes_the_zero_and_closes(loop: VirtualTimeLoop) -> None:
    driver, link, _, guard = connected(loop)
    before = len(link.writes)
    run(loop, driver.close(guard.zero_frame(loop.time())))
    assert link.writes[before:] == C.Coyote2Codec().zero_writes()
    assert not link.is_open


def test_reconnect_starts_from_a_fresh_codec_and_writes_zero_again(loop: VirtualTimeLoop) -> None:
    driver, link, _, guard = connected(loop)
    guard.confirm_limits_written()
    guard.start(loop.time())
    guard.set_level("A", 10, loop.time())
    run(loop, driver.send(guard.vet([demand("A", n=1)], loop.time() + 0.25)))
    assert driver.codec.written == (10, 0)
    link._open = False
    before = len(link.writes)
    run(loop, driver.connect(guard.limits))
    assert link.opened == 2
    assert link.writes[before:] == C.Coyote2Codec().zero_writes()
    assert driver.codec.written == (0, 0)
