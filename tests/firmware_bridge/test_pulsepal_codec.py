"""The Pulse Pal v2 codec and driver against devices.md section 4a and docs/devices/pulsepal.md.

Byte for byte against the reference's vectors and hand-worked messages; the driver runs on
virtual time over a small port, written here, that answers as the reference's reply table
says (the real simulator's contract tests are separate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_profiles import load_profile
from firmware_bridge.codecs import pulsepal as P
from firmware_bridge.driver import make_driver
from firmware_bridge.errors import (
    DeviceTimeout,
    ProtocolError,
    TransportClosed,
    UnknownDeviceError,
)
from firmware_bridge.events import DeviceEvent, DeviceNotice, LinkLost
from firmware_bridge.transport import Transport
from firmware_bridge.vtime import VirtualTimeLoop
from safety import Guard, UnvettedFrameError, VettedFrame, resolve_limits
from tests.safety.helpers import demand, device, program

PROFILE = load_profile("pulsepal")


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


def hexes(messages: Sequence[P.Message] | Sequence[bytes]) -> list[str]:
    return [(m.data if isinstance(m, P.Message) else m).hex(" ").upper() for m in messages]


# --- the reference's vectors and every builder ---------------------------------------------------
def test_reference_vectors() -> None:
    assert P.fixed_voltage(1, P.voltage_bits(0.0)) == h("D54F010080")  # ch1 fixed 0 V
    assert P.program_param(P.PHASE1_DURATION, 1, P.cycles(0.001)) == h("D54A040114000000")


def test_simple_ops() -> None:
    assert P.handshake() == h("D548")
    assert P.abort() == h("D550")
    assert P.disconnect() == h("D551")
    assert P.client_name() == h("D559") + b"ACSTIM"
    assert P.client_name("PYTHON") == h("D559505954484F4E")
    assert P.soft_trigger(0b0101) == h("D54D05")
    assert P.trigger_mask(["A", "C"]) == 0b0101
    assert P.trigger_mask(["D"]) == 8
    assert P.trigger_mask([]) == 0


@pytest.mark.parametrize(
    ("code", "value", "hex_text"),
    [
        (P.IS_BIPHASIC, 1, "D54A010201"),
        (P.PHASE1_VOLTAGE, 32768, "D54A02020080"),
        (P.PHASE2_VOLTAGE, 29491, "D54A0302 3373"),
        (P.PHASE1_DURATION, 4, "D54A040204000000"),
        (P.INTER_PHASE_INTERVAL, 1, "D54A050201000000"),
        (P.PHASE2_DURATION, 20, "D54A060214000000"),
        (P.INTER_PULSE_INTERVAL, 19997, "D54A07021D4E0000"),
        (P.BURST_DURATION, 0, "D54A080200000000"),
        (P.INTER_BURST_INTERVAL, 0, "D54A090200000000"),
        (P.PULSE_TRAIN_DURATION, 72_000_000, "D54A0A0200A24A04"),
        (P.PULSE_TRAIN_DELAY, 0, "D54A0B0200000000"),
        (P.LINK_TRIGGER_1, 0, "D54A0C0200"),
        (P.LINK_TRIGGER_2, 1, "D54A0D0201"),
        (P.CUSTOM_TRAIN_ID, 0, "D54A0E0200"),
        (P.CUSTOM_TRAIN_TARGET, 0, "D54A0F0200"),
        (P.CUSTOM_TRAIN_LOOP, 0, "D54A100200"),
        (P.RESTING_VOLTAGE, 32768, "D54A11020080"),
        (P.TRIGGER_MODE, 2, "D54A800202"),
    ],
)
def test_program_param_sizes_each_code(code: int, value: int, hex_text: str) -> None:
    assert P.program_param(code, 2, value) == h(hex_text.replace(" ", ""))


@pytest.mark.parametrize(
    ("code", "size"),
    [(1, 1), *((c, 1) for c in range(12, 17)), (128, 1), (2, 2), (3, 2), (17, 2)]
    + [(c, 4) for c in range(4, 12)],
)
def test_value_size_per_code(code: int, size: int) -> None:
    assert P.param_value_size(code) == size


def test_builders_refuse_what_the_box_cannot_read() -> None:
    with pytest.raises(ValueError, match="unknown Pulse Pal parameter code 18"):
        P.program_param(18, 1, 0)
    for channel in (0, 5):
        with pytest.raises(ValueError, match=r"allowed 1..4"):
            P.program_param(P.IS_BIPHASIC, channel, 1)
        with pytest.raises(ValueError, match=r"allowed 1..4"):
            P.fixed_voltage(channel, 0)
        with pytest.raises(ValueError, match=r"allowed 1..4"):
            P.continuous_loop(channel, True, 22)
    with pytest.raises(ValueError, match=r"allowed 0..255"):
        P.program_param(P.LINK_TRIGGER_1, 1, 256)
    with pytest.raises(ValueError, match=r"allowed 0..65535"):
        P.program_param(P.PHASE1_VOLTAGE, 1, 65536)
    with pytest.raises(ValueError, match=r"allowed 0..72000000"):
        P.program_param(P.PULSE_TRAIN_DURATION, 1, 72_000_001)
    with pytest.raises(ValueError, match="allowed 0"):
        P.program_param(P.PHASE1_DURATION, 1, -1)
    with pytest.raises(ValueError, match="isBiphasic = True"):
        P.program_param(P.IS_BIPHASIC, 1, True)
    with pytest.raises(ValueError, match=r"allowed 0..15"):
        P.soft_trigger(16)
    with pytest.raises(ValueError, match=r"allowed 0..65535"):
        P.fixed_voltage(1, 65536)
    for name in ("", "ÄCUSTIM", "A\nB"):
        with pytest.raises(ValueError, match="printable ASCII"):
            P.client_name(name)
    with pytest.raises(ValueError, match="a Pulse Pal has A, B, C, D"):
        P.trigger_mask(["E"])


@pytest.mark.parametrize(
    ("channel", "on", "firmware", "hex_text"),
    [
        # firmware 21 (2.0.1): state, then the 0-based output
        (1, True, 21, "D5520100"),
        (4, True, 21, "D5520103"),
        (3, False, 21, "D5520002"),
        (2, True, 20, "D5520101"),  # older Pulse Pal 2 firmware: the 21 layout
        # firmware 22: the output 1..4, then the state
        (1, True, 22, "D5520101"),
        (4, True, 22, "D5520401"),
        (3, False, 22, "D5520300"),
        (2, True, 23, "D5520201"),  # newer: the 22 layout
    ],
)
def test_continuous_loop_per_firmware(channel: int, on: bool, firmware: int, hex_text: str) -> None:
    assert P.continuous_loop(channel, on, firmware) == h(hex_text)


# --- conversions at the edges -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("volts", "bits"),
    [
        (0.0, 32768),
        (-10.0, 0),
        (10.0, 65535),
        (-12.5, 0),  # clamped
        (12.5, 65535),  # clamped
        (5.0, 49152),  # 49151.25 up
        (-5.0, 16384),  # 16383.75 up
        (2.0, 39321),  # exactly 39321: no float error pushes the ceiling up
        (-2.0, 26214),
        (6.0, 52428),
        (-6.0, 13107),
        (0.001, 32771),
        (-0.001, 32765),
    ],
)
def test_voltage_bits(volts: float, bits: int) -> None:
    assert P.voltage_bits(volts) == bits


@pytest.mark.parametrize(
    ("mv", "bits"),
    [
        (0, 32768),
        (1, 32771),
        (-1, 32765),
        (1000, 36045),
        (-1000, 29491),
        (2000, 39321),
        (10000, 65535),
        (-10000, 0),
        (10001, 65535),
        (-10001, 0),
    ],
)
def test_millivolt_bits(mv: int, bits: int) -> None:
    assert P.millivolts_bits(mv) == bits
    assert P.millivolts_bits(mv) == P.voltage_bits(mv / 1000)


@given(st.integers(-10_000, 10_000))
def test_millivolt_bits_follow_the_formula_exactly(mv: int) -> None:
    # ceil((V + 10) / 20 * 65535) in integers: V = mv / 1000
    assert P.millivolts_bits(mv) == -(-(mv + 10_000) * 65535 // 20_000)


def test_voltage_of_no_number_is_refused() -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="not a number"):
            P.voltage_bits(bad)


@pytest.mark.parametrize(
    ("seconds", "n"),
    [
        (0.0, 0),
        (24e-6, 0),
        (26e-6, 1),
        (50e-6, 1),
        (0.001, 20),
        (0.1, 2000),
        (1.0, 20_000),
        (3600.0, 72_000_000),
    ],
)
def test_cycles(seconds: float, n: int) -> None:
    assert P.cycles(seconds) == n


def test_cycles_refuse_negative_and_non_finite_times() -> None:
    for bad in (-1e-6, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="allowed a finite time"):
            P.cycles(bad)


@pytest.mark.parametrize(
    ("pw_us", "d"),
    [(50.0, 1), (200.0, 4), (1000.0, 20), (10.0, 1), (0.0, 1), (75.0, 2), (125.0, 2), (130.0, 3)],
)
def test_phase_cycles(pw_us: float, d: int) -> None:
    assert P.phase_cycles(pw_us) == d  # round() (half to even: 2.5 -> 2), at least 1


@pytest.mark.parametrize(
    ("hz", "d", "ipi"),
    [
        (50.0, 4, 391),
        (100.0, 20, 159),
        (1.0, 1, 19997),
        (2.0, 4, 9991),
        (3.0, 1, 6664),
        (2000.0, 20, 1),
        (20000.0, 1, 1),
    ],
)
def test_inter_pulse_cycles(hz: float, d: int, ipi: int) -> None:
    assert P.inter_pulse_cycles(hz, d) == ipi


def test_inter_pulse_refuses_no_rate() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="allowed a finite rate"):
            P.inter_pulse_cycles(bad, 1)
    with pytest.raises(ValueError, match="not a number"):
        P.phase_cycles(float("nan"))


# --- replies --------------------------------------------------------------------------------------
def test_parser_fed_byte_by_byte() -> None:
    parser = P.ReplyParser()
    stream = h("4B16000000") + h("01") + h("4B15000000") + h("0101")
    replies: list[P.Reply] = []
    for byte in stream:
        replies += parser.feed(bytes([byte]))
    assert replies == [P.HandshakeReply(22), P.Ack(), P.HandshakeReply(21), P.Ack(), P.Ack()]
    assert not parser.mid_reply


def test_parser_reads_version_bytes_that_look_like_replies() -> None:
    parser = P.ReplyParser()
    assert parser.feed(h("4B014B0100")) == [P.HandshakeReply(0x00014B01)]
    assert parser.feed(h("4B")) == []
    assert parser.mid_reply
    assert parser.feed(h("FFFFFFFF01")) == [P.HandshakeReply(0xFFFFFFFF), P.Ack()]


@pytest.mark.parametrize("bad", [h("00"), h("02"), h("4A"), h("D5"), h("FF")])
def test_parser_refuses_anything_else_and_starts_afresh(bad: bytes) -> None:
    parser = P.ReplyParser()
    with pytest.raises(ProtocolError, match=f"unexpected byte {bad.hex().upper()}"):
        parser.feed(bad)
    assert parser.feed(h("01")) == [P.Ack()]


@given(st.lists(st.binary(min_size=0, max_size=8), max_size=12))
def test_any_device_bytes_parse_or_raise_a_protocol_error(chunks: list[bytes]) -> None:
    parser = P.ReplyParser()
    for chunk in chunks:
        try:
            replies = parser.feed(chunk)
        except ProtocolError:
            continue
        assert all(isinstance(r, P.Ack | P.HandshakeReply) for r in replies)
        for r in replies:
            if isinstance(r, P.HandshakeReply):
                assert 0 <= r.firmware_version < 2**32


# --- the stateful codec -------------------------------------------------------------------------
def make_guard(channels: tuple[str, ...] = ("A", "B")) -> Guard:
    limits = resolve_limits(PROFILE.limits, program(channels), rise_fraction_per_s=0.05)
    g = Guard(limits)
    g.start(0.0)
    g.confirm_limits_written()
    return g


class Frames:
    """Vetted Pulse Pal frames at chosen levels (the guard ramps; only chosen frames count)."""

    def __init__(self, channels: tuple[str, ...] = ("A", "B")) -> None:
        self.guard = make_guard(channels)
        self.t = 0.0

    def at(
        self, levels: dict[str, int], shapes: dict[str, tuple[float, float, float]]
    ) -> VettedFrame:
        """``shapes``: channel -> (frequency_hz, pulse_width_us, intensity). The guard's soft
        start ramps the delivered output (level x intensity): frames are vetted until it has
        reached what was asked, and the last one is returned."""
        for name, level in levels.items():
            self.guard.set_level(name, level, self.t)
        demands = [
            demand(n, frequency_hz=f, pulse_width_us=w, intensity=i, n=1)
            for n, (f, w, i) in shapes.items()
        ]
        wanted = {n: levels.get(n, self.guard.level_du(n)) * i for n, (_f, _w, i) in shapes.items()}
        for _ in range(1000):
            self.t += 0.25
            frame = self.guard.vet(demands, self.t)
            if all(frame.channel(n).level_du == v for n, v in levels.items()) and all(
                abs(frame.channel(n).level_du * frame.channel(n).intensity[0] - w) < 1e-6
                for n, w in wanted.items()
            ):
                return frame
        raise AssertionError(f"the guard never reached {levels} x {shapes}")


def connected_codec(firmware: int = 22, used: tuple[str, ...] = ("A", "B")) -> P.PulsePalCodec:
    codec = P.PulsePalCodec(firmware)
    codec.connect_messages(used, frequency_hz=1.0, pulse_width_us=50.0)
    return codec


def output_a_setup(ch: str = "01") -> list[str]:
    """Connect's set-up of one output, worked out by hand from docs/devices/pulsepal.md."""
    return [
        f"D5 4A 01 {ch} 01",  # isBiphasic
        f"D5 4A 02 {ch} 00 80",  # phase 1: 0 V
        f"D5 4A 03 {ch} 00 80",  # phase 2: 0 V
        f"D5 4A 11 {ch} 00 80",  # resting: 0 V
        f"D5 4A 04 {ch} 01 00 00 00",  # 50 us = 1 cycle
        f"D5 4A 05 {ch} 01 00 00 00",  # interphase: 1 cycle
        f"D5 4A 06 {ch} 01 00 00 00",
        f"D5 4A 07 {ch} 1D 4E 00 00",  # 1 Hz: 20000 - 2 - 1 = 19997
        f"D5 4A 08 {ch} 00 00 00 00",  # no bursts
        f"D5 4A 0A {ch} 00 A2 4A 04",  # 72,000,000 cycles = 3600 s
        f"D5 4A 0B {ch} 00 00 00 00",  # no delay
        f"D5 4A 0C {ch} 00",  # not linked to trigger 1
        f"D5 4A 0D {ch} 00",  # nor trigger 2
        f"D5 4A 0E {ch} 00",  # no custom train
    ]


def expected_connect(firmware: int, mask: str = "03") -> list[str]:
    loop = (
        ["D5 52 01 00", "D5 52 01 01", "D5 52 01 02", "D5 52 01 03"]
        if firmware <= 21
        else ["D5 52 01 01", "D5 52 02 01", "D5 52 03 01", "D5 52 04 01"]
    )
    setup = [line for ch in ("01", "02", "03", "04") for line in output_a_setup(ch)]
    return ["D5 59 41 43 53 54 49 4D", "D5 50", *setup, *loop, f"D5 4D {mask}"]


@pytest.mark.parametrize("firmware", [21, 22])
def test_connect_sets_every_output_to_zero_then_starts_the_used_ones(firmware: int) -> None:
    codec = P.PulsePalCodec(firmware)
    messages = codec.connect_messages(("A", "B"), frequency_hz=1.0, pulse_width_us=50.0)
    assert hexes(messages) == expected_connect(firmware)
    assert codec.running == {1, 2}
    replies = [m.reply for m in messages]
    assert replies[:2] == ["none", "none"] and replies[-1] == "none"
    assert set(replies[2:-1]) == {"ack"}


def setup_lines(ch: str) -> list[str]:
    """The set-up every frame writes again to one output, in its order, worked out by hand."""
    return [
        f"D5 4A 11 {ch} 00 80",  # resting: 0 V
        f"D5 4A 0E {ch} 00",  # no custom train
        f"D5 4A 01 {ch} 01",  # biphasic
        f"D5 4A 05 {ch} 01 00 00 00",  # interphase: 1 cycle
        f"D5 4A 08 {ch} 00 00 00 00",  # no bursts
        f"D5 4A 0A {ch} 00 A2 4A 04",  # 72,000,000 cycles = 3600 s
        f"D5 4A 0B {ch} 00 00 00 00",  # no delay
        f"D5 4A 0C {ch} 00",  # not linked to trigger 1
        f"D5 4A 0D {ch} 00",  # nor trigger 2
    ]


def of_output(messages: Sequence[P.Message], out: int) -> list[str]:
    """The per-frame parameters (``FRAME_CODES``) written to output ``out``, in order."""
    return hexes(
        [m for m in messages if m.data[1] == 74 and m.data[3] == out and m.data[2] in P.FRAME_CODES]
    )


def test_every_frame_reasserts_everything_connect_writes_to_an_output() -> None:
    assert {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 17} == P.REASSERTED
    assert set(P.SETUP_PARAMETERS) | set(P.FRAME_CODES) == P.REASSERTED
    codec = connected_codec()
    assert {code for (out, code) in codec.image if out == 1} == P.REASSERTED


def test_a_frame_writes_every_parameter_of_every_output() -> None:
    codec = connected_codec()
    frames = Frames()
    frame = frames.at({"A": 2000}, {"A": (50.0, 200.0, 0.5), "B": (50.0, 200.0, 0.0)})
    assert P.amplitude_mv(frame.channel("A")) == 1000
    messages = codec.encode(frame)
    assert hexes(messages) == [
        # voltages that fall or stay as they were: B, C and D at 0 V
        *(f"D5 4A 0{c} 0{o} 00 80" for o in (2, 3, 4) for c in (2, 3)),
        # the set-up of every output
        *(line for o in ("01", "02", "03", "04") for line in setup_lines(o)),
        # timing that stays: C and D at connect's 50 us and 1 Hz (20000 - 2 - 1 = 19997)
        "D5 4A 04 03 01 00 00 00",
        "D5 4A 06 03 01 00 00 00",
        "D5 4A 07 03 1D 4E 00 00",
        "D5 4A 04 04 01 00 00 00",
        "D5 4A 06 04 01 00 00 00",
        "D5 4A 07 04 1D 4E 00 00",
        # timing rises (B's too, at 0 V), 50 Hz at 200 us: d = 4, 400 - 8 - 1 = 391
        "D5 4A 04 01 04 00 00 00",
        "D5 4A 06 01 04 00 00 00",
        "D5 4A 07 01 87 01 00 00",
        "D5 4A 04 02 04 00 00 00",
        "D5 4A 06 02 04 00 00 00",
        "D5 4A 07 02 87 01 00 00",
        # then the voltage rise: +1 V = 36045, -1 V = 29491
        "D5 4A 02 01 CD 8C",
        "D5 4A 03 01 33 73",
    ]
    assert all(m.reply == "ack" for m in messages)
    # 4 outputs x (3 voltages x 6 + 7 times x 8 + 4 one-byte values x 5 bytes), in one write
    assert len(messages) == 4 * 14
    assert len(P.frame_bytes(messages)) == 4 * 94 == 376
    # nothing changed: everything is written all the same, now every voltage first
    again = codec.encode(frame)
    assert sorted(hexes(again)) == sorted(hexes(messages))
    assert hexes(again)[:2] == ["D5 4A 02 01 CD 8C", "D5 4A 03 01 33 73"]
    assert of_output(again, 1)[2:] == [
        "D5 4A 04 01 04 00 00 00",
        "D5 4A 06 01 04 00 00 00",
        "D5 4A 07 01 87 01 00 00",
    ]


def test_falls_go_before_rises() -> None:
    codec = connected_codec()
    frames = Frames()
    codec.encode(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)}))
    # lower level, shorter pulses, lower rate: all falls, voltage first
    fall = codec.encode(frames.at({"A": 500}, {"A": (25.0, 100.0, 1.0)}))
    assert of_output(fall, 1) == [
        "D5 4A 02 01 66 86",  # +0.5 V = 34406
        "D5 4A 03 01 9A 79",  # -0.5 V = 31130
        "D5 4A 04 01 02 00 00 00",
        "D5 4A 06 01 02 00 00 00",
        "D5 4A 07 01 1B 03 00 00",  # 800 - 4 - 1 = 795
    ]
    assert hexes(fall)[0] == "D5 4A 02 01 66 86"  # before anything else
    # higher level, shorter pulses, higher rate: width falls, then rate, then voltage
    mixed = codec.encode(frames.at({"A": 1500}, {"A": (100.0, 50.0, 1.0)}))
    assert of_output(mixed, 1) == [
        "D5 4A 04 01 01 00 00 00",
        "D5 4A 06 01 01 00 00 00",
        "D5 4A 07 01 C5 00 00 00",  # 200 - 2 - 1 = 197
        "D5 4A 02 01 33 93",  # +1.5 V = 37683
        "D5 4A 03 01 CD 6C",  # -1.5 V = 27853
    ]
    assert hexes(mixed)[-2:] == ["D5 4A 02 01 33 93", "D5 4A 03 01 CD 6C"]  # after everything


def expected_zero() -> list[str]:
    """Abort, then 0 V resting and 0 V phases on every output, by hand."""
    return ["D5 50"] + [f"D5 4A {c} 0{o} 00 80" for c in ("11", "02", "03") for o in range(1, 5)]


def test_zero_aborts_first_and_the_next_output_triggers_again() -> None:
    codec = connected_codec()
    frames = Frames()
    on = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})
    codec.encode(on)
    zero = codec.zero_messages()
    assert hexes(zero) == expected_zero()
    assert zero[0].reply == "none" and all(m.reply == "ack" for m in zero[1:])
    assert len(P.frame_bytes(zero)) == 2 + 12 * 6 == 74
    assert codec.running == set()
    assert hexes(codec.zero_messages()) == expected_zero()  # 0 V already: written all the same
    again = codec.encode(on)
    assert len(again) == 4 * 14 + 1
    assert hexes(again)[-3:] == ["D5 4A 02 01 CD 8C", "D5 4A 03 01 33 73", "D5 4D 01"]
    assert codec.running == {1}
    assert P.OP_SOFT_TRIGGER not in {m.data[1] for m in codec.encode(on)}  # running: no trigger


def test_a_silent_channel_is_not_triggered_until_it_has_output() -> None:
    codec = connected_codec()
    codec.zero_messages()
    frames = Frames()
    quiet = frames.at({"A": 1000, "B": 1000}, {"A": (50.0, 200.0, 1.0), "B": (50.0, 200.0, 0.0)})
    assert hexes(codec.encode(quiet))[-1] == "D5 4D 01"
    both = frames.at({"A": 1000, "B": 1000}, {"A": (50.0, 200.0, 1.0), "B": (50.0, 200.0, 0.5)})
    assert hexes(codec.encode(both))[-1] == "D5 4D 02"
    assert codec.running == {1, 2}


def test_the_guards_zero_frame_is_encoded_as_zero() -> None:
    codec = connected_codec()
    frames = Frames()
    codec.encode(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)}))
    stop = frames.guard.stop(frames.t)
    assert stop.zero
    assert hexes(codec.encode(stop)) == expected_zero()


def test_invalidate_makes_the_next_frame_write_everything_as_a_fall() -> None:
    codec = connected_codec()
    frames = Frames()
    frame = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})
    codec.encode(frame)
    codec.invalidate()
    assert hexes(codec.zero_messages()) == expected_zero()
    codec.invalidate()
    messages = codec.encode(frame)
    assert len(messages) == 4 * 14 + 1  # every parameter of every output, and a trigger
    assert messages[-1].data == h("D54D01")
    # unknown old values: every voltage goes first, A's at 1 V among them
    assert hexes(messages)[:2] == ["D5 4A 02 01 CD 8C", "D5 4A 03 01 33 73"]
    assert all(m.data[2] in (2, 3) for m in messages[:8])


def test_frames_with_more_than_one_sample_are_refused() -> None:
    limits = resolve_limits(device(channels=("A", "B", "C", "D")), program(("A",)))
    g = Guard(limits)
    g.start(0.0)
    g.confirm_limits_written()
    g.set_level("A", 10, 0.0)
    for i in range(1, 20):
        frame = g.vet([demand("A")], i * 0.25)
    with pytest.raises(ValueError, match="one sample per channel"):
        connected_codec().encode(frame)


def split(data: bytes) -> list[bytes]:
    """One write into its host messages, by the reference's op table (texts: printable run)."""
    out: list[bytes] = []
    i = 0
    while i < len(data):
        assert data[i] == 0xD5, data[i:].hex(" ")
        op = data[i + 1]
        if op == 74:
            size = 1 if data[i + 2] in (1, 12, 13, 14, 15, 16, 128) else 2
            size = 4 if 4 <= data[i + 2] <= 11 else size
            n = 4 + size
        elif op == 89:
            n = 2
            while i + n < len(data) and 0x20 <= data[i + n] <= 0x7E:
                n += 1
        else:
            n = {72: 2, 77: 3, 79: 5, 80: 2, 81: 2, 82: 4}[op]
        out.append(data[i : i + n])
        i += n
    return out


def decode_into(image: dict[tuple[int, int], int], running: set[int], data: bytes) -> None:
    """Apply one write as the reference describes its messages (op 74 / 77 / 80), by hand."""
    for d in split(data):
        if d[1] == 74:
            image[(d[3], d[2])] = int.from_bytes(d[4:], "little")
        elif d[1] == 77:
            running |= {out for out in range(1, 5) if d[2] & (1 << (out - 1))}
        elif d[1] == 80:
            running.clear()
        else:
            raise AssertionError(f"unexpected op {d[1]} in a frame")


Shape = tuple[float, float, float]
Step = tuple[int, Shape, int, Shape]
#: what the front panel did before a step: (output, code, value) for any parameter the host sets
Panel = list[tuple[int, int, int]]

shape = st.tuples(
    st.sampled_from([1.0, 2.0, 3.0, 10.0, 50.0, 100.0]),
    st.sampled_from([50.0, 100.0, 200.0, 333.0, 1000.0]),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
panel = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from(sorted(P.REASSERTED)), st.integers(0, 65_535)),
    max_size=4,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.tuples(
            panel,
            st.one_of(
                st.none(),  # a zero frame
                st.tuples(st.integers(0, 3000), shape, st.integers(0, 3000), shape),
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_whatever_the_panel_did_the_box_holds_every_frame(
    steps: list[tuple[Panel, Step | None]],
) -> None:
    codec = P.PulsePalCodec(22)
    image: dict[tuple[int, int], int] = {}
    running: set[int] = set()
    connect = codec.connect_messages(("A", "B"), frequency_hz=1.0, pulse_width_us=50.0)
    for m in connect:
        if m.data[1] in (74, 77, 80):
            decode_into(image, running, m.data)
    frames = Frames()
    for changes, step in steps:
        for out, code, value in changes:  # the box's own menu, behind the host's back
            image[(out, code)] = value
        if step is None:
            decode_into(image, running, P.frame_bytes(codec.zero_messages()))
            assert running == set()
            for out in range(1, 5):
                assert image[(out, 2)] == image[(out, 3)] == image[(out, 17)] == 32768
            continue
        level_a, shape_a, level_b, shape_b = step
        frame = frames.at({"A": level_a, "B": level_b}, {"A": shape_a, "B": shape_b})
        decode_into(image, running, P.frame_bytes(codec.encode(frame)))
        if frame.zero:
            assert running == set()
            continue
        for name, (f, w, i), level in (("A", shape_a, level_a), ("B", shape_b, level_b)):
            out = P.OUTPUTS[name]
            mv = int(level * i + 1e-9)
            d = max(1, round(w / 50))
            assert image[(out, 2)] == -(-(mv + 10_000) * 65535 // 20_000)
            assert image[(out, 3)] == -(-(10_000 - mv) * 65535 // 20_000)
            assert image[(out, 4)] == image[(out, 6)] == d
            assert image[(out, 7)] == max(1, round(20000 / f) - 2 * d - 1)
            if mv > 0:
                assert out in running
        for out in range(1, 5):
            for code, value in P.SETUP_PARAMETERS.items():
                assert image[(out, code)] == value  # the panel's changes are gone
        assert image == codec.image


# --- the driver over a hand-made port -----------------------------------------------------------
class Port(Transport):
    """Records every write and answers every message in it as the reference's reply table
    says: 72 -> 4B + uint32 version; 74, 79, 82 -> 01; the others nothing. Replies come back
    one byte per loop callback, in order, as a serial port may deliver them."""

    def __init__(self, version: int = 22) -> None:
        super().__init__()
        self.version = version
        self.writes: list[bytes] = []
        self.script: list[bytes] = []  # replies to use instead, in order
        self.silent = False
        self.reply_delay_s = 0.0
        self.opened = 0
        self._open = False

    @property
    def messages(self) -> list[bytes]:
        """Every message written so far, in order, whatever writes carried them."""
        return [m for w in self.writes for m in split(w)]

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self.opened += 1
        self._open = True

    async def close(self) -> None:
        self._open = False

    def drop(self, reason: str) -> None:
        self._open = False
        self._lost(reason)

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        if not self._open:
            raise TransportClosed("port is closed")
        self.writes.append(bytes(data))
        reply = b"".join(self._reply(m) for m in split(bytes(data)))
        if reply:
            loop = asyncio.get_running_loop()
            loop.call_later(self.reply_delay_s, self._answer, loop, reply)

    def _answer(self, loop: asyncio.AbstractEventLoop, reply: bytes) -> None:
        for byte in reply:  # one chunk per byte, in order
            loop.call_soon(self._deliver, "", bytes([byte]))

    def _reply(self, data: bytes) -> bytes:
        if data[1] in (72, 74, 79, 82) and self.script:
            return self.script.pop(0)
        if self.silent:
            return b""
        if data[1] == 72:
            return b"\x4b" + self.version.to_bytes(4, "little")
        return b"\x01" if data[1] in (74, 79, 82) else b""


@pytest.fixture
def loop() -> Iterator[VirtualTimeLoop]:
    loop = VirtualTimeLoop(start_s=50.0)
    yield loop
    loop.close()


def driver_on(port: Port) -> tuple[P.Driver, list[DeviceEvent]]:
    driver = make_driver(PROFILE, port)
    assert isinstance(driver, P.Driver)
    events: list[DeviceEvent] = []
    driver.on_event = events.append
    return driver, events


@pytest.mark.parametrize("firmware", [21, 22])
def test_driver_connects_per_the_document(loop: VirtualTimeLoop, firmware: int) -> None:
    port = Port(firmware)
    driver, events = driver_on(port)
    loop.run_until_complete(driver.connect(make_guard().limits))
    assert port.opened == 1
    assert hexes(port.writes) == ["D5 48", *expected_connect(firmware)]
    assert events == [
        DeviceNotice(
            "firmware",
            f"Pulse Pal 2, firmware {firmware}",
            {"model": "Pulse Pal 2", "version": firmware, "tested": True},
        )
    ]
    assert driver.firmware_version == firmware
    assert driver.codec.running == {1, 2}
    assert driver.protocol_errors == 0


def test_driver_triggers_only_the_sessions_channels(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, _ = driver_on(port)
    loop.run_until_complete(driver.connect(make_guard(("B", "D")).limits))
    assert port.writes[-1] == h("D54D0A")


@pytest.mark.parametrize(("firmware", "loop_a"), [(20, "D5 52 01 00"), (23, "D5 52 01 01")])
def test_untested_firmware_is_encoded_as_the_nearer_known_one(
    loop: VirtualTimeLoop, firmware: int, loop_a: str
) -> None:
    port = Port(firmware)
    driver, events = driver_on(port)
    loop.run_until_complete(driver.connect(make_guard().limits))
    assert loop_a in hexes(port.writes)
    notice = events[0]
    assert isinstance(notice, DeviceNotice) and "not tested" in notice.message


def test_pulse_pal_1_is_refused(loop: VirtualTimeLoop) -> None:
    port = Port(version=19)
    driver, events = driver_on(port)
    with pytest.raises(UnknownDeviceError, match="Pulse Pal 1 is not supported"):
        loop.run_until_complete(driver.connect(make_guard().limits))
    assert port.writes == [h("D548")]
    assert events == []


def test_a_silent_handshake_is_a_clear_timeout(loop: VirtualTimeLoop) -> None:
    port = Port()
    port.silent = True
    driver, _ = driver_on(port)
    start = loop.time()
    with pytest.raises(
        DeviceTimeout, match=r"no answer to the handshake \(D5 48\) within 1 s: is a Pulse Pal 2"
    ):
        loop.run_until_complete(driver.connect(make_guard().limits))
    assert loop.time() - start == pytest.approx(P.HANDSHAKE_TIMEOUT_S)


def test_an_ack_instead_of_the_handshake_reply_is_a_protocol_error(loop: VirtualTimeLoop) -> None:
    port = Port()
    port.script = [h("01")]
    driver, _ = driver_on(port)
    with pytest.raises(ProtocolError, match="got an acknowledgement 01; expected 4B"):
        loop.run_until_complete(driver.connect(make_guard().limits))


def connected(loop: VirtualTimeLoop, port: Port) -> tuple[P.Driver, Frames]:
    driver, _ = driver_on(port)
    frames = Frames()
    loop.run_until_complete(driver.connect(frames.guard.limits))
    port.writes.clear()
    return driver, frames


def test_a_frame_is_one_write_and_one_round_trip(loop: VirtualTimeLoop) -> None:
    port = Port()
    port.reply_delay_s = 0.001
    driver, frames = connected(loop, port)
    frame = frames.at({"A": 2000}, {"A": (50.0, 200.0, 0.5), "B": (1.0, 50.0, 0.0)})
    start = loop.time()
    loop.run_until_complete(driver.send(frame))
    assert len(port.writes) == 1
    assert len(port.writes[0]) == 376
    assert len(port.messages) == 4 * 14
    assert hexes(port.messages)[-2:] == ["D5 4A 02 01 CD 8C", "D5 4A 03 01 33 73"]
    assert loop.time() - start == pytest.approx(0.001)  # 56 acknowledgements, one round trip
    port.writes.clear()
    loop.run_until_complete(driver.send(frame))  # nothing changed: all of it again
    assert [len(w) for w in port.writes] == [376]
    assert driver.protocol_errors == 0


def test_no_ack_within_200_ms_is_a_device_timeout(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    port.silent = True
    frame = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})
    start = loop.time()
    with pytest.raises(DeviceTimeout, match=r"no reply within 200 ms to phase1Voltage of B"):
        loop.run_until_complete(driver.send(frame))
    assert loop.time() - start == pytest.approx(P.ACK_TIMEOUT_S)
    assert len(port.writes) == 1  # the frame's one write, nothing after it
    assert driver.codec.image == {}  # unsure now


def test_the_timeout_names_the_first_message_not_acknowledged(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    # 6 voltages (B, C, D), then A's set-up (9 messages): the 16th is B's resting voltage
    port.script = [h("01")] * 15  # 15 acknowledgements, then silence
    port.silent = True
    with pytest.raises(DeviceTimeout, match=r"to restingVoltage of B;"):
        loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (h("07"), "unexpected byte 07 .*waiting for the reply to phase1Voltage of B"),
        (h("4B16000000"), "phase1Voltage of B got a handshake reply 4B; expected 01"),
    ],
)
def test_a_wrong_reply_is_a_protocol_error(
    loop: VirtualTimeLoop, reply: bytes, message: str
) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    port.script = [reply]
    with pytest.raises(ProtocolError, match=message):
        loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))


def test_unsolicited_bytes_are_counted_not_fatal(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    port._deliver("", h("01"))
    port._deliver("", h("99"))
    assert driver.protocol_errors == 2
    loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))
    assert driver.protocol_errors == 2


def test_after_a_failure_output_is_refused_and_zero_is_never_confirmed(
    loop: VirtualTimeLoop,
) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    frame = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})
    port.script = [h("07")]
    with pytest.raises(ProtocolError):
        loop.run_until_complete(driver.send(frame))
    port.writes.clear()
    # late acknowledgements of that frame could count for the next one: nothing is trusted
    with pytest.raises(ProtocolError, match=r"output refused: .*out of step"):
        loop.run_until_complete(driver.send(frame))
    assert port.writes == []
    zero = frames.guard.stop(frames.t)
    with pytest.raises(ProtocolError, match="zero output was written but cannot be confirmed"):
        loop.run_until_complete(driver.send(zero))
    # five aborts: a message cut short takes at most 7 bytes, one abort is left whole
    assert hexes(port.messages) == ["D5 50"] * 4 + expected_zero()
    # a handshake brings the two in step again
    loop.run_until_complete(driver.connect(frames.guard.limits))
    loop.run_until_complete(driver.send(frame))
    assert driver.codec.running == {1, 2}


def test_zero_frames_abort_first_and_output_is_triggered_again(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    on = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})
    loop.run_until_complete(driver.send(on))
    port.writes.clear()
    loop.run_until_complete(driver.send(frames.guard.stop(frames.t)))
    assert len(port.writes) == 1
    assert hexes(port.messages) == expected_zero()
    port.writes.clear()
    loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))
    assert len(port.writes) == 1
    assert hexes(port.messages)[-3:] == ["D5 4A 02 01 CD 8C", "D5 4A 03 01 33 73", "D5 4D 01"]


def test_a_zero_waits_for_at_most_the_round_trip_in_flight(loop: VirtualTimeLoop) -> None:
    port = Port()
    port.reply_delay_s = 0.010
    driver, frames = connected(loop, port)
    frame = frames.at({"A": 1000, "B": 1000}, {"A": (50.0, 200.0, 1.0), "B": (50.0, 200.0, 1.0)})
    zero = frames.guard.stop(frames.t)

    async def go() -> float:
        first = asyncio.create_task(driver.send(frame))
        await asyncio.sleep(0.005)  # the frame is written, its acknowledgements on their way
        start = asyncio.get_running_loop().time()
        await driver.send(zero)
        await first
        return asyncio.get_running_loop().time() - start

    waited = loop.run_until_complete(go())
    assert [len(w) for w in port.writes] == [376, 74]
    assert hexes(split(port.writes[1])) == expected_zero()
    # the rest of the frame's round trip (5 ms), then the zero's own (10 ms)
    assert waited == pytest.approx(0.005 + 0.010)


def test_a_zero_waiting_for_the_lock_cancels_the_frame_before_it(loop: VirtualTimeLoop) -> None:
    port = Port()
    port.reply_delay_s = 0.010
    driver, frames = connected(loop, port)
    frame = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})
    zero = frames.guard.stop(frames.t)

    async def go() -> None:
        stop = asyncio.create_task(driver.send(zero))  # holds the lock
        await asyncio.sleep(0)
        late = asyncio.create_task(driver.send(frame))  # waits for it
        await asyncio.sleep(0)
        again = asyncio.create_task(driver.send(zero))  # waits behind the frame
        await asyncio.gather(stop, late, again)

    loop.run_until_complete(go())
    assert [len(w) for w in port.writes] == [74, 74]  # the frame never went out
    assert driver.codec.running == set()


def test_unvetted_frames_are_refused_before_anything_is_written(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, _ = connected(loop, port)
    for bad in (object(), None, "D550"):
        with pytest.raises(UnvettedFrameError):
            loop.run_until_complete(driver.send(bad))  # type: ignore[arg-type]
    assert port.writes == []


def test_connect_holds_the_write_lock(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, _ = driver_on(port)
    frames = Frames()
    frame = frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})

    async def both() -> None:
        connecting = asyncio.create_task(driver.connect(frames.guard.limits))
        await asyncio.sleep(0)
        await driver.send(frame)
        await connecting

    loop.run_until_complete(both())
    n = 1 + len(expected_connect(22))  # connect: one message per write
    assert hexes(port.writes[:n]) == ["D5 48", *expected_connect(22)]
    assert [len(w) for w in port.writes[n:]] == [376]  # then the frame


def test_close_writes_zero_then_disconnects(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))
    port.writes.clear()
    loop.run_until_complete(driver.close(frames.guard.zero_frame(frames.t)))
    assert hexes(port.messages) == [*expected_zero(), "D5 51"]
    assert len(port.writes) == 2
    assert not port.is_open


def test_close_without_zero_still_disconnects(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, _ = connected(loop, port)
    loop.run_until_complete(driver.close())
    assert port.writes == [h("D551")]
    assert not port.is_open


def test_close_on_a_silent_box_is_bounded_and_still_disconnects(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))
    port.silent = True
    port.writes.clear()
    start = loop.time()
    with pytest.raises(DeviceTimeout):
        loop.run_until_complete(driver.close(frames.guard.zero_frame(frames.t)))
    assert loop.time() - start <= P.ACK_TIMEOUT_S + 1e-9
    assert hexes(port.writes) == [" ".join(expected_zero()), "D5 51"]
    assert not port.is_open


def test_close_of_a_port_never_opened(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, _ = driver_on(port)
    loop.run_until_complete(driver.close(make_guard().zero_frame()))
    assert port.writes == []


def test_a_lost_link_ends_the_wait_at_once(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, events = driver_on(port)
    frames = Frames()
    loop.run_until_complete(driver.connect(frames.guard.limits))
    port.silent = True

    async def go() -> None:
        loop.call_later(0.01, port.drop, "cable pulled")
        await driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)}))

    start = loop.time()
    with pytest.raises(TransportClosed, match="link lost"):
        loop.run_until_complete(go())
    assert loop.time() - start == pytest.approx(0.01)
    assert events[-1] == LinkLost("cable pulled")


def test_reconnect_programs_the_box_from_scratch(loop: VirtualTimeLoop) -> None:
    port = Port()
    driver, frames = connected(loop, port)
    events: list[DeviceEvent] = []
    driver.on_event = events.append
    loop.run_until_complete(driver.send(frames.at({"A": 1000}, {"A": (50.0, 200.0, 1.0)})))
    port.drop("unplugged")
    port.writes.clear()
    loop.run_until_complete(driver.connect(frames.guard.limits))
    assert port.opened == 2
    assert hexes(port.writes) == ["D5 48", *expected_connect(22)]
    port.drop("unplugged again")  # the next loss is reported too
    assert events[-1] == LinkLost("unplugged again")


# --- the profile ----------------------------------------------------------------------------------
def test_profile_states_what_the_documents_say() -> None:
    p = load_profile("pulsepal")
    assert (p.id, p.link, p.codec, p.simulator) == ("pulsepal", "serial", "pulsepal", "pulsepal")
    assert p.serial_baud == 115200
    assert p.channels == ("A", "B", "C", "D")
    assert p.limits.max_level_du == 10_000
    assert p.limits.frequency_range_hz == (1.0, 100.0)
    assert p.limits.pulse_width_range_us == (50.0, 1000.0)
    assert p.pulse_width_controlled
    assert p.limits.biphasic
    assert p.limits.samples_per_frame == 1
    assert p.limits.frame_period_s == pytest.approx(0.1)
    assert p.frames_ahead == 0
    assert not p.stops_when_host_silent
    assert not p.limits.stops_when_host_silent
    assert "autonomous" in p.stops_when_host_silent_note
    assert p.calibrated
    assert p.limits.calibration is not None
    assert p.limits.calibration.peak_ma_per_du == pytest.approx(0.002)
    assert p.limits.calibration.load_ohm == pytest.approx(500.0)


def test_calibration_reaches_the_vetted_frame() -> None:
    frame = Frames().at({"A": 5000}, {"A": (50.0, 200.0, 1.0)})
    assert frame.channel("A").peak_current_ma == pytest.approx(10.0)  # 5 V into 500 ohm


def test_needle_programs_are_allowed_on_the_biphasic_pulse_pal() -> None:
    resolve_limits(PROFILE.limits, program(electrode="needle"))
