"""The transport interface: bytes to and from one device, and the registry of URL schemes.

A transport moves bytes; it never encodes frames or decides what is safe. Every method runs
on the IO thread's asyncio loop. ``endpoint`` names a GATT characteristic for BLE links and is
empty for serial links.

URLs: ``sim:<device>`` (in-process simulator), ``serial:///dev/ttyUSB0`` or any
``serial.serial_for_url`` URL, ``ble://AA:BB:CC:DD:EE:FF``. Scheme modules are imported lazily,
so a missing optional driver never breaks ``import firmware_bridge``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable

from firmware_bridge.errors import UnknownDeviceError

Receiver = Callable[[str, bytes], None]
"""Called on the loop with (endpoint, data) for every notification or chunk of serial bytes."""

DisconnectHandler = Callable[[str], None]
"""Called on the loop, once, with a reason, when the link is lost (not on ``close()``)."""


class Transport(ABC):
    """One open link to one device."""

    url: str = ""

    def __init__(self) -> None:
        self._receiver: Receiver | None = None
        self._on_disconnect: DisconnectHandler | None = None

    def set_receiver(self, receiver: Receiver | None) -> None:
        self._receiver = receiver

    def set_disconnect_handler(self, handler: DisconnectHandler | None) -> None:
        self._on_disconnect = handler

    def _deliver(self, endpoint: str, data: bytes) -> None:
        if self._receiver is not None:
            self._receiver(endpoint, data)

    def _lost(self, reason: str) -> None:
        # each transport calls this once per lost connection; the handler stays for the next
        if self._on_disconnect is not None:
            self._on_disconnect(reason)

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    async def open(self) -> None:
        """Connect. Raises ``TransportError`` with a clear message on failure."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; safe to call twice."""

    @abstractmethod
    async def write(self, data: bytes, *, endpoint: str = "") -> None:
        """Send bytes. Raises ``TransportClosed`` if the link is gone."""

    async def read(self, endpoint: str) -> bytes:
        """Read a value (a GATT characteristic). Serial links have nothing to read this way."""
        raise NotImplementedError(f"{type(self).__name__} has no readable endpoints")

    async def subscribe(self, endpoint: str) -> None:  # noqa: B027 - optional for serial
        """Ask for notifications on an endpoint (BLE). Serial links deliver all bytes anyway."""


TransportFactory = Callable[[str], Transport]

#: scheme -> (module, function name); the module is imported when a URL needs it
_SCHEMES: dict[str, tuple[str, str]] = {
    "sim": ("firmware_bridge.link", "open_simulator_link"),
    "serial": ("firmware_bridge.serial_port", "open_serial"),
    "socket": ("firmware_bridge.serial_port", "open_serial"),
    "loop": ("firmware_bridge.serial_port", "open_serial"),
    "ble": ("firmware_bridge.ble", "open_ble"),
}


def register_scheme(scheme: str, module: str, factory: str) -> None:
    """Add a URL scheme (lazy: ``module`` is imported on first use)."""
    _SCHEMES[scheme] = (module, factory)


def make_transport(url: str) -> Transport:
    """Build (not open) the transport for a URL. A bare path is a serial port."""
    if url.startswith("/") or url.upper().startswith("COM"):
        url = "serial://" + url
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}:" for s in sorted(_SCHEMES))
        raise UnknownDeviceError(f"unknown link {url!r}; known link kinds: {known}")
    module_name, factory_name = _SCHEMES[scheme]
    factory: TransportFactory = getattr(importlib.import_module(module_name), factory_name)
    return factory(url)
