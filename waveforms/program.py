"""The program model: what a session delivers, independent of any device.

A program has channels; each channel names its electrode sites and holds a timeline of
segments. Every segment gives a pulse width (us) and an intensity that is a *fraction* (0..1)
of the channel's treatment level: programs shape, people set strength.

This module holds plain frozen values. It never reads files (see ``waveforms.files``), never
knows device units, and never decides what is safe (that is ``safety``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ElectrodeKind = Literal["pad", "needle"]


@dataclass(frozen=True)
class Continuous:
    """One fixed pulse rate (连续波)."""

    duration_s: float
    frequency_hz: float
    pulse_width_us: float
    intensity: float
    label: str = ""
    kind: Literal["continuous"] = field(default="continuous", init=False)


@dataclass(frozen=True)
class DenseDisperse:
    """Sparse (low) and dense (high) rates alternating (疏密波); Han's 2/100 Hz by default.

    The segment starts on the low rate for ``low_s``, then the high rate for ``high_s``, and
    repeats.
    """

    duration_s: float
    pulse_width_us: float
    intensity: float
    low_hz: float = 2.0
    high_hz: float = 100.0
    low_s: float = 3.0
    high_s: float = 3.0
    label: str = ""
    kind: Literal["dense_disperse"] = field(default="dense_disperse", init=False)


@dataclass(frozen=True)
class Intermittent:
    """Bursts of one rate switched on for ``on_s`` and off for ``off_s`` (断续波)."""

    duration_s: float
    frequency_hz: float
    pulse_width_us: float
    intensity: float
    on_s: float
    off_s: float
    label: str = ""
    kind: Literal["intermittent"] = field(default="intermittent", init=False)


@dataclass(frozen=True)
class Ramp:
    """Intensity moving linearly from ``intensity_from`` to ``intensity_to`` at one rate."""

    duration_s: float
    frequency_hz: float
    pulse_width_us: float
    intensity_from: float
    intensity_to: float
    label: str = ""
    kind: Literal["ramp"] = field(default="ramp", init=False)


Segment = Continuous | DenseDisperse | Intermittent | Ramp


@dataclass(frozen=True)
class Channel:
    """One output channel: its electrode sites and its own timeline of segments.

    ``max_level_fraction`` lowers the channel's ceiling to a fraction of the device's hard
    maximum (a program can only lower limits). ``max_current_ma`` lowers it further where the
    device profile is calibrated in mA.
    """

    name: str
    sites: tuple[str, ...]
    segments: tuple[Segment, ...]
    max_level_fraction: float = 1.0
    max_current_ma: float | None = None

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)


@dataclass(frozen=True)
class Program:
    """A whole stimulation program, as loaded from a TOML file."""

    name: str
    title: str
    indication: str
    channels: tuple[Channel, ...]
    description: str = ""
    electrode: ElectrodeKind = "pad"
    electrode_area_cm2: float | None = None
    cautions: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    source_path: str | None = None

    @property
    def duration_s(self) -> float:
        """The longest channel timeline; shorter channels are silent after their end."""
        return max((c.duration_s for c in self.channels), default=0.0)

    def channel(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class ChannelDemand:
    """What a program asks of one channel for one device frame: one value per sample.

    Intensities are fractions of the channel's treatment level; the guard turns demands into
    vetted frames in device units.
    """

    name: str
    frequency_hz: tuple[float, ...]
    pulse_width_us: tuple[float, ...]
    intensity: tuple[float, ...]
