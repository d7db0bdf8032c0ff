"""Serial transport through pyserial: device paths, ``loop://``, ``socket://`` and other URLs.

A reader thread blocks in ``read`` and hands every chunk to the loop, so the loop never waits
on the port; writes go straight to the port with a write timeout (a few bytes into a kernel
buffer). A read or write failure is a lost link: the disconnect handler runs once, on the loop.
Moves bytes only: no protocol here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from firmware_bridge.errors import TransportClosed, TransportError
from firmware_bridge.transport import Transport

READ_TIMEOUT_S = 0.05
WRITE_TIMEOUT_S = 0.5


class SerialTransport(Transport):
    """One serial port. ``url`` is ``serial:///dev/ttyUSB0``, a plain path, or any URL
    ``serial.serial_for_url`` accepts (``loop://``, ``socket://host:port``, ``spy://...``)."""

    def __init__(self, url: str, *, baudrate: int = 115200) -> None:
        super().__init__()
        self.url = url
        self.port_name = url[len("serial://") :] if url.startswith("serial://") else url
        self.baudrate = baudrate
        self._port: Any = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_open(self) -> bool:
        return self._port is not None

    async def open(self) -> None:
        import serial

        self._loop = asyncio.get_running_loop()
        try:
            port = serial.serial_for_url(
                self.port_name,
                baudrate=self.baudrate,
                timeout=READ_TIMEOUT_S,
                write_timeout=WRITE_TIMEOUT_S,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open serial port {self.port_name}: {exc}") from None
        port.reset_input_buffer()
        self._port = port
        self._stop.clear()
        self._reader = threading.Thread(
            target=self._read_forever, name=f"serial-reader {self.port_name}", daemon=True
        )
        self._reader.start()

    def _read_forever(self) -> None:
        import serial

        port, loop = self._port, self._loop
        assert port is not None and loop is not None
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    loop.call_soon_threadsafe(self._failed, f"serial port failed: {exc}")
                return
            if data:
                loop.call_soon_threadsafe(self._deliver_if_open, bytes(data))

    def _deliver_if_open(self, data: bytes) -> None:
        if self._port is not None:
            self._deliver("", data)

    def _failed(self, reason: str) -> None:
        if self._port is not None:
            self._shutdown()
            self._lost(reason)

    def _shutdown(self) -> None:
        self._stop.set()
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):  # closing a port that is already gone
                port.close()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=1.0)
        self._reader = None

    async def close(self) -> None:
        self._shutdown()

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        import serial

        port = self._port
        if port is None:
            raise TransportClosed(f"{self.port_name}: port is closed")
        try:
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            self._failed(f"serial write failed: {exc}")
            raise TransportClosed(f"{self.port_name}: write failed: {exc}") from None


def open_serial(url: str) -> Transport:
    return SerialTransport(url)
