"""Serve a byte-stream simulator on a raw pseudo-terminal, so any program opens it as a port.

``PtyHost(simulator).start()`` creates the pty pair (raw from the start, so no byte is eaten
by the line discipline before the client configures the port), keeps the slave side open (a
master read would fail while no one holds it), and runs a thread that feeds the simulator
what the client writes and writes back what the simulator says. ``path`` is the port to open.
Wall clock only: this is for real programs (``acustim simulate``) and real-pyserial tests.

Imports only the standard library and the simulators; never the host side.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class ByteDevice(Protocol):
    def feed(self, data: bytes) -> None: ...
    def set_output(self, callback: Callable[[bytes], None] | None) -> None: ...
    def advance_to(self, t_s: float) -> None: ...


class PtyHost:
    """One simulator on one pty. Every call into the simulator holds ``lock``."""

    def __init__(self, simulator: ByteDevice, clock_now: Callable[[], float]) -> None:
        self.simulator = simulator
        self._now = clock_now
        self.lock = threading.RLock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    def start(self) -> PtyHost:
        self.simulator.set_output(self._reply)
        self._thread = threading.Thread(target=self._serve, name=f"pty {self.path}", daemon=True)
        self._thread.start()
        return self

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a fault, a query) while the simulator is not being fed."""
        with self.lock:
            return fn()

    def _reply(self, data: bytes) -> None:
        if not self._stop.is_set():
            with contextlib.suppress(OSError):
                os.write(self._master, data)
                self.bytes_out += len(data)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
            except (OSError, ValueError):
                return
            with self.lock:
                self.simulator.advance_to(self._now())
                if ready:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        continue  # no client holds the port right now
                    if data:
                        self.bytes_in += len(data)
                        self.simulator.feed(data)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self.lock:
            self.simulator.set_output(None)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
