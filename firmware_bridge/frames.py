"""``GuardFrames``: the simplest ``FrameSource``, a bare guard and a demand function.

For the streamer's tests and the benchmarks, which drive the streamer in isolation. Sessions
use ``acustim.runner.SessionRunner``, the guard's one owner in the app. Like the streamer, it
never makes a frame itself: every frame comes from the guard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from firmware_bridge.streamer import Outcome, StreamResult
from safety.guard import Guard, Phase, VettedFrame
from waveforms.program import ChannelDemand

Demands = Callable[[int, float], Sequence[ChannelDemand]]
"""(frame index, loop time) -> the demand for that frame."""
FrameHandler = Callable[[int, VettedFrame, float], None]
"""Called after a frame is on the wire: (sequence number, frame, lateness in seconds)."""


@dataclass
class GuardFrames:
    guard: Guard
    demands: Demands
    on_frame: FrameHandler | None = None
    #: True: a write that finds the link closed pauses writing (a reconnect would follow)
    reconnects: bool = False
    link_up: bool = True
    lost: list[str] = field(default_factory=list)

    def frame(self, index: int, now_s: float) -> VettedFrame:
        return self.guard.vet(self.demands(index, now_s), now_s)

    def zero(self, now_s: float, *, final: bool) -> VettedFrame:
        return self.guard.end(now_s) if final else self.guard.stop(now_s)

    def ended(self) -> StreamResult | None:
        if self.guard.phase is Phase.ENDED:
            return StreamResult(Outcome.COMPLETED, "session completed")
        return None

    def sent(self, index: int, frame: VettedFrame, lateness_s: float) -> None:
        if self.on_frame is not None:
            self.on_frame(index, frame, lateness_s)

    def link_lost(self, reason: str) -> bool:
        self.lost.append(reason)
        if self.reconnects:
            self.link_up = False
        return self.reconnects
