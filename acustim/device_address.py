"""What the place part of a real device spec looks like, checked before anything is opened.

``et312@/dev/ttyUSB0`` names a serial port, ``coyote3@AA:BB:CC:DD:EE:FF`` a BLE address; the
device model before ``@`` says which of the two it needs. ``check_device_spec`` refuses a
place that cannot be one (``et312@``, ``et312@not a port``, ``coyote3@ZZ:ZZ``) with one line
that says what a port or an address looks like, so the user never sees a raw errno from a
failed open. It only reads the spec (and stats a port path); it never opens a device.

``sim:<device>`` specs and specs without ``@`` are left to ``acustim.engine.resolve_device``,
which says what is wrong with them.
"""

from __future__ import annotations

import os
import re
import stat

from device_profiles.profile import load_profile
from firmware_bridge.errors import UnknownDeviceError

__all__ = ["BLE_ADDRESS", "SERIAL_PORT", "check_device_spec", "place_problem"]

#: What a serial port looks like, for messages.
SERIAL_PORT = (
    "a serial port path such as /dev/ttyUSB0, /dev/ttyACM0 or /dev/pts/3 (COM3 on Windows), "
    "or a serial://PATH, socket://HOST:PORT or loop:// URL"
)
#: What a BLE address looks like, for messages.
BLE_ADDRESS = (
    "a BLE address of six hex pairs such as AA:BB:CC:DD:EE:FF (on macOS the device's "
    "UUID, 8-4-4-4-12 hex digits), optionally as ble://ADDRESS"
)

_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_COM = re.compile(r"(?:\\\\\.\\)?COM[1-9][0-9]{0,2}", re.IGNORECASE)
_HOST_PORT = re.compile(r"[A-Za-z0-9.\-]+:([0-9]{1,5})|\[[0-9A-Fa-f:.]+\]:([0-9]{1,5})")
_SERIAL_SCHEMES = ("serial", "socket", "loop")
_MAX_PLACE_CHARS = 4096


def _shown(text: str) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= 60 else quoted[:56] + "...'"


def _port_path_problem(path: str) -> str | None:
    if _COM.fullmatch(path):
        return None
    if not path:
        return "the port is missing after '@'"
    if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
        return f"{_shown(path)} is not a serial port path"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"there is no port {_shown(path)} (is the device plugged in and switched on?)"
    except OSError:
        return None  # no access: opening it says so
    if not stat.S_ISCHR(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a character device"
        if stat.S_ISREG(mode):
            kind = "a regular file"
        elif stat.S_ISFIFO(mode):
            kind = "a named pipe (FIFO)"
        return f"{_shown(path)} is {kind}, not a serial port"
    return None


def _serial_problem(place: str) -> str | None:
    if "://" not in place:
        return _port_path_problem(place)
    scheme, rest = place.split("://", 1)
    if scheme not in _SERIAL_SCHEMES:
        return f"{_shown(place)} is a {scheme}:// link, not a serial one"
    if scheme == "serial":
        return _port_path_problem(rest)
    if scheme == "socket":
        match = _HOST_PORT.fullmatch(rest.split("?", 1)[0])
        port = None if match is None else int(match.group(1) or match.group(2))
        if port is None or not 1 <= port <= 65535:
            return f"{_shown(place)} is not socket://HOST:PORT (a port 1..65535)"
    return None


def _ble_problem(place: str) -> str | None:
    address = place[len("ble://") :] if place.startswith("ble://") else place
    if "://" in address:
        return f"{_shown(place)} is a {address.split('://', 1)[0]}:// link, not a BLE address"
    if not address:
        return "the BLE address is missing after '@'"
    if _MAC.fullmatch(address) or _UUID.fullmatch(address):
        return None
    return f"{_shown(address)} is not a BLE address"


def place_problem(link: str, place: str) -> str | None:
    """What is wrong with ``place`` for a device on ``link`` ("serial" or "ble"), or None.

    The syntax, and for a port path that it exists and is a character device (a stat, never
    an open: a port path that is a FIFO or a regular file is refused, not opened)."""
    if len(place) > _MAX_PLACE_CHARS:
        return f"the place after '@' is {len(place)} characters long"
    if link == "serial":
        return _serial_problem(place)
    if link == "ble":
        return _ble_problem(place)
    return None


def check_device_spec(spec: str) -> None:
    """Refuse a real device spec whose port or address cannot be one: ``UnknownDeviceError``
    (a user's mistake, exit 2) naming the spec and saying what the place looks like."""
    if spec.startswith("sim:") or "@" not in spec:
        return
    name, place = spec.split("@", 1)
    profile = load_profile(name)
    problem = place_problem(profile.link, place)
    if problem is None:
        return
    looks_like = BLE_ADDRESS if profile.link == "ble" else SERIAL_PORT
    example = "AA:BB:CC:DD:EE:FF" if profile.link == "ble" else "/dev/ttyUSB0"
    listing = "--ble lists the devices nearby" if profile.link == "ble" else "lists the ports"
    raise UnknownDeviceError(
        f"device {_shown(spec)}: {problem}; allowed {profile.id}@PLACE with {looks_like}, "
        f"e.g. {profile.id}@{example} ('acustim devices' {listing})"
    )
