"""The ET-312 codec against every test vector in devices.md section 3, byte for byte; the
host-control model of docs/devices/et312.md (drive = knob x intensity / 256: intensity is a
linear factor, 0 is off, no 128 offset, no mute; connect with the pots at 0 around the mode
reload, intensity 0 after it, all read back); and the driver against scripts of box bytes
derived by hand from those documents and docs/devices/et312-firmware.md. Never against the
simulator (it is written independently; the contract tests pair the two), except the last
section, which runs the driver on ``simulators.et312`` through its public ``peek`` only."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import load_profile
from firmware_bridge.codecs import et312 as E
from firmware_bridge.errors import BridgeError, DeviceTimeout, ProtocolError, TransportClosed
from firmware_bridge.events import BatteryReport, DeviceEvent, DeviceNotice
from firmware_bridge.link import ByteStreamLink, simulator_factory
from firmware_bridge.vtime import VirtualTimeLoop
from safety import Guard, LimitError, UnvettedFrameError, VettedFrame, resolve_limits
from tests.safety.helpers import demand, program
from waveforms.program import ChannelDemand

T = TypeVar("T")
PROFILE = load_profile("et312")
K = 0xBA  # host key 0, box key 0xEF


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


def enc(hex_text: str, key: int = K) -> str:
    """A plain packet as it goes on the wire under ``key`` (every byte XOR key)."""
    return bytes(b ^ key for b in h(hex_text)).hex(" ")


# --- the reference's vectors ---------------------------------------------------------------------
def test_key_for_host_key_0_and_box_key_ef_is_ba() -> None:
    assert E.session_key(0xEF) == 0xBA
    assert E.session_key(0xEF, host_key=0) == 0xBA


def test_the_documents_own_key_exchange_example_with_host_key_4() -> None:
    assert E.key_exchange_packet(4) == h("2f 04 33")
    assert E.parse_key_reply(h("21 ef 10")) == 0xEF
    assert E.session_key(0xEF, host_key=4) == 0xFA  # 0x40 ^ 0xEF ^ 0x55


def test_key_exchange_with_host_key_0() -> None:
    assert E.key_exchange_packet() == h("2f 00 2f")


def test_read_current_mode_plain_and_encrypted() -> None:
    assert E.read_packet(0x407B) == h("3c 40 7b f7")
    assert E.encrypt(h("3c 40 7b f7"), K) == h("86 fa c1 4d")
    assert E.decrypt(h("86 fa c1 4d"), K) == h("3c 40 7b f7")


def test_read_reply_mode_waves() -> None:
    assert E.parse_read_reply(h("22 76 98")) == 0x76


def test_write_mode_climb_plain_and_encrypted() -> None:
    assert E.write_packet(0x407B, b"\x78") == h("4d 40 7b 78 80")
    assert E.encrypt(E.write_packet(0x407B, b"\x78"), K) == h("f7 fa c1 c2 3a")


def test_exit_menu_and_new_mode_box_commands() -> None:
    assert E.box_command_packet(0x04, 0x12) == h("5d 40 70 04 12 23")
    assert E.write_packet(0x4070, b"\x04\x12") == h("5d 40 70 04 12 23")


def test_key_reset_plain_and_encrypted() -> None:
    assert E.key_reset_packet() == h("4d 42 13 00 a2")
    assert E.encrypt(E.key_reset_packet(), K) == h("f7 f8 a9 ba 18")


def test_write_a_intensity_ff_has_checksum_31_not_91() -> None:
    assert E.write_packet(0x40A5, b"\xff") == h("4d 40 a5 ff 31")


def test_codec_packets_carry_its_key() -> None:
    codec = E.Et312Codec()
    codec.key = K
    assert codec.read(0x407B) == h("86 fa c1 4d")
    assert codec.key_reset() == h("f7 f8 a9 ba 18")
    assert codec.sync() == h("ba")
    assert codec.plain(h("f7 fa c1 c2 3a")) == h("4d 40 7b 78 80")


# --- packet builders -----------------------------------------------------------------------------
def test_checksum_is_the_8_bit_sum() -> None:
    assert E.checksum(b"") == 0
    assert E.checksum(h("2f 04")) == 0x33
    assert E.checksum(h("4d 40 a5 ff")) == 0x31


def test_sync_is_a_lone_zero_byte() -> None:
    assert E.sync_packet() == h("00")
    assert E.encrypt(E.sync_packet(), 0x5A) == h("5a")


@pytest.mark.parametrize(("n", "head"), [(1, 0x4D), (2, 0x5D), (3, 0x6D), (8, 0xBD)])
def test_write_command_byte_encodes_the_length(n: int, head: int) -> None:
    data = bytes(range(1, n + 1))
    packet = E.write_packet(0x4000, data)
    assert packet[0] == head
    assert len(packet) == n + 4
    assert packet[1:3] == h("40 00")
    assert packet[3:-1] == data
    assert packet[-1] == E.checksum(packet[:-1])


@pytest.mark.parametrize("n", [0, 9, 12])
def test_write_refuses_0_or_more_than_8_bytes(n: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.8 bytes"):
        E.write_packet(0x4000, bytes(n))


def test_builders_refuse_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="address"):
        E.read_packet(0x10000)
    with pytest.raises(ValueError, match="host key"):
        E.key_exchange_packet(256)
    with pytest.raises(ValueError, match="key"):
        E.encrypt(b"\x00", -1)


@pytest.mark.parametrize(
    "bad",
    ["", "22", "22 76", "22 76 99", "21 76 97", "22 76 98 00", "06"],
)
def test_bad_read_replies_are_protocol_errors(bad: str) -> None:
    with pytest.raises(ProtocolError):
        E.parse_read_reply(h(bad))


def test_bad_key_reply_checksum_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="checksum"):
        E.parse_key_reply(h("21 ef 11"))


def test_describe_names_the_register() -> None:
    assert E.describe_packet(h("4d 40 a5 ff 31")) == "a write to $40A5"
    assert E.describe_packet(h("3c 40 7b f7")) == "a read of $407B"
    assert E.describe_packet(h("00")) == "a sync byte"


# --- the stream parser ---------------------------------------------------------------------------
STREAM = h("06 07 22 76 98 21 ef 10 06 22 07 29")
REPLIES = [E.Ack(), E.Nack(), E.ReadReply(0x76), E.KeyReply(0xEF), E.Ack(), E.ReadReply(0x07)]


def test_stream_parser_fed_byte_by_byte() -> None:
    parser = E.ReplyParser()
    out: list[E.Reply] = []
    for b in STREAM:
        out += parser.parse(bytes([b]))
    assert out == REPLIES
    assert parser.pending == 0


def test_stream_parser_waits_for_the_rest_of_a_reply() -> None:
    parser = E.ReplyParser()
    assert parser.parse(h("22 76")) == []
    assert parser.pending == 2
    assert parser.parse(h("98")) == [E.ReadReply(0x76)]


@given(st.lists(st.integers(0, len(STREAM)), max_size=6))
def test_stream_parser_any_split(cuts: list[int]) -> None:
    parser = E.ReplyParser()
    out: list[E.Reply] = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for a, b in itertools.pairwise(bounds):
        out += parser.parse(STREAM[a:b])
    assert out == REPLIES


def test_bad_checksum_raises_and_parsing_goes_on() -> None:
    parser = E.ReplyParser()
    parser.feed(h("22 76 99 06 55 07"))
    with pytest.raises(ProtocolError, match="checksum"):
        parser.pop()
    assert parser.pop() == E.Ack()
    with pytest.raises(ProtocolError, match="unexpected byte 55"):
        parser.pop()
    assert parser.pop() == E.Nack()
    assert parser.pop() is None


def test_reset_flushes_buffered_bytes() -> None:
    parser = E.ReplyParser()
    parser.feed(h("22 76"))
    parser.reset()
    assert parser.parse(h("06")) == [E.Ack()]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=16), max_size=8))
def test_any_box_bytes_give_replies_or_protocol_errors(chunks: list[bytes]) -> None:
    parser = E.ReplyParser()
    total = sum(len(c) for c in chunks)
    steps = 0
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            steps += 1
            assert steps <= total + len(chunks) + 1  # every step consumes bytes or stops
            try:
                reply = parser.pop()
            except ProtocolError:
                continue
            if reply is None:
                break
            assert isinstance(reply, E.Ack | E.Nack | E.ReadReply | E.KeyReply)
    assert parser.pending <= 2


@given(st.binary(max_size=6))
def test_any_bytes_to_the_reply_decoders_decode_or_raise_protocol_error(data: bytes) -> None:
    for decode in (E.parse_read_reply, E.parse_key_reply):
        with contextlib.suppress(ProtocolError):
            assert 0 <= decode(data) <= 255


# --- the host-control model: values --------------------------------------------------------------
@pytest.mark.parametrize(
    ("hz", "width", "value"),
    [
        (15.3, 64, 254),  # period 65359 us: (65359 - 2 x 64) / 256 - 1 = 253.8
        (20.0, 64, 194),
        (50.0, 100, 76),  # (20000 - 200) / 256 - 1 = 76.3
        (80.0, 196, 46),
        (125.0, 64, 30),
        (400.0, 64, 9),  # the firmware's fastest is F = 9
        (10.0, 64, 255),  # slower than the box can go: its slowest
        (0.0, 64, 255),
        (-1.0, 64, 255),
        (float("nan"), 64, 255),
        (float("inf"), 64, 255),
    ],
)
def test_frequency_value_is_the_period_in_256_us_steps_after_two_phases(
    hz: float, width: int, value: int
) -> None:
    assert E.frequency_value(hz, width) == value


def test_pulse_rate_is_the_firmwares_formula() -> None:
    assert E.pulse_rate_hz(255, 64) == pytest.approx(1e6 / (2 * 64 + 256 * 256))
    assert E.pulse_rate_hz(9, 130) == pytest.approx(355, abs=1)  # the facts page's example
    assert E.pulse_rate_hz(0x16, 130) == pytest.approx(163, abs=1)
    assert E.pulse_rate_hz(0, 0) == E.pulse_rate_hz(9, 50)  # the firmware's minimums


@given(st.floats(15.3, 125.0), st.integers(64, 196))
def test_every_rate_the_profile_allows_is_delivered_within_2_percent(hz: float, width: int) -> None:
    delivered = E.pulse_rate_hz(E.frequency_value(hz, width), width)
    assert delivered == pytest.approx(hz, rel=0.02)


def test_the_profiles_slowest_rate_is_one_the_box_can_make() -> None:
    low, high = PROFILE.limits.frequency_range_hz
    w_low, w_high = PROFILE.limits.pulse_width_range_us
    assert low >= E.pulse_rate_hz(255, int(w_low))  # at every width the box can go this slow
    assert high <= E.pulse_rate_hz(9, int(w_high))


@pytest.mark.parametrize(
    ("us", "value"),
    [(64.0, 64), (196.0, 196), (100.4, 100), (20.0, 64), (500.0, 196), (float("nan"), 64)],
)
def test_width_value_is_us_64_to_196(us: float, value: int) -> None:
    assert E.width_value(us) == value


@pytest.mark.parametrize(
    ("output", "value"),
    [
        (0.0, 0),
        (0.4, 0),
        (0.99, 0),
        (1.0, 1),
        (10.0, 10),
        (10.9, 10),  # rounded down, never up
        (100 * 0.29, 29),  # 28.999999999999996 in binary: still 29
        (127.0, 127),
        (128.0, 128),
        (255.0, 255),
        (300.0, 255),
        (-3.0, 0),
        (float("nan"), 0),
        (float("inf"), 0),
    ],
)
def test_intensity_value_is_the_output_rounded_down_with_no_offset(
    output: float, value: int
) -> None:
    assert E.intensity_value(output) == value


def test_the_level_range_is_the_whole_intensity_register() -> None:
    assert E.LEVEL_MAX_DU == 255
    assert E.INTENSITY_OFF == 0


# --- the codec: connect, step by step --------------------------------------------------------
def w(address: int, value: int) -> bytes:
    return E.write_packet(address, bytes([value]))


def r(address: int) -> bytes:
    return E.read_packet(address)


#: the plain packets of each connect step, by hand (checksums included)
STEP1_WRITES = ["4d 40 0f 01 9d", "4d 40 64 00 f1", "4d 40 65 00 f2"]  # ADC off, pots A, B = 0
STEP1_READS = ["3c 40 0f 8b", "3c 40 64 e0", "3c 40 65 e1"]  # flags, pot A, pot B
STEP2_WRITES = ["4d 40 7b 76 7e", "5d 40 70 04 12 23"]  # mode Waves, then 04 12
STEP2_READS = ["3c 40 70 ec", "3c 40 71 ed"]  # both command registers: 0xFF once run
STEP3_WRITES = [
    "4d 40 ac 00 39",  # A: intensity, frequency, width selects static
    "4d 40 b5 00 42",
    "4d 40 be 00 4b",
    "4d 40 96 00 23",  # A: next-module timer off
    "4d 40 a5 00 32",  # A: intensity 0
    "4d 40 ae ff 3a",  # A: frequency 255 (the slowest, 15.2 Hz)
    "4d 40 b7 40 84",  # A: width 64 (the narrowest)
    "4d 41 ac 00 3a",  # B: the same, at A + 0x100
    "4d 41 b5 00 43",
    "4d 41 be 00 4c",
    "4d 41 96 00 24",
    "4d 41 a5 00 33",
    "4d 41 ae ff 3b",
    "4d 41 b7 40 85",
]
STEP4_READS = [
    "3c 40 a5 21",  # intensity A, B
    "3c 41 a5 22",
    "3c 40 ac 28",  # selects A
    "3c 40 b5 31",
    "3c 40 be 3a",
    "3c 41 ac 29",  # selects B
    "3c 41 b5 32",
    "3c 41 be 3b",
    "3c 40 96 12",  # next-module flags A, B
    "3c 41 96 13",
    *STEP1_READS,  # the pots still disabled and 0
]
STEP5_WRITES = ["4d 40 0f 00 9c"]  # ADC on again
ZERO_WRITES = ["4d 40 a5 00 32", "4d 41 a5 00 33"]  # intensity 0 on A, then B


def hexes(packets: list[bytes]) -> list[str]:
    return [p.hex(" ") for p in packets]


def test_the_hand_made_packets_are_what_the_builders_make() -> None:
    assert hexes([w(0x400F, 1), w(0x4064, 0), w(0x4065, 0)]) == STEP1_WRITES
    assert hexes([r(0x400F), r(0x4064), r(0x4065)]) == STEP1_READS
    assert hexes([w(0x400F, 0)]) == STEP5_WRITES
    assert hexes([w(0x40A5, 0), w(0x41A5, 0)]) == ZERO_WRITES


def test_step1_disables_the_adc_keeping_the_other_flags_then_zeroes_both_pots() -> None:
    codec = E.Et312Codec()
    assert hexes(codec.adc_off_writes(0x00)) == STEP1_WRITES
    writes = codec.adc_off_writes(0x08)  # bit 3 (multi adjust pot disabled) stays as it was
    assert writes[0] == w(0x400F, 0x09)
    assert E.Et312Codec().adc_off_writes(0x01)[0] == w(0x400F, 0x01)
    assert [p.hex(" ") for p in map(r, (c.address for c in codec.pots_zero_checks()))] == (
        STEP1_READS
    )


def test_step2_sets_the_mode_then_exit_menu_and_new_mode_in_one_write() -> None:
    codec = E.Et312Codec()
    assert hexes(codec.mode_writes(0x76)) == STEP2_WRITES
    checks = codec.mode_done_checks()
    assert hexes([r(c.address) for c in checks]) == STEP2_READS
    assert [c.expected for c in checks] == [0xFF, 0xFF]


def test_step3_static_selects_and_no_next_module_before_intensity_0_then_the_slowest_pulse() -> (
    None
):
    assert hexes(E.Et312Codec().limit_writes()) == STEP3_WRITES


def test_step4_reads_back_intensities_selects_and_the_pots() -> None:
    codec = E.Et312Codec()
    checks = codec.limit_checks()
    assert hexes([r(c.address) for c in checks]) == STEP4_READS
    good = {0x400F: 0x01, **{c.address: c.expected for c in checks}}
    E.verify_read_back(checks, good, "after writing the limits")
    E.verify_read_back(checks, {**good, 0x400F: 0x09}, "flags: only bit 0 counts")


@pytest.mark.parametrize(
    ("address", "value", "named"),
    [
        (0x40A5, 0xFF, r"intensity A \(\$40A5\) reads 0xFF, expected 0x00"),
        (0x41A5, 0x80, r"intensity B \(\$41A5\) reads 0x80, expected 0x00"),
        (0x40AC, 0x01, r"intensity select A \(\$40AC\) reads 0x01"),
        (0x41BE, 0x04, r"width select B \(\$41BE\) reads 0x04"),
        (0x4064, 0xC8, r"level pot A \(\$4064\) reads 0xC8, expected 0x00"),
        (0x4196, 0x02, r"next-module flag B \(\$4196\) reads 0x02, expected 0x00"),
        (0x400F, 0x00, r"system flags \(\$400F\) reads 0x00, expected bits 0x01 = 0x01"),
    ],
)
def test_a_wrong_read_back_refuses_with_a_clear_message(
    address: int, value: int, named: str
) -> None:
    checks = E.Et312Codec().limit_checks()
    values = {c.address: c.expected for c in checks}
    values[address] = value
    with pytest.raises(ProtocolError, match=named) as info:
        E.verify_read_back(checks, values, "after writing the limits")
    assert "Refusing to start output" in str(info.value)


def test_step5_enables_the_adc_keeping_the_other_flags() -> None:
    codec = E.Et312Codec()
    assert hexes(codec.adc_on_writes(0x01)) == STEP5_WRITES
    assert codec.adc_on_writes(0x09) == [w(0x400F, 0x08)]
    assert [(c.address, c.expected, c.mask) for c in codec.adc_on_checks()] == [(0x400F, 0, 1)]


def all_connect_writes(codec: E.Et312Codec) -> list[bytes]:
    return [
        *codec.adc_off_writes(0),
        *codec.mode_writes(),
        *codec.limit_writes(),
        *codec.adc_on_writes(1),
    ]


def test_the_pots_are_zeroed_before_the_new_mode_and_intensity_0_follows_it() -> None:
    writes = all_connect_writes(E.Et312Codec())
    at = {p: i for i, p in enumerate(writes)}
    new_mode = at[E.box_command_packet(0x04, 0x12)]
    assert at[w(0x4064, 0)] < new_mode and at[w(0x4065, 0)] < new_mode
    assert at[w(0x400F, 1)] < at[w(0x4064, 0)]
    assert at[w(0x40A5, 0)] > new_mode and at[w(0x41A5, 0)] > new_mode
    assert writes[-1] == w(0x400F, 0)  # the pots follow the knobs only at the very end


def test_nothing_the_codec_writes_touches_the_mute_flags_or_uses_128() -> None:
    g = guard()
    t = ramp_to(g, {"A": 255, "B": 255})
    codec = E.Et312Codec()
    writes = all_connect_writes(codec)
    writes += codec.frame_writes(g.vet(demands(a=(1.0, 50, 100), b=(1.0, 50, 100)), t))
    writes += codec.zero_writes()
    writes += codec.frame_writes(g.stop(t + 0.1))
    for packet in writes:
        address = packet[1] << 8 | packet[2]
        assert address != 0x4083, packet.hex(" ")  # $4083 gates nothing on the real box
        if address in (0x40A5, 0x41A5):
            assert packet[3] in (0, 255), packet.hex(" ")  # 0 is off; full level is 255
    assert not hasattr(codec, "muted")


# --- the codec: frames to register writes --------------------------------------------------------
def guard(ceilings: dict[str, int] | None = None) -> Guard:
    limits = resolve_limits(
        PROFILE.limits, program(), ceilings_du=ceilings, rise_fraction_per_s=0.05
    )
    g = Guard(limits)
    g.start(0.0)
    g.confirm_limits_written()
    return g


def demands(
    a: tuple[float, float, float] = (1.0, 50.0, 100.0),
    b: tuple[float, float, float] = (0.0, 50.0, 100.0),
) -> list[ChannelDemand]:
    """(intensity, frequency_hz, pulse_width_us) per channel, one sample per frame."""
    return [
        demand(name, intensity=i, frequency_hz=f, pulse_width_us=w, n=1)
        for name, (i, f, w) in (("A", a), ("B", b))
    ]


def ramp_to(g: Guard, levels: dict[str, int], t: float = 0.0) -> float:
    """Raise levels through the soft start (frames discarded), both channels at intensity 1,
    until the delivered output (level x intensity, soft-started too) has caught up; returns
    the time reached."""
    for name, level in levels.items():
        g.set_level(name, level, t)
    full = demands(b=(1.0, 50.0, 100.0))
    settled = 0
    while settled < 2:
        t += 0.25
        g.vet(full, t)
        settled = settled + 1 if all(g.level_du(n) == v for n, v in levels.items()) else 0
    return t


def ready_codec(**kw: Any) -> E.Et312Codec:
    codec = E.Et312Codec(**kw)
    all_connect_writes(codec)
    return codec


def test_zero_writes_intensity_0_on_a_then_b_every_time() -> None:
    codec = ready_codec()
    assert hexes(codec.zero_writes()) == ZERO_WRITES
    assert hexes(codec.zero_writes()) == ZERO_WRITES  # never skipped: the box runs on its own


def test_a_zero_frame_is_the_zero_writes_and_nothing_else() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10, "B": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(b=(1.0, 50.0, 100.0)), t))
    zero = g.stop(t + 0.1)
    assert zero.zero
    assert hexes(codec.frame_writes(zero)) == ZERO_WRITES


def test_first_output_frame_sets_the_pulse_then_the_level() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    frame = g.vet(demands(a=(1.0, 50.0, 100.0)), t)
    assert frame.channel("A").level_du == 10
    assert hexes(codec.frame_writes(frame)) == [
        "4d 40 ae 4c 87",  # frequency A: 50 Hz at 100 us: (20000 - 200) / 256 - 1 = 76
        "4d 40 b7 64 a8",  # width A: 100 us
        "4d 40 a5 0a 3c",  # intensity A: 10 (level 10 x intensity 1), last
    ]


def test_the_full_level_is_the_full_register() -> None:
    g = guard()
    t = ramp_to(g, {"A": 255})
    codec = ready_codec()
    assert codec.frame_writes(g.vet(demands(), t))[-1] == h("4d 40 a5 ff 31")  # the vector


def test_only_changed_registers_are_written() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    assert codec.frame_writes(g.vet(demands(), t + 0.1)) == []
    f25 = E.frequency_value(25.0, 100)
    assert f25 == E.frequency_value(25.0, 150) == 154
    assert codec.frame_writes(g.vet(demands(a=(1.0, 25.0, 100.0)), t + 0.2)) == [w(0x40AE, f25)]
    assert codec.frame_writes(g.vet(demands(a=(1.0, 25.0, 150.0)), t + 0.3)) == [w(0x40B7, 150)]
    assert codec.frame_writes(g.vet(demands(a=(0.5, 25.0, 150.0)), t + 0.4)) == [w(0x40A5, 5)]


def test_falls_go_first_and_rises_after_the_pulse_settings() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    g.set_level("A", 4, t)
    fall = codec.frame_writes(g.vet(demands(a=(1.0, 25.0, 100.0)), t + 0.1))
    assert fall == [w(0x40A5, 4), w(0x40AE, E.frequency_value(25.0, 100))]
    t = ramp_to(g, {"A": 6}, t + 0.1)
    rise = codec.frame_writes(g.vet(demands(a=(1.0, 20.0, 100.0)), t))
    assert rise == [w(0x40AE, E.frequency_value(20.0, 100)), w(0x40A5, 6)]


def test_channel_b_uses_the_registers_0x100_above_a() -> None:
    g = guard()
    t = ramp_to(g, {"B": 7})
    codec = ready_codec()
    writes = codec.frame_writes(g.vet(demands(a=(0.0, 50, 100), b=(1.0, 20.0, 150.0)), t))
    assert writes == [w(0x41AE, 193), w(0x41B7, 150), w(0x41A5, 7)]


def test_channel_b_goes_fully_off() -> None:
    g = guard()
    t = ramp_to(g, {"A": 5, "B": 5})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(b=(1.0, 50.0, 100.0)), t))
    assert codec.registers[0x41A5] == 5
    writes = codec.frame_writes(g.vet(demands(b=(0.0, 10.0, 190.0)), t + 0.1))
    assert writes == [w(0x41A5, 0)]  # off, not 128; and B keeps its pulse settings


def test_output_comes_back_after_a_zero_with_the_intensity_alone() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    zero = g.stop(t + 0.1)
    assert codec.frame_writes(zero) == codec.zero_writes()
    t = ramp_to(g, {"A": 2}, t + 0.1)
    assert codec.frame_writes(g.vet(demands(), t)) == [w(0x40A5, 2)]  # no mute to clear


def test_intensity_is_the_level_times_the_sample_intensity_within_the_ceiling() -> None:
    g = guard()
    t = ramp_to(g, {"A": 200})
    half = g.vet(demands(a=(0.5, 50.0, 100.0)), t)
    assert ready_codec().frame_writes(half)[-1] == w(0x40A5, 100)
    third = g.vet(demands(a=(1 / 3, 50.0, 100.0)), t)
    assert ready_codec().frame_writes(third)[-1] == w(0x40A5, 66)  # 66.67 rounded down
    capped = ready_codec(ceilings_du={"A": 3})  # defence in depth: the guard holds it too
    assert capped.frame_writes(g.vet(demands(), t))[-1] == w(0x40A5, 3)


def test_a_tiny_intensity_is_off_not_a_minimum_step() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    assert codec.frame_writes(g.vet(demands(a=(0.05, 50.0, 100.0)), t)) == []  # 0.5 -> 0


def test_after_forget_every_register_of_the_frame_is_written_again() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    codec.forget()
    writes = codec.frame_writes(g.vet(demands(), t + 0.1))
    assert writes == [w(0x41A5, 0), w(0x40AE, 76), w(0x40B7, 100), w(0x40A5, 10)]


def test_the_new_mode_makes_the_codec_forget_the_channel_registers() -> None:
    codec = ready_codec()
    codec.mode_writes()  # a reload: the box holds the mode's defaults now, not our image
    assert not any(a in codec.registers for a in (0x40A5, 0x41A5, 0x40AE, 0x41B7, 0x40AC))


class FakeFrame:
    """Looks like a vetted frame, but the guard did not make it."""

    zero = False
    t_s = 0.0
    channels = ()


# --- the profile ---------------------------------------------------------------------------------
def test_et312_profile_states_what_the_documents_say() -> None:
    p = load_profile("et312")
    p.limits.check()
    assert (p.id, p.link, p.serial_baud, p.codec, p.simulator) == (
        "et312",
        "serial",
        19200,
        "et312",
        "et312",
    )
    assert not p.stops_when_host_silent
    assert "on its own" in p.stops_when_host_silent_note
    assert p.channels == ("A", "B")
    assert p.limits.max_level_du == 255
    assert p.level_unit == "du"
    assert p.limits.frequency_range_hz == (15.3, 125.0)
    assert p.pulse_width_controlled
    assert p.limits.pulse_width_range_us == (64.0, 196.0)
    assert not p.limits.biphasic
    assert not p.calibrated
    assert p.limits.samples_per_frame == 1
    assert p.limits.frame_period_s == pytest.approx(0.1)
    assert p.frames_ahead == 0
    assert p.device_settings == {"mode": 0x76}


def test_needle_programs_are_refused_on_the_et312() -> None:
    with pytest.raises(LimitError, match="biphasic"):
        resolve_limits(PROFILE.limits, program(electrode="needle"))


# --- the driver, against scripted box bytes ------------------------------------------------------
class ScriptBox:
    """Checks each host write against a script and answers it, one byte per chunk."""

    def __init__(self, steps: list[tuple[str, str]]) -> None:
        self.steps = list(steps)
        self.written: list[bytes] = []
        self._output: Callable[[bytes], None] | None = None

    def feed(self, data: bytes) -> None:
        self.written.append(data)
        if not self.steps:
            raise AssertionError(f"unscripted write {data.hex(' ')}")
        want, reply = self.steps.pop(0)
        if data != h(want):
            raise AssertionError(f"wrote {data.hex(' ')}; the script expects {want}")
        for b in h(reply):
            if self._output is not None:
                self._output(bytes([b]))

    def set_output(self, callback: Callable[[bytes], None] | None) -> None:
        self._output = callback

    def disconnect(self) -> None:
        pass


def ack(packets: list[str]) -> list[tuple[str, str]]:
    return [(enc(p), "06") for p in packets]


def value(v: int) -> str:
    return bytes([0x22, v, (0x22 + v) & 0xFF]).hex(" ")


def reads(packets: list[str], values: list[int]) -> list[tuple[str, str]]:
    assert len(packets) == len(values)
    return [(enc(p), value(v)) for p, v in zip(packets, values, strict=True)]


MODEL_AND_BATTERY = [
    (enc("3c 00 fc 38"), "22 0c 2e"),  # model 0x0C
    (enc("3c 00 fd 39"), "22 01 23"),  # firmware 1.6.0
    (enc("3c 00 fe 3a"), "22 06 28"),
    (enc("3c 00 ff 3b"), "22 00 22"),
    (enc("3c 42 03 81"), "22 50 72"),  # battery 80 %
]
MODEL_READ = ("3c 00 fc 38", "22 0c 2e")  # plain: confirms that the box holds no key
SYNC_AND_KEY = [("00", "07"), ("00", "07"), MODEL_READ, ("2f 00 2f", "21 ef 10")]
FLAGS_READ = "3c 40 0f 8b"
STEP1 = [*reads([FLAGS_READ], [0x00]), *ack(STEP1_WRITES), *reads(STEP1_READS, [0x01, 0, 0])]
STEP2 = [*ack(STEP2_WRITES), *reads(STEP2_READS, [0xFF, 0xFF])]
STEP3 = ack(STEP3_WRITES)
STEP4 = reads(STEP4_READS, [0] * 10 + [0x01, 0, 0])
STEP5 = [*reads([FLAGS_READ], [0x01]), *ack(STEP5_WRITES), *reads([FLAGS_READ], [0x00])]
CONNECT = [*SYNC_AND_KEY, *MODEL_AND_BATTERY, *STEP1, *STEP2, *STEP3, *STEP4, *STEP5]
ZERO = ack(ZERO_WRITES)
KEY_RESET = [("f7 f8 a9 ba 18", "06")]  # the reference's vector


class Rig:
    def __init__(self, box: Any) -> None:
        self.loop = VirtualTimeLoop(start_s=100.0)
        self.box = box
        if isinstance(box, ByteStreamLink):
            self.link = box
        else:
            self.link = ByteStreamLink(box, url="sim:et312-script")
        self.driver = E.Driver(PROFILE, self.link)
        self.events: list[DeviceEvent] = []
        self.driver.on_event = self.events.append
        self.limits = resolve_limits(PROFILE.limits, program())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def connect(self) -> None:
        self.run(self.driver.connect(self.limits))


@pytest.fixture
def make_rig() -> Iterator[Callable[[Any], Rig]]:
    rigs: list[Rig] = []

    def make(box: Any) -> Rig:
        rigs.append(Rig(box))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.loop.close()


def test_connect_follows_the_documented_order(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox(CONNECT))
    rig.connect()
    assert rig.box.steps == []
    assert rig.driver.codec.key == K
    assert rig.driver.firmware == (1, 6, 0)
    assert rig.driver.battery_percent == 80
    assert rig.events == [
        DeviceNotice(
            "firmware", "ET-312 (model 0x0C), firmware 1.6.0", {"model": 12, "firmware": "1.6.0"}
        ),
        BatteryReport(80),
    ]


def test_connect_waits_after_the_new_mode_before_writing_the_limits(
    make_rig: Callable[[Any], Rig],
) -> None:
    rig = make_rig(ScriptBox(CONNECT))
    times: list[float] = []
    feed = rig.box.feed

    def timed(data: bytes) -> None:
        times.append(rig.loop.time())
        feed(data)

    rig.box.feed = timed
    rig.connect()
    command_at = CONNECT.index(STEP2[1])
    assert CONNECT[command_at + 3] == STEP3[0]
    assert times[command_at + 1] - times[command_at] >= 0.018  # the first look at $4070
    assert times[command_at + 3] - times[command_at] >= 0.018


def test_connect_looks_again_until_the_new_mode_has_run(make_rig: Callable[[Any], Rig]) -> None:
    not_yet = reads(STEP2_READS, [0x04, 0x12])
    at = CONNECT.index(STEP2[2])
    script = [*CONNECT[:at], *not_yet, *not_yet, *CONNECT[at:]]
    rig = make_rig(ScriptBox(script))
    rig.connect()
    assert rig.box.steps == []


def test_a_new_mode_that_never_runs_refuses_before_the_limits(
    make_rig: Callable[[Any], Rig],
) -> None:
    at = CONNECT.index(STEP2[2])
    never = reads(STEP2_READS, [0xFF, 0x12]) * E.BOX_COMMAND_TRIES
    rig = refused_connect(
        make_rig,
        [*CONNECT[:at], *never],
        r"waiting for the new mode to run.*box command 2 \(\$4071\) reads 0x12, expected 0xFF",
    )
    assert enc(STEP3_WRITES[0]) not in [b.hex(" ") for b in rig.box.written]


def test_connect_keeps_the_other_system_flags(make_rig: Callable[[Any], Rig]) -> None:
    flags = 0x08  # multi adjust pot disabled by someone: left as it is
    script = [
        *SYNC_AND_KEY,
        *MODEL_AND_BATTERY,
        *reads([FLAGS_READ], [flags]),
        (enc("4d 40 0f 09 a5"), "06"),
        *ack(STEP1_WRITES[1:]),
        *reads(STEP1_READS, [0x09, 0, 0]),
        *STEP2,
        *STEP3,
        *reads(STEP4_READS, [0] * 10 + [0x09, 0, 0]),
        *reads([FLAGS_READ], [0x09]),
        (enc("4d 40 0f 08 a4"), "06"),
        *reads([FLAGS_READ], [0x08]),
    ]
    rig = make_rig(ScriptBox(script))
    rig.connect()
    assert rig.box.steps == []


def refused_connect(
    make_rig: Callable[[Any], Rig], script: list[tuple[str, str]], match: str
) -> Rig:
    """Connect refuses at the end of ``script``; then close zeroes and resets the key."""
    rig = make_rig(ScriptBox([*script, *ZERO, *KEY_RESET]))
    with pytest.raises(ProtocolError, match=match):
        rig.connect()
    rig.run(rig.driver.close(Guard(rig.limits).zero_frame()))
    assert rig.box.steps == []
    assert not rig.link.is_open
    return rig


def test_a_pot_that_does_not_read_0_stops_connect_before_the_new_mode(
    make_rig: Callable[[Any], Rig],
) -> None:
    # the ADC still fills pot A from the knob: a new mode now would mean full drive for a moment
    script = [
        *SYNC_AND_KEY,
        *MODEL_AND_BATTERY,
        *reads([FLAGS_READ], [0x00]),
        *ack(STEP1_WRITES),
        *reads(STEP1_READS, [0x01, 0xC8, 0]),
    ]
    rig = refused_connect(
        make_rig, script, r"after disabling the front pots.*level pot A \(\$4064\) reads 0xC8"
    )
    assert enc(STEP2_WRITES[1]) not in [b.hex(" ") for b in rig.box.written]  # no 04 12


def test_a_wrong_intensity_after_the_limits_refuses_and_leaves_the_pots_disabled(
    make_rig: Callable[[Any], Rig],
) -> None:
    # intensity A still 0xFF: the defaults reload came after our write; output must not start
    script = [
        *SYNC_AND_KEY,
        *MODEL_AND_BATTERY,
        *STEP1,
        *STEP2,
        *STEP3,
        *reads(STEP4_READS, [0xFF] + [0] * 9 + [0x01, 0, 0]),
    ]
    rig = refused_connect(make_rig, script, r"intensity A \(\$40A5\) reads 0xFF, expected 0x00")
    written = [b.hex(" ") for b in rig.box.written]
    assert enc(STEP5_WRITES[0]) not in written  # the pots were never given back to the knobs
    assert not rig.driver._ready


def test_a_wrong_select_after_the_limits_refuses(make_rig: Callable[[Any], Rig]) -> None:
    script = [
        *SYNC_AND_KEY,
        *MODEL_AND_BATTERY,
        *STEP1,
        *STEP2,
        *STEP3,
        *reads(STEP4_READS, [0] * 6 + [0x04, 0, 0, 0] + [0x01, 0, 0]),
    ]
    refused_connect(make_rig, script, r"frequency select B \(\$41B5\) reads 0x04")


def test_adc_still_disabled_after_enabling_refuses(make_rig: Callable[[Any], Rig]) -> None:
    script = [
        *CONNECT[: -len(STEP5)],
        *reads([FLAGS_READ], [0x01]),
        *ack(STEP5_WRITES),
        *reads([FLAGS_READ], [0x01]),
    ]
    refused_connect(make_rig, script, r"after enabling the front pots.*system flags")


def test_connect_refuses_a_box_that_is_not_an_et312(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*SYNC_AND_KEY, (enc("3c 00 fc 38"), "22 0d 2f")]))
    with pytest.raises(
        BridgeError, match=r"model 0x0D.*only the ET-312B / MK-312BT \(model 0x0C\)"
    ):
        rig.connect()
    rig.run(rig.driver.close(Guard(rig.limits).zero_frame()))  # nothing written to an unknown box
    assert not rig.link.is_open


def test_a_bad_reply_checksum_is_a_protocol_error(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*SYNC_AND_KEY, (enc("3c 00 fc 38"), "22 0c 2f")]))
    with pytest.raises(ProtocolError, match="checksum"):
        rig.connect()


def test_no_sync_answer_at_all_is_a_clear_timeout(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([("00", "")] * E.SYNC_TRIES))  # no last key: plain only
    start = rig.loop.time()
    with pytest.raises(DeviceTimeout, match=r"no answer to the sync byte.*19200 baud"):
        rig.connect()
    assert rig.loop.time() - start <= E.SYNC_TRIES * E.SYNC_TRY_S + 0.01
    assert rig.box.steps == []  # and no sweep through other keys


def test_a_sync_answer_that_a_model_read_does_not_confirm_is_not_a_key(
    make_rig: Callable[[Any], Rig],
) -> None:
    # a box left with key 0x03 answers 07 to a lone plain 00 (it reads 03), but not to a read
    script = [("00", "07"), ("00", "07"), (MODEL_READ[0], "07")]
    rig = make_rig(ScriptBox(script))
    with pytest.raises(DeviceTimeout, match="left its key: switch the box off and on"):
        rig.connect()
    assert rig.box.steps == []


def test_a_risky_session_key_is_replaced_at_once(make_rig: Callable[[Any], Rig]) -> None:
    # box keys 0x52 and 0x48 give session keys 0x07 and 0x1D; 0xEF gives 0xBA
    script = [
        *SYNC_AND_KEY[:3],
        ("2f 00 2f", "21 52 73"),
        (enc("2f 00 2f", 0x07), "21 48 69"),
        (enc("2f 00 2f", 0x1D), "21 ef 10"),
        *CONNECT[len(SYNC_AND_KEY) :],
    ]
    rig = make_rig(ScriptBox(script))
    rig.connect()
    assert rig.box.steps == []
    assert rig.driver.codec.key == K


def first_frame(level: int = 10) -> tuple[Guard, VettedFrame, float]:
    g = guard()
    t = ramp_to(g, {"A": level})
    return g, g.vet(demands(), t), t


FIRST_FRAME = ack(["4d 40 ae 4c 87", "4d 40 b7 64 a8", "4d 40 a5 0a 3c"])
KNOBS = [(enc("3c 40 64 e0"), "22 ff 21"), (enc("3c 40 65 e1"), "22 80 a2")]
#: after every output frame, intensity A and B are read back (a front-panel key would have
#: reloaded them): A holds the 10 just written, B the 0 written at connect
READBACK = [(enc("3c 40 a5 21"), "22 0a 2c"), (enc("3c 41 a5 22"), "22 00 22")]


def test_frames_write_each_change_and_wait_for_its_ack(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*CONNECT, *FIRST_FRAME, *READBACK, *KNOBS, *READBACK]))
    rig.connect()
    g, frame, t = first_frame()
    rig.events.clear()
    rig.run(rig.driver.send(frame))
    assert rig.box.steps == READBACK
    assert rig.events == [
        DeviceNotice("knob", "front-panel level knobs: A 255/255, B 128/255", {"A": 255, "B": 128})
    ]
    # nothing changed and the knobs are not due: no writes, only the read-back
    rig.run(rig.driver.send(g.vet(demands(), t + 0.1)))
    assert rig.box.steps == []


def test_a_zero_frame_writes_only_the_zero_even_when_polls_are_due(
    make_rig: Callable[[Any], Rig],
) -> None:
    rig = make_rig(ScriptBox([*CONNECT, *FIRST_FRAME, *READBACK, *KNOBS, *ZERO, *ZERO]))
    rig.connect()
    g, frame, t = first_frame()
    rig.run(rig.driver.send(frame))
    rig.run(asyncio.sleep(E.BATTERY_POLL_S + 1))  # knobs and battery both due now
    rig.run(rig.driver.send(g.stop(t + 0.1)))
    rig.run(rig.driver.send(g.vet(demands(), t + 0.2)))  # stopped: zero again, still no reads
    assert rig.box.steps == []


def test_close_writes_zero_then_the_key_reset_then_closes(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*CONNECT, *FIRST_FRAME, *READBACK, *KNOBS, *ZERO, *KEY_RESET]))
    rig.connect()
    g, frame, t = first_frame()
    rig.run(rig.driver.send(frame))
    rig.run(rig.driver.close(g.stop(t + 0.1)))
    assert rig.box.steps == []
    assert not rig.link.is_open
    assert rig.driver.codec.key == 0


def test_close_without_zero_still_resets_the_key(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*CONNECT, *KEY_RESET]))
    rig.connect()
    rig.run(rig.driver.close())
    assert rig.box.steps == []
    assert not rig.link.is_open


def test_close_writes_b_even_when_a_is_refused(make_rig: Callable[[Any], Rig]) -> None:
    script = [*CONNECT, (enc(ZERO_WRITES[0]), "07"), *ack(ZERO_WRITES[1:]), *KEY_RESET]
    rig = make_rig(ScriptBox(script))
    rig.connect()
    with pytest.raises(ProtocolError, match=r"refused a write to \$40A5"):
        rig.run(rig.driver.close(Guard(rig.limits).zero_frame()))
    assert rig.box.steps == []
    assert not rig.link.is_open


def test_close_on_a_silent_box_is_bounded(make_rig: Callable[[Any], Rig]) -> None:
    silent = [(packet, "") for packet, _ in [*ZERO, *KEY_RESET]]
    rig = make_rig(ScriptBox([*CONNECT, *silent]))
    rig.connect()
    start = rig.loop.time()
    with pytest.raises(DeviceTimeout):
        rig.run(rig.driver.close(Guard(rig.limits).zero_frame()))
    assert rig.loop.time() - start <= E.CLOSE_TIMEOUT_S
    assert not rig.link.is_open


def test_a_missing_ack_is_a_timeout_naming_the_register(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*CONNECT, (FIRST_FRAME[0][0], "")]))
    rig.connect()
    _, frame, _ = first_frame()
    start = rig.loop.time()
    with pytest.raises(DeviceTimeout, match=r"200 ms to a write to \$40AE"):
        rig.run(rig.driver.send(frame))
    assert rig.loop.time() - start == pytest.approx(E.ACK_TIMEOUT_S)


def test_a_nack_is_a_protocol_error(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*CONNECT, (FIRST_FRAME[0][0], "07")]))
    rig.connect()
    _, frame, _ = first_frame()
    with pytest.raises(ProtocolError, match=r"refused a write to \$40AE"):
        rig.run(rig.driver.send(frame))
    assert rig.driver.codec.registers == {}  # unknown now: everything is written again


def test_unvetted_frames_are_refused_before_anything_is_written(
    make_rig: Callable[[Any], Rig],
) -> None:
    rig = make_rig(ScriptBox(CONNECT))
    rig.connect()
    before = len(rig.box.written)
    with pytest.raises(UnvettedFrameError):
        rig.run(rig.driver.send(FakeFrame()))  # type: ignore[arg-type]
    with pytest.raises(UnvettedFrameError):
        rig.run(rig.driver.close(FakeFrame()))  # type: ignore[arg-type]
    assert len(rig.box.written) == before
    assert not rig.link.is_open


def test_frames_before_connect_are_refused(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([]))
    rig.run(rig.link.open())
    _, frame, _ = first_frame()
    with pytest.raises(TransportClosed, match="not connected"):
        rig.run(rig.driver.send(frame))
    assert rig.box.written == []


# --- the driver against the documents' rules, for every key ---------------------------------------
class RulesBox:
    """The box's byte handling as devices.md section 3 states it, plus the firmware facts the
    host-control model rests on (docs/devices/et312-firmware.md), and nothing more.

    Bytes: every byte is XORed with the key; idle, ``00`` is answered ``07`` and an unknown
    command is ignored; ``2F`` (3 bytes), ``3C`` (4) and ``(3+n)D`` (n+4) packets end in a
    checksum, a bad one answered ``07``. ``accepted`` keeps every packet the box acted on.

    Firmware: the pots read the knobs unless bit 0 of $400F is set (then what the host wrote);
    box command 0x12 at $4070/$4071 reloads the mode's defaults (intensity 0xFF, moving
    selects, $4083 = 0) ``command_delay_s`` after it is written (None: never), and then both
    registers read 0xFF; drive per channel is ``pot x intensity / 256``, logged in ``drive``
    after every change.
    """

    def __init__(self, key: int, *, command_delay_s: float | None = 0.008) -> None:
        self.key = key
        self.knobs = {"A": 200, "B": 90}
        self.memory = {0x00FC: 0x0C, 0x00FD: 1, 0x00FE: 6, 0x4203: 50, 0x400F: 0x00}
        # running a mode at full intensity when acustim connects
        for base in (0x40A5, 0x41A5):
            self.memory[base] = 0xFF
            self.memory[base + 7] = 0x01  # intensity select: the mode moves it
        self.command_delay_s = command_delay_s
        self.accepted: list[bytes] = []
        self.drive: list[tuple[str, int, int]] = [("start", *self.drives())]
        self._packet = bytearray()
        self._length = 0
        self._output: Callable[[bytes], None] | None = None

    # --- firmware ---
    def peek(self, address: int) -> int:
        for c, pot in (("A", 0x4064), ("B", 0x4065)):
            if address == pot and not self.memory[0x400F] & 0x01:
                return self.knobs[c]
        return self.memory.get(address, 0)

    def drives(self) -> tuple[int, int]:
        return (
            self.peek(0x4064) * self.memory[0x40A5] // 256,
            self.peek(0x4065) * self.memory[0x41A5] // 256,
        )

    def _log(self, what: str) -> None:
        self.drive.append((what, *self.drives()))

    def _new_mode(self) -> None:
        for base in (0x40A5, 0x41A5):
            self.memory[base] = 0xFF
            self.memory[base + 7] = 0x01
        self.memory[0x4083] = 0x00
        self.memory[0x4070] = self.memory[0x4071] = 0xFF
        self._log("new mode")

    def _poke(self, address: int, v: int) -> None:
        if address == 0x400F and v & 0x01 and not self.memory[0x400F] & 0x01:
            # the ADC stops: the pots keep their last conversion until the host writes them
            self.memory[0x4064], self.memory[0x4065] = self.knobs["A"], self.knobs["B"]
        self.memory[address] = v
        if address in (0x4070, 0x4071) and v == 0x12 and self.command_delay_s is not None:
            asyncio.get_running_loop().call_later(self.command_delay_s, self._new_mode)

    # --- bytes ---
    def feed(self, data: bytes) -> None:
        for byte in data:
            self._byte(byte ^ self.key)

    def _byte(self, d: int) -> None:
        if not self._packet:
            if d == 0x00:
                self._send(h("07"))
                return
            self._length = {0x2F: 3, 0x3C: 4}.get(d, 0)
            if d & 0x0F == 0x0D and 0x4D <= d <= 0xBD:
                self._length = (d >> 4) + 1
            if self._length:
                self._packet.append(d)
            return
        self._packet.append(d)
        if len(self._packet) < self._length:
            return
        p, self._packet = bytes(self._packet), bytearray()
        if sum(p[:-1]) & 0xFF != p[-1]:
            self._send(h("07"))
            return
        self.accepted.append(p)
        if p[0] == 0x2F:
            self.key = ((p[1] << 4 | p[1] >> 4) & 0xFF) ^ 0xEF ^ 0x55
            self._send(h("21 ef 10"))
            return
        address = p[1] << 8 | p[2]
        if p[0] == 0x3C:
            v = self.peek(address)
            self._send(bytes([0x22, v, (0x22 + v) & 0xFF]))
            return
        for i, v in enumerate(p[3:-1]):
            self._poke(address + i, v)
        if address == 0x4213:
            self.key = p[3]
        self._log(p.hex(" "))
        self._send(h("06"))

    def _send(self, data: bytes) -> None:
        if self._output is not None:
            self._output(data)

    def set_output(self, callback: Callable[[bytes], None] | None) -> None:
        self._output = callback

    def disconnect(self) -> None:
        pass


class FramingBox(RulesBox):
    """``RulesBox`` with the firmware's own framing (et312-firmware.md section 9): a head's high
    nibble + 1 is its packet's length, whatever the byte; a lone byte 00..05 is answered
    ``07``, 06..08 nothing, 0E ``05`` (link-slave), 09..0D / 0F nothing but a reload of
    $41F0.. from flash; longer packets act by their head's low nibble (F key exchange, C read,
    D write of high nibble - 3 bytes, else ``07``); a write without a key is ``07``; a packet
    over 12 bytes is answered ``07`` at its 13th. ``side_effects`` lists the reloads and
    slave handshakes, ``accepted`` every packet acted on."""

    def __init__(self, key: int, *, box_keys: list[int] | None = None, **kw: Any) -> None:
        super().__init__(key, **kw)
        self.side_effects: list[str] = []
        self.box_keys = list(box_keys or [])  # offered in turn, then 0xEF

    def _byte(self, d: int) -> None:
        if not self._packet:
            self._length = (d >> 4) + 1
            if self._length == 1:
                low = d & 0x0F
                if low <= 5:
                    self._send(h("07"))
                elif low == 0x0E:
                    self.side_effects.append("slave handshake 0e")
                    self._send(h("05"))
                elif low >= 9:
                    self.side_effects.append(f"reload $41F0 ({d:02x})")
                return
        self._packet.append(d)
        if len(self._packet) == 13:
            self._packet = bytearray()
            self._send(h("07"))
            return
        if len(self._packet) < self._length:
            return
        p, self._packet = bytes(self._packet), bytearray()
        if sum(p[:-1]) & 0xFF != p[-1]:
            self._send(h("07"))
            return
        kind = p[0] & 0x0F
        body = p + bytes(3)  # a short packet reads stale buffer bytes: zeros here
        if kind == 0x0F:
            self.accepted.append(p)
            hk, bk = body[1], self.box_keys.pop(0) if self.box_keys else 0xEF
            self.key = ((hk << 4 | hk >> 4) & 0xFF) ^ bk ^ 0x55
            self._send(bytes([0x21, bk, (0x21 + bk) & 0xFF]))
        elif kind == 0x0C:
            self.accepted.append(p)
            v = self.peek(body[1] << 8 | body[2])
            self._send(bytes([0x22, v, (0x22 + v) & 0xFF]))
        elif kind == 0x0D:
            address = body[1] << 8 | body[2]
            if self.key == 0 and body[2] not in (0x04, 0x0A):
                self._send(h("07"))
                return
            self.accepted.append(p)
            for i, v in enumerate(p[3 : 3 + max(0, (p[0] >> 4) - 3)]):
                self._poke(address + i, v)
            if address == 0x4213:
                self.key = p[3]
            self._log(p.hex(" "))
            self._send(h("06"))
        else:
            self._send(h("07"))


OUR_WRITES = {
    h(p) for p in [*STEP1_WRITES, *STEP2_WRITES, *STEP3_WRITES, *STEP5_WRITES, "4d 42 13 00 a2"]
}


def acted_on_foreign(box: FramingBox) -> list[str]:
    """Packets the box acted on that acustim did not mean: anything but its reads, its
    writes and its key exchange."""
    ours = {*OUR_WRITES, h("2f 00 2f")}
    return [
        p.hex(" ") for p in box.accepted if p not in ours and not (len(p) == 4 and p[0] == 0x3C)
    ]


def test_every_key_a_box_may_hold_under_the_firmwares_framing(
    make_rig: Callable[[Any], Rig],
) -> None:
    """A fresh driver finds only a box without a key; for any other key it refuses (power
    cycle), and what it sent acted on the box only if the reference's own plain sync does."""
    for key in range(256):
        box = FramingBox(key)
        rig = make_rig(box)
        if key == 0:
            rig.connect()
            assert box.key == K
            assert box.memory[0x40A5] == box.memory[0x41A5] == 0
        else:
            with pytest.raises(DeviceTimeout, match="switch the box off and on"):
                rig.connect()
        if key not in E.RISKY_KEYS:
            assert box.side_effects == [], f"key {key:#04x}: {box.side_effects}"
            assert acted_on_foreign(box) == [], f"key {key:#04x}"
        rig.loop.close()


def test_reconnect_to_a_box_that_kept_our_key_under_the_firmwares_framing(
    make_rig: Callable[[Any], Rig],
) -> None:
    box = FramingBox(0)
    rig = make_rig(box)
    rig.connect()
    rig.link.drop()  # no key reset: the box keeps our key
    rig.connect()  # plain sync first (arrives as our key: harmless), then our last key
    assert box.key == K
    assert box.side_effects == []
    assert acted_on_foreign(box) == []


def test_reconnect_to_a_power_cycled_box_after_a_lost_link(
    make_rig: Callable[[Any], Rig],
) -> None:
    box = FramingBox(0)
    rig = make_rig(box)
    rig.connect()
    rig.link.drop()
    box.key = 0  # power cycle
    rig.connect()
    assert box.key == K
    assert box.side_effects == []


def test_the_session_key_is_never_a_risky_one(make_rig: Callable[[Any], Rig]) -> None:
    # the box offers keys giving 0x01 (lone byte: 07), 0x0E (slave handshake), 0x1F (pairs)
    box = FramingBox(0, box_keys=[0x01 ^ 0x55, 0x0E ^ 0x55, 0x1F ^ 0x55, 0xEF])
    rig = make_rig(box)
    rig.connect()
    assert rig.driver.codec.key == box.key == K
    rig.link.drop()
    box.key = 0  # a power cycle: our stale sync would now arrive as K itself
    rig.connect()
    assert box.side_effects == []
    assert acted_on_foreign(box) == []


def test_connect_never_raises_output_and_ends_at_zero(make_rig: Callable[[Any], Rig]) -> None:
    box = RulesBox(0)
    rig = make_rig(box)
    rig.connect()
    drives = [(a, b) for _, a, b in box.drive]
    assert drives[0] == (199, 89)  # the box ran at full intensity of its knobs
    for before, after in itertools.pairwise(drives):
        assert after[0] <= before[0] and after[1] <= before[1], box.drive
    pots_zero = next(i for i, (what, _, _) in enumerate(box.drive) if what.startswith("4d 40 65"))
    assert all(d == (0, 0) for d in drives[pots_zero:]), box.drive
    assert [what for what, _, _ in box.drive].count("new mode") == 1  # during the pots at 0
    new_mode = [what for what, _, _ in box.drive].index("new mode")
    assert pots_zero < new_mode < len(box.drive) - 1
    # the end: the knobs live again, intensity 0 and static selects on both channels
    assert box.peek(0x4064) == 200 and box.peek(0x4065) == 90
    assert box.memory[0x40A5] == box.memory[0x41A5] == 0
    assert all(box.memory[base + s] == 0 for base in (0x4000, 0x4100) for s in (0xAC, 0xB5, 0xBE))
    assert box.drives() == (0, 0)


@pytest.mark.parametrize("delay_s", [0.0, 0.008, 0.018, 0.1])
def test_connect_waits_for_the_reload_however_long_the_box_takes(
    make_rig: Callable[[Any], Rig], delay_s: float
) -> None:
    box = RulesBox(0, command_delay_s=delay_s)
    rig = make_rig(box)
    rig.link.latency_s = 0.001  # a real line: about 1 ms each way
    rig.connect()
    assert [what for what, _, _ in box.drive].count("new mode") == 1
    assert box.memory[0x40A5] == box.memory[0x41A5] == 0
    assert box.drives() == (0, 0)


def test_a_box_that_never_runs_the_new_mode_gets_no_limits_and_no_knobs(
    make_rig: Callable[[Any], Rig],
) -> None:
    box = RulesBox(0, command_delay_s=None)
    rig = make_rig(box)
    with pytest.raises(ProtocolError, match="waiting for the new mode to run"):
        rig.connect()
    assert box.memory[0x400F] & 0x01  # the pots stay disabled at 0: no output
    assert box.drives() == (0, 0)


def test_reconnect_after_a_lost_link_tries_the_last_key_first(
    make_rig: Callable[[Any], Rig],
) -> None:
    box = RulesBox(0)
    rig = make_rig(box)
    rig.connect()
    rig.link.drop()  # no key reset: the box keeps our key
    assert box.key == K
    writes = rig.link.writes
    start = rig.loop.time()
    rig.connect()
    assert box.key == K
    # 12 plain syncs, then straight to the old key (not a sweep of 0xBA candidates)
    assert rig.link.writes - writes < E.SYNC_TRIES + 70
    assert rig.loop.time() - start < 2 * E.SYNC_TRIES * E.SYNC_TRY_S


def test_knobs_every_second_and_battery_every_ten(make_rig: Callable[[Any], Rig]) -> None:
    box = RulesBox(0)
    rig = make_rig(box)
    rig.connect()
    g, _, t = first_frame()
    rig.events.clear()

    async def stream(seconds: float) -> None:
        nonlocal t
        for _ in range(round(seconds / 0.1)):
            t += 0.1
            await rig.driver.send(g.vet(demands(), t))
            await asyncio.sleep(0.1)

    rig.run(stream(2.0))
    assert rig.events == [
        DeviceNotice("knob", "front-panel level knobs: A 200/255, B 90/255", {"A": 200, "B": 90})
    ]
    box.knobs["B"] = 30  # turned on the box
    box.memory[0x4203] = 49
    rig.run(stream(9.0))
    assert rig.events[1:] == [
        DeviceNotice("knob", "front-panel level knobs: A 200/255, B 30/255", {"A": 200, "B": 30}),
        BatteryReport(49),
    ]
    assert rig.driver.battery_percent == 49
    assert box.memory[0x40A5] == 10
    assert box.drives() == (200 * 10 // 256, 0)  # the knob stays the ceiling


def test_a_lost_link_fails_the_waiting_request_at_once(make_rig: Callable[[Any], Rig]) -> None:
    rig = make_rig(ScriptBox([*CONNECT, (FIRST_FRAME[0][0], "")]))
    rig.connect()
    _, frame, _ = first_frame()

    async def send_and_drop() -> None:
        task = asyncio.ensure_future(rig.driver.send(frame))
        await asyncio.sleep(0.05)
        rig.link.drop()
        with pytest.raises(TransportClosed, match="link lost"):
            await task

    start = rig.loop.time()
    rig.run(send_and_drop())
    assert rig.loop.time() - start < E.ACK_TIMEOUT_S


# --- the driver on the project's simulator (public API: peek) ------------------------------------
def sim_rig(make_rig: Callable[[Any], Rig]) -> Rig:
    return make_rig(ByteStreamLink(factory=simulator_factory("et312"), url="sim:et312"))


def sim_registers(rig: Rig, addresses: Mapping[str, int]) -> dict[str, int]:
    sim: Any = rig.link.simulator
    return {name: sim.peek(a) for name, a in addresses.items()}


CHANNEL_REGISTERS = {
    "intensity A": 0x40A5,
    "intensity B": 0x41A5,
    "intensity select A": 0x40AC,
    "frequency select A": 0x40B5,
    "width select A": 0x40BE,
    "intensity select B": 0x41AC,
    "frequency select B": 0x41B5,
    "width select B": 0x41BE,
}


def test_on_the_simulator_connect_leaves_intensity_0_static_selects_and_live_knobs(
    make_rig: Callable[[Any], Rig],
) -> None:
    rig = sim_rig(make_rig)
    rig.connect()
    assert set(sim_registers(rig, CHANNEL_REGISTERS).values()) == {0}
    assert sim_registers(rig, {"flags": 0x400F})["flags"] & 0x01 == 0


def test_on_the_simulator_frames_write_the_linear_intensity_and_zero_is_0(
    make_rig: Callable[[Any], Rig],
) -> None:
    rig = sim_rig(make_rig)
    rig.connect()
    g = guard()
    t = ramp_to(g, {"A": 40, "B": 20})
    rig.run(rig.driver.send(g.vet(demands(a=(0.5, 50, 100), b=(1.0, 20, 150)), t)))
    regs = sim_registers(rig, {"A": 0x40A5, "B": 0x41A5, "fA": 0x40AE, "wB": 0x41B7})
    assert regs == {"A": 20, "B": 20, "fA": 76, "wB": 150}
    rig.run(rig.driver.close(g.stop(t + 0.1)))
    assert sim_registers(rig, {"A": 0x40A5, "B": 0x41A5}) == {"A": 0, "B": 0}
    assert not rig.link.is_open
