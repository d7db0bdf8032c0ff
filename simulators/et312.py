"""Firmware emulator of the ErosTek ET-312B / MK-312BT, a serial (RS-232 / Bluetooth SPP) box.

It is modelled on the v1.6 firmware, read from its disassembly. The facts and their sources (repo,
file, flash address) are in ``docs/devices/et312-firmware.md``; the section numbers below (§)
point there. The byte framing is in ``../shared/reference/devices.md`` section 3. Nothing here
is taken from the host side, so this module can judge the host codec independently.

Bytes come in through ``feed``, reply bytes go out through ``set_output``, and
``DeliveryRecord`` says what channels "A" and "B" delivered.

This module must never:

* import the host side (``firmware_bridge``, ``safety``, ``acustim``, ``gui``);
* read time except through the ``Clock`` it was given;
* sleep;
* raise on bad bytes from the host: a bad packet is NACKed or dropped, and noted as an event,
  as the box does;
* stop delivering because the host went quiet. The real box has no keep-alive and runs its
  program forever (§7), and so does this one.

Delivery record (what safety is judged on), per channel, as the firmware computes it:

* ``strength_du`` = ``level * intensity // 256``, where
  ``level = pot * ramp * 3 // ((5 - P) * 255)``:
  - ``pot`` is the $4064/$4065 register and ``intensity`` the $40A5/$41A5 register, as the
    firmware reloads them on each 4.096 ms pass;
  - ``ramp`` is the ramp block value $409C (255 = done);
  - ``P`` is the power level $41F4 (1 Low, 2 Normal, 3 High). The firmware divides the pot by
    ``5 - P`` (§2). Here Normal counts 1:1 with the pot, so Low gives x0.75, High x1.5 and
    P = 0 x0.6. **A box on High reports up to 381**, more than 255. Power-level changes are
    also recorded as ``power_level`` events.
  - With Normal, a finished ramp and intensity 255, ``strength_du`` is about the pot value.
* ``intensity_pct`` = 100 while the channel's gate makes pulses and the strength is above 0.
  A gate that the gate timer switches on and off gives on/off intervals, not a duty cycle.
* ``frequency_hz`` = 1e6 / (phases * W + 256 * (F + 1 + D)) (§3), where:
  - W = max(50, width register);
  - F = max(9, frequency register);
  - D = the box's power limiter $4204;
  - phases = 2 for a biphasic gate (0x06 pattern), else 1.
* ``pulse_width_us`` = W, the width of one phase.
* No output at all is an interval with strength 0, frequency 0, intensity 0 and no width.

Modelled firmware rules (§ = section of docs/devices/et312-firmware.md):

* Time (§1). The main loop ticks every 2.048 ms. On odd ticks (a "pass", 4.096 ms) it steps
  the routine timers, the gates, the four modulation blocks and the next-module timers of A
  and then B. It then reloads the working registers and the levels, which is when output
  changes. Box commands are polled on ticks with n % 4 == 2 (every 8.192 ms), $4070 then
  $4071; a command >= 0x28 is left there and ignored. Passes are skipped while nothing can
  change (no host write, no knob, no moving block), so an hour of a static program is cheap.
* Amplitude (§2). It is pot // (5 - P) x ramp x intensity.
  - The intensity is **linear, with no 128 offset**.
  - P >= 4 stops the box ("Failure 16").
  - Pots follow the knobs (with a +-1 hysteresis) only while bit 0 of $400F is clear. While
    it is set, they hold what the host wrote. Clearing it makes them follow the knobs again.
    A host write to a pot while the ADC is on is overwritten by the next conversion.
  - Gate bit 0x40 forces the intensity to 173 (audio mode, silent audio).
* Gate $4090/$4190 (§3).
  - Bit 0x01 on; 0x02/0x04 the phase pattern (both = biphasic, none = no pulses); 0x08
    alternating; 0x20 audio-triggered (silent: no pulses).
  - The gate timer toggles bit 0x01 from the on/off times when $409A & 3 != 0.
  - $4083 bit 0x08 makes B pulse with A's gate and timing.
  - **$4083 bit 0x02 ("mute") gates nothing.** It is an audio trigger, and the audio here is
    silent.
* Modulation blocks (§4): ramp, intensity, frequency, width.
  - With select & 3 == 0 the value is static (select & 0x0C == 0), or is copied on every
    pass from the other channel, the MA value or the advanced parameter (optionally
    reflected).
  - Otherwise the block is timed. It steps every rate + 1 steps of the timer chosen by
    select & 3 (244 Hz, 30.5 Hz, 0.95 Hz), with the rate and min sources and the
    0xFC/0xFD/0xFE/0xFF/module actions at the bounds.
  - The ramp restarts at 156 and climbs to 255 in about 3.2 s after power-on, 0x18 and 0x12.
* Defaults (§5). Box command 0x18 resets both channel blocks to the flash defaults:
  - the gates become 0x06 (no pulses), the intensity 0xFF (static), the frequency follows MA,
    the width follows the Width parameter, and $4083 = 0;
  - it does not touch the pots or the power level;
  - it is undone by a gate write with bit 0 set or by a new mode.
* New mode (§5). 0x12 copies $4078 to $407B, loads the defaults, then module 1 (gates 0x07)
  for both channels, then the mode's modules, and sets $406D = 2. So it **reloads intensity
  0xFF and clears $4083** until the host rewrites them.
  - 0x04 copies $407B to $4078 and sets $406D = 2, changing no output.
  - 0x10/0x11 step $4078 and start that mode. 0x00/0x05 start the favourite mode. 0x0C
    starts split mode.
  - 0x06 sets P = $4078 - 0x6A. 0x16 loads module [$4182]. 0x19/0x1A/0x1B swap or copy
    $x08C..$x0BF. 0x1C reloads $41F0.. from flash and EEPROM. 0x21 restarts the ramp from
    RampLevel.
  - 0x17 and 0x25..0x27 stop the box (a failure; 0x1E and 0x1F too, per the protocol doc):
    no output and no serial until power_cycle().
* Power-on (§6). RAM is cleared: $407B = $4078 = 0, the ADC is on, the gates are 0x06, the
  power level is Normal (from the EEPROM) and $406D = 1. No output until a mode starts (host
  0x12, ``press_any_key()``) or the host writes a gate. $406D never gates the output.
  ``power_cycle()`` and a reset (an 0x?8 packet with 0xAA) reboot the box. It then ignores
  serial input for ``BOOT_S`` (the self-test screens); the constructor gives an already
  booted box.
* Serial (§9, on top of devices.md section 3).
  - Every byte is XORed with the key $4213.
  - The high nibble of a packet's first byte is its length - 1; 12 bytes at most, so a longer
    head is NACKed at its 13th byte.
  - One-byte packets: low nibble 0..5 -> ``07`` (the sync); 6..8 -> nothing; 0xE -> ``05``
    (the box becomes a link slave: its own modulation stops); 9..0xD and 0xF -> $41F0..$41FF
    reloaded from flash.
  - Longer packets with a bad 8-bit sum -> ``07``. Then, by low nibble: 0xF key exchange
    (also while keyed, under the old key; K is never 0), 0xC read, 0xD write, 0x8 reset if
    the byte before the checksum is 0xAA, anything else -> ``07``.
  - A write without a key -> ``07``, except to a low address byte 0x04/0x0A. A write to the
    flash window or $C000.. -> ``07``.
  - The key survives ``disconnect()``; only a write of 0 to $4213, a reset or
    ``power_cycle()`` clears it. Box replies are never encrypted.
* Memory. The flash window $0000..$00FF is flash 0x1F00..0x1FFF (string table, defaults,
  model 0x0C at $00FC, version 01 06 00). RAM is $4000..$43FF, where $4000..$401F are the CPU
  registers and $4004..$400E the working copies, rewritten on each pass. The EEPROM is
  $8000..$81FF (it survives a power cycle). Addresses past a range wrap inside it.

*[assumed]* (the sources do not say):

* The self-test offset ``cal`` ($406B/$406C) is 0.
* The MA knob reading maps linearly. The level knobs start at 128/128 and the MA knob at 127,
  which gives $420D = 0x87 with the default range.
* The audio inputs are silent.
* Only module 1 and Waves' modules 11/12 are known. Every other program starts with the
  defaults and module 1 only, and an unknown module is noted as an event and does nothing.
* The power limiter D is recomputed on each pass (the firmware does it every 131 ms).
* A parked timed block (one whose next step would change nothing) is not stepped, so its timer
  byte (+8) stops moving.
* The phase modes ($4083 bit 0x01), the A/B turn-taking (0x04), the menus (commands 0x03,
  0x07..0x0B, 0x0D..0x0F, 0x20), Random1 and the split programs are not modelled.
* With a fixed ``box_key`` whose K would be 0, the next box key comes from the seeded random
  generator, as the firmware draws again.
* Write heads below 0x3D write no data and are ACKed, as 0x3D is.
* ``set_battery`` takes 0..100; $4203 reads at most 99.

Not thread-safe: call it from one thread (the hosting layer's). A reply callback may call
``feed`` again; those bytes are queued and handled after the current ones.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Final

from simulators import ContractHook
from simulators._common import hex_bytes
from simulators.clock import Clock
from simulators.output_stage import CALIBRATION_LOAD_OHM, MeterKind, OutputStage, meter_reading
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "ADDR_ADC_FLAGS",
    "ADDR_BATTERY",
    "ADDR_BOX_COMMAND_1",
    "ADDR_BOX_COMMAND_2",
    "ADDR_GATE",
    "ADDR_KEY",
    "ADDR_LEVEL_A",
    "ADDR_LEVEL_B",
    "ADDR_MA_VALUE",
    "ADDR_MENU_SELECTION",
    "ADDR_MENU_STATE",
    "ADDR_MODE",
    "ADDR_MODEL",
    "ADDR_OUTPUT_FLAGS",
    "ADDR_POWER_LEVEL",
    "BOOT_S",
    "BOX_COMMAND_DELAY_S",
    "BOX_COMMAND_POLL_S",
    "CHANNELS",
    "CHANNEL_B_OFFSET",
    "CMD_EXIT_MENU",
    "CMD_MUTE",
    "CMD_NEW_MODE",
    "MODEL_ET312",
    "MODE_MAX",
    "MODE_MIN",
    "MODULATION_STEP_S",
    "MUTE_BIT",
    "POWER_LEVEL_NORMAL",
    "REG_FREQUENCY",
    "REG_INTENSITY",
    "REG_RAMP",
    "REG_WIDTH",
    "REPLY_ACK",
    "REPLY_KEY",
    "REPLY_NACK",
    "REPLY_READ",
    "REPLY_SLAVE",
    "SELECT_OFFSET",
    "TICK_S",
    "Et312Simulator",
    "contract",
]

CHANNELS: Final = ("A", "B")
CHANNEL_B_OFFSET: Final = 0x100
"""Channel B's registers sit 0x100 above channel A's."""

TICK_S: Final = 256 * 64 / 8_000_000
"""One main-loop tick: a Timer0 overflow at clk/64 on the 8 MHz CPU (2.048 ms)."""
MODULATION_STEP_S: Final = 2 * TICK_S
"""One modulation pass (odd ticks): the 244 Hz routine timer (4.096 ms)."""
BOX_COMMAND_POLL_S: Final = 4 * TICK_S
"""Box commands are polled every 8.192 ms, so one runs 0..8.2 ms after it is written."""
BOX_COMMAND_DELAY_S: Final = 0.018
"""The documented wait after writing a box command: more than one poll period."""
BOOT_S: Final = 2.45
"""After a power cycle or reset the box shows its self-test screens and ignores serial input
this long (the delay loops at 0x17f2 and 0x1818; approximate)."""

REPLY_ACK: Final = 0x06
REPLY_NACK: Final = 0x07
"""Also the answer to a sync byte."""
REPLY_KEY: Final = 0x21
REPLY_READ: Final = 0x22
REPLY_SLAVE: Final = 0x05
"""The answer to a single 0x0E: the link-slave handshake."""

_KEY_CONSTANT: Final = 0x55
_PACKET_MAX: Final = 12
"""The receive buffer ($4220..$422B)."""

ADDR_MODEL: Final = 0x00FC
MODEL_ET312: Final = 0x0C
ADDR_ADC_FLAGS: Final = 0x400F
_ADC_DISABLE_BIT: Final = 0x01
ADDR_LEVEL_A: Final = 0x4064
ADDR_LEVEL_B: Final = 0x4065
ADDR_MENU_STATE: Final = 0x406D
ADDR_BOX_COMMAND_1: Final = 0x4070
ADDR_BOX_COMMAND_2: Final = 0x4071
_BOX_COMMAND_NONE: Final = 0xFF
_BOX_COMMAND_LIMIT: Final = 0x28
ADDR_MENU_SELECTION: Final = 0x4078
ADDR_MODE: Final = 0x407B
MODE_MIN: Final = 0x76
MODE_MAX: Final = 0x8E
_MODE_WAVES: Final = 0x76
_MODE_SPLIT: Final = 0x7F
ADDR_OUTPUT_FLAGS: Final = 0x4083
MUTE_BIT: Final = 0x02
"""Bit 0x02 of $4083, called "mute" by the protocol doc. It gates no output: the firmware
only tests it as an audio trigger (§3)."""
_FLAG_B_FOLLOWS_A: Final = 0x08
_FLAG_BUTTONS_OFF: Final = 0x20
ADDR_GATE: Final = 0x4090
ADDR_POWER_LEVEL: Final = 0x41F4
POWER_LEVEL_NORMAL: Final = 2
ADDR_BATTERY: Final = 0x4203
ADDR_MA_VALUE: Final = 0x420D
ADDR_KEY: Final = 0x4213

REG_RAMP: Final = 0x409C
REG_INTENSITY: Final = 0x40A5
REG_FREQUENCY: Final = 0x40AE
REG_WIDTH: Final = 0x40B7
"""Channel A value registers; each heads a block of nine:
value, min, max, rate, step, atMin, atMax, select, timer."""
SELECT_OFFSET: Final = 7

CMD_EXIT_MENU: Final = 0x04
CMD_NEW_MODE: Final = 0x12
CMD_MUTE: Final = 0x18
"""Protocol-doc names; 0x18 actually reloads the channel defaults (gates off)."""

_FLASH_SIZE: Final = 0x100
_RAM_BASE: Final = 0x4000
_RAM_SIZE: Final = 0x400
_EEPROM_BASE: Final = 0x8000
_EEPROM_SIZE: Final = 0x200

# RAM offsets (address - 0x4000).
_R4: Final = 0x004
"""Working registers r4..r14: flags, gate A, ramp A, intensity A, freq A, width A, then B."""
_R15: Final = ADDR_ADC_FLAGS - _RAM_BASE
_TICK_COUNTER: Final = 0x073
_COUNTER_6A: Final = 0x06A
_LEVEL: Final = (ADDR_LEVEL_A - _RAM_BASE, ADDR_LEVEL_B - _RAM_BASE)
_CAL: Final = (0x06B, 0x06C)
_MENU_STATE: Final = ADDR_MENU_STATE - _RAM_BASE
_COMMANDS: Final = (ADDR_BOX_COMMAND_1 - _RAM_BASE, ADDR_BOX_COMMAND_2 - _RAM_BASE)
_RANDOM1: Final = 0x074
_MENU_SEL: Final = ADDR_MENU_SELECTION - _RAM_BASE
_MENU_LOW: Final = 0x079
_MENU_HIGH: Final = 0x07A
_MODE: Final = ADDR_MODE - _RAM_BASE
_FLAGS: Final = ADDR_OUTPUT_FLAGS - _RAM_BASE
_MODULE_CHANNELS: Final = 0x085
_MA_LOW: Final = 0x086
_MA_HIGH: Final = 0x087
_TIMER_LOW: Final = 0x088
_TIMER_MID: Final = 0x089
_TIMER_HIGH: Final = 0x08A
_TIMER_SLOW: Final = 0x08B
_GATE: Final = 0x090
_NEXT_TIMER: Final = 0x094
_NEXT_MAX: Final = 0x095
_NEXT_FLAG: Final = 0x096
_NEXT_MODULE: Final = 0x097
_GATE_ON: Final = 0x098
_GATE_OFF: Final = 0x099
_GATE_SELECT: Final = 0x09A
_GATE_TIMER: Final = 0x09B
_RAMP: Final = REG_RAMP - _RAM_BASE
_INTENSITY: Final = REG_INTENSITY - _RAM_BASE
_FREQUENCY: Final = REG_FREQUENCY - _RAM_BASE
_WIDTH: Final = REG_WIDTH - _RAM_BASE
_BLOCKS: Final = (_RAMP, _INTENSITY, _FREQUENCY, _WIDTH)
_CHANNEL_COPY: Final = (0x08C, 0x0C0)
"""$x08C..$x0BF: what 0x19/0x1A/0x1B swap or copy."""
_LCD_PARAM: Final = 0x182
_SETTINGS: Final = 0x1F0
_TOP_MODE: Final = 0x1F3
_POWER_LEVEL: Final = ADDR_POWER_LEVEL - _RAM_BASE
_SPLIT_B: Final = 0x1F6
_FAVOURITE: Final = 0x1F7
_ADVANCED: Final = 0x1F8
"""RampLevel, RampTime, Depth, Tempo, Freq, Effect, Width, Pace: a pair per block."""
_TEMPO: Final = 0x1FB
_EFFECT: Final = 0x1FD
_BATTERY: Final = ADDR_BATTERY - _RAM_BASE
_LIMITER: Final = 0x204
_CH_LEVEL: Final = (0x205, 0x206)
_MA_VALUE: Final = ADDR_MA_VALUE - _RAM_BASE
_KEY: Final = ADDR_KEY - _RAM_BASE
_POWER_STATUS: Final = 0x215

# Flash 0x1F9C..0x1FDB, copied to $4080..$40BF (and from +8 to $4188..$41BF) by CallTable_24.
_FLASH_DEFAULTS: Final = bytes.fromhex(
    "0000020000030fff"  # $4080: .., $4083 flags 0, $4085 = 3, MA range 0x0F..0xFF
    "0000000000000800"  # $4088: routine timers, $408E
    "0600000000ff0000"  # $4090: gate 0x06 (off), next-module timer max 0xFF, flag 0
    "3e3e00009c9cff07"  # $4098: gate on/off 0x3E, gate select 0; ramp 9C 9C FF 07
    "01fcfc0100ffcdff"  # $40A0: ramp step 1, FC FC, select 01, timer; intensity FF CD FF
    "0101ffff00001609"  # $40A8: intensity rate/step 1, FF FF, select 0; frequency 16 09
    "640101ffff080082"  # $40B0: frequency 64 01 01 FF FF, select 08 (MA); width 82
    "32c80101ffff0400"  # $40B8: width 32 C8 01 01 FF FF, select 04 (Width parameter)
)
# Flash 0x1FDC..0x1FEB -> $41F0..$41FF: ..., top mode Phase3, power level Normal, split A/B,
# favourite Waves, RampLevel, RampTime, Depth, Tempo, Freq, Effect, Width, Pace.
_FLASH_SETTINGS: Final = bytes.fromhex("c02c208702777676e114d70119058205")
# Flash 0x1FEC..: (low, high) of each block's range for the "reflect" select bits.
_REFLECT_RANGE: Final = ((0xCD, 0xFF), (0xA5, 0xFF), (0x0F, 0xFA), (0xFF, 0xFF))
_FLASH_STRINGS: Final = (
    " User 2  User 3  User 4  User 5  User 6  User 7 Split A:Split B:Sel Fav:Ramping "
    "Saved!  Linked! Master  Slave       %   A   B   Ramp:                   "
)
_FIRMWARE_VERSION: Final = (0x01, 0x06, 0x00)

# Program modules known to the simulator, as (channel-relative RAM offset, value) writes;
# offsets below 0x8C are not channel-relative (§5, PROG).
_MODULES: Final[dict[int, tuple[tuple[int, int], ...]]] = {
    1: ((_GATE, 0x07),),
    11: (
        (_MA_LOW, 0x01),
        (_MA_HIGH, 0x40),
        (_WIDTH + 7, 0x41),
        (_WIDTH + 4, 0x02),
        (_FREQUENCY + 7, 0x41),
        (_FREQUENCY + 2, 0x80),
    ),
    12: ((_WIDTH + 7, 0x41), (_WIDTH + 4, 0x03), (_FREQUENCY + 7, 0x41), (_FREQUENCY + 2, 0x40)),
}

_FAILURE_CODES: Final = {0x1E: 4, 0x1F: 80}
"""Failure codes the protocol doc reports for these commands; the others show $4182."""
_FAILURE_COMMANDS: Final = frozenset({0x17, 0x1E, 0x1F, 0x25, 0x26, 0x27})
_NOTED_COMMANDS: Final = {
    0x01: "no operation",
    0x02: "status screen",
    0x13: "LCD write character",
    0x14: "LCD write number",
    0x15: "LCD write string",
    0x1D: "reload working registers",
}

_MAX_BATTERY_REGISTER: Final = 99
_AUDIO_INTENSITY: Final = 173
"""Intensity under gate bit 0x40 with silent audio: (0 >> 1) - 83 mod 256."""

ReplyCallback = Callable[[bytes], None]
_OutputKey = tuple[int, float, float, float] | None
"""What a channel delivers: (strength_du, frequency_hz, intensity_pct, pulse_width_us) or
None for nothing."""


def _swap_nibbles(value: int) -> int:
    return ((value << 4) | (value >> 4)) & 0xFF


def _check_channel(channel: str) -> int:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be 'A' or 'B', got {channel!r}")
    return CHANNELS.index(channel)


def _check_byte(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be within 0..255, got {value}")
    return value


def _gate_pulses(gate: int) -> bool:
    """A gate value that starts pulses: on, a phase pattern, not audio-triggered (§3)."""
    return bool(gate & 0x01) and not gate & 0x20 and bool(gate & 0x0E)


def _phases(gate: int) -> int:
    return 2 if gate & 0x0E == 0x06 else 1


#: The output stage of a et312 unit (``simulators.output_stage``, all **[ours]**):
#: voltage-regulated (an output transformer); a biphasic gate counts two phases in the rms.
OUTPUT_STAGE_NOMINAL_MA_PER_DU: Final = 0.4
OUTPUT_STAGE_SPREAD: Final = 0.2


class Et312Simulator:
    """An ET-312B / MK-312BT: host bytes in, reply bytes and a delivery record out."""

    def __init__(
        self,
        clock: Clock,
        *,
        unit: int = 0,
        seed: int | None = None,
        box_key: int | None = None,
        battery_percent: int = 80,
        knob_a: int = 128,
        knob_b: int = 128,
        ma_knob: int = 127,
    ) -> None:
        if box_key is not None:
            _check_byte("box_key", box_key)
        if not 0 <= battery_percent <= 100:
            raise ValueError(f"battery_percent must be within 0..100, got {battery_percent}")
        self.name: str = "ET-312"
        self._clock = clock
        #: this unit's output stage: mA into a load (``meter``); ``unit`` picks the unit
        self.output_stage = OutputStage.for_unit(
            "et312",
            unit,
            CHANNELS,
            nominal_ma_per_du=OUTPUT_STAGE_NOMINAL_MA_PER_DU,
            spread=OUTPUT_STAGE_SPREAD,
            channel_spread=0.05,
            regulation="voltage",
            compliance_v=None,
            fixed_pulse_width_us=None,
        )
        self._rng = random.Random(seed)
        self._box_key = box_key
        self._battery_percent = battery_percent
        self._pots = [_check_byte("knob_a", knob_a), _check_byte("knob_b", knob_b)]
        self._ma_knob = _check_byte("ma_knob", ma_knob)
        self._answering = True
        self._output: ReplyCallback | None = None
        self._flash = bytearray(_FLASH_SIZE)
        strings = _FLASH_STRINGS.encode("ascii")
        self._flash[: len(strings)] = strings
        self._flash[0x98:0x9C] = b"\xff\xff\xff\xff"
        self._flash[0x9C:0xDC] = _FLASH_DEFAULTS
        self._flash[0xDC:0xEC] = _FLASH_SETTINGS
        self._flash[0xEC:0xFC] = bytes.fromhex("cdff0178a5ff01640ffaffffffffffff")
        self._flash[ADDR_MODEL] = MODEL_ET312
        self._flash[ADDR_MODEL + 1 : ADDR_MODEL + 4] = bytes(_FIRMWARE_VERSION)
        self._eeprom = bytearray(_EEPROM_SIZE)
        self._eeprom[0x01] = 0x55  # provisioned
        self._eeprom[0x02:0x04] = b"\x00\x01"  # serial number
        self._eeprom[0x06:0x08] = b"\x01\x01"  # link signature
        self._eeprom[0x08:0x15] = _FLASH_SETTINGS[3:]
        self._ram = bytearray(_RAM_SIZE)
        self._inbuf = bytearray(_PACKET_MAX)
        self._record = DeliveryRecord()
        self._played_until_s = clock.now_s()
        self._record.observe_until(self._played_until_s)
        # Output of each channel's latest interval; the sentinel string means none yet.
        self._last_key: dict[str, _OutputKey | str] = dict.fromkeys(CHANNELS, "")
        self._outputs: list[_OutputKey] = [None, None]
        self._inbox = bytearray()
        self._feeding = False
        self._boot(self._played_until_s, booting=False)

    # -- power-on ------------------------------------------------------------------------

    def _boot(self, t_s: float, *, booting: bool) -> None:
        """RESET: clear RAM, load the defaults and settings, no key, no output (§6)."""
        self._boot_s = t_s + (BOOT_S if booting else 0.0)
        self._tick_n = 0
        self._last_pass_n = 0
        self._routine = 0
        self._failed: int | None = None
        self._slave = False
        self._dirty = False
        self._active = False
        self._pkt_len = 0
        self._pkt_count = 0
        self._inbuf[:] = bytes(_PACKET_MAX)
        self._last_power_level = -1
        ram = self._ram
        ram[:] = bytes(_RAM_SIZE)
        ram[0x029] = 0x19  # UBRRL: 19200 baud
        ram[0x02A] = 0x98  # UCSRB
        self._load_defaults()
        ram[_SETTINGS : _SETTINGS + 16] = _FLASH_SETTINGS
        if self._eeprom[0x01] == 0x55:
            ram[_TOP_MODE : _TOP_MODE + 13] = self._eeprom[0x08:0x15]
        ram[_MENU_STATE] = 0x01
        ram[_COMMANDS[0]] = ram[_COMMANDS[1]] = _BOX_COMMAND_NONE
        ram[_BATTERY] = min(self._battery_percent, _MAX_BATTERY_REGISTER)
        ram[_POWER_STATUS] = 0x01  # battery present, no PSU
        self._read_pots(t_s)
        self._update_ma(t_s)
        self._reload(t_s)

    def _load_defaults(self) -> None:
        """CallTable_24: flash defaults into $4080..$40BF and $4188..$41BF (§5)."""
        ram = self._ram
        ram[0x080:0x0C0] = _FLASH_DEFAULTS
        ram[0x188:0x1C0] = _FLASH_DEFAULTS[8:]
        self._routine = 0
        self._last_pass_n = self._tick_n

    # -- time -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Simulator time: how far the box has been played out."""
        return self._played_until_s

    def _tick_time(self, n: int) -> float:
        return self._boot_s + n * TICK_S

    def _first_tick_after(self, t_s: float) -> int:
        n = max(1, math.floor((t_s - self._boot_s) / TICK_S) + 1)
        while n > 1 and self._tick_time(n - 1) > t_s:
            n -= 1
        while self._tick_time(n) <= t_s:
            n += 1
        return n

    def _command_pending(self) -> bool:
        ram = self._ram
        return ram[_COMMANDS[0]] < _BOX_COMMAND_LIMIT or ram[_COMMANDS[1]] < _BOX_COMMAND_LIMIT

    def _next_event_tick(self) -> int | None:
        if self._failed is not None:
            return None
        start = max(self._tick_n + 1, self._first_tick_after(self._played_until_s))
        best: int | None = None
        if self._dirty or self._active:
            best = start if start % 2 == 1 else start + 1
        if self._command_pending():
            poll = start + (2 - start) % 4
            best = poll if best is None else min(best, poll)
        return best

    def advance_to(self, t_s: float) -> None:
        """Run the box up to ``t_s``; a time already played is a no-op."""
        if math.isnan(t_s):
            raise ValueError("advance_to needs a time, got NaN")
        while True:
            n = self._next_event_tick()
            if n is None:
                break
            tick_s = self._tick_time(n)
            if tick_s > t_s:
                break
            self._play_until(tick_s)
            self._tick_n = n
            if n % 2 == 1:
                self._pass(tick_s, n)
            elif self._command_pending():
                self._poll_box_commands(tick_s)
        self._play_until(t_s)

    def _sync(self) -> float:
        self.advance_to(self._clock.now_s())
        return self._played_until_s

    def _play_until(self, t_s: float) -> None:
        if t_s <= self._played_until_s:
            return
        for index, channel in enumerate(CHANNELS):
            self._emit(channel, self._outputs[index], self._played_until_s, t_s)
        self._played_until_s = t_s
        self._record.observe_until(t_s)

    def _emit(self, channel: str, key: _OutputKey, start_s: float, end_s: float) -> None:
        if self._last_key[channel] == key:
            self._record.extend_last(channel, end_s)
            return
        if key is None:
            interval = DeliveredInterval(channel, start_s, end_s, 0, 0.0, 0.0)
        else:
            strength_du, frequency_hz, intensity_pct, pulse_width_us = key
            interval = DeliveredInterval(
                channel, start_s, end_s, strength_du, frequency_hz, intensity_pct, pulse_width_us
            )
        self._record.add(interval)
        self._last_key[channel] = key

    # -- the modulation pass (odd ticks) --------------------------------------------------

    def _pass(self, t_s: float, n: int) -> None:
        ram = self._ram
        self._routine += (n + 1) // 2 - (self._last_pass_n + 1) // 2
        self._last_pass_n = n
        count = self._routine
        ram[_TIMER_LOW] = count & 0xFF
        ram[_TIMER_MID] = (count >> 8) & 0xFF
        ram[_TIMER_HIGH] = (count >> 16) & 0xFF
        ram[_TIMER_SLOW] = ((count + 1) // 8) & 0xFF
        ram[_TICK_COUNTER] = n & 0xFF
        ram[_COUNTER_6A] = ((n + 128) // 256) & 0xFF
        if not self._slave:
            for ch in (0, 1):
                self._next_module_timer(t_s, ch)
                self._gate_timer(ch)
                for k in range(len(_BLOCKS)):
                    self._run_block(t_s, ch, k)
        for ch in (0, 1):
            if ram[ch * CHANNEL_B_OFFSET + _GATE] & 0x40:
                ram[ch * CHANNEL_B_OFFSET + _INTENSITY] = _AUDIO_INTENSITY
        self._read_pots(t_s)
        self._update_ma(t_s)
        self._reload(t_s)
        self._dirty = False
        self._active = self._compute_active()

    def _timer(self, select: int) -> int | None:
        """set_routine_timer: the chosen timer's value if it ticked on this pass, else None."""
        ram = self._ram
        low = ram[_TIMER_LOW]
        which = select & 3
        if which == 1:
            return low
        if which == 2:
            return ram[_TIMER_SLOW] if low & 7 == 7 else None
        return ram[_TIMER_MID] if low == 0 else None

    def _next_module_timer(self, t_s: float, ch: int) -> None:
        ram = self._ram
        base = ch * CHANNEL_B_OFFSET
        flag = ram[base + _NEXT_FLAG]
        if flag == 0:
            return
        timer = self._timer(flag)
        if timer is None or (timer - ram[base + _NEXT_TIMER]) & 0xFF < ram[base + _NEXT_MAX]:
            return
        ram[base + _NEXT_TIMER] = (timer + 1) & 0xFF
        module = ram[base + _NEXT_MODULE]
        if ch == 1 and module == ram[_NEXT_MODULE]:
            return
        self._load_module(t_s, module)

    def _gate_timer(self, ch: int) -> None:
        ram = self._ram
        base = ch * CHANNEL_B_OFFSET
        select = ram[base + _GATE_SELECT]
        if select & 3 == 0:
            return
        gate = ram[base + _GATE]
        if gate & 0x01:
            duration = ram[base + _GATE_ON]
            if select & 0x20:
                duration = ram[_EFFECT]
            if select & 0x40:
                duration = ram[_MA_VALUE]
        else:
            duration = ram[base + _GATE_OFF]
            if select & 0x04:
                duration = ram[_TEMPO]
            if select & 0x08:
                duration = ram[_MA_VALUE]
            if duration == 0:
                ram[base + _GATE] = gate | 0x01
                return
        timer = self._timer(select)
        if timer is None or (timer - ram[base + _GATE_TIMER]) & 0xFF < duration:
            return
        ram[base + _GATE_TIMER] = (timer + 1) & 0xFF
        ram[base + _GATE] = gate ^ 0x01

    def _pick(self, source: int, own: int, other: int, k: int, second: bool) -> int:
        """The byte a select byte's 2-bit source field names: own, parameter, MA, other."""
        if source == 0:
            return self._ram[own]
        if source == 1:
            return self._ram[_ADVANCED + 2 * k + (1 if second else 0)]
        if source == 2:
            return self._ram[_MA_VALUE]
        return self._ram[other]

    @staticmethod
    def _reflect(value: int, k: int) -> int:
        low, high = _REFLECT_RANGE[k]
        return (high - value + low) & 0xFF

    def _run_block(self, t_s: float, ch: int, k: int) -> None:
        ram = self._ram
        base = ch * CHANNEL_B_OFFSET + _BLOCKS[k]
        other = (1 - ch) * CHANNEL_B_OFFSET + _BLOCKS[k]
        select = ram[base + SELECT_OFFSET]
        if select & 3 == 0:
            source = (select >> 2) & 3
            if source == 0:
                return
            value = self._pick(source, base, other, k, False)
            if select & 0x10:
                value = self._reflect(value, k)
            ram[base] = value
            return
        rate_source = (select >> 5) & 3
        rate = self._pick(rate_source, base + 3, other + 3, k, True)
        if select & 0x80:
            rate = self._reflect(rate, k)
        timer = self._timer(select)
        if timer is None or (timer - ram[base + 8]) & 0xFF < rate:
            return
        ram[base + 8] = (timer + 1) & 0xFF
        value, low, step, gate_xor, module = self._step(ch, k)
        ram[base], ram[base + 1], ram[base + 4] = value, low, step
        if gate_xor:
            ram[ch * CHANNEL_B_OFFSET + _GATE] ^= gate_xor
        if module is not None:
            self._load_module(t_s, module)

    def _step(self, ch: int, k: int) -> tuple[int, int, int, int, int | None]:
        """One step of a timed block: (value, min, step, gate XOR, module to load or None).

        Pure: it reads RAM and changes nothing, so it also tells whether a block is parked.
        """
        ram = self._ram
        base = ch * CHANNEL_B_OFFSET + _BLOCKS[k]
        other = (1 - ch) * CHANNEL_B_OFFSET + _BLOCKS[k]
        select = ram[base + SELECT_OFFSET]
        source = (select >> 2) & 3
        low = self._pick(source, base + 1, other + 1, k, False)
        if select & 0x10:
            low = self._reflect(low, k)
        value, high, step = ram[base], ram[base + 2], ram[base + 4]
        total = value + step
        if step < 0x80:
            at_max = total > 0xFF or total >= high
            at_min = False
        else:
            at_min = total <= 0xFF or (total & 0xFF) < low
            at_max = not at_min and (total & 0xFF) >= high
        if not (at_min or at_max):
            return total & 0xFF, low, step, 0, None
        if at_min:
            value, action = low, ram[base + 5]
            if action == 0xFD:
                return high, low, step, 0, None
        else:
            value, action = high, ram[base + 6]
            if action == 0xFD:
                return low, low, step, 0, None
        if action == 0xFC:
            return value, low, step, 0, None
        if action in (0xFE, 0xFF):
            return value, low, (-step) & 0xFF, (0x06 if action == 0xFE else 0), None
        a_base = _BLOCKS[k]
        if ch == 1 and action in (ram[a_base + 5], ram[a_base + 6]):
            return value, low, step, 0, None
        return value, low, step, 0, action

    def _compute_active(self) -> bool:
        """Whether the next pass could change anything without a host write or a knob."""
        if self._failed is not None or self._slave:
            return False
        ram = self._ram
        for ch in (0, 1):
            base = ch * CHANNEL_B_OFFSET
            if ram[base + _GATE_SELECT] & 3 or ram[base + _NEXT_FLAG]:
                return True
            for k, offset in enumerate(_BLOCKS):
                if not ram[base + offset + SELECT_OFFSET] & 3:
                    continue
                value, low, step, gate_xor, module = self._step(ch, k)
                block = base + offset
                if (value, low, step) != (ram[block], ram[block + 1], ram[block + 4]):
                    return True
                if gate_xor or module is not None:
                    return True
        return False

    # -- working registers, levels and what reaches the output ----------------------------

    def _read_pots(self, t_s: float) -> None:
        """The ADC: pots into $4064/$4065 while enabled, if more than 1 step away (§2)."""
        ram = self._ram
        if ram[_R15] & _ADC_DISABLE_BIT:
            return
        for ch in (0, 1):
            if abs(self._pots[ch] - ram[_LEVEL[ch]]) > 1:
                ram[_LEVEL[ch]] = self._pots[ch]
                self._dirty = True

    def _update_ma(self, t_s: float) -> None:
        """Function_0x15fc / 0x1650: the MA value within [$4086, $4087] (§8)."""
        ram = self._ram
        low = ram[_MA_LOW]
        span = (ram[_MA_HIGH] - low) & 0xFF
        if span == 0:
            self._fail(t_s, 15, "MA range of zero width (divide by zero)")
            return
        value = ((0xFF - self._ma_knob) << 7) // (0x7F80 // span) + low
        if not ram[_R15] & _ADC_DISABLE_BIT:
            ram[_MA_VALUE] = min(0xFF, value)

    def _reload(self, t_s: float) -> None:
        """CallTable_29 + levels + limiter: what the ISRs use until the next pass (§2, §3)."""
        if self._failed is not None:
            return
        ram = self._ram
        power = ram[_POWER_LEVEL]
        if power >= 4:
            self._fail(t_s, 16, f"power level {power} (valid 0..3)")
            return
        if power != self._last_power_level:
            if self._last_power_level >= 0:
                self._record.add_event(
                    t_s, "power_level", f"$41F4 = {power}: pots x {3 / (5 - power):.2f}"
                )
            self._last_power_level = power
        ram[_R4] = ram[_FLAGS]
        for ch in (0, 1):
            base = ch * CHANNEL_B_OFFSET
            reg = _R4 + 1 + 5 * ch
            ram[reg] = ram[base + _GATE]
            ram[reg + 1] = ram[base + _RAMP]
            ram[reg + 2] = ram[base + _INTENSITY]
            ram[reg + 3] = max(9, ram[base + _FREQUENCY])
            ram[reg + 4] = max(50, ram[base + _WIDTH])
            level = ((ram[_LEVEL[ch]] // (5 - power)) + ram[_CAL[ch]]) * ram[reg + 1] >> 8
            ram[_CH_LEVEL[ch]] = min(0xFF, level)
        limiter = 0
        for ch in (0, 1):
            reg = _R4 + 1 + 5 * ch
            above = max(0, ram[_CH_LEVEL[ch]] - ram[_CAL[ch]])
            divisor = 4 if ram[reg] & 7 == 7 else 8
            limiter += max(0, ((ram[reg + 4] * above) // divisor >> 8) - ram[reg + 3])
        ram[_LIMITER] = limiter & 0xFF
        self._outputs = [self._channel_output(0), self._channel_output(1)]

    def _channel_output(self, ch: int) -> _OutputKey:
        ram = self._ram
        timing = 0 if ch == 1 and ram[_R4] & _FLAG_B_FOLLOWS_A else ch
        timing_reg = _R4 + 1 + 5 * timing
        gate = ram[timing_reg]
        if not _gate_pulses(gate):
            return None
        reg = _R4 + 1 + 5 * ch
        power = ram[_POWER_LEVEL]
        level = ram[_LEVEL[ch]] * ram[reg + 1] * 3 // ((5 - power) * 255)
        strength_du = level * ram[reg + 2] // 256
        if strength_du <= 0:
            return None
        width_us = ram[timing_reg + 4]
        period_us = _phases(gate) * width_us + 256 * (ram[timing_reg + 3] + 1 + ram[_LIMITER])
        return (strength_du, 1e6 / period_us, 100.0, float(width_us))

    def _halted(self) -> bool:
        return self._failed is not None

    def _fail(self, t_s: float, code: int, why: str) -> None:
        """The error handler: "Failure NN", interrupts off, no output, no serial (§5)."""
        if self._failed is not None:
            return
        self._failed = code
        self._outputs = [None, None]
        self._active = self._dirty = False
        self._record.add_event(t_s, "failure", f"Failure {code}: {why}; power cycle needed")

    # -- program modules and box commands -------------------------------------------------

    def _load_module(self, t_s: float, number: int) -> None:
        """CallTable_22/30: a module's writes, to A and/or B as $4085 says (§5)."""
        writes = _MODULES.get(number)
        if writes is None:
            self._record.add_event(t_s, "module_not_modelled", f"module {number}")
            return
        ram = self._ram
        channels = ram[_MODULE_CHANNELS]
        for ch in (0, 1):
            if not channels & (1 << ch):
                continue
            for offset, value in writes:
                relative = _CHANNEL_COPY[0] <= offset < _CHANNEL_COPY[1]
                ram[offset + (ch * CHANNEL_B_OFFSET if relative else 0)] = value
        self._dirty = True

    def _poll_box_commands(self, t_s: float) -> None:
        ram = self._ram
        for address in _COMMANDS:
            command = ram[address]
            if command >= _BOX_COMMAND_LIMIT:
                continue
            ram[address] = _BOX_COMMAND_NONE
            self._run_box_command(t_s, command)
            if self._failed is not None:
                return

    def _exit_menu(self) -> None:
        """CallTable_4: $407B -> $4078, menu bounds, status screen; no output change."""
        ram = self._ram
        ram[_MENU_SEL] = ram[_MODE]
        ram[_MENU_HIGH] = ram[_TOP_MODE]
        ram[_MENU_LOW] = MODE_MIN
        ram[_MENU_STATE] = 0x02

    def _new_mode(self, t_s: float) -> None:
        """CallTable_18: defaults, module 1 on both channels, the mode's modules (§5)."""
        ram = self._ram
        ram[_RANDOM1] = 0
        mode = ram[_MENU_SEL]
        ram[_MODE] = mode
        self._load_defaults()
        self._load_module(t_s, 1)
        if mode == _MODE_WAVES:
            ram[_MODULE_CHANNELS] = 0x01
            self._load_module(t_s, 11)
            ram[_MODULE_CHANNELS] = 0x02
            self._load_module(t_s, 11)
            self._load_module(t_s, 12)
        elif not MODE_MIN <= mode <= MODE_MAX:
            self._record.add_event(
                t_s, "mode_unknown", f"mode 0x{mode:02x}: defaults and module 1 only"
            )
        ram[_MODULE_CHANNELS] = 0x03
        ram[_MENU_STATE] = 0x02
        self._record.add_event(t_s, "mode_start", f"mode 0x{mode:02x}: defaults reloaded")
        self._reload(t_s)
        self._dirty = True

    def _run_box_command(self, t_s: float, command: int) -> None:
        ram = self._ram
        self._record.add_event(t_s, "box_command", f"0x{command:02x}")
        if command in (0x00, 0x05):  # start the favourite mode
            ram[_MENU_LOW] = MODE_MIN
            ram[_MENU_HIGH] = ram[_TOP_MODE]
            ram[_MENU_SEL] = ram[_FAVOURITE]
            self._new_mode(t_s)
        elif command == CMD_EXIT_MENU:
            self._exit_menu()
        elif command == 0x06:  # set power level from the menu selection
            ram[_POWER_LEVEL] = (ram[_MENU_SEL] - 0x6A) & 0xFF
            self._exit_menu()
            self._dirty = True
        elif command == 0x0C:  # activate split mode
            ram[_SPLIT_B] = ram[_MENU_SEL]
            ram[_MENU_SEL] = ram[_MODE] = _MODE_SPLIT
            self._new_mode(t_s)
            self._exit_menu()
        elif command == 0x10:
            selection = ram[_MENU_SEL]
            ram[_MENU_SEL] = selection + 1 if selection < ram[_MENU_HIGH] else ram[_MENU_LOW]
            self._new_mode(t_s)
        elif command == 0x11:
            selection = ram[_MENU_SEL]
            ram[_MENU_SEL] = (
                ram[_MENU_HIGH] if selection == ram[_MENU_LOW] else (selection - 1) & 0xFF
            )
            self._new_mode(t_s)
        elif command == CMD_NEW_MODE:
            self._new_mode(t_s)
        elif command == 0x16:
            self._load_module(t_s, ram[_LCD_PARAM])
        elif command == CMD_MUTE:
            self._load_defaults()
            self._reload(t_s)
            self._dirty = True
            self._record.add_event(t_s, "defaults", "0x18: channel defaults, gates 0x06 (off)")
        elif command in (0x19, 0x1A, 0x1B):
            first, end = _CHANNEL_COPY
            a = bytes(ram[first:end])
            b = bytes(ram[first + CHANNEL_B_OFFSET : end + CHANNEL_B_OFFSET])
            if command in (0x19, 0x1A):
                ram[first + CHANNEL_B_OFFSET : end + CHANNEL_B_OFFSET] = a
            if command in (0x19, 0x1B):
                ram[first:end] = b
            self._dirty = True
        elif command == 0x1C:
            ram[_SETTINGS : _SETTINGS + 16] = _FLASH_SETTINGS
            ram[_TOP_MODE : _TOP_MODE + 13] = self._eeprom[0x08:0x15]
            self._dirty = True
        elif command == 0x21:  # start ramp
            for base in (0, CHANNEL_B_OFFSET):
                ram[base + _RAMP + 8] = 0
                ram[base + _RAMP + SELECT_OFFSET] = 0x27
                ram[base + _RAMP] = ram[_ADVANCED]
            self._dirty = True
        elif command in _FAILURE_COMMANDS:
            code = _FAILURE_CODES.get(command, ram[_LCD_PARAM])
            self._fail(t_s, code, f"box command 0x{command:02x}")
        elif command in _NOTED_COMMANDS:
            self._record.add_event(t_s, "box_command_noted", _NOTED_COMMANDS[command])
            self._dirty = True
        else:
            self._record.add_event(
                t_s, "box_command_not_modelled", f"0x{command:02x} (menu action)"
            )

    # -- memory ---------------------------------------------------------------------------

    def _load(self, address: int) -> int:
        address &= 0xFFFF
        if address < _RAM_BASE:
            return self._flash[address % _FLASH_SIZE]
        if address < _EEPROM_BASE:
            return self._ram[address % _RAM_SIZE]
        return self._eeprom[address % _EEPROM_SIZE]

    def _store_ram(self, t_s: float, offset: int, value: int) -> None:
        ram = self._ram
        offset %= _RAM_SIZE
        ram[offset] = value
        self._dirty = True
        if offset == _KEY:
            if value == 0:
                self._record.add_event(t_s, "key_reset", "key cleared; host bytes are plain")
            else:
                self._record.add_event(t_s, "key_set", f"K = 0x{value:02x}")
        elif offset in _COMMANDS and value != _BOX_COMMAND_NONE:
            if value >= _BOX_COMMAND_LIMIT:
                self._record.add_event(
                    t_s, "box_command_ignored", f"0x{value:02x} >= 0x28 is never run"
                )
        elif offset in _LEVEL and not ram[_R15] & _ADC_DISABLE_BIT:
            self._read_pots(t_s)
            if ram[offset] != value:
                self._record.add_event(
                    t_s,
                    "level_write_overridden",
                    f"${_RAM_BASE + offset:04x}: the ADC is on; the knob reads {ram[offset]}",
                )
        elif offset == _R15:
            self._read_pots(t_s)

    # -- byte stream ----------------------------------------------------------------------

    def set_output(self, callback: ReplyCallback | None) -> None:
        """Send the box's reply bytes to ``callback`` (``None``: drop them)."""
        self._output = callback

    def feed(self, data: bytes) -> None:
        """Bytes from the host, split anyhow; bad bytes are NACKed or dropped, never raised.

        Only a ``data`` that is not bytes-like at all (a host programming error) raises
        ``TypeError``.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"feed needs bytes, got {type(data).__name__}")
        self._inbox += bytes(data)
        if self._feeding:
            return
        self._feeding = True
        try:
            now_s = self._sync()
            if self._failed is not None or now_s < self._boot_s:
                why = "failed" if self._failed is not None else "still booting"
                self._record.add_event(now_s, "bytes_lost", f"{len(self._inbox)} bytes: {why}")
                self._inbox.clear()
                return
            while self._inbox:
                raw = self._inbox[0]
                del self._inbox[0]
                self._on_byte(now_s, raw)
                if self._halted():
                    self._inbox.clear()
        finally:
            self._feeding = False

    def _on_byte(self, t_s: float, raw: int) -> None:
        byte = raw ^ self._ram[_KEY]
        if self._pkt_len == 0:
            length = (byte >> 4) + 1
            if length == 1:
                self._inbuf[0] = byte
                self._on_single(t_s, byte)
                return
            self._pkt_len = min(length, _PACKET_MAX + 1)
            self._pkt_count = 0
        if self._pkt_count < _PACKET_MAX:
            self._inbuf[self._pkt_count] = byte
        self._pkt_count += 1
        if self._pkt_count < self._pkt_len:
            return
        self._pkt_len = 0
        if self._pkt_count > _PACKET_MAX:
            self._record.add_event(t_s, "nack", "packet longer than 12 bytes: buffer overflow")
            self._send(bytes([REPLY_NACK]))
            return
        self._on_packet(t_s)

    def _on_single(self, t_s: float, byte: int) -> None:
        low = byte & 0x0F
        if low <= 5:
            self._send(bytes([REPLY_NACK]))
            return
        if low <= 8:
            self._record.add_event(t_s, "byte_ignored", f"single byte 0x{byte:02x}")
            return
        if low == 0x0E:
            self._send(bytes([REPLY_SLAVE]))
            if not self._slave:
                self._slave = True
                self._record.add_event(t_s, "link_slave", "box is now a link slave")
        self._ram[_SETTINGS : _SETTINGS + 16] = _FLASH_SETTINGS
        self._dirty = True
        self._record.add_event(
            t_s, "settings_reloaded", f"single byte 0x{byte:02x}: $41F0..$41FF from flash"
        )

    def _on_packet(self, t_s: float) -> None:
        buf = self._inbuf
        length = (buf[0] >> 4) + 1
        packet = bytes(buf[:length])
        if sum(packet[:-1]) & 0xFF != packet[-1]:
            self._record.add_event(
                t_s,
                "nack",
                f"checksum 0x{packet[-1]:02x}, expected 0x{sum(packet[:-1]) & 0xFF:02x}: "
                f"{hex_bytes(packet)}",
            )
            self._send(bytes([REPLY_NACK]))
            return
        kind = buf[0] & 0x0F
        if kind == 0x0F:
            self._on_key_exchange(t_s, buf[1])
        elif kind == 0x0C:
            value = self._load((buf[1] << 8) | buf[2])
            self._send(bytes([REPLY_READ, value, (REPLY_READ + value) & 0xFF]))
        elif kind == 0x0D:
            self._on_write(t_s, buf[1], buf[2], bytes(buf[3 : length - 1]), packet)
        elif kind == 0x08 and buf[length - 2] == 0xAA:
            self._record.add_event(t_s, "reset", "reset packet: the box reboots")
            self._boot(t_s, booting=True)
        else:
            self._record.add_event(t_s, "nack", f"unknown command: {hex_bytes(packet)}")
            self._send(bytes([REPLY_NACK]))

    def _on_write(self, t_s: float, hi: int, lo: int, data: bytes, packet: bytes) -> None:
        if self._ram[_KEY] == 0 and lo not in (0x04, 0x0A):
            self._record.add_event(t_s, "write_refused", f"no key yet: {hex_bytes(packet)}")
            self._send(bytes([REPLY_NACK]))
            return
        region = hi & 0xC0
        if region == 0x40:
            start = ((hi & 0x03) << 8) | lo
            for index, value in enumerate(data):
                self._store_ram(t_s, start + index, value)
        elif region == 0x80:
            start = ((hi & 0x01) << 8) | lo
            for index, value in enumerate(data):
                self._eeprom[(start + index) % _EEPROM_SIZE] = value
        else:
            self._record.add_event(t_s, "write_refused", f"not RAM/EEPROM: {hex_bytes(packet)}")
            self._send(bytes([REPLY_NACK]))
            return
        self._send(bytes([REPLY_ACK]))

    def _on_key_exchange(self, t_s: float, host_key: int) -> None:
        box_key = self._rng.randrange(256) if self._box_key is None else self._box_key
        key = _swap_nibbles(host_key) ^ box_key ^ _KEY_CONSTANT
        while key == 0:
            box_key = self._rng.randrange(256)
            key = _swap_nibbles(host_key) ^ box_key ^ _KEY_CONSTANT
        self._send(bytes([REPLY_KEY, box_key, (REPLY_KEY + box_key) & 0xFF]))
        rekey = self._ram[_KEY] != 0
        self._ram[_KEY] = key
        self._record.add_event(
            t_s,
            "key_exchange",
            f"host key 0x{host_key:02x}, box key 0x{box_key:02x}: K 0x{key:02x}"
            + (" (replaces the old key)" if rekey else ""),
        )

    def _send(self, reply: bytes) -> None:
        if self._answering and self._output is not None:
            self._output(reply)

    # -- state and the physical box -------------------------------------------------------

    def meter(
        self, channel: str, kind: MeterKind = "peak", load_ohm: float = CALIBRATION_LOAD_OHM
    ) -> float:
        """A virtual scope (``peak``) or true-rms meter (``rms``) on a ``load_ohm`` resistor
        across ``channel``: the current (mA) delivered now, from this unit's output stage
        and its own record. Call it where the simulator lives (the IO loop)."""
        ch = _check_channel(channel)
        now = self._sync()
        interval = self._record.interval_at(channel, math.nextafter(now, -math.inf))
        return meter_reading(
            self.output_stage,
            interval,
            kind=kind,
            load_ohm=load_ohm,
            phases=self._meter_phases(ch),
            pulses_per_period=1,
        )

    def _meter_phases(self, ch: int) -> int:
        """Phases per pulse of channel ``ch`` now: its timing gate's pattern (§3)."""
        ram = self._ram
        timing = 0 if ch == 1 and ram[_R4] & _FLAG_B_FOLLOWS_A else ch
        return _phases(ram[_R4 + 1 + 5 * timing])

    @property
    def record(self) -> DeliveryRecord:
        """What was delivered, played out up to the clock's current time."""
        self._sync()
        return self._record

    @property
    def key(self) -> int:
        """The XOR key K host bytes are decrypted with (0: none)."""
        self._sync()
        return self._ram[_KEY]

    @property
    def failed(self) -> int | None:
        """The failure code the box stopped with ("Failure NN"), or None while it runs."""
        self._sync()
        return self._failed

    def peek(self, address: int) -> int:
        """The virtual memory value at ``address`` (wrapping as a read does), at clock time."""
        self._sync()
        return self._load(address)

    def disconnect(self) -> None:
        """The host went away. Nothing changes in the box: it runs on and keeps its key."""
        now_s = self._sync()
        self._record.add_event(now_s, "disconnect", "host gone; the box runs on")

    def power_cycle(self) -> None:
        """Switch off and on: RAM reset, key cleared, no output, deaf for ``BOOT_S``."""
        now_s = self._sync()
        self._outputs = [None, None]
        self._inbox.clear()
        self._boot(now_s, booting=True)
        self._record.add_event(now_s, "power_cycle", "RAM reset, key cleared, booting")

    def press_any_key(self) -> None:
        """A front-panel key at the power-on screen: start the favourite mode (§6).

        The menus are not modelled, so this does the same in any state, unless the host
        disabled the buttons ($4083 bit 0x20) or the box is booting or failed.
        """
        now_s = self._sync()
        if self._failed is not None or now_s < self._boot_s:
            return
        if self._ram[_FLAGS] & _FLAG_BUTTONS_OFF:
            self._record.add_event(now_s, "key_ignored", "front-panel buttons disabled")
            return
        self._record.add_event(now_s, "key_press", "favourite mode")
        self._run_box_command(now_s, 0x00)

    def turn_knob(self, channel: str, delta: int) -> None:
        """Turn channel's front level pot by ``delta`` (position clamped to 0..255)."""
        now_s = self._sync()
        index = _check_channel(channel)
        self._pots[index] = max(0, min(0xFF, self._pots[index] + delta))
        self._read_pots(now_s)
        self._dirty = True
        self._record.add_event(now_s, "knob", f"{channel} pot {self._pots[index]}")

    def turn_ma_knob(self, delta: int) -> None:
        """Turn the Multi-Adjust knob by ``delta`` (reading clamped to 0..255)."""
        now_s = self._sync()
        self._ma_knob = max(0, min(0xFF, self._ma_knob + delta))
        self._dirty = True
        self._record.add_event(now_s, "ma_knob", f"MA knob {self._ma_knob}")

    def set_battery(self, percent: int) -> None:
        """Set the battery charge; $4203 shows it (at most 99)."""
        now_s = self._sync()
        if not 0 <= percent <= 100:
            raise ValueError(f"battery percent must be within 0..100, got {percent}")
        self._battery_percent = percent
        self._ram[_BATTERY] = min(percent, _MAX_BATTERY_REGISTER)
        self._record.add_event(now_s, "battery", f"battery {percent} %")

    def stop_answering(self, on: bool) -> None:
        """Fault: while ``on`` the box still reads and acts on bytes but sends nothing back."""
        now_s = self._sync()
        self._answering = not on
        self._record.add_event(now_s, "stop_answering", "on" if on else "off")

    def __repr__(self) -> str:
        return (
            f"Et312Simulator(now_s={self._played_until_s!r}, key=0x{self._ram[_KEY]:02x}, "
            f"mode=0x{self._ram[_MODE]:02x}, failed={self._failed!r})"
        )


# -- the device contract (tests/contract, the bench) --------------------------------------------


def _contract_tamper(sim: Et312Simulator) -> None:
    """Switched off and on: the box back in its own program, the host's settings gone."""
    sim.power_cycle()


def _contract_limits_written(sim: Et312Simulator, ceilings: Mapping[str, int]) -> bool:
    """The host holds the channel: the intensity, frequency and width selects of channel A are
    static (0), so the box's own program does not move them."""
    selects = [sim.peek(base + SELECT_OFFSET) for base in (REG_INTENSITY, REG_FREQUENCY, REG_WIDTH)]
    return all(v == 0 for v in selects)


#: what the shared device contract needs of this simulator; the front knobs sit at mid travel,
#: so one du of level delivers 128 / 255 du
contract: Final = ContractHook(
    level_du=10,
    tamper=_contract_tamper,
    limits_written=_contract_limits_written,
    output_scale=128 / 255,
)
