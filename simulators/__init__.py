"""FAKE devices: firmware emulators written from the protocol document.

Each simulator speaks a device's real byte protocol (bytes in, state and replies out), runs on
a ``Clock`` that tests can drive, and keeps a ``DeliveryRecord`` of what it would have
delivered: the oracle for safety tests seen from the device's side.

This package must never import the host side (``firmware_bridge``, ``safety``, ``acustim``,
``gui``): a simulator is an independent implementation of the firmware, written from
``../shared/reference/devices.md``, so a codec bug cannot cancel itself out in tests.
Device-specific constants (UUIDs, frame sizes) stay in their modules, e.g.
``simulators.coyote3``.
"""

from simulators.clock import Clock, FunctionClock, VirtualClock, WallClock
from simulators.coyote2 import Coyote2Simulator
from simulators.coyote3 import Coyote3Simulator
from simulators.et312 import Et312Simulator
from simulators.pulsepal import PulsePalSimulator
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "Clock",
    "Coyote2Simulator",
    "Coyote3Simulator",
    "DeliveredInterval",
    "DeliveryRecord",
    "Et312Simulator",
    "FunctionClock",
    "PulsePalSimulator",
    "VirtualClock",
    "WallClock",
]
