"""Sanworks Pulse Pal v2 (USB CDC serial): the byte protocol and its driver.

Facts: ``../shared/reference/devices.md`` section 4a; the mapping of programs onto the box:
``docs/devices/pulsepal.md``. Every host message starts with ``D5``; multi-byte values are
little-endian; times are 50 us cycles (20 kHz); voltages are 16-bit codes over -10..+10 V.

The box generates pulse trains by itself. The host programs one parameter at a time (op 74,
acknowledged with ``01``) and starts trains with a soft trigger (op 77, no reply). With
continuous loop on, a train runs until it is aborted (op 80, no reply), so this device keeps
stimulating when the host goes silent; its profile says so.

One device unit is one millivolt of phase amplitude. A frame's amplitude ``level_du x
intensity`` becomes phase 1 = +V and phase 2 = -V (symmetric biphasic, charge-balanced), its
pulse width both phase durations, its frequency the inter-pulse interval. A zero frame aborts
every train at once and then sets 0 V phases; the next frame with output triggers its channels
again.

The box's own front panel can change any parameter behind the host's back, and the protocol has
no way to read one back (the box answers only ``01`` and the handshake). So every frame writes
again every parameter that shapes what an output delivers (``REASSERTED``: voltages, resting
voltage, phase widths, intervals, bursts, train duration and delay, biphasic, trigger links,
custom train), of every output, whether it changed or not, falls before rises: a panel change
lasts until the next frame at most. Every zero frame writes 0 V phases and 0 V resting voltage
after its abort. A frame goes out in one write and its acknowledgements come back together,
so a frame costs one round trip whatever its size (the USB CDC link is flow-controlled and keeps
the order), and an emergency stop waits for at most that one round trip.

This module never decides a level: it encodes what the guard vetted. The pure functions at
module level never touch a transport; only ``Driver`` does.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from device_profiles.profile import DeviceProfile
from firmware_bridge.driver import DeviceDriver, Identity
from firmware_bridge.errors import (
    DeviceTimeout,
    ProtocolError,
    TransportClosed,
    UnknownDeviceError,
)
from firmware_bridge.events import DeviceNotice
from firmware_bridge.exchange import Exchange, ReplyTimeout
from firmware_bridge.transport import Transport
from safety.guard import VettedChannel, VettedFrame
from safety.limits import SessionLimits

OP_MENU = 0xD5  # 213: the first byte of every host message
OP_HANDSHAKE = 72
OP_PROGRAM_PARAM = 74
OP_SOFT_TRIGGER = 77
OP_FIXED_VOLTAGE = 79
OP_ABORT = 80
OP_DISCONNECT = 81
OP_CONTINUOUS_LOOP = 82
OP_CLIENT_NAME = 89

REPLY_HANDSHAKE = 75  # 'K', then the firmware version as uint32
REPLY_ACK = 1

# Parameter codes of op 74.
IS_BIPHASIC = 1
PHASE1_VOLTAGE = 2
PHASE2_VOLTAGE = 3
PHASE1_DURATION = 4
INTER_PHASE_INTERVAL = 5
PHASE2_DURATION = 6
INTER_PULSE_INTERVAL = 7
BURST_DURATION = 8
INTER_BURST_INTERVAL = 9
PULSE_TRAIN_DURATION = 10
PULSE_TRAIN_DELAY = 11
LINK_TRIGGER_1 = 12
LINK_TRIGGER_2 = 13
CUSTOM_TRAIN_ID = 14
CUSTOM_TRAIN_TARGET = 15
CUSTOM_TRAIN_LOOP = 16
RESTING_VOLTAGE = 17
TRIGGER_MODE = 128

PARAM_NAMES: dict[int, str] = {
    IS_BIPHASIC: "isBiphasic",
    PHASE1_VOLTAGE: "phase1Voltage",
    PHASE2_VOLTAGE: "phase2Voltage",
    PHASE1_DURATION: "phase1Duration",
    INTER_PHASE_INTERVAL: "interPhaseInterval",
    PHASE2_DURATION: "phase2Duration",
    INTER_PULSE_INTERVAL: "interPulseInterval",
    BURST_DURATION: "burstDuration",
    INTER_BURST_INTERVAL: "interBurstInterval",
    PULSE_TRAIN_DURATION: "pulseTrainDuration",
    PULSE_TRAIN_DELAY: "pulseTrainDelay",
    LINK_TRIGGER_1: "linkTriggerChannel1",
    LINK_TRIGGER_2: "linkTriggerChannel2",
    CUSTOM_TRAIN_ID: "customTrainID",
    CUSTOM_TRAIN_TARGET: "customTrainTarget",
    CUSTOM_TRAIN_LOOP: "customTrainLoop",
    RESTING_VOLTAGE: "restingVoltage",
    TRIGGER_MODE: "triggerMode",
}
_UINT8_CODES = frozenset({IS_BIPHASIC, 12, 13, 14, 15, 16, TRIGGER_MODE})
_UINT16_CODES = frozenset({PHASE1_VOLTAGE, PHASE2_VOLTAGE, RESTING_VOLTAGE})
_TIME_CODES = frozenset(range(PHASE1_DURATION, PULSE_TRAIN_DELAY + 1))  # uint32 cycles

CYCLE_HZ = 20_000  # one hardware cycle = 50 us
CYCLE_US = 50
MAX_CYCLES = 72_000_000  # the box's own limit: 3600 s
MV_MAX = 10_000
BITS_MAX = 65_535
ZERO_V_BITS = 32_768

OUTPUTS: dict[str, int] = {"A": 1, "B": 2, "C": 3, "D": 4}
CHANNELS = tuple(OUTPUTS)
CLIENT_NAME = "ACSTIM"  # the firmware reads exactly 6 characters
#: Firmware below this is a Pulse Pal 1, which speaks 8-bit voltages: refused.
MIN_FIRMWARE = 20
#: Firmware whose op 82 layout the reference documents; others follow the nearer one.
KNOWN_FIRMWARE = (21, 22)

#: pulseTrainDuration: the longest the box allows (3600 s); continuous loop restarts it.
TRAIN_DURATION_CYCLES = MAX_CYCLES

HANDSHAKE_TIMEOUT_S = 1.0
ACK_TIMEOUT_S = 0.2
#: close(): each step (zero, disconnect, closing the port) gets at most this long.
CLOSE_STEP_TIMEOUT_S = 1.0
#: [ours] Aborts at the head of a zero frame written after a failure. A message of ours cut
#: short takes the next bytes as its rest: at most 5 (op 74 cut after its code: channel and a
#: 4-byte value), 7 if a box read even the code's place as data (no message of ours is longer
#: than 8 bytes). Either way one of five aborts in a row is left whole and read.
RESYNC_ABORTS = 5

ReplyKind = Literal["none", "ack", "handshake"]


# --- values -------------------------------------------------------------------------------------
def _bits(volts: Fraction) -> int:
    return min(BITS_MAX, max(0, math.ceil((volts + 10) / 20 * BITS_MAX)))


def voltage_bits(volts: float) -> int:
    """A voltage as the box's 16-bit code: ``ceil((V + 10) / 20 * 65535)``, clamped to 0..65535.

    Computed exactly (no float rounding at the ceiling): 0 V -> 32768, -10 V -> 0,
    +10 V -> 65535.
    """
    if not math.isfinite(volts):
        raise ValueError(f"voltage {volts!r} is not a number")
    return _bits(Fraction(volts))


def millivolts_bits(millivolts: int) -> int:
    """A whole number of millivolts as the box's 16-bit code (as ``voltage_bits``)."""
    return _bits(Fraction(millivolts, 1000))


def cycles(seconds: float) -> int:
    """A time in 50 us hardware cycles: ``seconds x 20000``, to the nearest cycle."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"time {seconds!r} s; allowed a finite time >= 0")
    return round(seconds * CYCLE_HZ)


def phase_cycles(pulse_width_us: float) -> int:
    """Phase duration for a pulse width: ``round(pw_us / 50)`` cycles, at least 1."""
    if not math.isfinite(pulse_width_us):
        raise ValueError(f"pulse width {pulse_width_us!r} us is not a number")
    return max(1, round(pulse_width_us / CYCLE_US))


def inter_pulse_cycles(frequency_hz: float, phase: int) -> int:
    """interPulseInterval for a pulse rate: ``round(20000 / f) - 2 x d - 1``, at least 1.

    A pulse is d (phase 1) + 1 (interphase gap) + d (phase 2) cycles, so the period is
    ``round(20000 / f)`` cycles whenever it fits.
    """
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise ValueError(f"frequency {frequency_hz!r} Hz; allowed a finite rate > 0")
    return max(1, round(CYCLE_HZ / frequency_hz) - 2 * phase - 1)


def param_value_size(code: int) -> int:
    """Bytes of an op 74 value: 1 for flags and links, 2 for voltages, 4 for times."""
    if code in _UINT8_CODES:
        return 1
    if code in _UINT16_CODES:
        return 2
    if code in _TIME_CODES:
        return 4
    raise ValueError(f"unknown Pulse Pal parameter code {code}")


def _output(channel: int) -> int:
    if not 1 <= channel <= 4:
        raise ValueError(f"output {channel}; allowed 1..4")
    return channel


def output_number(name: str) -> int:
    """Our channel name (A..D) as the box's output number (1..4)."""
    try:
        return OUTPUTS[name]
    except KeyError:
        raise ValueError(f"channel {name!r}; a Pulse Pal has {', '.join(CHANNELS)}") from None


# --- host messages ------------------------------------------------------------------------------
def handshake() -> bytes:
    return bytes([OP_MENU, OP_HANDSHAKE])


def client_name(name: str = CLIENT_NAME) -> bytes:
    """Op 89: the name the box shows on its screen (printable ASCII)."""
    if not name or not all(32 <= ord(c) < 127 for c in name):
        raise ValueError(f"client name {name!r}: printable ASCII, not empty")
    return bytes([OP_MENU, OP_CLIENT_NAME]) + name.encode("ascii")


def program_param(code: int, channel: int, value: int) -> bytes:
    """Op 74: one parameter of one output (1..4), the value sized by its code."""
    size = param_value_size(code)
    _output(channel)
    high = MAX_CYCLES if code in _TIME_CODES else (1 << (8 * size)) - 1
    if isinstance(value, bool) or not 0 <= value <= high:
        raise ValueError(f"{PARAM_NAMES[code]} = {value!r}; allowed 0..{high}")
    return bytes([OP_MENU, OP_PROGRAM_PARAM, code, channel]) + value.to_bytes(size, "little")


def soft_trigger(mask: int) -> bytes:
    """Op 77: start the trains of the outputs in ``mask`` (output 1..4 = bit 0..3). No reply."""
    if not 0 <= mask <= 0b1111:
        raise ValueError(f"trigger mask {mask}; allowed 0..15")
    return bytes([OP_MENU, OP_SOFT_TRIGGER, mask])


def trigger_mask(names: Iterable[str]) -> int:
    """The soft-trigger bits for channel names (A -> 1, B -> 2, C -> 4, D -> 8)."""
    mask = 0
    for name in names:
        mask |= 1 << (output_number(name) - 1)
    return mask


def abort() -> bytes:
    """Op 80: stop every train at once (outputs to resting voltage). No reply."""
    return bytes([OP_MENU, OP_ABORT])


def disconnect() -> bytes:
    """Op 81: end the session; the box returns to its own menu. No reply."""
    return bytes([OP_MENU, OP_DISCONNECT])


def fixed_voltage(channel: int, bits: int) -> bytes:
    """Op 79: hold an output at a voltage code (not a train). Acknowledged with 01."""
    _output(channel)
    if not 0 <= bits <= BITS_MAX:
        raise ValueError(f"voltage code {bits}; allowed 0..{BITS_MAX}")
    return bytes([OP_MENU, OP_FIXED_VOLTAGE, channel]) + bits.to_bytes(2, "little")


def continuous_loop(channel: int, on: bool, firmware: int) -> bytes:
    """Op 82, laid out per firmware: 21 and older read (state, 0-based output), 22 and newer
    read (output 1..4, state). Both acknowledge with 01 either way, so a wrong layout would
    go unnoticed: the version comes from the handshake."""
    _output(channel)
    state = 1 if on else 0
    if firmware <= 21:
        return bytes([OP_MENU, OP_CONTINUOUS_LOOP, state, channel - 1])
    return bytes([OP_MENU, OP_CONTINUOUS_LOOP, channel, state])


# --- device replies -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Ack:
    """``01``: an op 74 / 79 / 82 was read."""


@dataclass(frozen=True)
class HandshakeReply:
    """``4B`` + uint32: the handshake's answer."""

    firmware_version: int


Reply = Ack | HandshakeReply


class ReplyParser:
    """Splits the device's byte stream, in any chunks, into replies.

    The box sends only ``01`` and ``4B`` + 4 bytes; any other byte is a ``ProtocolError``
    (the parser then starts afresh with the next byte).
    """

    def __init__(self) -> None:
        self._version: bytearray | None = None  # bytes of a handshake reply so far

    @property
    def mid_reply(self) -> bool:
        return self._version is not None

    def feed_byte(self, byte: int) -> Reply | None:
        if self._version is not None:
            self._version.append(byte)
            if len(self._version) < 4:
                return None
            version = int.from_bytes(self._version, "little")
            self._version = None
            return HandshakeReply(version)
        if byte == REPLY_ACK:
            return Ack()
        if byte == REPLY_HANDSHAKE:
            self._version = bytearray()
            return None
        raise ProtocolError(
            f"pulsepal: unexpected byte {byte:02X} from the device; it answers only "
            "01 (acknowledgement) or 4B + a 4-byte firmware version"
        )

    def feed(self, data: bytes) -> list[Reply]:
        replies: list[Reply] = []
        for byte in data:
            reply = self.feed_byte(byte)
            if reply is not None:
                replies.append(reply)
        return replies


# --- the stateful codec -------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One host message and the reply it gets (``what`` names it in error messages)."""

    data: bytes
    reply: ReplyKind
    what: str


HANDSHAKE = Message(handshake(), "handshake", "the handshake (D5 48)")
ABORT = Message(abort(), "none", "abort all trains (D5 50)")
DISCONNECT = Message(disconnect(), "none", "disconnect (D5 51)")


def param_message(code: int, channel: int, value: int) -> Message:
    data = program_param(code, channel, value)  # checks the code, output and value first
    return Message(data, "ack", f"{PARAM_NAMES[code]} of {CHANNELS[channel - 1]}")


def trigger_message(mask: int) -> Message:
    names = ",".join(c for c in CHANNELS if mask & (1 << (OUTPUTS[c] - 1)))
    return Message(soft_trigger(mask), "none", f"soft trigger of {names}")


def amplitude_mv(channel: VettedChannel) -> int:
    """The phase amplitude in mV: ``level_du x intensity``, never above what was vetted."""
    if len(channel.intensity) != 1:
        raise ValueError(
            f"pulsepal frames hold one sample per channel; {channel.name} has "
            f"{len(channel.intensity)} (is the session using the pulsepal profile?)"
        )
    return min(MV_MAX, max(0, math.floor(channel.level_du * channel.intensity[0] + 1e-9)))


def train_parameters(millivolts: int, frequency_hz: float, pulse_width_us: float) -> dict[int, int]:
    """The per-frame parameters (code -> value) for an amplitude and pulse shape."""
    d = phase_cycles(pulse_width_us)
    return {
        PHASE1_VOLTAGE: millivolts_bits(millivolts),
        PHASE2_VOLTAGE: millivolts_bits(-millivolts),
        PHASE1_DURATION: d,
        PHASE2_DURATION: d,
        INTER_PULSE_INTERVAL: inter_pulse_cycles(frequency_hz, d),
    }


def channel_parameters(channel: VettedChannel) -> dict[int, int]:
    """What one vetted channel asks of its output (code -> value)."""
    return train_parameters(
        amplitude_mv(channel), channel.frequency_hz[0], channel.pulse_width_us[0]
    )


#: The set-up that connect gives every output besides the per-frame parameters: one-cycle
#: interphase gap, biphasic, 0 V between pulses, no bursts, no delay, the longest train (the
#: continuous loop restarts it), no trigger links, and no custom train (one left selected would
#: play its own stored voltages instead of ours). It never changes during a session, and every
#: frame writes it again in this order: what can put the most charge on a patient first.
SETUP_PARAMETERS: dict[int, int] = {
    RESTING_VOLTAGE: ZERO_V_BITS,
    CUSTOM_TRAIN_ID: 0,
    IS_BIPHASIC: 1,
    INTER_PHASE_INTERVAL: 1,
    BURST_DURATION: 0,
    PULSE_TRAIN_DURATION: TRAIN_DURATION_CYCLES,
    PULSE_TRAIN_DELAY: 0,
    LINK_TRIGGER_1: 0,
    LINK_TRIGGER_2: 0,
}
#: The parameters a frame sets: amplitude, phase widths and rate.
FRAME_CODES = (
    PHASE1_VOLTAGE,
    PHASE2_VOLTAGE,
    PHASE1_DURATION,
    PHASE2_DURATION,
    INTER_PULSE_INTERVAL,
)
#: Every parameter that shapes what an output delivers: each frame writes all of them, for
#: every output. (Left out: interBurstInterval and customTrainTarget/Loop, which do nothing
#: with no bursts and no custom train; the trigger modes, which do nothing with no links.)
REASSERTED = frozenset(SETUP_PARAMETERS) | frozenset(FRAME_CODES)
#: What a zero frame writes after its abort, for every output: what an idle output holds.
ZERO_CODES = (RESTING_VOLTAGE, PHASE1_VOLTAGE, PHASE2_VOLTAGE)


def _is_fall(code: int, old: int | None, new: int) -> bool:
    """Does this change lower the output (or is the old value unknown)? Falls go first."""
    if old is None:
        return True
    if code in (PHASE1_VOLTAGE, PHASE2_VOLTAGE):
        return abs(new - ZERO_V_BITS) < abs(old - ZERO_V_BITS)
    if code == INTER_PULSE_INTERVAL:
        return new > old  # a longer gap: a lower rate
    return new < old  # a shorter phase


class PulsePalCodec:
    """Sans-IO state of the protocol: the parameters the box holds, and which trains run.

    Every method returns the messages to write, in order, and updates the image as if they
    had all been acknowledged; a driver whose write fails calls ``invalidate``. The image
    says what the host last wrote, not what the box holds now (its front panel may have
    changed anything since): it only orders a frame's messages, never leaves one out.
    """

    def __init__(self, firmware_version: int = KNOWN_FIRMWARE[-1]) -> None:
        self.firmware_version = firmware_version
        #: (output 1..4, parameter code) -> the value last written; missing = unknown
        self.image: dict[tuple[int, int], int] = {}
        #: outputs whose train was triggered and not aborted since
        self.running: set[int] = set()

    def invalidate(self) -> None:
        """Forget what the box holds: the next frame treats every parameter as unknown."""
        self.image.clear()
        self.running.clear()

    def connect_messages(
        self, used: Sequence[str], *, frequency_hz: float, pulse_width_us: float
    ) -> list[Message]:
        """Name, abort, every output set up at 0 V, continuous loop on, used outputs started.

        ``frequency_hz`` and ``pulse_width_us`` are those of the first (silent) frames.
        """
        messages = [Message(client_name(), "none", f"client name (D5 59 {CLIENT_NAME})"), ABORT]
        self.invalidate()
        first = train_parameters(0, frequency_hz, pulse_width_us)
        s = SETUP_PARAMETERS
        for out in OUTPUTS.values():
            setup = {
                IS_BIPHASIC: s[IS_BIPHASIC],
                PHASE1_VOLTAGE: first[PHASE1_VOLTAGE],
                PHASE2_VOLTAGE: first[PHASE2_VOLTAGE],
                RESTING_VOLTAGE: s[RESTING_VOLTAGE],
                PHASE1_DURATION: first[PHASE1_DURATION],
                INTER_PHASE_INTERVAL: s[INTER_PHASE_INTERVAL],
                PHASE2_DURATION: first[PHASE2_DURATION],
                INTER_PULSE_INTERVAL: first[INTER_PULSE_INTERVAL],
                BURST_DURATION: s[BURST_DURATION],
                PULSE_TRAIN_DURATION: s[PULSE_TRAIN_DURATION],
                PULSE_TRAIN_DELAY: s[PULSE_TRAIN_DELAY],
                LINK_TRIGGER_1: s[LINK_TRIGGER_1],
                LINK_TRIGGER_2: s[LINK_TRIGGER_2],
                CUSTOM_TRAIN_ID: s[CUSTOM_TRAIN_ID],
            }
            assert setup.keys() == REASSERTED
            for code, value in setup.items():
                messages.append(param_message(code, out, value))
                self.image[(out, code)] = value
        for out in OUTPUTS.values():
            messages.append(
                Message(
                    continuous_loop(out, True, self.firmware_version),
                    "ack",
                    f"continuous loop on for {CHANNELS[out - 1]}",
                )
            )
        mask = trigger_mask(used)
        if mask:
            messages.append(trigger_message(mask))
            self.running = {out for out in OUTPUTS.values() if mask & (1 << (out - 1))}
        return messages

    def zero_messages(self) -> list[Message]:
        """Abort every train at once (always: the box's own menu can start trains too), then
        0 V resting voltage and 0 V phases on every output (always: its panel can change
        them), so that an idle output holds nothing and a trigger from the box delivers
        nothing."""
        messages = [ABORT]
        for code in ZERO_CODES:
            for out in OUTPUTS.values():
                messages.append(param_message(code, out, ZERO_V_BITS))
                self.image[(out, code)] = ZERO_V_BITS
        self.running.clear()
        return messages

    def encode(self, frame: VettedFrame) -> list[Message]:
        """The messages that make the box deliver ``frame``, whatever its panel did.

        Every parameter in ``REASSERTED`` of every output of the frame is written, changed
        or not. First what brings the box back to (or below) the last frame: voltage falls
        and the voltages that did not change, the fixed set-up, timing falls and the timings
        that did not change; then timing rises, then voltage rises, so no moment between two
        messages delivers more than either frame. Outputs whose amplitude is above zero and
        whose train is not running (after a zero) are triggered last.
        """
        if frame.zero:
            return self.zero_messages()
        volt_falls: list[Message] = []
        setup: list[Message] = []
        time_falls: list[Message] = []
        time_rises: list[Message] = []
        volt_rises: list[Message] = []
        start = 0
        for ch in frame.channels:
            out = output_number(ch.name)
            for code, value in SETUP_PARAMETERS.items():
                setup.append(param_message(code, out, value))
                self.image[(out, code)] = value
            wanted = channel_parameters(ch)
            for code, value in wanted.items():
                old = self.image.get((out, code))
                is_volt = code in (PHASE1_VOLTAGE, PHASE2_VOLTAGE)
                # a value that did not change corrects whatever the panel did: early
                fall = old == value or _is_fall(code, old, value)
                bucket = (
                    (volt_falls if fall else volt_rises)
                    if is_volt
                    else (time_falls if fall else time_rises)
                )
                bucket.append(param_message(code, out, value))
                self.image[(out, code)] = value
            if wanted[PHASE1_VOLTAGE] != ZERO_V_BITS and out not in self.running:
                start |= 1 << (out - 1)
                self.running.add(out)
        messages = volt_falls + setup + time_falls + time_rises + volt_rises
        if start:
            messages.append(trigger_message(start))
        return messages


def frame_bytes(messages: Iterable[Message]) -> bytes:
    """The messages of one frame as the single write that carries them."""
    return b"".join(m.data for m in messages)


# --- the driver ---------------------------------------------------------------------------------
def _check_reply(message: Message, reply: Reply) -> ProtocolError | None:
    """None if ``reply`` is the kind of answer ``message`` gets; else the error."""
    wanted = HandshakeReply if message.reply == "handshake" else Ack
    if isinstance(reply, wanted):
        return None
    got = "an acknowledgement 01" if isinstance(reply, Ack) else "a handshake reply 4B"
    return ProtocolError(
        f"pulsepal: {message.what} got {got}; expected "
        f"{'4B + a firmware version' if wanted is HandshakeReply else '01'}"
    )


class Driver(DeviceDriver):
    """Pulse Pal v2 over any byte-stream transport (serial port, pty, in-process link).

    Connect writes one message at a time, each answered before the next. A frame goes out in
    one write, and the driver waits for all its acknowledgements together (the box reads its
    USB CDC stream in order, and the link's flow control keeps it from overrunning): a frame
    costs one round trip however many parameters it writes again. A zero frame that comes
    while a frame is written waits for at most that round trip; one that is waiting when a
    frame gets the write lock cancels that frame. After any failed exchange the driver is out
    of step with the box until it connects again: output is refused, and a zero frame is
    written but raises, since no acknowledgement could confirm it. Every write, with the
    replies it gets, is one request of ``firmware_bridge.exchange.Exchange``, which keeps
    that state (``in_step``).
    """

    def __init__(self, profile: DeviceProfile, transport: Transport) -> None:
        super().__init__(profile, transport)
        self.codec = PulsePalCodec()
        self.parser = ReplyParser()
        self.firmware_version: int | None = None
        #: Writes and the replies they get. Its ``in_step``: every reply so far came back to
        #: the write that asked for it. After a failed exchange (timeout, bad reply, lost link,
        #: cancelled) the box may be inside a message cut short, and a late or stale ``01``
        #: would count for the next message: no acknowledgement can be trusted until a
        #: handshake (connect) brings the two in step.
        self._requests: Exchange[Message, Reply] = Exchange(
            lambda data: self.transport.write(data), _check_reply
        )
        self._zeros_waiting = 0

    # --- incoming bytes -----------------------------------------------------------------------
    def _received(self, endpoint: str, data: bytes) -> None:
        for byte in data:
            try:
                reply = self.parser.feed_byte(byte)
            except ProtocolError as exc:
                self._fail_waiter(exc)
                continue
            if reply is not None and not self._requests.deliver(reply):
                self.protocol_errors += 1  # e.g. an acknowledgement that came after its timeout

    def _fail_waiter(self, exc: ProtocolError) -> None:
        message = self._requests.waiting_for
        if message is None:
            self.protocol_errors += 1  # garbage while nothing was asked: counted, not fatal
            return
        self._requests.fail(ProtocolError(f"{exc} (waiting for the reply to {message.what})"))

    def _link_lost(self, reason: str) -> None:
        self._requests.fail(TransportClosed(f"pulsepal: link lost ({reason})"))
        super()._link_lost(reason)

    # --- outgoing messages --------------------------------------------------------------------
    async def _put_together(
        self, messages: Sequence[Message], timeout_s: float = ACK_TIMEOUT_S
    ) -> list[Reply]:
        """Write ``messages`` in one write and wait for all their replies, in order, for at
        most ``timeout_s`` from the write (the write lock is held). Any failure puts the
        driver out of step with the box (see ``_requests``)."""
        awaited = [m for m in messages if m.reply != "none"]
        try:
            return await self._requests.request(frame_bytes(messages), awaited, timeout_s)
        except ReplyTimeout as exc:
            raise DeviceTimeout(
                f"pulsepal: no reply within {timeout_s * 1000:.0f} ms to "
                f"{exc.waiting_for.what}; the box stopped answering"
            ) from None

    async def _put(self, message: Message, timeout_s: float = ACK_TIMEOUT_S) -> Reply | None:
        """Write one message and, if it gets a reply, wait for it (the write lock is held)."""
        replies = await self._put_together([message], timeout_s)
        return replies[0] if replies else None

    async def _put_each(self, messages: Iterable[Message]) -> None:
        """One message at a time, each answered before the next (connect)."""
        try:
            for message in messages:
                await self._put(message)
        except BaseException:
            self.codec.invalidate()
            raise

    async def _put_frame(self, messages: Sequence[Message]) -> None:
        """A frame's messages in one write; on any failure the image is no longer trusted."""
        try:
            await self._put_together(messages)
        except BaseException:
            self.codec.invalidate()
            raise

    def _take_link(self) -> None:
        self.parser = ReplyParser()
        self.transport.set_receiver(self._received)
        # a lost link (or close) consumed the handler: a reconnect must report the next loss
        self.transport.set_disconnect_handler(self._link_lost)

    async def _handshake(self) -> int:
        """The handshake (D5 48 -> 4B + version; the write lock is held): the firmware
        version, refused below Pulse Pal 2. Brings the replies in step."""
        try:
            reply = await self._put(HANDSHAKE, HANDSHAKE_TIMEOUT_S)
        except DeviceTimeout:
            raise DeviceTimeout(
                f"pulsepal: no answer to the handshake (D5 48) within "
                f"{HANDSHAKE_TIMEOUT_S:g} s: is a Pulse Pal 2 on this port "
                f"({self._where}), powered, and not held by another "
                "program?"
            ) from None
        assert isinstance(reply, HandshakeReply)  # _put checked the kind
        self._requests.mark_in_step()  # a handshake reply cannot be stale
        version = reply.firmware_version
        if version < MIN_FIRMWARE:
            raise UnknownDeviceError(
                f"pulsepal: the device reports firmware {version}, a Pulse Pal 1. "
                "Pulse Pal 1 is not supported: acustim drives Pulse Pal 2 "
                f"(firmware {MIN_FIRMWARE} or later)"
            )
        self.firmware_version = version
        return version

    async def _identify(self) -> Identity:
        """The handshake alone: ``D5 48`` is the only byte pair written (no client name, no
        parameter, no trigger, no abort or disconnect), and the box answers with its
        firmware version. A Pulse Pal has no battery and reports no model besides that."""
        self._take_link()
        async with self._write_lock:
            version = await self._handshake()
        tested = version in KNOWN_FIRMWARE
        return Identity(
            device=self.profile.id,
            model="Pulse Pal 2",
            firmware=str(version),
            details=() if tested else (("tested", "no"),),
        )

    async def connect(self, limits: SessionLimits) -> None:
        if not self.transport.is_open:
            await self.transport.open()
        self._take_link()
        async with self._write_lock:
            version = await self._handshake()
            known = version in KNOWN_FIRMWARE
            layout = 21 if version <= 21 else 22
            self._emit(
                DeviceNotice(
                    "firmware",
                    f"Pulse Pal 2, firmware {version}"
                    + ("" if known else f" (not tested; encoded as firmware {layout})"),
                    {"model": "Pulse Pal 2", "version": version, "tested": known},
                )
            )
            self.codec = PulsePalCodec(version)
            device = limits.device
            messages = self.codec.connect_messages(
                limits.channel_names,
                frequency_hz=device.frequency_range_hz[0],
                pulse_width_us=device.pulse_width_range_us[0],
            )
            await self._put_each(messages)

    async def send(self, frame: VettedFrame) -> None:
        """Write one vetted frame; a zero frame also cancels a frame not yet written.

        ``DeviceDriver.send`` refuses anything the guard did not make, before the write lock
        and before any byte; only a frame's ``zero`` is looked at here."""
        if not (isinstance(frame, VettedFrame) and frame.zero):
            await super().send(frame)
            return
        self._zeros_waiting += 1
        try:
            await super().send(frame)
        finally:
            self._zeros_waiting -= 1

    async def _write_frame(self, frame: VettedFrame) -> None:
        if not self._requests.in_step:
            await self._write_out_of_step(frame)
        elif frame.zero:
            await self._put_frame(self.codec.zero_messages())
        elif self._zeros_waiting:
            # a zero frame waits for the lock: leave this frame out, so the zero goes now
            self.codec.invalidate()
        else:
            await self._put_frame(self.codec.encode(frame))

    async def _write_out_of_step(self, frame: VettedFrame) -> None:
        """After a failed exchange: a zero frame is written as best it can be, and never
        confirmed; output is refused. Either way this raises."""
        self.codec.invalidate()
        if not frame.zero:
            raise ProtocolError(
                "pulsepal: output refused: the box's replies are out of step since an earlier "
                "failure, so no write could be confirmed (reconnect first)"
            )
        # The box may be inside a message cut short, which would take the first bytes of this
        # write as its own: see RESYNC_ABORTS. The 0 V writes that follow undo whatever value
        # the cut message took from the aborts.
        messages = [ABORT] * (RESYNC_ABORTS - 1) + self.codec.zero_messages()
        await self._requests.write(frame_bytes(messages))
        raise ProtocolError(
            "pulsepal: zero output was written but cannot be confirmed: the box's replies are "
            "out of step since an earlier failure"
        )

    async def close(self, zero: VettedFrame | None = None) -> None:
        """Write ``zero``, then disconnect (op 81), then close the port; each step bounded,
        each tried even when the one before failed. The first failure is raised at the end."""
        failure: BaseException | None = None
        try:
            if zero is not None and self.transport.is_open:
                try:
                    async with asyncio.timeout(CLOSE_STEP_TIMEOUT_S):
                        await self.send(zero)
                except Exception as exc:
                    failure = exc
            if self.transport.is_open:
                try:
                    async with asyncio.timeout(CLOSE_STEP_TIMEOUT_S), self._write_lock:
                        await self._put(DISCONNECT)
                except Exception as exc:
                    failure = failure or exc
        finally:
            self.transport.set_disconnect_handler(None)
            try:
                async with asyncio.timeout(CLOSE_STEP_TIMEOUT_S):
                    await self.transport.close()
            except TimeoutError:
                failure = failure or DeviceTimeout(
                    f"pulsepal: closing the port took over {CLOSE_STEP_TIMEOUT_S:g} s"
                )
            finally:
                self.transport.set_receiver(None)
        if isinstance(failure, TimeoutError):
            raise DeviceTimeout(
                f"pulsepal: closing took over {CLOSE_STEP_TIMEOUT_S:g} s for one step "
                "(zero output or disconnect)"
            ) from None
        if failure is not None:
            raise failure
