"""A wall-clock streaming rig: guard + Coyote 3 driver + in-process link + Coyote 3 simulator.

The same wiring as the virtual-time harness of the streamer tests, but on an ``IoThread``
running a real (wall-clock) asyncio loop, so that what is measured is what the application
would see: the GIL, the selector, the loop's own hand-offs. Everything on the device side is
the real code; the bench only adds a link subclass that stamps writes with the loop clock.

Never used by the application, never asserts anything.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from dataclasses import dataclass
from importlib import resources

from acustim.runner import ProgramSource
from device_profiles.profile import DeviceProfile, parse_profile
from firmware_bridge.codecs.coyote3 import Driver
from firmware_bridge.frames import FrameHandler, GuardFrames
from firmware_bridge.link import SimulatorLink
from firmware_bridge.runtime import IoThread
from firmware_bridge.streamer import Streamer
from safety.guard import Guard
from safety.limits import resolve_limits
from simulators.clock import FunctionClock
from simulators.coyote3 import Coyote3Simulator
from waveforms.program import (
    Channel,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    Ramp,
    Segment,
)

#: B0 layout (devices.md section 1): head, seq/modes, 2 strengths, then per channel 4
#: frequency bytes and 4 intensity bytes. Intensities of A and B:
_B0_INTENSITY_A = slice(8, 12)
_B0_INTENSITY_B = slice(16, 20)


def bench_profile(sample_period_s: float) -> DeviceProfile:
    """The shipped Coyote 3 profile with a shorter sample period, for the bench only.

    The frame keeps its 4 samples per channel: the B0 frame of the real codec holds exactly 4
    (``encode_b0`` refuses anything else), so only the period can shrink.
    """
    text = (resources.files("device_profiles") / "coyote3.toml").read_text(encoding="utf-8")
    text, n_period = re.subn(
        r"(?m)^sample_period_s\s*=\s*[0-9.]+", f"sample_period_s = {sample_period_s!r}", text
    )
    text, n_id = re.subn(r'(?m)^id\s*=\s*"coyote3"', 'id = "coyote3-bench"', text)
    if n_period != 1 or n_id != 1:
        raise RuntimeError("device_profiles/coyote3.toml changed shape; update bench/_rig.py")
    return parse_profile(text, f"<bench: coyote3.toml with sample_period_s={sample_period_s}>")


def bench_program(duration_s: float, *, mixed: bool) -> Program:
    """Two channels (A, B) for the Coyote 3: 2 s segments of every kind in turn, or one steady
    continuous segment. The session limit is the program length, so make it long enough."""
    segments: list[Segment]
    if mixed:
        cycle: tuple[Segment, ...] = (
            Ramp(2.0, 80.0, 200.0, 0.3, 1.0, label="ramp"),
            Continuous(2.0, 80.0, 200.0, 0.9, label="continuous"),
            DenseDisperse(2.0, 200.0, 0.8, low_hz=2.0, high_hz=100.0, low_s=0.5, high_s=0.5),
            Intermittent(2.0, 50.0, 200.0, 0.8, on_s=0.5, off_s=0.25, label="intermittent"),
        )
        segments = [cycle[k % len(cycle)] for k in range(math.ceil(duration_s / 2.0))]
    else:
        segments = [Continuous(duration_s, 50.0, 200.0, 0.6, label="steady")]
    return Program(
        name="bench-stream",
        title="Bench stream",
        indication="benchmark only",
        channels=(
            Channel("A", ("ST6-L", "ST7-L"), tuple(segments)),
            Channel("B", ("ST6-R", "ST7-R"), tuple(segments)),
        ),
    )


def zero_output_b0(data: bytes) -> bool:
    """A Coyote 3 B0 frame that carries no output on either channel."""
    return (
        len(data) == 20
        and data[0] == 0xB0
        and not any(data[_B0_INTENSITY_A] + data[_B0_INTENSITY_B])
    )


class StampingLink(SimulatorLink):
    """The in-process link, stamping each write with the loop clock as it is handed over.

    ``arm_zero_watch`` (any thread) makes the next zero-output B0 set ``zero_written`` and
    ``zero_written_s``: the moment an emergency stop's zero frame reached the link.
    """

    def __init__(self, simulator: Coyote3Simulator) -> None:
        super().__init__(simulator, url="sim:coyote3")
        self.last_write_s = math.nan
        self.zero_written = threading.Event()
        self.zero_written_s = math.nan
        self._zero_armed = False

    def arm_zero_watch(self) -> None:
        self.zero_written_s = math.nan
        self.zero_written.clear()
        self._zero_armed = True

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        t = asyncio.get_running_loop().time()
        await super().write(data, endpoint=endpoint)
        self.last_write_s = t
        if self._zero_armed and zero_output_b0(data):
            self._zero_armed = False
            self.zero_written_s = t
            self.zero_written.set()


@dataclass
class WallRig:
    io: IoThread
    profile: DeviceProfile
    sim: Coyote3Simulator
    link: StampingLink
    driver: Driver
    guard: Guard
    streamer: Streamer

    def close(self) -> None:
        async def _close() -> None:
            loop = asyncio.get_running_loop()
            await self.driver.close(self.guard.zero_frame(loop.time()))

        try:
            if self.io.alive:
                self.io.run(_close(), timeout_s=5.0)
        finally:
            self.io.close()


def open_rig(
    profile: DeviceProfile,
    program: Program,
    *,
    levels_du: dict[str, int],
    on_frame: FrameHandler | None = None,
    name: str = "bench-io",
) -> WallRig:
    """Connect (limits and zero written), start the guard and set levels; not yet streaming.

    Levels rise at the fastest ramp the profile allows, from zero, as in a real session.
    """
    io = IoThread(name=name)

    async def _setup() -> WallRig:
        loop = asyncio.get_running_loop()
        sim = Coyote3Simulator(FunctionClock(loop.time))
        link = StampingLink(sim)
        driver = Driver(profile, link)
        limits = resolve_limits(
            profile.limits,
            program,
            rise_fraction_per_s=profile.limits.max_rise_fraction_per_s,
        )
        guard = Guard(limits)
        await driver.connect(limits)
        guard.confirm_limits_written()
        guard.start(loop.time())
        for channel, level in levels_du.items():
            guard.set_level(channel, level, loop.time())
        source = ProgramSource(
            program, profile.limits.sample_period_s, profile.limits.samples_per_frame
        )
        streamer = Streamer(driver, GuardFrames(guard, source, on_frame=on_frame))
        return WallRig(io, profile, sim, link, driver, guard, streamer)

    try:
        return io.run(_setup(), timeout_s=10.0)
    except BaseException:
        io.close()
        raise
