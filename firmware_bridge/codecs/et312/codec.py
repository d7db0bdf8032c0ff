"""The ET-312 host-control model, sans-IO: which registers acustim writes, and in what order.

The model (``docs/devices/et312.md``; the firmware facts in ``docs/devices/et312-firmware.md``):

- The box drives each channel at ``level x intensity / 256``: ``level`` follows the front knob
  (pot $4064 / $4065, scaled by the power level and the mode's ramp), ``intensity`` is the
  register $40A5 / $41A5, a linear factor used as written (no offset; $4083 "mute" gates
  nothing). acustim leaves the knobs live, as the box's hard ceiling, and writes the vetted
  level as the intensity register: ``floor(level_du x program intensity)``, 0..255. Zero is
  intensity 0 on both channels, A then B.
- Connect writes the limits before any output and never raises it: the front pots are disabled
  and set to 0, then the new mode (``04 12``, whose reload sets intensity 0xFF) is waited for
  until it has run, then static selects and intensity 0, all read back; only then do the pots
  follow the knobs again.
- The frequency register counts 256 us steps of the pulse period after two phases of the width
  register (us): ``period_us = 2 x W + 256 x (F + 1)``.

``Et312Codec`` returns the packets (on the wire, under its key) and the read-backs to check;
it never does I/O, never waits and never reads a clock (the driver does all three). It never
decides a level: it writes what the guard vetted, capped at the session's ceilings, and
nothing but zero before connect's last step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from firmware_bridge.codecs.et312.protocol import (
    BOX_COMMAND,
    CHANNELS,
    FREQUENCY,
    FREQUENCY_SELECT,
    INTENSITY,
    INTENSITY_SELECT,
    KNOB,
    MODE,
    NEXT_MODULE_FLAG,
    SELECTS,
    SYSTEM_FLAGS,
    WIDTH,
    WIDTH_SELECT,
    ReplyParser,
    box_command_packet,
    checked_byte,
    decrypt,
    encrypt,
    key_reset_packet,
    read_packet,
    register,
    sync_packet,
    write_packet,
)
from firmware_bridge.errors import ProtocolError
from safety.guard import VettedChannel, VettedFrame

# --- values -----------------------------------------------------------------------------------
MODEL_ET312 = 0x0C
ADC_DISABLE = 0x01  # $400F bit 0
POT_ZERO = 0
STATIC_SELECT = 0x00  # low four bits 0: the firmware leaves the value register as written
INTENSITY_OFF = 0  # drive = level x intensity / 256: 0 is no output, whatever the knob
LEVEL_MAX_DU = 255  # the intensity register, 0..255, each step 1/256 of the knob's level
#: The frequency register F sets the pulse period: ``period_us = PHASES x W + 256 x (F + 1)``
#: (et312-firmware.md section 3), with W the width register. The firmware uses max(9, F).
FREQUENCY_VALUE_RANGE = (9, 255)
#: The width register is the width of each phase in us; the firmware uses max(50, W) up to 255.
#: acustim keeps to 64..196, a narrower range of its own [assumed policy].
WIDTH_VALUE_RANGE = (64, 196)
#: Phases per pulse: the new mode's module 1 sets the gates to 0x07, biphasic (phase 1, then
#: phase 2), and acustim never writes the gates.
PHASES = 2
#: Written on connect (the intensity is 0 then): the slowest rate and the narrowest pulse. The
#: first frame with output writes its own values before its intensity.
CONNECT_FREQUENCY = FREQUENCY_VALUE_RANGE[1]
CONNECT_WIDTH = WIDTH_VALUE_RANGE[0]
MODE_WAVES = 0x76
EXIT_MENU, NEW_MODE = 0x04, 0x12
#: What $4070 / $4071 read once the main loop has run a box command.
COMMAND_DONE = 0xFF


def frequency_value(frequency_hz: float, width: int = WIDTH_VALUE_RANGE[0]) -> int:
    """Pulse rate to the frequency register F, for a width register ``width``.

    The firmware's period is ``PHASES x W + 256 x (F + 1)`` us (plus a stretch of its power
    limiter at high width x level, which only lowers the rate); F is the nearest integer, 9..255.
    """
    low, high = FREQUENCY_VALUE_RANGE
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        return high  # the slowest rate
    value = round((1e6 / frequency_hz - PHASES * max(50, width)) / 256 - 1)
    return min(high, max(low, value))


def pulse_rate_hz(frequency: int, width: int) -> float:
    """What the box delivers for the frequency and width registers (power limiter idle)."""
    return 1e6 / (PHASES * max(50, width) + 256 * (max(9, frequency) + 1))


def width_value(pulse_width_us: float) -> int:
    """Pulse width (of each phase) to the width register: us, 64..196."""
    low, high = WIDTH_VALUE_RANGE
    if not math.isfinite(pulse_width_us):
        return low
    return min(high, max(low, round(pulse_width_us)))


def intensity_value(output_du: float) -> int:
    """Output in device units (vetted level x program intensity) to the intensity register.

    The register is a linear factor, 0..255 (the box drives ``knob x value / 256``), so this is
    the output rounded down; the 1e-9 only absorbs binary rounding (``100 x 0.29``)."""
    if not (math.isfinite(output_du) and output_du > 0):
        return INTENSITY_OFF
    return min(LEVEL_MAX_DU, math.floor(output_du + 1e-9))


REGISTER_NAMES: dict[int, str] = {
    SYSTEM_FLAGS: "system flags",
    KNOB["A"]: "level pot A",
    KNOB["B"]: "level pot B",
    MODE: "mode",
    BOX_COMMAND: "box command",
    BOX_COMMAND + 1: "box command 2",
    NEXT_MODULE_FLAG: "next-module flag A",
    NEXT_MODULE_FLAG + 0x100: "next-module flag B",
    **{
        register(base, c): f"{name} {c}"
        for c in CHANNELS
        for base, name in (
            (INTENSITY, "intensity"),
            (INTENSITY_SELECT, "intensity select"),
            (FREQUENCY, "frequency"),
            (FREQUENCY_SELECT, "frequency select"),
            (WIDTH, "width"),
            (WIDTH_SELECT, "width select"),
        )
    },
}


def register_name(address: int) -> str:
    """``intensity A ($40A5)``: a register as error messages name it."""
    name = REGISTER_NAMES.get(address)
    return f"{name} (${address:04X})" if name else f"${address:04X}"


@dataclass(frozen=True)
class Check:
    """A register the host reads back: ``value & mask`` must equal ``expected``."""

    address: int
    expected: int
    mask: int = 0xFF

    def holds(self, value: int) -> bool:
        return value & self.mask == self.expected

    def describe(self, value: int) -> str:
        if self.mask == 0xFF:
            return (
                f"{register_name(self.address)} reads 0x{value:02X}, expected 0x{self.expected:02X}"
            )
        return (
            f"{register_name(self.address)} reads 0x{value:02X}, expected bits "
            f"0x{self.mask:02X} = 0x{self.expected:02X}"
        )


def verify_read_back(checks: Iterable[Check], values: Mapping[int, int], stage: str) -> None:
    """Raise ``ProtocolError`` naming every register whose read-back is not what was written."""
    wrong = [c.describe(values[c.address]) for c in checks if not c.holds(values[c.address])]
    if wrong:
        raise ProtocolError(
            f"et312: {stage}, the box does not hold what acustim expects: {'; '.join(wrong)}. "
            "Refusing to start output (switch the box off and on, then connect again)"
        )


class Et312Codec:
    """The box's registers as the host believes them, and the packets that change them.

    Every packet it returns is on-the-wire (encrypted with ``key``). The register image is
    updated when a packet is made; whoever sends it calls ``forget()`` if it is not
    acknowledged, so the next frame writes every register again.

    Connect is ``adc_off_writes`` (then ``pots_zero_checks``), ``mode_writes`` (then wait until
    ``mode_done_checks`` hold), ``limit_writes`` (then ``limit_checks``), ``adc_on_writes``
    (then ``adc_on_checks``). Nothing in it raises output: the pots are 0 from the first step to
    the last, and the intensity is 0 before they follow the knobs again.
    """

    def __init__(self, ceilings_du: Mapping[str, int] | None = None) -> None:
        self.key = 0
        self.registers: dict[int, int] = {}
        self.ceilings_du = {c: LEVEL_MAX_DU for c in CHANNELS}
        if ceilings_du:
            for c, ceiling in ceilings_du.items():
                if c in self.ceilings_du:
                    self.ceilings_du[c] = min(LEVEL_MAX_DU, max(0, ceiling))
        self.parser = ReplyParser()

    # --- packets ------------------------------------------------------------------------------
    def wire(self, plain: bytes) -> bytes:
        return encrypt(plain, self.key)

    def plain(self, wire: bytes) -> bytes:
        return decrypt(wire, self.key)

    def read(self, address: int) -> bytes:
        return self.wire(read_packet(address))

    def sync(self) -> bytes:
        return self.wire(sync_packet())

    def key_reset(self) -> bytes:
        """The key reset, under the current key. Once the box acknowledges it, ``key = 0``."""
        return self.wire(key_reset_packet())

    def _set(self, address: int, value: int, *, force: bool = False) -> list[bytes]:
        if not force and self.registers.get(address) == value:
            return []
        self.registers[address] = value
        return [self.wire(write_packet(address, bytes([value])))]

    def forget(self) -> None:
        """The box's registers are unknown (a write went unacknowledged)."""
        self.registers.clear()

    # --- connect, in this order ---------------------------------------------------------------
    def adc_off_writes(self, flags: int) -> list[bytes]:
        """Step 1: stop reading the front pots (``flags`` is $400F as just read; bit 0 set), then
        pots A and B = 0. From here on the drive is 0 whatever the intensity register holds."""
        out = self._set(SYSTEM_FLAGS, checked_byte(flags, "system flags") | ADC_DISABLE, force=True)
        for c in CHANNELS:
            out += self._set(KNOB[c], POT_ZERO, force=True)
        return out

    def pots_zero_checks(self) -> list[Check]:
        """After step 1, before the mode reload: the pots are disabled and read 0."""
        return [
            Check(SYSTEM_FLAGS, ADC_DISABLE, ADC_DISABLE),
            *(Check(KNOB[c], POT_ZERO) for c in CHANNELS),
        ]

    def mode_writes(self, mode: int = MODE_WAVES) -> list[bytes]:
        """Step 2: the mode, then box commands ``04 12`` (exit menu + new mode) in one write.

        The new mode reloads its defaults (intensity 0xFF, selects that move the values), so
        the image forgets the channel registers. Then wait until ``mode_done_checks`` hold."""
        out = self._set(MODE, checked_byte(mode, "mode"), force=True)
        for c in CHANNELS:
            for base in (INTENSITY, FREQUENCY, WIDTH, NEXT_MODULE_FLAG, *SELECTS):
                self.registers.pop(register(base, c), None)
        return [*out, self.wire(box_command_packet(EXIT_MENU, NEW_MODE))]

    def mode_done_checks(self) -> list[Check]:
        """After step 2: both box command registers read 0xFF, the commands have run."""
        return [Check(BOX_COMMAND, COMMAND_DONE), Check(BOX_COMMAND + 1, COMMAND_DONE)]

    def limit_writes(self) -> list[bytes]:
        """Step 3, per channel A then B: the three selects static and the next-module timer off
        (so nothing moves or reloads the values any more), intensity 0, then the slowest
        frequency and the narrowest width."""
        out: list[bytes] = []
        for c in CHANNELS:
            for select in SELECTS:
                out += self._set(register(select, c), STATIC_SELECT, force=True)
            out += self._set(register(NEXT_MODULE_FLAG, c), 0, force=True)
            out += self._set(register(INTENSITY, c), INTENSITY_OFF, force=True)
            out += self._set(register(FREQUENCY, c), CONNECT_FREQUENCY, force=True)
            out += self._set(register(WIDTH, c), CONNECT_WIDTH, force=True)
        return out

    def limit_checks(self) -> list[Check]:
        """Step 4: intensity A and B are 0, every select static, the next-module timers off, and
        the pots still 0 and disabled (so nothing reloaded the mode behind our back)."""
        return [
            *(Check(register(INTENSITY, c), INTENSITY_OFF) for c in CHANNELS),
            *(Check(register(s, c), STATIC_SELECT) for c in CHANNELS for s in SELECTS),
            *(Check(register(NEXT_MODULE_FLAG, c), 0) for c in CHANNELS),
            *self.pots_zero_checks(),
        ]

    def adc_on_writes(self, flags: int) -> list[bytes]:
        """Step 5: the pots follow the knobs again (``flags`` is $400F as just read; bit 0
        cleared). The drive is then ``knob x 0 / 256 = 0``."""
        out = self._set(
            SYSTEM_FLAGS, checked_byte(flags, "system flags") & ~ADC_DISABLE & 0xFF, force=True
        )
        for c in CHANNELS:
            self.registers.pop(KNOB[c], None)  # the knobs', from now on
        return out

    def adc_on_checks(self) -> list[Check]:
        return [Check(SYSTEM_FLAGS, 0, ADC_DISABLE)]

    # --- output -------------------------------------------------------------------------------
    def zero_writes(self) -> list[bytes]:
        """Zero / emergency stop: intensity 0 on channel A, then B. Always both, whatever the
        image says: the box keeps running, so zero must never be skipped."""
        out: list[bytes] = []
        for c in CHANNELS:
            out += self._set(register(INTENSITY, c), INTENSITY_OFF, force=True)
        return out

    def frame_writes(self, frame: VettedFrame) -> list[bytes]:
        """The writes that make the box deliver ``frame``: only the registers that change.

        Order: intensity falls, then frequency and width, then intensity rises, so output never
        rises before its pulse settings are in place.
        """
        if frame.zero:
            return self.zero_writes()
        falls: list[bytes] = []
        settings: list[bytes] = []
        rises: list[bytes] = []
        for c in CHANNELS:
            value, frequency, width = self._targets(c, _channel(frame, c))
            address = register(INTENSITY, c)
            known = self.registers.get(address)
            if value > INTENSITY_OFF:
                settings += self._set(register(FREQUENCY, c), frequency)
                settings += self._set(register(WIDTH, c), width)
            if value > (INTENSITY_OFF if known is None else known):
                rises += self._set(address, value)
            else:
                falls += self._set(address, value)
        return falls + settings + rises

    def _targets(self, name: str, ch: VettedChannel | None) -> tuple[int, int, int]:
        if ch is None or ch.level_du <= 0 or not ch.intensity:
            return INTENSITY_OFF, 0, 0
        level = min(ch.level_du, self.ceilings_du.get(name, 0))
        k = max(range(len(ch.intensity)), key=ch.intensity.__getitem__)
        intensity = min(1.0, ch.intensity[k])
        value = intensity_value(level * intensity)
        width = width_value(ch.pulse_width_us[k])
        return value, frequency_value(ch.frequency_hz[k], width), width


def _channel(frame: VettedFrame, name: str) -> VettedChannel | None:
    for ch in frame.channels:
        if ch.name == name:
            return ch
    return None
