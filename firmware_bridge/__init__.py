"""HOW to reach devices: transports, one codec per device protocol, the streamer.

Every frame that reaches a transport is a ``safety.VettedFrame`` made by the guard.
"""

from firmware_bridge.driver import DeviceDriver, make_driver
from firmware_bridge.errors import (
    BridgeError,
    DeviceTimeout,
    ProtocolError,
    TransportClosed,
    TransportError,
    UnknownDeviceError,
)
from firmware_bridge.events import (
    BatteryReport,
    DeviceEvent,
    DeviceNotice,
    LinkLost,
    StrengthReport,
)
from firmware_bridge.streamer import Streamer, StreamResult, StreamStats
from firmware_bridge.transport import Transport, make_transport

__all__ = [
    "BatteryReport",
    "BridgeError",
    "DeviceDriver",
    "DeviceEvent",
    "DeviceNotice",
    "DeviceTimeout",
    "LinkLost",
    "ProtocolError",
    "StreamResult",
    "StreamStats",
    "Streamer",
    "StrengthReport",
    "Transport",
    "TransportClosed",
    "TransportError",
    "UnknownDeviceError",
    "make_driver",
    "make_transport",
]
