"""The program model: what a session delivers, independent of any device.

A program has channels; each channel names its electrode sites and holds a timeline of
segments. Every segment gives a pulse width (us) and an intensity that is a *fraction* (0..1)
of the channel's treatment level: programs shape, people set strength.

A program also says how far it rests on sources: one ``EvidenceMarker`` per parameter
("sourced" or "practice-default", with the keys of the sources it names) and an overall
``evidence`` level; and, for conditions staged by time since onset (Bell's palsy), an
``onset_rule`` and ``stage`` that the safety core's screening applies.

This module holds plain frozen values. It never reads files (see ``waveforms.files``), never
knows device units, and never decides what is safe (that is ``safety``). The rules a program
must follow are in ``waveforms.validate`` (``Program.checked`` applies them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ElectrodeKind = Literal["pad", "needle"]
#: How far a program's parameters rest on a source: "sourced" (every core parameter has a
#: cited source), "practice-default" (at least one is a practice default, not evidence) or
#: "unstated" (the file says nothing; treat it as a practice default).
EvidenceLevel = Literal["sourced", "practice-default", "unstated"]
EvidenceStatus = Literal["sourced", "practice-default"]
#: A rule that needs the days since onset before a session (``safety.screening``).
OnsetRule = Literal["", "bells-palsy"]
#: The stage of the condition a program is written for ("" when it does not matter).
Stage = Literal["", "subacute", "chronic"]
#: The electrode the program's sources used ("" when the sources do not say, or there are
#: none): a pad program whose trials used needles says ``sourced_for = "needle"``.
SourcedFor = Literal["", "pad", "needle"]


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
class EvidenceMarker:
    """How one parameter of a program (``about``: points, frequency, ...) rests on a source.

    ``sources`` are keys of the program's sources (``"[Sung2021] Sung 2021, ..."`` has the
    key ``Sung2021``): for a sourced parameter, the sources that give it; for a practice
    default, the sources it leans on, if any.
    """

    about: str
    status: EvidenceStatus
    sources: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Program:
    """A whole stimulation program, as loaded from a TOML file.

    ``evidence``, ``evidence_markers``, ``onset_rule`` and ``stage`` default to a program that
    says nothing about its evidence ("unstated") and has no onset rule."""

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
    evidence: EvidenceLevel = "unstated"
    evidence_markers: tuple[EvidenceMarker, ...] = ()
    onset_rule: OnsetRule = ""
    stage: Stage = ""
    #: Sites needled by hand during the session: catalogued points, recorded with the
    #: session, but no channel drives them (no current).
    manual_points: tuple[str, ...] = ()
    #: The electrode the sources' trials used (see ``SourcedFor``).
    sourced_for: SourcedFor = ""
    #: The built-in library also offers this pad program with needles (``<name>-needle``,
    #: or ``<stem>-needle-left``), for devices whose output is charge-balanced.
    needle_variant: bool = False

    @property
    def duration_s(self) -> float:
        """The longest channel timeline; shorter channels are silent after their end."""
        return max((c.duration_s for c in self.channels), default=0.0)

    def channel(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def source_keys(self) -> dict[str, str]:
        """The keyed sources: ``{"Sung2021": "[Sung2021] Sung 2021, ..."}`` (unkeyed ones are
        left out)."""
        out: dict[str, str] = {}
        for text in self.sources:
            key = source_key(text)
            if key is not None:
                out[key] = text
        return out

    def marker(self, about: str) -> EvidenceMarker | None:
        """The evidence marker for one parameter, if the program has one."""
        for m in self.evidence_markers:
            if m.about == about:
                return m
        return None

    def checked(self) -> Program:
        """This program, once it passes every rule of the program format; else
        ``waveforms.validate.InvalidProgramError`` (a ``ProgramError``) naming the path of
        the first bad value (``channels[0].segments[0].intensity``) and what is allowed.

        However a program was made (a file, the library, ``Program(...)`` in code), this is
        the one check (``waveforms.validate.check_program``). Call it as
        ``Program.checked(value)`` to check a value that may not even be a ``Program``."""
        from waveforms.validate import validate_program  # validate imports this module

        validate_program(self)
        return self


@dataclass(frozen=True)
class ManualEntry:
    """A manual-acupuncture entry of the library: a point set for a condition where EA is not
    defensible, and why (``why_no_ea``). It has no channels and no timeline, carries no
    current and can never be started: ``Program.checked(entry)`` (and so ``Device.start``)
    refuses it, naming ``why_no_ea`` and its file. A file says ``kind = "manual"``.

    ``points`` are catalogued sites (``"LI4-L"``), for needles placed by hand.
    """

    name: str
    title: str
    indication: str
    points: tuple[str, ...]
    why_no_ea: str
    description: str = ""
    cautions: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    source_path: str | None = None
    evidence_markers: tuple[EvidenceMarker, ...] = ()
    kind: Literal["manual"] = field(default="manual", init=False)

    @property
    def source_keys(self) -> dict[str, str]:
        """The keyed sources, as ``Program.source_keys``."""
        return {k: t for t in self.sources if (k := source_key(t)) is not None}

    def marker(self, about: str) -> EvidenceMarker | None:
        """The evidence marker for one parameter (``points``), if the entry has one."""
        return next((m for m in self.evidence_markers if m.about == about), None)

    def refusal(self, where: str | None = None) -> str:
        """The one line that refuses to run this entry: what it is, why, and where (``where``,
        e.g. ``file:line``; else its file, else its name)."""
        where = where or self.source_path or self.name
        why = " ".join(self.why_no_ea.split())
        return (
            f'{where}: program kind = "manual" is a manual-acupuncture entry ({self.name}) that '
            f"carries no current and cannot be run: {why}; allowed an EA program with channels "
            f"(acustim show {self.name} lists its points)"
        )


#: A library entry: an EA program, or a manual-acupuncture entry (never run).
Entry = Program | ManualEntry

#: ``[key] text``: a source that evidence markers can refer to by its key.
SOURCE_KEY_PATTERN = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9._-]{0,31})\]\s+\S")


def source_key(text: str) -> str | None:
    """The key of a keyed source (``"[Sung2021] Sung 2021, ..."`` -> ``"Sung2021"``)."""
    match = SOURCE_KEY_PATTERN.match(text)
    return match.group(1) if match else None


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
