"""An asyncio event loop on virtual time: sleeps take no wall time, time moves to the next timer.

Used by tests and by ``--virtual-time`` runs on in-process simulators, so a 30-minute session
runs in seconds, deterministically. Real I/O still works (the selector is polled), but time
jumps whenever the loop would otherwise wait, so use it only with in-process links.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _VirtualSelector(selectors.BaseSelector):
    """Polls the real selector without waiting; a wait for a timeout advances virtual time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # nothing scheduled: wait for I/O or a call from another thread
            return self._real.select(None)
        events = self._real.select(0)
        if not events and timeout > 0:
            self._loop.advance(timeout)
        return events

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``loop.time()`` is virtual: it only moves when every task is waiting on a timer."""

    #: tells real-time code (the streamer's spin wait) that the clock does not run by itself
    virtual = True

    def __init__(self, start_s: float = 0.0) -> None:
        self._virtual_s = start_s
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_s

    def advance(self, dt_s: float) -> None:
        self._virtual_s += dt_s
