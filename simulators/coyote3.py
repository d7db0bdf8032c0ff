"""Firmware emulator of the DG-LAB Coyote 3.0 (V3) pulse host, BLE.

Written only from ``../shared/reference/devices.md`` section 1 so that it can judge the host's
codec independently: bytes in (GATT writes), state and notifications out, and a
``DeliveryRecord`` of what the device would have delivered per channel.

It must never import the host side (``firmware_bridge``, ``safety``, ``acustim``, ``gui``),
never read time except through the ``Clock`` it was given, never sleep, and never raise on bad
bytes from the host: a bad frame is ignored and recorded as an event, as the device would.

Protocol rules emulated (from the document):

* GATT: service 0x180C with write char 0x150A (B0, BF) and notify char 0x150B (B1); service
  0x180A with the battery char 0x1500 (read, notify, one byte 0..100 %). Name ``47L121000``.
* B0 (20 bytes): byte 1 high nibble = sequence number; bits 3-2 = channel A interpretation,
  bits 1-0 = channel B (00 none, 01 add, 10 subtract, 11 set absolute). A strength value above
  200 counts as 0 (add 201 leaves the strength as is, set 201 makes it 0). Results clamp to
  0..200 and to the channel's soft limit.
* B1 ``B1 seq A B`` is notified whenever a strength changes: seq echoed for a B0 with seq != 0,
  seq 0 for the physical wheel. A B0 with seq 0 changes strength silently (official vectors).
* Waveform: per channel 4 "frequency" bytes (10..240) and 4 intensities (0..100), 25 ms each.
  If any of a channel's 8 bytes is out of range, that channel's whole block is dropped (idle
  for its 100 ms) while the other channel plays. The frequency byte is a compressed period:
  x <= 100 -> x ms; 101..200 -> (x - 100) * 5 + 100 ms; 201..240 -> (x - 200) * 10 + 600 ms;
  pulse rate = 1000 / period_ms Hz.
* BF (7 bytes, no reply): soft limit A/B (a value outside 0..200 leaves that limit as it is),
  frequency balance A/B, intensity balance A/B (0..255). Persisted across power cycles.

Playback model. The document only says "write every 100 ms"; the rest is **[assumed]**:

* Strength changes apply at the instant the B0 is received (mid-sample too).
* Each B0 carries one 100 ms block (4 samples x 25 ms per channel). Blocks play back to back
  from a queue. A block arriving while the device is idle starts playing at its arrival time;
  one arriving while another plays waits, at most ``max_pending_blocks`` of them; beyond that
  the newest block is dropped (event ``queue_overflow``) but its strength part still applies.
* When the queue runs dry the output is idle (intensity 0): output stops when frames stop.
  Strength persists.
* A block whose two channels were both dropped still occupies its 100 ms slot.

Where the document is silent, further **[assumed]** behaviour:

* A B0 with seq != 0 that changes no strength (no-op or clamped) sends no B1; the doc says B1
  is sent "whenever strength changes". ``notify_unchanged_strength=True`` makes it answer
  anyway, to test a host against the other reading.
* A BF that lowers a soft limit below the current strength clamps the strength down to it at
  once and notifies ``B1 00 A B`` (as for the wheel).
* Frames shorter than their fixed size (B0 20, BF 7 bytes), empty writes, unknown head bytes
  and writes longer than 20 bytes (the characteristic holds at most 20) are ignored
  (event ``frame_ignored``). A BF of 8..20 bytes applies its first 7 bytes and notes the
  surplus (event ``frame_trailing_bytes``).
* Soft limits default to 200, frequency balance to 160 and intensity balance to 0 (the values
  in the document's BF example); a new device has no stored limit.
* ``power_cycle``: strengths 0, waveform buffers cleared, notifications off; soft limits,
  balance and battery persist. ``disconnect`` (BLE link lost): notifications off, waveform
  buffers cleared so output goes idle at once, strengths persist.
* Battery notifications are sent only when the level changes.

Recording: every channel is covered continuously from construction on. While a block plays, a
new interval starts at every 25 ms sample boundary and at every strength change; idle time is
one interval (frequency 0, intensity 0) per unchanged strength.

Not thread-safe: call it from one thread (the hosting layer's).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from simulators import ContractHook
from simulators._common import check_ab_channel, hex_bytes, normalize_uuid
from simulators.clock import Clock
from simulators.output_stage import CALIBRATION_LOAD_OHM, MeterKind, OutputStage, meter_reading
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "ADVERTISED_NAME",
    "B0_FRAME_SIZE",
    "BATTERY_CHAR_UUID",
    "BATTERY_SERVICE_UUID",
    "BF_FRAME_SIZE",
    "BLOCK_DURATION_S",
    "CHANNELS",
    "DEFAULT_FREQUENCY_BALANCE",
    "DEFAULT_INTENSITY_BALANCE",
    "MAX_STRENGTH_DU",
    "MAX_WRITE_SIZE",
    "NOTIFY_CHAR_UUID",
    "SAMPLES_PER_BLOCK",
    "SAMPLE_PERIOD_S",
    "SERVICE_UUID",
    "WRITE_CHAR_UUID",
    "Coyote3Simulator",
    "contract",
    "decode_period_ms",
]

SERVICE_UUID: Final = "0000180c-0000-1000-8000-00805f9b34fb"
WRITE_CHAR_UUID: Final = "0000150a-0000-1000-8000-00805f9b34fb"
NOTIFY_CHAR_UUID: Final = "0000150b-0000-1000-8000-00805f9b34fb"
BATTERY_SERVICE_UUID: Final = "0000180a-0000-1000-8000-00805f9b34fb"
BATTERY_CHAR_UUID: Final = "00001500-0000-1000-8000-00805f9b34fb"
ADVERTISED_NAME: Final = "47L121000"

SAMPLE_PERIOD_S: Final = 0.025
SAMPLES_PER_BLOCK: Final = 4
BLOCK_DURATION_S: Final = SAMPLE_PERIOD_S * SAMPLES_PER_BLOCK
CHANNELS: Final = ("A", "B")
MAX_STRENGTH_DU: Final = 200
B0_FRAME_SIZE: Final = 20
BF_FRAME_SIZE: Final = 7
MAX_WRITE_SIZE: Final = 20
DEFAULT_FREQUENCY_BALANCE: Final = 160
DEFAULT_INTENSITY_BALANCE: Final = 0

_HEAD_B0: Final = 0xB0
_HEAD_BF: Final = 0xBF
_HEAD_B1: Final = 0xB1
_MODE_NONE: Final = 0b00
_MODE_ADD: Final = 0b01
_MODE_SUBTRACT: Final = 0b10
_MODE_SET: Final = 0b11
_FREQ_BYTE_MIN: Final = 10
_FREQ_BYTE_MAX: Final = 240
_INTENSITY_MAX_PCT: Final = 100

NotifyCallback = Callable[[str, bytes], None]


def decode_period_ms(freq_byte: int) -> int:
    """Expand the compressed "frequency" byte (10..240) to the pulse period in ms (10..1000)."""
    if not _FREQ_BYTE_MIN <= freq_byte <= _FREQ_BYTE_MAX:
        raise ValueError(f"frequency byte {freq_byte} is outside 10..240")
    if freq_byte <= 100:
        return freq_byte
    if freq_byte <= 200:
        return (freq_byte - 100) * 5 + 100
    return (freq_byte - 200) * 10 + 600


@dataclass(frozen=True)
class _Sample:
    frequency_hz: float
    intensity_pct: float


@dataclass(frozen=True)
class _Block:
    serial: int
    """Counts blocks so that two identical samples in a row still make two intervals."""
    samples: Mapping[str, tuple[_Sample, ...] | None]
    """Per channel the 4 samples, or ``None`` when the channel's block was dropped."""


#: The output stage of a coyote3 unit (``simulators.output_stage``, all **[ours]**):
#: current-regulated (compliance 120 V); the device sets its own pulse width, assumed 200 us.
OUTPUT_STAGE_NOMINAL_MA_PER_DU: Final = 0.5
OUTPUT_STAGE_SPREAD: Final = 0.2


class Coyote3Simulator:
    """A Coyote 3.0 pulse host: GATT writes in, B1/battery notifications and a record out."""

    def __init__(
        self,
        clock: Clock,
        *,
        unit: int = 0,
        battery_percent: int = 100,
        max_pending_blocks: int = 2,
        notify_unchanged_strength: bool = False,
    ) -> None:
        if not 0 <= battery_percent <= 100:
            raise ValueError(f"battery_percent must be within 0..100, got {battery_percent}")
        if max_pending_blocks < 0:
            raise ValueError(f"max_pending_blocks must be >= 0, got {max_pending_blocks}")
        self.name: str = ADVERTISED_NAME
        self._clock = clock
        #: this unit's output stage: mA into a load (``meter``); ``unit`` picks the unit
        self.output_stage = OutputStage.for_unit(
            "coyote3",
            unit,
            CHANNELS,
            nominal_ma_per_du=OUTPUT_STAGE_NOMINAL_MA_PER_DU,
            spread=OUTPUT_STAGE_SPREAD,
            channel_spread=0.05,
            regulation="current",
            compliance_v=120.0,
            fixed_pulse_width_us=200.0,
        )
        self._battery_percent = battery_percent
        self._max_pending_blocks = max_pending_blocks
        self._notify_unchanged_strength = notify_unchanged_strength
        self._strength_du = dict.fromkeys(CHANNELS, 0)
        self._soft_limit_du = dict.fromkeys(CHANNELS, MAX_STRENGTH_DU)
        self._frequency_balance = dict.fromkeys(CHANNELS, DEFAULT_FREQUENCY_BALANCE)
        self._intensity_balance = dict.fromkeys(CHANNELS, DEFAULT_INTENSITY_BALANCE)
        self._subscribers: dict[str, NotifyCallback] = {}
        self._record = DeliveryRecord()
        self._played_until_s = clock.now_s()
        self._record.observe_until(self._played_until_s)
        self._playing: _Block | None = None
        self._block_start_s = 0.0
        self._sample_index = 0
        self._pending: deque[_Block] = deque()
        self._block_serial = 0
        # What the last recorded interval of each channel shows; equal key and touching
        # times mean the same stretch goes on and the interval is extended.
        self._last_key: dict[str, tuple[object, ...] | None] = dict.fromkeys(CHANNELS, None)

    # -- time -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Simulator time: how far the device has been played out."""
        return self._played_until_s

    def advance_to(self, t_s: float) -> None:
        """Play out buffered samples up to ``t_s``; a time already played is a no-op."""
        if math.isnan(t_s):
            raise ValueError("advance_to needs a time, got NaN")
        while self._played_until_s < t_s:
            block = self._playing
            if block is None:
                for channel in CHANNELS:
                    self._emit_idle(channel, self._played_until_s, t_s)
                self._played_until_s = t_s
                break
            sample_end_s = self._block_start_s + (self._sample_index + 1) * SAMPLE_PERIOD_S
            piece_end_s = min(t_s, sample_end_s)
            for channel in CHANNELS:
                samples = block.samples[channel]
                if samples is None:
                    self._emit_idle(channel, self._played_until_s, piece_end_s)
                else:
                    self._emit_sample(
                        channel, block.serial, samples, self._played_until_s, piece_end_s
                    )
            self._played_until_s = piece_end_s
            if piece_end_s >= sample_end_s:
                self._sample_index += 1
                if self._sample_index == SAMPLES_PER_BLOCK:
                    self._start_next_block(sample_end_s)
        self._record.observe_until(self._played_until_s)

    def _sync(self) -> float:
        self.advance_to(self._clock.now_s())
        return self._played_until_s

    def _start_next_block(self, start_s: float) -> None:
        self._playing = self._pending.popleft() if self._pending else None
        self._block_start_s = start_s
        self._sample_index = 0

    def _emit_sample(
        self,
        channel: str,
        serial: int,
        samples: tuple[_Sample, ...],
        start_s: float,
        end_s: float,
    ) -> None:
        sample = samples[self._sample_index]
        key = ("sample", serial, self._sample_index, self._strength_du[channel])
        self._emit(channel, key, start_s, end_s, sample.frequency_hz, sample.intensity_pct)

    def _emit_idle(self, channel: str, start_s: float, end_s: float) -> None:
        self._emit(channel, ("idle", self._strength_du[channel]), start_s, end_s, 0.0, 0.0)

    def _emit(
        self,
        channel: str,
        key: tuple[object, ...],
        start_s: float,
        end_s: float,
        frequency_hz: float,
        intensity_pct: float,
    ) -> None:
        if end_s <= start_s:
            return
        if self._last_key[channel] == key:
            self._record.extend_last(channel, end_s)
            return
        self._record.add(
            DeliveredInterval(
                channel=channel,
                start_s=start_s,
                end_s=end_s,
                strength_du=self._strength_du[channel],
                frequency_hz=frequency_hz,
                intensity_pct=intensity_pct,
            )
        )
        self._last_key[channel] = key

    # -- GATT -----------------------------------------------------------------------------

    def write(self, char_uuid: str, data: bytes) -> None:
        """A GATT write from the host; bad bytes are ignored and recorded, never raised.

        Only a ``data`` that is not bytes-like at all (a host programming error) raises
        ``TypeError``.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write needs bytes, got {type(data).__name__}")
        now_s = self._sync()
        data = bytes(data)
        uuid = normalize_uuid(char_uuid)
        if uuid != WRITE_CHAR_UUID:
            self._event(now_s, "write_ignored", f"write to {char_uuid!r}: {hex_bytes(data)}")
            return
        if len(data) > MAX_WRITE_SIZE:
            self._event(
                now_s,
                "frame_ignored",
                f"{len(data)} bytes exceed the {MAX_WRITE_SIZE}-byte characteristic",
            )
            return
        if not data:
            self._event(now_s, "frame_ignored", "empty write")
            return
        if data[0] == _HEAD_B0:
            self._on_b0(now_s, data)
        elif data[0] == _HEAD_BF:
            self._on_bf(now_s, data)
        else:
            self._event(now_s, "frame_ignored", f"unknown head 0x{data[0]:02x}: {hex_bytes(data)}")

    def read(self, char_uuid: str) -> bytes:
        """A GATT read; only the battery characteristic is readable."""
        self._sync()
        if normalize_uuid(char_uuid) == BATTERY_CHAR_UUID:
            return bytes([self._battery_percent])
        raise ValueError(f"characteristic {char_uuid!r} is not readable on the Coyote 3")

    def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        """Subscribe ``callback(char_uuid, payload)`` to the B1 or the battery characteristic."""
        self._sync()
        uuid = normalize_uuid(char_uuid)
        if uuid not in (NOTIFY_CHAR_UUID, BATTERY_CHAR_UUID):
            raise ValueError(f"characteristic {char_uuid!r} does not notify on the Coyote 3")
        self._subscribers[uuid] = callback

    def stop_notify(self, char_uuid: str) -> None:
        self._sync()
        uuid = normalize_uuid(char_uuid)
        if uuid not in (NOTIFY_CHAR_UUID, BATTERY_CHAR_UUID):
            raise ValueError(f"characteristic {char_uuid!r} does not notify on the Coyote 3")
        self._subscribers.pop(uuid, None)

    def is_notifying(self, char_uuid: str) -> bool:
        return normalize_uuid(char_uuid) in self._subscribers

    def _notify(self, uuid: str, payload: bytes) -> None:
        callback = self._subscribers.get(uuid)
        if callback is not None:
            callback(uuid, payload)

    def _notify_strength(self, seq: int) -> None:
        payload = bytes([_HEAD_B1, seq, self._strength_du["A"], self._strength_du["B"]])
        self._notify(NOTIFY_CHAR_UUID, payload)

    def _event(self, t_s: float, kind: str, message: str) -> None:
        self._record.add_event(t_s, kind, message)

    # -- frames ---------------------------------------------------------------------------

    def _on_b0(self, now_s: float, data: bytes) -> None:
        if len(data) < B0_FRAME_SIZE:
            self._event(
                now_s, "frame_ignored", f"B0 of {len(data)} bytes, needs 20: {hex_bytes(data)}"
            )
            return
        seq = data[1] >> 4
        modes = {"A": (data[1] >> 2) & 0b11, "B": data[1] & 0b11}
        values = {"A": data[2], "B": data[3]}
        changed = False
        for channel in CHANNELS:
            new_du = self._apply_mode(channel, modes[channel], values[channel])
            if new_du != self._strength_du[channel]:
                self._strength_du[channel] = new_du
                changed = True
        if seq != 0 and (
            changed or (self._notify_unchanged_strength and (modes["A"] or modes["B"]))
        ):
            self._notify_strength(seq)
        self._enqueue(now_s, self._parse_block(now_s, data))

    def _apply_mode(self, channel: str, mode: int, value_du: int) -> int:
        current_du = self._strength_du[channel]
        if value_du > MAX_STRENGTH_DU:
            value_du = 0
        if mode == _MODE_NONE:
            return current_du
        if mode == _MODE_ADD:
            target_du = current_du + value_du
        elif mode == _MODE_SUBTRACT:
            target_du = current_du - value_du
        else:
            target_du = value_du
        return max(0, min(target_du, MAX_STRENGTH_DU, self._soft_limit_du[channel]))

    def _parse_block(self, now_s: float, data: bytes) -> _Block:
        samples: dict[str, tuple[_Sample, ...] | None] = {}
        for channel, offset in (("A", 4), ("B", 12)):
            freq_bytes = data[offset : offset + SAMPLES_PER_BLOCK]
            intensities = data[offset + SAMPLES_PER_BLOCK : offset + 2 * SAMPLES_PER_BLOCK]
            problems = [
                f"freq[{i}] {b} outside 10..240"
                for i, b in enumerate(freq_bytes)
                if not _FREQ_BYTE_MIN <= b <= _FREQ_BYTE_MAX
            ] + [
                f"intensity[{i}] {b} outside 0..100"
                for i, b in enumerate(intensities)
                if b > _INTENSITY_MAX_PCT
            ]
            if problems:
                self._event(now_s, "block_dropped", f"{channel} " + ", ".join(problems))
                samples[channel] = None
            else:
                samples[channel] = tuple(
                    _Sample(1000.0 / decode_period_ms(f), float(i))
                    for f, i in zip(freq_bytes, intensities, strict=True)
                )
        self._block_serial += 1
        return _Block(serial=self._block_serial, samples=samples)

    def _enqueue(self, now_s: float, block: _Block) -> None:
        if self._playing is None:
            self._playing = block
            self._block_start_s = now_s
            self._sample_index = 0
        elif len(self._pending) < self._max_pending_blocks:
            self._pending.append(block)
        else:
            self._event(
                now_s,
                "queue_overflow",
                f"waveform block dropped: {len(self._pending)} already waiting "
                f"(max_pending_blocks={self._max_pending_blocks})",
            )

    def _on_bf(self, now_s: float, data: bytes) -> None:
        if len(data) < BF_FRAME_SIZE:
            self._event(
                now_s, "frame_ignored", f"BF of {len(data)} bytes, needs 7: {hex_bytes(data)}"
            )
            return
        if len(data) > BF_FRAME_SIZE:
            self._event(
                now_s,
                "frame_trailing_bytes",
                f"BF of {len(data)} bytes, bytes after the 7th ignored: {hex_bytes(data)}",
            )
        for channel, limit_du, freq_balance, intensity_balance in (
            ("A", data[1], data[3], data[5]),
            ("B", data[2], data[4], data[6]),
        ):
            if limit_du <= MAX_STRENGTH_DU:
                self._soft_limit_du[channel] = limit_du
            self._frequency_balance[channel] = freq_balance
            self._intensity_balance[channel] = intensity_balance
        clamped = False
        for channel in CHANNELS:
            if self._strength_du[channel] > self._soft_limit_du[channel]:
                self._event(
                    now_s,
                    "soft_limit_clamp",
                    f"{channel} strength {self._strength_du[channel]} lowered to the new "
                    f"soft limit {self._soft_limit_du[channel]}",
                )
                self._strength_du[channel] = self._soft_limit_du[channel]
                clamped = True
        if clamped:
            self._notify_strength(0)

    # -- state and the physical device ----------------------------------------------------

    def meter(
        self, channel: str, kind: MeterKind = "peak", load_ohm: float = CALIBRATION_LOAD_OHM
    ) -> float:
        """A virtual scope (``peak``) or true-rms meter (``rms``) on a ``load_ohm`` resistor
        across ``channel``: the current (mA) delivered now, from this unit's output stage
        and its own record. Call it where the simulator lives (the IO loop)."""
        channel = check_ab_channel(channel)
        now = self._sync()
        interval = self._record.interval_at(channel, math.nextafter(now, -math.inf))
        return meter_reading(
            self.output_stage,
            interval,
            kind=kind,
            load_ohm=load_ohm,
            phases=1,
            pulses_per_period=1,
        )

    @property
    def record(self) -> DeliveryRecord:
        """What was delivered, played out up to the clock's current time."""
        self._sync()
        return self._record

    def strength_du(self, channel: str) -> int:
        self._sync()
        return self._strength_du[check_ab_channel(channel)]

    def soft_limit_du(self, channel: str) -> int:
        self._sync()
        return self._soft_limit_du[check_ab_channel(channel)]

    @property
    def frequency_balance(self) -> Mapping[str, int]:
        """Frequency balance per channel ("A", "B"), 0..255, as last set by BF."""
        return MappingProxyType(dict(self._frequency_balance))

    @property
    def intensity_balance(self) -> Mapping[str, int]:
        """Intensity balance per channel ("A", "B"), 0..255, as last set by BF."""
        return MappingProxyType(dict(self._intensity_balance))

    @property
    def battery_percent(self) -> int:
        return self._battery_percent

    @property
    def is_playing(self) -> bool:
        """True while a waveform block is being played out."""
        self._sync()
        return self._playing is not None

    @property
    def pending_blocks(self) -> int:
        """Blocks waiting behind the one playing."""
        self._sync()
        return len(self._pending)

    def turn_wheel(self, channel: str, delta_du: int) -> None:
        """Turn the physical wheel by ``delta_du`` steps; notifies ``B1 00 A B`` on a change."""
        self._sync()
        channel = check_ab_channel(channel)
        current_du = self._strength_du[channel]
        new_du = max(0, min(current_du + delta_du, self._soft_limit_du[channel]))
        if new_du != current_du:
            self._strength_du[channel] = new_du
            self._notify_strength(0)

    def set_battery(self, percent: int) -> None:
        """Set the battery level; subscribers to the battery char hear of a change."""
        now_s = self._sync()
        if not 0 <= percent <= 100:
            raise ValueError(f"battery percent must be within 0..100, got {percent}")
        if percent == self._battery_percent:
            return
        self._battery_percent = percent
        self._event(now_s, "battery", f"battery {percent} %")
        self._notify(BATTERY_CHAR_UUID, bytes([percent]))

    def power_cycle(self) -> None:
        """Switch off and on: strengths 0, buffers cleared, notifications off; BF persists."""
        now_s = self._sync()
        self._subscribers.clear()
        self._clear_waveform()
        self._strength_du = dict.fromkeys(CHANNELS, 0)
        self._event(now_s, "power_cycle", "strengths 0, waveform cleared, notifications off")

    def disconnect(self) -> None:
        """The BLE link is lost: notifications off, waveform cleared; strengths persist."""
        now_s = self._sync()
        self._subscribers.clear()
        self._clear_waveform()
        self._event(now_s, "disconnect", "notifications off, waveform cleared")

    def _clear_waveform(self) -> None:
        self._playing = None
        self._pending.clear()
        self._sample_index = 0

    def __repr__(self) -> str:
        return (
            f"Coyote3Simulator(now_s={self._played_until_s!r}, "
            f"strength_du={self._strength_du}, soft_limit_du={self._soft_limit_du})"
        )


# -- the device contract (tests/contract, the bench) --------------------------------------------


def _contract_tamper(sim: Coyote3Simulator) -> None:
    """Another app's BF: the soft limits at the top (as after a reboot into the official app)."""
    sim.write(WRITE_CHAR_UUID, bytes([_HEAD_BF, 200, 200, 160, 160, 0, 0]))


def _contract_limits_written(sim: Coyote3Simulator, ceilings: Mapping[str, int]) -> bool:
    """The soft limits are the session's ceilings (BF), so the wheel cannot go above them."""
    return all(sim.soft_limit_du(c) == ceilings.get(c, 0) for c in CHANNELS)


#: what the shared device contract needs of this simulator
contract: Final = ContractHook(
    level_du=10, tamper=_contract_tamper, limits_written=_contract_limits_written
)
