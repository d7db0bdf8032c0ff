"""The ET-312 codec against every test vector in devices.md section 3, byte for byte; the
host-control model of docs/devices/et312.md; and the driver against scripts of box bytes
derived by hand from those two documents (never against the simulator: it is written
independently, and the contract tests pair the two later)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import load_profile
from firmware_bridge.codecs import et312 as E
from firmware_bridge.errors import BridgeError, DeviceTimeout, ProtocolError, TransportClosed
from firmware_bridge.events import BatteryReport, DeviceEvent, DeviceNotice
from firmware_bridge.link import ByteStreamLink
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
    ("hz", "value"),
    [
        (125.0, 8),
        (4.0, 250),
        (50.0, 20),
        (3.0, 255),
        (200.0, 8),
        (0.0, 255),
        (-1.0, 255),
        (float("nan"), 255),
        (float("inf"), 255),
    ],
)
def test_frequency_value_is_the_period_in_ms_8_to_255(hz: float, value: int) -> None:
    assert E.frequency_value(hz) == value


@pytest.mark.parametrize(
    ("us", "value"),
    [(64.0, 64), (196.0, 196), (100.4, 100), (20.0, 64), (500.0, 196), (float("nan"), 64)],
)
def test_width_value_is_us_64_to_196(us: float, value: int) -> None:
    assert E.width_value(us) == value


@pytest.mark.parametrize(
    ("output", "value"),
    [(0.0, 128), (0.4, 128), (0.6, 129), (10.0, 138), (127.0, 255), (300.0, 255), (-3.0, 128)],
)
def test_intensity_value_is_128_plus_output(output: float, value: int) -> None:
    assert E.intensity_value(output) == value


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
    """Raise levels through the soft start (frames discarded); returns the time reached."""
    for name, level in levels.items():
        g.set_level(name, level, t)
    while any(g.level_du(n) != v for n, v in levels.items()):
        t += 0.25
        g.vet(demands(), t)
    return t


def ready_codec(**kw: Any) -> E.Et312Codec:
    codec = E.Et312Codec(**kw)
    codec.limit_writes()
    return codec


def w(address: int, value: int) -> bytes:
    return E.write_packet(address, bytes([value]))


def test_limit_writes_mute_then_zero_intensity_then_static_selects() -> None:
    codec = E.Et312Codec()
    assert codec.limit_writes() == [
        h("4d 40 83 02 12"),
        h("4d 40 a5 80 b2"),
        h("4d 41 a5 80 b3"),
        h("4d 40 ac 00 39"),
        h("4d 40 b5 00 42"),
        h("4d 40 be 00 4b"),
        h("4d 41 ac 00 3a"),
        h("4d 41 b5 00 43"),
        h("4d 41 be 00 4c"),
    ]
    assert codec.muted is True


def test_mode_writes_mode_then_exit_menu_and_new_mode() -> None:
    assert E.Et312Codec().mode_writes(0x76) == [h("4d 40 7b 76 7e"), h("5d 40 70 04 12 23")]


def test_zero_writes_mute_first_then_both_intensities_every_time() -> None:
    codec = ready_codec()
    zero = [h("4d 40 83 02 12"), h("4d 40 a5 80 b2"), h("4d 41 a5 80 b3")]
    assert codec.zero_writes() == zero
    assert codec.zero_writes() == zero  # never skipped: the box keeps running on its own


def test_first_output_frame_sets_the_pulse_then_the_level_then_unmutes() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    frame = g.vet(demands(a=(1.0, 50.0, 100.0)), t)
    assert frame.channel("A").level_du == 10
    assert codec.frame_writes(frame) == [
        h("4d 40 ae 14 4f"),  # frequency A: 1000/50 Hz = 20 ms
        h("4d 40 b7 64 a8"),  # width A: 100 us
        h("4d 40 a5 8a bc"),  # intensity A: 128 + 10
        h("4d 40 83 00 10"),  # mute off, last
    ]
    assert codec.muted is False


def test_only_changed_registers_are_written() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    assert codec.frame_writes(g.vet(demands(), t + 0.1)) == []
    assert codec.frame_writes(g.vet(demands(a=(1.0, 25.0, 100.0)), t + 0.2)) == [w(0x40AE, 40)]
    assert codec.frame_writes(g.vet(demands(a=(1.0, 25.0, 150.0)), t + 0.3)) == [w(0x40B7, 150)]
    assert codec.frame_writes(g.vet(demands(a=(0.5, 25.0, 150.0)), t + 0.4)) == [w(0x40A5, 133)]


def test_falls_go_first_and_rises_after_the_pulse_settings() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    g.set_level("A", 4, t)
    fall = codec.frame_writes(g.vet(demands(a=(1.0, 25.0, 100.0)), t + 0.1))
    assert fall == [w(0x40A5, 132), w(0x40AE, 40)]
    t = ramp_to(g, {"A": 6}, t + 0.1)
    rise = codec.frame_writes(g.vet(demands(a=(1.0, 20.0, 100.0)), t))
    assert rise == [w(0x40AE, 50), w(0x40A5, 134)]


def test_channel_b_uses_the_registers_0x100_above_a() -> None:
    g = guard()
    t = ramp_to(g, {"B": 7})
    codec = ready_codec()
    writes = codec.frame_writes(g.vet(demands(a=(0.0, 50, 100), b=(1.0, 10.0, 64.0)), t))
    assert writes == [w(0x41AE, 100), w(0x41B7, 64), w(0x41A5, 135), w(0x4083, 0)]


def test_a_silent_channel_keeps_its_pulse_settings() -> None:
    g = guard()
    t = ramp_to(g, {"A": 5, "B": 5})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(b=(1.0, 50.0, 100.0)), t))
    writes = codec.frame_writes(g.vet(demands(b=(0.0, 10.0, 190.0)), t + 0.1))
    assert writes == [w(0x41A5, 128)]


def test_mute_is_cleared_again_by_the_first_output_after_a_zero() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    zero = g.stop(t + 0.1)
    assert zero.zero
    assert codec.frame_writes(zero) == codec.zero_writes()
    t = ramp_to(g, {"A": 2}, t + 0.1)
    assert codec.frame_writes(g.vet(demands(), t)) == [w(0x40A5, 130), w(0x4083, 0)]


def test_intensity_is_the_level_times_the_sample_intensity_within_the_ceiling() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    half = g.vet(demands(a=(0.5, 50.0, 100.0)), t)
    assert ready_codec().frame_writes(half)[2] == w(0x40A5, 133)
    capped = ready_codec(ceilings_du={"A": 3})  # defence in depth: the guard holds it too
    assert capped.frame_writes(g.vet(demands(), t))[2] == w(0x40A5, 131)


def test_after_forget_every_register_of_the_frame_is_written_again() -> None:
    g = guard()
    t = ramp_to(g, {"A": 10})
    codec = ready_codec()
    codec.frame_writes(g.vet(demands(), t))
    codec.forget()
    writes = codec.frame_writes(g.vet(demands(), t + 0.1))
    assert writes == [w(0x41A5, 128), w(0x40AE, 20), w(0x40B7, 100), w(0x40A5, 138), w(0x4083, 0)]


class FakeFrame:
    """Looks like a vetted frame, but the guard did not make it."""

    zero = False
    t_s = 0.0
    channels = ()


def test_codec_refuses_frames_not_made_by_the_guard() -> None:
    with pytest.raises(UnvettedFrameError):
        ready_codec().frame_writes(FakeFrame())  # type: ignore[arg-type]


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
    assert p.limits.max_level_du == 127
    assert p.limits.frequency_range_hz == (4.0, 125.0)
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


MODEL_AND_BATTERY = [
    (enc("3c 00 fc 38"), "22 0c 2e"),  # model 0x0C
    (enc("3c 00 fd 39"), "22 01 23"),  # firmware 1.6.0
    (enc("3c 00 fe 3a"), "22 06 28"),
    (enc("3c 00 ff 3b"), "22 00 22"),
    (enc("3c 42 03 81"), "22 50 72"),  # battery 80 %
]
LIMITS = [
    (enc(p), "06")
    for p in (
        "4d 40 83 02 12",  # mute
        "4d 40 a5 80 b2",  # intensity A 128
        "4d 41 a5 80 b3",  # intensity B 128
        "4d 40 ac 00 39",  # selects A static
        "4d 40 b5 00 42",
        "4d 40 be 00 4b",
        "4d 41 ac 00 3a",  # selects B static
        "4d 41 b5 00 43",
        "4d 41 be 00 4c",
    )
]
MODE = [(enc("4d 40 7b 76 7e"), "06"), (enc("5d 40 70 04 12 23"), "06")]
SYNC_AND_KEY = [("00", "07"), ("00", "07"), ("2f 00 2f", "21 ef 10")]
CONNECT = [*SYNC_AND_KEY, *MODEL_AND_BATTERY, *LIMITS, *MODE, *LIMITS]
ZERO = [(enc("4d 40 83 02 12"), "06"), (enc("4d 40 a5 80 b2"), "06"), (enc("4d 41 a5 80 b3"), "06")]
KEY_RESET = [("f7 f8 a9 ba 18", "06")]  # the reference's vector


class Rig:
    def __init__(self, box: Any) -> None:
        self.loop = VirtualTimeLoop(start_s=100.0)
        self.box = box
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
    for r in rigs:
        r.loop.close()


def test_connect_follows_the_documented_order(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox(CONNECT))
    r.connect()
    assert r.box.steps == []
    assert r.driver.codec.key == K
    assert r.driver.firmware == (1, 6, 0)
    assert r.driver.battery_percent == 80
    assert r.events == [
        DeviceNotice(
            "firmware", "ET-312 (model 0x0C), firmware 1.6.0", {"model": 12, "firmware": "1.6.0"}
        ),
        BatteryReport(80),
    ]
    assert r.driver.codec.muted is True


def test_connect_waits_for_the_box_command_before_writing_again(
    make_rig: Callable[[Any], Rig],
) -> None:
    r = make_rig(ScriptBox(CONNECT))
    times: list[float] = []
    feed = r.box.feed

    def timed(data: bytes) -> None:
        times.append(r.loop.time())
        feed(data)

    r.box.feed = timed
    r.connect()
    command_at = len(CONNECT) - len(LIMITS) - 1
    assert times[command_at + 1] - times[command_at] >= 0.018


def test_connect_refuses_a_box_that_is_not_an_et312(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*SYNC_AND_KEY, (enc("3c 00 fc 38"), "22 0d 2f")]))
    with pytest.raises(
        BridgeError, match=r"model 0x0D.*only the ET-312B / MK-312BT \(model 0x0C\)"
    ):
        r.connect()
    r.run(r.driver.close(Guard(r.limits).zero_frame()))  # nothing written to an unknown box
    assert not r.link.is_open


def test_a_bad_reply_checksum_is_a_protocol_error(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*SYNC_AND_KEY, (enc("3c 00 fc 38"), "22 0c 2f")]))
    with pytest.raises(ProtocolError, match="checksum"):
        r.connect()


def test_no_sync_answer_at_all_is_a_clear_timeout(make_rig: Callable[[Any], Rig]) -> None:
    silent = [("00", "")] * E.SYNC_TRIES + [(f"{k:02x} " * 12, "") for k in range(1, 256)]
    r = make_rig(ScriptBox(silent))
    with pytest.raises(DeviceTimeout, match=r"no answer to the sync byte.*19200 baud"):
        r.connect()


def test_key_recovery_finds_a_key_left_by_an_earlier_host(
    make_rig: Callable[[Any], Rig],
) -> None:
    # The box holds key 0x05: a plain 00 arrives as 05, an unknown command (ignored); keys 1..4
    # arrive as 04, 07, 06, 01 (unknown too). Key 5 is answered by every sync byte.
    script = [("00", "")] * E.SYNC_TRIES
    script += [(f"{k:02x} " * 12, "") for k in range(1, 5)]
    script += [("05 " * 12, "07 " * 12), (enc("4d 42 13 00 a2", 0x05), "06")]  # key reset
    r = make_rig(ScriptBox([*script, *CONNECT[2:]]))
    r.connect()
    assert r.box.steps == []
    assert r.driver.codec.key == K


def first_frame(level: int = 10) -> tuple[Guard, VettedFrame, float]:
    g = guard()
    t = ramp_to(g, {"A": level})
    return g, g.vet(demands(), t), t


FIRST_FRAME = [
    (enc("4d 40 ae 14 4f"), "06"),
    (enc("4d 40 b7 64 a8"), "06"),
    (enc("4d 40 a5 8a bc"), "06"),
    (enc("4d 40 83 00 10"), "06"),
]
KNOBS = [(enc("3c 40 64 e0"), "22 ff 21"), (enc("3c 40 65 e1"), "22 80 a2")]


def test_frames_write_each_change_and_wait_for_its_ack(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*CONNECT, *FIRST_FRAME, *KNOBS]))
    r.connect()
    g, frame, t = first_frame()
    r.events.clear()
    r.run(r.driver.send(frame))
    assert r.box.steps == []
    assert r.events == [
        DeviceNotice("knob", "front-panel level knobs: A 255/255, B 128/255", {"A": 255, "B": 128})
    ]
    r.run(r.driver.send(g.vet(demands(), t + 0.1)))  # nothing changed, knobs not due: no bytes


def test_close_writes_zero_then_the_key_reset_then_closes(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*CONNECT, *FIRST_FRAME, *KNOBS, *ZERO, *KEY_RESET]))
    r.connect()
    g, frame, t = first_frame()
    r.run(r.driver.send(frame))
    r.run(r.driver.close(g.stop(t + 0.1)))
    assert r.box.steps == []
    assert not r.link.is_open
    assert r.driver.codec.key == 0


def test_close_without_zero_still_resets_the_key(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*CONNECT, *KEY_RESET]))
    r.connect()
    r.run(r.driver.close())
    assert r.box.steps == []
    assert not r.link.is_open


def test_close_on_a_silent_box_is_bounded(make_rig: Callable[[Any], Rig]) -> None:
    silent = [(packet, "") for packet, _ in [*ZERO, *KEY_RESET]]
    r = make_rig(ScriptBox([*CONNECT, *silent]))
    r.connect()
    start = r.loop.time()
    with pytest.raises(DeviceTimeout):
        r.run(r.driver.close(Guard(r.limits).zero_frame()))
    assert r.loop.time() - start <= E.CLOSE_TIMEOUT_S
    assert not r.link.is_open


def test_a_missing_ack_is_a_timeout_naming_the_register(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*CONNECT, (FIRST_FRAME[0][0], "")]))
    r.connect()
    _, frame, _ = first_frame()
    start = r.loop.time()
    with pytest.raises(DeviceTimeout, match=r"200 ms to a write to \$40AE"):
        r.run(r.driver.send(frame))
    assert r.loop.time() - start == pytest.approx(E.ACK_TIMEOUT_S)


def test_a_nack_is_a_protocol_error(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*CONNECT, (FIRST_FRAME[0][0], "07")]))
    r.connect()
    _, frame, _ = first_frame()
    with pytest.raises(ProtocolError, match=r"refused a write to \$40AE"):
        r.run(r.driver.send(frame))
    assert r.driver.codec.registers == {}  # unknown now: everything is written again


def test_unvetted_frames_are_refused_before_anything_is_written(
    make_rig: Callable[[Any], Rig],
) -> None:
    r = make_rig(ScriptBox(CONNECT))
    r.connect()
    before = len(r.box.written)
    with pytest.raises(UnvettedFrameError):
        r.run(r.driver.send(FakeFrame()))  # type: ignore[arg-type]
    with pytest.raises(UnvettedFrameError):
        r.run(r.driver.close(FakeFrame()))  # type: ignore[arg-type]
    assert len(r.box.written) == before
    assert not r.link.is_open


def test_frames_before_connect_are_refused(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([]))
    r.run(r.link.open())
    _, frame, _ = first_frame()
    with pytest.raises(TransportClosed, match="not connected"):
        r.run(r.driver.send(frame))
    assert r.box.written == []


# --- the driver against the document's sync rules, for every key ---------------------------------
class SyncRulesBox:
    """The box's byte handling as devices.md section 3 states it, and nothing more.

    Every byte is XORed with the key; idle, ``00`` is answered ``07`` and an unknown command is
    ignored; ``2F`` (3 bytes), ``3C`` (4) and ``(3+n)D`` (n+4) packets end in a checksum, a bad
    one answered ``07``. ``accepted`` keeps every packet the box acted on.
    """

    def __init__(self, key: int) -> None:
        self.key = key
        self.memory = {0x00FC: 0x0C, 0x00FD: 1, 0x00FE: 6, 0x4203: 50, 0x4064: 200, 0x4065: 90}
        self.accepted: list[bytes] = []
        self._packet = bytearray()
        self._length = 0
        self._output: Callable[[bytes], None] | None = None

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
            value = self.memory.get(address, 0)
            self._send(bytes([0x22, value, (0x22 + value) & 0xFF]))
            return
        for i, value in enumerate(p[3:-1]):
            self.memory[address + i] = value
        if address == 0x4213:
            self.key = p[3]
        self._send(h("06"))

    def _send(self, data: bytes) -> None:
        if self._output is not None:
            self._output(data)

    def set_output(self, callback: Callable[[bytes], None] | None) -> None:
        self._output = callback

    def disconnect(self) -> None:
        pass


def test_recovery_for_every_key_under_the_documented_rules(
    make_rig: Callable[[Any], Rig],
) -> None:
    for key in range(256):
        box = SyncRulesBox(key)
        r = make_rig(box)
        r.connect()
        assert box.key == K, f"key {key:#04x}"
        head = [] if key == 0 else [h("4d 42 13 00 a2")]
        # the first packets the box acted on are ours: no garbled packet got through
        assert box.accepted[: len(head) + 1] == [*head, h("2f 00 2f")], f"key {key:#04x}"
        assert box.memory[0x4083] == 0x02  # muted
        assert box.memory[0x40A5] == box.memory[0x41A5] == 128
        r.loop.close()


def test_reconnect_after_a_lost_link_tries_the_last_key_first(
    make_rig: Callable[[Any], Rig],
) -> None:
    box = SyncRulesBox(0)
    r = make_rig(box)
    r.connect()
    r.link.drop()  # no key reset: the box keeps our key
    assert box.key == K
    writes = r.link.writes
    start = r.loop.time()
    r.connect()
    assert box.key == K
    # 12 plain syncs, then straight to the old key (not a sweep of 0xBA candidates)
    assert r.link.writes - writes < E.SYNC_TRIES + 40
    assert r.loop.time() - start < 2 * E.SYNC_TRIES * E.SYNC_TRY_S


def test_knobs_every_second_and_battery_every_ten(make_rig: Callable[[Any], Rig]) -> None:
    box = SyncRulesBox(0)
    r = make_rig(box)
    r.connect()
    g, _, t = first_frame()
    r.events.clear()

    async def stream(seconds: float) -> None:
        nonlocal t
        for _ in range(round(seconds / 0.1)):
            t += 0.1
            await r.driver.send(g.vet(demands(), t))
            await asyncio.sleep(0.1)

    r.run(stream(2.0))
    assert r.events == [
        DeviceNotice("knob", "front-panel level knobs: A 200/255, B 90/255", {"A": 200, "B": 90})
    ]
    box.memory[0x4065] = 30  # turned on the box
    box.memory[0x4203] = 49
    r.run(stream(9.0))
    assert r.events[1:] == [
        DeviceNotice("knob", "front-panel level knobs: A 200/255, B 30/255", {"A": 200, "B": 30}),
        BatteryReport(49),
    ]
    assert r.driver.battery_percent == 49
    assert box.memory[0x40A5] == 138
    assert box.memory[0x4083] == 0x00


def test_a_lost_link_fails_the_waiting_request_at_once(make_rig: Callable[[Any], Rig]) -> None:
    r = make_rig(ScriptBox([*CONNECT, (FIRST_FRAME[0][0], "")]))
    r.connect()
    _, frame, _ = first_frame()

    async def send_and_drop() -> None:
        task = asyncio.ensure_future(r.driver.send(frame))
        await asyncio.sleep(0.05)
        r.link.drop()
        with pytest.raises(TransportClosed, match="link lost"):
            await task

    start = r.loop.time()
    r.run(send_and_drop())
    assert r.loop.time() - start < E.ACK_TIMEOUT_S
