"""Firmware emulator of the ErosTek ET-312B / MK-312BT, a serial (RS-232 / Bluetooth SPP) box.

Written only from ``../shared/reference/devices.md`` section 3 (the byte protocol) and
``docs/devices/et312.md`` (the project's model of what the registers mean and what the box
delivers), so that it can judge the host's codec independently: bytes in (``feed``), reply
bytes out (``set_output``), and a ``DeliveryRecord`` of what the box would have delivered on
channels "A" and "B".

It must never import the host side (``firmware_bridge``, ``safety``, ``acustim``, ``gui``),
never read time except through the ``Clock`` it was given, never sleep, and never raise on bad
bytes from the host: a bad byte or packet is ignored (or NACKed) and noted as an event, as the
box would. Above all it must never stop delivering because the host went quiet: the real box
runs its program on its own, with no keep-alive, and so does this one.

Protocol rules emulated (from the documents):

* Sync: a ``00`` at a packet boundary is answered ``07``.
* Key exchange ``2F hk cs`` (always sent unencrypted) -> ``21 bk cs``; the box key ``bk`` is
  random (seeded) or the ``box_key`` given. From then on every host byte is XORed with
  ``K = swapNibbles(hk) ^ bk ^ 0x55`` and is decrypted before it is interpreted. ``K`` lives in
  RAM at $4213; writing 0 there is the "key reset" and the next byte is plain again.
* Checksum: the 8-bit sum of the packet's preceding (decrypted) bytes. A packet whose checksum
  does not match is answered with NACK ``07`` and not executed. The document marks this NACK
  **[unconfirmed on the original firmware]** (it comes from protocol.txt and the clone);
  it is implemented as documented.
* Read ``3C hi lo cs`` -> ``22 value cs``. Reads work before any key exchange.
* Write of n = 1..8 bytes ``((3+n)<<4 | 0x0D) hi lo d1..dn cs`` -> ``06``. Writes need the key.
* Unknown command bytes are ignored, one byte at a time, with no reply.
* Box replies are never encrypted.
* Memory: flash $0000-$00FF (a read-only window; $00FC = 0x0C model, $00FD..$00FF = 01 06 00
  firmware), RAM $4000-$43FF, EEPROM $8000-$81FF. Addresses past a range wrap inside it.
* Box commands written to $4070/$4071 are acted on when the main loop polls them,
  ``BOX_COMMAND_DELAY_S`` (18 ms) after the first such write; then both read 0xFF again.
* The key survives ``disconnect()``; only a write of 0 to $4213 or ``power_cycle()`` clears it.

Where the documents are silent, the behaviour here is **[assumed]**:

* Every host byte is XORed with the current ``K`` and interpreted. A byte that does not
  decrypt to a command head at a packet boundary (for instance a plain ``00`` from a new host
  while an old key is set) is dropped with no reply (event ``byte_ignored``). One that happens
  to decrypt to a head (``2F``, ``3C``, ``4D``..``BD``) starts that packet; the following
  bytes complete it and, the checksum almost surely failing, the box answers NACK ``07``.
  So a lone ``07`` does not prove that a guessed key is right: a host should confirm it with
  a read. A ``00`` inside a packet is packet data, not a sync (hence "send up to 12 syncs").
  There is no inter-byte timeout: a partial packet waits for its bytes forever.
* A write before any key exchange is consumed in full and not executed, with no reply (event
  ``write_refused``); the host sees a timeout. A key exchange while a key is already set is
  not answered either (event ``key_exchange_refused``): the host must sync with the old key
  and reset it first. A key exchange whose ``K`` comes out 0 still counts as done.
* Writes to the flash window are acknowledged but change nothing. EEPROM is writable and
  survives ``power_cycle()``. $4029 (baud rate) is plain RAM: the byte stream has no baud.
* Level pots: the simulator keeps the physical pot position. While the ADC is enabled (bit 0
  of $400F clear) $4064/$4065 follow the pot at once and host writes there are acknowledged
  but ignored; while it is disabled the registers hold what the host writes and a turned pot
  changes nothing until the ADC is enabled again, when the registers re-read the pots.
* After power-on the box sits in the menu ($406D = 0x01) and delivers nothing; there is no
  front-panel button in this API. Box command 0x04 (exit menu) runs the mode in $407B;
  0x12 (new mode) (re)starts it and leaves the menu too. Either one sets $406D = 0x02, and the
  simulator delivers whenever $406D reads 0x02. A mode outside 0x76..0x8E is not started
  (event ``box_command_ignored``). 0x10/0x11 step the mode (wrapping in 0x76..0x8E) and
  restart it if running; 0x18 sets the mute bit; 0x19 swaps and 0x1A/0x1B copy the channel
  blocks $x090..$x0BF; the LCD, module-load and ramp commands are noted and do nothing.
* Starting a mode does not load the mode's module tables (the document does not give them):
  the channel registers keep their values. The power-on defaults below stand in for the
  Waves program, with all three select bytes non-zero so that a host which forgets to make
  them static sees the values move.
* A non-zero select byte makes the value a triangle between its min and max registers
  (sorted), one unit per ``MODULATION_STEP_S``, starting from where the value is and turning
  at the ends; a value outside the range walks into it. The rate/step/atMin/atMax/timer
  registers are stored but not interpreted. Values move only while a mode runs.
* Output per channel (docs/devices/et312.md "What the box delivers"): while a mode runs, mute
  (bit 0x02 of $4083) is off and the intensity value is above 128, the channel delivers
  ``strength_du = intensity - 128``, ``intensity_pct = 100 * level / 255`` (the $4064/$4065
  register), ``frequency_hz = 1000 / frequency value`` (a value of 0 counts as 256) and
  ``pulse_width_us = width value``. Otherwise it delivers nothing, recorded as an idle
  interval (strength 0, frequency 0, intensity 0, no pulse width). The gate registers, the
  power level and the phase/mono flags are stored but do not shape the record.
* Intervals start anew at the exact time of any change that alters a channel's output (a host
  write, a box command taking effect, a modulation step, a knob, a power cycle).
* ``disconnect()`` changes nothing in the box, not even a half-received packet.
  ``power_cycle()`` resets RAM to the power-on defaults, clears the key and any half-received
  packet and pending box command, and returns to the menu; the pot positions, the battery,
  the EEPROM and the random generator (the next box key) carry on.
* ``set_battery`` takes 0..100; $4203 reads at most 99, as the document gives 0..99.

Not thread-safe: call it from one thread (the hosting layer's). A reply callback may call
``feed`` again; those bytes are queued and handled after the current ones.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Final

from simulators._common import hex_bytes
from simulators.clock import Clock
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "ADDR_ADC_FLAGS",
    "ADDR_BATTERY",
    "ADDR_BOX_COMMAND_1",
    "ADDR_BOX_COMMAND_2",
    "ADDR_KEY",
    "ADDR_LEVEL_A",
    "ADDR_LEVEL_B",
    "ADDR_MENU_STATE",
    "ADDR_MODE",
    "ADDR_MODEL",
    "ADDR_OUTPUT_FLAGS",
    "BOX_COMMAND_DELAY_S",
    "CHANNELS",
    "CHANNEL_B_OFFSET",
    "MODEL_ET312",
    "MODE_MAX",
    "MODE_MIN",
    "MODULATION_STEP_S",
    "MUTE_BIT",
    "REG_FREQUENCY",
    "REG_INTENSITY",
    "REG_WIDTH",
    "REPLY_ACK",
    "REPLY_KEY",
    "REPLY_NACK",
    "REPLY_READ",
    "SELECT_OFFSET",
    "Et312Simulator",
]

CHANNELS: Final = ("A", "B")
CHANNEL_B_OFFSET: Final = 0x100
"""Channel B's registers sit 0x100 above channel A's."""

BOX_COMMAND_DELAY_S: Final = 0.018
"""Time from the first write to $4070/$4071 until the main loop acts on it."""
MODULATION_STEP_S: Final = 0.05
"""One unit of a box-driven (non-static select) value moves per this time [assumed]."""

REPLY_ACK: Final = 0x06
REPLY_NACK: Final = 0x07
"""Also the answer to a sync byte."""
REPLY_KEY: Final = 0x21
REPLY_READ: Final = 0x22

_HEAD_SYNC: Final = 0x00
_HEAD_KEY: Final = 0x2F
_HEAD_READ: Final = 0x3C
_WRITE_LOW_NIBBLE: Final = 0x0D
_WRITE_MIN_BYTES: Final = 1
_WRITE_MAX_BYTES: Final = 8
_KEY_CONSTANT: Final = 0x55

ADDR_MODEL: Final = 0x00FC
MODEL_ET312: Final = 0x0C
_FIRMWARE_VERSION: Final = (0x01, 0x06, 0x00)
ADDR_ADC_FLAGS: Final = 0x400F
_ADC_DISABLE_BIT: Final = 0x01
ADDR_LEVEL_A: Final = 0x4064
ADDR_LEVEL_B: Final = 0x4065
ADDR_MENU_STATE: Final = 0x406D
_MENU_STATE_MENU: Final = 0x01
_MENU_STATE_RUNNING: Final = 0x02
ADDR_BOX_COMMAND_1: Final = 0x4070
ADDR_BOX_COMMAND_2: Final = 0x4071
_BOX_COMMAND_NONE: Final = 0xFF
ADDR_MODE: Final = 0x407B
MODE_MIN: Final = 0x76
MODE_MAX: Final = 0x8E
ADDR_OUTPUT_FLAGS: Final = 0x4083
MUTE_BIT: Final = 0x02
ADDR_BATTERY: Final = 0x4203
ADDR_KEY: Final = 0x4213

REG_INTENSITY: Final = 0x40A5
REG_FREQUENCY: Final = 0x40AE
REG_WIDTH: Final = 0x40B7
"""Channel A value registers; each heads a block of nine:
value, min, max, rate, step, atMin, atMax, select, timer."""
SELECT_OFFSET: Final = 7
_CHANNEL_BLOCK_FIRST: Final = 0x90
_CHANNEL_BLOCK_END: Final = 0xC0

_FLASH_SIZE: Final = 0x100
_RAM_BASE: Final = 0x4000
_RAM_SIZE: Final = 0x400
_EEPROM_BASE: Final = 0x8000
_EEPROM_SIZE: Final = 0x200

_CMD_EXIT_MENU: Final = 0x04
_CMD_NEXT_MODE: Final = 0x10
_CMD_PREVIOUS_MODE: Final = 0x11
_CMD_NEW_MODE: Final = 0x12
_CMD_MUTE: Final = 0x18
_CMD_SWAP: Final = 0x19
_CMD_COPY_A_TO_B: Final = 0x1A
_CMD_COPY_B_TO_A: Final = 0x1B
_CMD_NOTED: Final = {
    0x13: "LCD write character",
    0x14: "LCD write number",
    0x15: "LCD write string",
    0x16: "load module",
    0x21: "start ramp",
}

_MAX_BATTERY_REGISTER: Final = 99

# Power-on RAM values (offsets from $4000) that are not 0. The channel blocks stand in for
# the Waves program [assumed]: value, min, max, rate, step, atMin, atMax, select, timer.
_CHANNEL_DEFAULTS: Final = {
    REG_INTENSITY - _RAM_BASE: (0xE0, 0xC0, 0xFF, 0x01, 0x01, 0xFF, 0xFF, 0x01, 0x00),
    REG_FREQUENCY - _RAM_BASE: (0x16, 0x08, 0x64, 0x01, 0x01, 0xFF, 0xFF, 0x01, 0x00),
    REG_WIDTH - _RAM_BASE: (0x82, 0x40, 0xC4, 0x01, 0x01, 0xFF, 0xFF, 0x01, 0x00),
}
_RAM_DEFAULTS: Final = {
    0x029: 0x19,  # UBRRL: 19200 baud
    ADDR_MENU_STATE - _RAM_BASE: _MENU_STATE_MENU,
    ADDR_BOX_COMMAND_1 - _RAM_BASE: _BOX_COMMAND_NONE,
    ADDR_BOX_COMMAND_2 - _RAM_BASE: _BOX_COMMAND_NONE,
    ADDR_MODE - _RAM_BASE: MODE_MIN,
    0x086: 0x0F,  # Multi-Adjust min
    0x087: 0xFF,  # Multi-Adjust max
    0x1F4: 0x01,  # power level (its coding is disputed)
    0x1F5: MODE_MIN,  # split mode A
    0x1F6: MODE_MIN,  # split mode B
    0x1F7: MODE_MIN,  # favourite mode
    0x20D: 0x87,  # Multi-Adjust value
    0x215: 0x01,  # power status: battery present, no PSU
}
_EEPROM_DEFAULTS: Final = {0x001: 0x55, 0x002: 0x00, 0x003: 0x01}

ReplyCallback = Callable[[bytes], None]
_OutputKey = tuple[int, float, float, float] | None
"""What a channel delivers: (strength_du, frequency_hz, intensity_pct, pulse_width_us) or
None for nothing."""


def _checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFF


def _swap_nibbles(value: int) -> int:
    return ((value << 4) | (value >> 4)) & 0xFF


def _write_length(head: int) -> int:
    """Data bytes of a write head (``4D`` -> 1 .. ``BD`` -> 8), or 0 if it is not one."""
    if head & 0x0F != _WRITE_LOW_NIBBLE:
        return 0
    count = (head >> 4) - 3
    return count if _WRITE_MIN_BYTES <= count <= _WRITE_MAX_BYTES else 0


def _packet_length(head: int) -> int:
    """Total length of the packet that ``head`` (decrypted) starts; 0 if it starts none."""
    if head == _HEAD_SYNC:
        return 1
    if head == _HEAD_KEY:
        return 3
    if head == _HEAD_READ:
        return 4
    count = _write_length(head)
    return count + 4 if count else 0


def _check_channel(channel: str) -> int:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be 'A' or 'B', got {channel!r}")
    return CHANNELS.index(channel)


def _check_byte(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be within 0..255, got {value}")
    return value


class Et312Simulator:
    """An ET-312B / MK-312BT: host bytes in, reply bytes and a delivery record out."""

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int | None = None,
        box_key: int | None = None,
        battery_percent: int = 80,
        knob_a: int = 128,
        knob_b: int = 128,
    ) -> None:
        if box_key is not None:
            _check_byte("box_key", box_key)
        if not 0 <= battery_percent <= 100:
            raise ValueError(f"battery_percent must be within 0..100, got {battery_percent}")
        self.name: str = "ET-312"
        self._clock = clock
        self._rng = random.Random(seed)
        self._box_key = box_key
        self._battery_percent = battery_percent
        self._pots = [_check_byte("knob_a", knob_a), _check_byte("knob_b", knob_b)]
        self._answering = True
        self._output: ReplyCallback | None = None
        self._flash = bytearray(_FLASH_SIZE)
        self._flash[ADDR_MODEL] = MODEL_ET312
        self._flash[ADDR_MODEL + 1 : ADDR_MODEL + 4] = bytes(_FIRMWARE_VERSION)
        self._eeprom = bytearray(_EEPROM_SIZE)
        for offset, value in _EEPROM_DEFAULTS.items():
            self._eeprom[offset] = value
        self._ram = bytearray(_RAM_SIZE)
        self._keyed = False
        self._packet = bytearray()
        self._packet_len = 0
        self._inbox = bytearray()
        self._feeding = False
        self._command_due_s: float | None = None
        self._tick_origin_s = 0.0
        self._tick_index = 1
        # Direction (+1 up, -1 down) of each box-moved value, by RAM offset of the value.
        self._directions: dict[int, int] = {}
        self._reset_ram()
        self._record = DeliveryRecord()
        self._played_until_s = clock.now_s()
        self._record.observe_until(self._played_until_s)
        # Output of each channel's latest interval; the sentinel string means none yet.
        self._last_key: dict[str, _OutputKey | str] = dict.fromkeys(CHANNELS, "")

    # -- time -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Simulator time: how far the box has been played out."""
        return self._played_until_s

    def advance_to(self, t_s: float) -> None:
        """Run the box up to ``t_s``; a time already played is a no-op."""
        if math.isnan(t_s):
            raise ValueError("advance_to needs a time, got NaN")
        while True:
            command_s = math.inf if self._command_due_s is None else self._command_due_s
            tick_s = self._next_tick_s()
            event_s = min(command_s, tick_s)
            if event_s > t_s:
                break
            self._play_until(event_s)
            if event_s == command_s:
                self._poll_box_commands(event_s)
            else:
                self._modulation_step()
                self._tick_index += 1
        self._play_until(t_s)

    def _sync(self) -> float:
        self.advance_to(self._clock.now_s())
        return self._played_until_s

    def _play_until(self, t_s: float) -> None:
        if t_s <= self._played_until_s:
            return
        for index, channel in enumerate(CHANNELS):
            self._emit(channel, self._channel_output(index), self._played_until_s, t_s)
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

    def _channel_output(self, index: int) -> _OutputKey:
        ram = self._ram
        if not self._running or ram[ADDR_OUTPUT_FLAGS - _RAM_BASE] & MUTE_BIT:
            return None
        base = index * CHANNEL_B_OFFSET - _RAM_BASE
        intensity = ram[REG_INTENSITY + base]
        if intensity <= 128:
            return None
        period_ms = ram[REG_FREQUENCY + base] or 256
        level = ram[ADDR_LEVEL_A - _RAM_BASE + index]
        return (
            intensity - 128,
            1000.0 / period_ms,
            100.0 * level / 255.0,
            float(ram[REG_WIDTH + base]),
        )

    @property
    def _running(self) -> bool:
        return self._ram[ADDR_MENU_STATE - _RAM_BASE] == _MENU_STATE_RUNNING

    # -- the box's own program ------------------------------------------------------------

    def _moving_offsets(self) -> list[int]:
        """RAM offsets of the value registers whose select byte is not static."""
        return [
            value_offset
            for channel_base in (0, CHANNEL_B_OFFSET)
            for value_offset in (
                channel_base + register - _RAM_BASE
                for register in (REG_INTENSITY, REG_FREQUENCY, REG_WIDTH)
            )
            if self._ram[value_offset + SELECT_OFFSET] != 0
        ]

    def _next_tick_s(self) -> float:
        if not self._running or not self._moving_offsets():
            return math.inf
        tick_s = self._tick_origin_s + self._tick_index * MODULATION_STEP_S
        if tick_s < self._played_until_s:
            # Nothing moved for a while: resume on the grid, never in the past.
            elapsed_steps = (self._played_until_s - self._tick_origin_s) / MODULATION_STEP_S
            self._tick_index = max(self._tick_index, math.floor(elapsed_steps))
            while self._tick_origin_s + self._tick_index * MODULATION_STEP_S < (
                self._played_until_s
            ):
                self._tick_index += 1
            tick_s = self._tick_origin_s + self._tick_index * MODULATION_STEP_S
        return tick_s

    def _modulation_step(self) -> None:
        ram = self._ram
        for offset in self._moving_offsets():
            value = ram[offset]
            low, high = sorted((ram[offset + 1], ram[offset + 2]))
            if low == high:
                ram[offset] = low
                continue
            direction = self._directions.get(offset, 1)
            if value <= low:
                direction = 1
            elif value >= high:
                direction = -1
            self._directions[offset] = direction
            ram[offset] = value + direction

    def _start_mode(self, t_s: float) -> None:
        self._ram[ADDR_MENU_STATE - _RAM_BASE] = _MENU_STATE_RUNNING
        self._tick_origin_s = t_s
        self._tick_index = 1
        self._directions.clear()
        self._event(t_s, "mode_start", f"mode 0x{self._ram[ADDR_MODE - _RAM_BASE]:02x} runs")

    # -- box commands ---------------------------------------------------------------------

    def _poll_box_commands(self, t_s: float) -> None:
        self._command_due_s = None
        for address in (ADDR_BOX_COMMAND_1, ADDR_BOX_COMMAND_2):
            command = self._ram[address - _RAM_BASE]
            self._ram[address - _RAM_BASE] = _BOX_COMMAND_NONE
            if command != _BOX_COMMAND_NONE:
                self._run_box_command(t_s, command)

    def _run_box_command(self, t_s: float, command: int) -> None:
        ram = self._ram
        mode_offset = ADDR_MODE - _RAM_BASE
        if command in (_CMD_EXIT_MENU, _CMD_NEW_MODE):
            mode = ram[mode_offset]
            if not MODE_MIN <= mode <= MODE_MAX:
                self._event(
                    t_s, "box_command_ignored", f"0x{command:02x}: mode 0x{mode:02x} unknown"
                )
            elif command == _CMD_NEW_MODE or not self._running:
                self._event(t_s, "box_command", f"0x{command:02x}")
                self._start_mode(t_s)
            return
        if command in (_CMD_NEXT_MODE, _CMD_PREVIOUS_MODE):
            span = MODE_MAX - MODE_MIN + 1
            step = 1 if command == _CMD_NEXT_MODE else -1
            mode = ram[mode_offset]
            mode = (
                MODE_MIN + (mode - MODE_MIN + step) % span
                if MODE_MIN <= mode <= MODE_MAX
                else MODE_MIN
            )
            ram[mode_offset] = mode
            self._event(t_s, "box_command", f"0x{command:02x}: mode 0x{mode:02x}")
            if self._running:
                self._start_mode(t_s)
            return
        if command == _CMD_MUTE:
            ram[ADDR_OUTPUT_FLAGS - _RAM_BASE] |= MUTE_BIT
            self._event(t_s, "box_command", "0x18: mute")
            return
        if command in (_CMD_SWAP, _CMD_COPY_A_TO_B, _CMD_COPY_B_TO_A):
            self._move_channel_blocks(command)
            self._event(t_s, "box_command", f"0x{command:02x}: channel blocks")
            return
        if command in _CMD_NOTED:
            self._event(t_s, "box_command", f"0x{command:02x}: {_CMD_NOTED[command]} (no effect)")
            return
        self._event(t_s, "box_command_ignored", f"0x{command:02x}: unknown box command")

    def _move_channel_blocks(self, command: int) -> None:
        ram = self._ram
        for low in range(_CHANNEL_BLOCK_FIRST, _CHANNEL_BLOCK_END):
            a, b = low, low + CHANNEL_B_OFFSET
            dir_a, dir_b = self._directions.pop(a, 1), self._directions.pop(b, 1)
            if command == _CMD_SWAP:
                ram[a], ram[b] = ram[b], ram[a]
                dir_a, dir_b = dir_b, dir_a
            elif command == _CMD_COPY_A_TO_B:
                ram[b], dir_b = ram[a], dir_a
            else:
                ram[a], dir_a = ram[b], dir_b
            self._directions[a], self._directions[b] = dir_a, dir_b

    # -- memory ---------------------------------------------------------------------------

    def _load(self, address: int) -> int:
        address &= 0xFFFF
        if address < _RAM_BASE:
            return self._flash[address % _FLASH_SIZE]
        if address < _EEPROM_BASE:
            return self._ram[address % _RAM_SIZE]
        return self._eeprom[address % _EEPROM_SIZE]

    def _store(self, t_s: float, address: int, value: int) -> None:
        address &= 0xFFFF
        if address < _RAM_BASE:
            self._event(t_s, "flash_write_ignored", f"${address:04x} = 0x{value:02x}")
            return
        if address >= _EEPROM_BASE:
            self._eeprom[address % _EEPROM_SIZE] = value
            return
        offset = address % _RAM_SIZE
        if offset in (ADDR_LEVEL_A - _RAM_BASE, ADDR_LEVEL_B - _RAM_BASE) and self._adc_enabled:
            self._event(
                t_s, "level_write_ignored", f"${_RAM_BASE + offset:04x}: the pots are enabled"
            )
            return
        self._ram[offset] = value
        if offset == ADDR_ADC_FLAGS - _RAM_BASE and self._adc_enabled:
            self._read_pots()
        elif offset == ADDR_KEY - _RAM_BASE:
            if value == 0:
                self._keyed = False
                self._event(t_s, "key_reset", "key cleared; host bytes are plain again")
            else:
                self._event(t_s, "key_set", f"K = 0x{value:02x}")
        elif (
            offset in (ADDR_BOX_COMMAND_1 - _RAM_BASE, ADDR_BOX_COMMAND_2 - _RAM_BASE)
            and value != _BOX_COMMAND_NONE
            and self._command_due_s is None
        ):
            self._command_due_s = t_s + BOX_COMMAND_DELAY_S

    @property
    def _adc_enabled(self) -> bool:
        return not self._ram[ADDR_ADC_FLAGS - _RAM_BASE] & _ADC_DISABLE_BIT

    def _read_pots(self) -> None:
        self._ram[ADDR_LEVEL_A - _RAM_BASE] = self._pots[0]
        self._ram[ADDR_LEVEL_B - _RAM_BASE] = self._pots[1]

    def _reset_ram(self) -> None:
        ram = self._ram
        ram[:] = bytes(_RAM_SIZE)
        for offset, value in _RAM_DEFAULTS.items():
            ram[offset] = value
        for channel_base in (0, CHANNEL_B_OFFSET):
            for offset, block in _CHANNEL_DEFAULTS.items():
                start = channel_base + offset
                ram[start : start + len(block)] = bytes(block)
        ram[ADDR_BATTERY - _RAM_BASE] = min(self._battery_percent, _MAX_BATTERY_REGISTER)
        self._read_pots()

    # -- byte stream ----------------------------------------------------------------------

    def set_output(self, callback: ReplyCallback | None) -> None:
        """Send the box's reply bytes to ``callback`` (``None``: drop them)."""
        self._output = callback

    def feed(self, data: bytes) -> None:
        """Bytes from the host, split anyhow; bad bytes are ignored or NACKed, never raised.

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
            while self._inbox:
                raw = self._inbox[0]
                del self._inbox[0]
                self._on_byte(now_s, raw)
        finally:
            self._feeding = False

    def _on_byte(self, t_s: float, raw: int) -> None:
        byte = raw ^ self._ram[ADDR_KEY - _RAM_BASE]
        if not self._packet:
            length = _packet_length(byte)
            if length == 0:
                self._event(
                    t_s, "byte_ignored", f"0x{raw:02x} (decrypted 0x{byte:02x}) is no command"
                )
            elif length == 1:
                self._send(bytes([REPLY_NACK]))
            else:
                self._packet.append(byte)
                self._packet_len = length
            return
        self._packet.append(byte)
        if len(self._packet) == self._packet_len:
            packet = bytes(self._packet)
            self._packet.clear()
            self._on_packet(t_s, packet)

    def _on_packet(self, t_s: float, packet: bytes) -> None:
        if _checksum(packet[:-1]) != packet[-1]:
            self._event(
                t_s,
                "nack",
                f"checksum 0x{packet[-1]:02x}, expected 0x{_checksum(packet[:-1]):02x}: "
                f"{hex_bytes(packet)}",
            )
            self._send(bytes([REPLY_NACK]))
            return
        head = packet[0]
        if head == _HEAD_KEY:
            self._on_key_exchange(t_s, packet[1])
        elif head == _HEAD_READ:
            value = self._load((packet[1] << 8) | packet[2])
            self._send(bytes([REPLY_READ, value, _checksum(bytes([REPLY_READ, value]))]))
        elif not self._keyed:
            self._event(t_s, "write_refused", f"no key exchange yet: {hex_bytes(packet)}")
        else:
            address = (packet[1] << 8) | packet[2]
            for index, value in enumerate(packet[3:-1]):
                self._store(t_s, address + index, value)
            self._send(bytes([REPLY_ACK]))

    def _on_key_exchange(self, t_s: float, host_key: int) -> None:
        if self._keyed:
            self._event(t_s, "key_exchange_refused", "a key is already set")
            return
        box_key = self._rng.randrange(256) if self._box_key is None else self._box_key
        key = _swap_nibbles(host_key) ^ box_key ^ _KEY_CONSTANT
        self._send(bytes([REPLY_KEY, box_key, _checksum(bytes([REPLY_KEY, box_key]))]))
        self._ram[ADDR_KEY - _RAM_BASE] = key
        self._keyed = True
        self._event(
            t_s,
            "key_exchange",
            f"host key 0x{host_key:02x}, box key 0x{box_key:02x}: K 0x{key:02x}",
        )

    def _send(self, reply: bytes) -> None:
        if self._answering and self._output is not None:
            self._output(reply)

    def _event(self, t_s: float, kind: str, message: str) -> None:
        self._record.add_event(t_s, kind, message)

    # -- state and the physical box -------------------------------------------------------

    @property
    def record(self) -> DeliveryRecord:
        """What was delivered, played out up to the clock's current time."""
        self._sync()
        return self._record

    @property
    def key(self) -> int:
        """The XOR key K host bytes are decrypted with (0: none)."""
        self._sync()
        return self._ram[ADDR_KEY - _RAM_BASE]

    def peek(self, address: int) -> int:
        """The virtual memory value at ``address`` (wrapping as a read does), at clock time."""
        self._sync()
        return self._load(address)

    def disconnect(self) -> None:
        """The host went away. Nothing changes in the box: it runs on and keeps its key."""
        now_s = self._sync()
        self._event(now_s, "disconnect", "host gone; the box runs on")

    def power_cycle(self) -> None:
        """Switch off and on: RAM defaults, key cleared, back in the menu (no output)."""
        now_s = self._sync()
        self._reset_ram()
        self._keyed = False
        self._packet.clear()
        self._command_due_s = None
        self._directions.clear()
        self._event(now_s, "power_cycle", "RAM reset, key cleared, menu")

    def turn_knob(self, channel: str, delta: int) -> None:
        """Turn channel's front level pot by ``delta`` (position clamped to 0..255)."""
        now_s = self._sync()
        index = _check_channel(channel)
        self._pots[index] = max(0, min(0xFF, self._pots[index] + delta))
        if self._adc_enabled:
            self._ram[ADDR_LEVEL_A - _RAM_BASE + index] = self._pots[index]
        self._event(now_s, "knob", f"{channel} pot {self._pots[index]}")

    def set_battery(self, percent: int) -> None:
        """Set the battery charge; $4203 shows it (at most 99)."""
        now_s = self._sync()
        if not 0 <= percent <= 100:
            raise ValueError(f"battery percent must be within 0..100, got {percent}")
        self._battery_percent = percent
        self._ram[ADDR_BATTERY - _RAM_BASE] = min(percent, _MAX_BATTERY_REGISTER)
        self._event(now_s, "battery", f"battery {percent} %")

    def stop_answering(self, on: bool) -> None:
        """Fault: while ``on`` the box still reads and acts on bytes but sends nothing back."""
        now_s = self._sync()
        self._answering = not on
        self._event(now_s, "stop_answering", "on" if on else "off")

    def __repr__(self) -> str:
        return (
            f"Et312Simulator(now_s={self._played_until_s!r}, "
            f"key=0x{self._ram[ADDR_KEY - _RAM_BASE]:02x}, running={self._running})"
        )
