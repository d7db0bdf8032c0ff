"""The fakedev simulator: written from the protocol in ``__init__``, never from the codec.

Like every simulator, it imports nothing of the host side and records what it delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simulators import ContractHook
from simulators.clock import Clock
from simulators.record import DeliveredInterval, DeliveryRecord

CONTROL_CHAR = "0000fd01-0000-1000-8000-00805f9b34fb"
STATUS_CHAR = "0000fd02-0000-1000-8000-00805f9b34fb"
CHANNELS = ("A", "B")
TOP_DU = 100
HOLD_S = 0.25

#: (strength du, pulse rate Hz, intensity %) of one channel
Output = tuple[int, float, float]
IDLE: Output = (0, 0.0, 0.0)


class FakeDevSimulator:
    name = "FAKEDEV"

    def __init__(self, clock: Clock, battery_percent: int = 77) -> None:
        self._clock = clock
        self._record = DeliveryRecord()
        self._battery = battery_percent
        self._limit = dict.fromkeys(CHANNELS, TOP_DU)
        now = clock.now_s()
        self._output = dict.fromkeys(CHANNELS, IDLE)
        self._since = dict.fromkeys(CHANNELS, now)
        self._stored = dict.fromkeys(CHANNELS, False)
        self._expires = now

    # -- what a test asks -----------------------------------------------------------------
    @property
    def record(self) -> DeliveryRecord:
        self._sync()
        return self._record

    def limit_du(self, channel: str) -> int:
        return self._limit[channel]

    def strength_du(self, channel: str) -> int:
        self._sync()
        return self._output[channel][0]

    # -- GATT -----------------------------------------------------------------------------
    def write(self, char_uuid: str, data: bytes) -> None:
        now = self._sync()
        if char_uuid.lower() != CONTROL_CHAR or not data:
            self._record.add_event(now, "write_ignored", char_uuid)
        elif data[:1] == b"L" and len(data) == 3 and max(data[1:]) <= TOP_DU:
            self._limit = dict(zip(CHANNELS, data[1:], strict=True))
            for channel in CHANNELS:  # a lowered limit clamps what plays
                strength, hz, pct = self._output[channel]
                if strength > self._limit[channel]:
                    self._change(channel, now, (self._limit[channel], hz, pct))
        elif data[:1] == b"O" and len(data) == 7:
            for k, channel in enumerate(CHANNELS):
                strength, hz, pct = data[1 + 3 * k : 4 + 3 * k]
                strength = min(strength, self._limit[channel])
                playing = strength > 0 and hz > 0 and pct > 0
                self._change(channel, now, (strength, float(hz), float(pct)) if playing else IDLE)
            self._expires = now + HOLD_S
        else:
            self._record.add_event(now, "frame_ignored", data.hex(" "))

    def read(self, char_uuid: str) -> bytes:
        return bytes([self._battery]) if char_uuid.lower() == STATUS_CHAR else b""

    def start_notify(self, char_uuid: str, callback: Callable[[str, bytes], None]) -> None:
        """Nothing here notifies."""

    def stop_notify(self, char_uuid: str) -> None:
        """Nothing here notifies."""

    def disconnect(self) -> None:
        """The link is lost: the output stops at once."""
        now = self._sync()
        for channel in CHANNELS:
            self._change(channel, now, IDLE)

    # -- delivery -------------------------------------------------------------------------
    def _sync(self) -> float:
        now = self._clock.now_s()
        for channel in CHANNELS:
            if self._output[channel] != IDLE and now >= self._expires:
                self._change(channel, self._expires, IDLE)  # the last write ran out
            self._extend(channel, now)
        self._record.observe_until(now)
        return now

    def _change(self, channel: str, t_s: float, output: Output) -> None:
        self._extend(channel, t_s)
        if output != self._output[channel]:
            self._output[channel] = output
            self._since[channel] = t_s
            self._stored[channel] = False

    def _extend(self, channel: str, t_s: float) -> None:
        if t_s <= self._since[channel]:
            return
        if self._stored[channel]:
            self._record.extend_last(channel, t_s)
        else:
            strength, hz, pct = self._output[channel]
            self._record.add(
                DeliveredInterval(channel, self._since[channel], t_s, strength, hz, pct)
            )
            self._stored[channel] = True


# -- the device contract ----------------------------------------------------------------------


def _tamper(sim: FakeDevSimulator) -> None:
    sim.write(CONTROL_CHAR, b"L" + bytes([TOP_DU, TOP_DU]))


def _limits_written(sim: FakeDevSimulator, ceilings: Mapping[str, int]) -> bool:
    return all(sim.limit_du(c) == ceilings.get(c, 0) and sim.strength_du(c) == 0 for c in CHANNELS)


contract = ContractHook(level_du=5, tamper=_tamper, limits_written=_limits_written)
