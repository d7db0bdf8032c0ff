"""Firmware emulator of the DG-LAB Coyote 2.0 (V2) pulse host, BLE.

Written only from ``../shared/reference/devices.md`` section 2 and ``docs/devices/coyote2.md``
("What the device delivers") so that it can judge the host's codec independently: bytes in
(GATT writes), state and notifications out, and a ``DeliveryRecord`` of what the device would
have delivered per channel.

It must never import the host side (``firmware_bridge``, ``safety``, ``acustim``, ``gui``),
never read time except through the ``Clock`` it was given, never sleep, and never raise on bad
bytes from the host: a bad write is ignored and recorded as an event, as the device would.

Protocol rules emulated (from the documents):

* GATT, base UUID ``955Axxxx-0FE2-F5AA-A094-84B8D4F3E8AD``, name ``D-LAB ESTIM01``: service
  0x180A with battery 0x1500 (read, notify, 1 byte 0..100 %) and firmware version 0x1501
  (read, 2 bytes); service 0x180B with PWM_AB2 0x1504 (strength; read, write, notify),
  PWM_A34 0x1505 and PWM_B34 0x1506 (waveforms; read, write) and config 0x1507 (read,
  ``07 D0 07``: step 7, maximum 2000).
* The waveform characteristics are **swapped**: 0x1506 drives physical channel A, 0x1505
  drives channel B.
* Every value is a 3-byte, 24-bit **little-endian** integer.
* PWM_AB2: bits 23-22 reserved, bits 21-11 = strength A, bits 10-0 = strength B, each 0..2047
  (no larger value fits the layout). Strength applies at once and persists (not time-limited).
  The device notifies PWM_AB2 when a strength changes.
* PWM_A34/B34: bits 23-20 reserved, bits 19-15 = Z, bits 14-5 = Y, bits 4-0 = X. X pulses in
  X ms, then Y ms gap: pulse rate 1000 / (X + Y) Hz; pulse width Z x 5 us; X = 0 means no
  pulses. Each write is valid for 100 ms only; then that channel stops unless refreshed.

Delivery model (``docs/devices/coyote2.md``): per channel, while a waveform written less than
100 ms ago with X > 0 is in force, the record shows ``strength_du`` = the raw strength,
``intensity_pct`` = 100, ``frequency_hz`` = 1000 / (X + Y), ``pulse_width_us`` = Z x 5.
Otherwise the channel is idle (frequency 0, intensity 0, pulse width ``None``). A waveform
written at ``t`` plays during ``[t, t + 0.1)``; a refresh at or before ``t + 0.1`` continues
without a gap.

Where the documents are silent, **[assumed]** behaviour:

* A host write to PWM_AB2 that changes a strength is notified too (the documents say the
  device notifies "when strength changes", without limiting it to the wheel).
  ``notify_host_strength_writes=False`` makes only the wheel notify, to test a host against
  the other reading. A write that changes nothing is never notified.
* Reserved bits set in a write are ignored (the fields are applied) and noted
  (event ``reserved_bits``). Reads return the fields without them.
* Z = 0 with X > 0 still counts as output in force (the document's model keys on X only):
  the record shows intensity 100 with ``pulse_width_us`` 0. Y is counted in 1 ms (the x8 ms
  reading is unconfirmed). Z above 20 is accepted as the bit layout allows.
* The config maximum of 2000 is not enforced: the host alone keeps the ceiling (the project
  doc says so); the device takes 0..2047.
* A write whose length is not 3 bytes to PWM_AB2/A34/B34 is ignored (event
  ``frame_ignored``); a write to a read-only or unknown characteristic is ignored
  (event ``write_ignored``).
* A write with the same X, Y and Z refreshes the one in force: the record extends the same
  interval. A write with other X, Y or Z starts a new interval, as does any strength change;
  every X = 0 write counts as the same idle output.
* ``read`` of 1505/1506 returns the last written waveform, also after its 100 ms lapsed;
  ``00 00 00`` before any write and after a power cycle. Firmware version 1501 reads
  ``FIRMWARE_VERSION``, an arbitrary ``01 00``.
* ``power_cycle``: waveforms cleared (output idle at once), notifications off, and strength
  **kept**: the documents say strength "persists", and a host that skips "PWM_AB2 = 0/0
  before output" on connect must show up in tests. ``keep_strength_on_power_cycle=False``
  zeroes it instead. Battery persists.
* ``disconnect`` (BLE link lost): notifications off; strength persists; a waveform already in
  force is not cut short, it lapses at the end of its 100 ms like any unrefreshed write.
* Battery notifications are sent only when the level changes. Wheel turns clamp to 0..2047.

Recording: every channel is covered continuously from construction on, one interval per
stretch of constant output (see above).

Not thread-safe: call it from one thread (the hosting layer's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from simulators import ContractHook
from simulators._common import check_ab_channel, hex_bytes, normalize_uuid
from simulators.clock import Clock
from simulators.output_stage import CALIBRATION_LOAD_OHM, MeterKind, OutputStage, meter_reading
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "ADVERTISED_NAME",
    "BATTERY_CHAR_UUID",
    "BATTERY_SERVICE_UUID",
    "CHANNELS",
    "CONFIG_CHAR_UUID",
    "CONFIG_MAX_STRENGTH_DU",
    "CONFIG_STRENGTH_STEP_DU",
    "CONFIG_VALUE",
    "FIRMWARE_CHAR_UUID",
    "FIRMWARE_VERSION",
    "MAX_STRENGTH_DU",
    "PWM_A34_CHAR_UUID",
    "PWM_AB2_CHAR_UUID",
    "PWM_B34_CHAR_UUID",
    "PWM_SERVICE_UUID",
    "STRENGTH_CHAR_UUID",
    "VALUE_SIZE",
    "WAVEFORM_CHAR_UUIDS",
    "WAVEFORM_VALIDITY_S",
    "Coyote2Simulator",
    "Waveform",
    "contract",
]


def _uuid(short: str) -> str:
    return f"955a{short}-0fe2-f5aa-a094-84b8d4f3e8ad"


BATTERY_SERVICE_UUID: Final = _uuid("180a")
BATTERY_CHAR_UUID: Final = _uuid("1500")
FIRMWARE_CHAR_UUID: Final = _uuid("1501")
PWM_SERVICE_UUID: Final = _uuid("180b")
PWM_AB2_CHAR_UUID: Final = _uuid("1504")
STRENGTH_CHAR_UUID: Final = PWM_AB2_CHAR_UUID
PWM_A34_CHAR_UUID: Final = _uuid("1505")
"""Named A34 by the vendor, but it drives physical channel **B**."""
PWM_B34_CHAR_UUID: Final = _uuid("1506")
"""Named B34 by the vendor, but it drives physical channel **A**."""
CONFIG_CHAR_UUID: Final = _uuid("1507")
ADVERTISED_NAME: Final = "D-LAB ESTIM01"

CHANNELS: Final = ("A", "B")
WAVEFORM_CHAR_UUIDS: Final = {"A": PWM_B34_CHAR_UUID, "B": PWM_A34_CHAR_UUID}
"""The characteristic that drives each physical channel (the swap)."""

VALUE_SIZE: Final = 3
MAX_STRENGTH_DU: Final = 2047
WAVEFORM_VALIDITY_S: Final = 0.1
CONFIG_STRENGTH_STEP_DU: Final = 7
CONFIG_MAX_STRENGTH_DU: Final = 2000
CONFIG_VALUE: Final = (CONFIG_STRENGTH_STEP_DU | (CONFIG_MAX_STRENGTH_DU << 8)).to_bytes(
    VALUE_SIZE, "little"
)
FIRMWARE_VERSION: Final = bytes([1, 0])

_STRENGTH_MASK: Final = 0x7FF
_STRENGTH_A_SHIFT: Final = 11
_STRENGTH_RESERVED_SHIFT: Final = 22
_X_MASK: Final = 0x1F
_Y_SHIFT: Final = 5
_Y_MASK: Final = 0x3FF
_Z_SHIFT: Final = 15
_Z_MASK: Final = 0x1F
_WAVEFORM_RESERVED_SHIFT: Final = 20
_PULSE_WIDTH_STEP_US: Final = 5.0

_CHANNEL_OF_CHAR: Final = {uuid: channel for channel, uuid in WAVEFORM_CHAR_UUIDS.items()}
_READABLE: Final = frozenset(
    {
        BATTERY_CHAR_UUID,
        FIRMWARE_CHAR_UUID,
        PWM_AB2_CHAR_UUID,
        PWM_A34_CHAR_UUID,
        PWM_B34_CHAR_UUID,
        CONFIG_CHAR_UUID,
    }
)
_NOTIFIABLE: Final = frozenset({BATTERY_CHAR_UUID, PWM_AB2_CHAR_UUID})

NotifyCallback = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Waveform:
    """One PWM_A34/B34 value: X pulses of Z x 5 us, 1 per ms, then Y ms gap."""

    x: int
    """Pulses per burst, 0..31; 0 means no pulses."""
    y: int
    """Gap after the burst in ms, 0..1023."""
    z: int
    """Pulse width in steps of 5 us, 0..31."""

    @classmethod
    def from_value(cls, value: int) -> Waveform:
        """Take X, Y, Z from a 24-bit value; the reserved bits 23-20 are not looked at."""
        return cls(
            x=value & _X_MASK,
            y=(value >> _Y_SHIFT) & _Y_MASK,
            z=(value >> _Z_SHIFT) & _Z_MASK,
        )

    def to_bytes(self) -> bytes:
        value = (self.z << _Z_SHIFT) | (self.y << _Y_SHIFT) | self.x
        return value.to_bytes(VALUE_SIZE, "little")

    @property
    def has_pulses(self) -> bool:
        return self.x > 0

    @property
    def frequency_hz(self) -> float:
        """Pulse (burst) rate 1000 / (X + Y); 0.0 when X = 0 (no pulses)."""
        return 1000.0 / (self.x + self.y) if self.has_pulses else 0.0

    @property
    def pulse_width_us(self) -> float:
        return self.z * _PULSE_WIDTH_STEP_US


_SILENT: Final = Waveform(0, 0, 0)


#: The output stage of a coyote2 unit (``simulators.output_stage``, all **[ours]**):
#: current-regulated (compliance 120 V); X pulses per burst count in the rms.
OUTPUT_STAGE_NOMINAL_MA_PER_DU: Final = 0.05
OUTPUT_STAGE_SPREAD: Final = 0.2


class Coyote2Simulator:
    """A Coyote 2.0 pulse host: GATT writes in, PWM_AB2/battery notifications and a record out."""

    def __init__(
        self,
        clock: Clock,
        *,
        unit: int = 0,
        battery_percent: int = 100,
        notify_host_strength_writes: bool = True,
        keep_strength_on_power_cycle: bool = True,
    ) -> None:
        if not 0 <= battery_percent <= 100:
            raise ValueError(f"battery_percent must be within 0..100, got {battery_percent}")
        self.name: str = ADVERTISED_NAME
        self._clock = clock
        #: this unit's output stage: mA into a load (``meter``); ``unit`` picks the unit
        self.output_stage = OutputStage.for_unit(
            "coyote2",
            unit,
            CHANNELS,
            nominal_ma_per_du=OUTPUT_STAGE_NOMINAL_MA_PER_DU,
            spread=OUTPUT_STAGE_SPREAD,
            channel_spread=0.05,
            regulation="current",
            compliance_v=120.0,
            fixed_pulse_width_us=None,
        )
        self._battery_percent = battery_percent
        self._notify_host_strength_writes = notify_host_strength_writes
        self._keep_strength_on_power_cycle = keep_strength_on_power_cycle
        self._strength_du = dict.fromkeys(CHANNELS, 0)
        self._waveform: dict[str, Waveform] = dict.fromkeys(CHANNELS, _SILENT)
        # A waveform plays during [written_s, valid_until_s); -inf: never written.
        self._valid_until_s = dict.fromkeys(CHANNELS, -math.inf)
        self._subscribers: dict[str, NotifyCallback] = {}
        self._record = DeliveryRecord()
        self._played_until_s = clock.now_s()
        self._record.observe_until(self._played_until_s)
        # What the last recorded interval of each channel shows; an equal key means the same
        # stretch goes on and the interval is extended.
        self._last_key: dict[str, tuple[object, ...] | None] = dict.fromkeys(CHANNELS, None)

    # -- time -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Simulator time: how far the device has been played out."""
        return self._played_until_s

    def advance_to(self, t_s: float) -> None:
        """Play the device out up to ``t_s``; a time already played is a no-op."""
        if math.isnan(t_s):
            raise ValueError("advance_to needs a time, got NaN")
        start_s = self._played_until_s
        if t_s <= start_s:
            return
        for channel in CHANNELS:
            piece_start_s = start_s
            waveform = self._waveform[channel]
            valid_until_s = self._valid_until_s[channel]
            if waveform.has_pulses and piece_start_s < valid_until_s:
                piece_end_s = min(t_s, valid_until_s)
                self._emit_active(channel, waveform, piece_start_s, piece_end_s)
                piece_start_s = piece_end_s
            self._emit_idle(channel, piece_start_s, t_s)
        self._played_until_s = t_s
        self._record.observe_until(t_s)

    def _sync(self) -> float:
        self.advance_to(self._clock.now_s())
        return self._played_until_s

    def _emit_active(self, channel: str, waveform: Waveform, start_s: float, end_s: float) -> None:
        key = ("active", waveform, self._strength_du[channel])
        self._emit(
            channel,
            key,
            start_s,
            end_s,
            frequency_hz=waveform.frequency_hz,
            intensity_pct=100.0,
            pulse_width_us=waveform.pulse_width_us,
        )

    def _emit_idle(self, channel: str, start_s: float, end_s: float) -> None:
        key = ("idle", self._strength_du[channel])
        self._emit(
            channel,
            key,
            start_s,
            end_s,
            frequency_hz=0.0,
            intensity_pct=0.0,
            pulse_width_us=None,
        )

    def _emit(
        self,
        channel: str,
        key: tuple[object, ...],
        start_s: float,
        end_s: float,
        *,
        frequency_hz: float,
        intensity_pct: float,
        pulse_width_us: float | None,
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
                pulse_width_us=pulse_width_us,
            )
        )
        self._last_key[channel] = key

    # -- GATT -----------------------------------------------------------------------------

    def write(self, char_uuid: str, data: bytes | bytearray | memoryview) -> None:
        """A GATT write from the host; bad bytes are ignored and recorded, never raised.

        Only a ``data`` that is not bytes-like at all (a host programming error) raises
        ``TypeError``.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write needs bytes, got {type(data).__name__}")
        now_s = self._sync()
        payload = bytes(data)
        uuid = normalize_uuid(char_uuid)
        if uuid != PWM_AB2_CHAR_UUID and uuid not in _CHANNEL_OF_CHAR:
            self._event(now_s, "write_ignored", f"write to {char_uuid!r}: {hex_bytes(payload)}")
            return
        if len(payload) != VALUE_SIZE:
            self._event(
                now_s,
                "frame_ignored",
                f"{len(payload)} bytes to {uuid}, needs {VALUE_SIZE}: {hex_bytes(payload)}",
            )
            return
        value = int.from_bytes(payload, "little")
        if uuid == PWM_AB2_CHAR_UUID:
            self._on_strength(now_s, value, payload)
        else:
            self._on_waveform(now_s, _CHANNEL_OF_CHAR[uuid], value, payload)

    def read(self, char_uuid: str) -> bytes:
        """A GATT read of a readable characteristic; anything else raises ``ValueError``."""
        self._sync()
        uuid = normalize_uuid(char_uuid)
        if uuid not in _READABLE:
            raise ValueError(f"characteristic {char_uuid!r} is not readable on the Coyote 2")
        if uuid == BATTERY_CHAR_UUID:
            return bytes([self._battery_percent])
        if uuid == FIRMWARE_CHAR_UUID:
            return FIRMWARE_VERSION
        if uuid == CONFIG_CHAR_UUID:
            return CONFIG_VALUE
        if uuid == PWM_AB2_CHAR_UUID:
            return self._strength_bytes()
        return self._waveform[_CHANNEL_OF_CHAR[uuid]].to_bytes()

    def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        """Subscribe ``callback(char_uuid, payload)`` to PWM_AB2 or the battery characteristic."""
        self._sync()
        self._subscribers[self._check_notifiable(char_uuid)] = callback

    def stop_notify(self, char_uuid: str) -> None:
        self._sync()
        self._subscribers.pop(self._check_notifiable(char_uuid), None)

    def is_notifying(self, char_uuid: str) -> bool:
        return normalize_uuid(char_uuid) in self._subscribers

    @staticmethod
    def _check_notifiable(char_uuid: str) -> str:
        uuid = normalize_uuid(char_uuid)
        if uuid not in _NOTIFIABLE:
            raise ValueError(f"characteristic {char_uuid!r} does not notify on the Coyote 2")
        return uuid

    def _notify(self, uuid: str, payload: bytes) -> None:
        callback = self._subscribers.get(uuid)
        if callback is not None:
            callback(uuid, payload)

    def _strength_bytes(self) -> bytes:
        value = (self._strength_du["A"] << _STRENGTH_A_SHIFT) | self._strength_du["B"]
        return value.to_bytes(VALUE_SIZE, "little")

    def _event(self, t_s: float, kind: str, message: str) -> None:
        self._record.add_event(t_s, kind, message)

    # -- writes ---------------------------------------------------------------------------

    def _on_strength(self, now_s: float, value: int, data: bytes) -> None:
        if value >> _STRENGTH_RESERVED_SHIFT:
            self._event(now_s, "reserved_bits", f"PWM_AB2 bits 23-22 set: {hex_bytes(data)}")
        new_du = {
            "A": (value >> _STRENGTH_A_SHIFT) & _STRENGTH_MASK,
            "B": value & _STRENGTH_MASK,
        }
        changed = new_du != self._strength_du
        self._strength_du = new_du
        if changed and self._notify_host_strength_writes:
            self._notify(PWM_AB2_CHAR_UUID, self._strength_bytes())

    def _on_waveform(self, now_s: float, channel: str, value: int, data: bytes) -> None:
        if value >> _WAVEFORM_RESERVED_SHIFT:
            self._event(
                now_s,
                "reserved_bits",
                f"channel {channel} waveform bits 23-20 set: {hex_bytes(data)}",
            )
        self._waveform[channel] = Waveform.from_value(value)
        self._valid_until_s[channel] = now_s + WAVEFORM_VALIDITY_S

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
            pulses_per_period=max(1, self._waveform[channel].x),
        )

    @property
    def record(self) -> DeliveryRecord:
        """What was delivered, played out up to the clock's current time."""
        self._sync()
        return self._record

    def strength_du(self, channel: str) -> int:
        """The raw strength of ``channel`` (0..2047)."""
        self._sync()
        return self._strength_du[check_ab_channel(channel)]

    def waveform(self, channel: str) -> Waveform:
        """The waveform last written for ``channel``, whether or not it is still in force."""
        self._sync()
        return self._waveform[check_ab_channel(channel)]

    def is_active(self, channel: str) -> bool:
        """True while ``channel`` has a waveform with X > 0 written less than 100 ms ago."""
        now_s = self._sync()
        channel = check_ab_channel(channel)
        return self._waveform[channel].has_pulses and now_s < self._valid_until_s[channel]

    @property
    def battery_percent(self) -> int:
        return self._battery_percent

    def turn_wheel(self, channel: str, delta_du: int) -> None:
        """Turn the physical wheel by ``delta_du`` raw steps (clamped to 0..2047).

        Subscribers to PWM_AB2 hear of a change (always, whatever the host-write option).
        """
        self._sync()
        channel = check_ab_channel(channel)
        current_du = self._strength_du[channel]
        new_du = max(0, min(current_du + delta_du, MAX_STRENGTH_DU))
        if new_du != current_du:
            self._strength_du[channel] = new_du
            self._notify(PWM_AB2_CHAR_UUID, self._strength_bytes())

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
        """Switch off and on: waveforms cleared, notifications off; strength kept by default."""
        now_s = self._sync()
        self._subscribers.clear()
        self._waveform = dict.fromkeys(CHANNELS, _SILENT)
        self._valid_until_s = dict.fromkeys(CHANNELS, -math.inf)
        if self._keep_strength_on_power_cycle:
            detail = "strength kept"
        else:
            self._strength_du = dict.fromkeys(CHANNELS, 0)
            detail = "strength 0"
        self._event(now_s, "power_cycle", f"waveforms cleared, notifications off, {detail}")

    def disconnect(self) -> None:
        """The BLE link is lost: notifications off; waveforms lapse on their own within 100 ms."""
        now_s = self._sync()
        self._subscribers.clear()
        self._event(now_s, "disconnect", "notifications off")

    def __repr__(self) -> str:
        return f"Coyote2Simulator(now_s={self._played_until_s!r}, strength_du={self._strength_du})"


# -- the device contract (tests/contract, the bench) --------------------------------------------


def _contract_tamper(sim: Coyote2Simulator) -> None:
    """The wheel turned up: the device holds a strength the host did not write."""
    sim.turn_wheel("A", 300)


def _contract_limits_written(sim: Coyote2Simulator, ceilings: Mapping[str, int]) -> bool:
    """No soft-limit command on this model: the host's limit is a strength of zero on connect."""
    return all(sim.strength_du(c) == 0 for c in CHANNELS)


#: what the shared device contract needs of this simulator
contract: Final = ContractHook(
    level_du=100, tamper=_contract_tamper, limits_written=_contract_limits_written
)
