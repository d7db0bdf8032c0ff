"""A streaming harness on virtual time: the real driver, link and Coyote 3 simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from device_profiles import load_profile
from firmware_bridge.codecs.coyote3 import Driver
from firmware_bridge.frames import GuardFrames
from firmware_bridge.link import SimulatorLink
from firmware_bridge.streamer import Streamer
from firmware_bridge.vtime import VirtualTimeLoop
from safety import Guard, VettedFrame, resolve_limits
from simulators.clock import FunctionClock
from simulators.coyote3 import Coyote3Simulator
from tests.safety.helpers import program
from waveforms.program import ChannelDemand

T = TypeVar("T")


class LoggingLink(SimulatorLink):
    """Keeps every write, with its loop time, so tests can check what went on the wire."""

    def __init__(self, simulator: Coyote3Simulator) -> None:
        super().__init__(simulator, url="sim:coyote3")
        self.log: list[tuple[float, bytes]] = []

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        await super().write(data, endpoint=endpoint)
        self.log.append((asyncio.get_running_loop().time(), bytes(data)))


def constant(
    intensity: float = 0.5, frequency_hz: float = 50.0
) -> Callable[[int, float], Sequence[ChannelDemand]]:
    d = [ChannelDemand(c, (frequency_hz,) * 4, (200.0,) * 4, (intensity,) * 4) for c in ("A", "B")]
    return lambda i, now: d


@dataclass
class Rig:
    loop: VirtualTimeLoop
    sim: Coyote3Simulator
    link: LoggingLink
    driver: Driver
    guard: Guard
    frames: list[tuple[int, VettedFrame, float]] = field(default_factory=list)

    def streamer(
        self, source: Callable[[int, float], Sequence[ChannelDemand]] | None = None, **kw: Any
    ) -> Streamer:
        frames = GuardFrames(
            self.guard,
            source or constant(),
            on_frame=lambda i, f, late: self.frames.append((i, f, late)),
        )
        return Streamer(self.driver, frames, **kw)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def connect(self) -> None:
        await self.driver.connect(self.guard.limits)
        self.guard.confirm_limits_written()
        self.guard.start(self.loop.time())


@pytest.fixture
def rig() -> Any:
    loop = VirtualTimeLoop(start_s=100.0)
    sim = Coyote3Simulator(FunctionClock(loop.time))
    link = LoggingLink(sim)
    profile = load_profile("coyote3")
    driver = Driver(profile, link)
    limits = resolve_limits(profile.limits, program(), ceilings_du={"A": 60, "B": 50})
    r = Rig(loop, sim, link, driver, Guard(limits))
    yield r
    loop.close()
