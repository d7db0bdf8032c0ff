"""The Coyote 3.0 codec against every test vector in devices.md section 1, byte for byte."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.codecs import coyote3 as C
from firmware_bridge.errors import ProtocolError
from firmware_bridge.events import BatteryReport, StrengthReport
from safety import Guard, resolve_limits
from tests.safety.helpers import demand, device, program

OFF = ((0, 0, 0, 0), (0, 0, 0, 101))  # B disabled: intensity 101 in the last slot
NONE = C.MODE_NONE


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


@pytest.mark.parametrize(
    ("hex_text", "args"),
    [
        (
            "B00000000A0A0A0A000A141E0000000000000065",
            (0, NONE, 0, NONE, 0, ((10,) * 4, (0, 10, 20, 30)), OFF),
        ),
        (
            "B00000000F0F0F0F28323C460000000000000065",
            (0, NONE, 0, NONE, 0, ((15,) * 4, (40, 50, 60, 70)), OFF),
        ),
        (
            "B0000000283C5064645A5A5A0000000000000065",
            (0, NONE, 0, NONE, 0, ((40, 60, 80, 100), (100, 90, 90, 90)), OFF),
        ),
        (
            "B00405000A0A0A0A000A141E0000000000000065",
            (0, C.MODE_ADD, 5, NONE, 0, ((10,) * 4, (0, 10, 20, 30)), OFF),
        ),
        (
            "B0140A00283C5064645A5A5A0000000000000065",
            (1, C.MODE_ADD, 10, NONE, 0, ((40, 60, 80, 100), (100, 90, 90, 90)), OFF),
        ),
        (
            "B00000000A0A0A0A000A141E0A0A0A0A00000000",
            (0, NONE, 0, NONE, 0, ((10,) * 4, (0, 10, 20, 30)), ((10,) * 4, (0,) * 4)),
        ),
        # computed vectors
        (
            "B01F14000A0A0A0A323232320A0A0A0A00000065",
            (1, C.MODE_SET, 20, C.MODE_SET, 0, ((10,) * 4, (50,) * 4), ((10,) * 4, (0, 0, 0, 101))),
        ),
        (
            "B02F00000A0A0A0A000000000A0A0A0A00000000",
            (2, C.MODE_SET, 0, C.MODE_SET, 0, ((10,) * 4, (0,) * 4), ((10,) * 4, (0,) * 4)),
        ),
    ],
)
def test_b0_matches_the_reference_vectors(hex_text: str, args: tuple[object, ...]) -> None:
    assert C.encode_b0(*args).hex().upper() == hex_text  # type: ignore[arg-type]


def test_bf_matches_the_computed_vector() -> None:
    assert C.encode_bf(150, 30, 160, 160, 0, 0) == h("BF961EA0A00000")


@pytest.mark.parametrize(
    ("period_ms", "byte"),
    [(10, 10), (100, 100), (150, 110), (333, 146), (166, 113), (600, 200), (650, 205), (1000, 240)],
)
def test_period_compression(period_ms: int, byte: int) -> None:
    assert C.period_ms_to_byte(period_ms) == byte


@pytest.mark.parametrize("period_ms", [0, 9, 1001, -5])
def test_period_outside_10_1000_gives_10(period_ms: int) -> None:
    assert C.period_ms_to_byte(period_ms) == 10


@pytest.mark.parametrize(
    ("hz", "byte"),
    [(100.0, 10), (2.0, 180), (1.6667, 200), (1.0, 240), (3.0, 146), (0.0, 10), (float("nan"), 10)],
)
def test_frequency_goes_through_the_period(hz: float, byte: int) -> None:
    assert C.frequency_to_byte(hz) == byte


def test_encoder_refuses_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="seq"):
        C.encode_b0(16, 0, 0, 0, 0, OFF, OFF)
    with pytest.raises(ValueError, match="4 samples"):
        C.encode_b0(0, 0, 0, 0, 0, ((10,), (0,)), OFF)
    with pytest.raises(ValueError, match="soft limit A"):
        C.encode_bf(201, 0, 0, 0, 0, 0)


def test_b1_decodes_and_bad_replies_are_protocol_errors() -> None:
    assert C.decode_b1(h("B1011900")) == C.B1(1, 25, 0)
    for bad in (b"", h("B101"), h("B0011900"), h("B101C900"), h("B10119000000")):
        with pytest.raises(ProtocolError):
            C.decode_b1(bad)
    assert C.decode_battery(b"\x40") == 64
    with pytest.raises(ProtocolError):
        C.decode_battery(b"\x65")


# --- the stateful codec --------------------------------------------------------------------------
def guard_with(levels: dict[str, int]) -> Guard:
    g = Guard(resolve_limits(device(), program()))
    g.start(0.0)
    g.confirm_limits_written()
    return g


def vetted(g: Guard, t: float, intensity: float = 0.5) -> C.VettedFrame:
    return g.vet([demand("A", intensity=intensity, frequency_hz=100.0)], t)


def test_rises_wait_for_b1_and_falls_do_not() -> None:
    codec = C.Coyote3Codec()
    codec.device_levels = {"A": 0, "B": 0}
    g = guard_with({})
    g.set_level("A", 40, 0.0)
    frames = [vetted(g, 0.1 * i) for i in range(1, 30)]
    k = next(i for i, f in enumerate(frames) if f.channel("A").level_du > 0)
    rising, after = frames[k], frames[k + 1]
    # the rise's waveform goes first; its strength follows with the next frame, when that
    # waveform starts to play (the device plays each waveform one frame after it arrives)
    first = codec.encode(rising, 1.0)
    assert first[1] == 0 and first[2] == 0  # no strength change yet
    assert first[4:8] == bytes([10] * 4)  # 100 Hz -> 10 ms
    # the waveform carries the vetted intensity, rounded down: the delivered-output soft
    # start holds the first frame's level x intensity to one frame's rise
    shown = math.floor(rising.channel("A").intensity[0] * 100 + 1e-9)
    assert 0 < shown <= 50
    assert first[8:12] == bytes([shown] * 4)
    second = codec.encode(after, 1.1)
    assert second[1] >> 4 != 0  # a sequence number: a reply is wanted
    assert (second[1] >> 2) & 3 == C.MODE_SET
    assert second[2] == rising.channel("A").level_du
    # while the B1 is pending, a further rise is not sent
    higher = frames[-1]
    codec.encode(higher, 1.2)
    held = codec.encode(higher, 1.3)
    assert held[1] == 0
    assert held[2] == 0
    # a fall is sent at once even though a reply is pending
    g.set_level("A", 0, 3.0)
    fall = codec.encode(vetted(g, 3.0), 3.0)
    assert (fall[1] >> 2) & 3 == C.MODE_SET
    assert fall[2] == 0
    # at level 0 the waveform is silent too: a wheel turned now delivers nothing
    assert fall[8:12] == bytes([0] * 4)


def test_b1_with_the_pending_seq_clears_it_and_wheel_is_by_device() -> None:
    codec = C.Coyote3Codec()
    codec.device_levels = {"A": 0, "B": 0}
    cmd = codec.zero_command(0.0)
    seq = cmd[1] >> 4
    event = codec.receive(C.NOTIFY_CHAR, bytes([0xB1, seq, 0, 0]))
    assert event == StrengthReport({"A": 0, "B": 0}, seq, by_device=False)
    assert codec.pending_seq is None
    wheel = codec.receive(C.NOTIFY_CHAR, h("B1000700"))
    assert wheel == StrengthReport({"A": 7, "B": 0}, 0, by_device=True)
    assert codec.receive(C.BATTERY_CHAR, b"\x50") == BatteryReport(80)
    assert codec.receive("unknown", b"\x00") is None
    assert codec.receive(C.NOTIFY_CHAR, h("51000000")) is None


def test_pending_seq_becomes_overdue_after_the_ack_timeout() -> None:
    codec = C.Coyote3Codec()
    codec.zero_command(10.0)
    assert not codec.overdue(10.0 + C.ACK_TIMEOUT_S)
    assert codec.overdue(10.0 + C.ACK_TIMEOUT_S + 0.01)


def test_sequence_numbers_cycle_through_1_to_15() -> None:
    codec = C.Coyote3Codec()
    seqs = [codec.take_seq() for _ in range(32)]
    assert set(seqs) == set(range(1, 16))
    assert 0 not in seqs


@given(st.binary(max_size=24), st.sampled_from([C.NOTIFY_CHAR, C.BATTERY_CHAR, "other"]))
def test_any_reply_bytes_decode_or_raise_a_protocol_error(data: bytes, endpoint: str) -> None:
    codec = C.Coyote3Codec()
    with contextlib.suppress(ProtocolError):
        codec.receive(endpoint, data)
