"""One session, on the IO loop: program -> guard -> driver, with records and live status.

``SessionRunner.run`` resolves the limits (refusing bad input before anything is sent),
connects the driver (which writes the device's own limits and zero), streams the program
through the guard, follows what the device reports, records every frame and event, and always
ends with zero output. Commands (levels, pause, stop, end) arrive through the engine and run
on the IO loop like everything else here.

Never touches Qt, never blocks the loop on disk I/O (the records store queues), never makes a
frame (only the guard does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from acustim.events import EventKind, NoticeHandler, SessionEvent, event_kind
from acustim.records import ChannelFrame, EventRow, FrameRow, RecordStore
from device_profiles.profile import DeviceProfile
from firmware_bridge.driver import DeviceDriver
from firmware_bridge.events import (
    BatteryReport,
    DeviceEvent,
    DeviceNotice,
    LinkLost,
    StrengthReport,
)
from firmware_bridge.streamer import Outcome, Streamer, StreamResult, StreamStats
from safety import fit as safety_fit
from safety.guard import Guard, Notice, Phase, VettedFrame, check_levels
from safety.limits import SessionLimits, check_reconnect_s, resolve_limits
from waveforms.errors import AcustimError
from waveforms.program import ChannelDemand, Program
from waveforms.render import Rendered, render


@dataclass(frozen=True)
class SessionConfig:
    """What the practitioner chose for one session."""

    program: Program
    levels_du: dict[str, int] = field(default_factory=dict)
    ceilings_du: dict[str, int] | None = None
    session_s: float | None = None
    rise_fraction_per_s: float | None = None
    electrode_area_cm2: float | None = None
    #: After a lost link, try to reconnect for this long (0: the session ends as a fault).
    #: A reconnect writes the device's limits again and leaves every level at zero.
    reconnect_s: float = 0.0
    #: the practitioner's pseudonymous patient code (no names), notes, screening answers
    patient: str | None = None
    notes: str = ""
    screening: dict[str, object] | None = None
    #: what the pre-session checks want shown and recorded (placement, onset)
    warnings: tuple[str, ...] = ()
    #: the stored calibration of this device in force (``CalibrationRecord.meta``: date, by,
    #: source file), None when the profile's own figure or none applies
    calibration: dict[str, object] | None = None
    #: a calibration into a load resistor: no person connected (``acustim.calibration``)
    load_test: bool = False


@dataclass(frozen=True)
class ChannelStatus:
    name: str
    level_du: int
    target_du: int
    ceiling_du: int
    segment: str
    rms_current_ma: float | None = None
    #: what reaches the patient in this frame: level x the program's largest intensity
    delivered_du: float = 0.0
    #: the rate and pulse width of this frame (the largest of its samples; 0 when silent)
    frequency_hz: float = 0.0
    pulse_width_us: float = 0.0


class SessionState(StrEnum):
    """Where a session is, for displays."""

    CONNECTING = "connecting"
    RUNNING = "running"
    PAUSED = "paused"
    ENDING = "ending"  # ramping down at the end
    ENDED = "ended"


@dataclass(frozen=True)
class SessionStatus:
    """A snapshot for displays: replaced whole on every frame, so readers need no lock."""

    state: SessionState
    elapsed_s: float = 0.0
    total_s: float = 0.0
    program_s: float = 0.0
    channels: tuple[ChannelStatus, ...] = ()
    lateness_ms: float = 0.0
    lateness_p99_ms: float = 0.0
    frames_sent: int = 0
    frames_skipped: int = 0
    battery_percent: int | None = None
    session_id: int | None = None
    outcome: str | None = None
    reason: str | None = None
    #: how many ``set_level`` requests were applied before this snapshot: a display that
    #: counts its own requests knows a target it sees is the guard's, not one still in flight
    level_requests: int = 0


class ProgramSource:
    """Hands the streamer one frame of demands at a time; program time stops while paused."""

    def __init__(self, program: Program, sample_period_s: float, samples_per_frame: int) -> None:
        self.program = program
        self.samples = samples_per_frame
        self.rendered: Rendered = render(program, sample_period_s)
        self.frames_total = self.rendered.n_frames(samples_per_frame)
        self.frame_s = sample_period_s * samples_per_frame
        self.position = 0  # program frame
        self.paused = False
        self._last_index: int | None = None
        self._held: Sequence[ChannelDemand] = ()

    @property
    def finished(self) -> bool:
        return self.position >= self.frames_total

    def segment_labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        tick = min(self.position * self.samples, self.rendered.n_ticks - 1)
        for k, ch in enumerate(self.program.channels):
            index = int(self.rendered.segment[k, tick]) if tick >= 0 else -1
            if index < 0 or self.finished:
                out[ch.name] = "ended"
            else:
                seg = ch.segments[index]
                out[ch.name] = seg.label or seg.kind.replace("_", "-")
        return out

    def __call__(self, index: int, now_s: float) -> Sequence[ChannelDemand]:
        # program time follows the frame clock (skipped frames included), except while paused
        step = 0 if self._last_index is None else max(0, index - self._last_index)
        self._last_index = index
        if not self.paused:
            self.position += step
        if self.position >= self.frames_total:
            return self._held  # after the end: hold the last demand while the guard ramps down
        demand = self.rendered.frame(self.position, self.samples)
        self._held = tuple(
            ChannelDemand(
                d.name, d.frequency_hz, d.pulse_width_us, (d.intensity[-1],) * self.samples
            )
            for d in demand
        )
        return demand


def check_program_fits(
    program: Program, profile: DeviceProfile, source: ProgramSource
) -> list[str]:
    """``safety.fit.check_program_fits`` for a profile and a rendered source."""
    return safety_fit.check_program_fits(
        program,
        source.rendered,
        profile.limits,
        device_name=profile.name,
        pulse_width_controlled=profile.pulse_width_controlled,
    )


#: Longest a connect (or one reconnect attempt) may take before it counts as failed.
CONNECT_TIMEOUT_S = 15.0
#: Longest closing a link may take.
CLOSE_TIMEOUT_S = 5.0

#: At or below this, a low-battery notice is shown and recorded.
LOW_BATTERY_PERCENT = 15


class SessionRunner:
    """Runs one session to its end on the IO loop."""

    def __init__(
        self,
        config: SessionConfig,
        profile: DeviceProfile,
        driver: DeviceDriver,
        *,
        store: RecordStore | None = None,
        device_label: str = "",
        on_notice: NoticeHandler | None = None,
        on_frame: Callable[[int, VettedFrame], None] | None = None,
    ) -> None:
        self.config = config
        self.profile = profile
        self.driver = driver
        self.store = store
        self.device_label = device_label or profile.id
        self.on_notice = on_notice
        self.on_frame = on_frame
        # resolved here, before anything is sent: a bad level or ceiling is refused up front
        self.limits: SessionLimits = resolve_limits(
            profile.limits,
            config.program,
            ceilings_du=config.ceilings_du,
            rise_fraction_per_s=config.rise_fraction_per_s,
            session_s=config.session_s,
            electrode_area_cm2=config.electrode_area_cm2,
        )
        check_reconnect_s(config.reconnect_s)
        check_levels(self.limits, config.levels_du)  # bad levels are refused up front
        self.guard = Guard(self.limits)
        self.source = ProgramSource(
            config.program, profile.limits.sample_period_s, profile.limits.samples_per_frame
        )
        #: said once at the start (e.g. pulse widths the device delivers shorter)
        self.start_notes: list[str] = check_program_fits(config.program, profile, self.source)
        self.streamer: Streamer | None = None
        self._link_up = True
        self.session_id: int | None = None
        self.status = SessionStatus(
            state=SessionState.CONNECTING,
            total_s=min(self.limits.max_session_s, config.program.duration_s),
        )
        self._t0 = 0.0
        self._finishing = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._p99_cache_ms: float | None = None
        self._battery_percent: int | None = None
        self._firmware: str | None = None
        self.reconnects = 0
        #: the last frame the device took was a zero frame (nothing was sent: also zero)
        self.zero_confirmed = True
        self.result: StreamResult | None = None
        self.record_error: str | None = None
        self.level_requests = 0
        #: the targets when the session was paused, for an explicit ``resume``
        self._paused_targets: dict[str, int] = {}

    # --- commands (IO loop) ---------------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def set_level(self, channel: str, level_du: int) -> None:
        """The practitioner's level; raising a level after a pause or stop resumes."""
        self.level_requests += 1
        self.guard.set_level(channel, level_du, self._now())
        if level_du > 0 and self.source.paused:
            self.source.paused = False
            self._event(EventKind.RESUME, f"resumed by raising {channel} to {level_du} du")
        self._event(
            EventKind.LEVEL, f"{channel} set to {level_du} du", {channel: level_du}, channel=channel
        )

    def pause(self) -> None:
        """Zero output now and hold the program; raising a level, or ``resume``, resumes."""
        if not self.source.paused:
            self._paused_targets = {
                c.name: self.guard.target_du(c.name) for c in self.limits.channels
            }
        if self.streamer is not None and self.streamer.running:
            self.streamer.emergency_stop()
        else:
            self.guard.stop(self._now())
        self.source.paused = True
        self._event(EventKind.PAUSE, "paused: output zero; raise a level to resume")

    def resume(self) -> dict[str, int]:
        """After a pause: every channel back to its target before the pause, ramping from zero
        (the guard's soft start: a pause forgets what was delivered). Returns the targets set;
        nothing when not paused."""
        if not self.source.paused or self.guard.phase is not Phase.RUNNING:
            return {}
        targets = {name: du for name, du in self._paused_targets.items() if du > 0}
        now = self._now()
        for name, du in targets.items():
            self.guard.set_level(name, du, now)
        self.source.paused = False
        said = ", ".join(f"{name} to {du} du" for name, du in targets.items()) or "no channel"
        self._event(
            EventKind.RESUME,
            f"resumed by the practitioner: {said}, ramping from zero",
            dict(targets),
        )
        return targets

    def stop(self, reason: str = "stopped by the practitioner") -> None:
        """Emergency stop: zero on the wire at once, and the session ends."""
        if self.streamer is not None and self.streamer.running:
            self.streamer.end(Outcome.STOPPED, reason)
        else:
            self.guard.end(self._now())
            if self.result is None:
                self.result = StreamResult(Outcome.STOPPED, reason)

    # --- the session ----------------------------------------------------------------------------
    async def run(self) -> StreamResult:
        """Connect, stream to the end, close. Every way out ends with zero output."""
        loop = asyncio.get_running_loop()
        program = self.config.program
        self.driver.on_event = self._device_event
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.driver.connect(self.limits)
        except Exception as exc:
            await self._close_quietly()
            self.result = StreamResult(Outcome.FAULT, f"could not connect: {_describe(exc)}")
            self.status = self._ended_status()
            return self.result
        try:
            self.guard.confirm_limits_written()
            if self.store is not None:
                self.session_id = self.store.start_session(
                    program=program.name,
                    device=self.device_label,
                    profile=self.profile.id,
                    meta=self._meta(),
                    patient=self.config.patient,
                    notes=self.config.notes,
                    screening=self.config.screening,
                    firmware=self._firmware,
                )
            self._t0 = loop.time()
            if self.result is None:  # not stopped while connecting
                await self._stream()
        except Exception as exc:  # a bug or a records failure: never leave output on
            self.guard.end(loop.time())
            self.result = StreamResult(Outcome.FAULT, f"session failed: {_describe(exc)}")
        except asyncio.CancelledError:  # the engine is closing: zero and close, then go on
            self.guard.end(loop.time())
            self.result = self.result or StreamResult(Outcome.STOPPED, "the engine was closed")
            await self._end_reconnect()
            await self._close_quietly()
            raise
        assert self.result is not None
        await self._end_reconnect()
        await self._close_quietly()
        if not self.zero_confirmed and not self.profile.stops_when_host_silent:
            self.result = StreamResult(
                self.result.outcome,
                f"{self.result.reason}; WARNING: zero output was not confirmed and "
                f"{self.profile.name} keeps stimulating by itself: switch it off at the device",
            )
        self._event(EventKind.END, f"session {self.result.outcome}: {self.result.reason}")
        if self.store is not None and self.session_id is not None:
            try:
                self.store.end_session(
                    self.session_id, outcome=self.result.outcome, reason=self.result.reason
                )
            except AcustimError as exc:
                self.record_error = str(exc)
        self.status = self._ended_status()
        return self.result

    async def _stream(self) -> None:
        program = self.config.program
        self.guard.start(self._t0)
        self._event(EventKind.START, f"session started: {program.name} on {self.device_label}")
        for note in self.start_notes:
            self._event(EventKind.PULSE_WIDTH, note)
        for warning in self.config.warnings:
            self._event(EventKind.PLACEMENT, warning)
        if not self.source.paused:  # a pause while connecting keeps every level at zero
            for name, level in self.config.levels_du.items():
                self.guard.set_level(name, level, self._t0)
                self._event(
                    EventKind.LEVEL, f"{name} set to {level} du", {name: level}, channel=name
                )
        self.streamer = Streamer(self.driver, self)
        self.status = replace(self.status, state=SessionState.RUNNING, session_id=self.session_id)
        self.result = await self.streamer.run()

    def _ended_status(self) -> SessionStatus:
        r = self.result
        return replace(
            self.status,
            state=SessionState.ENDED,
            outcome=r.outcome if r else None,
            reason=r.reason if r else None,
        )

    def _streaming(self) -> bool:
        return self.streamer is not None and self.streamer.running

    async def _end_reconnect(self) -> None:
        """A reconnect still trying must not outlive the session (it would reopen the link)."""
        task = self._reconnect_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _close_quietly(self) -> None:
        """The last zero, then the link closes whatever happened to the zero."""
        try:
            if self.streamer is not None:
                await self.streamer.final_zero()
        except Exception as exc:
            self.zero_confirmed = False
            self._event(EventKind.CLOSE_FAILED, f"the last zero frame failed: {_describe(exc)}")
        finally:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    if self.streamer is not None:
                        await self.driver.close()
                    else:
                        await self.driver.close(self.guard.zero_frame(self._now()))
            except Exception as exc:
                self._event(EventKind.CLOSE_FAILED, f"closing the link failed: {_describe(exc)}")

    # --- the frames (the streamer's FrameSource: the runner is the guard's one owner) ----------
    @property
    def link_up(self) -> bool:
        return self._link_up

    def frame(self, index: int, now_s: float) -> VettedFrame:
        """Program frame -> guard -> vetted frame; at the program's end the guard ramps down."""
        demand = self.source(index, now_s)
        if self.source.finished and not self._finishing:
            self._finishing = True
            self.guard.finish(now_s)
        return self.guard.vet(demand, now_s)

    def zero(self, now_s: float, *, final: bool) -> VettedFrame:
        return self.guard.end(now_s) if final else self.guard.stop(now_s)

    def ended(self) -> StreamResult | None:
        if self.guard.phase is not Phase.ENDED:
            return None
        if self.guard.ended_while_link_down:
            return StreamResult(
                Outcome.FAULT,
                "the device link was lost and the session's time ran out before it came back",
            )
        return StreamResult(Outcome.COMPLETED, "session completed")

    def link_lost(self, reason: str) -> bool:
        if self.config.reconnect_s <= 0:
            return False
        self._device_event(LinkLost(reason))
        return True

    def sent(self, index: int, frame: VettedFrame, lateness_s: float) -> None:
        self.zero_confirmed = frame.zero
        t_s = frame.t_s - self._t0
        for notice in self.guard.drain_notices():
            self._notice(notice)
        if self.store is not None and self.session_id is not None and self.record_error is None:
            try:
                self.store.add_frame(
                    self.session_id,
                    FrameRow(
                        index=index,
                        t_s=t_s,
                        lateness_ms=lateness_s * 1000.0,
                        zero=frame.zero,
                        channels=tuple(
                            ChannelFrame(
                                c.name, c.level_du, c.frequency_hz, c.pulse_width_us, c.intensity
                            )
                            for c in frame.channels
                        ),
                    ),
                )
            except AcustimError as exc:  # the record cannot be kept: stop output
                self.record_error = str(exc)
                if self.streamer is not None:
                    self.streamer.end(Outcome.FAULT, f"records failed: {exc}")
        if self.on_frame is not None:
            self.on_frame(index, frame)
        self._update_status(frame, t_s)

    def _update_status(self, frame: VettedFrame, t_s: float) -> None:
        streamer = self.streamer
        labels = self.source.segment_labels()
        phase = self.guard.phase
        state = {
            Phase.ENDING: SessionState.ENDING,
            Phase.ENDED: SessionState.ENDED if self.result else SessionState.ENDING,
        }.get(phase, SessionState.PAUSED if self.source.paused else SessionState.RUNNING)
        vetted = {ch.name: ch for ch in frame.channels}  # one lookup per channel per frame
        channels = tuple(
            ChannelStatus(
                name=c.name,
                level_du=(v := vetted[c.name]).level_du,
                target_du=self.guard.target_du(c.name),
                ceiling_du=c.ceiling_du,
                segment=labels.get(c.name, ""),
                rms_current_ma=v.rms_current_ma,
                delivered_du=v.output_du,
                frequency_hz=max(v.frequency_hz, default=0.0),
                pulse_width_us=max(v.pulse_width_us, default=0.0),
            )
            for c in self.limits.channels
        )
        stats = streamer.stats if streamer is not None else None
        self.status = replace(
            self.status,
            state=state,
            elapsed_s=max(0.0, t_s),
            program_s=min(self.source.position, self.source.frames_total) * self.source.frame_s,
            channels=channels,
            lateness_ms=(stats.last_lateness_s * 1000) if stats else 0.0,
            lateness_p99_ms=self._p99_ms(stats),
            frames_sent=stats.frames_sent if stats else 0,
            frames_skipped=stats.frames_skipped if stats else 0,
            battery_percent=self.driver.battery_percent,
            level_requests=self.level_requests,
        )

    def _p99_ms(self, stats: StreamStats | None) -> float:
        """The p99 lateness, recomputed every 10 frames (it sorts the recent window)."""
        if stats is None:
            return 0.0
        if stats.frames_sent % 10 == 1 or self._p99_cache_ms is None:
            self._p99_cache_ms = stats.percentile_lateness_s(99) * 1000
        return self._p99_cache_ms

    # --- what the device says -------------------------------------------------------------------
    def _device_event(self, event: DeviceEvent) -> None:
        now = self._now()
        if isinstance(event, StrengthReport):
            if event.by_device:
                for name in self.limits.channel_names:
                    if name in event.levels_du:
                        self.guard.device_level(name, event.levels_du[name], now)
                self._event(
                    EventKind.DEVICE_LEVEL, "device changed its levels", dict(event.levels_du)
                )
        elif isinstance(event, BatteryReport):
            if event.percent != self._battery_percent:
                self._battery_percent = event.percent
                self._event(
                    EventKind.BATTERY, f"battery {event.percent} %", {"percent": event.percent}
                )
                if event.percent <= LOW_BATTERY_PERCENT:
                    self._event(
                        EventKind.LOW_BATTERY,
                        f"device battery low ({event.percent} %): output may weaken or stop",
                        {"percent": event.percent},
                    )
        elif isinstance(event, DeviceNotice):
            if event.kind == EventKind.FIRMWARE:
                self._firmware = event.message
                if self.store is not None and self.session_id is not None:
                    self.store.set_session_firmware(self.session_id, event.message)
            self._event(event_kind(event.kind), event.message, dict(event.data))
            if event.kind == EventKind.ELECTRODE_OFF and self.streamer is not None:
                # current would jump when the electrode touches again: zero until re-raised
                self.pause()
        elif isinstance(event, LinkLost):
            if self._reconnect_task is not None and not self._reconnect_task.done():
                return  # already reconnecting (a failed write reported it first)
            self.guard.link_lost(now, event.reason)
            for notice in self.guard.drain_notices():
                self._notice(notice)
            if not self.profile.stops_when_host_silent and not self.zero_confirmed:
                self._event(
                    EventKind.RUNS_ON,
                    f"WARNING: the link is lost and {self.profile.name} keeps stimulating by "
                    "itself at its last output: switch it off at the device",
                )
            streamer = self.streamer
            if streamer is None or not streamer.running:
                if self.result is None:
                    self.result = StreamResult(Outcome.FAULT, f"device link lost: {event.reason}")
            elif self.config.reconnect_s > 0:
                self._link_up = False
                self.source.paused = True
                self._reconnect_task = asyncio.get_running_loop().create_task(
                    self._reconnect(event.reason)
                )
            else:
                streamer.end(Outcome.FAULT, f"device link lost: {event.reason}")

    async def _reconnect(self, reason: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.reconnect_s
        attempt = 0
        while self.streamer is not None and self.streamer.running:
            attempt += 1
            try:
                remaining = max(0.1, deadline - loop.time())
                async with asyncio.timeout(min(CONNECT_TIMEOUT_S, remaining)):
                    await self.driver.connect(self.limits)
            except Exception as exc:
                self._event(
                    EventKind.RECONNECT_FAILED, f"reconnect {attempt} failed: {_describe(exc)}"
                )
                if loop.time() + 1.0 > deadline:
                    self.streamer.end(
                        Outcome.FAULT,
                        f"device link lost ({reason}) and not back within "
                        f"{self.config.reconnect_s:g} s",
                    )
                    return
                await asyncio.sleep(1.0)
                continue
            if not self._streaming():
                return  # the session ended while connecting: the close path zeroes and closes
            self.guard.confirm_limits_written()
            self._link_up = True
            self.reconnects += 1
            self._event(
                EventKind.RECONNECTED,
                "reconnected: device limits written again; levels are at zero, "
                "raise a level to resume",
            )
            return

    # --- records --------------------------------------------------------------------------------
    def _notice(self, notice: Notice) -> None:
        self._event(
            event_kind(notice.kind),
            notice.message,
            {"channel": notice.channel},
            channel=notice.channel,
        )

    def _event(
        self,
        kind: EventKind,
        message: str,
        data: dict[str, object] | None = None,
        *,
        channel: str | None = None,
    ) -> None:
        if self.on_notice is not None:
            self.on_notice(SessionEvent(kind, message, channel, dict(data or {})))
        if self.store is None or self.session_id is None or self.record_error is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self.store.add_event(
                self.session_id,
                EventRow(t_s=loop.time() - self._t0, kind=kind, message=message, data=data),
            )
        except AcustimError as exc:
            self.record_error = str(exc)
            if self.streamer is not None and self.streamer.running:
                self.streamer.end(Outcome.FAULT, f"records failed: {exc}")

    def _meta(self) -> dict[str, object]:
        program = self.config.program
        return {
            "program_title": program.title,
            "program_source": program.source_path,
            "indication": program.indication,
            "electrode": program.electrode,
            "electrode_area_cm2": self.limits.electrode_area_cm2,
            "channels": [
                {
                    "name": ch.name,
                    "sites": list(ch.sites),
                    "ceiling_du": self.limits.channel(ch.name).ceiling_du,
                    "max_rms_current_ma": self.limits.channel(ch.name).max_rms_current_ma,
                }
                for ch in program.channels
            ],
            "levels_du": dict(self.config.levels_du),
            "rise_du_per_s": self.limits.rise_du_per_s,
            "max_session_s": self.limits.max_session_s,
            "calibrated": self.profile.calibrated,
            "calibration": (
                None
                if (cal := self.profile.limits.calibration) is None
                else {
                    "peak_ma_per_du": cal.peak_ma_per_du,
                    "load_ohm": cal.load_ohm,
                    **(self.config.calibration or {"source": "profile"}),
                }
            ),
            "load_test": self.config.load_test,
            "level_unit": self.profile.level_unit,
            "stops_when_host_silent": self.profile.stops_when_host_silent,
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the device did not answer in time"
    return str(exc) if isinstance(exc, AcustimError) else f"{type(exc).__name__}: {exc}"
