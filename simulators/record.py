"""What a simulated device delivered: the test oracle.

A firmware emulator appends one ``DeliveredInterval`` per stretch of constant output per
channel (device units, pulse rate, waveform intensity) plus timestamped events (dropped
blocks, ignored frames, ...). Tests then ask the record questions from the device's side:
what was the output at time t, what was the largest output in a window, from when on was the
output zero.

Time model: an interval covers ``[start_s, end_s)`` on the simulator's clock. Time not covered
by any interval counts as no output. ``end_s`` of the record is how far the device has been
observed (the latest interval end, or a later time given to ``observe_until``).

This module must never read a clock, never talk to a transport and never import the host side
(``firmware_bridge``, ``safety``, ``acustim``, ``gui``): it only stores what a simulator says.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass

__all__ = ["DeliveredInterval", "DeliveryRecord"]


@dataclass(frozen=True)
class DeliveredInterval:
    """Constant output on one channel during ``[start_s, end_s)``."""

    channel: str
    start_s: float
    end_s: float
    strength_du: int
    """Channel strength in device units (0..200 for the Coyote 3)."""
    frequency_hz: float
    """Pulse rate during the interval; 0.0 when idle."""
    intensity_pct: float
    """Waveform intensity 0..100; 0.0 when idle or when the block was dropped."""
    pulse_width_us: float | None = None
    """Pulse (phase) width where the device lets the host set it; None where it decides."""

    def __post_init__(self) -> None:
        if not self.channel:
            raise ValueError("DeliveredInterval needs a channel name")
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise ValueError(
                f"DeliveredInterval times must be finite, got {self.start_s!r}..{self.end_s!r}"
            )
        if self.end_s < self.start_s:
            raise ValueError(
                f"DeliveredInterval ends before it starts: {self.start_s!r}..{self.end_s!r}"
            )
        if self.strength_du < 0:
            raise ValueError(f"strength_du must be >= 0, got {self.strength_du}")
        if not (math.isfinite(self.frequency_hz) and self.frequency_hz >= 0.0):
            raise ValueError(f"frequency_hz must be finite and >= 0, got {self.frequency_hz!r}")
        if not 0.0 <= self.intensity_pct <= 100.0:
            raise ValueError(f"intensity_pct must be within 0..100, got {self.intensity_pct!r}")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def output_du(self) -> float:
        """Effective output in device units: strength scaled by the waveform intensity."""
        return self.strength_du * self.intensity_pct / 100.0


class DeliveryRecord:
    """Intervals per channel (kept sorted, never overlapping) and events, in simulator time."""

    def __init__(self) -> None:
        self._by_channel: dict[str, list[DeliveredInterval]] = {}
        self._starts_by_channel: dict[str, list[float]] = {}
        self._events: list[tuple[float, str, str]] = []
        self._observed_until_s = -math.inf

    # -- writing (simulators) -------------------------------------------------------------

    def add(self, interval: DeliveredInterval) -> None:
        """Store ``interval``; zero-length intervals carry nothing and are not stored.

        Raises ``ValueError`` if it overlaps an interval already stored for its channel: a
        device delivers one thing at a time per channel, so overlap is a simulator bug.
        """
        self._observed_until_s = max(self._observed_until_s, interval.end_s)
        if interval.end_s == interval.start_s:
            return
        intervals = self._by_channel.setdefault(interval.channel, [])
        starts = self._starts_by_channel.setdefault(interval.channel, [])
        index = bisect.bisect_right(starts, interval.start_s)
        if index > 0 and intervals[index - 1].end_s > interval.start_s:
            raise ValueError(f"{interval!r} overlaps {intervals[index - 1]!r}")
        if index < len(intervals) and interval.end_s > intervals[index].start_s:
            raise ValueError(f"{interval!r} overlaps {intervals[index]!r}")
        intervals.insert(index, interval)
        starts.insert(index, interval.start_s)

    def extend_last(self, channel: str, end_s: float) -> None:
        """Move the end of ``channel``'s latest interval to ``end_s`` (a stretch that goes on).

        Lets a simulator that is played out in small steps keep one interval per constant
        stretch instead of one per step.
        """
        intervals = self._by_channel.get(channel)
        if not intervals:
            raise ValueError(f"no interval on channel {channel!r} to extend")
        last = intervals[-1]
        if end_s < last.end_s:
            raise ValueError(f"extend_last would shrink {last!r} to end at {end_s!r}")
        intervals[-1] = dataclasses.replace(last, end_s=end_s)
        self._observed_until_s = max(self._observed_until_s, end_s)

    def observe_until(self, t_s: float) -> None:
        """Say the device was played out up to ``t_s``; uncovered time before it had no output."""
        self._observed_until_s = max(self._observed_until_s, t_s)

    def add_event(self, t_s: float, kind: str, message: str) -> None:
        self._events.append((t_s, kind, message))

    # -- reading (tests) ------------------------------------------------------------------

    @property
    def end_s(self) -> float:
        """How far the record reaches in time (``-inf`` while empty)."""
        return self._observed_until_s

    @property
    def events(self) -> list[tuple[float, str, str]]:
        """A copy of the events as ``(t_s, kind, message)``, in the order they happened."""
        return list(self._events)

    def events_of(self, kind: str) -> list[tuple[float, str, str]]:
        return [event for event in self._events if event[1] == kind]

    def channels(self) -> list[str]:
        return sorted(self._by_channel)

    def intervals(self, channel: str | None = None) -> list[DeliveredInterval]:
        """A copy of the intervals of ``channel`` (or of all channels) sorted by start time."""
        if channel is not None:
            return list(self._by_channel.get(channel, []))
        everything = [iv for ivs in self._by_channel.values() for iv in ivs]
        everything.sort(key=lambda iv: (iv.start_s, iv.channel))
        return everything

    def interval_at(self, channel: str, t_s: float) -> DeliveredInterval | None:
        """The interval of ``channel`` covering ``t_s``, or ``None``."""
        intervals = self._by_channel.get(channel, [])
        index = bisect.bisect_right(self._starts_by_channel.get(channel, []), t_s) - 1
        if index >= 0 and t_s < intervals[index].end_s:
            return intervals[index]
        return None

    def output_at(self, channel: str, t_s: float) -> float:
        """Effective output (device units) of ``channel`` at ``t_s``; 0.0 where nothing played."""
        interval = self.interval_at(channel, t_s)
        return 0.0 if interval is None else interval.output_du

    def max_output(
        self, channel: str, start_s: float = -math.inf, end_s: float = math.inf
    ) -> float:
        """Largest output of ``channel`` at any instant of the closed window [start_s, end_s]."""
        best = 0.0
        for interval in self._by_channel.get(channel, []):
            if interval.start_s <= end_s and interval.end_s > start_s:
                best = max(best, interval.output_du)
        return best

    def first_time_output_zero_after(self, channel: str, t_s: float) -> float | None:
        """Earliest time >= ``t_s`` from which ``channel`` delivers nothing up to ``end_s``.

        ``None`` if the channel still delivers output at the end of the record (it has not
        stopped as far as anyone knows).
        """
        last_output_end_s = -math.inf
        for interval in self._by_channel.get(channel, []):
            if interval.output_du > 0.0:
                last_output_end_s = max(last_output_end_s, interval.end_s)
        if last_output_end_s == -math.inf:
            return t_s
        if last_output_end_s >= self._observed_until_s:
            return None
        return max(t_s, last_output_end_s)

    def __repr__(self) -> str:
        counts = {ch: len(ivs) for ch, ivs in sorted(self._by_channel.items())}
        return f"DeliveryRecord(intervals={counts}, events={len(self._events)})"
