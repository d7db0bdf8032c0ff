"""Clocks that drive the device simulators.

A simulator reads time only through a ``Clock`` handed to it, so the same firmware emulator
runs on virtual time in tests (fast, deterministic, no sleeps) and on the wall clock or an
asyncio loop's clock in demos.

This module must never sleep, never start threads and never import the host side
(``firmware_bridge``, ``safety``, ``acustim``, ``gui``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FunctionClock", "VirtualClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time in seconds (the origin is arbitrary)."""

    def now_s(self) -> float:
        """Return the current time in seconds; never less than a value returned before."""
        ...


class VirtualClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start_s: float = 0.0) -> None:
        if not math.isfinite(start_s):
            raise ValueError(f"VirtualClock start_s must be finite, got {start_s!r}")
        self._now_s = float(start_s)

    def now_s(self) -> float:
        return self._now_s

    def advance(self, dt_s: float) -> None:
        """Move time forward by ``dt_s`` seconds (``dt_s >= 0``)."""
        if not (math.isfinite(dt_s) and dt_s >= 0.0):
            raise ValueError(f"VirtualClock.advance needs a finite dt_s >= 0, got {dt_s!r}")
        self._now_s += dt_s

    def set(self, t_s: float) -> None:
        """Jump to ``t_s``; time never runs backwards, so ``t_s`` must be >= now."""
        if not math.isfinite(t_s):
            raise ValueError(f"VirtualClock.set needs a finite time, got {t_s!r}")
        if t_s < self._now_s:
            raise ValueError(
                f"VirtualClock.set({t_s!r}) would move time backwards from {self._now_s!r}"
            )
        self._now_s = float(t_s)

    def __repr__(self) -> str:
        return f"VirtualClock(now_s={self._now_s!r})"


class WallClock:
    """Real time from ``time.monotonic()`` (demos, the pty simulator)."""

    def now_s(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "WallClock()"


class FunctionClock:
    """Adapt any zero-argument callable returning seconds, e.g. ``asyncio`` ``loop.time``."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def now_s(self) -> float:
        return float(self._fn())

    def __repr__(self) -> str:
        return f"FunctionClock({self._fn!r})"
