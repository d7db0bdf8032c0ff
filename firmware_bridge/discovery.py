"""Finding devices: serial ports on this machine, BLE stimulators nearby, built-in simulators.

The device models are the built-in profiles (``device_profiles/<id>.toml``), and nothing else:
a profile's ``[device] link`` says whether serial ports are offered for it, its ``ble_names``
which advertised names are it, its ``simulator`` whether ``sim:<id>`` exists.

Only lists what could be connected; never opens a device and never writes to one.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_profiles.profile import DeviceProfile, builtin_profile_ids, load_builtin_profile
from firmware_bridge.errors import TransportError


@dataclass(frozen=True)
class Found:
    """One thing the user could connect to, with the device spec to give ``Engine.connect``."""

    spec: str  # e.g. "sim:coyote3", "et312@/dev/ttyUSB0", "coyote3@AA:BB:CC:DD:EE:FF"
    label: str  # what a person reads
    kind: str  # "simulator" | "serial" | "ble"


def profiles() -> list[DeviceProfile]:
    """Every built-in device model, by id."""
    return [load_builtin_profile(i) for i in builtin_profile_ids()]


def simulators() -> list[Found]:
    """Every built-in device that has a simulator."""
    return [
        Found(f"sim:{p.id}", f"{p.name} (simulator)", "simulator")
        for p in profiles()
        if p.simulator is not None
    ]


def serial_ports() -> list[Found]:
    """Serial ports, each offered for every serial device model (the user picks the model)."""
    from serial.tools import list_ports

    models = [p for p in profiles() if p.link == "serial"]
    found: list[Found] = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        description = port.description if port.description not in (None, "n/a") else ""
        for p in models:
            label = f"{p.name} on {port.device}" + (f" ({description})" if description else "")
            found.append(Found(f"{p.id}@{port.device}", label, "serial"))
    return found


async def scan_ble(timeout_s: float = 5.0) -> list[Found]:
    """BLE devices whose advertised name matches a profile. Raises ``TransportError`` with a
    clear message when this machine has no usable Bluetooth adapter."""
    from bleak import BleakScanner
    from bleak.exc import BleakError

    by_name = {name: p for p in profiles() for name in p.ble_names}
    try:
        devices = await BleakScanner.discover(timeout=timeout_s)
    except (TimeoutError, BleakError, OSError) as exc:
        raise TransportError(
            f"Bluetooth scan failed ({exc}): is there a Bluetooth adapter, and is BlueZ "
            "(bluetoothd) running with D-Bus?"
        ) from None
    except Exception as exc:  # e.g. no D-Bus / no BlueZ: bleak raises various errors
        raise TransportError(
            f"Bluetooth is not available here: {type(exc).__name__}: {exc}"
        ) from None
    found: list[Found] = []
    for d in devices:
        profile = by_name.get(d.name or "")
        if profile is not None:
            found.append(Found(f"{profile.id}@{d.address}", f"{profile.name} {d.address}", "ble"))
    return found
