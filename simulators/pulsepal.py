"""Firmware emulator of the Sanworks Pulse Pal v2 pulse-train generator, USB CDC serial.

Written only from ``../shared/reference/devices.md`` section 4a and ``docs/devices/pulsepal.md``
("What the box delivers") so that it can judge the host's codec independently: host bytes in
(any split), reply bytes out, and a ``DeliveryRecord`` of what the four outputs delivered.

It must never import the host side (``firmware_bridge``, ``safety``, ``acustim``, ``gui``),
never read time except through the ``Clock`` it was given, never sleep, and never raise on bad
bytes from the host: bad bytes are skipped and recorded as events, as the device would.

Protocol rules emulated (from the documents):

* Every host message starts with 213 (``0xD5``); any other byte is ignored until the next
  ``0xD5``. Multi-byte values are little-endian.
* Outputs 1..4 are channels ``"A"``..``"D"``. Time values are 50 us cycles (20 kHz), voltages
  16-bit: ``bits = ceil((V + 10) / 20 * 65535)`` clamped to 0..65535, so 0 V is 32768.

  ====  ===================  ===========================================  ======================
  op    name                 payload                                      reply
  ====  ===================  ===========================================  ======================
  72    handshake            --                                           ``4B`` + uint32 version
  73    program all          32 x uint32 times, 12 x uint16 voltages,     ``01``
                             16 x uint8 params, 8 x uint8 trigger links,
                             2 x uint8 trigger modes (178 bytes)
  74    program one          code, channel, value sized by the code       ``01``
  75/76 custom train 1/2     uint32 n, n x uint32 onsets, n x uint16 V    ``01``
  77    soft trigger         uint8 mask, outputs 1..4 = bits 1,2,4,8      none
  78    OLED message         text                                         none
  79    fixed voltage        channel 1..4, uint16 volts                   ``01``
  80    abort all trains     --                                           none
  81    disconnect           --                                           none
  82    continuous loop      v21: state, channel 0..3;                    ``01``
                             v22: channel 1..4, state
  89    client name          text                                         none
  ====  ===================  ===========================================  ======================

* Parameter codes (op 74 and ``parameters``): 1 isBiphasic, 2 phase1Voltage, 3 phase2Voltage,
  4 phase1Duration, 5 interPhaseInterval, 6 phase2Duration, 7 interPulseInterval,
  8 burstDuration, 9 interBurstInterval, 10 pulseTrainDuration, 11 pulseTrainDelay, 12/13 link
  to trigger 1/2, 14 customTrainID, 15 customTrainTarget, 16 customTrainLoop, 17 restingVoltage,
  128 triggerMode (its "channel" is trigger input 1..2). Values are uint8 for flags, links,
  custom-train settings and trigger modes, uint16 for voltages (2, 3, 17), uint32 cycles for
  times (4..11).
* Op 73 reads its values grouped by parameter on firmware 21 (every channel's value of one
  parameter, then the next parameter) and grouped by channel on firmware 22; it answers ``01``
  either way, so a host using the wrong grouping programs wrong values without an error.
* Defaults: +5 V / -5 V phases, 1 ms phases, 10 ms inter-pulse interval, 1 s train.
* A train starts ``pulseTrainDelay`` after its trigger and stops by itself after
  ``pulseTrainDuration``, unless the output's continuous loop is on: then it runs until aborted.
  No host keep-alive: trains run on when the host goes silent or away.

Where the documents are silent, this emulator **[assumes]**:

* Messages have fixed, counted lengths; a ``0xD5`` inside a message is data (213 is a valid
  value byte, e.g. a duration of 213 cycles), so the emulator cannot tell a cut-short message.
  A partial message waits for its remaining bytes however long that takes, and a message cut
  short by the next one takes that message's bytes as its own payload (as a blocking serial
  read would); parsing then skips to the next ``0xD5``. An op byte of ``0xD5`` is an unknown op.
* Texts (op 78 OLED message, op 89 client name) have no length: a text is the run of printable
  ASCII bytes (0x20..0x7E) after the op, and ends at the first other byte, normally the
  ``0xD5`` of the next message, which is then parsed as usual. The text is stored as it
  arrives (``client_name`` shows a partly received name), so splits change nothing.
* Op 73 groups each block (times, voltages, params, links) on its own; within a block the
  codes run in ascending order: times 4..11, voltages 2, 3, 17, params 1, 14, 15, 16, links
  12, 13; then trigger modes for inputs 1 and 2.
* Op 74 with an unknown code: the code is consumed, nothing else (its value size is unknown),
  no reply, event ``unknown_parameter``; the rest is skipped to the next ``0xD5``. Op 74, 79 or
  82 naming a channel outside its range: the whole message is consumed, nothing changes, no
  reply (so a host's ack timeout shows the mistake), event ``bad_channel``. An unknown op:
  event ``unknown_op``, skipped to the next ``0xD5``.
* Values are stored as sent, without the front panel's 1..72,000,000-cycle limit. For the
  record a pulse period is at least one 50 us cycle. A flag byte other than 0 means "on".
* Custom trains hold at most ``max_custom_pulses`` pulses (default 10,000); a longer one is
  refused after its count (no reply, event ``custom_train_rejected``) and the rest skipped.
* Timing: a parameter change (op 73, 74, front panel) takes effect at the instant it arrives,
  also on a running train: a shorter duration, or a continuous loop switched off, ends a train
  that has run past its new end at once. The delay of a train that has already started no
  longer matters (its start is latched). Bursts (``burstDuration`` > 0) alternate
  ``burstDuration`` on and ``interBurstInterval`` off from the train's start.
* A soft trigger (or ``trigger_input``) on an output whose train runs or waits restarts it from
  that instant. Bits 4..7 of the mask are ignored.
* Op 79 sets the output to a fixed voltage at once and stops its train; the level holds until
  the next trigger of that output, an abort (op 80 returns every output to its resting
  voltage) or a power cycle. Op 80 keeps the continuous-loop settings.
* Op 81 (host says goodbye) clears the client name; parameters and trains are kept.
* ``disconnect`` (the port went away without op 81): a partial message is dropped and the
  client name cleared; trains, parameters and the output callback are kept.
* ``power_cycle``: every parameter, trigger mode, continuous loop, fixed voltage, custom train,
  text and partial message back to its default; trains stopped. The ``stop_answering`` fault
  is a test switch and survives it.
* Defaults not in the documents: biphasic, interPhaseInterval 1 ms, no bursts, no delay, no
  trigger links, no custom train, resting voltage 0 V, trigger modes 0 (normal).
* Hardware trigger inputs are reduced to ``trigger_input``: mode 1 toggles (a running linked
  output stops, a stopped one starts), every other mode starts or restarts linked outputs.
* A custom train is recorded coarsely (the record has no per-pulse voltage): strength = the
  largest ``|voltage|`` of its pulses; frequency = its mean onset rate for target 0 (pulses) or
  the parametric pulse rate for target 1 (bursts); without ``customTrainLoop`` it ends after
  its last pulse (target 0: last onset + one pulse; target 1: last onset + one burst) or after
  ``pulseTrainDuration``, whichever comes first. An empty custom train delivers nothing.

Recording ("What the box delivers"): every channel is covered continuously from construction
on, with a new interval at every change, at its exact time. While a train runs:
``strength_du`` = ``|phase-1 voltage|`` in mV, ``intensity_pct`` = 100, ``frequency_hz`` =
``20000 / (d1 + interPhase + d2 + interPulse)`` (biphasic) or ``20000 / (d1 + interPulse)``
(monophasic), ``pulse_width_us`` = ``d1 * 50``; a burst gap has intensity 0. While no train
runs: intensity 0, frequency 0, ``strength_du`` = ``|phase-1 voltage|`` (what a trigger would
deliver), ``pulse_width_us`` None. **[ours]** A non-zero DC level held by an idle output (a
fixed voltage, or a resting voltage other than 0 V) is recorded as ``strength_du`` = ``|V|`` mV,
``frequency_hz`` 0, ``intensity_pct`` 100, ``pulse_width_us`` None, so that the record shows it
as output. The resting level between pulses of a running train is not recorded.

Not thread-safe: call it from one thread (the hosting layer's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from simulators import ContractHook
from simulators._common import hex_bytes
from simulators.clock import Clock
from simulators.output_stage import CALIBRATION_LOAD_OHM, MeterKind, OutputStage, meter_reading
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "CHANNELS",
    "CYCLES_PER_S",
    "DEFAULT_FIRMWARE_VERSION",
    "DEFAULT_PARAMETERS",
    "MESSAGE_START",
    "OP_ABORT",
    "OP_CLIENT_NAME",
    "OP_CONTINUOUS_LOOP",
    "OP_CUSTOM_TRAIN_1",
    "OP_CUSTOM_TRAIN_2",
    "OP_DISCONNECT",
    "OP_FIXED_VOLTAGE",
    "OP_HANDSHAKE",
    "OP_OLED_TEXT",
    "OP_PROGRAM_ALL",
    "OP_PROGRAM_ONE",
    "OP_SOFT_TRIGGER",
    "PARAMETER_CODES",
    "PARAMETER_NAMES",
    "PARAM_TRIGGER_MODE",
    "PROGRAM_ALL_PAYLOAD_SIZE",
    "PulsePalSimulator",
    "bits_to_volts",
    "contract",
    "value_size",
    "volts_to_bits",
]

MESSAGE_START: Final = 0xD5
CYCLES_PER_S: Final = 20_000
CHANNELS: Final = ("A", "B", "C", "D")
DEFAULT_FIRMWARE_VERSION: Final = 22

OP_HANDSHAKE: Final = 72
OP_PROGRAM_ALL: Final = 73
OP_PROGRAM_ONE: Final = 74
OP_CUSTOM_TRAIN_1: Final = 75
OP_CUSTOM_TRAIN_2: Final = 76
OP_SOFT_TRIGGER: Final = 77
OP_OLED_TEXT: Final = 78
OP_FIXED_VOLTAGE: Final = 79
OP_ABORT: Final = 80
OP_DISCONNECT: Final = 81
OP_CONTINUOUS_LOOP: Final = 82
OP_CLIENT_NAME: Final = 89

_HANDSHAKE_REPLY: Final = 75
_ACK: Final = b"\x01"

PARAMETER_NAMES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "isBiphasic",
        2: "phase1Voltage",
        3: "phase2Voltage",
        4: "phase1Duration",
        5: "interPhaseInterval",
        6: "phase2Duration",
        7: "interPulseInterval",
        8: "burstDuration",
        9: "interBurstInterval",
        10: "pulseTrainDuration",
        11: "pulseTrainDelay",
        12: "linkTriggerChannel1",
        13: "linkTriggerChannel2",
        14: "customTrainID",
        15: "customTrainTarget",
        16: "customTrainLoop",
        17: "restingVoltage",
        128: "triggerMode",
    }
)
PARAM_TRIGGER_MODE: Final = 128
PARAMETER_CODES: Final = tuple(range(1, 18))
"""The per-output parameter codes (128, the trigger mode, belongs to a trigger input)."""

_IS_BIPHASIC: Final = 1
_PHASE1_VOLTAGE: Final = 2
_PHASE2_VOLTAGE: Final = 3
_PHASE1_DURATION: Final = 4
_INTER_PHASE: Final = 5
_PHASE2_DURATION: Final = 6
_INTER_PULSE: Final = 7
_BURST_DURATION: Final = 8
_INTER_BURST: Final = 9
_TRAIN_DURATION: Final = 10
_TRAIN_DELAY: Final = 11
_LINK_TRIGGER_1: Final = 12
_LINK_TRIGGER_2: Final = 13
_CUSTOM_TRAIN_ID: Final = 14
_CUSTOM_TRAIN_TARGET: Final = 15
_CUSTOM_TRAIN_LOOP: Final = 16
_RESTING_VOLTAGE: Final = 17

# Op 73's blocks, in payload order; within a block the codes in this order.
_TIME_CODES: Final = (4, 5, 6, 7, 8, 9, 10, 11)
_VOLTAGE_CODES: Final = (2, 3, 17)
_BYTE_CODES: Final = (1, 14, 15, 16)
_LINK_CODES: Final = (12, 13)
_TRIGGER_INPUTS: Final = 2
_PROGRAM_ALL_BLOCKS: Final = (
    (_TIME_CODES, 4),
    (_VOLTAGE_CODES, 2),
    (_BYTE_CODES, 1),
    (_LINK_CODES, 1),
)
PROGRAM_ALL_PAYLOAD_SIZE: Final = (
    sum(len(codes) * len(CHANNELS) * size for codes, size in _PROGRAM_ALL_BLOCKS) + _TRIGGER_INPUTS
)

_VALUE_SIZES: Final[Mapping[int, int]] = MappingProxyType(
    {
        **dict.fromkeys(_TIME_CODES, 4),
        **dict.fromkeys(_VOLTAGE_CODES, 2),
        **dict.fromkeys(_BYTE_CODES, 1),
        **dict.fromkeys(_LINK_CODES, 1),
        PARAM_TRIGGER_MODE: 1,
    }
)

_TOGGLE_TRIGGER_MODE: Final = 1
_PRINTABLE_MIN: Final = 0x20
_PRINTABLE_MAX: Final = 0x7E
_VOLTAGE_BITS_MAX: Final = 0xFFFF
_FULL_SCALE_V: Final = 10.0
_US_PER_CYCLE: Final = 1_000_000 // CYCLES_PER_S

OutputCallback = Callable[[bytes], None]


def volts_to_bits(volts: float) -> int:
    """Encode a voltage (+-10 V) as the 16-bit DAC value: ``ceil((V + 10) / 20 * 65535)``."""
    if not math.isfinite(volts):
        raise ValueError(f"volts must be finite, got {volts!r}")
    bits = math.ceil((volts + _FULL_SCALE_V) / (2 * _FULL_SCALE_V) * _VOLTAGE_BITS_MAX)
    return max(0, min(bits, _VOLTAGE_BITS_MAX))


def bits_to_volts(bits: int) -> float:
    """Decode a 16-bit DAC value back to volts (-10 V at 0, +10 V at 65535)."""
    if not 0 <= bits <= _VOLTAGE_BITS_MAX:
        raise ValueError(f"voltage bits must be within 0..65535, got {bits}")
    return bits / _VOLTAGE_BITS_MAX * (2 * _FULL_SCALE_V) - _FULL_SCALE_V


def _bits_to_mv(bits: int) -> int:
    return round(abs(bits_to_volts(bits)) * 1000.0)


def value_size(code: int) -> int | None:
    """Bytes of an op 74 value for parameter ``code``; ``None`` for an unknown code."""
    return _VALUE_SIZES.get(code)


DEFAULT_PARAMETERS: Final[Mapping[int, int]] = MappingProxyType(
    {
        _IS_BIPHASIC: 1,
        _PHASE1_VOLTAGE: volts_to_bits(5.0),
        _PHASE2_VOLTAGE: volts_to_bits(-5.0),
        _PHASE1_DURATION: 20,
        _INTER_PHASE: 20,
        _PHASE2_DURATION: 20,
        _INTER_PULSE: 200,
        _BURST_DURATION: 0,
        _INTER_BURST: 0,
        _TRAIN_DURATION: CYCLES_PER_S,
        _TRAIN_DELAY: 0,
        _LINK_TRIGGER_1: 0,
        _LINK_TRIGGER_2: 0,
        _CUSTOM_TRAIN_ID: 0,
        _CUSTOM_TRAIN_TARGET: 0,
        _CUSTOM_TRAIN_LOOP: 0,
        _RESTING_VOLTAGE: volts_to_bits(0.0),
    }
)


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _cycles_to_s(cycles: int) -> float:
    return cycles / CYCLES_PER_S


def _check_channel(channel: str) -> int:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    return CHANNELS.index(channel)


@dataclass(frozen=True)
class _Output:
    """What an output delivers over a stretch of time (one record interval's values)."""

    strength_du: int
    frequency_hz: float
    intensity_pct: float
    pulse_width_us: float | None


@dataclass
class _Train:
    trigger_s: float
    started_s: float | None = None
    """Latched when the delay has passed; a later delay change no longer moves it."""


#: The output stage of a pulsepal unit (``simulators.output_stage``, all **[ours]**):
#: voltage-regulated (+-10 V outputs; 1 mV -> 0.002 mA into 500 ohm, a DAC gain error of +-3 %).
OUTPUT_STAGE_NOMINAL_MA_PER_DU: Final = 0.002
OUTPUT_STAGE_SPREAD: Final = 0.03


class PulsePalSimulator:
    """A Pulse Pal 2: host bytes in (any split), reply bytes and a record of four outputs out."""

    def __init__(
        self,
        clock: Clock,
        *,
        unit: int = 0,
        firmware_version: int = DEFAULT_FIRMWARE_VERSION,
        max_custom_pulses: int = 10_000,
    ) -> None:
        """Firmware 21 and 22 are the two v2 firmwares the reference describes.

        Another version is reported by the handshake as given (below 20 means a Pulse Pal 1,
        for testing that a host refuses it) but spoken as 21 (versions up to 21) or 22 (later):
        the Pulse Pal 1 protocol (8-bit voltages) is not emulated.
        """
        if isinstance(firmware_version, bool) or not isinstance(firmware_version, int):
            raise TypeError(f"firmware_version must be an int, got {firmware_version!r}")
        if not 0 <= firmware_version <= 0xFFFF_FFFF:
            raise ValueError(f"firmware_version must fit a uint32, got {firmware_version}")
        if max_custom_pulses < 0:
            raise ValueError(f"max_custom_pulses must be >= 0, got {max_custom_pulses}")
        self.name: str = "Pulse Pal 2"
        self._clock = clock
        #: this unit's output stage: mA into a load (``meter``); ``unit`` picks the unit
        self.output_stage = OutputStage.for_unit(
            "pulsepal",
            unit,
            CHANNELS,
            nominal_ma_per_du=OUTPUT_STAGE_NOMINAL_MA_PER_DU,
            spread=OUTPUT_STAGE_SPREAD,
            channel_spread=0.01,
            regulation="voltage",
            compliance_v=None,
            fixed_pulse_width_us=None,
        )
        self._firmware_version = firmware_version
        self._groups_by_channel = firmware_version >= 22
        self._max_custom_pulses = max_custom_pulses
        self._output: OutputCallback | None = None
        self._answering = True
        self._record = DeliveryRecord()
        self._played_until_s = clock.now_s()
        self._record.observe_until(self._played_until_s)
        self._last_output: list[_Output | None] = [None] * len(CHANNELS)
        self._rx = bytearray()
        self._parsing = False
        self._text_op: int | None = None
        self._reset_device_state()

    def _reset_device_state(self) -> None:
        self._params: list[dict[int, int]] = [dict(DEFAULT_PARAMETERS) for _ in CHANNELS]
        self._trigger_modes = [0] * _TRIGGER_INPUTS
        self._continuous = [False] * len(CHANNELS)
        self._fixed_bits: list[int | None] = [None] * len(CHANNELS)
        self._trains: list[_Train | None] = [None] * len(CHANNELS)
        self._custom_trains: dict[int, tuple[tuple[int, int], ...]] = {1: (), 2: ()}
        self._client_name = ""
        self._oled_text = ""
        self._rx.clear()
        self._text_op = None

    # -- time -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Simulator time: how far the device has been played out."""
        return self._played_until_s

    def advance_to(self, t_s: float) -> None:
        """Play the outputs out up to ``t_s``; a time already played is a no-op."""
        if not math.isfinite(t_s):
            raise ValueError(f"advance_to needs a finite time, got {t_s!r}")
        while self._played_until_s < t_s:
            start_s = self._played_until_s
            outputs: list[_Output] = []
            step_end_s = t_s
            for index in range(len(CHANNELS)):
                output, change_s = self._output_at(index, start_s)
                outputs.append(output)
                step_end_s = min(step_end_s, change_s)
            for index, output in enumerate(outputs):
                self._emit(index, output, start_s, step_end_s)
            self._played_until_s = step_end_s
        self._record.observe_until(self._played_until_s)

    def _sync(self) -> float:
        self.advance_to(max(self._clock.now_s(), self._played_until_s))
        return self._played_until_s

    def _output_at(self, index: int, t_s: float) -> tuple[_Output, float]:
        """What output ``index`` delivers from ``t_s`` on, and when that may next change.

        Moves the train on: latches its start once the delay has passed and ends it once its
        end has come, so the change time returned is always later than ``t_s``.
        """
        train = self._trains[index]
        if train is not None:
            params = self._params[index]
            if train.started_s is None:
                start_s = train.trigger_s + _cycles_to_s(params[_TRAIN_DELAY])
                if t_s < start_s:
                    return self._idle_output(index), start_s
                # Normally t_s == start_s; after a shortened delay the start lies behind us.
                train.started_s = start_s
                self._event(t_s, "train_start", f"{CHANNELS[index]} train starts")
            end_s = self._train_end_s(index, train.started_s)
            if end_s is None or t_s < end_s:
                output, change_s = self._running_output(index, train.started_s, t_s)
                return output, change_s if end_s is None else min(change_s, end_s)
            self._trains[index] = None
            self._event(t_s, "train_end", f"{CHANNELS[index]} train ends")
        return self._idle_output(index), math.inf

    def _train_end_s(self, index: int, started_s: float) -> float | None:
        if self._continuous[index]:
            return None
        params = self._params[index]
        end_s = started_s + _cycles_to_s(params[_TRAIN_DURATION])
        custom = self._custom_train_of(index)
        if custom is not None and not params[_CUSTOM_TRAIN_LOOP]:
            end_s = min(end_s, started_s + _cycles_to_s(self._custom_span_cycles(index, custom)))
        return end_s

    def _custom_train_of(self, index: int) -> tuple[tuple[int, int], ...] | None:
        train_id = self._params[index][_CUSTOM_TRAIN_ID]
        return self._custom_trains.get(train_id)

    def _pulse_cycles(self, index: int) -> int:
        params = self._params[index]
        if params[_IS_BIPHASIC]:
            return params[_PHASE1_DURATION] + params[_INTER_PHASE] + params[_PHASE2_DURATION]
        return params[_PHASE1_DURATION]

    def _custom_span_cycles(self, index: int, custom: tuple[tuple[int, int], ...]) -> int:
        if not custom:
            return 0
        last_onset = max(onset for onset, _bits in custom)
        if self._params[index][_CUSTOM_TRAIN_TARGET]:
            return last_onset + self._params[index][_BURST_DURATION]
        return last_onset + self._pulse_cycles(index)

    def _parametric_frequency_hz(self, index: int) -> float:
        period_cycles = self._pulse_cycles(index) + self._params[index][_INTER_PULSE]
        return CYCLES_PER_S / max(1, period_cycles)

    def _pulse_width_us(self, index: int) -> float:
        return float(self._params[index][_PHASE1_DURATION] * _US_PER_CYCLE)

    def _running_output(self, index: int, started_s: float, t_s: float) -> tuple[_Output, float]:
        params = self._params[index]
        custom = self._custom_train_of(index)
        if custom is not None:
            return self._custom_output(index, custom), math.inf
        pulsing = _Output(
            strength_du=_bits_to_mv(params[_PHASE1_VOLTAGE]),
            frequency_hz=self._parametric_frequency_hz(index),
            intensity_pct=100.0,
            pulse_width_us=self._pulse_width_us(index),
        )
        burst_cycles = params[_BURST_DURATION]
        gap_cycles = params[_INTER_BURST]
        if burst_cycles == 0 or gap_cycles == 0:
            return pulsing, math.inf
        period_cycles = burst_cycles + gap_cycles
        cycle_index = math.floor((t_s - started_s) * CYCLES_PER_S / period_cycles)
        # Float rounding may put t_s on the far side of an edge: walk to the first edge > t_s.
        while True:
            burst_start_s = started_s + _cycles_to_s(cycle_index * period_cycles)
            burst_end_s = started_s + _cycles_to_s(cycle_index * period_cycles + burst_cycles)
            next_start_s = started_s + _cycles_to_s((cycle_index + 1) * period_cycles)
            if t_s < burst_start_s:
                cycle_index -= 1
            elif t_s < burst_end_s:
                return pulsing, burst_end_s
            elif t_s < next_start_s:
                gap = _Output(
                    pulsing.strength_du, pulsing.frequency_hz, 0.0, pulsing.pulse_width_us
                )
                return gap, next_start_s
            else:
                cycle_index += 1

    def _custom_output(self, index: int, custom: tuple[tuple[int, int], ...]) -> _Output:
        if not custom:
            return _Output(0, 0.0, 0.0, None)
        strength_du = max(_bits_to_mv(bits) for _onset, bits in custom)
        frequency_hz = self._parametric_frequency_hz(index)
        if not self._params[index][_CUSTOM_TRAIN_TARGET]:
            onsets = [onset for onset, _bits in custom]
            span_cycles = max(onsets) - min(onsets)
            if span_cycles > 0:
                frequency_hz = (len(onsets) - 1) * CYCLES_PER_S / span_cycles
        return _Output(strength_du, frequency_hz, 100.0, self._pulse_width_us(index))

    def _idle_output(self, index: int) -> _Output:
        params = self._params[index]
        fixed_bits = self._fixed_bits[index]
        level_bits = params[_RESTING_VOLTAGE] if fixed_bits is None else fixed_bits
        level_mv = _bits_to_mv(level_bits)
        if level_mv != 0:
            return _Output(level_mv, 0.0, 100.0, None)
        return _Output(_bits_to_mv(params[_PHASE1_VOLTAGE]), 0.0, 0.0, None)

    def _emit(self, index: int, output: _Output, start_s: float, end_s: float) -> None:
        if end_s <= start_s:
            return
        channel = CHANNELS[index]
        if self._last_output[index] == output:
            self._record.extend_last(channel, end_s)
            return
        self._record.add(
            DeliveredInterval(
                channel=channel,
                start_s=start_s,
                end_s=end_s,
                strength_du=output.strength_du,
                frequency_hz=output.frequency_hz,
                intensity_pct=output.intensity_pct,
                pulse_width_us=output.pulse_width_us,
            )
        )
        self._last_output[index] = output

    # -- the byte stream ------------------------------------------------------------------

    def set_output(self, callback: OutputCallback | None) -> None:
        """Where reply bytes go (called synchronously from ``feed``); ``None`` drops them."""
        self._output = callback

    def feed(self, data: bytes) -> None:
        """Bytes from the host, in any split; bad bytes are skipped and recorded, never raised.

        Only a ``data`` that is not bytes-like at all (a host programming error) raises
        ``TypeError``.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"feed needs bytes, got {type(data).__name__}")
        self._sync()
        self._rx.extend(data)
        if self._parsing:
            # Fed again from inside a reply callback: the running loop below picks it up.
            return
        self._parsing = True
        try:
            self._parse()
        finally:
            self._parsing = False

    def _reply(self, data: bytes) -> None:
        if self._answering and self._output is not None:
            self._output(data)

    def _parse(self) -> None:
        rx = self._rx
        while True:
            if self._text_op is not None:
                length = 0
                while length < len(rx) and _PRINTABLE_MIN <= rx[length] <= _PRINTABLE_MAX:
                    length += 1
                if length:
                    self._append_text(rx[:length].decode("ascii"))
                    del rx[:length]
                if not rx:
                    return
                self._end_text()
                continue
            if not rx:
                return
            if rx[0] != MESSAGE_START:
                found = rx.find(MESSAGE_START)
                skipped = len(rx) if found < 0 else found
                self._event(
                    self.now_s, "bytes_ignored", f"not after 0xD5: {hex_bytes(rx[:skipped])}"
                )
                del rx[:skipped]
                continue
            message_size = self._message_length()
            if message_size is None or len(rx) < message_size:
                return
            message = bytes(rx[:message_size])
            del rx[:message_size]
            self._execute(message)

    def _message_length(self) -> int | None:
        """Bytes of the message at the head of the buffer; ``None`` while that is not known."""
        rx = self._rx
        if len(rx) < 2:
            return None
        op = rx[1]
        if op == OP_PROGRAM_ALL:
            return 2 + PROGRAM_ALL_PAYLOAD_SIZE
        if op == OP_PROGRAM_ONE:
            if len(rx) < 3:
                return None
            size = value_size(rx[2])
            return 3 if size is None else 4 + size
        if op in (OP_CUSTOM_TRAIN_1, OP_CUSTOM_TRAIN_2):
            if len(rx) < 6:
                return None
            count = int.from_bytes(rx[2:6], "little")
            return 6 if count > self._max_custom_pulses else 6 + 6 * count
        if op == OP_SOFT_TRIGGER:
            return 3
        if op == OP_FIXED_VOLTAGE:
            return 5
        if op == OP_CONTINUOUS_LOOP:
            return 4
        return 2

    def _execute(self, message: bytes) -> None:
        now_s = self.now_s
        op = message[1]
        if op == OP_HANDSHAKE:
            self._event(now_s, "handshake", f"firmware {self._firmware_version}")
            self._reply(bytes([_HANDSHAKE_REPLY]) + self._firmware_version.to_bytes(4, "little"))
        elif op == OP_PROGRAM_ALL:
            self._on_program_all(now_s, message[2:])
        elif op == OP_PROGRAM_ONE:
            self._on_program_one(now_s, message)
        elif op in (OP_CUSTOM_TRAIN_1, OP_CUSTOM_TRAIN_2):
            self._on_custom_train(now_s, op - OP_CUSTOM_TRAIN_1 + 1, message)
        elif op == OP_SOFT_TRIGGER:
            self._trigger_outputs(now_s, message[2], "soft trigger")
        elif op in (OP_OLED_TEXT, OP_CLIENT_NAME):
            self._start_text(op)
        elif op == OP_FIXED_VOLTAGE:
            self._on_fixed_voltage(now_s, message[2], _u16(message, 3))
        elif op == OP_ABORT:
            self._abort(now_s)
        elif op == OP_DISCONNECT:
            self._client_name = ""
            self._event(now_s, "disconnect", "op 81: host said goodbye; trains keep running")
        elif op == OP_CONTINUOUS_LOOP:
            self._on_continuous_loop(now_s, message[2], message[3])
        else:
            self._event(now_s, "unknown_op", f"op {op} (0x{op:02x}) ignored")

    def _apply_parameter(self, index: int, code: int, value: int) -> None:
        self._params[index][code] = value

    def _on_program_all(self, now_s: float, payload: bytes) -> None:
        offset = 0
        for codes, size in _PROGRAM_ALL_BLOCKS:
            values = [
                int.from_bytes(payload[offset + i * size : offset + (i + 1) * size], "little")
                for i in range(len(codes) * len(CHANNELS))
            ]
            offset += len(values) * size
            for code_pos, code in enumerate(codes):
                for index in range(len(CHANNELS)):
                    if self._groups_by_channel:
                        value = values[index * len(codes) + code_pos]
                    else:
                        value = values[code_pos * len(CHANNELS) + index]
                    self._apply_parameter(index, code, value)
        self._trigger_modes = list(payload[offset : offset + _TRIGGER_INPUTS])
        grouping = "by channel" if self._groups_by_channel else "by parameter"
        self._event(now_s, "program_all", f"all parameters read grouped {grouping}")
        self._reply(_ACK)

    def _on_program_one(self, now_s: float, message: bytes) -> None:
        code = message[2]
        size = value_size(code)
        if size is None:
            self._event(now_s, "unknown_parameter", f"op 74 with unknown code {code}")
            return
        channel = message[3]
        value = int.from_bytes(message[4 : 4 + size], "little")
        if code == PARAM_TRIGGER_MODE:
            if not 1 <= channel <= _TRIGGER_INPUTS:
                self._event(now_s, "bad_channel", f"op 74 trigger mode for input {channel}")
                return
            self._trigger_modes[channel - 1] = value
        else:
            if not 1 <= channel <= len(CHANNELS):
                self._event(now_s, "bad_channel", f"op 74 code {code} for channel {channel}")
                return
            self._apply_parameter(channel - 1, code, value)
        self._reply(_ACK)

    def _on_custom_train(self, now_s: float, number: int, message: bytes) -> None:
        count = _u32(message, 2)
        if count > self._max_custom_pulses:
            self._event(
                now_s,
                "custom_train_rejected",
                f"custom train {number} of {count} pulses exceeds {self._max_custom_pulses}",
            )
            return
        onsets = [_u32(message, 6 + 4 * i) for i in range(count)]
        volts_offset = 6 + 4 * count
        bits = [_u16(message, volts_offset + 2 * i) for i in range(count)]
        self._custom_trains[number] = tuple(zip(onsets, bits, strict=True))
        self._event(now_s, "custom_train", f"custom train {number}: {count} pulses")
        self._reply(_ACK)

    def _trigger_outputs(self, now_s: float, mask: int, source: str) -> None:
        started = []
        for index, channel in enumerate(CHANNELS):
            if mask & (1 << index):
                self._trains[index] = _Train(trigger_s=now_s)
                self._fixed_bits[index] = None
                started.append(channel)
        self._event(now_s, "trigger", f"{source} mask 0x{mask:02x}: {''.join(started) or '-'}")

    def _on_fixed_voltage(self, now_s: float, channel: int, bits: int) -> None:
        if not 1 <= channel <= len(CHANNELS):
            self._event(now_s, "bad_channel", f"op 79 fixed voltage for channel {channel}")
            return
        index = channel - 1
        if self._trains[index] is not None:
            self._trains[index] = None
            self._event(now_s, "train_end", f"{CHANNELS[index]} train stopped by op 79")
        self._fixed_bits[index] = bits
        self._event(
            now_s,
            "fixed_voltage",
            f"{CHANNELS[index]} fixed at {bits_to_volts(bits):+.4f} V ({bits})",
        )
        self._reply(_ACK)

    def _abort(self, now_s: float) -> None:
        self._trains = [None] * len(CHANNELS)
        self._fixed_bits = [None] * len(CHANNELS)
        self._event(now_s, "abort", "all trains aborted")

    def _on_continuous_loop(self, now_s: float, first: int, second: int) -> None:
        if self._groups_by_channel:
            channel, state = first, second
        else:
            state, channel = first, second + 1
        if not 1 <= channel <= len(CHANNELS):
            self._event(now_s, "bad_channel", f"op 82 bytes {first} {second}: no such channel")
            return
        self._continuous[channel - 1] = state != 0
        self._reply(_ACK)

    def _start_text(self, op: int) -> None:
        self._text_op = op
        if op == OP_CLIENT_NAME:
            self._client_name = ""
        else:
            self._oled_text = ""

    def _append_text(self, text: str) -> None:
        if self._text_op == OP_CLIENT_NAME:
            self._client_name += text
        else:
            self._oled_text += text

    def _end_text(self) -> None:
        if self._text_op == OP_CLIENT_NAME:
            self._event(self.now_s, "client_name", repr(self._client_name))
        else:
            self._event(self.now_s, "oled_text", repr(self._oled_text))
        self._text_op = None

    def _event(self, t_s: float, kind: str, message: str) -> None:
        self._record.add_event(t_s, kind, message)

    # -- state and the physical device ----------------------------------------------------

    def meter(
        self, channel: str, kind: MeterKind = "peak", load_ohm: float = CALIBRATION_LOAD_OHM
    ) -> float:
        """A virtual scope (``peak``) or true-rms meter (``rms``) on a ``load_ohm`` resistor
        across ``channel``: the current (mA) delivered now, from this unit's output stage
        and its own record. Call it where the simulator lives (the IO loop)."""
        channel = CHANNELS[_check_channel(channel)]
        now = self._sync()
        interval = self._record.interval_at(channel, math.nextafter(now, -math.inf))
        return meter_reading(
            self.output_stage,
            interval,
            kind=kind,
            load_ohm=load_ohm,
            phases=2 if self._params[_check_channel(channel)][_IS_BIPHASIC] else 1,
            pulses_per_period=1,
        )

    @property
    def record(self) -> DeliveryRecord:
        """What was delivered, played out up to the clock's current time."""
        self._sync()
        return self._record

    @property
    def firmware_version(self) -> int:
        return self._firmware_version

    @property
    def client_name(self) -> str:
        """The name sent with op 89 (as far as received); "" before one or after op 81."""
        return self._client_name

    @property
    def oled_text(self) -> str:
        """The text sent with op 78 (as far as received)."""
        return self._oled_text

    @property
    def trigger_modes(self) -> tuple[int, int]:
        """Parameter 128 for trigger inputs 1 and 2."""
        return self._trigger_modes[0], self._trigger_modes[1]

    def parameters(self, channel: str) -> dict[int, int]:
        """A copy of output ``channel``'s raw parameter values by code (1..17)."""
        return dict(self._params[_check_channel(channel)])

    def continuous_loop(self, channel: str) -> bool:
        return self._continuous[_check_channel(channel)]

    def custom_train(self, number: int) -> tuple[tuple[int, int], ...]:
        """Custom train 1 or 2 as ``(onset_cycles, voltage_bits)`` pairs."""
        if number not in self._custom_trains:
            raise ValueError(f"custom train number must be 1 or 2, got {number!r}")
        return self._custom_trains[number]

    def train_state(self, channel: str) -> str:
        """``"idle"``, ``"waiting"`` (triggered, in its delay) or ``"running"``."""
        index = _check_channel(channel)
        now_s = self._sync()
        # Play the present instant too: a train triggered or ending right now is settled.
        self._output_at(index, now_s)
        train = self._trains[index]
        if train is None:
            return "idle"
        return "waiting" if train.started_s is None else "running"

    def is_running(self, channel: str) -> bool:
        return self.train_state(channel) == "running"

    def front_panel_set(self, channel: str, code: int, value: int) -> None:
        """Change a parameter on the device's own menu (the "knob" fault); applies at once.

        Raises ``ValueError`` for an unknown channel or code or a value that does not fit the
        code's size: this is a test's call, not host bytes.
        """
        index = _check_channel(channel)
        size = value_size(code)
        if size is None or code == PARAM_TRIGGER_MODE:
            raise ValueError(f"front_panel_set needs a code in 1..17, got {code!r}")
        if not 0 <= value < 1 << (8 * size):
            raise ValueError(f"value {value!r} does not fit code {code}'s {size}-byte field")
        now_s = self._sync()
        self._apply_parameter(index, code, value)
        self._event(
            now_s, "front_panel", f"{channel} {PARAMETER_NAMES[code]} (code {code}) = {value}"
        )

    def trigger_input(self, trigger: int) -> None:
        """A pulse on BNC trigger input 1 or 2: starts the outputs linked to it."""
        if trigger not in (1, 2):
            raise ValueError(f"trigger input must be 1 or 2, got {trigger!r}")
        now_s = self._sync()
        link_code = _LINK_TRIGGER_1 if trigger == 1 else _LINK_TRIGGER_2
        mask = 0
        for index in range(len(CHANNELS)):
            if not self._params[index][link_code]:
                continue
            if (
                self._trigger_modes[trigger - 1] == _TOGGLE_TRIGGER_MODE
                and self._trains[index] is not None
            ):
                self._trains[index] = None
                self._event(now_s, "train_end", f"{CHANNELS[index]} toggled off by input")
            else:
                mask |= 1 << index
        self._trigger_outputs(now_s, mask, f"trigger input {trigger}")

    def disconnect(self) -> None:
        """The host went away without op 81: partial message dropped; trains keep running."""
        now_s = self._sync()
        self._rx.clear()
        self._text_op = None
        self._client_name = ""
        self._event(now_s, "disconnect", "link lost; trains keep running")

    def power_cycle(self) -> None:
        """Switch off and on: parameters back to defaults, trains stopped."""
        now_s = self._sync()
        self._reset_device_state()
        self._event(now_s, "power_cycle", "parameters back to defaults, trains stopped")

    def stop_answering(self, on: bool) -> None:
        """Fault: keep reading and obeying bytes but send nothing back while ``on``."""
        now_s = self._sync()
        self._answering = not on
        self._event(now_s, "stop_answering", "on" if on else "off")

    def __repr__(self) -> str:
        return (
            f"PulsePalSimulator(firmware={self._firmware_version}, now_s={self.now_s!r}, "
            f"trains={[t is not None for t in self._trains]}, "
            f"continuous={self._continuous})"
        )


# -- the device contract (tests/contract, the bench) --------------------------------------------


def _contract_tamper(sim: PulsePalSimulator) -> None:
    """Switched off and on: the parameters back to their +-5 V defaults."""
    sim.power_cycle()


def _contract_limits_written(sim: PulsePalSimulator, ceilings: Mapping[str, int]) -> bool:
    """Every output's phase voltage is 0 V until a level is raised."""
    zero_v = volts_to_bits(0.0)
    return all(sim.parameters(c)[_PHASE1_VOLTAGE] == zero_v for c in CHANNELS)


#: what the shared device contract needs of this simulator
contract: Final = ContractHook(
    level_du=500, tamper=_contract_tamper, limits_written=_contract_limits_written
)
