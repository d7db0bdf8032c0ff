"""A bleak backend whose peripheral is a simulator: tests use bleak's real ``BleakClient``.

``BleakClient(address, backend=SimulatedBleakBackend)`` resolves ``address`` in
``REGISTRY`` (``register(address, simulator, gatt)``), builds the GATT table given with it as
bleak services and characteristics, forwards writes and reads, and delivers notifications on
the loop, as a radio stack would (never inside the write call). ``unplug(address)`` makes the
link drop under the host's feet: bleak's disconnected callback runs.

The GATT table is the device profile's (``[[gatt]]``, ``DeviceProfile.gatt``): the host side
passes it to ``register``, so this module knows no device.

Imports only bleak and the simulators; never the host side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError


class GattDevice(Protocol):
    def write(self, char_uuid: str, data: bytes) -> None: ...
    def read(self, char_uuid: str) -> bytes: ...
    def start_notify(self, char_uuid: str, callback: Callable[[str, bytes], None]) -> None: ...
    def stop_notify(self, char_uuid: str) -> None: ...
    def disconnect(self) -> None: ...


GattTable = Sequence[tuple[str, Sequence[tuple[str, Sequence[str]]]]]
"""[(service uuid, [(characteristic uuid, bleak property names)])]: ``DeviceProfile.gatt``"""

#: address -> simulator; tests register their simulator before connecting
REGISTRY: dict[str, GattDevice] = {}
#: address -> the GATT table the simulator there offers
TABLES: dict[str, GattTable] = {}
_CONNECTED: dict[str, SimulatedBleakBackend] = {}


def register(address: str, simulator: GattDevice, gatt: GattTable) -> None:
    """Put ``simulator`` at ``address``, offering the GATT table ``gatt`` (its profile's)."""
    if not gatt:
        raise ValueError(f"{address}: a simulated BLE device needs a GATT table")
    REGISTRY[address.upper()] = simulator
    TABLES[address.upper()] = gatt


def unregister(address: str) -> None:
    REGISTRY.pop(address.upper(), None)
    TABLES.pop(address.upper(), None)


def unplug(address: str) -> None:
    """Fault: the radio link to ``address`` drops (bleak's disconnected callback runs)."""
    backend = _CONNECTED.get(address.upper())
    if backend is not None:
        backend._link_lost()


class SimulatedBleakBackend(BaseBleakClient):
    """A ``BaseBleakClient`` talking to a registered simulator."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._simulator: GattDevice | None = None
        self._connected = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return str(getattr(self._simulator, "name", self.address))

    @property
    def mtu_size(self) -> int:
        return 23

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        simulator = REGISTRY.get(self.address.upper())
        if simulator is None:
            raise BleakDeviceNotFoundError(self.address, f"no simulated device at {self.address}")
        table = TABLES[self.address.upper()]
        self._simulator = simulator
        self._loop = asyncio.get_running_loop()
        self.services = _services(table)
        self._connected = True
        _CONNECTED[self.address.upper()] = self

    async def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            _CONNECTED.pop(self.address.upper(), None)
            self._device().disconnect()

    def _link_lost(self) -> None:
        if self._connected:
            self._connected = False
            _CONNECTED.pop(self.address.upper(), None)
            self._device().disconnect()
            callback = self._disconnected_callback
            if callback is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(callback)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _device(self) -> GattDevice:
        if self._simulator is None:
            raise BleakError("not connected")
        return self._simulator

    def _require_connected(self) -> GattDevice:
        if not self._connected:
            raise BleakError("Not connected")
        return self._device()

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        return bytearray(self._require_connected().read(characteristic.uuid))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        raise BleakError("the simulated devices have no descriptors to read")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        self._require_connected().write(characteristic.uuid, bytes(data))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("the simulated devices have no descriptors to write")

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: Callable[[bytearray], None],
        **kwargs: Any,
    ) -> None:
        loop = asyncio.get_running_loop()

        def notified(_uuid: str, payload: bytes) -> None:
            if self._connected:
                loop.call_soon(callback, bytearray(payload))

        self._require_connected().start_notify(characteristic.uuid, notified)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_connected().stop_notify(characteristic.uuid)


def _services(table: GattTable) -> BleakGATTServiceCollection:
    collection = BleakGATTServiceCollection()
    handle = 1
    for service_uuid, characteristics in table:
        service = BleakGATTService(None, handle, service_uuid.lower())
        collection.add_service(service)
        handle += 1
        for char_uuid, properties in characteristics:
            char = BleakGATTCharacteristic(
                None,
                handle,
                char_uuid.lower(),
                list(properties),  # type: ignore[arg-type]
                lambda: 20,
                service,
            )
            collection.add_characteristic(char)
            handle += 2
    return collection
