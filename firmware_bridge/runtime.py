"""The IO thread: one thread running one asyncio loop that owns every transport.

The GUI and the CLI hand work to it (``submit`` / ``call``) and never touch a transport
themselves. The loop runs on wall time, or on virtual time for simulations and tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from firmware_bridge.vtime import VirtualTimeLoop

T = TypeVar("T")

#: Python hands the GIL between threads every 5 ms by default; a GUI or other busy thread could
#: then hold the IO thread off its deadline for that long. 1 ms bounds that wait
#: (../shared/reference/platform.md section 1). Process-wide: set once the IO thread starts.
SWITCH_INTERVAL_S = 0.001


class IoThread:
    """Starts a daemon thread with its own event loop; ``close()`` stops and joins it."""

    def __init__(self, *, virtual_time: bool = False, name: str = "acustim-io") -> None:
        self.virtual_time = virtual_time
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.loop: asyncio.AbstractEventLoop = (
            VirtualTimeLoop() if virtual_time else asyncio.new_event_loop()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def in_io_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the IO loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the IO loop and wait for its result (not from the IO thread)."""
        return self.submit(coro).result(timeout_s)

    def call(self, fn: Callable[[], T], timeout_s: float | None = 5.0) -> T:
        """Run a plain function on the IO loop and wait for its result."""

        async def _call() -> T:
            return fn()

        return self.run(_call(), timeout_s)

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Fire and forget: run ``fn`` on the IO loop as soon as it can."""
        self.loop.call_soon_threadsafe(fn)

    def close(self, timeout_s: float = 5.0) -> None:
        if self.loop.is_closed():
            return

        async def _shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                self.run(_shutdown(), timeout_s)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()
