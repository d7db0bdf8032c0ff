"""The guard: turns program demands and practitioner commands into vetted frames.

The guard is the only maker of ``VettedFrame`` (including the zero frame); every device
driver's ``send`` refuses anything else. It enforces, per channel: start at zero; every rise
rate-limited (soft start); every fall immediate; the resolved ceiling; device-unit ranges; the
hard session time limit (then a ramp down and a permanent stop); and, where the device is
calibrated, rms current and rms current density. Charge per phase is computed and recorded,
not limited: no standard in ``../shared/reference/safety.md`` gives a figure for it. After a
lost link, output stays zero until the device's own limits are written again, and levels never
come back by themselves.

Soft start applies to the *delivered* output (level x program intensity), not only to the
level: a program whose envelope jumps (a segment at intensity 0 then 1, an intermittent burst
after a long pause) cannot make output jump. A frame's delivered output (the largest
level x intensity of its samples) may be at most the larger of

* the previous frame's delivered output plus the rise rate x the time step, and
* the largest delivered output of the last ``ENVELOPE_MEMORY_S`` seconds,

so output rises at the soft-start rate from what the patient just had, and an intermittent
burst (or a dense-disperse phase) may come back at once to the level it was ramped to a few
seconds ago, never above. After a longer gap, a stop, a pause or a lost link the memory is
empty and output ramps from zero again. The guard holds the limit by lowering the program's
intensity samples (never the level), so a channel at level 0 is always silent (intensity 0).

Pure: no I/O, no threads, no clock of its own (callers pass ``now_s``), no Qt.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, NoReturn

from safety import electrical
from safety.errors import LimitError, SafetyError, UnvettedFrameError
from safety.limits import (
    ABS_MAX_CURRENT_DENSITY_MA_PER_CM2,
    CURRENT_DENSITY_WARN_MA_PER_CM2,
    END_RAMP_DOWN_S,
    SessionLimits,
)
from waveforms.program import ChannelDemand

#: The longest time step the soft start honours between two frames: a stalled loop or a
#: jumping clock must not turn into a jump in level.
MAX_RAMP_STEP_S = 0.25
#: How long the delivered-output soft start remembers a level the patient had: a burst within
#: this time of the last one re-enters at the level it reached; after it, it ramps from zero.
#: Project policy: longer than every off time of the built-in intermittent programs (<= 2 s).
ENVELOPE_MEMORY_S = 5.0

_SEAL = object()
_CLAMPED = "demand outside the device's range"
_DENSITY_WARNING = (
    f"rms current density >= {CURRENT_DENSITY_WARN_MA_PER_CM2:g} mA/cm^2 "
    "(IEC 60601-2-10 attention threshold)"
)


class _Sealed:
    """Immutable after construction; made only with the guard's seal; not copyable by pickle."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot be pickled or copied; ask the guard")

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Any:
        return self


class VettedChannel(_Sealed):
    """One channel of a vetted frame, in device units and within every limit."""

    __slots__ = (
        "charge_per_phase_uc",
        "current_density_ma_per_cm2",
        "frequency_hz",
        "intensity",
        "level_du",
        "name",
        "peak_current_ma",
        "pulse_width_us",
        "rms_current_ma",
    )
    name: str
    level_du: int
    frequency_hz: tuple[float, ...]
    pulse_width_us: tuple[float, ...]
    intensity: tuple[float, ...]
    peak_current_ma: float | None
    rms_current_ma: float | None
    current_density_ma_per_cm2: float | None
    charge_per_phase_uc: float | None

    def __init__(
        self,
        *,
        seal: object,
        name: str,
        level_du: int,
        frequency_hz: tuple[float, ...],
        pulse_width_us: tuple[float, ...],
        intensity: tuple[float, ...],
        peak_current_ma: float | None = None,
        rms_current_ma: float | None = None,
        current_density_ma_per_cm2: float | None = None,
        charge_per_phase_uc: float | None = None,
    ) -> None:
        if seal is not _SEAL:
            raise UnvettedFrameError("only the safety guard makes vetted frames")
        put = object.__setattr__
        put(self, "name", name)
        put(self, "level_du", level_du)
        put(self, "frequency_hz", frequency_hz)
        put(self, "pulse_width_us", pulse_width_us)
        put(self, "intensity", intensity)
        put(self, "peak_current_ma", peak_current_ma)
        put(self, "rms_current_ma", rms_current_ma)
        put(self, "current_density_ma_per_cm2", current_density_ma_per_cm2)
        put(self, "charge_per_phase_uc", charge_per_phase_uc)

    @property
    def output_du(self) -> float:
        """The strongest effective output in this frame: level x the largest intensity."""
        return self.level_du * max(self.intensity, default=0.0)

    def __repr__(self) -> str:
        return (
            f"VettedChannel({self.name} level={self.level_du}du "
            f"f={self.frequency_hz} i={self.intensity})"
        )


class VettedFrame(_Sealed):
    """One device frame for every channel of the device, made only by the guard."""

    __slots__ = ("channels", "t_s", "zero")
    channels: tuple[VettedChannel, ...]
    t_s: float
    zero: bool

    def __init__(
        self, *, seal: object, channels: tuple[VettedChannel, ...], t_s: float, zero: bool
    ) -> None:
        if seal is not _SEAL:
            raise UnvettedFrameError("only the safety guard makes vetted frames")
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "t_s", t_s)
        object.__setattr__(self, "zero", zero)

    def channel(self, name: str) -> VettedChannel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    def __repr__(self) -> str:
        return f"VettedFrame(t={self.t_s:.3f}s zero={self.zero} {list(self.channels)})"


def require_vetted(frame: object) -> VettedFrame:
    """Return ``frame`` if the guard made it; raise ``UnvettedFrameError`` otherwise.

    ``DeviceDriver.send`` calls this on every frame, for every device.
    """
    if type(frame) is not VettedFrame:
        raise UnvettedFrameError(
            f"refusing to encode {type(frame).__name__}: only frames made by the safety guard "
            "reach a device"
        )
    return frame


def check_levels(limits: SessionLimits, levels_du: Mapping[str, int]) -> None:
    """Refuse (``LimitError``) levels a session with these limits would refuse, before it
    starts: the guard's own rules, on a guard that never makes a frame."""
    dry_run = Guard(limits)
    for name, level in levels_du.items():
        dry_run.set_level(name, level, 0.0)


class Phase(Enum):
    READY = "ready"  # before start(): zero output
    RUNNING = "running"
    ENDING = "ending"  # time limit reached or finish(): ramping down
    ENDED = "ended"  # zero for ever


class NoticeKind(StrEnum):
    """What a guard notice is about."""

    STOP = "stop"  # output stopped (emergency stop or pause)
    LIMITED = "limited"  # a level held below its target by the rms current cap
    DENSITY_WARNING = "density_warning"  # rms current density at the IEC attention threshold
    CLAMPED = "clamped"  # a demand outside the device's range
    ENVELOPE = "envelope"  # the program's intensity rose faster than output may
    TIME_LIMIT = "time_limit"  # the session's time ran out (or finish): ramping down
    ENDED = "ended"  # output stopped for good
    LINK_LOST = "link_lost"  # the device link dropped: levels reset to zero
    DEVICE_LEVEL = "device_level"  # the device changed a level itself


@dataclass(frozen=True)
class Notice:
    """Something the guard did or saw that the session must show and record."""

    t_s: float
    kind: NoticeKind
    channel: str | None
    message: str


@dataclass
class _ChannelState:
    ceiling_du: int
    max_rms_ma: float
    level: float = 0.0  # the soft-started level, fractional du
    target_du: int = 0  # what the practitioner asked for
    flags: frozenset[NoticeKind] = frozenset()  # notice kinds now active (no repeats per frame)
    delivered_du: float = 0.0  # the last frame's delivered output (level x intensity)
    #: (time, delivered) of the last ENVELOPE_MEMORY_S seconds, delivered strictly falling
    #: from left to right (a sliding-window maximum: the first entry is the recent peak)
    recent: deque[tuple[float, float]] = field(default_factory=deque)

    def forget_delivery(self) -> None:
        """Nothing is delivered any more: the next output ramps from zero."""
        self.delivered_du = 0.0
        self.recent.clear()


class Guard:
    """Vets every frame of one session. Create one per session from resolved limits."""

    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        self._device = limits.device
        self._channels = {
            c.name: _ChannelState(c.ceiling_du, c.max_rms_current_ma) for c in limits.channels
        }
        self._phase = Phase.READY
        self._start_s: float | None = None
        self._last_s: float | None = None
        self._ramp_down_du_per_s: dict[str, float] = {}
        self._limits_written = False
        self._ended_while_link_down = False
        self._notices: list[Notice] = []
        n = self._device.samples_per_frame
        self._silent = (0.0,) * n
        self._silent_frequency = (self._device.frequency_range_hz[0],) * n
        self._silent_width = (self._device.pulse_width_range_us[0],) * n

    # --- state ------------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def limits_written(self) -> bool:
        return self._limits_written

    @property
    def ended_while_link_down(self) -> bool:
        """The session's time ran out while the device link was down (a fault, not a
        completed session, whatever the link does later)."""
        return self._ended_while_link_down

    def elapsed_s(self, now_s: float) -> float:
        return 0.0 if self._start_s is None else max(0.0, now_s - self._start_s)

    def level_du(self, channel: str) -> int:
        return math.floor(self._state(channel).level + 1e-9)

    def target_du(self, channel: str) -> int:
        return self._state(channel).target_du

    def ceiling_du(self, channel: str) -> int:
        return self._state(channel).ceiling_du

    def drain_notices(self) -> list[Notice]:
        out, self._notices = self._notices, []
        return out

    def _state(self, channel: str) -> _ChannelState:
        try:
            return self._channels[channel]
        except KeyError:
            raise LimitError(
                f"unknown channel {channel!r}; this session has {', '.join(self._channels)}"
            ) from None

    # --- commands ---------------------------------------------------------------------------
    def start(self, now_s: float) -> None:
        """Start the session clock. Levels stay zero until the practitioner raises them."""
        if self._phase is not Phase.READY:
            raise SafetyError(f"session already {self._phase.value}")
        self._phase = Phase.RUNNING
        self._start_s = now_s
        self._last_s = now_s

    def set_level(self, channel: str, level_du: int, now_s: float) -> None:
        """The practitioner's level for a channel: rises follow the ramp, falls apply at once."""
        state = self._state(channel)
        if self._phase in (Phase.ENDING, Phase.ENDED):
            raise LimitError("the session has ended; start a new one to stimulate again")
        if isinstance(level_du, bool) or not isinstance(level_du, int):
            raise LimitError(f"level {channel}={level_du!r}: a whole number of device units")
        if not 0 <= level_du <= state.ceiling_du:
            raise LimitError(
                f"level {channel}={level_du} du is outside this channel's range; "
                f"allowed 0..{state.ceiling_du} du"
            )
        if level_du > state.target_du and self._phase is Phase.RUNNING and not self._limits_written:
            raise LimitError(
                "the device is reconnecting: raise the level again once it is back "
                "(nothing resumes by itself)"
            )
        state.target_du = level_du
        if level_du < state.level:
            state.level = float(level_du)

    def stop(self, now_s: float) -> VettedFrame:
        """Emergency stop / pause: every level and target to zero now. Nothing resumes by
        itself; the practitioner raises levels again (from zero, ramped)."""
        for state in self._channels.values():
            state.level = 0.0
            state.target_du = 0
            state.forget_delivery()
        self._note(now_s, NoticeKind.STOP, None, "output stopped; raise a level to resume")
        return self.zero_frame(now_s)

    def finish(self, now_s: float) -> None:
        """End the session gently: ramp every level down to zero, then stop for ever."""
        if self._phase in (Phase.ENDING, Phase.ENDED):
            return
        self._begin_ending(now_s, "session finished; ramping down")

    def end(self, now_s: float) -> VettedFrame:
        """End the session at once: zero for ever."""
        for state in self._channels.values():
            state.level = 0.0
            state.target_du = 0
            state.forget_delivery()
        self._phase = Phase.ENDED
        return self.zero_frame(now_s)

    def link_lost(self, now_s: float, reason: str = "") -> None:
        """The link dropped: zero everything, and no output until limits are written again."""
        self._limits_written = False
        for state in self._channels.values():
            state.level = 0.0
            state.target_du = 0
            state.forget_delivery()
        why = f" ({reason})" if reason else ""
        self._note(
            now_s, NoticeKind.LINK_LOST, None, f"device link lost{why}: levels reset to zero"
        )

    def confirm_limits_written(self) -> None:
        """The bridge wrote the device's own soft limits since the last (re)connect."""
        self._limits_written = True

    def device_level(self, channel: str, level_du: int, now_s: float) -> None:
        """The device reports its level changed (e.g. its wheel was turned).

        A fall is followed at once. A rise becomes the target, so output ramps to it at the
        soft-start rate and never above the ceiling; and only while the practitioner is
        stimulating on that channel (a running, connected session with a target above zero):
        after a stop or pause, at the start, or around a reconnect a reported rise is ignored,
        and the device is brought back to the guard's level by the next frame."""
        state = self._state(channel)
        reported = max(0, level_du)
        current = self.level_du(channel)
        if reported < current:
            self._note(
                now_s,
                NoticeKind.DEVICE_LEVEL,
                channel,
                f"device lowered {channel} to {reported} du",
            )
            state.level = float(reported)
            state.target_du = reported
            return
        following = self._phase is Phase.RUNNING and self._limits_written and state.target_du > 0
        if reported == state.target_du or not following:
            return
        if reported > state.ceiling_du:
            self._note(
                now_s,
                NoticeKind.DEVICE_LEVEL,
                channel,
                f"device reports {channel}={reported} du above the ceiling "
                f"{state.ceiling_du} du; holding the ceiling",
            )
            reported = state.ceiling_du
        self._note(
            now_s,
            NoticeKind.DEVICE_LEVEL,
            channel,
            f"device raised {channel}: ramping to {reported} du",
        )
        state.target_du = reported

    # --- frames -----------------------------------------------------------------------------
    def zero_frame(self, now_s: float = 0.0) -> VettedFrame:
        """All channels of the device at level zero and intensity zero."""
        channels = tuple(
            VettedChannel(
                seal=_SEAL,
                name=name,
                level_du=0,
                frequency_hz=self._silent_frequency,
                pulse_width_us=self._silent_width,
                intensity=self._silent,
            )
            for name in self._device.channels
        )
        return VettedFrame(seal=_SEAL, channels=channels, t_s=now_s, zero=True)

    def vet(self, demand: Iterable[ChannelDemand], now_s: float) -> VettedFrame:
        """Turn one frame of demands into a vetted frame at time ``now_s``."""
        demands = {d.name: d for d in demand}
        for name in demands:
            if name not in self._channels:
                raise SafetyError(
                    f"demand for channel {name!r}, which is not in this session "
                    f"({', '.join(self._channels)})"
                )
        dt = self._advance_time(now_s)
        if self._phase is Phase.ENDING and not self._limits_written:
            # the session's time ran out while the link was down: output is zero already
            # and nothing may resume when the link comes back
            self._phase = Phase.ENDED
            self._ended_while_link_down = True
            self._note(
                now_s, NoticeKind.ENDED, None, "session ended while the device link was down"
            )
        if self._phase in (Phase.READY, Phase.ENDED) or not self._limits_written:
            for st in self._channels.values():
                st.forget_delivery()
            return self.zero_frame(now_s)

        for name, st in self._channels.items():
            self._ramp(name, st, dt)
        device = self._device
        n = device.samples_per_frame
        out: list[VettedChannel] = []
        any_output = False
        for name in device.channels:
            state = self._channels.get(name)
            d = demands.get(name)
            if state is None or d is None:
                if state is not None:
                    state.forget_delivery()
                out.append(self._silent_channel(name))
                continue
            if len(d.intensity) != n or len(d.frequency_hz) != n or len(d.pulse_width_us) != n:
                raise SafetyError(
                    f"demand for channel {name} has {len(d.intensity)} samples; "
                    f"{device.model} frames hold {n}"
                )
            vc = self._vet_channel(name, state, d, now_s, dt)
            any_output = any_output or (vc.level_du > 0 and max(vc.intensity) > 0)
            out.append(vc)
        if self._phase is Phase.ENDING and all(s.level <= 0 for s in self._channels.values()):
            self._phase = Phase.ENDED
            self._note(now_s, NoticeKind.ENDED, None, "session ended; output stopped")
        return VettedFrame(seal=_SEAL, channels=tuple(out), t_s=now_s, zero=not any_output)

    # --- internals --------------------------------------------------------------------------
    def _advance_time(self, now_s: float) -> float:
        last = self._last_s
        if last is None or now_s <= last:
            return 0.0
        self._last_s = now_s
        start = self._start_s
        if (
            self._phase is Phase.RUNNING
            and start is not None
            and now_s - start >= self.limits.max_session_s
        ):
            self._begin_ending(now_s, "session time limit reached; ramping down")
        return min(now_s - last, MAX_RAMP_STEP_S)

    def _begin_ending(self, now_s: float, message: str) -> None:
        self._phase = Phase.ENDING
        for name, state in self._channels.items():
            state.target_du = 0
            self._ramp_down_du_per_s[name] = max(state.level / END_RAMP_DOWN_S, 1.0)
        self._note(now_s, NoticeKind.TIME_LIMIT, None, message)

    def _ramp(self, name: str, state: _ChannelState, dt_s: float) -> None:
        if self._phase is Phase.ENDING:
            state.level = max(0.0, state.level - self._ramp_down_du_per_s[name] * dt_s)
        else:  # a target below the level wins at once through min()
            state.level = min(
                float(state.target_du), state.level + self.limits.rise_du_per_s * dt_s
            )

    def _silent_channel(self, name: str) -> VettedChannel:
        return VettedChannel(
            seal=_SEAL,
            name=name,
            level_du=0,
            frequency_hz=self._silent_frequency,
            pulse_width_us=self._silent_width,
            intensity=self._silent,
        )

    def _vet_channel(
        self, name: str, state: _ChannelState, d: ChannelDemand, now_s: float, dt_s: float
    ) -> VettedChannel:
        device = self._device
        f_lo, f_hi = device.frequency_range_hz
        w_lo, w_hi = device.pulse_width_range_us
        f_in, w_in, i_in = tuple(d.frequency_hz), tuple(d.pulse_width_us), tuple(d.intensity)
        if (
            # the usual frame: every value finite (a NaN or inf makes the sum non-finite)
            # and already within range, so there is nothing to clamp sample by sample
            math.isfinite(sum(f_in) + sum(w_in) + sum(i_in))
            and f_lo <= min(f_in)
            and max(f_in) <= f_hi
            and w_lo <= min(w_in)
            and max(w_in) <= w_hi
            and min(i_in) >= 0.0
            and max(i_in) <= 1.0
        ):
            return self._level_and_current(name, state, f_in, w_in, i_in, False, now_s, dt_s)
        freqs: list[float] = []
        widths: list[float] = []
        intensities: list[float] = []
        clamped = False
        for f, w, i in zip(f_in, w_in, i_in, strict=True):
            if not (math.isfinite(f) and math.isfinite(w) and math.isfinite(i)):
                f, w, i = f_lo, w_lo, 0.0
                clamped = True
            if i <= 0.0:
                i = 0.0
            elif i > 1.0:
                i, clamped = 1.0, True
            if f < f_lo or f > f_hi:  # silent samples may carry any rate (e.g. 0 Hz)
                f, clamped = min(max(f, f_lo), f_hi), clamped or i > 0
            if w < w_lo or w > w_hi:
                w = min(max(w, w_lo), w_hi)
            freqs.append(f)
            widths.append(w)
            intensities.append(i)
        return self._level_and_current(
            name, state, tuple(freqs), tuple(widths), tuple(intensities), clamped, now_s, dt_s
        )

    def _level_and_current(
        self,
        name: str,
        state: _ChannelState,
        freqs: tuple[float, ...],
        widths: tuple[float, ...],
        intensities: tuple[float, ...],
        clamped: bool,
        now_s: float,
        dt_s: float,
    ) -> VettedChannel:
        if clamped or NoticeKind.CLAMPED in state.flags:
            self._flag(state, now_s, NoticeKind.CLAMPED, name, clamped, _CLAMPED)
        level = min(math.floor(state.level + 1e-9), state.ceiling_du)
        intensities = self._soft_start_envelope(name, state, level, intensities, now_s, dt_s)
        if self._device.calibration is None:
            vc = VettedChannel(
                seal=_SEAL,
                name=name,
                level_du=level,
                frequency_hz=freqs,
                pulse_width_us=widths,
                intensity=intensities,
            )
        else:
            vc = self._vet_calibrated(name, state, level, freqs, widths, intensities, now_s)
        self._delivered(state, vc.output_du, now_s)
        return vc

    def _soft_start_envelope(
        self,
        name: str,
        state: _ChannelState,
        level: int,
        intensities: tuple[float, ...],
        now_s: float,
        dt_s: float,
    ) -> tuple[float, ...]:
        """Lower the intensity samples so that level x intensity stays within the
        delivered-output soft start (module docstring); a channel at level 0 is silent."""
        if level <= 0:
            return self._silent
        recent = state.recent
        while recent and now_s - recent[0][0] > ENVELOPE_MEMORY_S:
            recent.popleft()
        peak = recent[0][1] if recent else 0.0
        allowed = max(peak, state.delivered_du + self.limits.rise_du_per_s * dt_s)
        wanted = level * max(intensities)
        limited = wanted > allowed + 1e-9
        # noticed only when the program's envelope is held back, not for the fraction of a
        # device unit by which output follows a ramping level
        held_back = wanted > allowed + 1.0
        if held_back or NoticeKind.ENVELOPE in state.flags:
            self._flag(
                state,
                now_s,
                NoticeKind.ENVELOPE,
                name,
                held_back,
                "soft start: the program's intensity rises faster than output may; "
                "output follows at the ramp rate",
            )
        if not limited:
            return intensities
        cap = allowed / level
        return tuple(i if i <= cap else cap for i in intensities)

    def _delivered(self, state: _ChannelState, output_du: float, now_s: float) -> None:
        state.delivered_du = output_du
        recent = state.recent
        while recent and recent[-1][1] <= output_du:
            recent.pop()
        recent.append((now_s, output_du))

    def _vet_calibrated(
        self,
        name: str,
        state: _ChannelState,
        level: int,
        freqs: tuple[float, ...],
        widths: tuple[float, ...],
        intensities: tuple[float, ...],
        now_s: float,
    ) -> VettedChannel:
        cal = self._device.calibration
        assert cal is not None
        biphasic = self._device.biphasic
        area = self.limits.electrode_area_cm2
        # rms current per device unit of level, for the worst sample of the frame
        n = len(freqs)
        if freqs.count(freqs[0]) == n and widths.count(widths[0]) == n:  # one rate and width
            duty = electrical.duty_cycle(widths[0], freqs[0], biphasic=biphasic)
            worst = max(intensities) * cal.peak_ma_per_du * math.sqrt(duty)
        else:
            worst = max(
                i * cal.peak_ma_per_du * math.sqrt(electrical.duty_cycle(w, f, biphasic=biphasic))
                for f, w, i in zip(freqs, widths, intensities, strict=True)
            )
        cap_ma = state.max_rms_ma
        if area is not None:
            cap_ma = min(cap_ma, ABS_MAX_CURRENT_DENSITY_MA_PER_CM2 * area)
        allowed = math.floor(cap_ma / worst) if worst > 0 else state.ceiling_du
        if level > allowed:
            level = allowed
            # the soft-started level follows the cap, so a lifted cap ramps, never jumps
            state.level = min(state.level, float(allowed))
        limited = state.target_du > allowed
        if limited or NoticeKind.LIMITED in state.flags:
            self._flag(
                state,
                now_s,
                NoticeKind.LIMITED,
                name,
                limited,
                f"level held at {allowed} du or below: rms current cap {cap_ma:.2f} mA",
            )
        peak = level * max(intensities) * cal.peak_ma_per_du
        rms = level * worst
        density = None if area is None else rms / area
        warn = density is not None and density >= CURRENT_DENSITY_WARN_MA_PER_CM2
        if warn or NoticeKind.DENSITY_WARNING in state.flags:
            self._flag(state, now_s, NoticeKind.DENSITY_WARNING, name, warn, _DENSITY_WARNING)
        return VettedChannel(
            seal=_SEAL,
            name=name,
            level_du=level,
            frequency_hz=tuple(freqs),
            pulse_width_us=tuple(widths),
            intensity=tuple(intensities),
            peak_current_ma=peak,
            rms_current_ma=rms,
            current_density_ma_per_cm2=density,
            charge_per_phase_uc=electrical.charge_per_phase_uc(peak, max(widths)),
        )

    def _flag(
        self,
        state: _ChannelState,
        now_s: float,
        kind: NoticeKind,
        channel: str,
        on: bool,
        message: str,
    ) -> None:
        """Raise a notice when a condition starts (not on every frame while it lasts)."""
        if on and kind not in state.flags:
            state.flags = state.flags | {kind}
            self._note(now_s, kind, channel, f"{channel}: {message}")
        elif not on and kind in state.flags:
            state.flags = state.flags - {kind}

    def _note(self, now_s: float, kind: NoticeKind, channel: str | None, message: str) -> None:
        self._notices.append(Notice(now_s, kind, channel, message))
