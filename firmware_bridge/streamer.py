"""The streamer: the real-time loop that vets and writes one frame per device frame period.

Frames are due at absolute deadlines ``t0 + (i - ahead) * period``: a device that buffers gets
``ahead`` frames at once at the start, so ordinary lateness never starves it. Lateness is
measured for every frame; frames whose deadline passed a whole period ago are dropped and the
schedule restarts from now, never sent in a burst. Lateness beyond the watchdog threshold, a
write that does not finish in time, or any exception ends the stream with zero output. An
emergency stop puts the zero frame on the wire at once, out of band, not at the next tick.

Runs on the IO loop only. It never makes a frame itself and never touches the safety guard:
every frame, the zero frames included, comes from its ``FrameSource`` (the session, which owns
the guard), and everything it sees (a frame sent, the link found closed) goes back there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from firmware_bridge.driver import DeviceDriver
from firmware_bridge.errors import TransportClosed
from safety.guard import VettedFrame
from waveforms.errors import AcustimError


class Outcome(StrEnum):
    """How a stream (and so a session) ended."""

    COMPLETED = "completed"  # the program ran to its end (or its time limit)
    STOPPED = "stopped"  # the practitioner, Ctrl-C or the closing app stopped it
    FAULT = "fault"  # the device, the link, the loop or the records failed


@dataclass(frozen=True)
class StreamResult:
    outcome: Outcome
    reason: str


@dataclass
class StreamStats:
    """Live figures of one stream (read by status displays; written only on the loop)."""

    frames_sent: int = 0
    frames_skipped: int = 0  # late: their deadline passed, never sent
    frames_trimmed: int = 0  # left out after an out-of-band zero, to keep the device queue depth
    last_lateness_s: float = 0.0
    max_lateness_s: float = 0.0
    recent_lateness_s: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    stop_latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def percentile_lateness_s(self, q: float) -> float:
        data = sorted(self.recent_lateness_s)
        if not data:
            return 0.0
        return data[min(len(data) - 1, math.ceil(q / 100 * len(data)) - 1)]


#: How long before a deadline the streamer stops sleeping and spins (the selector's timeout
#: has a resolution of one millisecond and wakes late, never early).
SPIN_S = 0.0015


class FrameSource(Protocol):
    """What the streamer streams: the session that owns the guard."""

    @property
    def link_up(self) -> bool:
        """False while the link is down: frames are still asked for (the session's clock goes
        on and its output is zero) but not written."""
        ...

    def frame(self, index: int, now_s: float) -> VettedFrame:
        """The vetted frame for tick ``index`` at loop time ``now_s``."""
        ...

    def zero(self, now_s: float, *, final: bool) -> VettedFrame:
        """A zero frame: the emergency stop or pause (``final=False``: the session goes on at
        zero) or the end (``final=True``: zero for ever)."""
        ...

    def ended(self) -> StreamResult | None:
        """How the session ended by itself (its program or its time ran out), or None."""
        ...

    def sent(self, index: int, frame: VettedFrame, lateness_s: float) -> None:
        """A frame is on the wire (sequence number, frame, lateness in seconds)."""
        ...

    def link_lost(self, reason: str) -> bool:
        """A write found the link closed. True: the session reconnects (the stream goes on
        without writing while ``link_up`` is False); False: the stream ends as a fault."""
        ...


class WatchdogTrip(AcustimError):
    """The loop or the link fell behind the frame clock."""


class Streamer:
    """Streams one session's frames to one driver."""

    def __init__(
        self,
        driver: DeviceDriver,
        frames: FrameSource,
        *,
        watchdog_s: float | None = None,
        write_timeout_s: float | None = None,
    ) -> None:
        self.driver = driver
        self.frames = frames
        self.period_s = driver.frame_period_s
        #: the first frames go out at once to fill the device's queue (see the profile)
        self.frames_ahead = driver.profile.frames_ahead
        self.watchdog_s = watchdog_s if watchdog_s is not None else max(0.25, 2.5 * self.period_s)
        self.write_timeout_s = (
            write_timeout_s if write_timeout_s is not None else max(0.5, 3 * self.period_s)
        )
        self.stats = StreamStats()
        self._wake = asyncio.Event()
        self._result: StreamResult | None = None
        self._t0 = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._oob: set[asyncio.Task[None]] = set()
        self._drop_next = False

    def _finished(self) -> bool:
        return self._result is not None

    @property
    def running(self) -> bool:
        return self._loop is not None and self._result is None

    def t0(self) -> float:
        return self._t0

    # --- commands (on the loop) ---------------------------------------------------------------
    def emergency_stop(self) -> asyncio.Task[None]:
        """Zero every level now and write the zero frame at once. The stream goes on (at zero);
        nothing resumes until the practitioner raises a level."""
        loop = asyncio.get_running_loop()
        requested = loop.time()
        zero = self.frames.zero(requested, final=False)
        return self._out_of_band(loop, zero, requested)

    def end(self, outcome: Outcome, reason: str) -> asyncio.Task[None]:
        """End the stream now with zero output (Ctrl-C, window closed, link lost, fault)."""
        loop = asyncio.get_running_loop()
        requested = loop.time()
        zero = self.frames.zero(requested, final=True)
        if self._result is None:
            self._result = StreamResult(outcome, reason)
        self._wake.set()
        return self._out_of_band(loop, zero, requested)

    def _out_of_band(
        self, loop: asyncio.AbstractEventLoop, zero: VettedFrame, requested_s: float
    ) -> asyncio.Task[None]:
        task = loop.create_task(self._send_out_of_band(zero, requested_s))
        self._oob.add(task)
        task.add_done_callback(self._oob.discard)
        return task

    async def _send_out_of_band(self, zero: VettedFrame, requested_s: float) -> None:
        if not self.frames.link_up:
            return  # nothing can be written; the device's own timeout or reconnect zeroes it
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await self.driver.send(zero)
        except Exception as exc:  # the link is gone: the stream ends as a fault
            if self._result is None or self._result.outcome != Outcome.FAULT:
                self._result = StreamResult(
                    Outcome.FAULT, f"could not write zero output: {_describe(exc, self)}"
                )
            self._wake.set()
            return
        loop = asyncio.get_running_loop()
        self.stats.stop_latencies_s.append(loop.time() - requested_s)
        self._sent(zero, 0.0)
        # the zero frame also carried one frame of (silent) waveform: a device that queues
        # waveform would now run one frame further behind, so the next scheduled frame is
        # dropped to keep its queue as deep as the profile says
        self._drop_next = self.frames_ahead > 0

    async def final_zero(self) -> None:
        """Write (and report) one last zero frame before the link closes; best effort."""
        if not self.frames.link_up or not self.driver.transport.is_open:
            return
        zero = self.frames.zero(asyncio.get_running_loop().time(), final=True)
        async with asyncio.timeout(self.write_timeout_s):
            await self.driver.send(zero)
        self._sent(zero, 0.0)

    def _sent(self, frame: VettedFrame, lateness_s: float) -> None:
        index = self.stats.frames_sent
        self.stats.frames_sent += 1
        self.frames.sent(index, frame, lateness_s)

    # --- the loop -------------------------------------------------------------------------------
    async def _wait_until(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Sleep until ``deadline``: the selector wakes up to a millisecond late, so sleep
        until shortly before and spin the rest (on wall-clock loops only)."""
        spin_s = 0.0 if getattr(loop, "virtual", False) else SPIN_S
        delay = deadline - spin_s - loop.time()
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
        if spin_s > 0:  # a virtual clock does not move while we spin
            while loop.time() < deadline and not self._finished():
                pass

    async def run(self) -> StreamResult:
        """Stream until the session ends by itself, ``end()`` is called, or a fault."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        period = self.period_s
        self._t0 = t0 = loop.time()
        i = 0
        try:
            while not self._finished():
                deadline = t0 + max(0, i - self.frames_ahead) * period
                await self._wait_until(loop, deadline)
                if self._finished():
                    break
                now = loop.time()
                lateness = now - deadline
                if lateness > self.watchdog_s:
                    raise WatchdogTrip(
                        f"frame {i} was {lateness * 1000:.0f} ms late (watchdog "
                        f"{self.watchdog_s * 1000:.0f} ms): the IO loop fell behind"
                    )
                if lateness >= period and i > self.frames_ahead:
                    # Never burst: drop the frames whose time has passed and restart the
                    # schedule from now, so the device still gets one frame per period.
                    skipped = math.floor(lateness / period)
                    i += skipped
                    self.stats.frames_skipped += skipped
                    t0 = now - max(0, i - self.frames_ahead) * period
                if self._drop_next:
                    self._drop_next = False
                    self.stats.frames_trimmed += 1
                    i += 1
                    continue
                frame = self.frames.frame(i, now)
                if not self.frames.link_up:
                    if self._result is None:  # its time may run out meanwhile
                        self._result = self.frames.ended()
                    i += 1
                    continue
                lateness = loop.time() - deadline  # as handed to the link, vetting included
                try:
                    async with asyncio.timeout(self.write_timeout_s):
                        await self.driver.send(frame)
                except TransportClosed as exc:
                    # the link went before its disconnect callback arrived: same handling
                    if not self.frames.link_lost(str(exc)):
                        raise
                    i += 1
                    continue
                except TimeoutError:
                    raise WatchdogTrip(
                        f"a frame write took over {self.write_timeout_s * 1000:.0f} ms: "
                        "the link fell behind"
                    ) from None
                self.stats.last_lateness_s = lateness
                self.stats.max_lateness_s = max(self.stats.max_lateness_s, lateness)
                self.stats.recent_lateness_s.append(lateness)
                self._sent(frame, lateness)
                if self._result is None:
                    self._result = self.frames.ended()
                i += 1
        except asyncio.CancelledError:
            # the IO thread is shutting down under us: zero first, then let the cancel go on
            self._result = self._result or StreamResult(Outcome.STOPPED, "the engine was closed")
            zero = self.frames.zero(loop.time(), final=True)
            if self.frames.link_up:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.write_timeout_s):
                        await self.driver.send(zero)
                    self._sent(zero, 0.0)
            raise
        except Exception as exc:
            reason = _describe(exc, self)
            self._result = StreamResult(Outcome.FAULT, reason)
            zero = self.frames.zero(loop.time(), final=True)
            try:
                if self.frames.link_up:
                    async with asyncio.timeout(self.write_timeout_s):
                        await self.driver.send(zero)
                    self._sent(zero, 0.0)
            except Exception as send_exc:
                self._result = StreamResult(
                    Outcome.FAULT, f"{reason}; zero not confirmed: {_describe(send_exc, self)}"
                )
        if self._oob:  # let an emergency zero finish before reporting the end
            await asyncio.gather(*self._oob, return_exceptions=True)
        assert self._result is not None
        return self._result


def _describe(exc: BaseException, streamer: Streamer) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {streamer.write_timeout_s * 1000:.0f} ms"
    return str(exc) if isinstance(exc, AcustimError) else f"{type(exc).__name__}: {exc}"
