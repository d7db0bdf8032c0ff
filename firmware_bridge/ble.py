"""BLE transport through bleak's ``BleakClient``.

Endpoints are characteristic UUIDs. Writes use write-with-response, so a frame counts as sent
only when the device has taken it. A disconnect that the host did not ask for runs the
disconnect handler once, on the loop. ``backend=`` passes a custom bleak backend through to
``BleakClient`` (the simulator's, in tests). Moves bytes only: no protocol here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from firmware_bridge.errors import TransportClosed, TransportError
from firmware_bridge.transport import Transport

CONNECT_TIMEOUT_S = 10.0


class BleTransport(Transport):
    """One BLE peripheral at ``address``."""

    def __init__(self, address: str, *, backend: type[Any] | None = None) -> None:
        super().__init__()
        self.address = address
        self.url = f"ble://{address}"
        self.backend = backend
        self._client: Any = None
        self._closing = False

    @property
    def is_open(self) -> bool:
        return self._client is not None and bool(self._client.is_connected)

    async def open(self) -> None:
        try:
            from bleak import BleakClient
            from bleak.exc import BleakError
        except ImportError as exc:  # pragma: no cover - bleak is a dependency
            raise TransportError(f"BLE needs the 'bleak' package: {exc}") from None
        self._closing = False
        client = BleakClient(
            self.address,
            disconnected_callback=self._disconnected,
            timeout=CONNECT_TIMEOUT_S,
            backend=self.backend,
        )
        try:
            await client.connect()
        except (BleakError, TimeoutError, OSError) as exc:
            raise TransportError(f"cannot connect to {self.address}: {exc}") from None
        except Exception as exc:  # no adapter, no D-Bus, ...: bleak raises various errors
            raise TransportError(
                f"cannot connect to {self.address}: {type(exc).__name__}: {exc}"
            ) from None
        self._client = client

    def _disconnected(self, client: Any) -> None:
        if client is not self._client:
            return  # a stale callback for a client this transport has already replaced
        if not self._closing and self._client is not None:
            self._client = None
            self._lost(f"BLE device {self.address} disconnected")

    async def close(self) -> None:
        client, self._client = self._client, None
        self._closing = True
        if client is not None:
            with contextlib.suppress(Exception):  # already gone
                await asyncio.wait_for(client.disconnect(), timeout=5.0)

    def _connected(self) -> Any:
        if self._client is None or not self._client.is_connected:
            raise TransportClosed(f"{self.address}: not connected")
        return self._client

    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        client = self._connected()
        try:
            await client.write_gatt_char(endpoint, data, response=True)
        except Exception as exc:
            raise TransportClosed(f"{self.address}: write to {endpoint} failed: {exc}") from None

    async def read(self, endpoint: str) -> bytes:
        client = self._connected()
        try:
            return bytes(await client.read_gatt_char(endpoint))
        except Exception as exc:
            raise TransportClosed(f"{self.address}: read of {endpoint} failed: {exc}") from None

    async def subscribe(self, endpoint: str) -> None:
        client = self._connected()

        def notified(_sender: Any, data: bytearray) -> None:
            if self._client is not None:
                self._deliver(endpoint, bytes(data))

        try:
            await client.start_notify(endpoint, notified)
        except Exception as exc:
            raise TransportError(f"{self.address}: cannot subscribe to {endpoint}: {exc}") from None


def open_ble(url: str) -> Transport:
    return BleTransport(url.split("://", 1)[1])
