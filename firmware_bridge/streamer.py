"""The streamer: the real-time loop that vets and writes one frame per device frame period.

Frames are due at absolute deadlines ``t0 + (i - ahead) * period``: a device that buffers gets
``ahead`` frames at once at the start, so ordinary lateness never starves it. Lateness is
measured for every frame; frames whose deadline passed a whole period ago are dropped and the
schedule restarts from now, never sent in a burst. Lateness beyond the watchdog threshold, a
write that does not finish in time, or any exception ends the stream with zero output. An
emergency stop puts the zero frame on the wire at once, out of band, not at the next tick.

Runs on the IO loop only. It never makes a frame itself: every frame comes from the guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from firmware_bridge.driver import DeviceDriver
from firmware_bridge.errors import TransportClosed
from safety.guard import Guard, Phase, VettedFrame
from waveforms.errors import AcustimError
from waveforms.program import ChannelDemand

DemandSource = Callable[[int, float], Sequence[ChannelDemand]]
"""(frame index, loop time) -> the demand for that frame."""

FrameHandler = Callable[[int, VettedFrame, float], None]
"""Called after a frame is on the wire: (sequence number, frame, lateness in seconds)."""


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


_LOST_AT_END = StreamResult(
    Outcome.FAULT, "the device link was lost and the session's time ran out before it came back"
)

#: How long before a deadline the streamer stops sleeping and spins (the selector's timeout
#: has a resolution of one millisecond and wakes late, never early).
SPIN_S = 0.0015


class WatchdogTrip(AcustimError):
    """The loop or the link fell behind the frame clock."""


class Streamer:
    """Streams one session's frames to one driver."""

    def __init__(
        self,
        driver: DeviceDriver,
        guard: Guard,
        source: DemandSource,
        *,
        on_frame: FrameHandler | None = None,
        on_link_lost: Callable[[str], None] | None = None,
        watchdog_s: float | None = None,
        write_timeout_s: float | None = None,
    ) -> None:
        self.driver = driver
        self.guard = guard
        self.source = source
        self.on_frame = on_frame
        #: given: a closed link pauses writing and is reported here (the caller reconnects);
        #: not given: a closed link ends the stream as a fault
        self.on_link_lost = on_link_lost
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
        #: False while the link is down: frames are still vetted (the guard's clock and phase
        #: go on, and its output is zero until limits are written again) but not written.
        self.link_up = True
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
        zero = self.guard.stop(requested)
        return self._out_of_band(loop, zero, requested)

    def end(self, outcome: Outcome, reason: str) -> asyncio.Task[None]:
        """End the stream now with zero output (Ctrl-C, window closed, link lost, fault)."""
        loop = asyncio.get_running_loop()
        requested = loop.time()
        zero = self.guard.end(requested)
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
        if not self.link_up:
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
        if not self.link_up or not self.driver.transport.is_open:
            return
        zero = self.guard.end(asyncio.get_running_loop().time())
        async with asyncio.timeout(self.write_timeout_s):
            await self.driver.send(zero)
        self._sent(zero, 0.0)

    def _sent(self, frame: VettedFrame, lateness_s: float) -> None:
        index = self.stats.frames_sent
        self.stats.frames_sent += 1
        if self.on_frame is not None:
            self.on_frame(index, frame, lateness_s)

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
        """Stream until the guard ends the session, ``end()`` is called, or a fault."""
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
                frame = self.guard.vet(self.source(i, now), now)
                if not self.link_up:
                    if self.guard.phase is Phase.ENDED:  # the session's time ran out meanwhile
                        self._result = _LOST_AT_END
                    i += 1
                    continue
                lateness = loop.time() - deadline  # as handed to the link, vetting included
                try:
                    async with asyncio.timeout(self.write_timeout_s):
                        await self.driver.send(frame)
                except TransportClosed as exc:
                    if self.on_link_lost is None:
                        raise
                    # the link went before its disconnect callback arrived: same handling
                    self.link_up = False
                    self.on_link_lost(str(exc))
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
                if self.guard.phase is Phase.ENDED and self._result is None:
                    self._result = (
                        _LOST_AT_END
                        if self.guard.ended_while_link_down
                        else StreamResult(Outcome.COMPLETED, "session completed")
                    )
                i += 1
        except asyncio.CancelledError:
            # the IO thread is shutting down under us: zero first, then let the cancel go on
            self._result = self._result or StreamResult(Outcome.STOPPED, "the engine was closed")
            zero = self.guard.end(loop.time())
            if self.link_up:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.write_timeout_s):
                        await self.driver.send(zero)
                    self._sent(zero, 0.0)
            raise
        except Exception as exc:
            reason = _describe(exc, self)
            self._result = StreamResult(Outcome.FAULT, reason)
            zero = self.guard.end(loop.time())
            try:
                if self.link_up:
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
